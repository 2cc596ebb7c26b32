#include "broker/runtime/runtime.h"

#include <algorithm>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <exception>

#include "broker/base/assert.h"

namespace ferry::runtime {

namespace {
thread_local size_t this_shard = SIZE_MAX;
}

shard_set::shard_set(size_t shards, size_t disk_threads) : disk_(disk_threads) {
  for (size_t i = 0; i < shards; ++i) {
    // concurrency hint 1: each io_context is run by exactly one thread, so Asio can skip locking.
    ctx_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(
        std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(ctx_.back()->get_executor()));
  }
}

shard_set::~shard_set() { stop_and_join(); }

// A 100 ms timer on one shard that stamps the time it ran: a stalled shard stops stamping.
struct shard_set::heartbeat {
  explicit heartbeat(asio::io_context& ctx) : timer(ctx) {}
  static int64_t now_ns() { return std::chrono::steady_clock::now().time_since_epoch().count(); }
  void beat() {
    last_ns.store(now_ns(), std::memory_order_relaxed);
    timer.expires_after(std::chrono::milliseconds(100));
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) beat();
    });
  }
  asio::steady_timer timer;
  std::atomic<int64_t> last_ns{0};
};

void shard_set::start() {
  for (size_t i = 0; i < ctx_.size(); ++i) {
    beats_.push_back(std::make_unique<heartbeat>(*ctx_[i]));
    beats_.back()->last_ns.store(heartbeat::now_ns());
    asio::post(*ctx_[i], [b = beats_.back().get()] { b->beat(); });
    threads_.emplace_back([this, i] {
      this_shard = i;
      mark_event_loop_thread();
      ctx_[i]->run();
    });
  }
}

int64_t shard_set::stall_ms(shard_id s) const {
  if (s.value >= beats_.size()) return 0;
  int64_t last = beats_[s.value]->last_ns.load(std::memory_order_relaxed);
  return std::max<int64_t>(0, (heartbeat::now_ns() - last) / 1'000'000);
}

void shard_set::stop_and_join() {
  guards_.clear();
  for (auto& c : ctx_) c->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  beats_.clear();
  disk_.join();
  state_.join();
}

size_t shard_set::current_index() { return this_shard == SIZE_MAX ? SIZE_MAX : this_shard; }

void spawn_logged(const asio::any_io_executor& ex, asio::awaitable<void> a, std::string what) {
  asio::co_spawn(ex, std::move(a), [what = std::move(what)](const std::exception_ptr& e) {
    if (!e) return;
    static auto& escaped =
        metrics::get_counter("ferry_escaped_exceptions_total", "Exceptions that escaped a broker coroutine (bugs)");
    escaped.inc();
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("exception escaped {}: {}", what, ex.what());
    } catch (...) {
      spdlog::error("unknown exception escaped {}", what);
    }
  });
}

}  // namespace ferry::runtime
