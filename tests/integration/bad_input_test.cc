// Bad input against a real ferryd (raw frames, no client library): every malformed, oversized or
// invalid request gets its typed error code and a readable message, the broker stays up, other
// connections keep working and data written before is unchanged.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <random>
#include <thread>

#include "schema/frame.h"
#include "schema/record_batch.h"
#include "tests/support/broker_process.h"
#include "tests/support/frames.h"

namespace ferry::test {
namespace {

namespace fb = flatbuffers;
using wire::ErrorCode;

std::string msg_of(const response_frame& r) {
  return r.resp->error_message() ? r.resp->error_message()->str() : std::string();
}

errc err_of(const response_frame& r) { return wire::from_wire(r.resp->error()); }

std::string name_of(errc e) { return std::string(errc_name(e)); }

#define EXPECT_ERRC(actual, expected) EXPECT_EQ(name_of(actual), name_of(expected))

// A Request with any union type number and version (the body is an empty ListTopicsRequest table).
bytes request_with_type(uint64_t cid, uint8_t type, uint16_t version) {
  fb::FlatBufferBuilder fbb;
  fbb.ForceDefaults(true);
  auto body = wire::CreateListTopicsRequest(fbb);
  wire::RequestBuilder rb(fbb);
  rb.add_version(version);
  rb.add_correlation_id(cid);
  rb.add_body_type(static_cast<wire::RequestBody>(type));
  rb.add_body(body.Union());
  auto root = rb.Finish();
  wire::finish_request(fbb, root);
  auto s = fbb.GetBufferSpan();
  auto p = reinterpret_cast<const std::byte*>(s.data());
  return bytes(p, p + s.size());
}

bytes prefix_only(uint32_t len) {
  bytes b(4);
  wire::put_le32(b.data(), len);
  return b;
}

class bad_input : public ::testing::Test {
 protected:
  static constexpr const char* seed_topic = "seed-data";

