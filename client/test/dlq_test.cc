// Dead letters from the client's side (ferry/client/dlq.h) against the fake broker: listing a
// subscription's dead letters (a shared dead-letter topic, a limit, no topic yet), choosing them
// for a replay (by position, by original id, all; selectors that name nothing), and replaying
// them (reserved headers dropped, ferry-replayed-from added, keyless ones back to their
// partition). The fake does not dead-letter by itself: the dead letters are appended as the
// broker writes them. Against ferryd, through ferryctl: tests/integration/ferryctl_test.cc.
#include <gtest/gtest.h>

#include "client/test/fake_broker.h"
#include "ferry/client/client.h"
#include "ferry/client/dlq.h"
#include "schema/record_batch.h"

namespace fc = ferry::client;
namespace w = ferry::wire;
using ferry::client::testing::fake_broker;
using namespace std::chrono_literals;

namespace {

struct letter {
  std::optional<std::string> key;
  std::string value;
  std::string original_id;  // empty: no header
  std::string subscription;
};

// A broker with topic "orders" (2 partitions), subscriptions billing and audit sharing the
// dead-letter topic "dead", which holds `letters` at offsets 0, 1, ...
void set_up(fake_broker& b, const std::vector<letter>& letters) {
  b.add_topic("orders", 2);
  b.add_topic("dead", 1);
  b.add_subscription("orders", "billing");
  b.add_subscription("orders", "audit");
  {
    std::lock_guard lk(b.mu);
    b.subs[{"orders", "billing"}].dead_letter_topic = "dead";
    b.subs[{"orders", "audit"}].dead_letter_topic = "dead";
  }
  w::batch_builder bb;
  for (const auto& l : letters) {
    std::vector<w::header_view> hs{{"trace", std::string_view("t")},
                                   {"ferry-delayed-id", std::string_view("orders/0/1")}};
    if (!l.original_id.empty()) hs.push_back({"ferry-dlq-original-id", std::string_view(l.original_id)});
    hs.push_back({"ferry-dlq-subscription", std::string_view(l.subscription)});
    hs.push_back({"ferry-dlq-delivery-count", std::string_view("10")});
    hs.push_back({"ferry-dlq-reason", std::string_view("nacked")});
    hs.push_back({"ferry-dlq-time", std::string_view("1714564800000")});
    std::optional<std::string_view> key;
    if (l.key) key = *l.key;
    bb.add(key, std::string_view(l.value), hs, 5'000);
  }
  auto bytes = bb.finish(-1, 0, -1);
  b.append_batch("dead", 0, std::vector<std::byte>(bytes.begin(), bytes.end()));
}

fc::client_options opts(const fake_broker& b) { return fc::client_options{b.address()}; }

const std::vector<letter> three = {
    {"k1", "v1", "orders/0/5", "billing"},
    {std::nullopt, "v2", "orders/1/2", "orders/billing"},
    {std::nullopt, "v3", "orders/0/9", "audit"},
};

TEST(dead_letters, list_keeps_the_subscriptions_own) {
  fake_broker b;
  set_up(b, three);
  auto billing = fc::list_dead_letters(opts(b), "orders", "billing");
  ASSERT_TRUE(billing) << billing.error().to_string();
  ASSERT_EQ(billing->size(), 2u);
  EXPECT_EQ((*billing)[0].message.id(), "dead/0/0");
  EXPECT_EQ((*billing)[0].original_id, "orders/0/5");
  EXPECT_EQ((*billing)[0].delivery_count, 10);
  EXPECT_EQ((*billing)[0].reason, "nacked");
  EXPECT_EQ((*billing)[0].time_ms, 1714564800000);
  EXPECT_EQ((*billing)[1].message.id(), "dead/0/1");
  auto audit = fc::list_dead_letters(opts(b), "orders", "audit");
  ASSERT_TRUE(audit);
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].original_id, "orders/0/9");
  auto one = fc::list_dead_letters(opts(b), "orders", "billing", 1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size(), 1u);
}

