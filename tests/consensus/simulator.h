#pragma once
// A deterministic simulator for the consensus core (broker/consensus/group.h): N groups in one
// thread, discrete-event simulated real time, and everything that goes wrong in a cluster, drawn
// from one seed:
//   - a network that drops, duplicates, reorders and delays messages, and partitions nodes
//     (both ways and one way);
//   - storage with fsync latency, where a crash loses everything not fsynced (entries and the
//     hard state), and a restart rebuilds the node from what was durable;
//   - process pauses (the node neither ticks nor steps; its messages wait), often longer than the
//     lease; leadership transfers; log compaction (snapshots); membership changes;
//   - a clock per node running at a rate within 1 +- rho of real time, with its own offset.
// After every event it checks the safety invariants (at most one leader per term; never two
// nodes that both believe they hold the lease at the same real time; log matching; committed
// entries never change and every leader holds them all; no node's commit index goes backwards
// while it is up). After the fault phase it heals everything and checks liveness: a leader
// commits a newly proposed entry within a bound.
#include <cstdint>
#include <string>

namespace ferry::consensus::sim {

struct options {
  uint64_t seed = 1;
  int voters = 3;
  int learners = 0;
  int64_t fault_ms = 20'000;     // faults are injected during this much simulated time
  int64_t liveness_ms = 10'000;  // after healing, a new entry must commit within this
  double rho = 0.1;              // the clock-rate bound the cores are configured with
  double clock_rho = -1;         // how far the clocks really stray (< 0: rho); above rho breaks
                                 // the lease's assumption, and the checker must notice
  bool verbose = false;          // print every event as it happens (stdout)
};

struct result {
  bool ok = true;
  std::string failure;  // what broke, with the simulated time
  std::string trace;    // the last events before the failure
  uint64_t events = 0;
  uint64_t messages = 0;
  uint64_t leaders = 0;    // distinct (term, leader) pairs
  uint64_t committed = 0;  // entries committed cluster-wide
  uint64_t crashes = 0;
  uint64_t pauses = 0;
  uint64_t snapshots = 0;       // snapshots installed on a follower behind the leader's log start
  uint64_t transfers = 0;       // leadership transfers started
  uint64_t config_changes = 0;  // membership changes started (joint consensus)
  int64_t recovery_ms = 0;      // from healing to the first newly proposed entry committed
};

// Runs one simulation. Deterministic: the same options give the same result.
result run(const options& opt);

}  // namespace ferry::consensus::sim