  void SetUp() override {
    ASSERT_TRUE(broker_.start());
    auto c = raw_client::connect(broker_.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    auto [e, m] = c->create_topic(seed_topic, 2);
    ASSERT_EQ(name_of(e), name_of(errc::ok)) << m;
    for (int p = 0; p < 2; ++p) {
      for (int b = 0; b < 3; ++b) {
        std::vector<test_record> recs;
        for (int i = 0; i < 5; ++i) {
          test_record r;
          r.key = "k" + std::to_string(p) + "-" + std::to_string(b) + "-" + std::to_string(i);
          r.value = random_payload(1000 * p + 10 * b + i, 0, 300);
          r.headers = {{"h", "v" + std::to_string(i)}};
          r.timestamp = 1'700'000'000'000 + i;
          recs.push_back(r);
        }
        auto out = c->produce(seed_topic, p, make_batch(recs));
        ASSERT_EQ(name_of(out.error), name_of(errc::ok)) << out.message;
      }
    }
    for (int p = 0; p < 2; ++p) {
      auto all = c->read_all(seed_topic, p);
      ASSERT_TRUE(all) << all.error().to_string();
      ASSERT_EQ(all->size(), 15u);
      seed_[p] = std::move(*all);
    }
  }

  raw_connection connect() {
    auto c = raw_connection::connect(broker_.client_port());
    EXPECT_TRUE(c) << c.error().to_string();
    if (!c) return {};
    return std::move(*c);
  }

  // The broker is alive, a new connection can create, produce and read, and the seed data
  // is unchanged.
  void expect_healthy() {
    SCOPED_TRACE("broker health check");
    ASSERT_TRUE(broker_.alive()) << "ferryd died";
    auto c = raw_client::connect(broker_.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    std::string topic = "health-" + std::to_string(++health_round_);
    auto [e, m] = c->create_topic(topic, 1);
    ASSERT_EQ(name_of(e), name_of(errc::ok)) << m;
    auto out = c->produce(topic, 0, make_value_batch({"one", "two", std::string(1000, 'x')}));
    ASSERT_EQ(name_of(out.error), name_of(errc::ok)) << out.message;
    EXPECT_EQ(out.base_offset, 0);
    auto all = c->read_all(topic, 0);
    ASSERT_TRUE(all) << all.error().to_string();
    ASSERT_EQ(all->size(), 3u);
    EXPECT_EQ((*all)[0].value, "one");
    EXPECT_EQ((*all)[2].value, std::string(1000, 'x'));
    for (int p = 0; p < 2; ++p) {
      auto now = c->read_all(seed_topic, p);
      ASSERT_TRUE(now) << now.error().to_string();
      ASSERT_EQ(now->size(), seed_[p].size()) << "partition " << p;
      for (size_t i = 0; i < now->size(); ++i) {
        EXPECT_EQ((*now)[i].offset, seed_[p][i].offset);
        EXPECT_EQ((*now)[i].key, seed_[p][i].key);
        EXPECT_EQ((*now)[i].value, seed_[p][i].value);
        EXPECT_EQ((*now)[i].headers, seed_[p][i].headers);
        EXPECT_EQ((*now)[i].timestamp, seed_[p][i].timestamp);
      }
    }
  }

  // Expects a request-level error with a message on `r`.
  void expect_error(const result<response_frame>& r, errc want, std::optional<uint64_t> cid = {}) {
    ASSERT_TRUE(r) << "no response: " << r.error().to_string();
    EXPECT_ERRC(err_of(*r), want) << "message: " << msg_of(*r);
    EXPECT_FALSE(msg_of(*r).empty()) << "error " << name_of(want) << " without a message";
    if (cid) {
      EXPECT_EQ(r->resp->correlation_id(), *cid);
    }
  }

  broker_process broker_;
  std::vector<stored_record> seed_[2];
  int health_round_ = 0;
};

TEST_F(bad_input, garbage_frame_gets_malformed_frame_and_connection_stays_open) {
  auto c = connect();
  bytes f = prefix_only(64);
  auto junk = random_payload(7, 64, 64);
  for (char ch : junk) f.push_back(static_cast<std::byte>(ch));
  expect_error(c.roundtrip(f), errc::malformed_frame, 0);
  // The length prefix was sane: the same connection still serves a well-formed request.
  auto ok = c.roundtrip(list_topics_frame(77));
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_ERRC(err_of(*ok), errc::ok) << msg_of(*ok);
  EXPECT_EQ(ok->resp->correlation_id(), 77u);
  expect_healthy();
}

TEST_F(bad_input, zero_length_frame_gets_malformed_frame) {
  auto c = connect();
  expect_error(c.roundtrip(prefix_only(0)), errc::malformed_frame, 0);
  auto ok = c.roundtrip(list_topics_frame(5));
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_ERRC(err_of(*ok), errc::ok);
  expect_healthy();
}

TEST_F(bad_input, tiny_frames_get_malformed_frame) {
  auto c = connect();
  for (uint32_t len : {1u, 3u, 4u, 7u, 8u, 12u}) {
    SCOPED_TRACE("frame length " + std::to_string(len));
    bytes f = prefix_only(len);
    f.resize(4 + len, std::byte{0});
    expect_error(c.roundtrip(f), errc::malformed_frame, 0);
  }
  expect_healthy();
}

TEST_F(bad_input, truncated_flatbuffer_gets_malformed_frame) {
  auto c = connect();
  auto full = produce_frame(9, seed_topic, 0, make_value_batch({"would change the seed data"}));
  // Keep the prefix honest (it matches the bytes sent) but cut the FlatBuffer short.
  for (size_t keep : {full.size() / 2, full.size() - 8, size_t{12}}) {
    SCOPED_TRACE("kept " + std::to_string(keep) + " of " + std::to_string(full.size()) + " bytes");
    bytes f(full.begin(), full.begin() + static_cast<long>(keep));
    wire::put_le32(f.data(), static_cast<uint32_t>(keep - 4));
    expect_error(c.roundtrip(f), errc::malformed_frame, 0);
  }
  expect_healthy();
}

TEST_F(bad_input, frame_cut_off_by_disconnect_is_dropped) {
  {
    auto c = connect();
    auto full = produce_frame(9, seed_topic, 0, make_value_batch({"half a frame must not be stored"}));
    bytes half(full.begin(), full.begin() + static_cast<long>(full.size() / 2));
    ASSERT_TRUE(c.send_bytes(half));
    ::shutdown(c.fd(), SHUT_WR);
    // Nothing can be answered for an incomplete frame; the broker just closes.
    EXPECT_TRUE(c.wait_closed(5s)) << "broker kept a half-closed connection with a partial frame open";
  }
  expect_healthy();
}

TEST_F(bad_input, length_prefix_over_the_limit_gets_frame_too_large_then_close) {
  auto c = connect();
  ASSERT_TRUE(c.send_bytes(prefix_only((16u << 20) + 1)));
  auto r = c.read_response();
  expect_error(r, errc::frame_too_large, 0);
  EXPECT_TRUE(c.wait_closed(5s)) << "connection left open after frame_too_large";
  auto c2 = connect();
  ASSERT_TRUE(c2.send_bytes(prefix_only(0xffffffffu)));
  expect_error(c2.read_response(), errc::frame_too_large, 0);
  EXPECT_TRUE(c2.wait_closed(5s));
  expect_healthy();
}

TEST(bad_input_limits, max_frame_bytes_flag_is_enforced) {
  broker_options o;
  o.max_frame_bytes = 4096;
  broker_process broker(o);
  ASSERT_TRUE(broker.start());
  auto c = raw_client::connect(broker.client_port());
  ASSERT_TRUE(c);
  auto [e, m] = c->create_topic("small", 1);
  ASSERT_EQ(name_of(e), name_of(errc::ok)) << m;
  // Under the limit: fine.
  auto ok = c->produce("small", 0, make_value_batch({std::string(1000, 'a')}));
  EXPECT_EQ(name_of(ok.error), name_of(errc::ok)) << ok.message;
  // A whole, well-formed frame just above the limit.
  auto big = produce_frame(3, "small", 0, make_value_batch({std::string(5000, 'b')}));
  auto r = c->conn().roundtrip(big);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(name_of(err_of(*r)), name_of(errc::frame_too_large)) << msg_of(*r);
  EXPECT_FALSE(msg_of(*r).empty());
  EXPECT_TRUE(c->conn().wait_closed(5s));
  auto c2 = raw_client::connect(broker.client_port());
  ASSERT_TRUE(c2);
  auto all = c2->read_all("small", 0);
  ASSERT_TRUE(all) << all.error().to_string();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].value, std::string(1000, 'a'));
}

TEST_F(bad_input, random_bytes_never_kill_the_broker) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20; ++i) {
    auto c = connect();
    // A sane length prefix followed by that many random bytes: malformed_frame.
    uint32_t len = static_cast<uint32_t>(rng() % 2000);
    bytes f = prefix_only(len);
    auto junk = random_payload(rng(), len, len);
    for (char ch : junk) f.push_back(static_cast<std::byte>(ch));
    auto r = c.roundtrip(f);
    ASSERT_TRUE(r) << "no answer to " << len << " random bytes: " << r.error().to_string();
    EXPECT_ERRC(err_of(*r), errc::malformed_frame);
  }
  expect_healthy();
}

