#include "broker/cluster/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "broker/cluster/cluster_test_fixture.h"

namespace ferry::cluster {
namespace {

std::vector<broker_load> idle(const std::vector<int32_t>& nodes) {
  std::vector<broker_load> out;
  out.reserve(nodes.size());
  for (int32_t n : nodes) out.push_back(broker_load{node_id{n}, broker_state::alive, 0, 0});
  return out;
}

// Replicas and first replicas per broker in `as`.
struct counts {
  std::map<node_id, int> replicas;
  std::map<node_id, int> leaders;
};
counts count(const std::vector<partition_assignment>& as) {
  counts c;
  for (const auto& a : as) {
    for (node_id n : a.replicas) ++c.replicas[n];
    ++c.leaders[a.replicas.front()];
  }
  return c;
}

void expect_distinct(const std::vector<partition_assignment>& as, size_t r) {
  for (const auto& a : as) {
    EXPECT_EQ(a.replicas.size(), r) << "partition " << a.partition;
    EXPECT_EQ(std::set<node_id>(a.replicas.begin(), a.replicas.end()).size(), a.replicas.size())
        << "partition " << a.partition;
  }
}

TEST(placement, eight_partitions_on_three_brokers_spread_3_3_2) {
  auto as = place_partitions(idle({1, 2, 3}), 0, 8, 1);
  ASSERT_TRUE(as) << as.error().to_string();
  ASSERT_EQ(as->size(), 8U);
  for (int32_t p = 0; p < 8; ++p) EXPECT_EQ((*as)[static_cast<size_t>(p)].partition, p);
  auto c = count(*as);
  // Ties go to the lowest node id, so 1 and 2 get the extra partitions.
  EXPECT_EQ(c.leaders[node_id{1}], 3);
  EXPECT_EQ(c.leaders[node_id{2}], 3);
  EXPECT_EQ(c.leaders[node_id{3}], 2);
  EXPECT_EQ((*as)[0].replicas, std::vector<node_id>{node_id{1}});
  EXPECT_EQ((*as)[1].replicas, std::vector<node_id>{node_id{2}});
  EXPECT_EQ((*as)[2].replicas, std::vector<node_id>{node_id{3}});
}

TEST(placement, replication_three_on_three_brokers_uses_all_three_and_spreads_the_leaders) {
  auto as = place_partitions(idle({3, 1, 2}), 0, 6, 3);
  ASSERT_TRUE(as);
  expect_distinct(*as, 3);
  auto c = count(*as);
  for (int32_t n = 1; n <= 3; ++n) {
    EXPECT_EQ(c.replicas[node_id{n}], 6);
    EXPECT_EQ(c.leaders[node_id{n}], 2);
  }
}

TEST(placement, replication_two_balances_replicas_as_well_as_leaders) {
  auto as = place_partitions(idle({1, 2, 3, 4, 5}), 0, 10, 2);
  ASSERT_TRUE(as);
  expect_distinct(*as, 2);
  auto c = count(*as);
  for (int32_t n = 1; n <= 5; ++n) {
    EXPECT_EQ(c.replicas[node_id{n}], 4) << n;
    EXPECT_EQ(c.leaders[node_id{n}], 2) << n;
  }
}

TEST(placement, fenced_brokers_are_skipped) {
  auto brokers = idle({1, 2, 3, 4});
  brokers[1].state = broker_state::fenced;  // node 2
  auto as = place_partitions(brokers, 0, 9, 2);
  ASSERT_TRUE(as);
  expect_distinct(*as, 2);
  auto c = count(*as);
  EXPECT_EQ(c.replicas.count(node_id{2}), 0U);
  EXPECT_EQ(c.leaders[node_id{1}] + c.leaders[node_id{3}] + c.leaders[node_id{4}], 9);
  EXPECT_EQ(c.leaders[node_id{1}], 3);
  EXPECT_EQ(c.leaders[node_id{3}], 3);
  EXPECT_EQ(c.leaders[node_id{4}], 3);
}

TEST(placement, fewer_alive_brokers_than_the_replication_factor_is_an_error) {
  auto brokers = idle({1, 2, 3});
  brokers[2].state = broker_state::fenced;
  auto as = place_partitions(brokers, 0, 1, 3);
  ASSERT_FALSE(as);
  EXPECT_EQ(as.error().code, errc::invalid_argument);
  EXPECT_NE(as.error().message.find("2 alive, 1 fenced"), std::string::npos) << as.error().message;
  EXPECT_FALSE(place_partitions({}, 0, 1, 1));
  EXPECT_FALSE(place_partitions(idle({1}), 0, 1, 0));
  EXPECT_TRUE(place_partitions(idle({1, 2}), 0, 0, 2)->empty());
}

TEST(placement, existing_load_is_counted_from_the_image) {
  metadata_image img;
  for (int32_t n = 1; n <= 3; ++n) ASSERT_TRUE(testing::apply_next(img, testing::registration(n, 1)));
  ASSERT_TRUE(testing::apply_next(img, encode_metadata_record(testing::topic("a", 1, {{1, 2}, {1, 3}}))));
  auto loads = loads_of(img);
  ASSERT_EQ(loads.size(), 3U);
  EXPECT_EQ(loads[0].node, node_id{1});
  EXPECT_EQ(loads[0].replicas, 2);
  EXPECT_EQ(loads[0].leaders, 2);
  EXPECT_EQ(loads[1].replicas, 1);
  EXPECT_EQ(loads[1].leaders, 0);
  EXPECT_EQ(loads[2].replicas, 1);
  // The next partition is served by the least loaded broker, not by node 1 again.
  auto as = place_partitions(loads, 0, 1, 1);
  ASSERT_TRUE(as);
  EXPECT_EQ((*as)[0].replicas, std::vector<node_id>{node_id{2}});
}

TEST(placement, adding_topics_keeps_the_balance) {
  metadata_image img;
  for (int32_t n = 1; n <= 4; ++n) ASSERT_TRUE(testing::apply_next(img, testing::registration(n, 1)));
  // Topics of odd sizes and factors, each placed against what the image already holds.
  const std::vector<std::pair<int32_t, int32_t>> topics = {{3, 1}, {5, 2}, {1, 3}, {7, 2}, {2, 1}, {6, 3}, {3, 2}};
  uint64_t id = 1;
  for (auto [partitions, r] : topics) {
    auto as = place_partitions(loads_of(img), 0, partitions, r);
    ASSERT_TRUE(as);
    expect_distinct(*as, static_cast<size_t>(r));
    topic_entry t;
    t.topic.name = "t" + std::to_string(id);
    t.topic.id = id++;
    t.topic.config.partitions = partitions;
    t.topic.config.replication = static_cast<int16_t>(r);
    t.assignments = std::move(*as);
    ASSERT_TRUE(testing::apply_next(img, encode_metadata_record(t)));
    auto loads = loads_of(img);
    auto [rmin, rmax] = std::minmax_element(loads.begin(), loads.end(),
                                            [](const auto& a, const auto& b) { return a.replicas < b.replicas; });
    auto [lmin, lmax] = std::minmax_element(loads.begin(), loads.end(),
                                            [](const auto& a, const auto& b) { return a.leaders < b.leaders; });
    EXPECT_LE(rmax->replicas - rmin->replicas, 1) << "after topic " << t.topic.name;
    EXPECT_LE(lmax->leaders - lmin->leaders, 1) << "after topic " << t.topic.name;
  }
}

TEST(placement, the_same_input_gives_the_same_placement) {
  auto brokers = idle({5, 9, 2, 7});
  brokers[0].replicas = 3;
  brokers[2].leaders = 1;
  auto a = place_partitions(brokers, 4, 12, 3);
  auto b = place_partitions(brokers, 4, 12, 3);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->front().partition, 4);
}

}  // namespace
}  // namespace ferry::cluster
