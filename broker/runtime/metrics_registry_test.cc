#include "broker/runtime/metrics.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ferry::metrics {
namespace {

// The value of the sample line `name{labels}` in the exposition, nullopt if there is none.
std::optional<std::string> sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
      return line.substr(series.size() + 1);
  return std::nullopt;
}

bool mentions(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

void run_threads(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> ts;
  ts.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ts.emplace_back(fn, i);
  for (auto& t : ts) t.join();
}

TEST(metrics_registry, counter_updates_from_many_threads_are_summed_and_survive_the_threads) {
  auto& c = get_counter("test_threads_total", "help");
  constexpr int threads = 8;
  constexpr uint64_t each = 200'000;
  run_threads(threads, [&](int) {
    for (uint64_t i = 0; i < each; ++i) c.inc();
  });
  EXPECT_EQ(c.value(), threads * each);
  // New threads take the slots the old ones left (with their values): nothing goes back.
  run_threads(threads, [&](int) { c.inc(3); });
  EXPECT_EQ(c.value(), threads * each + uint64_t{threads} * 3);
  EXPECT_EQ(sample(render_prometheus(), "test_threads_total"), std::to_string(threads * each + uint64_t{threads} * 3));
}

TEST(metrics_registry, gauge_deltas_from_different_threads_add_up) {
  auto& g = get_gauge("test_open", "help");
  run_threads(4, [&](int) { g.add(5); });
  run_threads(3, [&](int) { g.add(-5); });  // closed on other threads than they opened on
  EXPECT_EQ(g.value(), 5);
  g.add(-7);
  EXPECT_EQ(g.value(), -2);
  EXPECT_EQ(sample(render_prometheus(), "test_open"), "-2");
}

TEST(metrics_registry, exposition_is_the_prometheus_text_format_with_labels_in_order_and_escaped) {
  auto& c = get_counter("test_labelled_total", "A counter with labels", {{"topic", "or\"ders"}, {"partition", "3"}});
  c.inc(42);
  get_value_gauge("test_flag", "A flag").set(1);
  std::string text = render_prometheus();
  EXPECT_TRUE(mentions(text, "# HELP test_labelled_total A counter with labels\n")) << text;
  EXPECT_TRUE(mentions(text, "# TYPE test_labelled_total counter\n")) << text;
  EXPECT_EQ(sample(text, R"(test_labelled_total{topic="or\"ders",partition="3"})"), "42") << text;
  EXPECT_TRUE(mentions(text, "# TYPE test_flag gauge\n")) << text;
  EXPECT_EQ(sample(text, "test_flag"), "1");
}

TEST(metrics_registry, histogram_buckets_are_powers_of_two_microseconds_exported_in_seconds) {
  auto& h = get_histogram("test_latency_seconds", "help");
  for (uint64_t us : std::vector<uint64_t>{0, 1, 3, 1000, 1000, uint64_t{1} << 40}) h.observe_us(us);
  EXPECT_EQ(h.count(), 6u);
  EXPECT_EQ(h.sum_us(), 2004 + (uint64_t{1} << 40));
  std::string text = render_prometheus();
  EXPECT_TRUE(mentions(text, "# TYPE test_latency_seconds histogram\n")) << text;
  EXPECT_EQ(sample(text, R"(test_latency_seconds_bucket{le="1e-06"})"), "1") << text;  // 0 us
  EXPECT_EQ(sample(text, R"(test_latency_seconds_bucket{le="2e-06"})"), "2") << text;  // 1 us
  EXPECT_EQ(sample(text, R"(test_latency_seconds_bucket{le="4e-06"})"), "3") << text;  // 3 us
  EXPECT_EQ(sample(text, R"(test_latency_seconds_bucket{le="0.000512"})"), "3") << text;
  EXPECT_EQ(sample(text, R"(test_latency_seconds_bucket{le="0.001024"})"), "5") << text;   // 1000 us twice
  EXPECT_EQ(sample(text, R"(test_latency_seconds_bucket{le="33.554432"})"), "5") << text;  // the last bound
  EXPECT_EQ(sample(text, R"(test_latency_seconds_bucket{le="+Inf"})"), "6") << text;
  EXPECT_EQ(sample(text, "test_latency_seconds_count"), "6") << text;
}

TEST(metrics_registry, a_series_set_shares_series_and_they_leave_with_the_last_holder) {
  auto a = std::make_unique<series_set>(labels{{"topic", "t1"}, {"subscription", "s"}});
  auto b = std::make_unique<series_set>(labels{{"topic", "t1"}, {"subscription", "s"}});
  auto& ca = a->get_counter("test_owned_total", "help");
  auto& cb = b->get_counter("test_owned_total", "help");
  EXPECT_EQ(&ca, &cb) << "the same name and labels are one series";
  run_threads(2, [&](int i) { (i == 0 ? ca : cb).inc(10); });
  const std::string series = R"(test_owned_total{topic="t1",subscription="s"})";
  EXPECT_EQ(sample(render_prometheus(), series), "20");
  a.reset();
  EXPECT_EQ(sample(render_prometheus(), series), "20") << "b still holds it";
  b.reset();
  std::string text = render_prometheus();
  EXPECT_FALSE(sample(text, series).has_value()) << text;
  EXPECT_FALSE(mentions(text, "test_owned_total")) << "a family without series is not shown";
  // A series made later (on the freed cells) starts at zero, also in threads that wrote the old one.
  series_set c(labels{{"topic", "t2"}, {"subscription", "s"}});
  auto& cc = c.get_counter("test_owned_total", "help");
  EXPECT_EQ(cc.value(), 0u);
  auto& h = c.get_histogram("test_owned_seconds", "help");
  EXPECT_EQ(h.count(), 0u);
  cc.inc();
  EXPECT_EQ(sample(render_prometheus(), R"(test_owned_total{topic="t2",subscription="s"})"), "1");
}

TEST(metrics_registry, many_created_and_deleted_series_do_not_grow_the_exposition) {
  std::string before = render_prometheus();
  for (int i = 0; i < 1000; ++i) {
    series_set s(labels{{"topic", "tmp" + std::to_string(i)}, {"partition", "0"}});
    s.get_counter("test_churn_total", "help").inc();
    s.get_histogram("test_churn_seconds", "help").observe_us(5);
    s.get_value_gauge("test_churn_problem", "help", {{"problem", "corrupt"}}).set(1);
  }
  EXPECT_EQ(render_prometheus(), before);
}

// Every sample line of the exposition, parsed back: series (name and labels, as written) -> value.
std::map<std::string, double> parse_all(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    EXPECT_NE(sp, std::string::npos) << line;
    if (sp == std::string::npos) continue;
    std::string v = line.substr(sp + 1);
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    EXPECT_TRUE(end != v.c_str() && *end == '\0') << "not a number: " << line;
    EXPECT_TRUE(out.emplace(line.substr(0, sp), d).second) << "series twice: " << line;
  }
  return out;
}

