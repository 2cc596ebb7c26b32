#include "broker/peer/codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "schema/endian.h"

namespace ferry::peer {
namespace {

using consensus::entry;
using consensus::entry_kind;
using consensus::message;
using consensus::msg_type;
using consensus::time_point;

constexpr node_id a{1};
constexpr node_id b{2};

// An 8-byte aligned copy of `bytes`, as the transport's read buffers are.
struct aligned_frame {
  std::vector<uint64_t> storage;
  size_t n = 0;
  explicit aligned_frame(std::span<const std::byte> bytes) : storage((bytes.size() + 7) / 8), n(bytes.size()) {
    if (n > 0) std::memcpy(storage.data(), bytes.data(), n);
  }
  std::span<const std::byte> view() const { return {reinterpret_cast<const std::byte*>(storage.data()), n}; }
};

result<decoded_frame> decode(const frame& f) { return decode_frame(aligned_frame(f.bytes()).view(), a, b); }

void expect_same(const message& x, const message& y) {
  EXPECT_EQ(x.type, y.type);
  EXPECT_EQ(x.from, y.from);
  EXPECT_EQ(x.to, y.to);
  EXPECT_EQ(x.term, y.term);
  EXPECT_EQ(x.last_index, y.last_index);
  EXPECT_EQ(x.last_term, y.last_term);
  EXPECT_EQ(x.transfer, y.transfer);
  EXPECT_EQ(x.granted, y.granted);
  EXPECT_EQ(x.prev_index, y.prev_index);
  EXPECT_EQ(x.prev_term, y.prev_term);
  EXPECT_EQ(x.entries, y.entries);
  EXPECT_EQ(x.commit, y.commit);
  EXPECT_EQ(x.sent_at, y.sent_at);
  EXPECT_EQ(x.match, y.match);
  EXPECT_EQ(x.durable, y.durable);
  EXPECT_EQ(x.conflict_term, y.conflict_term);
  EXPECT_EQ(x.conflict_index, y.conflict_index);
  EXPECT_EQ(x.config, y.config);
}

message base(msg_type t) {
  message m;
  m.type = t;
  m.from = a;
  m.to = b;
  m.term = 7;
  return m;
}

// One message of every type, each with every field its type uses set to a distinct non-default
// value (and the fields it does not use left at their defaults).
std::vector<message> every_type() {
  std::vector<message> out;
  auto m = base(msg_type::pre_vote);
  m.term = 8;
  m.last_index = 41;
  m.last_term = 6;
  out.push_back(m);

  m = base(msg_type::pre_vote_reply);
  m.term = 8;
  m.granted = true;
  out.push_back(m);

  m = base(msg_type::vote);
  m.last_index = 41;
  m.last_term = 6;
  m.transfer = true;
  out.push_back(m);

  m = base(msg_type::vote_reply);
  m.granted = true;
  out.push_back(m);

  m = base(msg_type::append);
  m.prev_index = 40;
  m.prev_term = 6;
  m.entries = {entry{41, 7, entry_kind::noop, ""}, entry{42, 7, entry_kind::normal, std::string("a\0b", 3)},
               entry{43, 7, entry_kind::config, "v=1,2,3;o=;l=4"}};
  m.commit = 39;
  m.sent_at = time_point(123'456'789);
  out.push_back(m);

  m = base(msg_type::append_reply);
  m.granted = false;
  m.prev_index = 40;
  m.sent_at = time_point(123'456'789);
  m.match = 30;
  m.durable = 29;
  m.conflict_term = 5;
  m.conflict_index = 31;
  out.push_back(m);

  m = base(msg_type::heartbeat);
  m.commit = 42;
  m.sent_at = time_point(987'654'321);
  out.push_back(m);

  m = base(msg_type::heartbeat_reply);
  m.sent_at = time_point(987'654'321);
  m.match = 43;
  m.durable = 42;
  out.push_back(m);

  m = base(msg_type::timeout_now);
  out.push_back(m);

  m = base(msg_type::install_snapshot);
  m.prev_index = 1000;
  m.prev_term = 6;
  m.commit = 1000;
  m.sent_at = time_point(55);
  m.config.voters = {node_id{1}, node_id{2}, node_id{3}};
  m.config.outgoing = {node_id{1}, node_id{2}};
  m.config.learners = {node_id{4}};
  out.push_back(m);
  return out;
}

std::vector<addressed_message> decode_all(const std::vector<frame>& frames) {
  std::vector<addressed_message> out;
  for (const auto& f : frames) {
    auto d = decode(f);
    EXPECT_TRUE(d) << (d ? "" : d.error().to_string());
    if (!d) continue;
    EXPECT_EQ(d->type, decoded_frame::kind::messages);
    for (auto& m : d->messages) out.push_back(std::move(m));
  }
  return out;
}

TEST(peer_codec, every_message_type_round_trips_with_the_fields_it_uses) {
  const auto msgs = every_type();
  for (const auto& m : msgs) {
    SCOPED_TRACE(consensus::msg_type_name(m.type));
    std::vector<addressed_message> in{{uint64_t{0xABCDEF0123}, m}};
    auto frames = encode_messages(in);
    ASSERT_EQ(frames.size(), 1U);
    EXPECT_EQ(frames[0].lane(), lane_of(m.type));
    auto out = decode_all(frames);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].group, 0xABCDEF0123U);
    expect_same(out[0].msg, m);
  }
}

