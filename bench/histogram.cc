#include "bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>

namespace ferry::bench {

histogram::histogram() : counts_(bucket_count(), 0) {}

size_t histogram::bucket_index(uint64_t value) noexcept {
  if (value < sub_buckets) return static_cast<size_t>(value);
  // value in [2^e, 2^(e+1)), e >= 6: keep its top 7 bits (1 + sub_bucket_bits); the rest is the
  // bucket's width, 2^shift.
  const int e = 63 - std::countl_zero(value);
  const int shift = e - sub_bucket_bits;
  const uint64_t sub = (value >> shift) - sub_buckets;  // 0 .. 63
  return static_cast<size_t>(sub_buckets + static_cast<uint64_t>(shift) * sub_buckets + sub);
}

uint64_t histogram::bucket_lower(size_t index) noexcept {
  if (index < sub_buckets) return index;
  const uint64_t shift = (index - sub_buckets) / sub_buckets;
  const uint64_t sub = (index - sub_buckets) % sub_buckets;
  return (sub_buckets + sub) << shift;
}

uint64_t histogram::bucket_upper(size_t index) noexcept {
  if (index < sub_buckets) return index;
  const uint64_t shift = (index - sub_buckets) / sub_buckets;
  // lower + (width - 1): written this way the last bucket ends at UINT64_MAX without overflow.
  return bucket_lower(index) + ((uint64_t{1} << shift) - 1);
}

void histogram::record_n(uint64_t value, uint64_t n) noexcept {
  if (n == 0) return;
  counts_[bucket_index(value)] += n;
  count_ += n;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<long double>(value) * static_cast<long double>(n);
}

void histogram::merge(const histogram& other) noexcept {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  sum_ = 0;
}

double histogram::mean() const noexcept {
  return count_ ? static_cast<double>(sum_ / static_cast<long double>(count_)) : 0.0;
}

uint64_t histogram::value_at_percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  if (p <= 0) return min_;
  if (p >= 100) return max_;
  // Nearest rank: the ceil(p% of count)-th smallest value. The tiny shrink keeps a product that
  // floating point puts a hair above an integer (99.9% of 1000 = 999.0000000000001) on it.
  const long double r = static_cast<long double>(p) / 100.0L * static_cast<long double>(count_);
  uint64_t rank = static_cast<uint64_t>(std::ceil(r * (1.0L - 1e-15L)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(bucket_upper(i), min_, max_);
  }
  return max_;
}

std::string histogram::precision_text() {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "log-linear histogram, %llu sub-buckets per power of two: percentiles are bucket "
                "upper bounds, never below the true value and at most %.2f%% above it; max exact",
                static_cast<unsigned long long>(sub_buckets), relative_error() * 100.0);
  return buf;
}

}  // namespace ferry::bench
