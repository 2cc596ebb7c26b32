#include "broker/subscription/ack_set.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace ferry::subscription {
namespace {

TEST(ack_set, in_order_acks_move_the_cursor) {
  ack_set a(10);
  EXPECT_TRUE(a.contains(9));
  EXPECT_FALSE(a.contains(10));
  EXPECT_EQ(a.add(10), 1);
  EXPECT_EQ(a.add(11, 15), 4);
  EXPECT_EQ(a.cursor(), 15);
  EXPECT_EQ(a.ranges().size(), 0u);
  EXPECT_EQ(a.add(12), 0) << "below the cursor: already acked";
}

TEST(ack_set, out_of_order_acks_leave_holes_then_merge) {
  ack_set a(0);
  EXPECT_EQ(a.add(5), 1);
  EXPECT_EQ(a.add(7), 1);
  EXPECT_EQ(a.add(6), 1);
  EXPECT_EQ(a.cursor(), 0);
  ASSERT_EQ(a.ranges().size(), 1u);
  EXPECT_EQ(a.ranges().begin()->first, 5);
  EXPECT_EQ(a.ranges().begin()->second, 8);
  EXPECT_EQ(a.acked_above_cursor(), 3);
  EXPECT_EQ(a.next_unacked(0), 0);
  EXPECT_EQ(a.next_unacked(5), 8);
  EXPECT_EQ(a.add(0, 5), 5);
  EXPECT_EQ(a.cursor(), 8);
  EXPECT_EQ(a.acked_above_cursor(), 0);
}

TEST(ack_set, overlapping_adds_count_only_new_offsets) {
  ack_set a(0);
  EXPECT_EQ(a.add(10, 20), 10);
  EXPECT_EQ(a.add(15, 25), 5);
  EXPECT_EQ(a.add(5, 30), 10);
  EXPECT_EQ(a.acked_above_cursor(), 25);
  EXPECT_EQ(a.acked_in(0, 100), 25);
  EXPECT_EQ(a.acked_in(12, 14), 2);
}

TEST(ack_set, advance_to_counts_what_was_not_acked) {
  ack_set a(0);
  a.add(2, 4);
  a.add(8, 12);
  EXPECT_EQ(a.advance_to(10), 10 - 2 - 2);  // 0,1,4,5,6,7 unacked
  EXPECT_EQ(a.cursor(), 12) << "the straddling range carries the cursor past it";
  EXPECT_EQ(a.advance_to(5), 0);
}

TEST(ack_set, reset_forgets_everything_above) {
  ack_set a(0);
  a.add(3, 5);
  a.reset(2);
  EXPECT_EQ(a.cursor(), 2);
  EXPECT_FALSE(a.contains(3));
  EXPECT_TRUE(a.contains(1));
}

TEST(ack_set, matches_a_plain_set_under_random_acks) {
  std::mt19937 rng(7);
  ack_set a(0);
  std::set<int64_t> model;
  for (int i = 0; i < 20000; ++i) {
    int64_t from = rng() % 5000;
    int64_t to = from + 1 + rng() % 5;
    int64_t expect = 0;
    for (int64_t o = from; o < to; ++o) expect += model.insert(o).second ? 1 : 0;
    ASSERT_EQ(a.add(from, to), expect);
  }
  int64_t cursor = 0;
  while (model.contains(cursor)) ++cursor;
  EXPECT_EQ(a.cursor(), cursor);
  for (int64_t o = 0; o < 5100; ++o) ASSERT_EQ(a.contains(o), model.contains(o)) << o;
  int64_t above = 0;
  for (auto o : model)
    if (o >= cursor) ++above;
  EXPECT_EQ(a.acked_above_cursor(), above);
}

}  // namespace
}  // namespace ferry::subscription
