// ferry-timer-bench: throughput and lateness of the scheduler's timing wheel (broker/scheduler),
// on virtual time, single-threaded (a wheel belongs to one shard).
//
//   ferry-timer-bench [--timers N] [--span-ms MS] [--tick-ms MS] [--step-ms MS] [--seed S]
//                     [--json FILE]
//
// Workloads (each on a fresh wheel, times from std::chrono::steady_clock around the wheel calls
// only; deadlines and events are generated before the clock starts):
//   bulk        N schedules at t=0 with deadlines uniform in [1, span], then poll every --step-ms
//               of virtual time until all fired. ops = N schedules + N fires.
//   steady      over the span, N/span schedules per ms with deadline now + U[1, span], polled
//               every --step-ms until all fired. ops = N schedules + N fires.
//   hint        as bulk, but time jumps straight to next_deadline_hint() (how wheel_driver runs
//               it); reports the polls made.
//   ack_extend  N in-flight messages arriving over the span, each with an ack timeout A in
//               [1 s, 10 s): schedule(now + A), then three extends (reschedule to now + A) at
//               A/4, A/2 and 3A/4; half are acked (cancel) before the timeout, half expire (fire).
//               ops = N schedules + 3N reschedules + N/2 cancels + N/2 fires.
// Lateness: per fire, the virtual `now` of the poll that fired it minus its deadline (ms). It is
// bounded by the poll cadence (--step-ms), not by the tick: the wheel never fires early, and a
// tick only bounds how far ahead a slot reaches.
//
// Output: a summary on stdout; --json FILE writes the same numbers and the settings as one object.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "broker/scheduler/wheel.h"

namespace {

using ferry::scheduler::timer_entry;
using ferry::scheduler::timer_wheel;
using steady = std::chrono::steady_clock;

struct settings {
  int64_t timers = 1'000'000;
  int64_t span_ms = 10'000;
  int64_t tick_ms = 1;
  int64_t step_ms = 1;
  uint64_t seed = 1;
  std::string json;
};

struct result {
  std::string name;
  uint64_t ops = 0;
  double seconds = 0;
  uint64_t fires = 0;
  uint64_t polls = 0;
  int64_t late_p50 = 0, late_p99 = 0, late_max = 0;
  double extra_rate = 0;  // workload specific (bulk: schedules/s)
  const char* extra_name = nullptr;
  double ops_per_sec() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
};

double since(steady::time_point t0) { return std::chrono::duration<double>(steady::now() - t0).count(); }

void lateness_percentiles(std::vector<int32_t>& late, result& r) {
  if (late.empty()) return;
  std::sort(late.begin(), late.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(std::llround(q * static_cast<double>(late.size() - 1)));
    return static_cast<int64_t>(late[std::min(i, late.size() - 1)]);
  };
  r.late_p50 = at(0.50);
  r.late_p99 = at(0.99);
  r.late_max = late.back();
}

result run_bulk(const settings& s, bool by_hint) {
  const size_t n = static_cast<size_t>(s.timers);
  std::mt19937_64 rng(s.seed);
  std::vector<int64_t> deadlines(n);
  for (auto& d : deadlines) d = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(s.span_ms));
  std::vector<timer_entry> timers(n);
  std::vector<int32_t> late;
  late.reserve(n);
  timer_wheel w(0, s.tick_ms);
  int64_t now = 0;

  result r;
  r.name = by_hint ? "hint" : "bulk";
  const auto t0 = steady::now();
  for (size_t i = 0; i < n; ++i) w.schedule(timers[i], deadlines[i]);
  const double insert_s = since(t0);
  auto on_fire = [&](timer_entry& e) { late.push_back(static_cast<int32_t>(now - e.deadline())); };
  while (!w.empty()) {
    now = by_hint ? std::max(now, *w.next_deadline_hint()) : now + s.step_ms;
    w.poll(now, on_fire);
    ++r.polls;
  }
  r.seconds = since(t0);
  r.fires = late.size();
  r.ops = n + r.fires;
  r.extra_name = "schedules/s";
  r.extra_rate = static_cast<double>(n) / insert_s;
  lateness_percentiles(late, r);
  return r;
}