TEST(peer_codec, a_mixed_batch_round_trips_and_keeps_order_within_each_lane) {
  std::vector<addressed_message> in;
  uint64_t g = 1;
  for (int round = 0; round < 3; ++round)
    for (const auto& m : every_type()) in.push_back({g++, m});
  auto frames = encode_messages(in);
  // Control frames first, bulk last.
  bool seen_bulk = false;
  for (const auto& f : frames) {
    if (f.lane() == lane::bulk) seen_bulk = true;
    EXPECT_FALSE(seen_bulk && f.lane() == lane::control) << "a control frame after a bulk frame";
  }
  auto out = decode_all(frames);
  ASSERT_EQ(out.size(), in.size());
  // Every input message comes out exactly once, and each lane keeps its input order.
  for (const auto& i : in) {
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& o) { return o.group == i.group; });
    ASSERT_NE(it, out.end());
    expect_same(it->msg, i.msg);
  }
  uint64_t last_bulk = 0;
  for (const auto& o : out) {
    if (lane_of(o.msg.type) != lane::bulk) continue;
    EXPECT_GT(o.group, last_bulk);
    last_bulk = o.group;
  }
}

TEST(peer_codec, fields_a_type_does_not_use_are_not_sent) {
  message m = base(msg_type::vote_reply);
  m.granted = true;
  m.entries = {entry{1, 1, entry_kind::normal, "x"}};
  m.commit = 9;
  m.match = 9;
  m.config.voters = {node_id{1}};
  m.sent_at = time_point(5);
  std::vector<addressed_message> in{{1, m}};
  auto out = decode_all(encode_messages(in));
  ASSERT_EQ(out.size(), 1U);
  EXPECT_TRUE(out[0].msg.granted);
  EXPECT_TRUE(out[0].msg.entries.empty());
  EXPECT_EQ(out[0].msg.commit, 0U);
  EXPECT_EQ(out[0].msg.match, 0U);
  EXPECT_TRUE(out[0].msg.config.voters.empty());
  EXPECT_EQ(out[0].msg.sent_at, consensus::no_time);
}

TEST(peer_codec, an_unset_send_time_survives_the_round_trip) {
  // A stale-term heartbeat reply and a synced() append_reply carry no send time.
  message r = base(msg_type::heartbeat_reply);
  message ar = base(msg_type::append_reply);
  ar.granted = true;
  ASSERT_EQ(r.sent_at, consensus::no_time);
  std::vector<addressed_message> in{{1, r}, {2, ar}};
  auto out = decode_all(encode_messages(in));
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(out[0].msg.sent_at, consensus::no_time);
  EXPECT_EQ(out[1].msg.sent_at, consensus::no_time);
}

