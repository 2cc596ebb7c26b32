#pragma once
// FERRY_ASSERT: a programmer-error check that stays on in release builds and aborts with the
// file, line and message. Not for expected failures (those are result<T> values).
namespace ferry::detail {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept;
}

// Threads that must never block on a disk (the shards' event loops) mark themselves; code that
// blocks the calling thread on one (a RocksDB write) checks with FERRY_ASSERT_OFF_EVENT_LOOP that it
// is not on such a thread. On in every build: one thread_local read.
namespace ferry {
void mark_event_loop_thread() noexcept;
[[nodiscard]] bool on_event_loop_thread() noexcept;
}  // namespace ferry
#define FERRY_ASSERT_OFF_EVENT_LOOP(what) \
  FERRY_ASSERT(!::ferry::on_event_loop_thread(), what " must not run on a shard's event loop")

#define FERRY_ASSERT(cond, msg)                                       \
  do {                                                                \
    if (!(cond)) [[unlikely]]                                         \
      ::ferry::detail::assert_fail(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