TEST_F(bad_input, unknown_api_id_gets_unsupported_api) {
  auto c = connect();
  // 16 is Delivery, which only the broker sends; 19 is the first id no API has.
  for (uint8_t api : {uint8_t{16}, uint8_t{19}, uint8_t{42}, uint8_t{255}}) {
    SCOPED_TRACE("api id " + std::to_string(api));
    uint64_t cid = 1000 + api;
    expect_error(c.roundtrip(request_with_type(cid, api, 1)), errc::unsupported_api, cid);
  }
  // No body at all (union type NONE).
  expect_error(c.roundtrip(request_with_type(3, 0, 1)), errc::unsupported_api, 3);
  auto ok = c.roundtrip(list_topics_frame(4));
  ASSERT_TRUE(ok);
  EXPECT_ERRC(err_of(*ok), errc::ok);
  expect_healthy();
}

TEST_F(bad_input, unsupported_version_gets_unsupported_version) {
  auto c = connect();
  expect_error(c.roundtrip(request_with_type(11, 3, 99)), errc::unsupported_version, 11);
  expect_error(c.roundtrip(create_topic_frame(12, "v99-topic", 1, 99)), errc::unsupported_version, 12);
  expect_error(c.roundtrip(request_with_type(13, 3, 2)), errc::unsupported_version, 13);
  // The refused create did not create anything.
  auto cl = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(cl);
  auto d = cl->describe_topic("v99-topic");
  EXPECT_ERRC(d.error, errc::unknown_topic);
  expect_healthy();
}

