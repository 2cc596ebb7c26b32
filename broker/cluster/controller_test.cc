#include "broker/cluster/controller.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "broker/cluster/cluster_test_fixture.h"

namespace ferry::cluster {
namespace {

broker_registration reg(int32_t node, uint64_t incarnation) {
  return broker_registration{
      node_id{node}, incarnation, "h" + std::to_string(node) + ":7070", "h" + std::to_string(node) + ":7071", "", ""};
}

// Applies every record of a decision at the next offsets; all must apply.
void commit(metadata_image& image, const decision& d) {
  ASSERT_TRUE(d) << d.error().to_string();
  for (const auto& r : *d) {
    auto o = image.apply(image.version() + 1, encode_metadata_record(r));
    ASSERT_EQ(o.status, apply_status::applied) << record_kind(r) << ": " << o.reason;
  }
}

metadata_image cluster_of(int brokers) {
  metadata_image img;
  for (int32_t n = 1; n <= brokers; ++n) commit(img, decide_register(img, reg(n, 1)));
  return img;
}

meta::topic_config partitions(int32_t p, int16_t r = 1) {
  meta::topic_config c;
  c.partitions = p;
  c.replication = r;
  return c;
}

TEST(controller, registration_new_retried_restarted_stale_and_returning) {
  metadata_image img;
  auto first = decide_register(img, reg(1, 10));
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 1U);
  EXPECT_TRUE(std::holds_alternative<broker_registration>(first->front()));
  commit(img, first);
  auto retried = decide_register(img, reg(1, 10));
  ASSERT_TRUE(retried);
  EXPECT_TRUE(retried->empty());
  EXPECT_EQ(decide_register(img, reg(1, 9)).error().code, errc::invalid_argument);
  auto moved = reg(1, 10);
  moved.client_address = "elsewhere:7070";
  EXPECT_EQ(decide_register(img, moved).error().code, errc::invalid_argument);
  EXPECT_EQ(decide_register(img, reg(0, 1)).error().code, errc::invalid_argument);
  auto no_peer = reg(2, 1);
  no_peer.peer_address.clear();
  EXPECT_EQ(decide_register(img, no_peer).error().code, errc::invalid_argument);

  // Fenced, then the same process registers again: unfenced, not registered anew.
  commit(img, decide_fence(img, expired_session{node_id{1}, 10}));
  EXPECT_EQ(img.broker(node_id{1})->state, broker_state::fenced);
  auto back = decide_register(img, reg(1, 10));
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), 1U);
  EXPECT_TRUE(std::holds_alternative<broker_unfenced>(back->front()));
  commit(img, back);
  EXPECT_EQ(img.broker(node_id{1})->state, broker_state::alive);
  // A restart registers a new incarnation.
  commit(img, decide_register(img, reg(1, 11)));
  EXPECT_EQ(img.broker(node_id{1})->registration.incarnation, 11U);
}

TEST(controller, fencing_only_the_expired_incarnation_while_it_is_alive) {
  metadata_image img = cluster_of(2);
  EXPECT_TRUE(decide_fence(img, expired_session{node_id{1}, 0}).empty());  // an older process
  EXPECT_TRUE(decide_fence(img, expired_session{node_id{7}, 1}).empty());  // unknown
  ASSERT_EQ(decide_fence(img, expired_session{node_id{1}, 1}).size(), 1U);
  commit(img, decide_register(img, reg(1, 2)));  // it restarted before the fence was decided
  EXPECT_TRUE(decide_fence(img, expired_session{node_id{1}, 1}).empty());
  commit(img, decision(decide_fence(img, expired_session{node_id{2}, 1})));
  EXPECT_TRUE(decide_fence(img, expired_session{node_id{2}, 1}).empty());  // fenced already
}

