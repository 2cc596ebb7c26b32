#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "schema/frame.h"
#include "schema/record_batch.h"

namespace ferry::wire {
namespace {

std::vector<std::byte> copy(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

TEST(record_batch, round_trips_keys_values_headers_and_deliver_at) {
  batch_builder b;
  header_view hs[] = {{"h1", std::string_view("v1")}, {"h2", std::nullopt}};
  b.add(std::string_view("k1"), std::string_view("value one"), hs, 1000);
  b.add(std::nullopt, std::string_view(""), {}, 1005, 99999);
  b.add(std::string_view(""), std::nullopt, {}, 999);
  auto bytes = copy(b.finish(42, 0, 7));
  stamp_batch(bytes, 100, 3, 5000);
  auto h = verify_batch(bytes);
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->base_offset, 100);
  EXPECT_EQ(h->record_count, 3);
  EXPECT_EQ(h->producer_id, 42);
  EXPECT_EQ(h->base_sequence, 7);
  EXPECT_EQ(h->last_sequence(), 9);
  EXPECT_EQ(h->max_timestamp, 1005);
  EXPECT_EQ(h->append_time, 5000);
  std::vector<record_view> got;
  ASSERT_TRUE(for_each_record(bytes, [&](const record_view& r) { got.push_back(r); }));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].offset, 100);
  EXPECT_EQ(*got[0].key, "k1");
  EXPECT_EQ(*got[0].value, "value one");
  ASSERT_EQ(got[0].headers.size(), 2u);
  EXPECT_EQ(got[0].headers[0].key, "h1");
  EXPECT_EQ(*got[0].headers[0].value, "v1");
  EXPECT_FALSE(got[0].headers[1].value);
  EXPECT_FALSE(got[1].key);
  EXPECT_EQ(*got[1].deliver_at, 99999);
  EXPECT_EQ(got[1].timestamp, 1005);
  EXPECT_EQ(got[2].timestamp, 999);
  EXPECT_FALSE(got[2].value);
  EXPECT_EQ(got[2].offset, 102);
}

TEST(record_batch, relative_delay_resolves_against_append_time) {
  batch_builder b;
  b.set_relative_delays(true);
  b.add(std::nullopt, std::string_view("x"), {}, 1, 60000);
  auto bytes = copy(b.finish(-1, 0, -1));
  stamp_batch(bytes, 0, 0, 1'000'000);
  ASSERT_TRUE(verify_batch(bytes));
  int64_t due = 0;
  ASSERT_TRUE(for_each_record(bytes, [&](const record_view& r) { due = *r.deliver_at; }));
  EXPECT_EQ(due, 1'060'000);
}

TEST(record_batch, stamping_keeps_crc_valid_and_any_flipped_byte_is_caught) {
  batch_builder b;
  for (int i = 0; i < 10; ++i) b.add(std::string_view("key"), std::string_view("some value bytes"), {}, i);
  auto bytes = copy(b.finish(1, 0, 0));
  stamp_batch(bytes, 123456, 9, 77);
  ASSERT_TRUE(verify_batch(bytes));
  for (size_t i = hdr::crc; i < bytes.size(); ++i) {
    auto bad = bytes;
    bad[i] ^= std::byte{0x01};
    auto r = verify_batch(bad);
    ASSERT_FALSE(r) << "flip at " << i << " not detected";
    EXPECT_EQ(r.error().code, errc::corrupt_batch);
  }
}

TEST(record_batch, truncated_or_garbage_batches_are_rejected) {
  batch_builder b;
  b.add(std::string_view("k"), std::string_view("v"), {}, 1);
  auto bytes = copy(b.finish(1, 0, 0));
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(verify_batch(std::span(bytes).first(n))) << n;
  }
  std::vector<std::byte> junk(200, std::byte{0x5A});
  EXPECT_FALSE(verify_batch(junk));
}

