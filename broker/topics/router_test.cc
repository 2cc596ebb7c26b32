// router: the leader table the protocol layer asks (unit test, no partitions opened: a topic's
// replica slots are empty pointers, which is all the router hands back).
#include "broker/topics/router.h"

#include <gtest/gtest.h>

namespace ferry::topics {
namespace {

topic make_topic(uint64_t id, size_t partitions) {
  topic t;
  t.name = "orders";
  t.id = id;
  t.partitions.resize(partitions);
  return t;
}

TEST(router, every_partition_is_led_here_until_told_otherwise) {
  router r(1);
  auto t = make_topic(7, 3);
  for (int32_t p = 0; p < 3; ++p) {
    int32_t hint = 42;
    EXPECT_TRUE(r.route(t, p, &hint)) << p;
    EXPECT_EQ(hint, unknown_leader);
    EXPECT_EQ(r.leader_of(t, p).node, 1);
  }
  EXPECT_EQ(r.led_here(t).size(), 3u);
}

TEST(router, a_partition_out_of_range_is_unknown_partition_naming_the_count) {
  router r(1);
  auto t = make_topic(7, 3);
  for (int32_t p : {-1, 3, INT32_MAX}) {
    auto got = r.route(t, p);
    ASSERT_FALSE(got) << p;
    EXPECT_EQ(got.error().code, errc::unknown_partition);
    EXPECT_NE(got.error().message.find("has no partition " + std::to_string(p) + " (it has 3)"), std::string::npos)
        << got.error().message;
  }
}

TEST(router, a_partition_led_elsewhere_is_not_leader_with_the_leader_as_hint) {
  router r(1);
  auto t = make_topic(7, 3);
  auto other = make_topic(8, 3);
  r.set_leader(7, 1, leader_view{2, 5});
  int32_t hint = unknown_leader;
  auto got = r.route(t, 1, &hint);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, errc::not_leader);
  EXPECT_EQ(hint, 2);
  EXPECT_NE(got.error().message.find("broker 2 leads it (epoch 5)"), std::string::npos) << got.error().message;
  EXPECT_EQ(r.leader_of(t, 1).node, 2);
  EXPECT_EQ(r.leader_of(t, 1).epoch, 5);
  // Only that partition of that topic moved.
  EXPECT_TRUE(r.route(t, 0));
  EXPECT_TRUE(r.route(t, 2));
  EXPECT_TRUE(r.route(other, 1));
  EXPECT_EQ(r.led_here(t).size(), 2u);
  EXPECT_EQ(r.led_here(other).size(), 3u);
}

TEST(router, a_partition_without_a_known_leader_is_not_leader_without_a_hint) {
  router r(1);
  auto t = make_topic(7, 1);
  r.set_leader(7, 0, leader_view{unknown_leader, 3});
  int32_t hint = 9;
  auto got = r.route(t, 0, &hint);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, errc::not_leader);
  EXPECT_EQ(hint, unknown_leader);
  EXPECT_NE(got.error().message.find("no broker is known to lead it"), std::string::npos) << got.error().message;
  EXPECT_TRUE(r.led_here(t).empty());
}

TEST(router, leadership_coming_back_here_serves_the_local_replica_again) {
  router r(1);
  auto t = make_topic(7, 2);
  r.set_leader(7, 0, leader_view{3, 2});
  ASSERT_FALSE(r.route(t, 0));
  r.set_leader(7, 0, leader_view{1, 3});
  EXPECT_TRUE(r.route(t, 0));
  EXPECT_EQ(r.leader_of(t, 0).node, 1);
  EXPECT_EQ(r.led_here(t).size(), 2u);
}

}  // namespace
}  // namespace ferry::topics
