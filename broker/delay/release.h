#pragma once
// The released copy of a delayed message (schema/delay.md "Releases"): when a delayed message falls
// due, the broker appends a copy of it to the partition's log, in a batch marked attr_released,
// whose records carry the original's key, value, headers, timestamp and due time, plus the header
// "ferry-delayed-id: topic/partition/offset" naming the original. That format is written and parsed
// here and nowhere else; so is the other direction: which records of a producer's batch are
// delayed messages.
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "broker/delay/delay_index.h"
#include "schema/record_batch.h"

namespace ferry::delay {

inline constexpr std::string_view delayed_id_header = "ferry-delayed-id";

// Adds the released copy of `m` to a batch under construction (b.set_released(true) first);
// `id_prefix` is "topic/partition/".
void add_release_record(wire::batch_builder& b, const pending_message& m, std::string_view id_prefix);

// The (due, offset) of every original named by a release batch (attr_released), in record order.
// Records without a well-formed header name nothing.
std::vector<delay_key> released_keys(std::span<const std::byte> batch);

// The delayed messages of a stamped producer batch: records due later than the batch's append time
// (a due time at or before it is an ordinary message). None for control and release batches.
std::vector<pending_message> delayed_records(std::span<const std::byte> batch);

}  // namespace ferry::delay
