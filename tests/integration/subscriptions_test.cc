// Subscriptions against a real ferryd through the real client: fan-out to every subscription,
// per-key order with several members, redelivery after a member is killed, nack delays, dead
// letters, and no confirmed ack lost across kill -9 of the broker.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ferry/client/client.h"
#include "tests/support/broker_process.h"
#include "tests/support/process.h"

namespace ferry::test {
namespace {

namespace fc = ferry::client;
using namespace std::chrono_literals;

std::string ferryctl_path() {
  if (const char* v = std::getenv("FERRYCTL"); v && *v) return v;
  return FERRYCTL_PATH;
}

class subscriptions : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(broker_.start()); }

  fc::client_options opts() const {
    fc::client_options o;
    o.bootstrap = broker_.bootstrap();
    return o;
  }
  std::unique_ptr<fc::admin> admin() {
    auto a = fc::admin::create(opts());
    EXPECT_TRUE(a) << a.error().to_string();
    return a ? std::move(*a) : nullptr;
  }
  void create_topic(const std::string& t, int partitions) {
    fc::topic_config c;
    c.partitions = partitions;
    auto r = admin()->create_topic(t, c);
    ASSERT_TRUE(r) << r.error().to_string();
  }
  void create_sub(const std::string& t, const std::string& s, fc::subscription_config c = {}) {
    c.start = fc::start_position::earliest;
    auto r = admin()->create_subscription(t, s, c);
    ASSERT_TRUE(r) << r.error().to_string();
  }
  // Publishes `n` messages with key "k<i % keys>" (keyless if keys == 0), value "v<i>"; returns
  // the id of each (index i -> id).
  std::vector<std::string> produce(const std::string& t, int n, int keys) {
    fc::producer_options po;
    po.bootstrap = broker_.bootstrap();
    auto p = fc::producer::create(po);
    EXPECT_TRUE(p) << p.error().to_string();
    std::vector<std::string> ids(static_cast<size_t>(n));
    std::mutex mu;
    for (int i = 0; i < n; ++i) {
      fc::message m;
      if (keys > 0) m.key = "k" + std::to_string(i % keys);
      m.value = "v" + std::to_string(i);
      (*p)->send(t, m, [&, i](const result<fc::message_id>& r) {
        ASSERT_TRUE(r) << r.error().to_string();
        std::lock_guard lk(mu);
        ids[static_cast<size_t>(i)] = r->to_string();
      });
    }
    EXPECT_TRUE((*p)->flush());
    return ids;
  }
  std::unique_ptr<fc::consumer> consumer(const std::string& t, const std::string& s, const std::string& name,
                                         int credit = 100) {
    fc::consumer_options co;
    co.bootstrap = broker_.bootstrap();
    co.member_name = name;
    co.credit_messages = credit;
    auto c = fc::consumer::create(co, t, s);
    EXPECT_TRUE(c) << c.error().to_string();
    return c ? std::move(*c) : nullptr;
  }
  fc::subscription_description describe(const std::string& t, const std::string& s) {
    auto d = admin()->describe_subscription(t, s);
    EXPECT_TRUE(d) << d.error().to_string();
    return d ? *d : fc::subscription_description{};
  }
  int64_t backlog(const std::string& t, const std::string& s) {
    int64_t b = 0;
    for (auto& p : describe(t, s).partitions) b += p.backlog;
    return b;
  }

  // Polls and acks until `want` distinct messages were seen or `timeout`; returns ids seen (each
  // id with how often it was delivered).
  std::map<std::string, int> drain(fc::consumer& c, size_t want, std::chrono::milliseconds timeout = 30s) {
    std::map<std::string, int> seen;
    auto deadline = clock_type::now() + timeout;
    while (seen.size() < want && clock_type::now() < deadline) {
      auto got = c.poll(200ms);
      EXPECT_TRUE(got) << got.error().to_string();
      if (!got) break;
      for (auto& d : *got) {
        seen[d.id()]++;
        c.ack(d);
      }
    }
    EXPECT_TRUE(c.flush());
    return seen;
  }

  broker_process broker_;
};

