// The same client tests against both brokers: the in-process fake (client/test/fake_broker.h) and
// a real ferryd process (tests/support/broker_process.h, reached through a loopback TCP proxy).
// What passes against the fake must pass against ferryd, so the fake cannot drift from the broker
// where the client depends on it: produce and read back, an idempotent retry after a lost answer,
// a consumer's ack / nack / redelivery, and the admin calls for topics and subscriptions.
//
// Each test runs twice: against/client_shared.NAME/fake and against/client_shared.NAME/ferryd.
// A test asks for its broker with broker() (started in the test's thread) and uses only what both
// offer: the bootstrap address, and lose_answer() for the one fault both can make.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "client/test/fake_broker.h"
#include "ferry/client/client.h"
#include "tests/support/broker_process.h"
#include "tests/support/tcp_proxy.h"

namespace ferry::client {
namespace {

using namespace std::chrono_literals;
using ferry::test::wait_until;

enum class backend { fake, ferryd };

// One broker for one test.
class target {
 public:
  virtual ~target() = default;
  virtual std::string bootstrap() const = 0;
  // Connections the broker (or the proxy in front of it) has accepted so far.
  virtual uint64_t connections() const = 0;
  // Calls `send`, which must send one message to `topic`/`partition`, and makes the answer to its
  // produce request get lost after the broker stored the batch: the connection is cut then.
  [[nodiscard]] virtual ::testing::AssertionResult lose_answer(const std::string& topic, int32_t partition,
                                                               const std::function<void()>& send) = 0;
};

class fake_target : public target {
 public:
  std::string bootstrap() const override { return broker_.address(); }
  uint64_t connections() const override { return static_cast<uint64_t>(broker_.connections_accepted.load()); }
  ::testing::AssertionResult lose_answer(const std::string&, int32_t, const std::function<void()>& send) override {
    const int n = broker_.produce_requests + 1;
    broker_.drop_before_answer_on_produce = n;
    send();
    if (!wait_until([&] { return broker_.produce_requests >= n; }, 10s))
      return ::testing::AssertionFailure() << "no produce request arrived";
    return ::testing::AssertionSuccess();
  }

 private:
  mutable testing::fake_broker broker_;
};

// ferryd behind a proxy that can cut the client's connections. With `slow_sync`, every fdatasync
// takes 1.5 s more (the log.before_fsync failpoint): a produce stays stored-but-unanswered long
// enough to cut its connection at that moment.
class ferryd_target : public target {
 public:
  explicit ferryd_target(bool slow_sync) {
    if (slow_sync) broker_.options().env.emplace_back("FERRY_FAILPOINTS", "log.before_fsync=sleep-1500");
  }
  ::testing::AssertionResult start() {
    auto r = broker_.start();
    if (r) proxy_ = std::make_unique<ferry::test::tcp_proxy>(broker_.client_port());
    return r;
  }
  std::string bootstrap() const override { return "127.0.0.1:" + std::to_string(proxy_->port()); }
  uint64_t connections() const override { return proxy_->connections_accepted(); }
  ::testing::AssertionResult lose_answer(const std::string& topic, int32_t partition,
                                         const std::function<void()>& send) override {
#ifndef FERRY_FAILPOINTS
    (void)topic, (void)partition, (void)send;
    return ::testing::AssertionFailure() << "needs a build with FERRY_FAILPOINTS";
#else
    // Watched directly, not through the proxy that is about to cut.
    client_options direct;
    direct.bootstrap = broker_.bootstrap();
    auto a = admin::create(direct);
    if (!a) return ::testing::AssertionFailure() << a.error().to_string();
    auto stored_unsynced = [&] {
      auto d = (*a)->describe_topic(topic);
      if (!d) return false;
      for (const auto& p : d->partitions)
        if (p.partition == partition) return p.log_end_offset > p.high_watermark;
      return false;
    };
    send();
    if (!wait_until(stored_unsynced, 10s))
      return ::testing::AssertionFailure() << "the batch was never seen stored and not yet synced";
    proxy_->cut_all();
    return ::testing::AssertionSuccess();
#endif
  }