TEST(dead_letters, none_yet_is_an_empty_list_and_an_unknown_subscription_an_error) {
  fake_broker b;
  b.add_topic("orders", 1);
  b.add_subscription("orders", "billing");  // its dead-letter topic orders.billing.dlq does not exist
  auto none = fc::list_dead_letters(opts(b), "orders", "billing");
  ASSERT_TRUE(none) << none.error().to_string();
  EXPECT_TRUE(none->empty());
  auto missing = fc::list_dead_letters(opts(b), "orders", "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ferry::errc::unknown_subscription);
}

TEST(dead_letters, plan_by_position_and_original_id_names_what_is_missing) {
  fake_broker b;
  set_up(b, three);
  fc::replay_selection sel;
  sel.positions = {{0, 0}, {0, 7}, {0, 2}};  // (0, 2) is audit's
  sel.original_ids = {{"orders", 1, 2}, {"orders", 0, 9}};
  auto plan = fc::plan_replay(opts(b), "orders", "billing", sel);
  ASSERT_TRUE(plan) << plan.error().to_string();
  EXPECT_EQ(plan->dead_letter_topic, "dead");
  EXPECT_TRUE(plan->letters.empty()) << "nothing is replayed while a selector names nothing";
  ASSERT_EQ(plan->not_found.size(), 3u);
  EXPECT_EQ(plan->not_found[0].code, ferry::errc::unknown_message);
  EXPECT_EQ(plan->not_found[0].message, "no dead letter dead/0/2 of subscription 'billing'");
  EXPECT_EQ(plan->not_found[1].message, "no dead letter dead/0/7 of subscription 'billing'");
  EXPECT_EQ(plan->not_found[2].message,
            "no dead letter with original id orders/0/9 in 'dead' of subscription 'billing'");

  sel.positions = {{0, 0}};
  sel.original_ids = {{"orders", 1, 2}};
  plan = fc::plan_replay(opts(b), "orders", "billing", sel);
  ASSERT_TRUE(plan) << plan.error().to_string();
  EXPECT_TRUE(plan->not_found.empty());
  ASSERT_EQ(plan->letters.size(), 2u);
  EXPECT_EQ(plan->letters[0].message.id(), "dead/0/0");
  EXPECT_EQ(plan->letters[1].message.id(), "dead/0/1");
  ASSERT_EQ(plan->targets.size(), 2u);
  EXPECT_EQ(plan->targets[0].to_string(), "orders/0/5");
  EXPECT_EQ(plan->targets[1].to_string(), "orders/1/2");
}

TEST(dead_letters, a_selection_must_choose_something_one_way) {
  fake_broker b;
  set_up(b, three);
  auto empty = fc::plan_replay(opts(b), "orders", "billing", fc::replay_selection{});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, ferry::errc::invalid_argument);
  fc::replay_selection both;
  both.all = true;
  both.positions = {{0, 0}};
  auto mixed = fc::plan_replay(opts(b), "orders", "billing", both);
  ASSERT_FALSE(mixed);
  EXPECT_EQ(mixed.error().code, ferry::errc::invalid_argument);
}

TEST(dead_letters, a_letter_without_its_original_id_cannot_be_replayed) {
  fake_broker b;
  set_up(b, {{std::nullopt, "lost", "", "billing"}});
  fc::replay_selection all;
  all.all = true;
  auto plan = fc::plan_replay(opts(b), "orders", "billing", all);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, ferry::errc::invalid_argument);
  EXPECT_NE(plan.error().message.find("dead/0/0"), std::string::npos) << plan.error().message;
}

TEST(dead_letters, replay_publishes_them_again_without_the_brokers_headers) {
  fake_broker b;
  set_up(b, three);
  fc::replay_selection all;
  all.all = true;
  auto plan = fc::plan_replay(opts(b), "orders", "billing", all);
  ASSERT_TRUE(plan) << plan.error().to_string();
  ASSERT_EQ(plan->letters.size(), 2u);
  fc::producer_options po;
  po.bootstrap = b.address();
  auto p = fc::producer::create(po);
  ASSERT_TRUE(p);
  auto ids = fc::replay(**p, *plan, 10s);
  ASSERT_EQ(ids.size(), 2u);
  ASSERT_TRUE(ids[0]) << ids[0].error().to_string();
  ASSERT_TRUE(ids[1]) << ids[1].error().to_string();
  EXPECT_EQ(ids[0]->partition, fc::partition_for_key("k1", 2)) << "keyed: by its key";
  EXPECT_EQ(ids[1]->partition, 1) << "keyless: back to its original partition";
  for (size_t i = 0; i < 2; ++i) {
    auto rd = fc::reader::create(opts(b), "orders", ids[i]->partition, ids[i]->offset);
    ASSERT_TRUE(rd);
    auto got = (*rd)->poll(1s);
    ASSERT_TRUE(got) << got.error().to_string();
    ASSERT_FALSE(got->empty());
    const auto& m = got->front();
    EXPECT_EQ(m.value, plan->letters[i].message.value);
    EXPECT_EQ(m.key, plan->letters[i].message.key);
    std::vector<std::string> keys;
    for (const auto& h : m.headers) keys.push_back(h.key);
    EXPECT_EQ(keys, (std::vector<std::string>{"trace", "ferry-replayed-from"}));
    EXPECT_EQ(m.headers.back().value, plan->letters[i].message.id());
  }

  // A plan with selectors that named nothing publishes nothing.
  fc::replay_plan incomplete = *plan;
  incomplete.not_found.push_back(ferry::fail(ferry::errc::unknown_message, "no dead letter x"));
  int64_t before = b.records("orders", 0) + b.records("orders", 1);
  auto refused = fc::replay(**p, incomplete, 10s);
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_FALSE(refused[0]);
  EXPECT_EQ(refused[0].error().code, ferry::errc::invalid_argument);
  ASSERT_TRUE((*p)->flush());
  EXPECT_EQ(b.records("orders", 0) + b.records("orders", 1), before);
}

}  // namespace
