#pragma once
// The broker's threads: one io_context per shard (one thread each, STYLE.md "Async model") and a
// small disk pool for fsync and RocksDB calls, so they never block a shard.
// Includes Asio: include this only from .cc files that run coroutines.
#include <spdlog/spdlog.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker/base/types.h"
#include "broker/runtime/metrics.h"

namespace ferry::runtime {

namespace asio = boost::asio;

class shard_set {
 public:
  // `shards` io_context threads and `disk_threads` disk pool threads. Not started until start().
  shard_set(size_t shards, size_t disk_threads);
  ~shard_set();
  shard_set(const shard_set&) = delete;
  shard_set& operator=(const shard_set&) = delete;

  void start();          // runs one thread per shard
  void stop_and_join();  // stops every io_context (after the app's orderly shutdown) and joins

  size_t size() const { return ctx_.size(); }
  asio::io_context& context(shard_id s) { return *ctx_[s.value]; }
  asio::any_io_executor executor(shard_id s) { return ctx_[s.value]->get_executor(); }
  asio::thread_pool& disk() { return disk_; }
  // Shard index of the calling thread, or size() if not a shard thread.
  static size_t current_index();

 private:
  std::vector<std::unique_ptr<asio::io_context>> ctx_;
  std::vector<std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>>> guards_;
  std::vector<std::thread> threads_;
  asio::thread_pool disk_;
};

// The one way broker code starts a coroutine it does not await (never co_spawn(..., detached)):
// an exception escaping `a` is logged with `what` and counted, and does not take the broker down.
void spawn_logged(asio::any_io_executor ex, asio::awaitable<void> a, std::string what);

// Runs `fn()` on the disk pool and resumes the caller on its own executor with the result.
template <class Fn>
auto on_disk(asio::thread_pool& pool, Fn fn) -> asio::awaitable<decltype(fn())> {
  co_return co_await asio::co_spawn(
      pool.get_executor(), [fn = std::move(fn)]() mutable -> asio::awaitable<decltype(fn())> { co_return fn(); },
      asio::use_awaitable);
}

}  // namespace ferry::runtime
