#pragma once
// The broker's threads: one io_context per shard (one thread each, STYLE.md "Async model") and a
// small disk pool for fsync and RocksDB calls, so they never block a shard.
// Includes Asio: include this only from .cc files that run coroutines.
#include <spdlog/spdlog.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "broker/runtime/metrics.h"
#include "schema/types.h"

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
  // A separate thread for the broker's own state stores (delay index writes and loads, checkpoint
  // saves): their RocksDB work never queues in front of an fsync that acks wait for.
  asio::thread_pool& state() { return state_; }
  // Shard index of the calling thread, or size() if not a shard thread.
  static size_t current_index();
  // How long shard `s`'s event loop has not run its 100 ms heartbeat, in ms (0..~100 when
  // healthy): a shard stuck in a long task or blocked shows here. Any thread; 0 before start().
  int64_t stall_ms(shard_id s) const;

 private:
  std::vector<std::unique_ptr<asio::io_context>> ctx_;
  std::vector<std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>>> guards_;
  std::vector<std::thread> threads_;
  asio::thread_pool disk_;
  asio::thread_pool state_{1};
  struct heartbeat;
  std::vector<std::unique_ptr<heartbeat>> beats_;
};

// The one way broker code starts a coroutine it does not await (never co_spawn(..., detached)):
// an exception escaping `a` is logged with `what` and counted, and does not take the broker down.
void spawn_logged(const asio::any_io_executor& ex, asio::awaitable<void> a, std::string what);

// Runs the plain (non-coroutine) function `fn()` on `target` and resumes the awaiting coroutine
// on its own executor with the result (an exception thrown by `fn` is rethrown in the awaiter).
// `fn` must not be a coroutine. The result type must be default-constructible.
//
// GCC 12 bug (tests/lint/coroutine_temporaries.py enforces the rule): a lambda or braced
// temporary created inside a co_await expression is copied bitwise into the coroutine frame, so
// one with a std::string capture frees a pointer into the frame. Bind the lambda to a named local
// first: `auto fn = [rec] { ... }; auto r = co_await run_on(ex, std::move(fn));`.
template <class Fn>
auto run_on(asio::any_io_executor target, Fn fn) {
  using R = std::invoke_result_t<Fn&>;
  if constexpr (std::is_void_v<R>) {
    auto init = [target](auto handler, Fn f) {
      auto work = [handler = std::move(handler), f = std::move(f)]() mutable {
        std::exception_ptr ep;
        try {
          f();
        } catch (...) {
          ep = std::current_exception();
        }
        auto home = asio::get_associated_executor(handler);
        // Moved, not copied: no reference to the exception stays behind on this thread (its count
        // lives in the uninstrumented runtime, so a copy released here races in TSan's eyes).
        auto resume = [handler = std::move(handler), ep = std::move(ep)]() mutable { std::move(handler)(ep); };
        asio::post(home, std::move(resume));
      };
      asio::post(target, std::move(work));
    };
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
        std::move(init), asio::use_awaitable, std::move(fn));
  } else {
    static_assert(std::is_default_constructible_v<R>, "run_on: the result type must be default-constructible");
    auto init = [target](auto handler, Fn f) {
      auto work = [handler = std::move(handler), f = std::move(f)]() mutable {
        std::exception_ptr ep;
        R r{};
        try {
          r = f();
        } catch (...) {
          ep = std::current_exception();
        }
        auto home = asio::get_associated_executor(handler);
        auto resume = [handler = std::move(handler), ep = std::move(ep), r = std::move(r)]() mutable {
          std::move(handler)(ep, std::move(r));
        };
        asio::post(home, std::move(resume));
      };
      asio::post(target, std::move(work));
    };
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        std::move(init), asio::use_awaitable, std::move(fn));
  }
}

// Starts a callback-style operation on `target`: `start(done)` runs there, and `done(R)` may be
// called later, from any thread, exactly once; the awaiting coroutine then resumes on its own
// executor with the R. A plain function like run_on (same rule about named lambdas).
template <class R, class Start>
auto start_on(asio::any_io_executor target, Start start) {
  auto init = [target](auto handler, Start st) {
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    std::function<void(R)> done = [h](R r) {
      auto home = asio::get_associated_executor(*h);
      auto resume = [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); };
      asio::post(home, std::move(resume));
    };
    auto work = [st = std::move(st), done = std::move(done)]() mutable { st(std::move(done)); };
    asio::post(target, std::move(work));
  };
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(R)>(std::move(init), asio::use_awaitable,
                                                                       std::move(start));
}

// run_on() for the disk pool (fsync, RocksDB): never block a shard on them.
template <class Fn>
auto on_disk(asio::thread_pool& pool, Fn fn) {
  return run_on(pool.get_executor(), std::move(fn));
}

}  // namespace ferry::runtime
