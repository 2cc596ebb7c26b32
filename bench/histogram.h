#pragma once
// A log-linear histogram of non-negative integer values (ferry-bench records nanoseconds).
//
// Layout (the idea of HdrHistogram, in a few lines): values below 2 * sub_buckets are counted
// exactly; above that, every power of two [2^e, 2^(e+1)) is split into `sub_buckets` (64) equal
// buckets, each 2^(e-6) wide. A bucket is therefore never wider than 1/64 of its lower bound.
//
// Precision: value_at_percentile() returns the upper bound of the bucket holding the requested
// rank (clamped to the exact recorded min and max), so a reported percentile is never below the
// true one and at most relative_error() = 1/64 (1.5625%) above it. min(), max(), count() and
// mean() are exact.
//
// Memory: a fixed 3,776 counters (about 30 KiB) covering the whole uint64_t range; record() is
// O(1) and allocation-free.
//
// Threads: not synchronised. Give every recording thread its own histogram and merge() them
// after the threads have been joined (or otherwise synchronised with).
#include <cstdint>
#include <string>
#include <vector>

namespace ferry::bench {

class histogram {
 public:
  static constexpr int sub_bucket_bits = 6;
  static constexpr uint64_t sub_buckets = uint64_t{1} << sub_bucket_bits;  // 64 per power of two

  histogram();

  void record(uint64_t value) noexcept { record_n(value, 1); }
  void record_n(uint64_t value, uint64_t n) noexcept;
  // Adds every value recorded in `other`.
  void merge(const histogram& other) noexcept;
  void reset() noexcept;

  uint64_t count() const noexcept { return count_; }
  uint64_t min() const noexcept { return count_ ? min_ : 0; }
  uint64_t max() const noexcept { return max_; }
  double mean() const noexcept;

  // The value at percentile `p` in [0, 100] by nearest rank: the smallest recorded value v such
  // that at least p% of the values are <= v, rounded up to its bucket's upper bound (see above).
  // 0 on an empty histogram; p <= 0 gives min(), p >= 100 gives max().
  uint64_t value_at_percentile(double p) const noexcept;

  // Largest relative overstatement of value_at_percentile(): 1/64.
  static constexpr double relative_error() noexcept { return 1.0 / static_cast<double>(sub_buckets); }
  // One line for the benchmark output, e.g. "log-linear, 64 sub-buckets per power of two: ...".
  static std::string precision_text();

  // Bucket arithmetic, exposed for tests.
  static size_t bucket_index(uint64_t value) noexcept;
  static uint64_t bucket_lower(size_t index) noexcept;
  static uint64_t bucket_upper(size_t index) noexcept;  // inclusive
  static constexpr size_t bucket_count() noexcept {
    // Exact buckets [0, 64), then 64 per power of two from 2^6 to 2^63: 58 powers.
    return sub_buckets + (64 - sub_bucket_bits) * sub_buckets;
  }

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace ferry::bench
