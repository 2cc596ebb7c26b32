#include "bench/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace ferry::bench {
namespace {

// The exact nearest-rank percentile of `sorted` (what histogram approximates).
uint64_t exact_percentile(const std::vector<uint64_t>& sorted, double p) {
  if (p <= 0) return sorted.front();
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size()) - 1e-9));
  rank = std::clamp<uint64_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// Checks every percentile we print (and a few more) against the stated precision: never below the
// true value, at most relative_error() above it.
void expect_within_precision(const std::vector<uint64_t>& values) {
  histogram h;
  for (uint64_t v : values) h.record(v);
  std::vector<uint64_t> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (double p : {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const uint64_t want = exact_percentile(sorted, p);
    const uint64_t got = h.value_at_percentile(p);
    EXPECT_GE(got, want) << "p" << p;
    EXPECT_LE(static_cast<double>(got), static_cast<double>(want) * (1.0 + histogram::relative_error()))
        << "p" << p << " want " << want;
  }
  EXPECT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min(), sorted.front());
  EXPECT_EQ(h.max(), sorted.back());
}

TEST(histogram, empty_histogram_reports_zero) {
  histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.value_at_percentile(50), 0u);
  EXPECT_EQ(h.value_at_percentile(99.9), 0u);
}

TEST(histogram, buckets_tile_the_whole_range_without_gaps) {
  EXPECT_EQ(histogram::bucket_lower(0), 0u);
  for (size_t i = 0; i + 1 < histogram::bucket_count(); ++i) {
    ASSERT_EQ(histogram::bucket_upper(i) + 1, histogram::bucket_lower(i + 1)) << "bucket " << i;
    ASSERT_EQ(histogram::bucket_index(histogram::bucket_lower(i)), i);
    ASSERT_EQ(histogram::bucket_index(histogram::bucket_upper(i)), i);
  }
  EXPECT_EQ(histogram::bucket_upper(histogram::bucket_count() - 1), UINT64_MAX);
  EXPECT_EQ(histogram::bucket_index(UINT64_MAX), histogram::bucket_count() - 1);
}

TEST(histogram, bucket_width_is_at_most_one_sixty_fourth_of_its_lower_bound) {
  for (size_t i = 0; i < histogram::bucket_count(); ++i) {
    const uint64_t lo = histogram::bucket_lower(i);
    const uint64_t width = histogram::bucket_upper(i) - lo;  // + 1, kept out to avoid overflow
    if (lo < 2 * histogram::sub_buckets) {
      EXPECT_EQ(width, 0u) << "small values are exact, bucket " << i;
    } else {
      EXPECT_LE(static_cast<long double>(width) + 1, static_cast<long double>(lo) / 64) << "bucket " << i;
    }
  }
}

TEST(histogram, small_values_are_exact) {
  histogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.value_at_percentile(50), 50u);
  EXPECT_EQ(h.value_at_percentile(99), 99u);
  EXPECT_EQ(h.value_at_percentile(99.9), 100u);
  EXPECT_EQ(h.value_at_percentile(1), 1u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(histogram, single_value_is_reported_exactly_at_every_percentile) {
  histogram h;
  h.record(1'234'567);
  for (double p : {0.0, 50.0, 99.0, 99.9, 100.0}) EXPECT_EQ(h.value_at_percentile(p), 1'234'567u);
}

TEST(histogram, uniform_distribution_percentiles_within_precision) {
  std::vector<uint64_t> values;
  for (uint64_t v = 1; v <= 1'000'000; ++v) values.push_back(v);
  expect_within_precision(values);
  histogram h;
  for (uint64_t v : values) h.record(v);
  // 500,000 lies in a bucket 4,096 wide ([499,712, 503,807]).
  EXPECT_EQ(h.value_at_percentile(50), 503'807u);
  EXPECT_DOUBLE_EQ(h.mean(), 500'000.5);
}

TEST(histogram, exponential_latencies_within_precision) {
  // Latency-like: mostly around 1 ms with a long tail, in nanoseconds.
  std::mt19937_64 rng(42);
  std::exponential_distribution<double> dist(1.0 / 1e6);
  std::vector<uint64_t> values;
  values.reserve(200'000);
  for (int i = 0; i < 200'000; ++i) values.push_back(50'000 + static_cast<uint64_t>(dist(rng)));
  expect_within_precision(values);
}

TEST(histogram, bimodal_distribution_tail_is_seen) {
  // 99% fast (~100 us), 1% slow (~50 ms): p99 must still be fast, p99.9 slow.
  std::vector<uint64_t> values;
  values.reserve(100'000);
  for (int i = 0; i < 99'000; ++i) values.push_back(100'000 + static_cast<uint64_t>(i % 1000));
  for (int i = 0; i < 1'000; ++i) values.push_back(50'000'000 + static_cast<uint64_t>(i));
  expect_within_precision(values);
  histogram h;
  for (uint64_t v : values) h.record(v);
  EXPECT_LT(h.value_at_percentile(99), 200'000u);
  EXPECT_GE(h.value_at_percentile(99.9), 50'000'000u);
  EXPECT_EQ(h.max(), 50'000'999u);
}

TEST(histogram, wide_range_of_magnitudes_within_precision) {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> values;
  for (int i = 0; i < 100'000; ++i) {
    const int bits = static_cast<int>(rng() % 63);
    values.push_back(rng() >> (63 - bits));
  }
  values.push_back(UINT64_MAX);
  expect_within_precision(values);
}

TEST(histogram, nearest_rank_is_not_fooled_by_floating_point) {
  // 99.9% of 1000 is rank 999, not 1000: a naive ceil(0.999 * 1000) can give 1000.
  histogram h;
  for (uint64_t v = 1; v <= 1000; ++v) h.record(v * 1000);
  const uint64_t p999 = h.value_at_percentile(99.9);
  EXPECT_GE(p999, 999'000u);
  EXPECT_LT(p999, 1'000'000u);
}

TEST(histogram, merge_equals_recording_into_one) {
  histogram a, b, all;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 10'000; ++i) {
    const uint64_t v = rng() % 10'000'000;
    (i % 3 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double p : {50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(a.value_at_percentile(p), all.value_at_percentile(p));
  histogram empty;
  a.merge(empty);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
}

TEST(histogram, reset_forgets_everything) {
  histogram h;
  h.record_n(5'000, 10);
  EXPECT_EQ(h.count(), 10u);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.max(), 0u);
  h.record(7);
  EXPECT_EQ(h.min(), 7u);
  EXPECT_EQ(h.value_at_percentile(50), 7u);
}

TEST(histogram, precision_text_states_the_bound) {
  const std::string text = histogram::precision_text();
  EXPECT_NE(text.find("64 sub-buckets"), std::string::npos) << text;
  EXPECT_NE(text.find("1.56%"), std::string::npos) << text;
}

}  // namespace
}  // namespace ferry::bench