TEST_F(subscriptions, two_subscriptions_each_receive_every_message) {
  create_topic("orders", 3);
  create_sub("orders", "billing");
  create_sub("orders", "shipping");
  auto ids = produce("orders", 3000, 100);
  std::set<std::string> all(ids.begin(), ids.end());
  for (const char* s : {"billing", "shipping"}) {
    SCOPED_TRACE(s);
    auto c = consumer("orders", s, s, 500);
    auto seen = drain(*c, all.size());
    EXPECT_EQ(seen.size(), all.size());
    for (auto& id : all) EXPECT_TRUE(seen.contains(id)) << id << " missing";
    c->close();
    ASSERT_TRUE(wait_until([&] { return backlog("orders", s) == 0; }, 10s)) << "every ack is durable";
  }
}

TEST_F(subscriptions, per_key_order_holds_with_four_members_and_1000_keys) {
  create_topic("events", 4);
  create_sub("events", "work");
  constexpr int n = 20000;
  auto ids = produce("events", n, 1000);
  // One global log of first deliveries in the order members received them. Message n+1 of a key is
  // only delivered after message n's ack is durable, so this order is the delivery order.
  std::mutex mu;
  std::map<std::string, std::vector<int64_t>> by_key;  // key -> offsets as received (partition is fixed per key)
  std::atomic<int> total{0};
  std::vector<int> per_member(4, 0);
  std::vector<std::thread> threads;
  threads.reserve(4);
  std::vector<std::unique_ptr<fc::consumer>> cs;
  cs.reserve(4);
  for (int i = 0; i < 4; ++i) cs.push_back(consumer("events", "work", "m" + std::to_string(i), 64));
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto deadline = clock_type::now() + 90s;
      while (total.load() < n && clock_type::now() < deadline) {
        auto got = cs[static_cast<size_t>(i)]->poll(100ms);
        if (!got) continue;
        for (auto& d : *got) {
          {
            std::lock_guard lk(mu);
            if (d.delivery_count == 1) by_key[*d.key].push_back(d.offset);
            ++per_member[static_cast<size_t>(i)];
          }
          cs[static_cast<size_t>(i)]->ack(d);
          total.fetch_add(1);
        }
      }
      (void)cs[static_cast<size_t>(i)]->flush();
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(total.load(), n) << "not every message was delivered";
  ASSERT_EQ(by_key.size(), 1000u);
  size_t violations = 0;
  for (auto& [k, offs] : by_key) {
    if (!std::is_sorted(offs.begin(), offs.end()) && ++violations <= 3)
      ADD_FAILURE() << "key " << k << " delivered out of order";
  }
  EXPECT_EQ(violations, 0u);
  for (int i = 0; i < 4; ++i)
    EXPECT_GT(per_member[static_cast<size_t>(i)], n / 20)
        << "member " << i << " got almost nothing: work is not shared";
  for (auto& c : cs) c->close();
}

TEST_F(subscriptions, killed_member_has_its_messages_redelivered_and_nothing_is_lost) {
  create_topic("jobs", 2);
  fc::subscription_config cfg;
  cfg.ack_timeout = 60s;  // redelivery must come from the member's death, not from a timeout
  create_sub("jobs", "workers", cfg);
  auto ids = produce("jobs", 200, 0);
  // A ferryctl consumer in its own process takes messages and never acks; then it is killed -9.
  child_process victim;
  ASSERT_TRUE(victim.start({ferryctl_path(), "--bootstrap", broker_.bootstrap(), "--output", "json", "consume", "jobs",
                            "--sub", "workers", "--no-ack", "--count", "100000", "--wait", "60s"}));
  std::string line;
  int held = 0;
  while (held < 20 && victim.read_line(line, 20s)) ++held;
  ASSERT_GE(held, 20) << "the victim received too little; stderr: " << victim.stderr_text();
  ASSERT_TRUE(wait_until(
      [&] {
        int64_t in_flight = 0;
        for (auto& p : describe("jobs", "workers").partitions) in_flight += p.in_flight;
        return in_flight >= 20;
      },
      10s));
  victim.kill9();
  // The survivor gets everything, including what the victim held (delivery count 2).
  auto c = consumer("jobs", "workers", "survivor", 50);
  std::map<std::string, int> counts;
  auto deadline = clock_type::now() + 30s;
  while (counts.size() < ids.size() && clock_type::now() < deadline) {
    auto got = c->poll(200ms);
    ASSERT_TRUE(got);
    for (auto& d : *got) {
      counts[d.id()] = std::max(counts[d.id()], d.delivery_count);
      c->ack(d);
    }
  }
  ASSERT_TRUE(c->flush());
  EXPECT_EQ(counts.size(), ids.size()) << "messages lost with the killed member";
  int redelivered = 0;
  for (auto& [id, n] : counts) redelivered += n >= 2 ? 1 : 0;
  EXPECT_GE(redelivered, held) << "what the victim held comes again, counted as a redelivery";
  ASSERT_TRUE(wait_until([&] { return backlog("jobs", "workers") == 0; }, 10s));
  c->close();
}

