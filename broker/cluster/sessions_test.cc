#include "broker/cluster/sessions.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "broker/cluster/cluster_test_fixture.h"

namespace ferry::cluster {
namespace {

using namespace std::chrono_literals;

constexpr node_id n1{1};
constexpr node_id n2{2};
constexpr node_id n3{3};
constexpr time_point t0 = std::chrono::seconds(1000);

TEST(sessions, default_timing_is_the_documented_one) {
  EXPECT_EQ(default_session_timeout, 6s);
  EXPECT_EQ(default_heartbeat_interval, 100ms);
  EXPECT_EQ(session_tracker().timeout(), 6s);
}

TEST(sessions, a_heartbeat_renews_the_session_and_silence_fences_it_once) {
  session_tracker s;
  ASSERT_EQ(s.registered(n1, 1, t0), session_status::ok);
  ASSERT_EQ(s.registered(n2, 1, t0), session_status::ok);
  EXPECT_EQ(s.next_expiry(), t0 + 6s);
  EXPECT_EQ(s.heartbeat(n1, 1, t0 + 5s), session_status::ok);
  EXPECT_TRUE(s.tick(t0 + 6s - 1ns).empty());
  EXPECT_EQ(s.tick(t0 + 6s), (std::vector<expired_session>{{n2, 1}}));
  EXPECT_TRUE(s.tick(t0 + 7s).empty());  // reported once
  EXPECT_FALSE(s.alive(n2));
  EXPECT_TRUE(s.alive(n1));
  EXPECT_EQ(s.next_expiry(), t0 + 11s);
  EXPECT_EQ(s.tick(t0 + 11s), (std::vector<expired_session>{{n1, 1}}));
  EXPECT_EQ(s.next_expiry(), std::nullopt);
}

TEST(sessions, a_late_heartbeat_never_shortens_the_session) {
  session_tracker s;
  ASSERT_EQ(s.registered(n1, 1, t0), session_status::ok);
  ASSERT_EQ(s.heartbeat(n1, 1, t0 + 4s), session_status::ok);
  ASSERT_EQ(s.heartbeat(n1, 1, t0 + 1s), session_status::ok);  // reordered
  EXPECT_TRUE(s.tick(t0 + 9s).empty());
  EXPECT_EQ(s.tick(t0 + 10s).size(), 1U);
}

TEST(sessions, heartbeats_of_other_incarnations_or_unknown_brokers_are_refused) {
  session_tracker s;
  EXPECT_EQ(s.heartbeat(n1, 1, t0), session_status::unknown_broker);
  ASSERT_EQ(s.registered(n1, 5, t0), session_status::ok);
  EXPECT_EQ(s.heartbeat(n1, 4, t0 + 5s), session_status::stale_incarnation);
  EXPECT_EQ(s.heartbeat(n1, 6, t0 + 5s), session_status::newer_incarnation);
  // Neither renewed the session.
  EXPECT_EQ(s.tick(t0 + 6s).size(), 1U);
  EXPECT_EQ(s.registered(n1, 4, t0 + 7s), session_status::stale_incarnation);
  EXPECT_FALSE(s.alive(n1));
}

TEST(sessions, a_fenced_broker_stays_fenced_until_it_registers_again) {
  session_tracker s;
  ASSERT_EQ(s.registered(n1, 1, t0), session_status::ok);
  ASSERT_EQ(s.tick(t0 + 6s).size(), 1U);
  EXPECT_EQ(s.heartbeat(n1, 1, t0 + 7s), session_status::fenced);
  EXPECT_FALSE(s.alive(n1));
  // The same process registers again (the controller proposes BrokerUnfenced), or a new one
  // (a BrokerRegistration): either way a full session from then.
  ASSERT_EQ(s.registered(n1, 1, t0 + 8s), session_status::ok);
  EXPECT_TRUE(s.alive(n1));
  EXPECT_EQ(s.heartbeat(n1, 1, t0 + 9s), session_status::ok);
  ASSERT_EQ(s.tick(t0 + 15s).size(), 1U);
  ASSERT_EQ(s.registered(n1, 2, t0 + 16s), session_status::ok);
  EXPECT_EQ(s.heartbeat(n1, 1, t0 + 16s), session_status::stale_incarnation);
  EXPECT_EQ(s.heartbeat(n1, 2, t0 + 17s), session_status::ok);
}

TEST(sessions, a_new_controller_gives_every_alive_broker_a_full_session_from_its_start) {
  metadata_image img;
  for (int32_t n = 1; n <= 3; ++n) ASSERT_TRUE(testing::apply_next(img, testing::registration(n, 1)));
  ASSERT_TRUE(testing::apply_next(img, encode_metadata_record(broker_fenced{n3, 1})));
  // Whatever the old controller last heard is gone; the new one starts at t0 + 1 h.
  const time_point start = t0 + 1h;
  session_tracker s;
  s.sync(img, start);
  EXPECT_TRUE(s.alive(n1));
  EXPECT_TRUE(s.alive(n2));
  EXPECT_FALSE(s.alive(n3));
  EXPECT_EQ(s.heartbeat(n3, 1, start), session_status::fenced);
  EXPECT_TRUE(s.tick(start + 6s - 1ns).empty());
  EXPECT_EQ(s.heartbeat(n1, 1, start + 3s), session_status::ok);
  EXPECT_EQ(s.tick(start + 6s), (std::vector<expired_session>{{n2, 1}}));
}

TEST(sessions, sync_adds_what_commits_later_and_keeps_newer_sessions) {
  metadata_image img;
  ASSERT_TRUE(testing::apply_next(img, testing::registration(1, 1)));
  session_tracker s;
  s.sync(img, t0);
  // This controller accepted incarnation 2 of node 1; its record has not committed yet.
  ASSERT_EQ(s.registered(n1, 2, t0 + 1s), session_status::ok);
  s.sync(img, t0 + 2s);
  EXPECT_EQ(s.heartbeat(n1, 2, t0 + 2s), session_status::ok);
  // A registration an earlier controller proposed commits now: it gets a session from now.
  ASSERT_TRUE(testing::apply_next(img, testing::registration(2, 7)));
  s.sync(img, t0 + 3s);
  EXPECT_EQ(s.heartbeat(n2, 7, t0 + 3s), session_status::ok);
  // Syncing again does not restart sessions it has.
  s.sync(img, t0 + 8s);
  EXPECT_EQ(s.tick(t0 + 8s), (std::vector<expired_session>{{n1, 2}}));
  EXPECT_EQ(s.tick(t0 + 9s), (std::vector<expired_session>{{n2, 7}}));
}

TEST(sessions, a_fence_committed_after_the_controller_change_reaches_the_broker) {
  metadata_image img;
  ASSERT_TRUE(testing::apply_next(img, testing::registration(1, 1)));
  session_tracker s;
  s.sync(img, t0);
  // The old controller's BrokerFenced commits only now: the broker must learn it is fenced (and
  // register again), not heartbeat on as if alive.
  ASSERT_TRUE(testing::apply_next(img, encode_metadata_record(broker_fenced{n1, 1})));
  s.sync(img, t0 + 1s);
  EXPECT_EQ(s.heartbeat(n1, 1, t0 + 1s), session_status::fenced);
  // It registers again; until its BrokerUnfenced commits the image still says fenced, which is
  // old news and does not undo the new session.
  ASSERT_EQ(s.registered(n1, 1, t0 + 2s), session_status::ok);
  s.sync(img, t0 + 3s);
  EXPECT_EQ(s.heartbeat(n1, 1, t0 + 3s), session_status::ok);
  ASSERT_TRUE(testing::apply_next(img, encode_metadata_record(broker_unfenced{n1, 1})));
  s.sync(img, t0 + 4s);
  EXPECT_EQ(s.heartbeat(n1, 1, t0 + 4s), session_status::ok);
}

TEST(sessions, a_fence_this_controller_proposed_is_not_undone_before_it_commits) {
  metadata_image img;
  ASSERT_TRUE(testing::apply_next(img, testing::registration(1, 1)));
  session_tracker s;
  s.sync(img, t0);
  ASSERT_EQ(s.tick(t0 + 6s).size(), 1U);  // BrokerFenced proposed, not applied yet
  s.sync(img, t0 + 6s);
  EXPECT_FALSE(s.alive(n1));
  EXPECT_EQ(s.heartbeat(n1, 1, t0 + 6s), session_status::fenced);
  ASSERT_TRUE(testing::apply_next(img, encode_metadata_record(broker_fenced{n1, 1})));
  s.sync(img, t0 + 7s);
  EXPECT_FALSE(s.alive(n1));
  EXPECT_TRUE(s.tick(t0 + 20s).empty());
}

}  // namespace
}  // namespace ferry::cluster
