#pragma once
// Reading for the consume and e2e modes: one reader per partition, each polled on its own thread.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/ferry_bench/connect.h"
#include "bench/ferry_bench/report.h"
#include "bench/histogram.h"

namespace ferry::bench {

struct reader_slot {
  std::unique_ptr<fc::reader> reader;
  int32_t partition = 0;
  int64_t end_offset = 0;  // high watermark when the benchmark started
  histogram e2e_latency;   // e2e only; written by this slot's thread
  uint64_t stamped = 0;    // e2e: messages that carried the timestamp header
  std::string error;
};

// Shared state of the reader threads.
struct read_state {
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> stamped{0};
  std::atomic<bool> stop{false};
  std::atomic<int> running{0};               // reader threads still polling
  std::atomic<int64_t> last_progress_ns{0};  // since `start`
  steady::time_point start;
  std::mutex end_mu;
  std::optional<steady::time_point> end;  // when the target was reached
};

// One reader per partition of `topic`, from the earliest offset or from each partition's high
// watermark as described.
[[nodiscard]] result<std::vector<std::unique_ptr<reader_slot>>> make_readers(const settings& s, const topic_info& topic,
                                                                             bool from_earliest);
// Polls one partition until st.stop or an error; counts towards `st`. Sets st.stop once `target`
// messages (e2e: timestamped messages, whose latency it records) have been read over all partitions.
void read_loop(reader_slot& slot, read_state& st, const settings& s, bool e2e, uint64_t target);

}  // namespace ferry::bench
