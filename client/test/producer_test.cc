// Producer, reader and admin against an in-process fake broker (client/test/fake_broker.h):
// batching, ordering, retries after a dropped connection or not_leader, idempotent resends.
// The producer's throughput against the fake: bench/client_bench.cc (not a test).
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "client/test/fake_broker.h"
#include "ferry/client/client.h"

namespace fc = ferry::client;
using ferry::client::testing::fake_broker;

namespace {

fc::producer_options popts(const fake_broker& b) {
  fc::producer_options o;
  o.bootstrap = b.address();
  o.retry_backoff = std::chrono::milliseconds(10);
  o.delivery_timeout = std::chrono::seconds(20);
  return o;
}

TEST(producer, delivers_in_order_with_offsets) {
  fake_broker b;
  b.add_topic("t", 1);
  auto o = popts(b);
  o.batch_bytes = 4096;
  auto p = fc::producer::create(o);
  ASSERT_TRUE(p);
  std::vector<int64_t> offsets;
  std::mutex mu;
  for (int i = 0; i < 5000; ++i) {
    fc::message m;
    m.value = "v" + std::to_string(i);
    (*p)->send("t", std::move(m), [&, i](const ferry::result<fc::message_id>& r) {
      ASSERT_TRUE(r) << r.error().to_string();
      std::lock_guard lk(mu);
      EXPECT_EQ(r->offset, i);
      EXPECT_EQ(r->topic, "t");
      offsets.push_back(r->offset);
    });
  }
  ASSERT_TRUE((*p)->flush());
  EXPECT_EQ(offsets.size(), 5000u);
  EXPECT_EQ(b.records("t", 0), 5000);
  (*p)->close();

  auto rd = fc::reader::create(fc::client_options{b.address()}, "t", 0, fc::reader::earliest);
  ASSERT_TRUE(rd);
  int64_t next = 0;
  while (next < 5000) {
    auto msgs = (*rd)->poll(std::chrono::milliseconds(100), 64 << 10);
    ASSERT_TRUE(msgs) << msgs.error().to_string();
    for (auto& m : *msgs) {
      ASSERT_EQ(m.offset, next);
      ASSERT_EQ(m.value, "v" + std::to_string(next));
      ++next;
    }
  }
  EXPECT_EQ((*rd)->position(), 5000);
  EXPECT_EQ((*rd)->high_watermark(), 5000);
}

TEST(producer, keyed_messages_follow_partition_for_key) {
  fake_broker b;
  b.add_topic("k", 8);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  std::vector<std::future<ferry::result<fc::message_id>>> futs;
  for (int i = 0; i < 100; ++i) {
    fc::message m;
    m.key = "key-" + std::to_string(i);
    m.value = "x";
    futs.push_back((*p)->send("k", std::move(m)));
  }
  for (int i = 0; i < 100; ++i) {
    auto r = futs[i].get();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->partition, fc::partition_for_key("key-" + std::to_string(i), 8));
  }
  // Batches of several partitions that are ready together travel in one ProduceRequest.
  EXPECT_GT(b.max_partitions_per_request.load(), 1);
}

TEST(producer, keyless_messages_spread_over_partitions_and_share_requests) {
  fake_broker b;
  b.add_topic("s", 4);
  auto o = popts(b);
  o.batch_bytes = 1024;
  auto p = fc::producer::create(o);
  ASSERT_TRUE(p);
  std::set<int32_t> seen;
  std::mutex mu;
  for (int i = 0; i < 2000; ++i) {
    fc::message m;
    m.value = std::string(50, 'x');
    (*p)->send("s", std::move(m), [&](const ferry::result<fc::message_id>& r) {
      ASSERT_TRUE(r);
      std::lock_guard lk(mu);
      seen.insert(r->partition);
    });
  }
  ASSERT_TRUE((*p)->flush());
  EXPECT_EQ(seen.size(), 4u);
  int64_t total = 0;
  for (int i = 0; i < 4; ++i) total += b.records("s", i);
  EXPECT_EQ(total, 2000);
}

TEST(producer, explicit_partition_out_of_range_fails) {
  fake_broker b;
  b.add_topic("e", 2);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  fc::message m;
  m.partition = 5;
  auto r = (*p)->send("e", std::move(m)).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ferry::errc::unknown_partition);
}

TEST(producer, unknown_topic_fails_callbacks) {
  fake_broker b;
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  auto r = (*p)->send("missing", fc::message{}).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ferry::errc::unknown_topic);
  EXPECT_NE(r.error().message.find("missing"), std::string::npos);
}

TEST(producer, dropped_connection_is_retried_without_duplicates) {
  fake_broker b;
  b.add_topic("d", 1);
  b.drop_before_answer_on_produce = 3;  // stored, but the answer never comes
  auto o = popts(b);
  o.batch_bytes = 2048;
  auto p = fc::producer::create(o);
  ASSERT_TRUE(p);
  std::atomic<int> ok{0};
  std::vector<int64_t> offsets(3000, -1);
  for (int i = 0; i < 3000; ++i) {
    fc::message m;
    m.value = "m" + std::to_string(i);
    (*p)->send("d", std::move(m), [&, i](const ferry::result<fc::message_id>& r) {
      ASSERT_TRUE(r) << r.error().to_string();
      offsets[i] = r->offset;
      ++ok;
    });
  }
  ASSERT_TRUE((*p)->flush());
  EXPECT_EQ(ok, 3000);
  EXPECT_EQ(b.records("d", 0), 3000);  // nothing stored twice
  for (int i = 0; i < 3000; ++i) EXPECT_EQ(offsets[i], i);
}