 private:
  ferry::test::broker_process broker_;
  std::unique_ptr<ferry::test::tcp_proxy> proxy_;
};

enum class needs { nothing, lost_answers };

class client_shared : public ::testing::TestWithParam<backend> {
 protected:
  // The broker of this test, started on first use.
  target& broker(needs what = needs::nothing) {
    if (!target_) {
      if (GetParam() == backend::fake) {
        target_ = std::make_unique<fake_target>();
      } else {
        auto t = std::make_unique<ferryd_target>(what == needs::lost_answers);
        EXPECT_TRUE(t->start());
        target_ = std::move(t);
      }
    }
    return *target_;
  }
  client_options options() {
    client_options o;
    o.bootstrap = broker().bootstrap();
    return o;
  }
  std::unique_ptr<admin> make_admin() {
    auto a = admin::create(options());
    EXPECT_TRUE(a) << a.error().to_string();
    return a ? std::move(*a) : nullptr;
  }
  std::unique_ptr<producer> make_producer() {
    producer_options o;
    o.bootstrap = broker().bootstrap();
    o.retry_backoff = 10ms;
    o.delivery_timeout = 30s;
    auto p = producer::create(o);
    EXPECT_TRUE(p) << p.error().to_string();
    return p ? std::move(*p) : nullptr;
  }
  void create_topic(const std::string& name, int32_t partitions) {
    topic_config cfg;
    cfg.partitions = partitions;
    auto r = make_admin()->create_topic(name, cfg);
    ASSERT_TRUE(r) << r.error().to_string();
  }
  // Every message of `topic`/`partition` from the start up to its high-water mark now.
  std::vector<received_message> read_partition(const std::string& topic, int32_t partition) {
    auto d = make_admin()->describe_topic(topic);
    EXPECT_TRUE(d) << d.error().to_string();
    if (!d) return {};
    int64_t end = d->partitions.at(static_cast<size_t>(partition)).high_watermark;
    auto r = reader::create(options(), topic, partition, reader::earliest);
    EXPECT_TRUE(r) << r.error().to_string();
    if (!r) return {};
    std::vector<received_message> out;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while ((*r)->position() < end && std::chrono::steady_clock::now() < deadline) {
      auto got = (*r)->poll(200ms);
      EXPECT_TRUE(got) << got.error().to_string();
      if (!got) break;
      for (auto& m : *got) out.push_back(std::move(m));
    }
    return out;
  }
  // Polls `c` until `n` deliveries arrived or 20 s passed.
  static std::vector<delivery> poll_n(consumer& c, size_t n) {
    std::vector<delivery> out;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
      auto r = c.poll(100ms, n - out.size());
      EXPECT_TRUE(r) << r.error().to_string();
      if (!r) break;
      for (auto& d : *r) out.push_back(std::move(d));
    }
    return out;
  }

  std::unique_ptr<target> target_;
};

TEST_P(client_shared, produce_and_read_back) {
  broker();
  create_topic("rt", 3);
  auto p = make_producer();
  ASSERT_TRUE(p);
  std::vector<std::future<result<message_id>>> acks;
  std::vector<message> sent;
  for (int i = 0; i < 30; ++i) {
    message m;
    if (i % 3 != 0) m.key = "key-" + std::to_string(i % 7);
    m.value = "value-" + std::to_string(i);
    if (i % 5 == 0) m.headers = {{"n", std::to_string(i)}, {"empty", ""}};
    if (i == 29) m.partition = 2;
    m.timestamp_ms = 1'700'000'000'000 + i;
    sent.push_back(m);
    acks.push_back(p->send("rt", std::move(m)));
  }
  std::map<std::pair<int32_t, int64_t>, size_t> by_position;
  for (size_t i = 0; i < acks.size(); ++i) {
    auto id = acks[i].get();
    ASSERT_TRUE(id) << i << ": " << id.error().to_string();
    EXPECT_EQ(id->topic, "rt");
    if (sent[i].partition) {
      EXPECT_EQ(id->partition, *sent[i].partition);
    } else if (sent[i].key) {
      EXPECT_EQ(id->partition, partition_for_key(*sent[i].key, 3)) << "a keyed message goes where its key hashes";
    }
    EXPECT_TRUE(by_position.emplace(std::pair{id->partition, id->offset}, i).second) << id->to_string() << " twice";
  }
  size_t read = 0;
  for (int32_t part = 0; part < 3; ++part) {
    int64_t next = 0;
    for (const auto& m : read_partition("rt", part)) {
      SCOPED_TRACE(m.id());
      EXPECT_EQ(m.offset, next++) << "offsets of a partition are contiguous from 0";
      auto it = by_position.find({m.partition, m.offset});
      ASSERT_NE(it, by_position.end()) << "read a message that was not acknowledged there";
      const message& want = sent[it->second];
      EXPECT_EQ(m.key, want.key);
      EXPECT_EQ(m.value, want.value);
      EXPECT_EQ(m.timestamp_ms, want.timestamp_ms);
      ASSERT_EQ(m.headers.size(), want.headers.size());
      for (size_t h = 0; h < want.headers.size(); ++h) {
        EXPECT_EQ(m.headers[h].key, want.headers[h].first);
        EXPECT_EQ(m.headers[h].value, want.headers[h].second);
      }
      ++read;
    }
  }
  EXPECT_EQ(read, sent.size());
  auto latest = reader::create(options(), "rt", 2, reader::latest);
  ASSERT_TRUE(latest);
  auto d = make_admin()->describe_topic("rt");
  ASSERT_TRUE(d);
  EXPECT_EQ((*latest)->position(), d->partitions[2].high_watermark) << "latest is the high-water mark";
}

TEST_P(client_shared, idempotent_retry_after_a_lost_answer_stores_once) {
#ifndef FERRY_FAILPOINTS
  if (GetParam() == backend::ferryd) GTEST_SKIP() << "losing an answer of ferryd needs FERRY_FAILPOINTS";
#endif
  auto& b = broker(needs::lost_answers);
  create_topic("idem", 1);
  auto p = make_producer();
  ASSERT_TRUE(p);
  const uint64_t connections_before = b.connections();
  std::future<result<message_id>> first;
  ASSERT_TRUE(b.lose_answer("idem", 0, [&] {
    message m;
    m.value = "first";
    first = p->send("idem", std::move(m));
  }));
  // The producer resends the batch on a new connection; the broker knows it by its producer id
  // and sequence and answers with the offset it stored it at.
  auto r = first.get();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->offset, 0);
  EXPECT_GT(b.connections(), connections_before) << "the producer connected again to retry";
  message m;
  m.value = "second";
  auto second = p->send("idem", std::move(m)).get();
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(second->offset, 1);
  std::vector<std::string> values;
  for (const auto& got : read_partition("idem", 0)) values.push_back(got.value.value_or(""));
  EXPECT_EQ(values, (std::vector<std::string>{"first", "second"})) << "the retried batch is stored once";
}

