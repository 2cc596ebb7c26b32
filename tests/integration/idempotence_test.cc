// Idempotent produce against a real ferryd (raw frames built with wire::batch_builder): a batch
// with a producer id and sequence is stored once; a resend is answered duplicate=true with the
// original base offset, also after kill -9 and a restart; a sequence gap is out_of_order_sequence.
#include <gtest/gtest.h>

#include <thread>

#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/process.h"

namespace ferry::test {
namespace {

std::string name_of(errc e) { return std::string(errc_name(e)); }
#define EXPECT_ERRC(actual, expected) EXPECT_EQ(name_of(actual), name_of(expected))
#define ASSERT_ERRC(actual, expected) ASSERT_EQ(name_of(actual), name_of(expected))

std::vector<std::string> values(const std::string& prefix, int n) {
  std::vector<std::string> v;
  v.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v.push_back(prefix + "-" + std::to_string(i));
  return v;
}

class idempotence : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.start());
    connect();
    auto [e, m] = client_->create_topic("idem", 2);
    ASSERT_ERRC(e, errc::ok) << m;
  }
  void connect() {
    auto c = raw_client::connect(broker_.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    client_ = std::make_unique<raw_client>(std::move(*c));
  }
  std::vector<std::string> stored_values(int32_t partition) {
    auto r = client_->read_all("idem", partition);
    EXPECT_TRUE(r) << r.error().to_string();
    std::vector<std::string> out;
    if (!r) return out;
    for (size_t i = 0; i < r->size(); ++i) {
      EXPECT_EQ((*r)[i].offset, static_cast<int64_t>(i)) << "offsets are not continuous";
      out.push_back((*r)[i].value.value_or("<null>"));
    }
    return out;
  }

  broker_process broker_;
  std::unique_ptr<raw_client> client_;
};

TEST_F(idempotence, resent_batch_is_stored_once_and_answered_as_duplicate) {
  const int64_t pid = 4242;
  auto b0 = make_value_batch(values("b0", 3), pid, 0);
  auto b1 = make_value_batch(values("b1", 2), pid, 3);

  auto r0 = client_->produce("idem", 0, b0);
  ASSERT_ERRC(r0.error, errc::ok) << r0.message;
  EXPECT_EQ(r0.base_offset, 0);
  EXPECT_FALSE(r0.duplicate);

  auto again = client_->produce("idem", 0, b0);
  ASSERT_ERRC(again.error, errc::ok) << again.message;
  EXPECT_TRUE(again.duplicate) << "a resent batch was not recognised as a duplicate";
  EXPECT_EQ(again.base_offset, r0.base_offset);

  auto r1 = client_->produce("idem", 0, b1);
  ASSERT_ERRC(r1.error, errc::ok) << r1.message;
  EXPECT_FALSE(r1.duplicate);
  EXPECT_EQ(r1.base_offset, 3);

  // An older batch, resent after a newer one, is still a duplicate of its first copy.
  auto old = client_->produce("idem", 0, b0);
  ASSERT_ERRC(old.error, errc::ok) << old.message;
  EXPECT_TRUE(old.duplicate);
  EXPECT_EQ(old.base_offset, 0);

  auto want = values("b0", 3);
  for (auto& v : values("b1", 2)) want.push_back(v);
  EXPECT_EQ(stored_values(0), want);
  EXPECT_TRUE(stored_values(1).empty()) << "partition 1 got data";
}

TEST_F(idempotence, sequence_gap_is_out_of_order_sequence) {
  const int64_t pid = 99;
  auto r0 = client_->produce("idem", 1, make_value_batch(values("a", 2), pid, 0));
  ASSERT_ERRC(r0.error, errc::ok) << r0.message;
  // Expected next sequence is 2; 5 skips ahead.
  auto gap = client_->produce("idem", 1, make_value_batch(values("gap", 2), pid, 5));
  EXPECT_ERRC(gap.error, errc::out_of_order_sequence) << gap.message;
  EXPECT_FALSE(gap.message.empty());
  // The right next batch still goes in, at the next offset.
  auto r1 = client_->produce("idem", 1, make_value_batch(values("b", 1), pid, 2));
  ASSERT_ERRC(r1.error, errc::ok) << r1.message;
  EXPECT_EQ(r1.base_offset, 2);
  EXPECT_FALSE(r1.duplicate);
  // A different producer id starts its own sequence at 0, independent of the first.
  auto other = client_->produce("idem", 1, make_value_batch(values("other", 1), pid + 1, 0));
  ASSERT_ERRC(other.error, errc::ok) << other.message;
  EXPECT_EQ(other.base_offset, 3);
  EXPECT_EQ(stored_values(1), (std::vector<std::string>{"a-0", "a-1", "b-0", "other-0"}));
}

