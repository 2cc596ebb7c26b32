#pragma once
// A hierarchical timing wheel: O(1) schedule, cancel and reschedule of caller-owned timer entries,
// for ack-timeout leases, nack backoffs and (later) delayed messages inside the horizon
// (DESIGN.md "Scheduler").
//
// Time. Every time here is an absolute int64 count of milliseconds on one time base chosen by the
// owner (wheel_driver uses the clock's monotonic time by default). The wheel never reads a clock:
// it is driven by the `now` values passed to advance()/poll(), which must not go backwards (a
// smaller `now` than before is allowed and fires only what is due at that smaller `now`).
//
// Guarantees.
//  - Never early: an entry fires only from an advance()/poll() call whose `now` >= its deadline,
//    whether or not the deadline is a multiple of the tick.
//  - Never lost: every scheduled entry fires exactly once from the first advance()/poll() whose
//    `now` >= its deadline, unless cancelled or rescheduled first. A deadline <= the latest `now`
//    (in the past) fires at the next advance()/poll().
//  - Order: entries fire in order of deadline tick (deadline / tick, rounded down); with the
//    default 1 ms tick that is deadline order. Entries with equal deadlines, and with a coarser
//    tick entries within one tick, fire in an unspecified order. An entry scheduled with a
//    deadline already passed (<= the latest `now`) fires at the next advance() ahead of the
//    entries still in the wheel, in the order such entries were scheduled.
//  - Horizon: none. Levels cover 64^6 ticks (~795 days at 1 ms); a later deadline (even INT64_MAX)
//    waits in the top level and is re-placed each time that span elapses.
//
// Threads. Not thread-safe by design: a wheel and its entries belong to one shard and every call
// is made from that shard's thread.
//
// Cost. schedule, cancel, reschedule, scheduled, size: O(1), no allocation (the wheel allocates
// nothing after construction). advance(now): O(entries due + entries cascaded + levels per
// non-empty slot passed); empty slots are skipped through per-level occupancy bitmaps, never
// visited one by one, so a call that jumps days ahead is as cheap as one that moves 1 ms.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace ferry::scheduler {

class timer_wheel;

namespace detail {
// An intrusive doubly-linked list hook; a slot's list is circular around a sentinel `link`.
struct link {
  link* next = nullptr;
  link* prev = nullptr;
};
}  // namespace detail

// One timer, owned by the caller and embedded in (or a base of) the object it times, e.g. one per
// in-flight message that ack, nack, extend and expiry all update in place:
//
//   struct in_flight : ferry::scheduler::timer_entry { offset off; ... };
//   wheel.poll(now, [&](timer_entry& e) { expire(static_cast<in_flight&>(e)); });
//
// Not copyable or movable (the wheel links to its address). It must not be destroyed while
// scheduled: cancel() it first (destroying a scheduled entry aborts). An entry is in at most one
// wheel at a time.
class timer_entry : private detail::link {
 public:
  timer_entry() = default;
  ~timer_entry();
  timer_entry(const timer_entry&) = delete;
  timer_entry& operator=(const timer_entry&) = delete;

  bool scheduled() const noexcept { return where_ != where_none; }
  // The deadline given to the last schedule()/reschedule() (meaningful while scheduled and in
  // the fire callback).
  int64_t deadline() const noexcept { return deadline_; }

 private:
  friend class timer_wheel;
  // where_: which list the entry is on. none, the wheel's "current tick" list, its expired queue,
  // or where_slot0 + level * 64 + slot.
  static constexpr uint16_t where_none = 0;
  static constexpr uint16_t where_current = 1;
  static constexpr uint16_t where_expired = 2;
  static constexpr uint16_t where_slot0 = 3;

  int64_t deadline_ = 0;
  uint16_t where_ = where_none;
};

// A timer entry that knows what to do when it fires: a driver whose fire handler is
// `static_cast<timed_entry&>(e).on_fire()` (fire_timed_entry) serves any mix of them.
class timed_entry : public timer_entry {
 public:
  virtual void on_fire() = 0;

 protected:
  ~timed_entry() = default;
};
inline void fire_timed_entry(timer_entry& e) { static_cast<timed_entry&>(e).on_fire(); }

class timer_wheel {
 public:
  static constexpr int level_bits = 6;
  static constexpr int slots_per_level = 1 << level_bits;  // 64: one uint64 occupancy bitmap
  static constexpr int levels = 6;                         // 64^6 = 2^36 ticks

