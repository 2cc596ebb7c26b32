// Fuzz target: record batch verification (schema/record_batch.md), the check every produced batch
// passes before the broker stores it and every fetched batch passes in the client.
//
// Input: one mode byte, then the batch bytes.
//   mode bit 0: fix up the batch's length field and CRC32C first, so that inputs get past the
//               CRC to the record decoder (a client can always send a batch with a valid CRC).
// Calls parse_batch_header, verify_batch (both overloads), for_each_record and stamp_batch, on a
// buffer of exactly the batch's size. Checks: a batch that verifies decodes with for_each_record
// into exactly record_count records at offsets base..base+n-1; stamping (what the partition does
// after the handler verified the batch) keeps it valid; and rebuilding the decoded records with
// batch_builder gives a batch that verifies and decodes to the same records.
#include <optional>
#include <string>
#include <vector>

#include "broker/base/assert.h"
#include "schema/record_batch.h"
#include "tests/fuzz/fuzz_input.h"

namespace w = ferry::wire;

namespace {

struct owned_record {
  int64_t offset = 0;
  int64_t timestamp = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  std::optional<int64_t> deliver_at;
  bool operator==(const owned_record&) const = default;
};

owned_record own(const w::record_view& r) {
  owned_record o;
  o.offset = r.offset;
  o.timestamp = r.timestamp;
  if (r.key) o.key = std::string(*r.key);
  if (r.value) o.value = std::string(*r.value);
  for (const auto& h : r.headers)
    o.headers.emplace_back(std::string(h.key),
                           h.value ? std::optional<std::string>(std::string(*h.value)) : std::nullopt);
  o.deliver_at = r.deliver_at;
  return o;
}

std::vector<owned_record> decode_all(std::span<const std::byte> batch) {
  std::vector<owned_record> out;
  auto r = w::for_each_record(batch, [&](const w::record_view& rv) {
    ferry::fuzz::touch(rv.key.value_or(std::string_view{}));
    ferry::fuzz::touch(rv.value.value_or(std::string_view{}));
    for (const auto& h : rv.headers) {
      ferry::fuzz::touch(h.key);
      ferry::fuzz::touch(h.value.value_or(std::string_view{}));
    }
    out.push_back(own(rv));
  });
  FERRY_ASSERT(r, "for_each_record failed on a batch that verify_batch accepted");
  return out;
}

// Timestamps the builder can take: it stores each as a difference from the first.
bool small(int64_t v) { return v > -(int64_t{1} << 61) && v < (int64_t{1} << 61); }

void check_rebuild(const w::batch_header& h, const std::vector<owned_record>& recs) {
  for (const auto& r : recs)
    if (!small(r.timestamp) || (r.deliver_at && !small(*r.deliver_at))) return;
  w::batch_builder b;
  b.set_control((h.attributes & w::attr_control) != 0);
  b.set_released((h.attributes & w::attr_released) != 0);
  for (const auto& r : recs) {
    std::vector<w::header_view> hv;
    for (const auto& [k, v] : r.headers) hv.push_back({k, v ? std::optional<std::string_view>(*v) : std::nullopt});
    b.add(r.key ? std::optional<std::string_view>(*r.key) : std::nullopt,
          r.value ? std::optional<std::string_view>(*r.value) : std::nullopt, hv, r.timestamp, r.deliver_at);
  }
  auto built = b.finish(h.producer_id, h.producer_epoch, h.base_sequence);
  std::vector<std::byte> copy(built.begin(), built.end());
  w::stamp_batch(copy, h.base_offset, h.leader_epoch, h.append_time);
  auto v = w::verify_batch(copy);
  FERRY_ASSERT(v, "a batch rebuilt from decoded records does not verify");
  FERRY_ASSERT(v->record_count == h.record_count, "rebuilt batch has another record count");
  FERRY_ASSERT(decode_all(copy) == recs, "rebuilt batch decodes to other records");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::fuzz::input in(data, size);
  uint8_t mode = in.u8();
  auto rest = in.rest();
  std::vector<std::byte> batch(rest.begin(), rest.end());  // exactly sized: ASan sees any overread
  if ((mode & 1) != 0 && batch.size() >= w::batch_header_size && batch.size() <= INT32_MAX) {
    w::put_le32(batch.data() + w::hdr::batch_length, static_cast<uint32_t>(batch.size()));
    w::put_le32(batch.data() + w::hdr::crc, w::compute_batch_crc(batch));
  }

  if (auto h = w::parse_batch_header(batch); h) {
    FERRY_ASSERT(h->record_count > 0 && h->last_offset_delta == h->record_count - 1,
                 "parse_batch_header accepted an inconsistent record count");
    // What the log, the partition (producer sequences) and the client compute from any header.
    ferry::fuzz::touch(std::to_string(h->last_offset()) + std::to_string(h->next_offset()) +
                       std::to_string(h->last_sequence()));
  }
  // The client's reader and the control decoder run for_each_record on batches they verified;
  // it must stay in bounds on any bytes all the same.
  (void)w::for_each_record(batch, [](const w::record_view& r) { ferry::fuzz::touch(r.value.value_or("")); });

  w::batch_delays delays;
  auto h = w::verify_batch(batch, &delays);
  auto h2 = w::verify_batch(batch);
  FERRY_ASSERT(static_cast<bool>(h) == static_cast<bool>(h2), "the two verify_batch overloads disagree");
  if (!h) return 0;
  FERRY_ASSERT(static_cast<size_t>(h->batch_length) == batch.size(), "verified batch length differs from its size");
  FERRY_ASSERT(delays.count >= 0 && delays.count <= h->record_count, "more delays than records");

  auto recs = decode_all(batch);
  FERRY_ASSERT(recs.size() == static_cast<size_t>(h->record_count), "record count differs from the header");
  for (size_t i = 0; i < recs.size(); ++i)
    FERRY_ASSERT(recs[i].offset == h->base_offset + static_cast<int64_t>(i), "record offsets are not base..base+n-1");

  // The partition stamps offset, epoch and append time into a verified batch: outside the CRC.
  std::vector<std::byte> stamped = batch;
  w::stamp_batch(stamped, 1000, 7, 1'700'000'000'000);
  auto s = w::verify_batch(stamped);
  FERRY_ASSERT(s && s->base_offset == 1000 && s->leader_epoch == 7, "a stamped batch no longer verifies");

  check_rebuild(*h, recs);
  return 0;
}