result run_steady(const settings& s) {
  const size_t n = static_cast<size_t>(s.timers);
  std::mt19937_64 rng(s.seed + 1);
  std::vector<int64_t> delays(n);
  for (auto& d : delays) d = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(s.span_ms));
  std::vector<timer_entry> timers(n);
  std::vector<int32_t> late;
  late.reserve(n);
  timer_wheel w(0, s.tick_ms);
  int64_t now = 0;
  auto on_fire = [&](timer_entry& e) { late.push_back(static_cast<int32_t>(now - e.deadline())); };

  result r;
  r.name = "steady";
  const auto t0 = steady::now();
  size_t next = 0;
  for (now = s.step_ms; next < n || !w.empty(); now += s.step_ms) {
    // Arrivals spread evenly over the span: those due by `now`.
    const size_t due = std::min(n, static_cast<size_t>(static_cast<__int128>(n) * now / s.span_ms));
    for (; next < due; ++next) w.schedule(timers[next], now + delays[next]);
    w.poll(now, on_fire);
    ++r.polls;
  }
  r.seconds = since(t0);
  r.fires = late.size();
  r.ops = n + r.fires;
  lateness_percentiles(late, r);
  return r;
}

result run_ack_extend(const settings& s) {
  const size_t n = static_cast<size_t>(s.timers);
  std::mt19937_64 rng(s.seed + 2);
  enum kind : uint32_t { k_schedule = 0, k_extend = 1, k_ack = 2 };
  struct event {
    int64_t at;
    uint32_t idx;
    uint32_t kind;
  };
  std::vector<int32_t> timeout(n);
  std::vector<event> events;
  events.reserve(n * 5);
  for (size_t i = 0; i < n; ++i) {
    const int64_t arrive = static_cast<int64_t>(rng() % static_cast<uint64_t>(s.span_ms));
    const int64_t a = 1000 + static_cast<int64_t>(rng() % 9000);
    timeout[i] = static_cast<int32_t>(a);
    events.push_back({arrive, static_cast<uint32_t>(i), k_schedule});
    for (int k = 1; k <= 3; ++k) events.push_back({arrive + k * a / 4, static_cast<uint32_t>(i), k_extend});
    // The last deadline is arrive + 3a/4 + a; half the messages are acked strictly before it.
    if (i % 2 == 1)
      events.push_back({arrive + 3 * a / 4 + static_cast<int64_t>(rng() % a), static_cast<uint32_t>(i), k_ack});
  }
  std::stable_sort(events.begin(), events.end(), [](const event& x, const event& y) { return x.at < y.at; });

  std::vector<timer_entry> timers(n);
  std::vector<int32_t> late;
  late.reserve(n);
  timer_wheel w(0, s.tick_ms);
  int64_t now = 0;
  auto on_fire = [&](timer_entry& e) { late.push_back(static_cast<int32_t>(now - e.deadline())); };

  result r;
  r.name = "ack_extend";
  uint64_t ops = 0;
  const auto t0 = steady::now();
  size_t next = 0;
  for (now = 0; next < events.size() || !w.empty(); now += s.step_ms) {
    for (; next < events.size() && events[next].at <= now; ++next) {
      const event& ev = events[next];
      timer_entry& t = timers[ev.idx];
      // An event is applied at the first poll step at or after its time (like a request that
      // arrives between two wheel polls).
      const int64_t deadline = now + timeout[ev.idx];
      if (ev.kind == k_schedule) {
        w.schedule(t, deadline);
      } else if (ev.kind == k_extend) {
        w.reschedule(t, deadline);
      } else {
        w.cancel(t);
      }
      ++ops;
    }
    w.poll(now, on_fire);
    ++r.polls;
  }
  r.seconds = since(t0);
  r.fires = late.size();
  r.ops = ops + r.fires;
  lateness_percentiles(late, r);
  return r;
}

void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--timers N] [--span-ms MS] [--tick-ms MS] [--step-ms MS] [--seed S] [--json FILE]\n",
               argv0);
}

