#pragma once
// Process-wide metrics: counters and log-linear histograms, rendered in the Prometheus text format
// at the broker's HTTP /metrics. Each subsystem keeps its handles in a small probe struct (see
// broker/partition/probe.h, broker/net/probe.h) instead of sprinkling lookups through its logic.
// Updates are relaxed atomics: cheap enough for every hot path.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ferry::metrics {

class counter {
 public:
  void inc(uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class gauge {
 public:
  void set(int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(int64_t d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Histogram of microsecond values with buckets at powers of two (1us .. ~34 s), exported with
// Prometheus cumulative `le` buckets in seconds.
class histogram {
 public:
  static constexpr int buckets = 26;
  void observe_us(uint64_t us) noexcept;
  uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  uint64_t sum_us() const noexcept { return sum_.load(std::memory_order_relaxed); }
  uint64_t bucket(int i) const noexcept { return b_[i].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, buckets + 1> b_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

// Registers a metric once; returns the same object for the same name+labels. Objects live for
// the process. `labels` is Prometheus label syntax without braces: `api="produce"`.
counter& get_counter(const std::string& name, const std::string& help, const std::string& labels = "");
gauge& get_gauge(const std::string& name, const std::string& help, const std::string& labels = "");
histogram& get_histogram(const std::string& name, const std::string& help, const std::string& labels = "");

// The whole registry in Prometheus text exposition format 0.0.4.
std::string render_prometheus();

}  // namespace ferry::metrics
