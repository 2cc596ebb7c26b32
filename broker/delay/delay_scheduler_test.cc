// delay_scheduler on its own: a real delay index (RocksDB in a temporary folder), one event loop
// (the test's thread runs it to idle: index writes, loads and releases included), a manual clock,
// and a fake partition log that makes every release committed (on_released) one loop turn after
// it was appended. No threads, no sleeps: time moves only when a test moves the clock.
// End-to-end behaviour through ferryd is in tests/integration/delayed_test.cc; these tests pin the
// scheduler's own promises: never early, due order, bounded memory, loading as the horizon moves,
// rate-limited catch-up, clock steps, cancel outcomes and restart.
#include "broker/delay/delay_scheduler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <random>

#include "schema/record_batch.h"

namespace ferry::delay {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr int64_t start_ms = 1'800'000'000'000;

struct released_record {
  delay_key key;
  int64_t now_at_release = 0;  // the clock when the release batch was cut
};

class delay_scheduler_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ferry-delay-scheduler-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    open_index();
  }
  void TearDown() override {
    destroy();
    idx_.reset();
    std::filesystem::remove_all(dir_);
  }
  void open_index() {
    auto i = delay_index::open(dir_);
    ASSERT_TRUE(i) << i.error().to_string();
    idx_ = std::move(*i);
  }

  // Runs the event loop to idle: posted work, index writes and loads, releases and their commits,
  // and whatever falls due on the clock as it is now.
  void run() {
    // Each round re-reads the clock (firing what is due: a wake-up also re-arms the drivers' real
    // timers, which runs their cancelled waits) and runs the loop until nothing is ready. Nothing
    // becomes due without the clock moving, so a few rounds settle every cascade.
    for (int round = 0; round < 4; ++round) {
      if (s_) s_->wake();
      io_.restart();
      for (int guard = 0; io_.poll() > 0; ++guard) ASSERT_LT(guard, 1'000'000) << "the event loop never went idle";
    }
  }
  // Moves the (wall and monotonic) clock on and runs to idle.
  void step(int64_t ms) {
    clk_.advance_ms(ms);
    run();
  }

  // Opens a scheduler on the index, replays nothing (every test's fake log is applied already) and
  // starts it. Returns the index's applied offset.
  int64_t make(delay_limits lim) {
    lim_ = lim;
    s_ = std::make_unique<delay_scheduler>(
        *idx_, pk_, "orders/0/", io_.get_executor(), io_.get_executor(), clk_, lim,
        [this](const std::vector<std::byte>& batch, const std::vector<delay_key>& keys) {
          return on_release(batch, keys);
        });
    auto applied = s_->open();
    EXPECT_TRUE(applied) << applied.error().to_string();
    log_end_ = std::max(log_end_, applied ? *applied : 0);
    auto r = s_->finish_replay(log_end_);
    EXPECT_TRUE(r) << r.error().to_string();
    s_->set_releasing(true);
    run();
    return applied ? *applied : -1;
  }

  // Closes (writes and syncs the index) and destroys the scheduler.
  void destroy() {
    if (!s_) return;
    bool closed = false;
    boost::asio::co_spawn(io_, s_->close(), [&closed](const std::exception_ptr&) { closed = true; });
    run();
    EXPECT_TRUE(closed) << "close() finished";
    s_.reset();
  }

  // Appends one batch of delayed messages (due times as given) to the fake log, durable at once.
  // Returns the offset of the first.
  int64_t insert(const std::vector<int64_t>& dues, const std::optional<std::string>& key = std::nullopt) {
    {
      int64_t base = log_end_;
      std::vector<pending_message> msgs;
      for (size_t i = 0; i < dues.size(); ++i) {
        pending_message m;
        m.due = dues[i];
        m.offset = base + static_cast<int64_t>(i);
        m.append_time = clk_.now_ms();
        m.timestamp = clk_.now_ms();
        m.key = key;
        m.value = "v" + std::to_string(m.offset);
        m.headers = {{"trace", std::string("abc")}};
        msgs.push_back(std::move(m));
      }
      log_end_ += static_cast<int64_t>(dues.size());
      s_->on_inserted(base, std::move(msgs));
      s_->set_applied(log_end_);
      run();
      return base;
    }
  }

  // The partition's release function: checks the batch, records what it releases, and makes it
  // durable one loop turn later (as the log's group commit would), in log order.
  result<void> on_release(const std::vector<std::byte>& batch, const std::vector<delay_key>& keys) {
    int64_t now = clk_.now_ms();
    std::vector<released_record> got;
    auto h = wire::verify_batch(batch);
    EXPECT_TRUE(h) << h.error().to_string();
    EXPECT_TRUE(h && (h->attributes & wire::attr_released)) << "a release batch is marked attr_released";
    size_t i = 0;
    auto r = wire::for_each_record(batch, [&](const wire::record_view& rec) {
      ASSERT_LT(i, keys.size());
      EXPECT_EQ(rec.deliver_at, keys[i].first) << "the copy carries the original's due time";
      EXPECT_EQ(rec.value, "v" + std::to_string(keys[i].second));
      bool named = false;
      for (auto& hv : rec.headers)
        if (hv.key == "ferry-delayed-id") named = hv.value == "orders/0/" + std::to_string(keys[i].second);
      EXPECT_TRUE(named) << "ferry-delayed-id names the original";
      ++i;
    });
    EXPECT_TRUE(r);
    EXPECT_EQ(i, keys.size());
    got.reserve(keys.size());
    for (auto& k : keys) got.push_back({k, now});
    released_.insert(released_.end(), got.begin(), got.end());
    int64_t base = log_end_;
    log_end_ += static_cast<int64_t>(keys.size());
    asio::post(io_, [this, base, keys, end = log_end_] {
      if (!s_) return;
      s_->on_released(base, keys);
      s_->set_applied(end);
    });
    return {};
  }

  const std::vector<released_record>& released() const { return released_; }
  size_t released_count() const { return released_.size(); }
  size_t loaded() const { return s_->loaded(); }
  int64_t pending() const { return s_->pending(); }

  // Every release so far: none before its due time, in (due, offset) order, no duplicates.
  void expect_on_time_and_in_order() {
    auto rs = released();
    for (size_t i = 0; i < rs.size(); ++i) {
      EXPECT_LE(rs[i].key.first, rs[i].now_at_release) << "released early: offset " << rs[i].key.second;
      if (i > 0) {
        EXPECT_LT(rs[i - 1].key, rs[i].key) << "out of due order at release " << i;
      }
    }
  }

  std::filesystem::path dir_;
  std::unique_ptr<delay_index> idx_;
  boost::asio::io_context io_;
  manual_clock clk_{start_ms};
  partition_key pk_{42, 0};
  delay_limits lim_;
  std::unique_ptr<delay_scheduler> s_;
  int64_t log_end_ = 0;
  std::vector<released_record> released_;
};