TEST_F(bad_input, unknown_topic_gets_unknown_topic) {
  auto c = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(c);
  const std::string t = "no-such-topic";
  auto d = c->describe_topic(t);
  EXPECT_ERRC(d.error, errc::unknown_topic);
  EXPECT_NE(d.message.find(t), std::string::npos) << "message does not name the topic: " << d.message;
  auto [de, dm] = c->delete_topic(t);
  EXPECT_ERRC(de, errc::unknown_topic);
  EXPECT_NE(dm.find(t), std::string::npos) << dm;
  auto p = c->produce(t, 0, make_value_batch({"x"}));
  EXPECT_ERRC(p.error, errc::unknown_topic);
  EXPECT_NE(p.message.find(t), std::string::npos) << p.message;
  auto f = c->read_all(t, 0);
  ASSERT_FALSE(f);
  EXPECT_ERRC(f.error().code, errc::unknown_topic);
  EXPECT_NE(f.error().message.find(t), std::string::npos) << f.error().message;
  // The failed produce did not create the topic.
  auto l = c->list_topics();
  ASSERT_TRUE(l);
  EXPECT_EQ(std::count(l->begin(), l->end(), t), 0);
  expect_healthy();
}

TEST_F(bad_input, invalid_topic_names_get_invalid_topic_name) {
  auto c = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(c);
  for (const std::string& name :
       {std::string(), std::string(201, 'a'), std::string("a/b"), std::string("spaces here"), std::string(".."),
        std::string("a\nb"), std::string("caf\xc3\xa9"), std::string("a\0b", 3)}) {
    SCOPED_TRACE("topic name '" + name + "' (" + std::to_string(name.size()) + " bytes)");
    auto [e, m] = c->create_topic(name, 1);
    if (name == "..") {
      // ".." matches [A-Za-z0-9._-]{1,200}; refusing it (a path component) is fine too.
      if (e == errc::ok) {
        auto [de, dm] = c->delete_topic(name);
        EXPECT_ERRC(de, errc::ok) << dm;
      } else {
        EXPECT_ERRC(e, errc::invalid_topic_name) << m;
      }
      continue;
    }
    EXPECT_ERRC(e, errc::invalid_topic_name) << m;
    EXPECT_FALSE(m.empty());
  }
  // The boundary: 200 characters of every allowed kind is valid.
  std::string longest;
  const std::string alphabet = "abcXYZ019._-";
  while (longest.size() < 200) longest += alphabet[longest.size() % alphabet.size()];
  auto [e, m] = c->create_topic(longest, 1);
  EXPECT_ERRC(e, errc::ok) << m;
  auto p = c->produce(longest, 0, make_value_batch({"fits"}));
  EXPECT_ERRC(p.error, errc::ok) << p.message;
  auto l = c->list_topics();
  ASSERT_TRUE(l);
  for (auto& n : *l) EXPECT_TRUE(n == seed_topic || n == longest) << "unexpected topic '" << n << "'";
  expect_healthy();
}

TEST_F(bad_input, zero_and_negative_partitions_get_invalid_argument) {
  auto c = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(c);
  for (int32_t n : {0, -1, -1000, std::numeric_limits<int32_t>::min()}) {
    SCOPED_TRACE("partitions " + std::to_string(n));
    auto [e, m] = c->create_topic("parts-" + std::to_string(n > -10 ? -n : 99), n);
    EXPECT_ERRC(e, errc::invalid_argument) << m;
    EXPECT_FALSE(m.empty());
  }
  auto [e, m] = c->create_topic(seed_topic, 3);
  EXPECT_ERRC(e, errc::topic_exists) << m;
  EXPECT_NE(m.find(seed_topic), std::string::npos) << m;
  expect_healthy();
}

