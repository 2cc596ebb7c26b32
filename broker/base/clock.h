#pragma once
// Clocks. Production code asks a `clock` for time so tests can inject a manual one.
#include <atomic>
#include <chrono>
#include <cstdint>

namespace ferry {

// Wall-clock milliseconds since the Unix epoch (message timestamps, retention by time).
int64_t wall_now_ms() noexcept;

class clock {
 public:
  virtual ~clock() = default;
  virtual int64_t now_ms() const noexcept = 0;        // wall clock, ms since epoch
  virtual int64_t monotonic_ns() const noexcept = 0;  // never goes back
};

class system_clock_source final : public clock {
 public:
  int64_t now_ms() const noexcept override;
  int64_t monotonic_ns() const noexcept override;
};

// The broker's clock: the system clock, or, in test builds (FERRY_FAILPOINTS) when the environment
// variable FERRY_CLOCK_FILE names a file, the system clock plus the offset in milliseconds written
// in that file (one integer, may be negative; re-read at most every 2 ms). Integration tests move a
// real ferryd's wall clock with it (days ahead for long delays, backwards for clock steps). The
// monotonic time is never shifted. Thread-safe; lives for the process.
const clock& broker_clock();

// A clock tests move by hand. Thread-safe.
class manual_clock final : public clock {
 public:
  explicit manual_clock(int64_t start_ms = 1'700'000'000'000) : ms_(start_ms), ns_(0) {}
  int64_t now_ms() const noexcept override { return ms_.load(); }
  int64_t monotonic_ns() const noexcept override { return ns_.load(); }
  void advance_ms(int64_t d) noexcept {
    ms_ += d;
    ns_ += d * 1'000'000;
  }
  void set_wall_ms(int64_t v) noexcept { ms_ = v; }

 private:
  std::atomic<int64_t> ms_;
  std::atomic<int64_t> ns_;
};

}  // namespace ferry