delay_limits fast_limits() {
  delay_limits l;
  l.tick_ms = 5;
  l.sync_interval_ms = 50;
  return l;
}

TEST_F(delay_scheduler_test, releases_nothing_before_its_due_time_and_everything_in_due_order) {
  make(fast_limits());
  std::mt19937_64 rng(7);
  std::vector<int64_t> dues;
  dues.reserve(501);
  for (int i = 0; i < 500; ++i) dues.push_back(start_ms + static_cast<int64_t>(rng() % 1500));
  dues.push_back(start_ms - 10'000);  // in the past: at once
  insert(dues);
  EXPECT_GE(released_count(), 1u) << "a message due in the past is released";
  for (int64_t t = 0; t <= 1500; t += 7) {
    step(7);
    size_t due_now =
        static_cast<size_t>(std::count_if(dues.begin(), dues.end(), [&](int64_t d) { return d <= clk_.now_ms(); }));
    ASSERT_EQ(released_count(), due_now) << "at +" << t << " ms: everything due, nothing not yet due";
  }
  EXPECT_EQ(released_count(), dues.size());
  expect_on_time_and_in_order();
  EXPECT_EQ(pending(), 0);
}

TEST_F(delay_scheduler_test, memory_holds_at_most_max_loaded_and_the_rest_loads_as_the_horizon_moves) {
  auto lim = fast_limits();
  lim.max_loaded = 100;
  lim.horizon_ms = 60'000;
  make(lim);
  // 3,000 messages due between 5 s and 55 s from now: all inside the horizon, far more than memory.
  std::mt19937_64 rng(11);
  std::vector<int64_t> dues;
  for (int b = 0; b < 30; ++b) {
    std::vector<int64_t> batch;
    batch.reserve(100);
    for (int i = 0; i < 100; ++i) batch.push_back(start_ms + 5'000 + static_cast<int64_t>(rng() % 50'000));
    insert(batch);
    dues.insert(dues.end(), batch.begin(), batch.end());
  }
  EXPECT_EQ(pending(), 3000);
  // The loader stops once memory is three quarters full; a chunk never takes it past max_loaded.
  step(lim.tick_ms);
  EXPECT_GE(loaded(), 75u) << "the loader fills memory";
  for (int i = 0; i < 10; ++i) {
    step(1);  // ticks, writes and loads run a few more rounds
    EXPECT_LE(loaded(), 100u);
  }
  size_t max_seen = 0;
  for (int64_t t = 0; t < 56'000; t += 250) {
    step(250);
    size_t due_now =
        static_cast<size_t>(std::count_if(dues.begin(), dues.end(), [&](int64_t d) { return d <= clk_.now_ms(); }));
    ASSERT_EQ(released_count(), due_now) << "at +" << t << " ms; in memory " << loaded() << ", next due in memory +"
                                         << s_->next_due_in_memory() - start_ms << " ms";
    max_seen = std::max(max_seen, loaded());
  }
  EXPECT_EQ(released_count(), 3000u);
  // About 15 messages fall due per 250 ms step, far fewer than the memory limit: memory stays
  // within it while the horizon moves.
  EXPECT_LE(max_seen, 100u);
  expect_on_time_and_in_order();
  EXPECT_EQ(pending(), 0);
}

