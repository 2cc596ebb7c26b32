// ferry-metrics-bench: what a metric update costs on the hot path (broker/runtime/metrics.h).
//
// Each case runs --ops updates on each of 1 and --threads threads at once, all on the same series
// (as every shard updates the same process-wide counter), and prints nanoseconds per update per
// thread (median of --runs). Cases: metrics::counter::inc, metrics::histogram::observe_us, and for
// reference a relaxed fetch_add on one shared std::atomic (what a counter update was before the
// per-thread cells).
//
//   ferry-metrics-bench [--ops N] [--threads N] [--runs N]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "broker/runtime/metrics.h"

namespace {

using clk = std::chrono::steady_clock;

struct options {
  uint64_t ops = 50'000'000;
  int threads = 2;
  int runs = 3;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr, "ferry-metrics-bench: %s\nusage: ferry-metrics-bench [--ops N] [--threads N] [--runs N]\n", msg);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    const char* v = argv[++i];
    if (a == "--ops")
      o.ops = std::strtoull(v, nullptr, 10);
    else if (a == "--threads")
      o.threads = std::atoi(v);
    else if (a == "--runs")
      o.runs = std::atoi(v);
    else
      usage(("unknown option " + a).c_str());
  }
  if (o.ops == 0 || o.threads < 1 || o.runs < 1) usage("--ops, --threads and --runs must be positive");
  return o;
}

// ns per update per thread: `threads` threads each run body(ops) at once.
double measure(int threads, uint64_t ops, const std::function<void(uint64_t)>& body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  ts.reserve(static_cast<size_t>(threads));
  std::vector<double> secs(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      body(1000);  // first touch (a thread's first update takes its slot) outside the timing
      ready.fetch_add(1);
      while (!go.load()) {
      }
      auto t0 = clk::now();
      body(ops);
      secs[static_cast<size_t>(t)] = std::chrono::duration<double>(clk::now() - t0).count();
    });
  }
  while (ready.load() < threads) {
  }
  go.store(true);
  for (auto& th : ts) th.join();
  return *std::max_element(secs.begin(), secs.end()) * 1e9 / static_cast<double>(ops);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  auto& c = ferry::metrics::get_counter("bench_counter_total", "bench");
  auto& h = ferry::metrics::get_histogram("bench_seconds", "bench");
  std::atomic<uint64_t> shared{0};
  struct bench_case {
    const char* name;
    std::function<void(uint64_t)> body;
  };
  std::vector<bench_case> cases = {
      {"shared atomic fetch_add (reference)",
       [&shared](uint64_t n) {
         for (uint64_t i = 0; i < n; ++i) shared.fetch_add(1, std::memory_order_relaxed);
       }},
      {"metrics::counter::inc",
       [&c](uint64_t n) {
         for (uint64_t i = 0; i < n; ++i) c.inc();
       }},
      {"metrics::histogram::observe_us",
       [&h](uint64_t n) {
         for (uint64_t i = 0; i < n; ++i) h.observe_us(i & 4095);
       }},
  };
  std::printf("%-40s %14s %14s\n", "ns per update per thread", "1 thread",
              (std::to_string(o.threads) + " threads").c_str());
  for (auto& bc : cases) {
    std::vector<double> one, many;
    for (int r = 0; r < o.runs; ++r) {
      one.push_back(measure(1, o.ops, bc.body));
      many.push_back(measure(o.threads, o.ops, bc.body));
    }
    std::printf("%-40s %14.2f %14.2f\n", bc.name, median(one), median(many));
  }
  // The updates all arrived (and keep the compiler from dropping the loops).
  uint64_t expect = static_cast<uint64_t>(o.runs) * (1000 + o.ops) * (1 + static_cast<uint64_t>(o.threads));
  if (c.value() != expect || h.count() != expect) {
    std::fprintf(stderr, "ferry-metrics-bench: lost updates: counter %llu, histogram %llu, expected %llu\n",
                 static_cast<unsigned long long>(c.value()), static_cast<unsigned long long>(h.count()),
                 static_cast<unsigned long long>(expect));
    return 1;
  }
  return 0;
}
