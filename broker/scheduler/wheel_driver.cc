#include "broker/scheduler/wheel_driver.h"

#include <algorithm>
#include <boost/system/system_error.hpp>
#include <chrono>

#include "broker/base/assert.h"

namespace ferry::scheduler {

wheel_driver::wheel_driver(const boost::asio::any_io_executor& executor, const ferry::clock& clock,
                           fire_handler on_fire, timebase base, int64_t tick_ms)
    : clock_(clock),
      base_(base),
      on_fire_(std::move(on_fire)),
      wheel_(base == timebase::monotonic ? clock.monotonic_ns() / 1'000'000 : clock.now_ms(), tick_ms),
      timer_(executor),
      generation_(std::make_shared<uint64_t>(0)) {
  FERRY_ASSERT(on_fire_ != nullptr, "wheel_driver needs a fire handler");
}

wheel_driver::~wheel_driver() {
  // The timer's destructor cancels a pending wait. A completion may already be queued with
  // success (too late to cancel); the bump makes it return before it dereferences the driver.
  ++*generation_;
}

int64_t wheel_driver::now() const noexcept {
  return base_ == timebase::monotonic ? clock_.monotonic_ns() / 1'000'000 : clock_.now_ms();
}

void wheel_driver::schedule(timer_entry& e, int64_t deadline_ms) {
  wheel_.schedule(e, deadline_ms);
  rearm();
}

void wheel_driver::reschedule(timer_entry& e, int64_t deadline_ms) {
  wheel_.reschedule(e, deadline_ms);
  rearm();
}

void wheel_driver::wake() {
  FERRY_ASSERT(!polling_, "wheel_driver::wake() from the fire handler");
  if (stopped_) return;
  armed_ = false;
  ++*generation_;  // the pending wait (if any) is superseded by this poll's rearm()
  on_wakeup();
}

void wheel_driver::stop() noexcept {
  stopped_ = true;
  armed_ = false;
  ++*generation_;  // enough on its own: a completion that still runs sees a stale generation
  try {
    timer_.cancel();  // only to release the pending wait early
  } catch (const boost::system::system_error&) {
  }
}

void wheel_driver::rearm() {
  // From inside the fire handler, on_wakeup() re-arms once the poll is over.
  if (stopped_ || polling_) return;
  const std::optional<int64_t> hint = wheel_.next_deadline_hint();
  if (!hint) return;  // a pending wait stays: it wakes up, finds nothing and does not re-arm
  // Keep a pending wait that is early enough; re-arming costs a cancel and a new wait.
  if (armed_ && armed_for_ <= *hint) return;
  armed_ = true;
  armed_for_ = *hint;
  const uint64_t gen = ++*generation_;
  // hint > now() when nothing is due: then the wait is >= 1 ms and the loop cannot spin; every
  // wake-up makes progress (fires, cascades a slot, or drops a stale lower bound), so a hint
  // <= now() (due now) only repeats while something is actually due.
  const int64_t delay_ms = std::max<int64_t>(0, *hint - now());
  timer_.expires_after(std::chrono::milliseconds(delay_ms));
  timer_.async_wait([this, gen, generation = generation_](const boost::system::error_code& ec) {
    // Check before touching `this`: a stale or aborted completion may outlive the driver.
    if (ec || *generation != gen) return;
    on_wakeup();
  });
}

void wheel_driver::on_wakeup() {
  armed_ = false;
  ++wakeups_;
  polling_ = true;
  wheel_.poll(now(), on_fire_);
  polling_ = false;
  rearm();
}

}  // namespace ferry::scheduler