TEST(controller, a_topic_of_eight_partitions_spreads_over_three_brokers) {
  metadata_image img = cluster_of(3);
  commit(img, decide_create_topic(img, "orders", partitions(8)));
  const topic_info* t = img.topic("orders");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->entry.topic.id, 1U);
  std::map<node_id, int> served;
  for (const auto& r : img.routing().routes) ++served[r.leader];
  EXPECT_EQ(served.size(), 3U);
  EXPECT_EQ(served[node_id{1}], 3);
  EXPECT_EQ(served[node_id{2}], 3);
  EXPECT_EQ(served[node_id{3}], 2);
  // The next topic starts where the load is lowest, and gets the next id.
  commit(img, decide_create_topic(img, "payments", partitions(1)));
  EXPECT_EQ(img.topic("payments")->entry.topic.id, 2U);
  EXPECT_EQ(img.route_of("payments", 0)->leader, node_id{3});
}

TEST(controller, topic_creation_errors) {
  metadata_image img = cluster_of(2);
  EXPECT_EQ(decide_create_topic(img, "bad name", partitions(1)).error().code, errc::invalid_topic_name);
  EXPECT_EQ(decide_create_topic(img, "t", partitions(0)).error().code, errc::invalid_argument);
  EXPECT_EQ(decide_create_topic(img, "t", partitions(1, 3)).error().code, errc::invalid_argument);  // 2 brokers
  commit(img, decide_fence(img, expired_session{node_id{2}, 1}));
  auto two = decide_create_topic(img, "t", partitions(1, 2));
  ASSERT_FALSE(two);
  EXPECT_NE(two.error().message.find("1 alive, 1 fenced"), std::string::npos) << two.error().message;
  commit(img, decide_create_topic(img, "t", partitions(2)));
  EXPECT_EQ(img.route_of("t", 1)->leader, node_id{1});  // the fenced broker got nothing
  EXPECT_EQ(decide_create_topic(img, "t", partitions(1)).error().code, errc::topic_exists);
}

TEST(controller, two_creates_decided_on_one_image_the_log_keeps_the_first) {
  metadata_image img = cluster_of(1);
  auto a = decide_create_topic(img, "a", partitions(1));
  auto b = decide_create_topic(img, "b", partitions(1));
  ASSERT_TRUE(a && b);
  commit(img, a);
  // Same id: the image refuses the second, as every replica does.
  auto o = img.apply(img.version() + 1, encode_metadata_record(b->front()));
  EXPECT_EQ(o.status, apply_status::refused);
  EXPECT_EQ(img.topic("b"), nullptr);
  // Decided again against the image with the first applied, it goes through.
  commit(img, decide_create_topic(img, "b", partitions(1)));
  EXPECT_EQ(img.topic("b")->entry.topic.id, 2U);
}

TEST(controller, delete_topic_takes_its_subscriptions_and_its_id_is_not_reused) {
  metadata_image img = cluster_of(1);
  commit(img, decide_create_topic(img, "t", partitions(2)));
  meta::subscription_record s;
  s.topic = "t";
  s.name = "billing";
  commit(img, decide_create_subscription(img, s));
  EXPECT_EQ(decide_delete_topic(img, "nope").error().code, errc::unknown_topic);
  commit(img, decide_delete_topic(img, "t"));
  EXPECT_EQ(img.topic("t"), nullptr);
  EXPECT_TRUE(img.subscriptions().empty());
  commit(img, decide_create_topic(img, "t", partitions(1)));
  EXPECT_EQ(img.topic("t")->entry.topic.id, 2U);
}

