#include "broker/subscription/state.h"

#include <gtest/gtest.h>

#include <vector>

namespace ferry::subscription {
namespace {

struct recording_listener : state_listener {
  std::vector<std::pair<int64_t, int64_t>> settled;
  std::vector<int64_t> seeks;
  std::vector<int64_t> expired;
  int changed = 0;
  void on_settled(int64_t from, int64_t to) override { settled.emplace_back(from, to); }
  void on_seek(int64_t cursor) override { seeks.push_back(cursor); }
  void on_expired_below(int64_t log_start) override { expired.push_back(log_start); }
  void on_changed() override { ++changed; }
};

control_op ack(uint64_t sub, std::vector<std::pair<int64_t, int64_t>> ranges) {
  control_op op;
  op.type = control_type::ack;
  op.sub_id = sub;
  op.ranges = std::move(ranges);
  return op;
}

TEST(subscription_state, control_batches_change_only_their_subscription_and_count_as_acknowledged) {
  subscription_state s(7, "s on t/0", 0);
  recording_listener l;
  s.set_listener(&l);
  std::vector<control_op> ops{ack(7, {{0, 3}}), ack(8, {{3, 10}})};
  s.apply_control(10, 10, ops);
  EXPECT_EQ(s.cursor(), 3);
  EXPECT_TRUE(s.acks().contains(10)) << "the control batch's own offset";
  EXPECT_FALSE(s.acks().contains(5)) << "another subscription's ack";
  EXPECT_TRUE(s.dirty());
  EXPECT_EQ(l.settled, (std::vector<std::pair<int64_t, int64_t>>{{0, 3}}));
  EXPECT_EQ(l.changed, 1);
  // A batch with nothing for us: its offsets are acknowledged, nothing else changes.
  s.clear_dirty();
  std::vector<control_op> other{ack(9, {{0, 1}})};
  s.apply_control(11, 11, other);
  EXPECT_FALSE(s.dirty());
  EXPECT_EQ(l.changed, 1);
}

TEST(subscription_state, dead_letters_count_once_and_seeks_reset_everything) {
  subscription_state s(1, "s", 0);
  recording_listener l;
  s.set_listener(&l);
  control_op dl;
  dl.type = control_type::dead_letter;
  dl.sub_id = 1;
  dl.offset = 4;
  std::vector<control_op> ops{dl, dl};
  s.apply_control(20, 21, ops);
  EXPECT_EQ(s.dead_lettered(), 1);
  EXPECT_TRUE(s.acks().contains(4));
  control_op seek;
  seek.type = control_type::seek;
  seek.sub_id = 1;
  seek.offset = 2;
  std::vector<control_op> sv{seek};
  s.apply_control(22, 22, sv);
  EXPECT_EQ(s.cursor(), 2);
  EXPECT_FALSE(s.acks().contains(4)) << "nothing above a seek's cursor is acknowledged";
  EXPECT_EQ(l.seeks, std::vector<int64_t>{2});
}

TEST(subscription_state, checkpoint_round_trips_with_engine_and_restored_counts) {
  subscription_state s(1, "s", 0);
  std::vector<control_op> ops{ack(1, {{0, 5}, {7, 9}})};
  s.apply_control(100, 100, ops);
  ASSERT_TRUE(s.restore_deliveries(encode_delivery_record(std::vector<int64_t>{5, 6, 12})));
  ASSERT_TRUE(s.restore_deliveries(encode_delivery_record(std::vector<int64_t>{6})));
  EXPECT_EQ(s.take_restored_count(6), 2);  // the engine windows offset 6 and counts it from here
  std::vector<std::pair<int64_t, int32_t>> engine{{6, 3}};
  auto blob = s.checkpoint(101, engine);

  subscription_state r(1, "s", 0);
  recording_listener l;
  r.set_listener(&l);
  auto applied = r.restore(blob);
  ASSERT_TRUE(applied) << applied.error().to_string();
  EXPECT_EQ(*applied, 101);
  EXPECT_EQ(r.cursor(), 5);
  EXPECT_TRUE(r.acks().contains(7));
  EXPECT_TRUE(r.acks().contains(100));
  EXPECT_EQ(r.take_restored_count(5), 1);
  EXPECT_EQ(r.take_restored_count(6), 3) << "the engine's count wins";
  EXPECT_EQ(r.take_restored_count(12), 1);
  EXPECT_EQ(l.seeks, std::vector<int64_t>{5});
  EXPECT_FALSE(r.restore("garbage"));
}

TEST(subscription_state, retention_expires_unacknowledged_and_a_shorter_log_clamps) {
  subscription_state s(1, "s", 0);
  std::vector<control_op> ops{ack(1, {{2, 4}, {30, 40}})};
  s.apply_control(50, 50, ops);
  recording_listener l;
  s.set_listener(&l);
  EXPECT_EQ(s.expire_below(10), 8);  // 0, 1, 4..9
  EXPECT_EQ(s.expired(), 8);
  EXPECT_EQ(s.cursor(), 10);
  EXPECT_EQ(l.expired, std::vector<int64_t>{10});
  EXPECT_TRUE(s.clamp_to_log_end(35));
  EXPECT_FALSE(s.acks().contains(50));
  EXPECT_TRUE(s.acks().contains(34));
  EXPECT_FALSE(s.clamp_to_log_end(35));
}

}  // namespace
}  // namespace ferry::subscription
