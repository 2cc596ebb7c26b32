#pragma once
// ferry-bench's output: the summary on stdout, progress on stderr once a second, and the result
// as one JSON object (--json FILE; field names are what bench/run.sh and the recorded results
// read). Also the clocks and small measurements every mode uses.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "bench/ferry_bench/connect.h"
#include "bench/ferry_bench/options.h"
#include "bench/histogram.h"
#include "client/ferryctl/json.h"

namespace ferry::bench {

using steady = std::chrono::steady_clock;
using json = ctl::json;

int64_t ns_since(steady::time_point t0, steady::time_point t1);
double ms(uint64_t ns);
int64_t wall_now_ms();
double wall_now_us();
// The resident memory (VmRSS of /proc/PID/status) of process `pid` in MiB, or -1.
double rss_mib(int pid);

struct latency_summary {
  uint64_t count = 0;
  double p50 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;  // ms
};
latency_summary summarize(const histogram& h);

// "<prefix>_p50_ms", "_p99_ms", "_p999_ms", "_max_ms", "_mean_ms", "_samples" into `j`.
void add_latency(json& j, const std::string& prefix, const latency_summary& l);
// Every setting that applies to mode `m`, and the topic's partitions and fsync policy.
json settings_json(const settings& s, mode m, const topic_info& topic);
// Writes `j` to --json FILE if one was given; false (and a message) if it cannot.
bool write_json(const settings& s, const json& j);

void print_header(mode m, const settings& s, const topic_info& topic);
void print_throughput(uint64_t messages, uint64_t bytes, double seconds);
void print_latency(const char* what, const latency_summary& l);
// Prints "error: <what>: <error>" to stderr; returns 1.
int report_error(const std::string& what, const error& e);

// Prints "<label> <seconds>s <count> msgs, <rate> msgs/s (last 1s: <rate>)" to stderr once a second
// until stopped. `count` is read with relaxed atomics: a progress line needs no exactness.
class progress_printer {
 public:
  progress_printer(std::string label, std::function<uint64_t()> count);
  ~progress_printer() { stop(); }
  progress_printer(const progress_printer&) = delete;
  progress_printer& operator=(const progress_printer&) = delete;

  void stop();

 private:
  void run();

  std::string label_;
  std::function<uint64_t()> count_;
  steady::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::thread thread_;  // last: starts after everything it reads is constructed
};

}  // namespace ferry::bench
