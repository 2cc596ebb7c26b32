#pragma once
// Publishing for the produce, e2e and delayed modes: P client producers, each with its own sending
// thread, an equal share of --messages each, paced open-loop with --rate (see main.cc).
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bench/ferry_bench/connect.h"
#include "bench/ferry_bench/report.h"
#include "bench/histogram.h"

namespace ferry::bench {

// The header e2e embeds in every timed message: the intended send time, steady_clock nanoseconds,
// 8 bytes little-endian. steady_clock is per machine, so producer and reader live in one process.
inline constexpr const char* ts_header = "ferry-bench-ts";

// One producer and what its callbacks record. The histogram and counters are written only on the
// producer's I/O thread (callbacks run there); they are read after flush() has returned, which
// waits for every callback.
struct producer_slot {
  std::unique_ptr<fc::producer> producer;
  int64_t first_message = 0;  // global index of this slot's first message (for keys)
  int64_t share = 0;          // messages this slot sends
  histogram ack_latency;
  alignas(64) std::atomic<uint64_t> acked{0};
  std::atomic<uint64_t> failed{0};
  std::mutex error_mu;
  std::string first_error;
};

struct produce_result {
  uint64_t acked = 0;
  uint64_t failed = 0;  // including those never called back before the flush timeout
  double seconds = 0;   // from the first send to the return of the last flush()
  histogram ack_latency;
  std::string first_error;
};

// --producers producers, each with a warm-up message per partition sent and acknowledged (not
// timed, not counted, without the timestamp header).
[[nodiscard]] result<std::vector<std::unique_ptr<producer_slot>>> make_producers(const settings& s,
                                                                                 const topic_info& topic);
// Runs every producer's send loop on its own thread, flushes, and collects the results. With
// `stamp`, every message carries ts_header. `start_out`, if given, gets the start time.
produce_result run_producers(std::vector<std::unique_ptr<producer_slot>>& slots, const settings& s, bool stamp,
                             steady::time_point* start_out = nullptr);

}  // namespace ferry::bench
