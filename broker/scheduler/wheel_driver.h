#pragma once
// Runs a timer_wheel on a shard's executor with one steady_timer: it sleeps until the wheel's
// next_deadline_hint(), polls, and sleeps again; scheduling an entry earlier than the armed
// wake-up re-arms the timer. Kept apart from wheel.h so that the wheel stays free of Asio.
//
// Time: the wheel's times are milliseconds on the injected clock's time base (`timebase`):
// monotonic (the default; clock::monotonic_ns() / 10^6, for leases and backoffs, immune to
// wall-clock steps) or wall (clock::now_ms(), for deadlines that are wall-clock timestamps). The
// sleep itself is a real std::chrono::steady_clock wait for (hint - now()); if the clock moves
// other than in real time (a manual_clock in a test, a wall-clock step), call wake().
//
// Threads: not thread-safe. Construct, call and destroy the driver on the thread that runs
// `executor` (the owning shard). The fire handler runs there too, from a timer completion.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>

#include "broker/base/clock.h"
#include "broker/scheduler/wheel.h"

namespace ferry::scheduler {

enum class timebase { monotonic, wall };

class wheel_driver {
 public:
  // Called for each entry that fires, with the entry already unscheduled; it may schedule,
  // reschedule or cancel entries through the driver, but not call wake(). It must not throw
  // (STYLE.md: errors are values). Stored once; calling it does not allocate.
  using fire_handler = std::function<void(timer_entry&)>;

  // `clock` must outlive the driver. The wheel starts at the clock's current time (which must be
  // >= 0 on the chosen time base).
  wheel_driver(const boost::asio::any_io_executor& executor, const ferry::clock& clock, fire_handler on_fire,
               timebase base = timebase::monotonic, int64_t tick_ms = 1);
  // Entries still scheduled are unlinked without firing. A wake-up already queued on the executor
  // is discarded without touching the destroyed driver.
  ~wheel_driver();
  wheel_driver(const wheel_driver&) = delete;
  wheel_driver& operator=(const wheel_driver&) = delete;

  // The current time on the driver's time base.
  int64_t now() const noexcept;

  // As timer_wheel's, plus re-arming the wake-up when the earliest deadline moved earlier.
  void schedule(timer_entry& e, int64_t deadline_ms);
  void schedule_after(timer_entry& e, int64_t delay_ms) { schedule(e, now() + delay_ms); }
  void reschedule(timer_entry& e, int64_t deadline_ms);
  // Does not re-arm: a wake-up left early by a cancel fires nothing and sleeps again.
  void cancel(timer_entry& e) noexcept { wheel_.cancel(e); }

  // Re-reads the clock now: fires what is due and re-arms from the new time. For a clock that
  // jumped (a manual_clock in tests, a wall-clock step). Must not be called from the fire handler.
  void wake();
  // Stops waking up (shutdown); entries stay scheduled and no handler runs afterwards.
  void stop() noexcept;

  const timer_wheel& wheel() const noexcept { return wheel_; }
  // Wake-ups so far (timer completions and wake() calls): for tests and metrics.
  uint64_t wakeups() const noexcept { return wakeups_; }

 private:
  void rearm();
  void on_wakeup();

  const ferry::clock& clock_;
  timebase base_;
  fire_handler on_fire_;
  timer_wheel wheel_;
  boost::asio::steady_timer timer_;
  // Bumped whenever the pending wait is superseded (or the driver is destroyed); a completion
  // carrying an older value is stale and ignored. Shared so that a completion queued after the
  // driver is gone can still check it.
  std::shared_ptr<uint64_t> generation_;
  bool armed_ = false;
  int64_t armed_for_ = 0;  // the wheel time the pending wait is for, if armed_
  bool polling_ = false;
  bool stopped_ = false;
  uint64_t wakeups_ = 0;
};

}  // namespace ferry::scheduler
