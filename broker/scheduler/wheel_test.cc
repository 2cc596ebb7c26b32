#include "broker/scheduler/wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <queue>
#include <random>
#include <tuple>
#include <vector>

#include "broker/base/clock.h"
#include "broker/scheduler/wheel_driver.h"

namespace ferry::scheduler {
namespace {

constexpr int64_t day_ms = 24LL * 3600 * 1000;

struct test_timer : timer_entry {
  int id = 0;
  int fired = 0;
  int64_t fired_at = -1;
};

struct fire_record {
  int id;
  int64_t deadline;
  int64_t now;
};

// Polls `w` at `now`, recording every fire and checking it is not early.
size_t poll_at(timer_wheel& w, int64_t now, std::vector<fire_record>& log) {
  return w.poll(now, [&](timer_entry& e) {
    auto& t = static_cast<test_timer&>(e);
    EXPECT_LE(t.deadline(), now) << "timer " << t.id << " fired early";
    EXPECT_FALSE(t.scheduled());
    ++t.fired;
    t.fired_at = now;
    log.push_back({t.id, t.deadline(), now});
  });
}

// Drives `w` by its own hint until it is empty or `limit` is passed; returns the polls made.
int drive_by_hint(timer_wheel& w, int64_t limit, std::vector<fire_record>& log) {
  int polls = 0;
  while (auto h = w.next_deadline_hint()) {
    if (*h > limit) break;
    poll_at(w, std::max(*h, w.now_ms()), log);
    ++polls;
  }
  return polls;
}

// ---- basics ----------------------------------------------------------------------------------

TEST(timer_wheel, empty_wheel_has_no_hint_and_polls_nothing) {
  timer_wheel w(1000);
  std::vector<fire_record> log;
  EXPECT_EQ(w.size(), 0u);
  EXPECT_FALSE(w.next_deadline_hint());
  EXPECT_EQ(poll_at(w, 5000, log), 0u);
  EXPECT_EQ(w.now_ms(), 5000);
}

TEST(timer_wheel, timer_fires_at_its_deadline_and_not_one_ms_before) {
  timer_wheel w(1000);
  test_timer t;
  w.schedule(t, 1500);
  EXPECT_TRUE(w.scheduled(t));
  EXPECT_EQ(w.size(), 1u);
  std::vector<fire_record> log;
  EXPECT_EQ(poll_at(w, 1499, log), 0u);
  EXPECT_EQ(poll_at(w, 1500, log), 1u);
  EXPECT_EQ(t.fired_at, 1500);
  EXPECT_FALSE(w.scheduled(t));
  EXPECT_EQ(w.size(), 0u);
}

TEST(timer_wheel, size_counts_scheduled_entries_including_due_unpopped_ones) {
  timer_wheel w(0);
  test_timer a, b, c;
  w.schedule(a, 10);
  w.schedule(b, 20);
  w.schedule(c, 5000);
  EXPECT_EQ(w.size(), 3u);
  w.advance(20);
  EXPECT_EQ(w.size(), 3u);  // a and b are expired but not popped
  EXPECT_TRUE(w.scheduled(a));
  EXPECT_EQ(w.pop_expired(), &a);
  EXPECT_EQ(w.size(), 2u);
  w.cancel(b);  // due, not popped: cancel still wins
  EXPECT_EQ(w.pop_expired(), nullptr);
  EXPECT_EQ(w.size(), 1u);
  w.cancel(c);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_FALSE(w.next_deadline_hint());
}

// ---- very short delays -------------------------------------------------------------------------

TEST(timer_wheel, zero_delay_fires_at_next_poll_with_the_same_now) {
  timer_wheel w(1000);
  std::vector<fire_record> log;
  poll_at(w, 1200, log);
  test_timer t;
  w.schedule(t, 1200);
  EXPECT_EQ(*w.next_deadline_hint(), 1200);
  EXPECT_EQ(poll_at(w, 1200, log), 1u);
}

TEST(timer_wheel, deadline_in_the_past_fires_at_next_poll) {
  timer_wheel w(1000);
  std::vector<fire_record> log;
  poll_at(w, 5000, log);
  test_timer t, u;
  w.schedule(t, 10);
  w.schedule(u, -123456);  // before the epoch: still just "in the past"
  EXPECT_LE(*w.next_deadline_hint(), -123456);
  EXPECT_EQ(poll_at(w, 5000, log), 2u);
  EXPECT_EQ(t.fired, 1);
  EXPECT_EQ(u.fired, 1);
}

TEST(timer_wheel, one_tick_delay_fires_one_tick_later) {
  for (int64_t tick : {1, 4}) {
    timer_wheel w(1000, tick);
    std::vector<fire_record> log;
    test_timer t;
    w.schedule(t, 1000 + tick);
    EXPECT_EQ(poll_at(w, 1000 + tick - 1, log), 0u) << "tick " << tick;
    EXPECT_EQ(poll_at(w, 1000 + tick, log), 1u) << "tick " << tick;
  }
}

TEST(timer_wheel, unaligned_deadline_with_coarse_tick_never_fires_early) {
  timer_wheel w(0, 4);
  std::vector<fire_record> log;
  test_timer a, b, c;
  w.schedule(a, 5);  // tick 1 holds 4..7
  w.schedule(b, 7);
  w.schedule(c, 9);  // tick 2
  EXPECT_EQ(*w.next_deadline_hint(), 4);
  EXPECT_EQ(poll_at(w, 4, log), 0u);
  EXPECT_EQ(*w.next_deadline_hint(), 5);  // exact once inside the tick
  EXPECT_EQ(poll_at(w, 5, log), 1u);
  EXPECT_EQ(poll_at(w, 6, log), 0u);
  EXPECT_EQ(*w.next_deadline_hint(), 7);
  EXPECT_EQ(poll_at(w, 7, log), 1u);
  EXPECT_EQ(poll_at(w, 8, log), 0u);
  EXPECT_EQ(poll_at(w, 9, log), 1u);
  EXPECT_EQ(a.fired_at, 5);
  EXPECT_EQ(b.fired_at, 7);
  EXPECT_EQ(c.fired_at, 9);
}

TEST(timer_wheel, coarse_tick_jump_past_several_ticks_fires_all_due_and_keeps_the_rest) {
  timer_wheel w(0, 10);
  std::vector<fire_record> log;
  test_timer a, b, c;
  w.schedule(a, 15);
  w.schedule(b, 33);
  w.schedule(c, 37);
  EXPECT_EQ(poll_at(w, 35, log), 2u);  // a (an elapsed tick) and b (inside tick 3, <= 35)
  EXPECT_EQ(c.fired, 0);
  EXPECT_EQ(*w.next_deadline_hint(), 37);
  EXPECT_EQ(poll_at(w, 36, log), 0u);
  EXPECT_EQ(poll_at(w, 37, log), 1u);
}

TEST(timer_wheel, now_going_backwards_fires_only_what_is_due_at_that_now) {
  timer_wheel w(0);
  std::vector<fire_record> log;
  poll_at(w, 100, log);
  test_timer t;
  w.schedule(t, 90);  // in the past relative to 100
  EXPECT_EQ(poll_at(w, 80, log), 0u);
  EXPECT_EQ(poll_at(w, 100, log), 1u);
}

// ---- long delays and level boundaries ----------------------------------------------------------

TEST(timer_wheel, very_long_delays_of_30_and_365_days_fire_exactly_on_time) {
  const int64_t start = 1'700'000'000'000;  // a wall-clock-like start
  timer_wheel w(start);
  test_timer m, y;
  w.schedule(m, start + 30 * day_ms);
  w.schedule(y, start + 365 * day_ms + 17);
  std::vector<fire_record> log;
  EXPECT_EQ(poll_at(w, start + 30 * day_ms - 1, log), 0u);
  EXPECT_EQ(poll_at(w, start + 30 * day_ms, log), 1u);
  EXPECT_EQ(m.fired_at, start + 30 * day_ms);
  EXPECT_EQ(poll_at(w, start + 365 * day_ms + 16, log), 0u);
  EXPECT_EQ(poll_at(w, start + 365 * day_ms + 17, log), 1u);
}

TEST(timer_wheel, very_long_delays_driven_by_hint_need_few_wakeups) {
  timer_wheel w(5);
  test_timer m, y;
  w.schedule(m, 5 + 30 * day_ms);
  w.schedule(y, 5 + 365 * day_ms);
  std::vector<fire_record> log;
  const int polls = drive_by_hint(w, std::numeric_limits<int64_t>::max(), log);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(m.fired_at, m.deadline());
  EXPECT_EQ(y.fired_at, y.deadline());
  // At most one wake-up per level cascade per timer, never one per tick or per empty slot.
  EXPECT_LE(polls, 2 * (timer_wheel::levels + 1));
}

TEST(timer_wheel, deadline_beyond_the_levels_span_waits_and_fires_on_time) {
  const int64_t span = int64_t{1} << 36;  // 64^6 ticks
  timer_wheel w(0);
  test_timer a, b, c;
  w.schedule(a, span - 1);
  w.schedule(b, span);
  w.schedule(c, 3 * span + 12345);
  std::vector<fire_record> log;
  EXPECT_LE(*w.next_deadline_hint(), span - 1);
  drive_by_hint(w, std::numeric_limits<int64_t>::max(), log);
  ASSERT_EQ(log.size(), 3u);
  for (const auto& r : log) EXPECT_EQ(r.now, r.deadline);
}

TEST(timer_wheel, int64_max_deadline_never_fires_and_keeps_the_wheel_consistent) {
  timer_wheel w(0);
  test_timer forever, soon;
  w.schedule(forever, std::numeric_limits<int64_t>::max());
  w.schedule(soon, 1000 * day_ms);
  std::vector<fire_record> log;
  drive_by_hint(w, 1000 * day_ms, log);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(soon.fired_at, 1000 * day_ms);
  EXPECT_TRUE(forever.scheduled());
  EXPECT_GT(*w.next_deadline_hint(), 1000 * day_ms);
  w.cancel(forever);
}

// Deadlines at, just below and just above every level boundary (64^l ticks) and at the overflow
// boundary, from a wheel at `start`; fired by a hint-driven loop and by single big jumps.
void check_level_boundaries(int64_t start, int64_t tick) {
  SCOPED_TRACE(testing::Message() << "start " << start << " tick " << tick);
  std::vector<int64_t> deadlines;
  for (int level = 0; level <= timer_wheel::levels; ++level) {
    const int64_t boundary_ticks = int64_t{1} << (level * timer_wheel::level_bits);
    // Boundaries counted from 0 (where the wheel's digits roll over) and from `start`.
    const int64_t start_tick = start / tick;
    for (int64_t base_tick : {int64_t{0}, start_tick}) {
      for (int64_t k : {int64_t{1}, int64_t{2}}) {
        const int64_t at_tick = (base_tick / boundary_ticks + k) * boundary_ticks;
        for (int64_t delta : std::initializer_list<int64_t>{-tick - 1, -tick, -1, 0, 1, tick - 1, tick, tick + 1})
          deadlines.push_back(at_tick * tick + delta);
      }
    }
  }
  for (int mode = 0; mode < 2; ++mode) {
    timer_wheel w(start, tick);
    std::vector<std::unique_ptr<test_timer>> timers;
    for (int64_t d : deadlines) {
      if (d <= start) continue;
      timers.push_back(std::make_unique<test_timer>());
      timers.back()->id = static_cast<int>(timers.size());
      w.schedule(*timers.back(), d);
    }
    std::vector<fire_record> log;
    if (mode == 0) {
      // Hint-driven: each timer fires exactly at its deadline.
      drive_by_hint(w, std::numeric_limits<int64_t>::max(), log);
      for (const auto& r : log) EXPECT_EQ(r.now, r.deadline) << "timer " << r.id;
    } else {
      // Jumps: poll at each deadline - 1 (nothing of its own fires), then at the deadline.
      std::vector<int64_t> sorted = deadlines;
      std::sort(sorted.begin(), sorted.end());
      for (int64_t d : sorted) {
        if (d <= start) continue;
        poll_at(w, d - 1, log);
        poll_at(w, d, log);
      }
      for (const auto& r : log) EXPECT_EQ(r.now, r.deadline) << "timer " << r.id;
    }
    EXPECT_EQ(w.size(), 0u);
    for (const auto& t : timers) EXPECT_EQ(t->fired, 1) << "timer " << t->id << " deadline " << t->deadline();
  }
}

TEST(timer_wheel, deadlines_around_every_level_boundary_fire_exactly_once_on_time) {
  check_level_boundaries(0, 1);
  check_level_boundaries(0, 4);
}

TEST(timer_wheel, level_boundaries_still_work_after_the_wheel_advanced_a_long_way) {
  check_level_boundaries(1'700'000'000'000, 1);       // a wall-clock start: high digits all non-zero
  check_level_boundaries((int64_t{1} << 36) - 3, 1);  // just below the overflow boundary
  check_level_boundaries(5 * (int64_t{1} << 30) + int64_t{63} * 64 + 62, 1);
  check_level_boundaries(1'700'000'000'001, 4);
}

TEST(timer_wheel, timers_scheduled_after_a_long_advance_wrap_into_the_right_slots) {
  timer_wheel w(0);
  std::vector<fire_record> log;
  std::mt19937_64 rng(7);
  int64_t now = 0;
  std::vector<std::unique_ptr<test_timer>> timers;
  // Advance in big uneven jumps; at each stop schedule timers at distances around each level's
  // span, so their slots wrap past the end of their level.
  for (int round = 0; round < 40; ++round) {
    const int64_t prev = now;
    now += static_cast<int64_t>(rng() % (int64_t{1} << (6 * (round % 6) + 3))) + 1;
    log.clear();
    poll_at(w, now, log);
    for (const auto& r : log) EXPECT_GT(r.deadline, prev) << "should have fired at an earlier poll";
    for (int level = 0; level < timer_wheel::levels; ++level) {
      const int64_t span = int64_t{1} << (6 * (level + 1));
      for (int64_t d : {span - 1, span, span + 1, span / 2 + 1}) {
        timers.push_back(std::make_unique<test_timer>());
        w.schedule(*timers.back(), now + d);
      }
    }
  }
  log.clear();
  drive_by_hint(w, std::numeric_limits<int64_t>::max(), log);
  for (const auto& t : timers) EXPECT_EQ(t->fired, 1);
  for (const auto& r : log) EXPECT_EQ(r.now, r.deadline);
}

// ---- cancel and reschedule --------------------------------------------------------------------

TEST(timer_wheel, cancel_before_fire_means_it_never_fires) {
  timer_wheel w(0);
  test_timer near, far, past;
  w.schedule(near, 3);
  w.schedule(far, 10 * day_ms);
  std::vector<fire_record> log;
  poll_at(w, 1, log);
  w.schedule(past, 0);
  w.cancel(near);
  w.cancel(far);
  w.cancel(past);
  EXPECT_FALSE(w.next_deadline_hint());
  drive_by_hint(w, std::numeric_limits<int64_t>::max(), log);
  poll_at(w, 20 * day_ms, log);
  EXPECT_TRUE(log.empty());
}

TEST(timer_wheel, cancel_after_fire_and_of_unscheduled_entries_is_a_noop) {
  timer_wheel w(0);
  test_timer t, never;
  w.cancel(never);
  w.schedule(t, 5);
  std::vector<fire_record> log;
  poll_at(w, 5, log);
  ASSERT_EQ(t.fired, 1);
  w.cancel(t);
  w.cancel(t);
  EXPECT_EQ(w.size(), 0u);
  // The entry is reusable afterwards.
  w.schedule(t, 9);
  poll_at(w, 9, log);
  EXPECT_EQ(t.fired, 2);
}

TEST(timer_wheel, cancelling_one_of_many_in_a_slot_keeps_the_others) {
  timer_wheel w(0);
  test_timer a, b, c;
  w.schedule(a, 100);
  w.schedule(b, 100);
  w.schedule(c, 100);
  w.cancel(b);
  std::vector<fire_record> log;
  EXPECT_EQ(poll_at(w, 100, log), 2u);
  EXPECT_EQ(b.fired, 0);
}

TEST(timer_wheel, reschedule_earlier_fires_at_the_new_deadline) {
  timer_wheel w(0);
  test_timer t;
  w.schedule(t, 10 * day_ms);
  w.reschedule(t, 50);
  EXPECT_EQ(*w.next_deadline_hint(), 50);
  std::vector<fire_record> log;
  EXPECT_EQ(poll_at(w, 49, log), 0u);
  EXPECT_EQ(poll_at(w, 50, log), 1u);
  poll_at(w, 11 * day_ms, log);
  EXPECT_EQ(t.fired, 1);
}

TEST(timer_wheel, reschedule_later_does_not_fire_at_the_old_deadline) {
  timer_wheel w(0);
  test_timer t;
  w.schedule(t, 50);
  std::vector<fire_record> log;
  poll_at(w, 40, log);
  w.reschedule(t, 30'050);  // an ack-extend
  EXPECT_EQ(poll_at(w, 50, log), 0u);
  EXPECT_EQ(poll_at(w, 30'049, log), 0u);
  EXPECT_EQ(poll_at(w, 30'050, log), 1u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(timer_wheel, reschedule_of_an_unscheduled_or_due_entry_schedules_it) {
  timer_wheel w(0);
  test_timer t, u;
  w.reschedule(t, 7);
  w.schedule(u, 3);
  w.advance(5);        // u is expired, not popped
  w.reschedule(u, 9);  // moved back out of the expired queue
  EXPECT_EQ(w.pop_expired(), nullptr);
  std::vector<fire_record> log;
  EXPECT_EQ(poll_at(w, 7, log), 1u);
  EXPECT_EQ(poll_at(w, 9, log), 1u);
}

TEST(timer_wheel, fire_callback_may_reschedule_the_firing_entry_as_a_retry_backoff) {
  timer_wheel w(0);
  test_timer t;
  w.schedule(t, 10);
  std::vector<int64_t> fired_at;
  for (int64_t now = 0; now <= 200; ++now) {
    w.poll(now, [&](timer_entry& e) {
      fired_at.push_back(now);
      if (fired_at.size() < 4) w.schedule(e, now + 10 * static_cast<int64_t>(fired_at.size()));
    });
  }
  EXPECT_EQ(fired_at, (std::vector<int64_t>{10, 20, 40, 70}));
}

TEST(timer_wheel, entry_rearmed_to_now_from_its_callback_fires_at_the_next_poll_not_in_a_loop) {
  timer_wheel w(0);
  test_timer t;
  w.schedule(t, 5);
  int fires = 0;
  auto rearm = [&](timer_entry& e) {
    ++fires;
    w.schedule(e, 5);
  };
  EXPECT_EQ(w.poll(5, rearm), 1u);
  EXPECT_EQ(w.poll(5, rearm), 1u);
  EXPECT_EQ(fires, 2);
  w.cancel(t);
}

TEST(timer_wheel, callback_cancelling_a_due_entry_prevents_its_fire) {
  timer_wheel w(0);
  test_timer a, b;
  w.schedule(a, 10);
  w.schedule(b, 11);
  std::vector<int> fired;
  w.poll(20, [&](timer_entry& e) {
    auto& t = static_cast<test_timer&>(e);
    fired.push_back(&t == &a ? 1 : 2);
    if (&t == &a) w.cancel(b);
  });
  EXPECT_EQ(fired, std::vector<int>{1});
  EXPECT_EQ(w.size(), 0u);
}

TEST(timer_wheel, destroying_the_wheel_unlinks_entries_that_outlive_it) {
  test_timer t;
  {
    timer_wheel w(0);
    w.schedule(t, 100);
  }
  EXPECT_FALSE(t.scheduled());
}

TEST(timer_wheel_death, destroying_a_scheduled_entry_aborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        timer_wheel w(0);
        auto t = std::make_unique<test_timer>();
        w.schedule(*t, 100);
        t.reset();
      },
      "cancel\\(\\) it first");
}

// ---- many timers, order ----------------------------------------------------------------------

TEST(timer_wheel, many_timers_in_the_same_slot_all_fire_once_at_their_deadline) {
  timer_wheel w(0);
  std::vector<test_timer> timers(10'000);
  for (auto& t : timers) w.schedule(t, 777);
  std::vector<fire_record> log;
  EXPECT_EQ(poll_at(w, 776, log), 0u);
  EXPECT_EQ(poll_at(w, 777, log), timers.size());
  for (auto& t : timers) EXPECT_EQ(t.fired, 1);
}

TEST(timer_wheel, many_timers_in_one_coarse_tick_fire_only_when_each_is_due) {
  timer_wheel w(0, 8);
  std::vector<test_timer> timers(8'000);
  for (size_t i = 0; i < timers.size(); ++i) w.schedule(timers[i], 800 + static_cast<int64_t>(i % 8));
  std::vector<fire_record> log;
  for (int64_t now = 799; now <= 807; ++now) {
    const size_t fired = poll_at(w, now, log);
    EXPECT_EQ(fired, now == 799 ? 0u : 1000u) << "now " << now;
  }
}

TEST(timer_wheel, timers_fire_in_deadline_order_with_a_1ms_tick) {
  std::mt19937_64 rng(42);
  for (int mode = 0; mode < 3; ++mode) {
    timer_wheel w(1000);
    std::vector<test_timer> timers(20'000);
    for (auto& t : timers) w.schedule(t, 1000 + static_cast<int64_t>(rng() % (40 * day_ms)));
    std::vector<fire_record> log;
    if (mode == 0) {
      poll_at(w, 1000 + 40 * day_ms, log);  // one jump over everything
    } else if (mode == 1) {
      drive_by_hint(w, std::numeric_limits<int64_t>::max(), log);
    } else {
      for (int64_t now = 1000; w.size() > 0; now += static_cast<int64_t>(rng() % (uint64_t{2} * 3600 * 1000)))
        poll_at(w, now, log);
    }
    ASSERT_EQ(log.size(), timers.size()) << "mode " << mode;
    for (size_t i = 1; i < log.size(); ++i) ASSERT_LE(log[i - 1].deadline, log[i].deadline) << "mode " << mode;
  }
}

// ---- randomized properties ----------------------------------------------------------------------

// A reference model: the live deadline of every timer, and a min-heap of (deadline, id, version)
// with lazy deletion, so the earliest live deadline is known at every step.
struct model {
  struct item {
    int64_t deadline;
    int id;
    uint64_t version;
    bool operator>(const item& o) const {
      return std::tie(deadline, id, version) > std::tie(o.deadline, o.id, o.version);
    }
  };
  std::vector<uint64_t> version;
  std::vector<int64_t> deadline;
  std::vector<bool> live;
  std::priority_queue<item, std::vector<item>, std::greater<>> heap;

  explicit model(size_t n) : version(n, 0), deadline(n, 0), live(n, false) {}
  void set(int id, int64_t d) {
    ++version[id];
    deadline[id] = d;
    live[id] = true;
    heap.push({d, id, version[id]});
  }
  void clear(int id) {
    ++version[id];
    live[id] = false;
  }
  std::optional<int64_t> earliest() {
    while (!heap.empty() && (!live[heap.top().id] || heap.top().version != version[heap.top().id])) heap.pop();
    if (heap.empty()) return std::nullopt;
    return heap.top().deadline;
  }
};

// 100k timers with random deadlines (short, long, in the past, unaligned to the tick), random
// advance steps, and random cancels and reschedules along the way. Checks after every poll: every
// fire had deadline <= now and was of a live timer; nothing due is left unfired; the hint is never
// later than the earliest live deadline; and by the end every timer fired exactly once unless it
// was cancelled.
void check_random_property(int64_t tick, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "tick " << tick << " seed " << seed);
  std::mt19937_64 rng(seed);
  constexpr int n = 100'000;
  const int64_t start = static_cast<int64_t>(rng() % 5'000'000'000'000);
  timer_wheel w(start, tick);
  std::vector<test_timer> timers(n);
  model m(n);
  std::vector<bool> cancelled(n, false);
  for (int i = 0; i < n; ++i) timers[i].id = i;

  auto random_delay = [&]() -> int64_t {
    switch (rng() % 8) {
      case 0:
        return -static_cast<int64_t>(rng() % 1000);  // in the past
      case 1:
        return static_cast<int64_t>(rng() % 3);  // 0..2 ms
      case 2:
        return static_cast<int64_t>(rng() % 100);  // level 0/1
      case 3:
        return static_cast<int64_t>(rng() % 10'000);
      case 4:
        return static_cast<int64_t>(rng() % 5'000'000);  // ~1.4 h
      case 5:
        return static_cast<int64_t>(rng() % (400 * day_ms));  // up to past the top level
      default:
        return static_cast<int64_t>(rng() % 60'000);  // ack timeouts
    }
  };
  auto random_step = [&]() -> int64_t {
    switch (rng() % 6) {
      case 0:
        return 0;
      case 1:
        return 1;
      case 2:
        return static_cast<int64_t>(rng() % 10);
      case 3:
        return static_cast<int64_t>(rng() % 1000);
      case 4:
        return static_cast<int64_t>(rng() % 100'000);
      default:
        return static_cast<int64_t>(rng() % (2 * day_ms));
    }
  };

  int64_t now = start;
  int next_new = 0;
  size_t fires = 0;
  int rounds = 0;
  std::vector<int> fire_count(n, 0);
  auto on_fire = [&](timer_entry& e) {
    auto& t = static_cast<test_timer&>(e);
    ASSERT_LE(t.deadline(), now) << "timer " << t.id << " fired early";
    ASSERT_TRUE(m.live[t.id]) << "timer " << t.id << " fired while cancelled or already fired";
    ASSERT_EQ(t.deadline(), m.deadline[t.id]);
    m.clear(t.id);
    ++fire_count[t.id];
    ++fires;
  };
  while (next_new < n || w.size() > 0) {
    // Schedule a batch of new timers.
    const int batch = static_cast<int>(std::min<uint64_t>(n - next_new, rng() % 400));
    for (int k = 0; k < batch; ++k, ++next_new) {
      const int64_t d = now + random_delay();
      w.schedule(timers[next_new], d);
      m.set(next_new, d);
    }
    // Cancel or reschedule a few random earlier timers (ack, nack, extend).
    for (int k = 0; next_new > 0 && k < 40; ++k) {
      const int id = static_cast<int>(rng() % next_new);
      if (rng() % 4 == 0) {
        if (timers[id].scheduled()) cancelled[id] = true;
        w.cancel(timers[id]);
        m.clear(id);
      } else if (timers[id].scheduled()) {
        const int64_t d = now + random_delay();
        w.reschedule(timers[id], d);
        m.set(id, d);
      }
    }
    // The hint is never later than the earliest live deadline.
    const auto hint = w.next_deadline_hint();
    const auto earliest = m.earliest();
    ASSERT_EQ(hint.has_value(), earliest.has_value());
    if (hint) {
      ASSERT_LE(*hint, *earliest);
    }
    // Advance: a random step, or straight to the hint (how the driver runs it).
    if (next_new >= n && rng() % 2 == 0 && hint) {
      now = std::max(now, *hint);
    } else {
      now += random_step();
    }
    w.poll(now, on_fire);
    if (testing::Test::HasFatalFailure()) return;
    // Never lost: nothing due at `now` is left.
    const auto left = m.earliest();
    if (left) {
      ASSERT_GT(*left, now) << "a due timer did not fire";
    }
    ASSERT_LT(++rounds, 2'000'000) << "the run does not converge";
  }
  EXPECT_GT(fires, static_cast<size_t>(n / 2));
  for (int i = 0; i < n; ++i) {
    if (cancelled[i]) {
      ASSERT_LE(fire_count[i], 1) << "timer " << i;  // may have fired before its cancel
    } else {
      ASSERT_EQ(fire_count[i], 1) << "timer " << i;
    }
  }
}

TEST(timer_wheel_property, random_deadlines_and_steps_never_fire_early_and_fire_exactly_once_1ms_tick) {
  check_random_property(1, 1);
  check_random_property(1, 2);
}

TEST(timer_wheel_property, random_deadlines_and_steps_never_fire_early_and_fire_exactly_once_coarse_tick) {
  check_random_property(4, 3);
  check_random_property(7, 4);
}

TEST(timer_wheel_property, hint_is_never_later_than_the_earliest_deadline) {
  for (int64_t tick : {1, 4}) {
    std::mt19937_64 rng(100 + tick);
    timer_wheel w(0, tick);
    std::vector<test_timer> timers(2'000);
    model m(timers.size());
    int64_t now = 0;
    for (int step = 0; step < 20'000; ++step) {
      const int id = static_cast<int>(rng() % timers.size());
      switch (rng() % 3) {
        case 0: {
          const int64_t d = now + static_cast<int64_t>(rng() % (int64_t{1} << (rng() % 40)));
          w.reschedule(timers[id], d);
          m.set(id, d);
          break;
        }
        case 1:
          w.cancel(timers[id]);
          m.clear(id);
          break;
        default: {
          // Move to the hint (sometimes a bit before it), as a sleeping owner would.
          auto h = w.next_deadline_hint();
          now = h ? std::max(now, *h - static_cast<int64_t>(rng() % 2)) : now + 1;
          w.poll(now, [&](timer_entry& e) {
            auto& t = static_cast<test_timer&>(e);
            ASSERT_LE(t.deadline(), now);
            m.clear(static_cast<int>(&t - timers.data()));
          });
        }
      }
      const auto hint = w.next_deadline_hint();
      const auto earliest = m.earliest();
      ASSERT_EQ(hint.has_value(), earliest.has_value()) << "step " << step;
      if (hint) {
        ASSERT_LE(*hint, *earliest) << "step " << step << " tick " << tick;
      }
    }
    for (auto& t : timers) w.cancel(t);
  }
}

TEST(timer_wheel, hint_skips_empty_slots_instead_of_ticking) {
  timer_wheel w(0);
  test_timer t;
  w.schedule(t, 3 * day_ms + 12345);
  std::vector<fire_record> log;
  const int polls = drive_by_hint(w, std::numeric_limits<int64_t>::max(), log);
  EXPECT_EQ(t.fired_at, 3 * day_ms + 12345);
  EXPECT_LE(polls, timer_wheel::levels + 1);
}

// ---- wheel_driver ------------------------------------------------------------------------------

TEST(wheel_driver, fires_only_once_the_injected_clock_reaches_the_deadline) {
  boost::asio::io_context io;
  manual_clock clock;
  clock.advance_ms(1000);  // monotonic time 1000 ms
  std::vector<int64_t> fired;
  wheel_driver d(io.get_executor(), clock, [&](timer_entry& e) { fired.push_back(e.deadline()); });
  test_timer t;
  d.schedule_after(t, 50);
  EXPECT_EQ(t.deadline(), 1050);
  io.poll();  // arms a 50 ms real wait; nothing is due
  EXPECT_TRUE(fired.empty());
  clock.advance_ms(49);
  d.wake();
  io.poll();
  EXPECT_TRUE(fired.empty());
  clock.advance_ms(1);
  d.wake();
  EXPECT_EQ(fired, std::vector<int64_t>{1050});
  EXPECT_EQ(d.wheel().size(), 0u);
}

TEST(wheel_driver, zero_delay_fires_from_the_executor_without_a_wake) {
  boost::asio::io_context io;
  manual_clock clock;
  int fired = 0;
  wheel_driver d(io.get_executor(), clock, [&](timer_entry&) { ++fired; });
  test_timer t;
  d.schedule(t, d.now());
  EXPECT_EQ(fired, 0);                  // never from inside schedule()
  io.run_for(std::chrono::seconds(5));  // returns once the only wait completed (no work left)
  EXPECT_EQ(fired, 1);
}

TEST(wheel_driver, real_clock_run_never_fires_early_and_rearms_for_an_earlier_timer) {
  boost::asio::io_context io;
  system_clock_source clock;
  std::vector<std::pair<int64_t, int64_t>> fired;  // (deadline, now at fire)
  test_timer late, t1, t2, t3;
  wheel_driver* driver = nullptr;
  wheel_driver d(io.get_executor(), clock, [&](timer_entry& e) {
    fired.emplace_back(e.deadline(), driver->now());
    if (fired.size() == 3) driver->stop();
  });
  driver = &d;
  d.schedule_after(late, 60'000);  // armed for a minute
  d.schedule_after(t1, 30);        // must re-arm earlier
  d.schedule_after(t2, 10);
  d.schedule_after(t3, 45);
  const auto real_start = std::chrono::steady_clock::now();
  io.run_for(std::chrono::seconds(20));  // generous: only "not early" is asserted
  const auto real_elapsed = std::chrono::steady_clock::now() - real_start;
  ASSERT_EQ(fired.size(), 3u);
  for (auto [deadline, at] : fired) EXPECT_GE(at, deadline);
  EXPECT_LE(fired[0].first, fired[1].first);
  EXPECT_LE(fired[1].first, fired[2].first);
  EXPECT_GE(real_elapsed, std::chrono::milliseconds(40));
  EXPECT_TRUE(late.scheduled());
  EXPECT_LT(d.wakeups(), 50u);  // slept, did not spin
}

TEST(wheel_driver, destroying_the_driver_with_a_pending_wait_is_safe) {
  boost::asio::io_context io;
  manual_clock clock;
  int fired = 0;
  test_timer t;
  {
    wheel_driver d(io.get_executor(), clock, [&](timer_entry&) { ++fired; });
    d.schedule(t, d.now());  // a zero-delay wait is pending
  }
  EXPECT_FALSE(t.scheduled());
  io.run_for(std::chrono::seconds(5));
  EXPECT_EQ(fired, 0);
}

}  // namespace
}  // namespace ferry::scheduler