TEST_F(delay_scheduler_test, memory_is_bounded_in_bytes_too) {
  auto lim = fast_limits();
  lim.max_loaded = 100'000;
  lim.max_loaded_bytes = 64u << 10;  // about 200 of these messages
  lim.horizon_ms = 60'000;
  make(lim);
  std::vector<int64_t> dues;
  dues.reserve(2000);
  for (int i = 0; i < 2000; ++i) dues.push_back(start_ms + 10'000 + i);
  for (size_t i = 0; i < dues.size(); i += 100) insert(std::vector<int64_t>(dues.begin() + i, dues.begin() + i + 100));
  for (int i = 0; i < 20; ++i) {
    step(lim.tick_ms);
    EXPECT_LE(s_->loaded_bytes(), lim.max_loaded_bytes + (32u << 10)) << "round " << i;
  }
  EXPECT_GT(s_->loaded(), 0u);
  EXPECT_LT(s_->loaded(), 1000u);
  for (int t = 0; t < 300; ++t) {
    step(50);  // time passes as it does: loads follow the horizon in ticks
    EXPECT_LE(s_->loaded_bytes(), lim.max_loaded_bytes + (32u << 10));
  }
  EXPECT_EQ(released_count(), dues.size()) << "everything still comes out, in order";
  expect_on_time_and_in_order();
}

TEST_F(delay_scheduler_test, catch_up_is_rate_limited_by_the_token_bucket) {
  auto lim = fast_limits();
  lim.release_rate = 1000;  // per second of (manual) monotonic time
  lim.release_burst = 100;
  make(lim);
  std::vector<int64_t> dues(1000, start_ms - 60'000);  // fell due while the broker was down
  insert(dues);
  EXPECT_EQ(released_count(), 100u) << "the burst goes at once";
  run();  // the monotonic clock does not move: no more tokens
  EXPECT_EQ(released_count(), 100u);
  auto step_to = [&](int64_t advance_ms, size_t expect) {
    step(advance_ms);
    EXPECT_EQ(released_count(), expect);
  };
  for (size_t i = 1; i <= 5; ++i) step_to(100, 100 + 100 * i);  // 100 ms at 1000/s: 100 more
  step_to(10'000, 700);                                         // a long pause refills the bucket only up to the burst
  for (size_t expect = 800; expect <= 1000; expect += 100) step_to(100, expect);
  expect_on_time_and_in_order();
}

TEST_F(delay_scheduler_test, a_clock_step_back_releases_nothing_early_and_a_step_forward_releases_what_is_due) {
  make(fast_limits());
  insert({start_ms + 500, start_ms + 800, start_ms + 3'600'000});
  clk_.set_wall_ms(start_ms - 3'600'000);  // an hour back
  for (int i = 0; i < 20; ++i) step(50);   // a second of ticks: still long before any due time
  EXPECT_EQ(released_count(), 0u);
  clk_.set_wall_ms(start_ms + 900);  // forward past two of them
  step(5);
  EXPECT_EQ(released_count(), 2u);
  clk_.set_wall_ms(start_ms + 3'599'000);
  step(50);
  EXPECT_EQ(released_count(), 2u);
  clk_.set_wall_ms(start_ms + 3'600'000);
  step(5);
  EXPECT_EQ(released_count(), 3u);
  expect_on_time_and_in_order();
}

TEST_F(delay_scheduler_test, releases_wait_while_this_broker_does_not_lead) {
  make(fast_limits());
  insert({start_ms + 100});
  s_->set_releasing(false);
  step(1'000);
  EXPECT_EQ(released_count(), 0u) << "not the leader: nothing is released";
  s_->set_releasing(true);
  run();
  EXPECT_EQ(released_count(), 1u);
}

TEST_F(delay_scheduler_test, cancel_before_due_suppresses_the_release_and_after_it_is_too_late) {
  make(fast_limits());
  int64_t near = insert({start_ms + 1'000});     // in memory (direct window)
  int64_t far = insert({start_ms + 7'200'000});  // in the index only
  int64_t soon = insert({start_ms + 10});
  // The far message reaches memory only through the loader; its index write ran in run().
  auto indexed = idx_->due_of(pk_, far);
  ASSERT_TRUE(indexed && indexed->has_value());

  auto near_check = s_->begin_cancel(near);
  EXPECT_FALSE(near_check.answer);
  ASSERT_TRUE(near_check.due);
  EXPECT_EQ(*near_check.due, start_ms + 1'000);
  auto far_check = s_->begin_cancel(far);
  EXPECT_FALSE(far_check.answer);
  EXPECT_FALSE(far_check.due) << "not in memory: the partition reads its due time from the index";
  auto due = idx_->due_of(pk_, far);
  ASSERT_TRUE(due && *due) << "the far message is in the index";
  // The cancel control records are committed, in log order.
  auto cancel_at = [&](int64_t off, int64_t d) {
    int64_t base = log_end_++;
    auto o = s_->on_cancelled(base, off, d);
    s_->set_applied(log_end_);
    return o;
  };
  EXPECT_EQ(cancel_at(near, *near_check.due), cancel_outcome::cancelled);
  EXPECT_EQ(cancel_at(far, **due), cancel_outcome::cancelled);
  step(20);
  EXPECT_EQ(released_count(), 1u);
  auto late = s_->begin_cancel(soon);
  ASSERT_TRUE(late.answer);
  EXPECT_EQ(*late.answer, cancel_outcome::too_late);
  auto again = s_->begin_cancel(near);
  ASSERT_TRUE(again.answer);
  EXPECT_EQ(*again.answer, cancel_outcome::cancelled) << "a second cancel gets the same answer";

  step(7'300'000);
  EXPECT_EQ(released_count(), 1u) << "neither cancelled message is ever released";
  EXPECT_EQ(released().front().key.second, soon);
  EXPECT_EQ(pending(), 0);
}

TEST_F(delay_scheduler_test, a_cancel_while_the_index_write_is_in_flight_knows_the_due_time) {
  make(fast_limits());
  // Appended and applied, but its index write not run yet (the loop has not turned).
  int64_t base = log_end_;
  pending_message m;
  m.due = start_ms + 7'200'000;
  m.offset = base;
  m.value = "v" + std::to_string(base);
  ++log_end_;
  std::vector<pending_message> msgs{m};
  s_->on_inserted(base, std::move(msgs));
  s_->set_applied(log_end_);
  auto check = s_->begin_cancel(base);
  EXPECT_FALSE(check.answer) << "not decided: it is pending";
  ASSERT_TRUE(check.due) << "the due time is known while the index write is in flight";
  EXPECT_EQ(*check.due, m.due);
  run();
}

TEST_F(delay_scheduler_test, pending_messages_survive_a_restart_and_are_released_when_due) {
  make(fast_limits());
  std::vector<int64_t> dues;
  dues.reserve(50);
  for (int i = 0; i < 50; ++i) dues.push_back(start_ms + 1'000 + int64_t{i} * 86'400'000);  // daily
  insert(dues);
  step(1'500);
  EXPECT_EQ(released_count(), 1u);
  destroy();  // writes and syncs the index
  int64_t end = log_end_;
  idx_.reset();
  open_index();  // what is on disk only
  EXPECT_EQ(make(fast_limits()), end) << "the index is applied up to the end of the log";
  EXPECT_EQ(pending(), 49);
  for (int i = 1; i < 50; ++i) {
    step(86'400'000);
    ASSERT_EQ(released_count(), static_cast<size_t>(i) + 1) << "day " << i;
  }
  expect_on_time_and_in_order();
}

}  // namespace
}  // namespace ferry::delay