TEST(producer, not_leader_is_retried) {
  fake_broker b;
  b.add_topic("n", 1);
  b.not_leader_on_produce = 1;
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  fc::message m;
  m.value = "v";
  auto r = (*p)->send("n", std::move(m)).get();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->offset, 0);
  EXPECT_EQ(b.records("n", 0), 1);
}

TEST(producer, broker_down_fails_after_delivery_timeout) {
  auto o = fc::producer_options{};
  o.bootstrap = "127.0.0.1:1";  // nothing listens there
  o.delivery_timeout = std::chrono::milliseconds(500);
  o.retry_backoff = std::chrono::milliseconds(50);
  auto p = fc::producer::create(o);
  ASSERT_TRUE(p);
  auto r = (*p)->send("t", fc::message{}).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ferry::errc::connection_closed);
}

TEST(producer, delayed_messages_round_trip_and_kinds_do_not_mix) {
  fake_broker b;
  b.add_topic("late", 1);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  fc::message rel;
  rel.value = "rel";
  rel.delay_ms = 60'000;
  fc::message abs;
  abs.value = "abs";
  abs.deliver_at_ms = 5'000'000;
  fc::message plain;
  plain.value = "plain";
  plain.headers = {{"h", "1"}};
  (*p)->send("late", rel, nullptr);
  (*p)->send("late", abs, nullptr);
  (*p)->send("late", plain, nullptr);
  ASSERT_TRUE((*p)->flush());
  auto rd = fc::reader::create(fc::client_options{b.address()}, "late", 0, 0);
  ASSERT_TRUE(rd);
  auto msgs = (*rd)->poll(std::chrono::milliseconds(100));
  ASSERT_TRUE(msgs);
  ASSERT_EQ(msgs->size(), 3u);
  EXPECT_EQ((*msgs)[0].deliver_at_ms, 1000 + 60'000);  // the fake stamps append_time 1000
  EXPECT_EQ((*msgs)[1].deliver_at_ms, 5'000'000);
  EXPECT_FALSE((*msgs)[2].deliver_at_ms);
  ASSERT_EQ((*msgs)[2].headers.size(), 1u);
  EXPECT_EQ((*msgs)[2].headers[0].key, "h");
  EXPECT_EQ((*msgs)[2].headers[0].value, "1");
  EXPECT_FALSE((*msgs)[2].key);
}

TEST(producer, both_delay_kinds_on_one_message_is_invalid) {
  fake_broker b;
  b.add_topic("x", 1);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  fc::message m;
  m.delay_ms = 1;
  m.deliver_at_ms = 2;
  auto r = (*p)->send("x", m).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ferry::errc::invalid_argument);
}

TEST(producer, send_after_close_fails_with_shutting_down) {
  fake_broker b;
  b.add_topic("c", 1);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  (*p)->close();
  auto r = (*p)->send("c", fc::message{}).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ferry::errc::shutting_down);
}

TEST(reader, skips_records_below_position_and_resolves_latest) {
  fake_broker b;
  b.add_topic("r", 1);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  for (int i = 0; i < 10; ++i) {
    fc::message m;
    m.value = std::to_string(i);
    (*p)->send("r", std::move(m), nullptr);
  }
  ASSERT_TRUE((*p)->flush());  // one batch of 10
  auto rd = fc::reader::create(fc::client_options{b.address()}, "r", 0, 7);
  ASSERT_TRUE(rd);
  auto msgs = (*rd)->poll(std::chrono::milliseconds(0));
  ASSERT_TRUE(msgs);
  ASSERT_EQ(msgs->size(), 3u);
  EXPECT_EQ(msgs->front().offset, 7);
  EXPECT_EQ(msgs->front().id(), "r/0/7");
  auto latest = fc::reader::create(fc::client_options{b.address()}, "r", 0, fc::reader::latest);
  ASSERT_TRUE(latest);
  EXPECT_EQ((*latest)->position(), 10);
  auto beyond = fc::reader::create(fc::client_options{b.address()}, "r", 0, 50);
  ASSERT_TRUE(beyond);
  auto err = (*beyond)->poll(std::chrono::milliseconds(0));
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().code, ferry::errc::offset_out_of_range);
  auto nopart = fc::reader::create(fc::client_options{b.address()}, "r", 3, fc::reader::earliest);
  ASSERT_FALSE(nopart);
  EXPECT_EQ(nopart.error().code, ferry::errc::unknown_partition);
}

TEST(admin, creates_lists_describes_and_deletes) {
  fake_broker b;
  auto a = fc::admin::create(fc::client_options{b.address()});
  ASSERT_TRUE(a);
  fc::topic_config cfg;
  cfg.partitions = 3;
  auto c = (*a)->create_topic("orders", cfg);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->partitions, 3);
  auto again = (*a)->create_topic("orders", cfg);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ferry::errc::topic_exists);
  auto l = (*a)->list_topics();
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].name, "orders");
  auto d = (*a)->describe_topic("orders");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->partitions.size(), 3u);
  ASSERT_TRUE((*a)->delete_topic("orders"));
  auto gone = (*a)->describe_topic("orders");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ferry::errc::unknown_topic);
  EXPECT_NE(gone.error().message.find("orders"), std::string::npos);
}

TEST(admin, connection_refused_is_connection_closed) {
  auto a = fc::admin::create(fc::client_options{"127.0.0.1:1"});
  ASSERT_TRUE(a);
  auto l = (*a)->list_topics();
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().code, ferry::errc::connection_closed);
}

}  // namespace