TEST_F(subscriptions, nack_with_delay_redelivers_no_earlier_than_the_delay) {
  create_topic("retry", 1);
  fc::subscription_config cfg;
  cfg.max_deliveries = 0;
  create_sub("retry", "s", cfg);
  produce("retry", 5, 0);
  auto c = consumer("retry", "s", "m");
  std::map<std::string, clock_type::time_point> nacked_at;
  std::map<std::string, std::chrono::milliseconds> waited;
  auto deadline = clock_type::now() + 20s;
  while (waited.size() < 5 && clock_type::now() < deadline) {
    auto got = c->poll(100ms);
    ASSERT_TRUE(got);
    for (auto& d : *got) {
      if (d.delivery_count == 1) {
        nacked_at[d.id()] = clock_type::now();
        c->nack(d, 700ms);
      } else {
        waited[d.id()] = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - nacked_at[d.id()]);
        EXPECT_EQ(d.delivery_count, 2);
        c->ack(d);
      }
    }
  }
  ASSERT_EQ(waited.size(), 5u);
  for (auto& [id, w] : waited) EXPECT_GE(w.count(), 700) << id << " came back early";
  ASSERT_TRUE(c->flush());
  c->close();
}

TEST_F(subscriptions, max_deliveries_moves_a_message_to_the_dead_letter_topic_with_headers) {
  create_topic("pay", 1);
  fc::subscription_config cfg;
  cfg.max_deliveries = 3;
  cfg.backoff = fc::backoff_kind::fixed;
  cfg.backoff_initial = 10ms;
  create_sub("pay", "charge", cfg);
  auto ids = produce("pay", 2, 1);  // both key k0: the second waits behind the poison one
  auto c = consumer("pay", "charge", "m");
  std::vector<int> deliveries_of_poison;
  std::string good;
  auto deadline = clock_type::now() + 20s;
  while (good.empty() && clock_type::now() < deadline) {
    auto got = c->poll(100ms);
    ASSERT_TRUE(got);
    for (auto& d : *got) {
      if (d.id() == ids[0]) {
        deliveries_of_poison.push_back(d.delivery_count);
        c->nack(d, 0ms);
      } else {
        good = d.id();
        c->ack(d);
      }
    }
  }
  EXPECT_EQ(deliveries_of_poison, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(good, ids[1]) << "the next message of the key follows once the poison one is dead-lettered";
  ASSERT_TRUE(c->flush());
  // The dead letter, with where it came from and why.
  auto d = describe("pay", "charge");
  EXPECT_EQ(d.config.dead_letter_topic, "pay.charge.dlq");
  ASSERT_EQ(d.partitions.size(), 1u);
  EXPECT_EQ(d.partitions[0].dead_lettered, 1);
  ASSERT_TRUE(wait_until([&] { return backlog("pay", "charge") == 0; }, 10s));
  auto r = fc::reader::create(opts(), "pay.charge.dlq", 0, fc::reader::earliest);
  ASSERT_TRUE(r) << r.error().to_string();
  std::vector<fc::received_message> letters;
  ASSERT_TRUE(wait_until(
      [&] {
        auto got = (*r)->poll(100ms);
        if (got) letters.insert(letters.end(), got->begin(), got->end());
        return !letters.empty();
      },
      10s));
  ASSERT_EQ(letters.size(), 1u);
  auto& l = letters[0];
  EXPECT_EQ(l.key, std::optional<std::string>("k0"));
  EXPECT_EQ(l.value, std::optional<std::string>("v0"));
  std::map<std::string, std::string> h;
  for (auto& x : l.headers) h[x.key] = x.value.value_or("");
  EXPECT_EQ(h["ferry-dlq-original-id"], ids[0]);
  EXPECT_EQ(h["ferry-dlq-subscription"], "charge");
  EXPECT_EQ(h["ferry-dlq-delivery-count"], "3");
  EXPECT_NE(h["ferry-dlq-reason"].find("nacked"), std::string::npos) << h["ferry-dlq-reason"];
  EXPECT_FALSE(h["ferry-dlq-time"].empty());
  c->close();
}

TEST_F(subscriptions, kill9_during_acking_loses_no_confirmed_ack_and_no_message) {
  create_topic("ledger", 2);
  fc::subscription_config cfg;
  cfg.max_deliveries = 0;
  create_sub("ledger", "audit", cfg);
  constexpr int n = 5000;
  auto ids = produce("ledger", n, 50);
  std::mutex mu;
  std::set<std::string> confirmed;  // acks the broker answered ok: durable
  std::set<std::string> delivered;  // every id delivered at least once, before or after the crash
  {
    auto c = consumer("ledger", "audit", "before", 200);
    auto deadline = clock_type::now() + 30s;
    while (clock_type::now() < deadline) {
      {
        std::lock_guard lk(mu);
        if (confirmed.size() >= n / 2) break;
      }
      auto got = c->poll(100ms);
      if (!got) break;
      for (auto& d : *got) {
        delivered.insert(d.id());
        auto id = d.id();
        c->ack(d, [&, id](const result<void>& r) {
          if (!r) return;
          std::lock_guard lk(mu);
          confirmed.insert(id);
        });
      }
    }
    // Crash with acks and deliveries in flight.
    broker_.kill9();
  }
  std::set<std::string> confirmed_before;
  {
    std::lock_guard lk(mu);
    confirmed_before = confirmed;
  }
  ASSERT_GE(confirmed_before.size(), static_cast<size_t>(n / 4));
  ASSERT_TRUE(broker_.restart());
  auto c = consumer("ledger", "audit", "after", 200);
  size_t redelivered_confirmed = 0, redeliveries = 0;
  auto deadline = clock_type::now() + 60s;
  std::set<std::string> after;
  while (clock_type::now() < deadline) {
    if (backlog("ledger", "audit") == 0 && after.size() + confirmed_before.size() >= static_cast<size_t>(n)) break;
    auto got = c->poll(200ms);
    ASSERT_TRUE(got);
    for (auto& d : *got) {
      if (confirmed_before.contains(d.id()) && ++redelivered_confirmed <= 3)
        ADD_FAILURE() << d.id() << " was acked (confirmed) before the crash and came again";
      if (d.delivery_count > 1) ++redeliveries;
      after.insert(d.id());
      delivered.insert(d.id());
      c->ack(d);
    }
  }
  ASSERT_TRUE(c->flush());
  EXPECT_EQ(redelivered_confirmed, 0u);
  // No message is lost: each was delivered at least once, before or after the crash. (An ack that
  // was durable but whose answer the crash swallowed is neither confirmed nor redelivered: the
  // backlog check below says the broker holds it acknowledged.)
  for (auto& id : ids) EXPECT_TRUE(delivered.contains(id)) << id << " was never delivered";
  EXPECT_EQ(backlog("ledger", "audit"), 0);
  std::cerr << "confirmed before the crash: " << confirmed_before.size() << ", delivered after: " << after.size()
            << " (" << redeliveries << " redeliveries of unconfirmed acks)\n";
  c->close();
}

TEST_F(subscriptions, delivery_counts_survive_kill9_between_checkpoints) {
  // No checkpoint between the deliveries and the crashes: only the delivery journal knows them.
  broker_.options().extra_args = {"--checkpoint-interval-ms", "600000"};
  ASSERT_TRUE(broker_.restart());
  create_topic("jobs", 2);
  fc::subscription_config cfg;
  cfg.max_deliveries = 0;
  cfg.ack_timeout = 60s;  // nothing expires during the test: every redelivery is a crash's
  create_sub("jobs", "workers", cfg);
  constexpr size_t n = 300;
  auto ids = produce("jobs", static_cast<int>(n), 0);  // keyless: all of them out at once
  for (int round = 1; round <= 4; ++round) {
    auto c = consumer("jobs", "workers", "r" + std::to_string(round), 1000);
    std::map<std::string, int32_t> count;  // id -> delivery_count seen this round
    auto deadline = clock_type::now() + 30s;
    while (count.size() < n && clock_type::now() < deadline) {
      auto got = c->poll(200ms);
      ASSERT_TRUE(got) << got.error().to_string();
      for (auto& d : *got) {
        EXPECT_FALSE(count.contains(d.id())) << d.id() << " delivered twice in one round";
        count[d.id()] = d.delivery_count;
        if (round == 4) c->ack(d);
      }
    }
    ASSERT_EQ(count.size(), n) << "round " << round;
    size_t wrong = 0;
    for (auto& [id, k] : count)
      if (k != round && ++wrong <= 5) ADD_FAILURE() << id << ": delivery_count " << k << " in round " << round;
    EXPECT_EQ(wrong, 0u) << "round " << round;
    if (round < 4) {
      broker_.kill9();  // with every message delivered and none acked
      ASSERT_TRUE(broker_.restart());
    } else {
      ASSERT_TRUE(c->flush());
      EXPECT_TRUE(wait_until([&] { return backlog("jobs", "workers") == 0; }, 10s));
    }
  }
}

TEST_F(subscriptions, state_survives_a_restart_and_seek_dry_run_changes_nothing) {
  create_topic("state", 1);
  create_sub("state", "s");
  produce("state", 100, 0);
  auto c = consumer("state", "s", "m");
  auto seen = drain(*c, 40);
  c->close();
  ASSERT_TRUE(wait_until([&] { return describe("state", "s").partitions[0].cursor >= 40; }, 10s));
  int64_t cursor = describe("state", "s").partitions[0].cursor;
  EXPECT_EQ(broker_.sigterm_and_wait(), 0);
  ASSERT_TRUE(broker_.restart());
  EXPECT_EQ(describe("state", "s").partitions[0].cursor, cursor) << "the cursor survives a clean restart";
  auto dry = admin()->seek_subscription("state", "s", fc::seek_target::earliest, 0, std::nullopt, true);
  ASSERT_TRUE(dry) << dry.error().to_string();
  ASSERT_EQ(dry->size(), 1u);
  EXPECT_EQ((*dry)[0].old_cursor, cursor);
  EXPECT_EQ((*dry)[0].new_cursor, 0);
  EXPECT_EQ(describe("state", "s").partitions[0].cursor, cursor) << "a dry run changes nothing";
  auto real = admin()->seek_subscription("state", "s", fc::seek_target::offset, 10, 0, false);
  ASSERT_TRUE(real) << real.error().to_string();
  EXPECT_EQ(describe("state", "s").partitions[0].cursor, 10);
  auto c2 = consumer("state", "s", "m2");
  auto again = drain(*c2, 90);
  EXPECT_EQ(again.size(), 90u) << "after the seek, offsets 10..99 come again";
  c2->close();
}

}  // namespace
}  // namespace ferry::test