bool parse(int argc, char** argv, settings& s) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--help" || a == "-h") return false;
    if (a == "--timers" || a == "--span-ms" || a == "--tick-ms" || a == "--step-ms" || a == "--seed" || a == "--json") {
      v = value();
      if (v == nullptr) return false;
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return false;
    }
    if (a == "--json") {
      s.json = v;
      continue;
    }
    char* end = nullptr;
    const long long x = std::strtoll(v, &end, 10);
    if (*end != '\0' || x < (a == "--seed" ? 0 : 1)) {
      std::fprintf(stderr, "bad value for %s: %s\n", a.c_str(), v);
      return false;
    }
    if (a == "--timers") s.timers = x;
    if (a == "--span-ms") s.span_ms = x;
    if (a == "--tick-ms") s.tick_ms = x;
    if (a == "--step-ms") s.step_ms = x;
    if (a == "--seed") s.seed = static_cast<uint64_t>(x);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  if (!parse(argc, argv, s)) {
    usage(argv[0]);
    return 2;
  }
  std::vector<result> results;
  results.push_back(run_bulk(s, false));
  results.push_back(run_steady(s));
  results.push_back(run_bulk(s, true));
  results.push_back(run_ack_extend(s));

  std::printf("ferry-timer-bench: %lld timers over %lld ms, tick %lld ms, poll step %lld ms, seed %llu\n",
              static_cast<long long>(s.timers), static_cast<long long>(s.span_ms), static_cast<long long>(s.tick_ms),
              static_cast<long long>(s.step_ms), static_cast<unsigned long long>(s.seed));
  std::printf("%-11s %12s %9s %14s %10s %9s  %s\n", "workload", "ops", "seconds", "ops/s", "polls", "fires",
              "lateness ms p50/p99/max");
  for (const auto& r : results) {
    std::printf("%-11s %12llu %9.4f %14.0f %10llu %9llu  %lld/%lld/%lld", r.name.c_str(),
                static_cast<unsigned long long>(r.ops), r.seconds, r.ops_per_sec(),
                static_cast<unsigned long long>(r.polls), static_cast<unsigned long long>(r.fires),
                static_cast<long long>(r.late_p50), static_cast<long long>(r.late_p99),
                static_cast<long long>(r.late_max));
    if (r.extra_name != nullptr) std::printf("  (%s %.0f)", r.extra_name, r.extra_rate);
    std::printf("\n");
  }

  if (!s.json.empty()) {
    FILE* f = std::fopen(s.json.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "cannot write %s: %s\n", s.json.c_str(), std::strerror(errno));
      return 1;
    }
    std::fprintf(f,
                 "{\"bench\": \"timer\", \"settings\": {\"timers\": %lld, \"span_ms\": %lld, \"tick_ms\": %lld, "
                 "\"step_ms\": %lld, \"seed\": %llu}, \"workloads\": {",
                 static_cast<long long>(s.timers), static_cast<long long>(s.span_ms), static_cast<long long>(s.tick_ms),
                 static_cast<long long>(s.step_ms), static_cast<unsigned long long>(s.seed));
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      std::fprintf(f,
                   "%s\"%s\": {\"ops\": %llu, \"seconds\": %.6f, \"ops_per_sec\": %.0f, \"polls\": %llu, "
                   "\"fires\": %llu, \"lateness_ms_p50\": %lld, \"lateness_ms_p99\": %lld, \"lateness_ms_max\": %lld",
                   i ? ", " : "", r.name.c_str(), static_cast<unsigned long long>(r.ops), r.seconds, r.ops_per_sec(),
                   static_cast<unsigned long long>(r.polls), static_cast<unsigned long long>(r.fires),
                   static_cast<long long>(r.late_p50), static_cast<long long>(r.late_p99),
                   static_cast<long long>(r.late_max));
      if (r.extra_name != nullptr) std::fprintf(f, ", \"schedules_per_sec\": %.0f", r.extra_rate);
      std::fprintf(f, "}");
    }
    std::fprintf(f, "}}\n");
    if (std::fclose(f) != 0) {
      std::fprintf(stderr, "cannot write %s\n", s.json.c_str());
      return 1;
    }
  }
  return 0;
}
