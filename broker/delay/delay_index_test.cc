#include "broker/delay/delay_index.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

namespace ferry::delay {
namespace {

class delay_index_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ferry-delay-index-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    reopen();
  }
  void TearDown() override {
    idx_.reset();
    std::filesystem::remove_all(dir_);
  }
  void reopen() {
    idx_.reset();
    auto i = delay_index::open(dir_);
    ASSERT_TRUE(i) << i.error().to_string();
    idx_ = std::move(*i);
  }
  static index_op insert(int64_t due, int64_t off, std::string value = "v") {
    index_op op;
    op.what = index_op::kind::insert;
    op.message.due = due;
    op.message.offset = off;
    op.message.append_time = 100;
    op.message.timestamp = 99;
    op.message.key = "k" + std::to_string(off);
    op.message.value = std::move(value);
    op.message.headers = {{"h", std::string("x")}, {"null", std::nullopt}};
    return op;
  }
  static index_op remove(int64_t due, int64_t off, bool cancelled) {
    index_op op;
    op.what = index_op::kind::remove;
    op.message.due = due;
    op.message.offset = off;
    op.cancelled = cancelled;
    return op;
  }

  std::filesystem::path dir_;
  std::unique_ptr<delay_index> idx_;
  partition_key p0{7, 0};
  partition_key p1{7, 1};
};

TEST_F(delay_index_test, loads_in_due_then_offset_order_within_bounds) {
  std::vector<index_op> ops = {insert(3000, 5), insert(1000, 9), insert(1000, 2), insert(-50, 1), insert(2000, 4)};
  ASSERT_TRUE(idx_->apply(p0, ops, {10, 5}));
  ASSERT_TRUE(idx_->apply(p1, std::vector<index_op>{insert(500, 1)}, {2, 1}));
  auto all = idx_->load(p0, INT64_MIN, -1, INT64_MAX, 100, 1 << 20);
  ASSERT_TRUE(all) << all.error().to_string();
  std::vector<std::pair<int64_t, int64_t>> got;
  for (auto& m : *all) got.emplace_back(m.due, m.offset);
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, int64_t>>{{-50, 1}, {1000, 2}, {1000, 9}, {2000, 4}, {3000, 5}}));
  EXPECT_EQ((*all)[1].key, std::optional<std::string>("k2"));
  EXPECT_EQ((*all)[1].timestamp, 99);
  ASSERT_EQ((*all)[1].headers.size(), 2u);
  EXPECT_EQ((*all)[1].headers[1].second, std::nullopt);
  // After (1000, 2), before 3000, at most 2.
  auto some = idx_->load(p0, 1000, 2, 3000, 2, 1 << 20);
  ASSERT_TRUE(some);
  ASSERT_EQ(some->size(), 2u);
  EXPECT_EQ((*some)[0].offset, 9);
  EXPECT_EQ((*some)[1].offset, 4);
  auto st = idx_->state(p0);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->applied_upto, 10);
  EXPECT_EQ(st->pending, 5);
}

TEST_F(delay_index_test, removes_and_cancels_survive_reopen) {
  ASSERT_TRUE(idx_->apply(p0, std::vector<index_op>{insert(1000, 1), insert(2000, 2), insert(3000, 3)}, {4, 3}));
  ASSERT_TRUE(idx_->apply(p0, std::vector<index_op>{remove(1000, 1, false), remove(3000, 3, true)}, {6, 1}));
  ASSERT_TRUE(idx_->sync());
  reopen();
  auto all = idx_->load(p0, INT64_MIN, -1, INT64_MAX, 100, 1 << 20);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].offset, 2);
  EXPECT_EQ(idx_->due_of(p0, 2).value(), std::optional<int64_t>(2000));
  EXPECT_EQ(idx_->due_of(p0, 1).value(), std::nullopt);
  EXPECT_TRUE(idx_->cancelled(p0, 3).value());
  EXPECT_FALSE(idx_->cancelled(p0, 1).value());
  EXPECT_EQ(idx_->state(p0).value().applied_upto, 6);
  EXPECT_EQ(idx_->state(p0).value().pending, 1);
}

TEST_F(delay_index_test, dropping_a_topic_leaves_other_topics) {
  ASSERT_TRUE(idx_->apply(p0, std::vector<index_op>{insert(1000, 1)}, {2, 1}));
  partition_key other{8, 0};
  ASSERT_TRUE(idx_->apply(other, std::vector<index_op>{insert(1000, 1)}, {2, 1}));
  ASSERT_TRUE(idx_->drop_topic(7));
  EXPECT_TRUE(idx_->load(p0, INT64_MIN, -1, INT64_MAX, 10, 1 << 20).value().empty());
  EXPECT_EQ(idx_->state(p0).value().applied_upto, 0);
  EXPECT_EQ(idx_->load(other, INT64_MIN, -1, INT64_MAX, 10, 1 << 20).value().size(), 1u);
}

TEST_F(delay_index_test, many_random_dues_come_back_sorted) {
  std::mt19937_64 rng(3);
  std::vector<index_op> ops;
  ops.reserve(20000);
  for (int i = 0; i < 20000; ++i) ops.push_back(insert(static_cast<int64_t>(rng() % 100000), i));
  ASSERT_TRUE(idx_->apply(p0, ops, {20000, 20000}));
  int64_t last_due = INT64_MIN, last_off = -1;
  size_t n = 0;
  for (;;) {
    auto chunk = idx_->load(p0, last_due, last_off, INT64_MAX, 777, 1 << 20);
    ASSERT_TRUE(chunk);
    if (chunk->empty()) break;
    for (auto& m : *chunk) {
      ASSERT_TRUE(m.due > last_due || (m.due == last_due && m.offset > last_off));
      last_due = m.due;
      last_off = m.offset;
      ++n;
    }
  }
  EXPECT_EQ(n, 20000u);
}

}  // namespace
}  // namespace ferry::delay