TEST(controller, subscriptions_get_ids_topic_ids_and_a_dead_letter_topic) {
  metadata_image img = cluster_of(2);
  commit(img, decide_create_topic(img, "t", partitions(2)));
  meta::subscription_record s;
  s.topic = "t";
  s.name = "billing";
  s.created_ms = 1234;
  auto refusal = [&img](const meta::subscription_record& x) {
    auto d = decide_create_subscription(img, x);
    return d ? errc::ok : d.error().code;
  };
  auto x = s;
  x.topic = "u";
  EXPECT_EQ(refusal(x), errc::unknown_topic);
  x = s;
  x.name = "no/slash";
  EXPECT_EQ(refusal(x), errc::invalid_subscription_name);
  x = s;
  x.config.ack_timeout_ms = 0;
  EXPECT_EQ(refusal(x), errc::invalid_argument);
  x = s;
  x.start_offsets = {0, 0, 0};  // the topic has 2 partitions
  EXPECT_EQ(refusal(x), errc::invalid_argument);
  EXPECT_EQ(refusal(s), errc::ok);
  commit(img, decide_create_subscription(img, s));
  const meta::subscription_record* got = img.subscription("t", "billing");
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->id, 1U);
  EXPECT_EQ(got->topic_id, img.topic("t")->entry.topic.id);
  EXPECT_EQ(got->config.dead_letter_topic, meta::default_dead_letter_topic("t", "billing"));
  EXPECT_EQ(got->created_ms, 1234);
  EXPECT_EQ(decide_create_subscription(img, s).error().code, errc::subscription_exists);
  s.name = "shipping";
  s.start_offsets = {5, 9};
  commit(img, decide_create_subscription(img, s));
  EXPECT_EQ(img.subscription("t", "shipping")->id, 2U);
  EXPECT_EQ(img.subscription("t", "shipping")->start_offsets, (std::vector<int64_t>{5, 9}));

  EXPECT_EQ(decide_delete_subscription(img, "u", "billing").error().code, errc::unknown_topic);
  EXPECT_EQ(decide_delete_subscription(img, "t", "nope").error().code, errc::unknown_subscription);
  commit(img, decide_delete_subscription(img, "t", "billing"));
  EXPECT_EQ(img.subscription("t", "billing"), nullptr);
  EXPECT_NE(img.subscription("t", "shipping"), nullptr);
}

// The pieces together, as the controller host will drive them: registrations open sessions, a
// topic spreads, a silent broker is fenced and its partitions lose their leader, and its restart
// (a new incarnation) brings them back; every replica's image ends equal to the controller's.
TEST(controller, a_silent_broker_is_fenced_and_its_restart_unfences_it) {
  using namespace std::chrono_literals;
  const time_point t0 = std::chrono::seconds(100);
  metadata_image controller_image;
  metadata_image follower_image;
  std::vector<std::string> log;
  auto propose = [&](const decision& d) {
    ASSERT_TRUE(d) << d.error().to_string();
    for (const auto& r : *d) {
      log.push_back(encode_metadata_record(r));
      ASSERT_EQ(controller_image.apply(log.size(), log.back()).status, apply_status::applied) << record_kind(r);
    }
  };
  session_tracker sessions;
  sessions.sync(controller_image, t0);
  for (int32_t n = 1; n <= 3; ++n) {
    propose(decide_register(controller_image, reg(n, 1)));
    ASSERT_EQ(sessions.registered(node_id{n}, 1, t0), session_status::ok);
  }
  propose(decide_create_topic(controller_image, "orders", partitions(8)));
  // Brokers 1 and 2 heartbeat every 100 ms; broker 3 falls silent after 2 s.
  std::vector<expired_session> expired;
  for (time_point now = t0; now <= t0 + 10s && expired.empty(); now += 100ms) {
    for (int32_t n = 1; n <= 3; ++n) {
      if (n != 3 || now < t0 + 2s) {
        ASSERT_EQ(sessions.heartbeat(node_id{n}, 1, now), session_status::ok);
      }
    }
    expired = sessions.tick(now);
    if (!expired.empty()) {
      EXPECT_EQ(now, t0 + 1900ms + 6s);  // its last heartbeat + the session
    }
  }
  ASSERT_EQ(expired, (std::vector<expired_session>{{node_id{3}, 1}}));
  propose(decision(decide_fence(controller_image, expired.front())));
  int leaderless = 0;
  for (const auto& r : controller_image.routing().routes) leaderless += r.leader == no_leader ? 1 : 0;
  EXPECT_EQ(leaderless, 2);  // broker 3 served 2 of the 8
  EXPECT_EQ(sessions.heartbeat(node_id{3}, 1, t0 + 9s), session_status::fenced);

  propose(decide_register(controller_image, reg(3, 2)));
  ASSERT_EQ(sessions.registered(node_id{3}, 2, t0 + 9s), session_status::ok);
  for (const auto& r : controller_image.routing().routes) EXPECT_NE(r.leader, no_leader) << r.partition;

  for (size_t i = 0; i < log.size(); ++i) follower_image.apply(i + 1, log[i]);
  EXPECT_EQ(follower_image, controller_image);
  EXPECT_EQ(follower_image.version(), log.size());
}

}  // namespace
}  // namespace ferry::cluster