TEST_F(idempotence, producers_without_id_are_never_deduplicated) {
  auto b = make_value_batch(values("plain", 2));  // producer_id -1
  auto r0 = client_->produce("idem", 0, b);
  auto r1 = client_->produce("idem", 0, b);
  ASSERT_ERRC(r0.error, errc::ok) << r0.message;
  ASSERT_ERRC(r1.error, errc::ok) << r1.message;
  EXPECT_FALSE(r1.duplicate);
  EXPECT_EQ(r1.base_offset, 2);
  EXPECT_EQ(stored_values(0).size(), 4u);
}

TEST_F(idempotence, partitions_keep_separate_sequences) {
  const int64_t pid = 7;
  auto p0 = client_->produce("idem", 0, make_value_batch(values("p0", 1), pid, 0));
  auto p1 = client_->produce("idem", 1, make_value_batch(values("p1", 1), pid, 0));
  ASSERT_ERRC(p0.error, errc::ok) << p0.message;
  ASSERT_ERRC(p1.error, errc::ok) << p1.message;
  EXPECT_FALSE(p1.duplicate) << "sequence 0 on partition 1 was taken for a duplicate of partition 0's";
  EXPECT_EQ(stored_values(0), (std::vector<std::string>{"p0-0"}));
  EXPECT_EQ(stored_values(1), (std::vector<std::string>{"p1-0"}));
}

TEST_F(idempotence, duplicate_is_detected_after_kill9_and_restart) {
  const int64_t pid = 123456789;
  std::vector<bytes> batches;
  std::vector<int64_t> offsets;
  int32_t seq = 0;
  for (int i = 0; i < 5; ++i) {
    batches.push_back(make_value_batch(values("r" + std::to_string(i), 2 + i), pid, seq));
    seq += 2 + i;
    auto r = client_->produce("idem", 0, batches.back());
    ASSERT_ERRC(r.error, errc::ok) << r.message;
    ASSERT_FALSE(r.duplicate);
    offsets.push_back(r.base_offset);
  }
  auto before = stored_values(0);
  ASSERT_EQ(before.size(), static_cast<size_t>(seq));

  broker_.kill9();
  ASSERT_TRUE(broker_.restart());
  connect();

  // The last batch and an earlier one: both still known after the crash.
  for (int i : {4, 2}) {
    SCOPED_TRACE("batch " + std::to_string(i));
    auto r = client_->produce("idem", 0, batches[i]);
    ASSERT_ERRC(r.error, errc::ok) << r.message;
    EXPECT_TRUE(r.duplicate) << "resend after kill -9 + restart was stored again";
    EXPECT_EQ(r.base_offset, offsets[i]);
  }
  auto gap = client_->produce("idem", 0, make_value_batch(values("gap", 1), pid, seq + 3));
  EXPECT_ERRC(gap.error, errc::out_of_order_sequence) << gap.message;
  auto next = client_->produce("idem", 0, make_value_batch(values("next", 1), pid, seq));
  ASSERT_ERRC(next.error, errc::ok) << next.message;
  EXPECT_FALSE(next.duplicate);
  EXPECT_EQ(next.base_offset, static_cast<int64_t>(seq));

  // And after a clean restart too.
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  ASSERT_TRUE(broker_.restart());
  connect();
  auto r = client_->produce("idem", 0, make_value_batch(values("next", 1), pid, seq));
  ASSERT_ERRC(r.error, errc::ok) << r.message;
  EXPECT_TRUE(r.duplicate);
  EXPECT_EQ(r.base_offset, static_cast<int64_t>(seq));

  auto after = stored_values(0);
  before.push_back("next-0");
  EXPECT_EQ(after, before);
}

