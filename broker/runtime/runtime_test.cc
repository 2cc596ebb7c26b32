// shard_set and the cross-shard helpers on real threads (two shards and the disk pool): run_on,
// start_on, on_disk and spawn_logged move work to the right thread and the awaiting coroutine back
// to its own, and an exception escaping a spawned coroutine is counted, not fatal. Run under TSan
// by scripts/sanitize.sh: the hand-offs between threads must be race-free.
#include "broker/runtime/runtime.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ferry::runtime {
namespace {

using namespace std::chrono_literals;

class runtime_test : public ::testing::Test {
 protected:
  void SetUp() override { rt_.start(); }
  void TearDown() override { rt_.stop_and_join(); }

  // Runs `a` on shard `s` and waits (with a deadline) for it to finish.
  void run(shard_id s, asio::awaitable<void> a) {
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    asio::co_spawn(rt_.executor(s), std::move(a), [done](const std::exception_ptr& e) {
      if (e)
        done->set_exception(e);
      else
        done->set_value();
    });
    ASSERT_EQ(fut.wait_for(10s), std::future_status::ready) << "coroutine did not finish";
    fut.get();
  }

  shard_set rt_{2, 2};
};

asio::awaitable<void> hop_to_other_shard(shard_set* rt, std::vector<size_t>* seen) {
  seen->push_back(shard_set::current_index());
  auto where = [] { return shard_set::current_index(); };
  auto shard1 = rt->executor(shard_id{1});
  size_t there = co_await run_on(shard1, std::move(where));
  seen->push_back(there);
  seen->push_back(shard_set::current_index());
}

TEST_F(runtime_test, run_on_runs_on_the_target_shard_and_resumes_on_the_callers) {
  std::vector<size_t> seen;
  run(shard_id{0}, hop_to_other_shard(&rt_, &seen));
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 0}));
}

asio::awaitable<void> throw_across(shard_set* rt, std::string* what) {
  auto boom = []() -> int { throw std::runtime_error("boom on shard 1"); };
  try {
    auto shard1 = rt->executor(shard_id{1});
    (void)co_await run_on(shard1, std::move(boom));
  } catch (const std::exception& e) {
    *what = e.what();
  }
}

TEST_F(runtime_test, run_on_rethrows_in_the_awaiter) {
  std::string what;
  run(shard_id{0}, throw_across(&rt_, &what));
  EXPECT_EQ(what, "boom on shard 1");
}

// start_on: the operation starts on shard 1 and completes later from a disk thread; the awaiter
// resumes on shard 0 with the value.
asio::awaitable<void> callback_from_disk(shard_set* rt, std::vector<size_t>* seen, int* value) {
  auto* pool = &rt->disk();
  auto start = [pool, seen](std::function<void(int)> done) {
    seen->push_back(shard_set::current_index());
    asio::post(*pool, [done = std::move(done)] { done(shard_set::current_index() == SIZE_MAX ? 42 : -1); });
  };
  auto shard1 = rt->executor(shard_id{1});
  *value = co_await start_on<int>(shard1, std::move(start));
  seen->push_back(shard_set::current_index());
}

TEST_F(runtime_test, start_on_completes_from_any_thread_and_resumes_on_the_callers_shard) {
  std::vector<size_t> seen;
  int value = 0;
  run(shard_id{0}, callback_from_disk(&rt_, &seen, &value));
  EXPECT_EQ(value, 42) << "done() ran on a disk thread (not a shard)";
  EXPECT_EQ(seen, (std::vector<size_t>{1, 0}));
}

asio::awaitable<void> sync_on_disk(shard_set* rt, size_t* disk_index, size_t* after) {
  auto where = [] { return shard_set::current_index(); };
  *disk_index = co_await on_disk(rt->disk(), std::move(where));
  *after = shard_set::current_index();
}

TEST_F(runtime_test, on_disk_runs_off_the_shards) {
  size_t disk_index = 0, after = 99;
  run(shard_id{1}, sync_on_disk(&rt_, &disk_index, &after));
  EXPECT_EQ(disk_index, SIZE_MAX);
  EXPECT_EQ(after, 1u);
}

// Many coroutines on both shards, each handing a count to the other shard and back: the shared
// counter is touched only on shard 0, the atomic one from both.
asio::awaitable<void> ping(shard_set* rt, int64_t* on_shard0, std::atomic<int>* finished, std::promise<void>* all,
                           int total) {
  auto incr = [] { return int64_t{1}; };
  auto shard0 = rt->executor(shard_id{0});
  int64_t one = co_await run_on(shard0, std::move(incr));
  auto add = [on_shard0, one] { *on_shard0 += one; };
  co_await run_on(shard0, std::move(add));
  if (finished->fetch_add(1) + 1 == total) all->set_value();
}

TEST_F(runtime_test, spawn_logged_runs_coroutines_on_both_shards) {
  constexpr int total = 200;
  int64_t on_shard0 = 0;
  std::atomic<int> finished{0};
  std::promise<void> all;
  auto fut = all.get_future();
  for (int i = 0; i < total; ++i)
    spawn_logged(rt_.executor(shard_id{static_cast<uint32_t>(i % 2)}), ping(&rt_, &on_shard0, &finished, &all, total),
                 "ping");
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  // Read the shard-0 counter on shard 0.
  auto read = [&on_shard0] { return on_shard0; };
  auto got = std::make_shared<std::promise<int64_t>>();
  auto got_fut = got->get_future();
  asio::post(rt_.executor(shard_id{0}), [got, read] { got->set_value(read()); });
  ASSERT_EQ(got_fut.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(got_fut.get(), total);
}

asio::awaitable<void> escape(std::atomic<bool>* ran) {
  ran->store(true);
  throw std::runtime_error("escaped on purpose");
  co_return;
}

TEST_F(runtime_test, an_exception_escaping_spawn_logged_is_counted_and_the_shard_keeps_running) {
  auto& escaped =
      metrics::get_counter("ferry_escaped_exceptions_total", "Exceptions that escaped a broker coroutine (bugs)");
  uint64_t before = escaped.value();
  std::atomic<bool> ran{false};
  spawn_logged(rt_.executor(shard_id{1}), escape(&ran), "escape test");
  // The shard still serves work after it (posted behind the coroutine's completion).
  std::vector<size_t> seen;
  run(shard_id{1}, hop_to_other_shard(&rt_, &seen));
  auto count = std::make_shared<std::promise<uint64_t>>();
  auto count_fut = count->get_future();
  asio::post(rt_.executor(shard_id{1}), [count, &escaped] { count->set_value(escaped.value()); });
  ASSERT_EQ(count_fut.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(ran.load());
  EXPECT_EQ(count_fut.get(), before + 1);
  EXPECT_EQ(seen, (std::vector<size_t>{1, 1, 1}));
}

}  // namespace
}  // namespace ferry::runtime
