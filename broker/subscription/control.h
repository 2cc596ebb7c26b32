#pragma once
// Control records: the subscription state changes that go through the partition's log like data
// (DESIGN.md "State machines"), so they are durable, ordered with the data and replicated with it.
// Byte format: schema/control.md. A control batch is a record batch with attr_control set and one
// record per operation; its value is the encoded operation, its key is null.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/record_batch.h"
#include "schema/result.h"

namespace ferry::subscription {

enum class control_type : uint8_t {
  ack = 1,          // ranges of offsets acknowledged
  dead_letter = 2,  // one message moved to the dead-letter topic (counts as acknowledged)
  seek = 3,         // the cursor moves; everything below is acknowledged, nothing above
  cancel = 4,       // a delayed message is cancelled (sub_id 0: it is the partition's, not a subscription's)
};

struct control_op {
  control_type type = control_type::ack;
  uint64_t sub_id = 0;                              // the subscription's numeric id
  std::vector<std::pair<int64_t, int64_t>> ranges;  // ack: sorted, disjoint [from, to)
  int64_t offset = 0;                               // dead_letter, cancel: the message; seek: new cursor
  int64_t due = 0;                                  // cancel: the message's due time
  int32_t delivery_count = 0;                       // dead_letter
  std::string reason;                               // dead_letter
};

// One control batch holding `ops` (non-empty), with `timestamp` (broker clock, ms) on every record.
std::vector<std::byte> encode_control_batch(std::span<const control_op> ops, int64_t timestamp);

// Decodes every operation of a verified control batch (h.attributes has attr_control), in order.
// An operation of an unknown type or version is an error (corrupt_batch): a broker must not apply
// half of a state change it does not understand.
[[nodiscard]] result<void> decode_control_batch(std::span<const std::byte> batch,
                                                const std::function<void(const control_op&)>& fn);

// Delivery journal records (schema/control.md, "Delivery journal"): the offsets of one round of
// deliveries of one subscription on one partition, kept outside the log so that delivery counts
// survive a crash between checkpoints. `offsets` in any order, each at most once.
std::string encode_delivery_record(std::span<const int64_t> offsets);
// Calls fn(offset) for every offset of a record; corrupt_batch if it does not parse, its runs do
// not ascend, or it holds more than max_delivery_record_offsets offsets (a round of deliveries is
// at most one dispatcher window: window_limits::max_messages, which the dispatcher keeps below it).
inline constexpr uint64_t max_delivery_record_offsets = uint64_t{1} << 16;
[[nodiscard]] result<void> decode_delivery_record(std::string_view rec, const std::function<void(int64_t)>& fn);

inline bool is_control(const wire::batch_header& h) { return (h.attributes & wire::attr_control) != 0; }

}  // namespace ferry::subscription
