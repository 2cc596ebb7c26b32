#include "bench/ferry_bench/report.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace ferry::bench {

const char* mode_name(mode m) {
  switch (m) {
    case mode::produce:
      return "produce";
    case mode::consume:
      return "consume";
    case mode::e2e:
      return "e2e";
    case mode::subscribe:
      return "subscribe";
    case mode::delayed:
      return "delayed";
  }
  return "?";
}

int64_t ns_since(steady::time_point t0, steady::time_point t1) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
}

double ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double wall_now_us() {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

double rss_mib(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  }
  return -1;
}

latency_summary summarize(const histogram& h) {
  return {h.count(),
          ms(h.value_at_percentile(50)),
          ms(h.value_at_percentile(99)),
          ms(h.value_at_percentile(99.9)),
          ms(h.max()),
          h.mean() / 1e6};
}

void add_latency(json& j, const std::string& prefix, const latency_summary& l) {
  j[prefix + "_p50_ms"] = l.p50;
  j[prefix + "_p99_ms"] = l.p99;
  j[prefix + "_p999_ms"] = l.p999;
  j[prefix + "_max_ms"] = l.max;
  j[prefix + "_mean_ms"] = l.mean;
  j[prefix + "_samples"] = l.count;
}

json settings_json(const settings& s, mode m, const topic_info& topic) {
  json j;
  j["bootstrap"] = ctl::json_text(s.bootstrap);
  j["topic"] = ctl::json_text(s.topic);
  j["partitions"] = topic.partitions;
  j["topic_fsync"] = fsync_text(topic.config);
  if (m == mode::delayed) {
    j["size"] = s.size;
    j["producers"] = s.producers;
    j["delay_min_ms"] = s.delay_min_ms;
    j["delay_spread_ms"] = s.delay_spread_ms;
    j["consume"] = s.consume_delayed;
    j["members"] = s.delay_members;
    j["keys"] = s.keys;
  } else if (m == mode::subscribe) {
    j["subscription"] = ctl::json_text(s.subscription);
    j["members"] = s.members;
    j["ordered"] = s.ordered;
    j["credit"] = s.credit;
  } else if (m != mode::consume) {
    j["size"] = s.size;
    j["producers"] = s.producers;
    j["batch_bytes"] = s.batch_bytes;
    j["linger_ms"] = s.linger_ms;
    j["max_in_flight"] = s.max_in_flight;
    j["rate"] = s.rate;
    j["keys"] = s.keys;
  } else {
    j["fetch_bytes"] = s.fetch_bytes;
  }
  j["messages_requested"] = s.messages;
  return j;
}

bool write_json(const settings& s, const json& j) {
  if (s.json_file.empty()) return true;
  std::ofstream out(s.json_file, std::ios::trunc);
  out << ctl::json_line(j) << "\n";
  out.close();
  if (!out) {
    std::fprintf(stderr, "error: cannot write %s\n", s.json_file.c_str());
    return false;
  }
  return true;
}

void print_header(mode m, const settings& s, const topic_info& topic) {
  std::printf("ferry-bench %s: bootstrap=%s topic=%s partitions=%d fsync=%s", mode_name(m), s.bootstrap.c_str(),
              s.topic.c_str(), topic.partitions, fsync_text(topic.config).c_str());
  if (m == mode::delayed) {
    std::printf(" producers=%d size=%zu due=now+%" PRId64 "ms+[0,%" PRId64 "ms) consume=%s members=%d", s.producers,
                s.size, s.delay_min_ms, s.delay_spread_ms, s.consume_delayed ? "yes" : "no", s.delay_members);
  } else if (m == mode::subscribe) {
    std::printf(" subscription=%s members=%d ordered=%s credit=%d", s.subscription.c_str(), s.members,
                s.ordered ? "true" : "false", s.credit);
  } else if (m != mode::consume) {
    std::printf(" producers=%d size=%zu batch-bytes=%zu linger-ms=%d keys=%" PRId64 " rate=", s.producers, s.size,
                s.batch_bytes, s.linger_ms, s.keys);
    if (s.rate > 0) {
      std::printf("%.0f/s", s.rate);
    } else {
      std::printf("unlimited");
    }
  }
  std::printf("\n");
}

void print_throughput(uint64_t messages, uint64_t bytes, double seconds) {
  std::printf("  %-28s %" PRIu64 "\n", "messages", messages);
  std::printf("  %-28s %" PRIu64 "\n", "bytes (values)", bytes);
  std::printf("  %-28s %.3f\n", "seconds", seconds);
  std::printf("  %-28s %.0f\n", "messages/s", static_cast<double>(messages) / seconds);
  std::printf("  %-28s %.2f\n", "MB/s (10^6 B of values)", static_cast<double>(bytes) / seconds / 1e6);
}

void print_latency(const char* what, const latency_summary& l) {
  std::printf("  %-28s p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f  (%" PRIu64 " samples)\n", what, l.p50,
              l.p99, l.p999, l.max, l.mean, l.count);
}

int report_error(const std::string& what, const error& e) {
  std::fprintf(stderr, "error: %s: %s\n", what.c_str(), e.to_string().c_str());
  return 1;
}

progress_printer::progress_printer(std::string label, std::function<uint64_t()> count)
    : label_(std::move(label)), count_(std::move(count)), start_(steady::now()), thread_([this] { run(); }) {}

void progress_printer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void progress_printer::run() {
  uint64_t last = 0;
  auto last_t = start_;
  std::unique_lock lock(mu_);
  for (auto next = start_ + std::chrono::seconds(1);; next += std::chrono::seconds(1)) {
    if (cv_.wait_until(lock, next, [this] { return stopped_; })) return;
    const auto now = steady::now();
    const uint64_t c = count_();
    const double total_s = static_cast<double>(ns_since(start_, now)) / 1e9;
    const double dt = static_cast<double>(ns_since(last_t, now)) / 1e9;
    std::fprintf(stderr, "[%s] %6.1fs %12" PRIu64 " msgs  %10.0f msgs/s  (last 1s: %.0f msgs/s)\n", label_.c_str(),
                 total_s, c, static_cast<double>(c) / total_s, static_cast<double>(c - last) / dt);
    last = c;
    last_t = now;
  }
}

}  // namespace ferry::bench
