#include "broker/scheduler/wheel.h"

#include <algorithm>
#include <limits>

#include "broker/base/assert.h"

// How the wheel works.
//
// Ticks: an entry with deadline d has deadline tick tick_of(d) = floor(d / tick). now_tick_ is
// tick_of(the latest now); every tick <= now_tick_ has been processed.
//
// Placement: an entry whose tick t > now_tick_ goes to the level of the highest base-64 digit in
// which t and now_tick_ differ, in the slot given by t's digit at that level. So at level l, t
// shares every digit above l with now_tick_ and its digit l is strictly greater than now_tick_'s.
// Invariant A: every non-empty slot at level l is strictly ahead of now_tick_'s digit l (apart
// from the overflow slot, below). It holds because a level-l slot is drained ("cascaded") at the
// first tick at which now_tick_ enters its span, i.e. before now_tick_'s digit l can reach it.
// Cascading re-places every entry relative to the new now_tick_: it lands at a lower level (its
// high digits now match) or is due.
//
// Overflow: a tick beyond the 64^6-tick span of the levels waits in top-level slot 0, which is
// cascaded at the next multiple of 64^6 ticks (never later than its tick, since its high digits
// are greater than now_tick_'s) and re-placed from there; so no deadline is too far.
//
// Never early: placement rounds the tick DOWN (floor), so an entry is never behind a slot that
// is processed after its deadline; when the tick that holds `now` is processed, only entries whose
// deadline <= now are moved to expired_, and the others wait in current_ (re-checked by every
// advance within that tick, all due once the tick is over). With a 1 ms tick and ms deadlines a
// tick is a single instant, so current_ only ever holds entries scheduled in the past. Rounding
// the tick down instead of up also makes next_deadline_hint() a true lower bound (the start of a
// slot is <= every deadline in it) without waking the owner before anything can fire.
//
// Skipping empty slots: each level has a 64-bit occupancy bitmap, so the next tick at which
// anything fires or cascades is one count-trailing-zeros per level (next_event_tick), and
// advance() jumps from event to event instead of visiting ticks.