TEST_F(bad_input, fetch_past_the_end_gets_offset_out_of_range) {
  auto c = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(c);
  const int64_t end = seed_[0].back().offset + 1;
  // Exactly at the end: an empty answer, not an error.
  auto at_end = c->read_all(seed_topic, 0, end);
  ASSERT_TRUE(at_end) << at_end.error().to_string();
  EXPECT_TRUE(at_end->empty());
  // At the end with a wait: an empty answer after roughly max_wait_ms.
  auto t0 = clock_type::now();
  auto waited = c->call(fetch_frame(c->next_cid(), seed_topic, 0, end, 200));
  auto took = clock_type::now() - t0;
  ASSERT_TRUE(waited) << waited.error().to_string();
  EXPECT_ERRC(err_of(*waited), errc::ok);
  EXPECT_GE(took, 150ms) << "fetch at the end with max_wait_ms=200 returned at once";
  EXPECT_LT(took, 5s);
  for (int64_t off : {end + 1, end + 1000, int64_t{1} << 62, int64_t{-5}}) {
    SCOPED_TRACE("fetch offset " + std::to_string(off));
    auto r = c->read_all(seed_topic, 0, off);
    ASSERT_FALSE(r) << "fetch beyond the end returned " << r->size() << " records";
    EXPECT_ERRC(r.error().code, errc::offset_out_of_range) << r.error().message;
    EXPECT_FALSE(r.error().message.empty());
  }
  expect_healthy();
}

TEST_F(bad_input, corrupt_batches_get_corrupt_batch) {
  auto c = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(c);
  auto good = make_value_batch({"payload one", "payload two"});
  // A flipped payload bit: the CRC no longer matches.
  auto flipped = good;
  flipped[flipped.size() - 3] ^= std::byte{0x10};
  // A wrong CRC field.
  auto bad_crc = good;
  bad_crc[wire::hdr::crc] ^= std::byte{0xff};
  // batch_length not matching the bytes sent.
  auto bad_len = good;
  wire::put_le32(bad_len.data() + wire::hdr::batch_length, static_cast<uint32_t>(good.size() + 10));
  // Shorter than a header.
  bytes stub(good.begin(), good.begin() + 20);
  // Record count in the header disagreeing with the records (CRC recomputed so only that is wrong).
  auto bad_count = good;
  wire::put_le32(bad_count.data() + wire::hdr::record_count, 5);
  wire::put_le32(bad_count.data() + wire::hdr::crc, wire::compute_batch_crc(bad_count));
  // Empty records.
  bytes empty;
  struct named {
    const char* name;
    bytes* b;
  };
  for (auto [name, b] :
       {named{"flipped payload bit", &flipped}, named{"bad crc", &bad_crc}, named{"bad batch_length", &bad_len},
        named{"20-byte stub", &stub}, named{"record_count mismatch", &bad_count}, named{"empty records", &empty}}) {
    SCOPED_TRACE(name);
    auto out = c->produce(seed_topic, 0, *b);
    // A batch problem is a per-partition error (request-level Ok), corrupt_batch; an empty
    // batch may be called invalid_argument instead.
    EXPECT_ERRC(out.request_error, errc::ok) << out.message;
    if (b == &empty) {
      EXPECT_TRUE(out.error == errc::corrupt_batch || out.error == errc::invalid_argument)
          << name_of(out.error) << ": " << out.message;
    } else {
      EXPECT_ERRC(out.error, errc::corrupt_batch) << out.message;
    }
    EXPECT_FALSE(out.message.empty());
  }
  expect_healthy();  // includes: the seed partition is unchanged
}

TEST_F(bad_input, produce_to_missing_partition_gets_unknown_partition) {
  auto c = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(c);
  for (int32_t p : {2, 3, 1000, -1}) {
    SCOPED_TRACE("partition " + std::to_string(p));
    auto out = c->produce(seed_topic, p, make_value_batch({"nowhere"}));
    EXPECT_ERRC(out.error, errc::unknown_partition) << out.message;
    EXPECT_FALSE(out.message.empty());
    auto r = c->read_all(seed_topic, p);
    ASSERT_FALSE(r);
    EXPECT_ERRC(r.error().code, errc::unknown_partition) << r.error().message;
  }
  expect_healthy();
}

TEST_F(bad_input, pipelined_bad_and_good_requests_answer_in_order) {
  auto c = connect();
  bytes all;
  auto append = [&](const bytes& f) { all.insert(all.end(), f.begin(), f.end()); };
  append(list_topics_frame(1));
  append(prefix_only(0));                        // malformed, cid 0
  append(request_with_type(3, 42, 1));           // unsupported_api
  append(describe_topic_frame(4, "nope"));       // unknown_topic
  append(create_topic_frame(5, "bad name", 1));  // invalid_topic_name
  append(fetch_frame(6, seed_topic, 1, 0));      // ok
  ASSERT_TRUE(c.send_bytes(all));
  std::vector<std::pair<uint64_t, errc>> want = {{1, errc::ok},
                                                 {0, errc::malformed_frame},
                                                 {3, errc::unsupported_api},
                                                 {4, errc::unknown_topic},
                                                 {5, errc::invalid_topic_name},
                                                 {6, errc::ok}};
  for (auto [cid, e] : want) {
    auto r = c.read_response();
    ASSERT_TRUE(r) << "response for cid " << cid << ": " << r.error().to_string();
    EXPECT_EQ(r->resp->correlation_id(), cid);
    EXPECT_ERRC(err_of(*r), e) << msg_of(*r);
  }
  expect_healthy();
}

