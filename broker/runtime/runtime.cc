#include "broker/runtime/runtime.h"

#include <boost/asio/detached.hpp>
#include <exception>

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

void shard_set::start() {
  for (size_t i = 0; i < ctx_.size(); ++i) {
    threads_.emplace_back([this, i] {
      this_shard = i;
      ctx_[i]->run();
    });
  }
}

void shard_set::stop_and_join() {
  guards_.clear();
  for (auto& c : ctx_) c->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
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