// Producer ids expire (like Kafka's producer id expiration): a producer idle longer than
// --producer-expiry is forgotten, also in the state rebuilt from the log at start-up.
TEST(idempotence_expiry, idle_producers_are_forgotten_and_not_rebuilt_after_restart) {
  broker_options o;
  o.extra_args = {"--producer-expiry", "1s", "--retention-check-ms", "100"};
  broker_process b(o);
  ASSERT_TRUE(b.start());
  auto c = raw_client::connect(b.client_port());
  ASSERT_TRUE(c);
  ASSERT_ERRC(c->create_topic("exp", 1).first, errc::ok);
  auto batch = make_value_batch({"a"}, 77, 0);
  auto first = c->produce("exp", 0, batch);
  ASSERT_ERRC(first.error, errc::ok) << first.message;
  auto dup = c->produce("exp", 0, batch);
  ASSERT_ERRC(dup.error, errc::ok);
  EXPECT_TRUE(dup.duplicate) << "remembered while active";
  // Idle for longer than the expiry: the same batch is new again.
  produce_outcome again;
  ASSERT_TRUE(wait_until(
      [&] {
        again = c->produce("exp", 0, batch);
        return again.error == errc::ok && !again.duplicate;
      },
      10s, 200ms));
  EXPECT_GT(again.base_offset, first.base_offset);
  // Rebuilt from the log at start-up, the state expires too.
  auto other = make_value_batch({"b"}, 78, 0);
  ASSERT_ERRC(c->produce("exp", 0, other).error, errc::ok);
  ASSERT_EQ(b.sigterm_and_wait(), 0);
  std::this_thread::sleep_for(1200ms);  // the producer's idle time is what this test is about
  ASSERT_TRUE(b.restart());
  auto d = raw_client::connect(b.client_port());
  ASSERT_TRUE(d);
  auto after = d->produce("exp", 0, other);
  ASSERT_ERRC(after.error, errc::ok) << after.message;
  EXPECT_FALSE(after.duplicate) << "an expired producer was rebuilt from the log";
}

// 220,000 producers of one message each (random producer ids): before expiry and the bound they
// took 168 MB that was never freed and was rebuilt after a restart.
TEST(idempotence_expiry, many_one_shot_producers_keep_memory_bounded) {
  broker_options o;
  o.extra_args = {"--max-producers", "20000"};
  broker_process b(o);
  ASSERT_TRUE(b.start());
  auto c = raw_client::connect(b.client_port());
  ASSERT_TRUE(c);
  ASSERT_ERRC(c->create_topic("many", 1).first, errc::ok);
  auto produce_many = [&](int64_t first_pid, int n) {
    int sent = 0, got = 0;
    while (got < n) {
      while (sent < n && sent - got < 200) {
        auto f = produce_frame(c->next_cid(), "many", 0, make_value_batch({"x"}, first_pid + sent, 0));
        ASSERT_TRUE(c->conn().send_bytes(f));
        ++sent;
      }
      auto r = c->conn().read_response();
      ASSERT_TRUE(r) << r.error().to_string();
      ++got;
    }
  };
  produce_many(1'000'000, 20'000);  // warm-up
  int64_t before = resident_kib(b.pid());
  produce_many(2'000'000, 220'000);
  int64_t after = resident_kib(b.pid());
  if (built_with_asan()) GTEST_SKIP() << "AddressSanitizer build: resident memory not comparable";
  EXPECT_LT(after - before, 24 * 1024) << "KiB added by 220,000 one-shot producers";
  // Rebuilt after a restart: bounded the same way.
  ASSERT_EQ(b.sigterm_and_wait(), 0);
  ASSERT_TRUE(b.restart());
  EXPECT_LT(resident_kib(b.pid()), 96 * 1024) << "KiB resident after rebuilding producer state";
}

}  // namespace
}  // namespace ferry::test