TEST_P(client_shared, consumer_acks_nacks_and_gets_redeliveries) {
  broker();
  create_topic("jobs", 1);
  subscription_config cfg;
  cfg.start = start_position::earliest;
  ASSERT_TRUE(make_admin()->create_subscription("jobs", "work", cfg));
  {
    auto p = make_producer();
    ASSERT_TRUE(p);
    for (const char* v : {"a", "b", "c"}) {
      message m;
      m.value = v;
      ASSERT_TRUE(p->send("jobs", std::move(m)).get());
    }
  }
  consumer_options co;
  co.bootstrap = broker().bootstrap();
  co.member_name = "first";
  auto c1 = consumer::create(co, "jobs", "work");
  ASSERT_TRUE(c1) << c1.error().to_string();
  auto got = poll_n(**c1, 3);
  ASSERT_EQ(got.size(), 3u);
  std::map<std::string, delivery> by_value;
  for (auto& d : got) {
    EXPECT_EQ(d.delivery_count, 1) << d.id();
    EXPECT_EQ(d.member_id, (*c1)->member_id());
    by_value.emplace(d.value.value_or(""), d);
  }
  ASSERT_EQ(by_value.size(), 3u);
  // a: done. b: nacked, back at once. c: held until the member leaves.
  (*c1)->ack(by_value.at("a"));
  (*c1)->nack(by_value.at("b"), 0ms);
  ASSERT_TRUE((*c1)->flush());
  auto again = poll_n(**c1, 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].value, "b");
  EXPECT_EQ(again[0].offset, by_value.at("b").offset);
  EXPECT_EQ(again[0].delivery_count, 2) << "a nacked message comes back with its delivery count raised";
  (*c1)->ack(again[0]);
  ASSERT_TRUE((*c1)->flush());
  (*c1)->close();  // leaves: c, never settled, goes to another member

  co.member_name = "second";
  auto c2 = consumer::create(co, "jobs", "work");
  ASSERT_TRUE(c2) << c2.error().to_string();
  auto rest = poll_n(**c2, 1);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].value, "c");
  EXPECT_EQ(rest[0].delivery_count, 2) << "what the member that left held is redelivered";
  (*c2)->ack(rest[0]);
  ASSERT_TRUE((*c2)->flush());
  auto extra = (*c2)->poll(200ms, 10);
  ASSERT_TRUE(extra);
  EXPECT_TRUE(extra->empty()) << "acked messages are not delivered again, e.g. " << extra->front().id();
  auto a = make_admin();
  std::string last;
  ASSERT_TRUE(wait_until(
      [&] {
        auto d = a->describe_subscription("jobs", "work");
        if (!d || d->partitions.size() != 1) return false;
        const auto& p = d->partitions[0];
        last = "cursor " + std::to_string(p.cursor) + ", backlog " + std::to_string(p.backlog) + ", in flight " +
               std::to_string(p.in_flight) + ", high-water mark " + std::to_string(p.high_watermark);
        return p.backlog == 0 && p.in_flight == 0 && p.cursor >= 3;
      },
      10s))
      << "everything acked: no backlog, the cursor past the three messages; " << last;
  (*c2)->close();
}

