#include "schema/record_batch.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "schema/crc32c.h"
#include "schema/endian.h"
#include "schema/varint.h"

namespace ferry::wire {
namespace {

void put_uvarint(std::vector<std::byte>& out, uint64_t v) { append_uvarint(out, v); }
void put_varint(std::vector<std::byte>& out, int64_t v) { append_uvarint(out, zigzag_encode(v)); }
void put_bytes(std::vector<std::byte>& out, std::string_view s) {
  auto p = reinterpret_cast<const std::byte*>(s.data());
  out.insert(out.end(), p, p + s.size());
}

struct reader {
  const std::byte* p;
  const std::byte* end;
  bool ok = true;

  uint64_t uvarint() { return read_uvarint(p, end, ok); }
  int64_t varint() { return zigzag_decode(uvarint()); }
  std::optional<std::string_view> bytes(int64_t len) {
    if (len < 0) return std::nullopt;
    if (len > end - p) {
      ok = false;
      return std::string_view{};
    }
    std::string_view s(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
    p += len;
    return s;
  }
};

}  // namespace

result<batch_header> parse_batch_header(std::span<const std::byte> b) {
  if (b.size() < batch_header_size) return fail(errc::corrupt_batch, "batch shorter than its header");
  const std::byte* p = b.data();
  batch_header h;
  h.base_offset = load_le<int64_t>(p + hdr::base_offset);
  h.batch_length = load_le<int32_t>(p + hdr::batch_length);
  h.leader_epoch = load_le<int32_t>(p + hdr::leader_epoch);
  h.append_time = load_le<int64_t>(p + hdr::append_time);
  h.crc = load_le<uint32_t>(p + hdr::crc);
  h.magic = load_le<uint8_t>(p + hdr::magic);
  h.attributes = load_le<uint16_t>(p + hdr::attributes);
  h.last_offset_delta = load_le<int32_t>(p + hdr::last_offset_delta);
  h.first_timestamp = load_le<int64_t>(p + hdr::first_timestamp);
  h.max_timestamp = load_le<int64_t>(p + hdr::max_timestamp);
  h.producer_id = load_le<int64_t>(p + hdr::producer_id);
  h.producer_epoch = load_le<int16_t>(p + hdr::producer_epoch);
  h.base_sequence = load_le<int32_t>(p + hdr::base_sequence);
  h.record_count = load_le<int32_t>(p + hdr::record_count);
  if (h.magic != batch_magic) return fail(errc::corrupt_batch, "unknown batch magic " + std::to_string(h.magic));
  if (h.batch_length < static_cast<int32_t>(batch_header_size))
    return fail(errc::corrupt_batch, "batch length " + std::to_string(h.batch_length) + " below header size");
  if (h.record_count <= 0 || h.last_offset_delta != h.record_count - 1)
    return fail(errc::corrupt_batch, "batch record count " + std::to_string(h.record_count) +
                                         " does not match last offset delta " + std::to_string(h.last_offset_delta));
  return h;
}

uint32_t compute_batch_crc(std::span<const std::byte> batch) noexcept {
  return crc32c(batch.data() + hdr::magic, batch.size() - hdr::magic);
}

result<batch_header> verify_batch(std::span<const std::byte> batch) { return verify_batch(batch, nullptr); }

bool is_reserved_header(std::string_view key) noexcept {
  if (!key.starts_with(reserved_header_prefix)) return false;
  for (auto allowed : client_settable_headers)
    if (key == allowed) return false;
  return true;
}

namespace {
enum class header_rule { any, no_reserved };

result<batch_header> verify(std::span<const std::byte> batch, batch_delays* delays, header_rule rule) {
  auto h = parse_batch_header(batch);
  if (!h) return h.error();
  if (static_cast<size_t>(h->batch_length) != batch.size())
    return fail(errc::corrupt_batch, "batch length field " + std::to_string(h->batch_length) + " but " +
                                         std::to_string(batch.size()) + " bytes");
  if (compute_batch_crc(batch) != h->crc) return fail(errc::corrupt_batch, "batch CRC32C mismatch");
  if ((h->attributes & 0x7) != 0) return fail(errc::corrupt_batch, "compressed batches are not supported yet");
  // Walk the records: a batch with a valid CRC can still be malformed if a client built it wrong.
  size_t pos = batch_header_size;
  record_view r;
  for (int32_t i = 0; i < h->record_count; ++i) {
    auto n = detail::decode_record(batch.subspan(pos), *h, r);
    if (!n) return n.error();
    if (r.offset != detail::wrapping_add(h->base_offset, int64_t{i}))
      return fail(errc::corrupt_batch, "record offset deltas are not 0..n-1");
    if (rule == header_rule::no_reserved) {
      for (auto& hv : r.headers)
        if (is_reserved_header(hv.key))
          return fail(errc::invalid_argument, "record " + std::to_string(i) + " has header '" + std::string(hv.key) +
                                                  "': names starting with 'ferry-' are reserved for the broker");
    }
    if (delays && r.deliver_at) {
      // The field as written: a delay (relative batches) or an absolute time.
      int64_t raw =
          (h->attributes & attr_delay_relative) ? detail::wrapping_sub(*r.deliver_at, h->append_time) : *r.deliver_at;
      ++delays->count;
      delays->min = std::min(delays->min, raw);
      delays->max = std::max(delays->max, raw);
    }
    pos += *n;
  }
  if (pos != batch.size()) return fail(errc::corrupt_batch, "trailing bytes after the last record");
  return h;
}
}  // namespace

result<batch_header> verify_batch(std::span<const std::byte> batch, batch_delays* delays) {
  return verify(batch, delays, header_rule::any);
}

result<batch_header> verify_produced_batch(std::span<const std::byte> batch, batch_delays* delays) {
  return verify(batch, delays, header_rule::no_reserved);
}

void stamp_batch(std::span<std::byte> batch, int64_t base_offset, int32_t leader_epoch, int64_t append_time) noexcept {
  store_le<int64_t>(batch.data() + hdr::base_offset, base_offset);
  store_le<int32_t>(batch.data() + hdr::leader_epoch, leader_epoch);
  store_le<int64_t>(batch.data() + hdr::append_time, append_time);
}

namespace detail {
result<size_t> decode_record(std::span<const std::byte> rest, const batch_header& h, record_view& out) {
  reader rd{rest.data(), rest.data() + rest.size()};
  uint64_t len = rd.uvarint();
  if (!rd.ok || len > static_cast<uint64_t>(rd.end - rd.p))
    return fail(errc::corrupt_batch, "record length out of bounds");
  const std::byte* rec_end = rd.p + len;
  reader r{rd.p, rec_end};
  auto attrs = static_cast<uint8_t>(r.p < r.end ? *r.p++ : (r.ok = false, std::byte{0}));
  out.timestamp = wrapping_add(h.first_timestamp, r.varint());
  out.offset = wrapping_add(h.base_offset, static_cast<int64_t>(r.uvarint()));
  out.key = r.bytes(r.varint());
  out.value = r.bytes(r.varint());
  uint64_t nh = r.uvarint();
  out.headers.clear();
  if (nh > static_cast<uint64_t>(r.end - r.p)) return fail(errc::corrupt_batch, "header count out of bounds");
  for (uint64_t i = 0; i < nh && r.ok; ++i) {
    auto k = r.bytes(static_cast<int64_t>(r.uvarint()));
    auto v = r.bytes(r.varint());
    out.headers.push_back(header_view{k.value_or(std::string_view{}), v});
  }
  out.deliver_at.reset();
  if (attrs & 1) {
    int64_t d = r.varint();
    out.deliver_at = (h.attributes & attr_delay_relative) ? wrapping_add(h.append_time, d) : d;
  }
  if (!r.ok || r.p != rec_end) return fail(errc::corrupt_batch, "record fields do not match the record length");
  return static_cast<size_t>(rec_end - rest.data());
}
}  // namespace detail

batch_builder::batch_builder() { reset(); }

void batch_builder::reset() {
  buf_.assign(batch_header_size, std::byte{0});
  count_ = 0;
  first_ts_ = 0;
  max_ts_ = 0;
  relative_delays_ = false;
  control_ = false;
  released_ = false;
}

void batch_builder::add(std::optional<std::string_view> key, std::optional<std::string_view> value,
                        std::span<const header_view> headers, int64_t timestamp, std::optional<int64_t> deliver_at) {
  if (count_ == 0) first_ts_ = timestamp;
  max_ts_ = std::max(max_ts_, timestamp);
  rec_.clear();
  rec_.push_back(static_cast<std::byte>(deliver_at ? 1 : 0));
  put_varint(rec_, timestamp - first_ts_);
  put_uvarint(rec_, static_cast<uint64_t>(count_));
  if (key) {
    put_varint(rec_, static_cast<int64_t>(key->size()));
    put_bytes(rec_, *key);
  } else {
    put_varint(rec_, -1);
  }
  if (value) {
    put_varint(rec_, static_cast<int64_t>(value->size()));
    put_bytes(rec_, *value);
  } else {
    put_varint(rec_, -1);
  }
  put_uvarint(rec_, headers.size());
  for (const auto& hv : headers) {
    put_uvarint(rec_, hv.key.size());
    put_bytes(rec_, hv.key);
    if (hv.value) {
      put_varint(rec_, static_cast<int64_t>(hv.value->size()));
      put_bytes(rec_, *hv.value);
    } else {
      put_varint(rec_, -1);
    }
  }
  if (deliver_at) put_varint(rec_, *deliver_at);
  put_uvarint(buf_, rec_.size());
  buf_.insert(buf_.end(), rec_.begin(), rec_.end());
  ++count_;
}

std::span<const std::byte> batch_builder::finish(int64_t producer_id, int16_t producer_epoch, int32_t base_sequence) {
  std::byte* p = buf_.data();
  store_le<int64_t>(p + hdr::base_offset, 0);
  store_le<int32_t>(p + hdr::batch_length, static_cast<int32_t>(buf_.size()));
  store_le<int32_t>(p + hdr::leader_epoch, -1);
  store_le<int64_t>(p + hdr::append_time, -1);
  store_le<uint8_t>(p + hdr::magic, batch_magic);
  store_le<uint8_t>(p + hdr::magic + 1, 0);
  store_le<uint16_t>(p + hdr::attributes,
                     static_cast<uint16_t>((relative_delays_ ? attr_delay_relative : 0) |
                                           (control_ ? attr_control : 0) | (released_ ? attr_released : 0)));
  store_le<int32_t>(p + hdr::last_offset_delta, count_ - 1);
  store_le<int64_t>(p + hdr::first_timestamp, first_ts_);
  store_le<int64_t>(p + hdr::max_timestamp, max_ts_);
  store_le<int64_t>(p + hdr::producer_id, producer_id);
  store_le<int16_t>(p + hdr::producer_epoch, producer_epoch);
  store_le<int32_t>(p + hdr::base_sequence, base_sequence);
  store_le<int32_t>(p + hdr::record_count, count_);
  store_le<uint32_t>(p + hdr::crc, compute_batch_crc(buf_));
  return buf_;
}

}  // namespace ferry::wire
