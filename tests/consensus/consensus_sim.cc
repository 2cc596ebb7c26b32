// consensus_sim: the consensus simulator (simulator.h) over many seeds, for long runs.
//   consensus_sim [--seeds N] [--start S] [--voters V] [--learners L] [--verbose]
// Runs seeds S..S+N-1, prints progress every few seconds and a summary; on the first failure it
// prints the seed, what broke and the last events, and exits 1.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/consensus/simulator.h"

int main(int argc, char** argv) {
  using namespace ferry::consensus::sim;
  uint64_t seeds = 1000;
  uint64_t start = 1;
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> uint64_t {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::strtoull(argv[++i], nullptr, 10);
    };
    if (a == "--seeds") {
      seeds = value();
    } else if (a == "--start") {
      start = value();
    } else if (a == "--voters" || a == "--nodes") {
      o.voters = static_cast<int>(value());
    } else if (a == "--learners") {
      o.learners = static_cast<int>(value());
    } else if (a == "--fault-ms") {
      o.fault_ms = static_cast<int64_t>(value());
    } else if (a == "--clock-rho-percent") {
      o.clock_rho = static_cast<double>(value()) / 100;
    } else if (a == "--verbose") {
      o.verbose = true;
    } else {
      std::fprintf(stderr,
                   "usage: consensus_sim [--seeds N] [--start S] [--voters V] [--learners L] [--fault-ms MS] "
                   "[--clock-rho-percent P] [--verbose]\n");
      return 2;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto last_report = t0;
  uint64_t events = 0, committed = 0, leaders = 0, crashes = 0, pauses = 0, snapshots = 0, transfers = 0,
           config_changes = 0;
  int64_t worst_recovery = 0;
  for (uint64_t s = start; s < start + seeds; ++s) {
    o.seed = s;
    const result r = run(o);
    if (!r.ok) {
      std::printf("FAILED seed %llu (voters %d learners %d): %s\nlast events:\n%s", static_cast<unsigned long long>(s),
                  o.voters, o.learners, r.failure.c_str(), r.trace.c_str());
      return 1;
    }
    events += r.events;
    committed += r.committed;
    leaders += r.leaders;
    crashes += r.crashes;
    pauses += r.pauses;
    snapshots += r.snapshots;
    transfers += r.transfers;
    config_changes += r.config_changes;
    worst_recovery = std::max(worst_recovery, r.recovery_ms);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report > std::chrono::seconds(5)) {
      last_report = now;
      const uint64_t done = s - start + 1;
      std::printf("... %llu of %llu seeds passed\n", static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(seeds));
      std::fflush(stdout);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "%llu seeds passed (%llu..%llu, %d voters, %d learners) in %.1f s (%.1f seeds/s): %llu events, %llu leaders, "
      "%llu entries committed, %llu crashes, %llu pauses, %llu snapshots installed, %llu transfers, %llu membership "
      "changes; slowest recovery "
      "after healing %lld ms\n",
      static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(start),
      static_cast<unsigned long long>(start + seeds - 1), o.voters, o.learners, secs, static_cast<double>(seeds) / secs,
      static_cast<unsigned long long>(events), static_cast<unsigned long long>(leaders),
      static_cast<unsigned long long>(committed), static_cast<unsigned long long>(crashes),
      static_cast<unsigned long long>(pauses), static_cast<unsigned long long>(snapshots),
      static_cast<unsigned long long>(transfers), static_cast<unsigned long long>(config_changes),
      static_cast<long long>(worst_recovery));
  return 0;
}