// 1,000 idle groups led by one broker, all followed by the other: one tick's heartbeats are one
// frame of a few bytes per group, and so are the replies.
TEST(peer_codec, heartbeats_of_a_thousand_idle_groups_are_one_small_frame) {
  constexpr size_t groups = 1000;
  std::vector<addressed_message> beats;
  std::vector<addressed_message> replies;
  for (uint64_t g = 0; g < groups; ++g) {
    message m = base(msg_type::heartbeat);
    m.term = 3 + g % 5;
    m.commit = 1000 + g;
    m.sent_at = time_point(77'000'000);
    beats.push_back({g, m});
    message r = base(msg_type::heartbeat_reply);
    r.term = m.term;
    r.sent_at = m.sent_at;
    r.match = r.durable = m.commit;
    replies.push_back({g, r});
  }
  auto hb = encode_messages(beats);
  ASSERT_EQ(hb.size(), 1U);
  EXPECT_EQ(hb[0].lane(), lane::control);
  EXPECT_EQ(hb[0].messages(), groups);
  const double per_group = static_cast<double>(hb[0].size()) / groups;
  std::printf("heartbeat frame: %zu bytes for %zu groups, %.2f bytes per group\n", hb[0].size(), groups, per_group);
  EXPECT_LT(per_group, 32.0);

  auto hr = encode_messages(replies);
  ASSERT_EQ(hr.size(), 1U);
  const double per_reply = static_cast<double>(hr[0].size()) / groups;
  std::printf("heartbeat reply frame: %zu bytes for %zu groups, %.2f bytes per group\n", hr[0].size(), groups,
              per_reply);
  EXPECT_LT(per_reply, 40.0);

  auto out = decode_all(hb);
  ASSERT_EQ(out.size(), groups);
  for (size_t i = 0; i < groups; ++i) {
    EXPECT_EQ(out[i].group, beats[i].group);
    expect_same(out[i].msg, beats[i].msg);
  }
  out = decode_all(hr);
  ASSERT_EQ(out.size(), groups);
  for (size_t i = 0; i < groups; ++i) expect_same(out[i].msg, replies[i].msg);
}

TEST(peer_codec, heartbeats_with_different_send_times_go_in_one_frame_per_send_time) {
  std::vector<addressed_message> in;
  for (uint64_t g = 0; g < 10; ++g) {
    message m = base(msg_type::heartbeat);
    m.sent_at = time_point(g % 2 == 0 ? 100 : 200);
    in.push_back({g, m});
  }
  auto frames = encode_messages(in);
  ASSERT_EQ(frames.size(), 2U);
  auto out = decode_all(frames);
  ASSERT_EQ(out.size(), 10U);
  for (const auto& o : out) EXPECT_EQ(o.msg.sent_at, time_point(o.group % 2 == 0 ? 100 : 200));
}