TEST_P(client_shared, admin_topics_and_subscriptions) {
  broker();
  auto a = make_admin();
  ASSERT_TRUE(a);
  topic_config tc;
  tc.partitions = 3;
  auto created = a->create_topic("orders", tc);
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_EQ(created->partitions, 3);
  auto again = a->create_topic("orders", tc);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::topic_exists);
  auto topics = a->list_topics();
  ASSERT_TRUE(topics);
  auto listed = std::find_if(topics->begin(), topics->end(), [](const auto& t) { return t.name == "orders"; });
  ASSERT_NE(listed, topics->end());
  EXPECT_EQ(listed->partitions, 3);
  auto d = a->describe_topic("orders");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->name, "orders");
  ASSERT_EQ(d->partitions.size(), 3u);
  for (int32_t p = 0; p < 3; ++p) {
    EXPECT_EQ(d->partitions[static_cast<size_t>(p)].partition, p);
    EXPECT_EQ(d->partitions[static_cast<size_t>(p)].high_watermark, 0);
  }

  auto sub = a->create_subscription("orders", "billing", subscription_config{});
  ASSERT_TRUE(sub) << sub.error().to_string();
  EXPECT_EQ(sub->start, start_position::latest);
  EXPECT_EQ(sub->ack_timeout, 30s);
  EXPECT_EQ(sub->max_deliveries, 10);
  EXPECT_TRUE(sub->ordered);
  EXPECT_EQ(sub->backoff, backoff_kind::exponential);
  EXPECT_EQ(sub->backoff_initial, 1s);
  EXPECT_EQ(sub->backoff_max, 60s);
  EXPECT_EQ(sub->dead_letter_topic, "orders.billing.dlq");
  auto dup = a->create_subscription("orders", "billing", subscription_config{});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, errc::subscription_exists);
  auto no_topic = a->create_subscription("nope", "billing", subscription_config{});
  ASSERT_FALSE(no_topic);
  EXPECT_EQ(no_topic.error().code, errc::unknown_topic);

  auto subs = a->list_subscriptions("orders");
  ASSERT_TRUE(subs);
  ASSERT_EQ(subs->size(), 1u);
  EXPECT_EQ((*subs)[0].topic, "orders");
  EXPECT_EQ((*subs)[0].name, "billing");
  EXPECT_EQ((*subs)[0].members, 0);
  auto all = a->list_subscriptions("");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 1u);
  auto sd = a->describe_subscription("orders", "billing");
  ASSERT_TRUE(sd) << sd.error().to_string();
  EXPECT_EQ(sd->topic, "orders");
  EXPECT_EQ(sd->name, "billing");
  EXPECT_EQ(sd->config.dead_letter_topic, "orders.billing.dlq");
  EXPECT_EQ(sd->partitions.size(), 3u);
  EXPECT_TRUE(sd->members.empty());
  auto seek = a->seek_subscription("orders", "billing", seek_target::earliest, 0, std::nullopt, true);
  ASSERT_TRUE(seek) << seek.error().to_string();
  ASSERT_EQ(seek->size(), 3u);
  for (const auto& s : *seek) {
    EXPECT_FALSE(s.error);
    EXPECT_EQ(s.new_cursor, 0);
  }

  ASSERT_TRUE(a->delete_subscription("orders", "billing"));
  auto gone = a->describe_subscription("orders", "billing");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, errc::unknown_subscription);
  auto twice = a->delete_subscription("orders", "billing");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, errc::unknown_subscription);

  ASSERT_TRUE(a->delete_topic("orders"));
  auto no_more = a->describe_topic("orders");
  ASSERT_FALSE(no_more);
  EXPECT_EQ(no_more.error().code, errc::unknown_topic);
  auto left = a->list_topics();
  ASSERT_TRUE(left);
  EXPECT_TRUE(std::none_of(left->begin(), left->end(), [](const auto& t) { return t.name == "orders"; }));
}

INSTANTIATE_TEST_SUITE_P(against, client_shared, ::testing::Values(backend::fake, backend::ferryd),
                         [](const ::testing::TestParamInfo<backend>& i) {
                           return i.param == backend::fake ? "fake" : "ferryd";
                         });

}  // namespace
}  // namespace ferry::client