namespace ferry::test {
namespace {

TEST(subscription_keepalive, an_idle_member_keeps_its_connection_past_the_idle_timeout) {
  broker_options bo;
  bo.extra_args = {"--idle-timeout-ms", "400"};
  broker_process broker(bo);
  ASSERT_TRUE(broker.start());
  fc::client_options o;
  o.bootstrap = broker.bootstrap();
  auto admin = fc::admin::create(o);
  ASSERT_TRUE(admin);
  fc::topic_config tc;
  ASSERT_TRUE((*admin)->create_topic("quiet", tc));
  ASSERT_TRUE((*admin)->create_subscription("quiet", "s", {}));
  fc::consumer_options co;
  co.bootstrap = broker.bootstrap();
  co.keepalive = 100ms;
  auto c = fc::consumer::create(co, "quiet", "s");
  ASSERT_TRUE(c) << c.error().to_string();
  uint64_t member = (*c)->member_id();
  // Idle for several idle timeouts: the keepalives keep the connection (and the member).
  for (int i = 0; i < 15; ++i) {
    auto got = (*c)->poll(100ms);
    ASSERT_TRUE(got);
    EXPECT_TRUE(got->empty());
  }
  EXPECT_EQ((*c)->member_id(), member) << "the member was dropped and joined again";
  auto d = (*admin)->describe_subscription("quiet", "s");
  ASSERT_TRUE(d);
  ASSERT_EQ(d->members.size(), 1u);
  EXPECT_EQ(d->members[0].member_id, member);
  (*c)->close();
}

}  // namespace
}  // namespace ferry::test