// Several connections throw random bytes and randomly mutated valid frames at the broker for a
// few seconds; afterwards it is alive and serves the data written before, unchanged.
TEST_F(bad_input, fuzzing_connections_do_not_hurt_the_broker) {
  auto c0 = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(c0);
  // The fuzzers' own topic: its name is far from the seed topic's, so mutated frames cannot hit it.
  auto [e, m] = c0->create_topic("zz-fuzz-target", 2);
  ASSERT_EQ(name_of(e), name_of(errc::ok)) << m;

  std::atomic<uint64_t> frames{0}, answers{0}, reconnects{0};
  auto deadline = clock_type::now() + 5s;
  auto fuzzer = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<bytes> templates = {
        produce_frame(1, "zz-fuzz-target", 0, make_value_batch({"fuzz a", "fuzz b"}, 777, 0)),
        produce_frame(2, "zz-fuzz-target", 1, make_batch({test_record{"k", "v", {{"h", "x"}}, 5}})),
        fetch_frame(3, "zz-fuzz-target", 0, 0, 0),
        fetch_frame(4, "zz-fuzz-target", 1, 0, 0),
        describe_topic_frame(5, "zz-fuzz-target"),
        list_topics_frame(6),
        metadata_frame(7),
    };
    raw_connection c;
    while (clock_type::now() < deadline) {
      if (c.fd() < 0) {
        auto r = raw_connection::connect(broker_.client_port(), 2s);
        if (!r) {
          std::this_thread::sleep_for(1ms);
          continue;
        }
        c = std::move(*r);
        c.set_timeout(500ms);
        reconnects++;
      }
      bytes f;
      switch (rng() % 4) {
        case 0: {  // random bytes, a sane prefix
          uint32_t len = static_cast<uint32_t>(rng() % 512);
          f = prefix_only(len);
          auto junk = random_payload(rng(), len, len);
          for (char ch : junk) f.push_back(static_cast<std::byte>(ch));
          break;
        }
        case 1: {  // raw random bytes, prefix included (may be huge: then the broker closes)
          auto junk = random_payload(rng(), 1, 64);
          for (char ch : junk) f.push_back(static_cast<std::byte>(ch));
          break;
        }
        default: {  // a valid frame with 1-4 mutated bytes after the prefix
          f = templates[rng() % templates.size()];
          int n = 1 + static_cast<int>(rng() % 4);
          for (int i = 0; i < n; ++i) f[4 + rng() % (f.size() - 4)] = static_cast<std::byte>(rng() & 0xff);
          break;
        }
      }
      frames++;
      if (!c.send_bytes(f)) {
        c.close();
        continue;
      }
      // Read whatever answer comes; a closed connection or silence (a partial frame) means reconnect.
      auto r = c.read_frame(50ms);
      if (r) {
        answers++;
      } else {
        c.close();
      }
    }
  };
  std::vector<std::thread> threads;
  for (uint64_t i = 0; i < 4; ++i) threads.emplace_back(fuzzer, 1000 + i);
  for (auto& t : threads) t.join();
  std::cerr << "fuzz: " << frames << " frames sent, " << answers << " answers, " << reconnects << " connections\n";
  EXPECT_GT(answers.load(), 100u) << "the broker answered almost nothing";
  expect_healthy();
  // The fuzz topic is still readable and consistent (whatever got into it verifies).
  for (int p = 0; p < 2; ++p) {
    auto r = c0->read_all("zz-fuzz-target", p);
    EXPECT_TRUE(r) << "partition " << p << ": " << r.error().to_string();
    if (r) {
      for (size_t i = 0; i < r->size(); ++i) EXPECT_EQ((*r)[i].offset, static_cast<int64_t>(i));
    }
  }
}

}  // namespace
}  // namespace ferry::test