TEST(record_batch, well_formed_crc_but_lying_record_count_is_rejected) {
  batch_builder b;
  b.add(std::string_view("k"), std::string_view("v"), {}, 1);
  b.add(std::string_view("k"), std::string_view("v"), {}, 1);
  auto bytes = copy(b.finish(1, 0, 0));
  int32_t three = 3, two = 2;
  std::memcpy(bytes.data() + hdr::record_count, &three, 4);
  std::memcpy(bytes.data() + hdr::last_offset_delta, &two, 4);
  uint32_t crc = compute_batch_crc(bytes);
  std::memcpy(bytes.data() + hdr::crc, &crc, 4);
  EXPECT_FALSE(verify_batch(bytes));
}

TEST(frame, request_round_trip_and_garbage_is_malformed) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = CreateDescribeTopicRequestDirect(fbb, "orders");
  auto req = CreateRequest(fbb, 1, 77, RequestBody::DescribeTopicRequest, body.Union());
  finish_request(fbb, req);
  auto span = fbb.GetBufferSpan();
  auto all = std::as_bytes(std::span(span.data(), span.size()));
  ASSERT_EQ(get_le32(all.data()), all.size() - 4);
  auto r = decode_request(all);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)->correlation_id(), 77u);
  EXPECT_EQ((*r)->body_as_DescribeTopicRequest()->name()->str(), "orders");
  // A truncated frame is refused by the length check; with a fixed-up prefix the verifier refuses
  // it unless only trailing padding was cut, and then it still reads the same request.
  for (size_t n = 0; n < all.size(); ++n) {
    std::vector<std::byte> cut(all.begin(), all.begin() + n);
    EXPECT_FALSE(decode_request(cut)) << n;
    if (n < 4) continue;
    put_le32(cut.data(), static_cast<uint32_t>(n - 4));
    auto t = decode_request(cut);
    if (t) {
      EXPECT_EQ((*t)->body_as_DescribeTopicRequest()->name()->str(), "orders") << n;
    }
  }
  std::vector<std::byte> junk(64, std::byte{0xFF});
  put_le32(junk.data(), 60);
  auto bad = decode_request(junk);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::malformed_frame);
}

}  // namespace
}  // namespace ferry::wire

namespace ferry::wire {
namespace {

// Random bytes and randomly mutated valid frames never crash the decoders; whatever verifies can
// be walked without reading out of bounds (ASan builds check that part).
TEST(frame, random_and_mutated_frames_never_crash_decoding) {
  std::mt19937_64 rng(12345);
  flatbuffers::FlatBufferBuilder fbb;
  batch_builder b;
  b.add(std::string_view("k"), std::string_view("v"), {}, 1);
  auto batch = b.finish(1, 0, 0);
  auto recs = fbb.CreateVector(reinterpret_cast<const uint8_t*>(batch.data()), batch.size());
  std::vector<flatbuffers::Offset<ProducePartition>> parts{CreateProducePartition(fbb, 0, recs)};
  auto body = CreateProduceRequestDirect(fbb, "t", Acks::Durable, 1000, &parts);
  finish_request(fbb, CreateRequest(fbb, 1, 5, RequestBody::ProduceRequest, body.Union()));
  auto valid = std::as_bytes(std::span(fbb.GetBufferSpan().data(), fbb.GetBufferSpan().size()));
  int verified = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<std::byte> f;
    if (iter % 2 == 0) {
      f.assign(valid.begin(), valid.end());
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) f[4 + rng() % (f.size() - 4)] = static_cast<std::byte>(rng());
    } else {
      f.resize(4 + rng() % 200);
      for (auto& x : f) x = static_cast<std::byte>(rng());
      put_le32(f.data(), static_cast<uint32_t>(f.size() - 4));
    }
    auto r = decode_request(f);
    if (!r) continue;
    ++verified;
    if (auto* p = (*r)->body_as_ProduceRequest(); p && p->partitions()) {
      for (auto pp : *p->partitions()) {
        if (pp->records() == nullptr) continue;
        auto bytes = std::as_bytes(std::span(pp->records()->data(), pp->records()->size()));
        (void)verify_batch(bytes);
      }
    }
  }
  EXPECT_GT(verified, 0);  // some mutations land in value bytes and still verify
}

}  // namespace
}  // namespace ferry::wire