TEST(peer_codec, bulk_frames_are_split_at_the_target_size) {
  std::vector<addressed_message> in;
  for (uint64_t g = 0; g < 10; ++g) {
    message m = base(msg_type::append);
    m.entries = {entry{1, 7, entry_kind::normal, std::string(100'000, 'x')}};
    in.push_back({g, m});
  }
  auto frames = encode_messages(in, encode_options{.target_frame_bytes = 250'000});
  EXPECT_EQ(frames.size(), 4U);  // 3 + 3 + 3 + 1
  auto out = decode_all(frames);
  ASSERT_EQ(out.size(), 10U);
  for (uint64_t g = 0; g < 10; ++g) EXPECT_EQ(out[g].group, g);
}

TEST(peer_codec, hello_and_reject_round_trip) {
  auto h = decode(encode_hello(hello{"cluster-a", node_id{3}, 99, protocol_version}));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->type, decoded_frame::kind::hello);
  EXPECT_EQ(h->hello.cluster_id, "cluster-a");
  EXPECT_EQ(h->hello.node, node_id{3});
  EXPECT_EQ(h->hello.incarnation, 99U);
  EXPECT_EQ(h->hello.version, protocol_version);
  auto r = decode(encode_reject("wrong cluster"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, decoded_frame::kind::reject);
  EXPECT_EQ(r->reason, "wrong cluster");
}

TEST(peer_codec, a_keepalive_is_a_small_frame_without_messages) {
  auto f = encode_keepalive();
  EXPECT_LE(f.size(), 48U) << f.size();
  auto d = decode(f);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->type, decoded_frame::kind::messages);
  EXPECT_TRUE(d->messages.empty());
}

TEST(peer_codec, every_truncation_of_a_frame_is_rejected) {
  std::vector<addressed_message> in;
  uint64_t g = 0;
  for (const auto& m : every_type()) in.push_back({g++, m});
  for (const auto& f : encode_messages(in)) {
    auto bytes = f.bytes();
    for (size_t len = 0; len < bytes.size(); ++len) {
      aligned_frame cut(bytes.first(len));
      auto d = decode_frame(cut.view(), a, b);
      ASSERT_FALSE(d) << "truncated to " << len << " of " << bytes.size();
      EXPECT_EQ(d.error().code, errc::malformed_frame);
      // With the prefix fixed to the shorter length, the FlatBuffer itself is cut.
      if (len >= frame_prefix_bytes) {
        wire::put_le32(reinterpret_cast<std::byte*>(cut.storage.data()), static_cast<uint32_t>(len - 4));
        auto d2 = decode_frame(cut.view(), a, b);
        if (d2) {
          // A cut that still verifies must at least be a consistent frame (it cannot be: the
          // root offset and vtables point past the cut).
          ADD_FAILURE() << "a frame cut to " << len << " bytes verified";
        }
      }
    }
  }
}

TEST(peer_codec, garbage_and_flipped_bytes_never_crash_and_fail_as_malformed_frame) {
  std::mt19937_64 rng(42);
  // Pure garbage with a correct length prefix.
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::byte> buf(4 + rng() % 200);
    for (auto& x : buf) x = static_cast<std::byte>(rng());
    wire::put_le32(buf.data(), static_cast<uint32_t>(buf.size() - 4));
    aligned_frame f(buf);
    auto d = decode_frame(f.view(), a, b);
    if (!d) {
      EXPECT_EQ(d.error().code, errc::malformed_frame);
    }
  }
  // Real frames with bytes flipped: decoding either fails as malformed_frame or yields messages
  // whose enums are in range (the decoder checked them).
  std::vector<addressed_message> in;
  uint64_t g = 0;
  for (const auto& m : every_type()) in.push_back({g++, m});
  auto frames = encode_messages(in);
  size_t rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto& src = frames[rng() % frames.size()];
    std::vector<std::byte> buf(src.bytes().begin(), src.bytes().end());
    const size_t pos = 4 + rng() % (buf.size() - 4);
    buf[pos] ^= static_cast<std::byte>(1 + rng() % 255);
    aligned_frame f(buf);
    auto d = decode_frame(f.view(), a, b);
    if (!d) {
      EXPECT_EQ(d.error().code, errc::malformed_frame);
      ++rejected;
      continue;
    }
    for (const auto& m : d->messages) {
      EXPECT_LE(static_cast<int>(m.msg.type), static_cast<int>(msg_type::install_snapshot));
      for (const auto& e : m.msg.entries) EXPECT_LE(static_cast<int>(e.kind), static_cast<int>(entry_kind::config));
    }
  }
  EXPECT_GT(rejected, 0U);
}

TEST(peer_codec, wrong_length_prefix_or_file_identifier_is_rejected) {
  auto f = encode_hello(hello{"c", node_id{1}, 1, protocol_version});
  std::vector<std::byte> buf(f.bytes().begin(), f.bytes().end());
  wire::put_le32(buf.data(), static_cast<uint32_t>(buf.size()));  // one too many
  EXPECT_EQ(decode_frame(aligned_frame(buf).view(), a, b).error().code, errc::malformed_frame);
  buf.assign(f.bytes().begin(), f.bytes().end());
  buf[8] = std::byte{'X'};  // file identifier "FPER" lives at bytes 8..11 (after prefix and root offset)
  EXPECT_EQ(decode_frame(aligned_frame(buf).view(), a, b).error().code, errc::malformed_frame);
}

}  // namespace
}  // namespace ferry::peer
