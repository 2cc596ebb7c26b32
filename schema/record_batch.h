#pragma once
// Record batches: the unit the producer sends, the log stores and readers get back, byte for
// byte. Format: schema/record_batch.md. Shared by the broker and the client library.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "schema/endian.h"
#include "schema/result.h"

namespace ferry::wire {

inline constexpr size_t batch_header_size = 70;
inline constexpr uint8_t batch_magic = 1;

// Field offsets inside the header (little-endian).
namespace hdr {
inline constexpr size_t base_offset = 0;
inline constexpr size_t batch_length = 8;
inline constexpr size_t leader_epoch = 12;
inline constexpr size_t append_time = 16;
inline constexpr size_t crc = 24;
inline constexpr size_t magic = 28;  // the CRC covers [magic, batch_length)
inline constexpr size_t attributes = 30;
inline constexpr size_t last_offset_delta = 32;
inline constexpr size_t first_timestamp = 36;
inline constexpr size_t max_timestamp = 44;
inline constexpr size_t producer_id = 52;
inline constexpr size_t producer_epoch = 60;
inline constexpr size_t base_sequence = 62;
inline constexpr size_t record_count = 66;
}  // namespace hdr

// Batch attribute bits.
inline constexpr uint16_t attr_delay_relative = 1u << 3;  // deliver_at fields are delays from append_time
// A control batch (subscription acks, dead-letter moves, seeks; schema/control.md), written by the
// broker itself. Producers may not set it; readers of the raw log skip such batches.
inline constexpr uint16_t attr_control = 1u << 4;
// Delayed messages the broker released (re-appended) when they fell due (schema/record_batch.md,
// "Delayed messages"). Producers may not set it; consumers get these records like any others.
inline constexpr uint16_t attr_released = 1u << 5;

namespace detail {
// Two's complement sums: offsets, sequences and times are header fields plus deltas, all read from
// untrusted bytes (a client's batch, a damaged disk). A hostile pair then gives a value the checks
// reject instead of a signed overflow, which is undefined behaviour.
constexpr int64_t wrapping_add(int64_t a, int64_t b) noexcept {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
constexpr int64_t wrapping_sub(int64_t a, int64_t b) noexcept {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
constexpr int32_t wrapping_add(int32_t a, int32_t b) noexcept {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
}  // namespace detail

// Producer sequences run from 0 to INT32_MAX and then wrap to 0, as Kafka's do. `seq` + `n`
// on that circle (negative inputs, never valid sequences, just wrap).
constexpr int32_t increment_sequence(int32_t seq, int32_t n) noexcept {
  if (seq >= 0 && n >= 0 && seq > INT32_MAX - n) return n - (INT32_MAX - seq) - 1;
  return detail::wrapping_add(seq, n);
}
// `seq` - `n` on the circle (seq >= 0, 0 <= n).
constexpr int32_t decrement_sequence(int32_t seq, int32_t n) noexcept {
  int64_t v = int64_t{seq} - n;
  if (v < 0) v += int64_t{1} << 31;
  return static_cast<int32_t>(v);
}
// How far `to` is after `from` on the circle, in [0, 2^31).
constexpr int64_t sequence_distance(int32_t from, int32_t to) noexcept {
  int64_t d = int64_t{to} - from;
  if (d < 0) d += int64_t{1} << 31;
  return d;
}

struct batch_header {
  int64_t base_offset = 0;
  int32_t batch_length = 0;
  int32_t leader_epoch = 0;
  int64_t append_time = -1;
  uint32_t crc = 0;
  uint8_t magic = batch_magic;
  uint16_t attributes = 0;
  int32_t last_offset_delta = 0;
  int64_t first_timestamp = 0;
  int64_t max_timestamp = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = 0;
  int32_t base_sequence = -1;
  int32_t record_count = 0;

  int64_t last_offset() const { return detail::wrapping_add(base_offset, int64_t{last_offset_delta}); }
  int64_t next_offset() const { return detail::wrapping_add(last_offset(), int64_t{1}); }
  int32_t last_sequence() const { return increment_sequence(base_sequence, last_offset_delta); }
};

// Reads the header fields; checks only that `bytes` holds a full header with a sane length
// and magic (batch_length in [header, bytes.size()] is NOT required: see read_batch_length).
[[nodiscard]] result<batch_header> parse_batch_header(std::span<const std::byte> bytes);

// Full check of one complete batch (bytes.size() == batch_length): header, CRC32C, and that the
// records parse and their count and offset deltas match the header. errc::corrupt_batch if not.
[[nodiscard]] result<batch_header> verify_batch(std::span<const std::byte> batch);

// The deliver_at fields of a batch as written by the producer: delays in ms (batches with
// attr_delay_relative) or absolute times, of `count` records.
struct batch_delays {
  int32_t count = 0;
  int64_t min = INT64_MAX;
  int64_t max = INT64_MIN;
};
// verify_batch, also collecting the deliver_at fields into `delays` (if not null).
[[nodiscard]] result<batch_header> verify_batch(std::span<const std::byte> batch, batch_delays* delays);

// Header names under the "ferry-" prefix are the broker's (dead letters, released delayed
// messages): producers may not set them (schema/wire.md "Reserved headers"), except the few in
// client_settable_headers.
inline constexpr std::string_view reserved_header_prefix = "ferry-";
inline constexpr std::string_view client_settable_headers[] = {"ferry-replayed-from"};
bool is_reserved_header(std::string_view key) noexcept;

// verify_batch for a batch from a producer: also refuses (errc::invalid_argument) a record with a
// reserved header name, and collects the deliver_at fields into `delays` (if not null).
[[nodiscard]] result<batch_header> verify_produced_batch(std::span<const std::byte> batch, batch_delays* delays);

// CRC32C over [magic, end) of a complete batch.
uint32_t compute_batch_crc(std::span<const std::byte> batch) noexcept;

// The broker stamps these fields (outside the CRC) on append.
void stamp_batch(std::span<std::byte> batch, int64_t base_offset, int32_t leader_epoch, int64_t append_time) noexcept;

struct header_view {
  std::string_view key;
  std::optional<std::string_view> value;
};

// One decoded record; the views point into the batch bytes.
struct record_view {
  int64_t offset = 0;
  int64_t timestamp = 0;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  std::vector<header_view> headers;
  std::optional<int64_t> deliver_at;  // absolute ms (already resolved if the batch had relative delays)
};

// Decodes every record of a verified batch, calling `fn(const record_view&)` in offset order.
template <class Fn>
[[nodiscard]] result<void> for_each_record(std::span<const std::byte> batch, Fn&& fn);

// Builds batches. Reuses its buffer between batches (call reset()).
class batch_builder {
 public:
  batch_builder();
  void reset();
  // Appends one record. `timestamp` is the producer's clock in ms. `deliver_at` is absolute ms,
  // or a relative delay when the batch is built with relative delays (set_relative_delays).
  void add(std::optional<std::string_view> key, std::optional<std::string_view> value,
           std::span<const header_view> headers, int64_t timestamp, std::optional<int64_t> deliver_at = std::nullopt);
  void set_relative_delays(bool relative) { relative_delays_ = relative; }
  // Marks the batch as a control batch (attr_control): only the broker builds those.
  void set_control(bool control) { control_ = control; }
  // Marks the batch as released delayed messages (attr_released): only the broker builds those.
  void set_released(bool released) { released_ = released; }
  // Bytes the batch would have if finished now.
  size_t size_bytes() const { return buf_.size(); }
  int32_t record_count() const { return count_; }
  // Fills in the header and CRC; the returned span is valid until the next reset()/add().
  std::span<const std::byte> finish(int64_t producer_id, int16_t producer_epoch, int32_t base_sequence);

 private:
  std::vector<std::byte> buf_;
  std::vector<std::byte> rec_;
  int32_t count_ = 0;
  int64_t first_ts_ = 0;
  int64_t max_ts_ = 0;
  bool relative_delays_ = false;
  bool control_ = false;
  bool released_ = false;
};

namespace detail {
// Decodes the record at `p`; returns bytes consumed or an error.
[[nodiscard]] result<size_t> decode_record(std::span<const std::byte> rest, const batch_header& h, record_view& out);
}  // namespace detail

template <class Fn>
result<void> for_each_record(std::span<const std::byte> batch, Fn&& fn) {
  auto h = parse_batch_header(batch);
  if (!h) return h.error();
  size_t pos = batch_header_size;
  size_t end = static_cast<size_t>(h->batch_length);
  if (end > batch.size()) return fail(errc::corrupt_batch, "batch shorter than its length field");
  record_view r;
  for (int32_t i = 0; i < h->record_count; ++i) {
    auto n = detail::decode_record(batch.subspan(pos, end - pos), *h, r);
    if (!n) return n.error();
    pos += *n;
    fn(static_cast<const record_view&>(r));
  }
  return {};
}

}  // namespace ferry::wire
