#include "broker/partition/commit_pipeline.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "broker/log/log.h"
#include "broker/partition/producer_state.h"
#include "broker/subscription/control.h"

namespace ferry::partition {
namespace {

// Records what it was applied, in order; wants control batches and (optionally) delayed ones.
struct recorder final : state_machine {
  bool delays = false;
  std::vector<std::pair<int64_t, bool>> applied;  // (base offset, control?)
  std::vector<int64_t> commits;
  const commit_pipeline* pipeline = nullptr;
  std::vector<int64_t> hwm_at_apply;
  bool wants(const wire::batch_header& h, batch_hint hint) const override {
    return subscription::is_control(h) || (delays && hint == batch_hint::maybe_delays);
  }
  void apply(const wire::batch_header& h, std::span<const std::byte> batch) override {
    EXPECT_EQ(static_cast<size_t>(h.batch_length), batch.size());
    EXPECT_TRUE(wire::verify_batch(batch)) << "the whole batch as stored";
    applied.emplace_back(h.base_offset, subscription::is_control(h));
    if (pipeline != nullptr) hwm_at_apply.push_back(pipeline->high_watermark().value);
  }
  void committed(offset c) override { commits.push_back(c.value); }
};

// Batches numbered as a log would: data or control, offsets assigned in order.
struct fake_log {
  int64_t next = 0;
  std::pair<wire::batch_header, std::vector<std::byte>> data(int n) {
    wire::batch_builder b;
    for (int i = 0; i < n; ++i) b.add(std::nullopt, std::string_view("v"), {}, 1);
    auto s = b.finish(-1, 0, -1);
    return stamp(std::vector<std::byte>(s.begin(), s.end()));
  }
  std::pair<wire::batch_header, std::vector<std::byte>> control() {
    subscription::control_op op;
    op.type = subscription::control_type::ack;
    op.sub_id = 1;
    op.ranges = {{0, 1}};
    std::vector<subscription::control_op> ops{op};
    return stamp(subscription::encode_control_batch(ops, 1));
  }
  std::pair<wire::batch_header, std::vector<std::byte>> stamp(std::vector<std::byte> b) {
    wire::stamp_batch(b, next, 0, 1000);
    auto h = *wire::parse_batch_header(b);
    next = h.next_offset();
    return {h, std::move(b)};
  }
};

TEST(commit_pipeline, machines_get_the_batches_they_want_in_offset_order_and_only_once_committed) {
  std::vector<int64_t> published;
  commit_pipeline p(offset{0}, visibility::committed, [&](offset o) { published.push_back(o.value); });
  recorder subs, delays;
  delays.delays = true;
  subs.pipeline = &p;
  p.add(subs);
  p.add(delays);
  fake_log log;
  auto d1 = log.data(3);    // [0, 3)
  auto c1 = log.control();  // 3
  auto d2 = log.data(2);    // [4, 6): with delays
  auto c2 = log.control();  // 6
  p.appended(d1.first, d1.second, batch_hint::none);
  p.appended(c1.first, c1.second, batch_hint::none);
  p.appended(d2.first, d2.second, batch_hint::maybe_delays);
  p.appended(c2.first, std::move(c2.second), batch_hint::none);
  EXPECT_TRUE(subs.applied.empty()) << "nothing before the commit";
  EXPECT_EQ(p.high_watermark().value, 0);
  p.commit(offset{5});  // the second data batch is not wholly committed
  EXPECT_EQ(subs.applied, (std::vector<std::pair<int64_t, bool>>{{3, true}}));
  EXPECT_EQ(delays.applied, (std::vector<std::pair<int64_t, bool>>{{3, true}}));
  EXPECT_EQ(subs.hwm_at_apply, std::vector<int64_t>{0}) << "applied before the high-water mark moves";
  EXPECT_EQ(p.high_watermark().value, 5);
  p.commit(offset{7});
  EXPECT_EQ(subs.applied, (std::vector<std::pair<int64_t, bool>>{{3, true}, {6, true}}));
  EXPECT_EQ(delays.applied, (std::vector<std::pair<int64_t, bool>>{{3, true}, {4, false}, {6, true}}))
      << "data and control batches in offset order";
  EXPECT_EQ(subs.commits, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(published, (std::vector<int64_t>{5, 7}));
  p.commit(offset{6});  // never backwards
  EXPECT_EQ(p.committed().value, 7);
  EXPECT_EQ(published.size(), 2u);
}

TEST(commit_pipeline, fsync_interval_topics_see_appended_data_while_machines_wait_for_the_commit) {
  std::vector<int64_t> published;
  commit_pipeline p(offset{0}, visibility::appended, [&](offset o) { published.push_back(o.value); });
  recorder subs;
  p.add(subs);
  fake_log log;
  auto c = log.control();
  auto d = log.data(4);
  p.appended(c.first, c.second, batch_hint::none);
  p.appended(d.first, d.second, batch_hint::none);
  EXPECT_EQ(p.high_watermark().value, 5) << "readers see what was written";
  EXPECT_TRUE(subs.applied.empty()) << "the machines only see what is committed";
  p.commit(offset{5});
  EXPECT_EQ(subs.applied.size(), 1u);
  EXPECT_EQ(published, (std::vector<int64_t>{1, 5}));
}

TEST(commit_pipeline, discarded_batches_are_never_applied) {
  commit_pipeline p(offset{0}, visibility::committed, nullptr);
  recorder subs;
  p.add(subs);
  fake_log log;
  auto c1 = log.control();
  auto c2 = log.control();
  p.appended(c1.first, c1.second, batch_hint::none);
  p.appended(c2.first, c2.second, batch_hint::none);
  p.discard_from(offset{1});  // the log failed after the first one was synced
  p.commit(offset{2});
  EXPECT_EQ(subs.applied, (std::vector<std::pair<int64_t, bool>>{{0, true}}));
}

class commit_pipeline_log : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ferry-pipeline-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    log::log_config cfg;
    cfg.dir = dir_;
    cfg.segment_bytes = 1 << 20;
    cfg.preallocate = false;
    auto l = log::partition_log::open(cfg);
    ASSERT_TRUE(l) << l.error().to_string();
    log_ = std::move(*l);
  }
  void TearDown() override {
    log_.reset();
    std::filesystem::remove_all(dir_);
  }
  wire::batch_header append(std::vector<std::byte> b) {
    auto info = log_->append(b, epoch{0});
    EXPECT_TRUE(info);
    return *wire::parse_batch_header(b);
  }
  std::vector<std::byte> producer_batch(int64_t pid, int32_t seq, int n) {
    wire::batch_builder b;
    for (int i = 0; i < n; ++i) b.add(std::nullopt, std::string_view("x"), {}, 1);
    auto s = b.finish(pid, 0, seq);
    return {s.begin(), s.end()};
  }
  std::filesystem::path dir_;
  std::unique_ptr<log::partition_log> log_;
};

TEST_F(commit_pipeline_log, replay_applies_the_same_batches_as_the_live_path) {
  commit_pipeline p(offset{0}, visibility::committed, nullptr);
  recorder live;
  live.delays = true;
  p.add(live);
  fake_log f;
  for (int i = 0; i < 20; ++i) {
    auto b = i % 3 == 0 ? f.control() : f.data(2);
    auto h = append(std::move(b.second));
    std::vector<std::byte> bytes;
    ASSERT_TRUE(log_->read(offset{h.base_offset}, 1, log_->next_offset(), bytes));
    p.appended(h, bytes, i % 3 == 1 ? batch_hint::maybe_delays : batch_hint::none);
  }
  p.commit(log_->next_offset());
  recorder replayed;
  replayed.delays = true;
  ASSERT_TRUE(p.replay(*log_, replayed, offset{0}, log_->next_offset()));
  // Replay cannot know which batches had delays (maybe_delays for all): it is a superset.
  std::vector<std::pair<int64_t, bool>> controls_live, controls_replayed;
  for (auto& a : live.applied)
    if (a.second) controls_live.push_back(a);
  for (auto& a : replayed.applied)
    if (a.second) controls_replayed.push_back(a);
  EXPECT_EQ(controls_live, controls_replayed);
  EXPECT_EQ(replayed.applied.size(), 20u);
  // From the middle: only whole batches from there on.
  recorder tail;
  ASSERT_TRUE(p.replay(*log_, tail, offset{10}, log_->next_offset()));
  for (auto& a : tail.applied) EXPECT_GE(a.first, 10);
}

TEST_F(commit_pipeline_log, producer_state_after_a_truncation_is_rebuilt_from_what_the_log_kept) {
  producer_state ps;
  std::vector<wire::batch_header> hs;
  for (int i = 0; i < 10; ++i) {
    auto h = append(producer_batch(7, i * 2, 2));
    ps.remember(h);
    hs.push_back(h);
  }
  EXPECT_EQ(ps.check(hs[7]).v, producer_state::verdict::duplicate);
  // A divergent tail goes (replication): batches 5.. are cut, the state is rebuilt from the log.
  ASSERT_TRUE(log_->truncate_suffix(offset{hs[5].base_offset}));
  ps.clear();
  ASSERT_TRUE(log_->for_each_batch_header(log_->start_offset(), [&](const wire::batch_header& h) { ps.remember(h); }));
  EXPECT_EQ(ps.check(hs[4]).v, producer_state::verdict::duplicate) << "kept: still a duplicate";
  EXPECT_EQ(ps.check(hs[5]).v, producer_state::verdict::accept) << "cut: the resend is appended again";
  auto gap = ps.check(hs[7]);
  EXPECT_EQ(gap.v, producer_state::verdict::out_of_order) << "cut: a later batch waits for the ones before it";
  EXPECT_EQ(gap.expected, 10);
}

}  // namespace
}  // namespace ferry::partition
