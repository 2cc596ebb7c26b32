#include "broker/partition/producer_state.h"

#include <gtest/gtest.h>

namespace ferry::partition {
namespace {

wire::batch_header batch_of(int64_t producer, int32_t first_seq, int32_t count, int64_t base_offset,
                            int64_t append_time) {
  wire::batch_header h;
  h.producer_id = producer;
  h.base_sequence = first_seq;
  h.record_count = count;
  h.last_offset_delta = count - 1;
  h.base_offset = base_offset;
  h.append_time = append_time;
  return h;
}

TEST(producer_state, next_sequence_is_accepted_and_a_retry_is_a_duplicate_with_its_offset) {
  producer_state ps;
  ps.remember(batch_of(7, 0, 3, 100, 1000));
  EXPECT_EQ(ps.check(batch_of(7, 3, 2, 0, 0)).v, producer_state::verdict::accept);
  auto dup = ps.check(batch_of(7, 0, 3, 0, 0));
  ASSERT_EQ(dup.v, producer_state::verdict::duplicate);
  EXPECT_EQ(dup.original.base_offset, 100);
  EXPECT_EQ(dup.original.append_time, 1000);
  EXPECT_EQ(dup.original.next_offset(), 103);
}

TEST(producer_state, gap_is_out_of_order_and_older_than_the_window_is_too_old) {
  producer_limits lim;
  lim.window = 4;
  producer_state ps(lim);
  for (int i = 0; i < 10; ++i) ps.remember(batch_of(1, i, 1, i, 1000 + i));
  auto gap = ps.check(batch_of(1, 12, 1, 0, 0));
  EXPECT_EQ(gap.v, producer_state::verdict::out_of_order);
  EXPECT_EQ(gap.expected, 10);
  EXPECT_EQ(ps.check(batch_of(1, 6, 1, 0, 0)).v, producer_state::verdict::duplicate);  // inside the window of 4
  EXPECT_EQ(ps.check(batch_of(1, 2, 1, 0, 0)).v, producer_state::verdict::too_old);
}

TEST(producer_state, sequences_wrap_from_int32_max_to_zero_as_in_kafka) {
  // Found by fuzzing: `last_seq + 1` overflowed past 2^31 records from one producer.
  constexpr int32_t top = INT32_MAX;
  EXPECT_EQ(batch_of(3, top - 2, 5, 0, 0).last_sequence(), 1);  // top-2, top-1, top, 0, 1
  producer_state ps;
  ps.remember(batch_of(3, top - 2, 5, 1000, 1));
  auto next = ps.check(batch_of(3, 2, 1, 0, 0));
  EXPECT_EQ(next.v, producer_state::verdict::accept);
  auto dup = ps.check(batch_of(3, top - 2, 5, 0, 0));
  ASSERT_EQ(dup.v, producer_state::verdict::duplicate);
  EXPECT_EQ(dup.original.next_offset(), 1005);
  EXPECT_EQ(ps.check(batch_of(3, top - 10, 1, 0, 0)).v, producer_state::verdict::too_old);
  auto gap = ps.check(batch_of(3, 9, 1, 0, 0));
  EXPECT_EQ(gap.v, producer_state::verdict::out_of_order);
  EXPECT_EQ(gap.expected, 2);
  ps.remember(batch_of(3, 2, 1, 1005, 2));
  EXPECT_EQ(ps.check(batch_of(3, 3, 1, 0, 0)).v, producer_state::verdict::accept);
  EXPECT_EQ(wire::decrement_sequence(1, 5), top - 3);
  EXPECT_EQ(wire::sequence_distance(top - 1, 2), 4);
}

TEST(producer_state, batches_without_a_producer_id_are_always_accepted_and_not_remembered) {
  producer_state ps;
  ps.remember(batch_of(-1, -1, 5, 0, 0));
  EXPECT_EQ(ps.size(), 0u);
  EXPECT_EQ(ps.check(batch_of(-1, -1, 5, 0, 0)).v, producer_state::verdict::accept);
}

TEST(producer_state, idle_producers_expire_by_append_time_and_are_then_new) {
  producer_limits lim;
  lim.expiry_ms = 1000;
  producer_state ps(lim);
  ps.remember(batch_of(1, 0, 1, 0, 5000));
  ps.remember(batch_of(2, 0, 1, 1, 5800));
  EXPECT_EQ(ps.expire(5900), 0u);
  EXPECT_EQ(ps.expire(6500), 1u);  // producer 1: newest batch at 5000 < 6500 - 1000
  EXPECT_EQ(ps.size(), 1u);
  // Forgotten: its retry is no longer recognised, any sequence is accepted.
  EXPECT_EQ(ps.check(batch_of(1, 0, 1, 0, 0)).v, producer_state::verdict::accept);
  EXPECT_EQ(ps.check(batch_of(2, 0, 1, 0, 0)).v, producer_state::verdict::duplicate);
}

TEST(producer_state, memory_is_bounded_by_max_producers_least_recently_active_first) {
  producer_limits lim;
  lim.max_producers = 1000;
  lim.expiry_ms = INT64_MAX / 2;
  producer_state ps(lim);
  for (int64_t id = 0; id < 50'000; ++id) {
    ps.remember(batch_of(id, 0, 1, id, 1'000'000 + id));
    ASSERT_LE(ps.size(), lim.max_producers + lim.max_producers / 10 + 1);
  }
  ps.expire(2'000'000);
  EXPECT_LE(ps.size(), lim.max_producers);
  // The most recent ones survive.
  EXPECT_EQ(ps.check(batch_of(49'999, 0, 1, 0, 0)).v, producer_state::verdict::duplicate);
  EXPECT_EQ(ps.check(batch_of(0, 0, 1, 0, 0)).v, producer_state::verdict::accept);
}

}  // namespace
}  // namespace ferry::partition
