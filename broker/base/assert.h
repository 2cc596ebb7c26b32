#pragma once
// FERRY_ASSERT: a programmer-error check that stays on in release builds and aborts with the
// file, line and message. Not for expected failures (those are result<T> values).
namespace ferry::detail {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept;
}

#define FERRY_ASSERT(cond, msg)                                       \
  do {                                                                \
    if (!(cond)) [[unlikely]]                                         \
      ::ferry::detail::assert_fail(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