namespace ferry::scheduler {
namespace {

constexpr int64_t no_deadline = std::numeric_limits<int64_t>::max();
constexpr uint64_t slot_mask = timer_wheel::slots_per_level - 1;
constexpr int top_level = timer_wheel::levels - 1;
constexpr int span_bits = timer_wheel::levels * timer_wheel::level_bits;  // 36

void init_list(detail::link& l) noexcept { l.next = l.prev = &l; }
bool list_empty(const detail::link& l) noexcept { return l.next == &l; }

// Moves every element of `from` (a sentinel) to the initially empty sentinel `to`.
void splice_all(detail::link& from, detail::link& to) noexcept {
  if (list_empty(from)) {
    init_list(to);
    return;
  }
  to.next = from.next;
  to.prev = from.prev;
  to.next->prev = &to;
  to.prev->next = &to;
  init_list(from);
}

}  // namespace

timer_entry::~timer_entry() {
  // The wheel still links to this address: destroying it would corrupt the wheel's lists.
  FERRY_ASSERT(!scheduled(), "timer_entry destroyed while scheduled: cancel() it first");
}

timer_wheel::timer_wheel(int64_t start_ms, int64_t tick_ms)
    : tick_(tick_ms), last_now_(start_ms), now_tick_(0), current_min_(no_deadline), expired_min_(no_deadline) {
  FERRY_ASSERT(tick_ms >= 1, "timer_wheel tick must be >= 1 ms");
  FERRY_ASSERT(start_ms >= 0, "timer_wheel start time must be >= 0");
  now_tick_ = static_cast<uint64_t>(start_ms / tick_ms);
  init_list(current_);
  init_list(expired_);
  for (auto& level : slots_)
    for (auto& slot : level) init_list(slot);
}

timer_wheel::~timer_wheel() {
  auto detach = [](link& list) {
    while (!list_empty(list)) {
      timer_entry& e = entry_of(list.next);
      unlink(e);
      e.where_ = timer_entry::where_none;
    }
  };
  detach(current_);
  detach(expired_);
  for (auto& level : slots_)
    for (auto& slot : level) detach(slot);
}

void timer_wheel::push_back(link& list, timer_entry& e) noexcept {
  link& l = e;
  l.prev = list.prev;
  l.next = &list;
  list.prev->next = &l;
  list.prev = &l;
}

void timer_wheel::unlink(timer_entry& e) noexcept {
  link& l = e;
  l.prev->next = l.next;
  l.next->prev = l.prev;
  l.next = l.prev = nullptr;
}

int64_t timer_wheel::tick_of(int64_t t) const noexcept {
  int64_t q = t / tick_;
  if (t % tick_ != 0 && t < 0) --q;  // floor, also for deadlines before the epoch
  return q;
}

void timer_wheel::schedule(timer_entry& e, int64_t deadline_ms) noexcept {
  FERRY_ASSERT(!e.scheduled(), "schedule() of an entry already scheduled: use reschedule()");
  e.deadline_ = deadline_ms;
  ++size_;
  const int64_t t = tick_of(deadline_ms);
  if (t <= static_cast<int64_t>(now_tick_)) {
    add_current(e);  // due at the next advance() that reaches its deadline
  } else {
    place(e, static_cast<uint64_t>(t));
  }
}

void timer_wheel::reschedule(timer_entry& e, int64_t deadline_ms) noexcept {
  cancel(e);
  schedule(e, deadline_ms);
}

void timer_wheel::cancel(timer_entry& e) noexcept {
  if (!e.scheduled()) return;
  const uint16_t where = e.where_;
  unlink(e);
  e.where_ = timer_entry::where_none;
  --size_;
  if (where >= timer_entry::where_slot0) {
    const int idx = where - timer_entry::where_slot0;
    const int level = idx / slots_per_level;
    const int slot = idx % slots_per_level;
    if (list_empty(slots_[level][slot])) occupied_[level] &= ~(uint64_t{1} << slot);
  } else if (where == timer_entry::where_current) {
    if (list_empty(current_)) current_min_ = no_deadline;
  } else if (list_empty(expired_)) {
    expired_min_ = no_deadline;
  }
}

void timer_wheel::place(timer_entry& e, uint64_t t) noexcept {
  const uint64_t diff = t ^ now_tick_;  // != 0: t > now_tick_
  int level;
  uint64_t slot;
  if ((diff >> span_bits) != 0) {
    level = top_level;  // overflow (see the top of this file)
    slot = 0;
  } else {
    level = (std::bit_width(diff) - 1) / level_bits;
    slot = (t >> (level * level_bits)) & slot_mask;
  }
  push_back(slots_[level][slot], e);
  e.where_ = static_cast<uint16_t>(timer_entry::where_slot0 + level * slots_per_level + slot);
  occupied_[level] |= uint64_t{1} << slot;
}

void timer_wheel::add_current(timer_entry& e) noexcept {
  push_back(current_, e);
  e.where_ = timer_entry::where_current;
  current_min_ = std::min(current_min_, e.deadline_);
}

void timer_wheel::add_expired(timer_entry& e) noexcept {
  push_back(expired_, e);
  e.where_ = timer_entry::where_expired;
  expired_min_ = std::min(expired_min_, e.deadline_);
}

uint64_t timer_wheel::next_event_tick() const noexcept {
  // A non-empty lower level always has its event first: its slots lie inside the span of the
  // current slot of the level above, whose own events start after that span.
  for (int level = 0; level < levels; ++level) {
    const uint64_t bits = occupied_[level];
    if (bits == 0) continue;
    const int shift = level * level_bits;
    const uint64_t digit = (now_tick_ >> shift) & slot_mask;
    const uint64_t ahead = digit == slot_mask ? 0 : bits & (~uint64_t{0} << (digit + 1));
    if (ahead != 0) {
      const int span = shift + level_bits;
      return ((now_tick_ >> span) << span) | (static_cast<uint64_t>(std::countr_zero(ahead)) << shift);
    }
    // Invariant A: only the top level's overflow slot 0 can be at or behind now_tick_'s digit.
    FERRY_ASSERT(level == top_level && bits == 1, "timer_wheel: occupied slot behind the current tick");
    return ((now_tick_ >> span_bits) + 1) << span_bits;
  }
  FERRY_ASSERT(false, "timer_wheel: next_event_tick() with an empty wheel");
  return 0;
}

void timer_wheel::take_due(timer_entry& e, uint64_t t, int64_t now_ms, uint64_t target) noexcept {
  // t < target: the whole tick has elapsed, so deadline < (t + 1) * tick <= now. t == target: the
  // tick holding `now`; only deadlines <= now are due, the rest wait in current_.
  if (t < target || e.deadline_ <= now_ms) {
    add_expired(e);
  } else {
    add_current(e);
  }
}

void timer_wheel::run_tick(uint64_t t, int64_t now_ms, uint64_t target) noexcept {
  now_tick_ = t;
  // Cascade each level whose slot starts at t (t is a multiple of 64^level). Detach the slot
  // first: an overflow entry that is still beyond the span goes back into the same top-level slot.
  for (int level = 1; level < levels; ++level) {
    const int shift = level * level_bits;
    if ((t & ((uint64_t{1} << shift) - 1)) != 0) break;  // then no higher level starts at t either
    const uint64_t slot = (t >> shift) & slot_mask;
    const uint64_t bit = uint64_t{1} << slot;
    if ((occupied_[level] & bit) == 0) continue;
    occupied_[level] &= ~bit;
    link batch;
    splice_all(slots_[level][slot], batch);
    while (!list_empty(batch)) {
      timer_entry& e = entry_of(batch.next);
      unlink(e);
      const uint64_t et = static_cast<uint64_t>(tick_of(e.deadline_));
      FERRY_ASSERT(et >= t, "timer_wheel: cascaded entry is overdue");
      if (et == t) {
        take_due(e, t, now_ms, target);
      } else {
        place(e, et);
      }
    }
  }
  const uint64_t slot = t & slot_mask;
  const uint64_t bit = uint64_t{1} << slot;
  if ((occupied_[0] & bit) != 0) {
    occupied_[0] &= ~bit;
    link& head = slots_[0][slot];
    while (!list_empty(head)) {
      timer_entry& e = entry_of(head.next);
      unlink(e);
      take_due(e, t, now_ms, target);
    }
  }
}

void timer_wheel::advance(int64_t now_ms) noexcept {
  const int64_t target_tick = tick_of(now_ms);
  if (target_tick <= static_cast<int64_t>(now_tick_)) {
    // Still inside the current tick (or `now` went back): only current_ can hold due entries.
    last_now_ = std::max(last_now_, now_ms);
    if (list_empty(current_)) return;
    int64_t min_left = no_deadline;
    link batch;
    splice_all(current_, batch);
    while (!list_empty(batch)) {
      timer_entry& e = entry_of(batch.next);
      unlink(e);
      if (e.deadline_ <= now_ms) {
        add_expired(e);
      } else {
        push_back(current_, e);  // keeps its relative order and where_current
        min_left = std::min(min_left, e.deadline_);
      }
    }
    current_min_ = min_left;
    return;
  }

  const uint64_t target = static_cast<uint64_t>(target_tick);
  // Everything in current_ has a tick <= now_tick_ < target: its whole tick has elapsed.
  while (!list_empty(current_)) {
    timer_entry& e = entry_of(current_.next);
    unlink(e);
    add_expired(e);
  }
  current_min_ = no_deadline;
  last_now_ = now_ms;
  auto wheel_occupied = [this] {
    uint64_t any = 0;
    for (uint64_t bits : occupied_) any |= bits;
    return any != 0;
  };
  while (wheel_occupied()) {
    const uint64_t t = next_event_tick();
    if (t > target) break;
    run_tick(t, now_ms, target);
  }
  // No slot starts in (now_tick_, target], so invariant A holds at target without visiting them.
  now_tick_ = target;
}

timer_entry* timer_wheel::pop_expired() noexcept {
  if (list_empty(expired_)) return nullptr;
  timer_entry& e = entry_of(expired_.next);
  unlink(e);
  e.where_ = timer_entry::where_none;
  --size_;
  if (list_empty(expired_)) expired_min_ = no_deadline;
  return &e;
}

std::optional<int64_t> timer_wheel::next_deadline_hint() const noexcept {
  if (size_ == 0) return std::nullopt;
  int64_t hint = std::min(current_min_, expired_min_);
  uint64_t any = 0;
  for (uint64_t bits : occupied_) any |= bits;
  if (any != 0) {
    // The event tick t is <= the tick of every entry in the wheel, so t * tick <= its deadline
    // (and the product cannot overflow: t <= that entry's tick <= deadline / tick).
    hint = std::min(hint, static_cast<int64_t>(next_event_tick()) * tick_);
  }
  return hint;
}

}  // namespace ferry::scheduler