  // `start_ms` (>= 0): the current time; `tick_ms` (>= 1): the width of a level-0 slot. The
  // default 1 ms is the resolution of the time unit itself, so no entry is delayed by rounding and
  // firing order is exact; empty ticks cost nothing (they are skipped through the bitmaps, and the
  // owner sleeps until next_deadline_hint()), so a coarser tick buys little but shorter cascades.
  explicit timer_wheel(int64_t start_ms, int64_t tick_ms = 1);
  // Entries still scheduled are unlinked without firing (so they may be destroyed afterwards).
  ~timer_wheel();
  timer_wheel(const timer_wheel&) = delete;
  timer_wheel& operator=(const timer_wheel&) = delete;

  // Schedules `e` (which must not be scheduled) to fire at `deadline_ms`. Any deadline is
  // accepted: one in the past fires at the next advance()/poll().
  void schedule(timer_entry& e, int64_t deadline_ms) noexcept;
  // Moves `e` to `deadline_ms` (earlier or later): unlink + relink, no allocation. Schedules `e`
  // if it is not scheduled.
  void reschedule(timer_entry& e, int64_t deadline_ms) noexcept;
  // Unschedules `e`; a no-op if it is not scheduled (never was, already fired, or cancelled).
  void cancel(timer_entry& e) noexcept;
  bool scheduled(const timer_entry& e) const noexcept { return e.scheduled(); }
  // Entries scheduled, including due entries not yet popped.
  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // Moves every entry whose deadline <= now_ms to the expired queue, in firing order. They stay
  // scheduled (cancel() still removes them) until pop_expired() returns them.
  void advance(int64_t now_ms) noexcept;
  // The next expired entry, now unscheduled (the caller may schedule it again at once), or null.
  timer_entry* pop_expired() noexcept;

  // advance(now_ms), then on_fire(timer_entry&) for each entry that was due, in firing order;
  // returns how many fired. on_fire may schedule, reschedule or cancel any entry (including the
  // one firing, and ones due but not fired yet, which then do not fire); an entry it schedules
  // fires at a later poll() even if its deadline has passed, so a callback that re-arms to `now`
  // cannot starve the loop. on_fire must not call advance() or poll().
  template <class OnFire>
  size_t poll(int64_t now_ms, OnFire&& on_fire) {
    advance(now_ms);
    size_t fired = 0;
    while (timer_entry* e = pop_expired()) {
      ++fired;
      on_fire(*e);
    }
    return fired;
  }

  // The earliest time at which an entry may be due, or nullopt if none is scheduled. Never later
  // than the earliest deadline scheduled; it may be earlier (a lower bound: the start of a
  // higher-level slot that must be cascaded, or a cancelled entry's deadline), in which case an
  // advance() to it fires nothing but the next hint is later. <= the latest `now` if something is
  // due now. An owner sleeps until this time instead of ticking through empty slots.
  std::optional<int64_t> next_deadline_hint() const noexcept;

  int64_t tick_ms() const noexcept { return tick_; }
  // The largest `now` passed to advance()/poll() (or the start time).
  int64_t now_ms() const noexcept { return last_now_; }

 private:
  using link = detail::link;

  static void push_back(link& list, timer_entry& e) noexcept;
  static void unlink(timer_entry& e) noexcept;
  static timer_entry& entry_of(link* l) noexcept { return static_cast<timer_entry&>(*l); }
  int64_t tick_of(int64_t t) const noexcept;
  // Links `e`, due at tick `t` > now_tick_, into its wheel slot.
  void place(timer_entry& e, uint64_t t) noexcept;
  void add_current(timer_entry& e) noexcept;
  void add_expired(timer_entry& e) noexcept;
  // The next tick > now_tick_ at which a non-empty slot fires or cascades; requires one.
  uint64_t next_event_tick() const noexcept;
  // Sets now_tick_ = t (an event tick) and cascades/fires the slots that start at t.
  void run_tick(uint64_t t, int64_t now_ms, uint64_t target) noexcept;
  // An entry whose deadline tick is t reached the front: due or kept in the current list.
  void take_due(timer_entry& e, uint64_t t, int64_t now_ms, uint64_t target) noexcept;

  int64_t tick_;
  int64_t last_now_;
  uint64_t now_tick_;  // every tick <= now_tick_ has been processed; = tick_of(last_now_)

  // Entries whose deadline tick <= now_tick_ that have not yet been moved to expired_: scheduled
  // in the past, or due within the current (partly elapsed) tick after `now`.
  link current_;
  int64_t current_min_;  // a lower bound on their deadlines (INT64_MAX if none)
  link expired_;
  int64_t expired_min_;  // same for expired_
  size_t size_ = 0;
  uint64_t occupied_[levels] = {};
  link slots_[levels][slots_per_level];
};

}  // namespace ferry::scheduler