TEST(metrics_registry, the_exposition_parses_back_to_what_was_counted) {
  series_set a(labels{{"topic", "parse"}, {"partition", "0"}});
  series_set b(labels{{"topic", "parse"}, {"partition", "1"}});
  a.get_counter("test_parse_total", "help").inc(7);
  b.get_counter("test_parse_total", "help").inc(9);
  a.get_gauge("test_parse_open", "help").add(-3);
  a.get_histogram("test_parse_seconds", "help").observe_us(1500);
  auto all = parse_all(render_prometheus());
  EXPECT_EQ(all[R"(test_parse_total{topic="parse",partition="0"})"], 7.0);
  EXPECT_EQ(all[R"(test_parse_total{topic="parse",partition="1"})"], 9.0);
  EXPECT_EQ(all[R"(test_parse_open{topic="parse",partition="0"})"], -3.0);
  EXPECT_EQ(all[R"(test_parse_seconds_count{topic="parse",partition="0"})"], 1.0);
  EXPECT_DOUBLE_EQ(all[R"(test_parse_seconds_sum{topic="parse",partition="0"})"], 0.0015);
  EXPECT_EQ(all[R"(test_parse_seconds_bucket{topic="parse",partition="0",le="0.001024"})"], 0.0);
  EXPECT_EQ(all[R"(test_parse_seconds_bucket{topic="parse",partition="0",le="0.002048"})"], 1.0);
}

TEST(metrics_registry, scrapes_while_threads_count_see_counts_that_never_go_back) {
  auto& c = get_counter("test_scraped_total", "help");
  constexpr int threads = 4;
  constexpr uint64_t each = 100'000;
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    double last = 0;
    while (!done.load()) {
      auto v = sample(render_prometheus(), "test_scraped_total");
      ASSERT_TRUE(v.has_value());
      double now = std::strtod(v->c_str(), nullptr);
      EXPECT_GE(now, last);
      last = now;
    }
  });
  // Threads that come and go while scraped (each takes a slot, or one an exited thread left).
  for (int round = 0; round < 4; ++round)
    run_threads(threads, [&](int) {
      for (uint64_t i = 0; i < each / 4; ++i) c.inc();
    });
  done = true;
  scraper.join();
  EXPECT_EQ(c.value(), threads * each);
}

TEST(metrics_registry, series_come_and_go_while_other_threads_update_theirs) {
  auto& kept = get_counter("test_busy_total", "help");
  std::atomic<bool> done{false};
  std::vector<std::thread> ts;
  ts.reserve(2);
  std::array<uint64_t, 2> per_thread{};
  for (size_t t = 0; t < 2; ++t)
    ts.emplace_back([&, t] {
      while (!done.load(std::memory_order_relaxed)) {
        kept.inc();
        ++per_thread[t];
      }
    });
  for (int i = 0; i < 2000; ++i) {
    series_set s(labels{{"topic", "churn" + std::to_string(i % 7)}});
    s.get_counter("test_busy_owned_total", "help").inc();
    if (i % 100 == 0) render_prometheus();
  }
  done = true;
  for (auto& t : ts) t.join();
  EXPECT_EQ(kept.value(), per_thread[0] + per_thread[1]);
  EXPECT_FALSE(mentions(render_prometheus(), "test_busy_owned_total"));
}

}  // namespace
}  // namespace ferry::metrics
