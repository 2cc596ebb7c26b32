// ferry-bench: Ferry's load generator.
//
//   ferry-bench produce   P producers (one thread and one client producer each) publish
//                         --messages values of --size bytes; measures throughput and the
//                         publish-to-ack latency of every message.
//   ferry-bench consume   one reader per partition reads --messages from the earliest offset;
//                         measures throughput.
//   ferry-bench e2e       produces at --rate while reading every partition in the same process;
//                         measures end-to-end latency (send -> read) from a timestamp header.
//
// Latency is measured with std::chrono::steady_clock and recorded into a log-linear histogram
// (bench/histogram.h; its precision is printed with every result).
//
// Open-loop pacing: with --rate R each producer thread owns R/P messages per second and message i
// has an intended send time start + i/(R/P). Latency is measured from that intended time, not from
// the moment send() finally ran, so a broker (or client) stall that makes the sender fall behind
// shows up in the latency instead of being hidden by a sender that politely waited
// ("coordinated omission"). Without --rate the producers send as fast as send() accepts
// (closed loop, bounded by the producer's buffer): that measures throughput, and its latency is
// mostly queueing in the client buffer.
//
// Exit status: 0 success, 1 a broker or client error (failed sends, unreachable broker),
// 2 a usage error.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/histogram.h"
#include "broker/base/main_guard.h"
#include "client/ferryctl/format.h"
#include "ferry/client/client.h"

namespace ferry::bench {
namespace {

namespace fc = ferry::client;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// The header e2e embeds in every timed message: the intended send time, steady_clock nanoseconds,
// 8 bytes little-endian. steady_clock is per machine, so producer and reader live in one process.
constexpr const char* ts_header = "ferry-bench-ts";

enum class mode { produce, consume, e2e, subscribe, delayed };

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

struct settings {
  std::string bootstrap;
  std::string topic = "ferry-bench";
  bool create_topic = false;
  int partitions = 1;
  int64_t messages = 1'000'000;
  bool messages_given = false;
  size_t size = 100;
  int producers = 1;
  size_t batch_bytes = 256u << 10;
  int linger_ms = 2;
  int max_in_flight = 5;
  double rate = 0;  // messages per second over all producers; 0 = unlimited
  int64_t keys = 0;
  size_t fetch_bytes = 1u << 20;
  int idle_timeout_s = 10;
  std::string json_file;
  // subscribe
  int members = 4;
  bool ordered = false;
  int credit = 2000;
  std::string subscription;
  // delayed
  bool delayed = false;
  int64_t delay_min_ms = 5000;
  int64_t delay_spread_ms = 60'000;
  int64_t delay_base_ms = 0;  // wall-clock ms at the start: due times are base + min + [0, spread)
  bool consume_delayed = false;
  int delay_members = 1;
  int broker_pid = 0;
  int settle_s = 5;
};

int64_t wall_now_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
double wall_now_us() {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// The broker's resident memory (VmRSS of /proc/PID/status) in MiB, or -1.
double rss_mib(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  }
  return -1;
}

int64_t ns_since(steady::time_point t0, steady::time_point t1) {
  return std::chrono::duration_cast<nanoseconds>(t1 - t0).count();
}
double ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

// ---- output -----------------------------------------------------------------------------------

// A flat JSON object built in insertion order (enough for one result document).
class json_object {
 public:
  json_object& num(const std::string& k, double v) {
    char buf[64];
    if (std::isfinite(v)) {
      std::snprintf(buf, sizeof buf, "%.10g", v);
    } else {
      std::snprintf(buf, sizeof buf, "null");
    }
    return raw(k, buf);
  }
  json_object& num(const std::string& k, int64_t v) { return raw(k, std::to_string(v)); }
  json_object& str(const std::string& k, const std::string& v) { return raw(k, ctl::json_string(v)); }
  json_object& boolean(const std::string& k, bool v) { return raw(k, v ? "true" : "false"); }
  json_object& obj(const std::string& k, const json_object& o) { return raw(k, o.text()); }
  std::string text() const { return "{" + body_ + "}"; }

 private:
  json_object& raw(const std::string& k, const std::string& v) {
    if (!body_.empty()) body_ += ", ";
    body_ += ctl::json_string(k);
    body_ += ": ";
    body_ += v;
    return *this;
  }
  std::string body_;
};

struct latency_summary {
  uint64_t count = 0;
  double p50 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;
};

latency_summary summarize(const histogram& h) {
  return {h.count(),
          ms(h.value_at_percentile(50)),
          ms(h.value_at_percentile(99)),
          ms(h.value_at_percentile(99.9)),
          ms(h.max()),
          h.mean() / 1e6};
}

void add_latency(json_object& j, const std::string& prefix, const latency_summary& l) {
  j.num(prefix + "_p50_ms", l.p50)
      .num(prefix + "_p99_ms", l.p99)
      .num(prefix + "_p999_ms", l.p999)
      .num(prefix + "_max_ms", l.max)
      .num(prefix + "_mean_ms", l.mean)
      .num(prefix + "_samples", static_cast<int64_t>(l.count));
}

void print_latency(const char* what, const latency_summary& l) {
  std::printf("  %-28s p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f  (%" PRIu64 " samples)\n", what, l.p50,
              l.p99, l.p999, l.max, l.mean, l.count);
}

// ---- progress ---------------------------------------------------------------------------------

// Prints "<label> <seconds>s <count> msgs, <rate> msgs/s (last 1s: <rate>)" to stderr once a second
// until stopped. `count` is read with relaxed atomics: a progress line needs no exactness.
class progress_printer {
 public:
  progress_printer(std::string label, std::function<uint64_t()> count)
      : label_(std::move(label)), count_(std::move(count)), start_(steady::now()), thread_([this] { run(); }) {}
  ~progress_printer() { stop(); }
  progress_printer(const progress_printer&) = delete;
  progress_printer& operator=(const progress_printer&) = delete;

  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
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

  std::string label_;
  std::function<uint64_t()> count_;
  steady::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::thread thread_;  // last: starts after everything it reads is constructed
};

// ---- topic ------------------------------------------------------------------------------------

struct topic_info {
  int32_t partitions = 0;
  fc::topic_config config;
  std::vector<fc::partition_state> states;
};

result<topic_info> describe(fc::admin& admin, const std::string& topic) {
  auto d = admin.describe_topic(topic);
  if (!d) return d.error();
  topic_info info;
  info.config = d->config;
  info.states = d->partitions;
  info.partitions = d->partitions.empty() ? d->config.partitions : static_cast<int32_t>(d->partitions.size());
  return info;
}

// Creates the topic if --create-topic says so or if it does not exist; returns its description.
result<topic_info> ensure_topic(fc::admin& admin, const settings& s, mode m) {
  auto info = describe(admin, s.topic);
  if (info) {
    if (s.create_topic) {
      std::fprintf(stderr, "note: topic '%s' exists (%d partitions); using it as it is\n", s.topic.c_str(),
                   info->partitions);
    }
    if (info->partitions != s.partitions && s.partitions != 1) {
      std::fprintf(stderr, "warning: --partitions %d, but topic '%s' has %d partitions\n", s.partitions,
                   s.topic.c_str(), info->partitions);
    }
    return info;
  }
  if (info.error().code != errc::unknown_topic) return info.error();
  if (m == mode::consume || m == mode::subscribe) return info.error();  // nothing to read: creating it would not help
  fc::topic_config cfg;
  cfg.partitions = s.partitions;
  auto created = admin.create_topic(s.topic, cfg);
  if (!created && created.error().code != errc::topic_exists) return created.error();
  if (created) std::fprintf(stderr, "created topic '%s' with %d partitions\n", s.topic.c_str(), s.partitions);
  // The partitions may still be electing/recovering; describe until every one has a state.
  const auto deadline = steady::now() + std::chrono::seconds(30);
  for (;;) {
    info = describe(admin, s.topic);
    if (info && info->partitions >= s.partitions) return info;
    if (steady::now() > deadline) {
      if (!info) return info.error();
      return fail(errc::timeout, "topic '" + s.topic + "' was created but does not describe its partitions");
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
}

std::string fsync_text(const fc::topic_config& c) {
  if (!c.fsync_interval) return "every-ack";
  return "interval-" + std::to_string(c.fsync_interval_ms) + "ms";
}

// ---- producing --------------------------------------------------------------------------------

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
  uint64_t failed = 0;
  double seconds = 0;
  histogram ack_latency;
  std::string first_error;
};

std::string make_payload(size_t size) {
  // Incompressible-looking bytes (fixed seed: every run sends the same values).
  std::string v(size, '\0');
  std::mt19937 rng(12345);
  for (auto& c : v) c = static_cast<char>('a' + rng() % 26);
  return v;
}

void send_one(producer_slot& slot, const settings& s, const std::string& payload, int64_t index,
              steady::time_point intended, bool stamp) {
  fc::message m;
  m.value = payload;
  if (s.keys > 0) m.key = "key-" + std::to_string(index % s.keys);
  if (s.delayed) {
    // Due times spread pseudo-randomly (a multiplicative hash of the index) over the spread.
    uint64_t h = static_cast<uint64_t>(index) * 0x9E3779B97F4A7C15ull;
    int64_t within =
        s.delay_spread_ms > 0 ? static_cast<int64_t>((h >> 16) % static_cast<uint64_t>(s.delay_spread_ms)) : 0;
    m.deliver_at_ms = s.delay_base_ms + s.delay_min_ms + within;
  }
  if (stamp) {
    const uint64_t t = static_cast<uint64_t>(intended.time_since_epoch().count());
    std::string b(8, '\0');
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((t >> (8 * i)) & 0xff);
    m.headers.emplace_back(ts_header, std::move(b));
  }
  producer_slot* sp = &slot;
  slot.producer->send(s.topic, std::move(m), [sp, intended](const result<fc::message_id>& r) {
    const auto now = steady::now();
    if (r) {
      sp->ack_latency.record(static_cast<uint64_t>(std::max<int64_t>(0, ns_since(intended, now))));
      sp->acked.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (sp->failed.fetch_add(1, std::memory_order_relaxed) == 0) {
        std::lock_guard lock(sp->error_mu);
        sp->first_error = r.error().to_string();
      }
    }
  });
}

// The sending loop of one producer thread; see the file comment for the pacing rule.
void send_loop(producer_slot& slot, const settings& s, const std::string& payload, steady::time_point start,
               bool stamp) {
  const double per_thread_rate = s.rate > 0 ? s.rate / s.producers : 0;
  for (int64_t i = 0; i < slot.share;) {
    if (per_thread_rate > 0) {
      const auto now = steady::now();
      // Every message whose intended time has passed goes out now, stamped with that time.
      const auto due_count = std::min<int64_t>(
          slot.share, static_cast<int64_t>(static_cast<double>(ns_since(start, now)) / 1e9 * per_thread_rate) + 1);
      if (due_count <= i) {
        const auto next = start + nanoseconds(static_cast<int64_t>(static_cast<double>(i) * 1e9 / per_thread_rate));
        std::this_thread::sleep_until(next);
        continue;
      }
      for (; i < due_count; ++i) {
        const auto intended = start + nanoseconds(static_cast<int64_t>(static_cast<double>(i) * 1e9 / per_thread_rate));
        send_one(slot, s, payload, slot.first_message + i, intended, stamp);
      }
    } else {
      send_one(slot, s, payload, slot.first_message + i, steady::now(), stamp);
      ++i;
    }
  }
}

result<std::vector<std::unique_ptr<producer_slot>>> make_producers(const settings& s, const topic_info& topic) {
  std::vector<std::unique_ptr<producer_slot>> slots;
  for (int p = 0; p < s.producers; ++p) {
    fc::producer_options o;
    o.bootstrap = s.bootstrap;
    o.linger = milliseconds(s.linger_ms);
    o.batch_bytes = s.batch_bytes;
    o.max_in_flight = s.max_in_flight;
    auto prod = fc::producer::create(o);
    if (!prod) return prod.error();
    auto slot = std::make_unique<producer_slot>();
    slot->producer = std::move(*prod);
    slot->share = s.messages / s.producers + (p < s.messages % s.producers ? 1 : 0);
    slot->first_message = p == 0 ? 0 : slots.back()->first_message + slots.back()->share;
    slots.push_back(std::move(slot));
  }
  // Warm-up, not timed and not counted: one message per partition per producer, so that
  // connections, metadata and the partitions' leaders are settled before the clock starts.
  // These carry no timestamp header (e2e ignores them).
  for (auto& slot : slots) {
    std::vector<std::future<result<fc::message_id>>> acks;
    for (int32_t part = 0; part < topic.partitions; ++part) {
      fc::message m;
      m.value = "ferry-bench warm-up";
      m.partition = part;
      acks.push_back(slot->producer->send(s.topic, std::move(m)));
    }
    for (auto& f : acks) {
      auto r = f.get();
      if (!r) return fail(r.error().code, "warm-up publish failed: " + r.error().message);
    }
  }
  return slots;
}

// Runs every producer's send loop on its own thread, flushes, and collects the results.
produce_result run_producers(std::vector<std::unique_ptr<producer_slot>>& slots, const settings& s, bool stamp,
                             steady::time_point* start_out = nullptr) {
  const std::string payload = make_payload(s.size);
  std::latch ready(static_cast<std::ptrdiff_t>(slots.size()) + 1);
  steady::time_point start;
  std::vector<std::thread> threads;
  std::vector<std::optional<result<void>>> flushed(slots.size());
  for (size_t p = 0; p < slots.size(); ++p) {
    threads.emplace_back([&, p] {
      ready.arrive_and_wait();
      send_loop(*slots[p], s, payload, start, stamp);
      flushed[p] = slots[p]->producer->flush(std::chrono::minutes(10));
    });
  }
  start = steady::now();  // written before the latch opens: the threads read it after
  if (start_out) *start_out = start;
  progress_printer progress(stamp ? "e2e/acked" : "produce", [&] {
    uint64_t n = 0;
    for (auto& slot : slots) n += slot->acked.load(std::memory_order_relaxed);
    return n;
  });
  ready.arrive_and_wait();
  for (auto& t : threads) t.join();
  const auto end = steady::now();
  progress.stop();

  produce_result r;
  r.seconds = static_cast<double>(ns_since(start, end)) / 1e9;
  for (size_t p = 0; p < slots.size(); ++p) {
    auto& slot = *slots[p];
    r.acked += slot.acked.load();
    r.failed += slot.failed.load();
    r.ack_latency.merge(slot.ack_latency);
    if (r.first_error.empty()) {
      std::lock_guard lock(slot.error_mu);
      r.first_error = slot.first_error;
    }
    if (flushed[p] && !*flushed[p] && r.first_error.empty())
      r.first_error = "flush: " + flushed[p]->error().to_string();
  }
  const uint64_t lost = static_cast<uint64_t>(s.messages) - std::min<uint64_t>(s.messages, r.acked + r.failed);
  r.failed += lost;  // never called back before the flush timeout: count them as failures
  return r;
}

json_object settings_json(const settings& s, mode m, const topic_info& topic) {
  json_object j;
  j.str("bootstrap", s.bootstrap)
      .str("topic", s.topic)
      .num("partitions", static_cast<int64_t>(topic.partitions))
      .str("topic_fsync", fsync_text(topic.config));
  if (m == mode::delayed) {
    j.num("size", static_cast<int64_t>(s.size))
        .num("producers", static_cast<int64_t>(s.producers))
        .num("delay_min_ms", s.delay_min_ms)
        .num("delay_spread_ms", s.delay_spread_ms)
        .boolean("consume", s.consume_delayed)
        .num("members", static_cast<int64_t>(s.delay_members))
        .num("keys", s.keys);
  } else if (m == mode::subscribe) {
    j.str("subscription", s.subscription)
        .num("members", static_cast<int64_t>(s.members))
        .boolean("ordered", s.ordered)
        .num("credit", static_cast<int64_t>(s.credit));
  } else if (m != mode::consume) {
    j.num("size", static_cast<int64_t>(s.size))
        .num("producers", static_cast<int64_t>(s.producers))
        .num("batch_bytes", static_cast<int64_t>(s.batch_bytes))
        .num("linger_ms", static_cast<int64_t>(s.linger_ms))
        .num("max_in_flight", static_cast<int64_t>(s.max_in_flight))
        .num("rate", s.rate)
        .num("keys", s.keys);
  } else {
    j.num("fetch_bytes", static_cast<int64_t>(s.fetch_bytes));
  }
  j.num("messages_requested", s.messages);
  return j;
}

bool write_json(const settings& s, const json_object& j) {
  if (s.json_file.empty()) return true;
  std::ofstream out(s.json_file, std::ios::trunc);
  out << j.text() << "\n";
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

result<std::unique_ptr<fc::admin>> connect_admin(const settings& s) {
  fc::client_options o;
  o.bootstrap = s.bootstrap;
  return fc::admin::create(o);
}

int report_error(const std::string& what, const error& e) {
  std::fprintf(stderr, "error: %s: %s\n", what.c_str(), e.to_string().c_str());
  return 1;
}

// ---- produce ----------------------------------------------------------------------------------

int run_produce(const settings& s) {
  auto admin = connect_admin(s);
  if (!admin) return report_error("connecting to " + s.bootstrap, admin.error());
  auto topic = ensure_topic(**admin, s, mode::produce);
  if (!topic) return report_error("topic", topic.error());
  auto slots = make_producers(s, *topic);
  if (!slots) return report_error("producer", slots.error());
  print_header(mode::produce, s, *topic);
  std::fflush(stdout);

  produce_result r = run_producers(*slots, s, /*stamp=*/false);
  for (auto& slot : *slots) slot->producer->close();

  const uint64_t bytes = r.acked * s.size;
  const auto lat = summarize(r.ack_latency);
  print_throughput(r.acked, bytes, r.seconds);
  print_latency("publish-to-ack latency (ms)", lat);
  std::printf("  %-28s %s\n", "latency precision", histogram::precision_text().c_str());
  if (r.failed) std::printf("  %-28s %" PRIu64 " (first: %s)\n", "FAILED messages", r.failed, r.first_error.c_str());

  json_object j;
  j.str("mode", "produce")
      .num("messages", static_cast<int64_t>(r.acked))
      .num("bytes", static_cast<int64_t>(bytes))
      .num("seconds", r.seconds)
      .num("msgs_per_sec", static_cast<double>(r.acked) / r.seconds)
      .num("mb_per_sec", static_cast<double>(bytes) / r.seconds / 1e6);
  add_latency(j, "latency", lat);
  j.str("latency_precision", histogram::precision_text())
      .num("errors", static_cast<int64_t>(r.failed))
      .str("first_error", r.first_error)
      .obj("settings", settings_json(s, mode::produce, *topic));
  const bool wrote = write_json(s, j);
  return r.failed || !wrote ? 1 : 0;
}

// ---- consume ----------------------------------------------------------------------------------

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

std::optional<uint64_t> read_ts_header(const fc::received_message& m) {
  for (const auto& h : m.headers) {
    if (h.key == ts_header && h.value && h.value->size() == 8) {
      uint64_t t = 0;
      for (int i = 0; i < 8; ++i) t |= static_cast<uint64_t>(static_cast<unsigned char>((*h.value)[i])) << (8 * i);
      return t;
    }
  }
  return std::nullopt;
}

// Polls one partition until st.stop or an error; counts towards `st`. Sets st.stop once `target`
// messages (e2e: timestamped messages) have been read over all partitions.
void read_loop(reader_slot& slot, read_state& st, const settings& s, bool e2e, uint64_t target) {
  struct on_exit {
    read_state& st;
    ~on_exit() { st.running.fetch_sub(1); }
  } exit_guard{st};
  while (!st.stop.load(std::memory_order_relaxed)) {
    auto batch = slot.reader->poll(milliseconds(100), s.fetch_bytes);
    if (!batch) {
      if (errc_retriable(batch.error().code)) continue;
      slot.error = batch.error().to_string();
      return;
    }
    if (batch->empty()) continue;
    const auto now = steady::now();
    uint64_t bytes = 0, stamped = 0;
    for (const auto& m : *batch) {
      bytes += m.value ? m.value->size() : 0;
      if (e2e) {
        if (auto t = read_ts_header(m)) {
          const int64_t lat = static_cast<int64_t>(now.time_since_epoch().count()) - static_cast<int64_t>(*t);
          slot.e2e_latency.record(static_cast<uint64_t>(std::max<int64_t>(0, lat)));
          ++stamped;
        }
      }
    }
    st.bytes.fetch_add(bytes, std::memory_order_relaxed);
    st.last_progress_ns.store(ns_since(st.start, now), std::memory_order_relaxed);
    const uint64_t counted = e2e ? stamped : batch->size();
    if (e2e) st.stamped.fetch_add(stamped, std::memory_order_relaxed);
    const uint64_t before = st.messages.fetch_add(batch->size(), std::memory_order_relaxed);
    slot.stamped += stamped;
    const uint64_t reached = e2e ? st.stamped.load() : before + counted;
    if (reached >= target) {
      std::lock_guard lock(st.end_mu);
      if (!st.end) st.end = now;
      st.stop = true;
    }
  }
}

result<std::vector<std::unique_ptr<reader_slot>>> make_readers(const settings& s, const topic_info& topic,
                                                               bool from_earliest) {
  std::vector<std::unique_ptr<reader_slot>> readers;
  for (int32_t p = 0; p < topic.partitions; ++p) {
    auto slot = std::make_unique<reader_slot>();
    slot->partition = p;
    int64_t start = from_earliest ? fc::reader::earliest : fc::reader::latest;
    for (const auto& ps : topic.states) {
      if (ps.partition != p) continue;
      slot->end_offset = ps.high_watermark;
      if (!from_earliest) start = ps.high_watermark;  // exact: everything produced after this point
    }
    fc::client_options o;
    o.bootstrap = s.bootstrap;
    auto r = fc::reader::create(o, s.topic, p, start);
    if (!r) return r.error();
    slot->reader = std::move(*r);
    readers.push_back(std::move(slot));
  }
  return readers;
}

int run_consume(const settings& s) {
  auto admin = connect_admin(s);
  if (!admin) return report_error("connecting to " + s.bootstrap, admin.error());
  auto topic = ensure_topic(**admin, s, mode::consume);
  if (!topic) return report_error("topic", topic.error());
  uint64_t available = 0;
  for (const auto& ps : topic->states) available += static_cast<uint64_t>(ps.high_watermark - ps.log_start_offset);
  uint64_t target = s.messages_given ? static_cast<uint64_t>(s.messages) : available;
  if (target == 0) {
    std::fprintf(stderr, "error: topic '%s' is empty: produce first (ferry-bench produce --topic %s)\n",
                 s.topic.c_str(), s.topic.c_str());
    return 1;
  }
  if (target > available) {
    std::fprintf(stderr, "note: %" PRIu64 " messages requested, %" PRIu64 " stored: waiting for the rest\n", target,
                 available);
  }
  auto readers = make_readers(s, *topic, /*from_earliest=*/true);
  if (!readers) return report_error("reader", readers.error());
  print_header(mode::consume, s, *topic);
  std::fflush(stdout);

  read_state st;
  st.start = steady::now();
  std::vector<std::thread> threads;
  st.running = static_cast<int>(readers->size());
  for (auto& r : *readers) threads.emplace_back([&, slot = r.get()] { read_loop(*slot, st, s, false, target); });
  bool idle = false;
  {
    progress_printer progress("consume", [&] { return st.messages.load(std::memory_order_relaxed); });
    while (!st.stop.load()) {
      std::this_thread::sleep_for(milliseconds(50));
      const auto now_ns = ns_since(st.start, steady::now());
      if (now_ns - st.last_progress_ns.load() > int64_t{s.idle_timeout_s} * 1'000'000'000) {
        idle = true;
        st.stop = true;
      }
      if (st.running.load() == 0) break;  // every reader failed; the errors are printed below
    }
  }
  for (auto& t : threads) t.join();
  const auto end = st.end.value_or(steady::now());
  const double seconds = static_cast<double>(ns_since(st.start, end)) / 1e9;

  const uint64_t messages = st.messages.load(), bytes = st.bytes.load();
  print_throughput(messages, bytes, seconds);
  std::string first_error;
  for (auto& r : *readers) {
    if (!r->error.empty()) {
      std::printf("  partition %d: ERROR %s\n", r->partition, r->error.c_str());
      if (first_error.empty()) first_error = r->error;
    }
  }
  if (idle) {
    std::printf("  STOPPED: no message for %ds with %" PRIu64 " of %" PRIu64 " read\n", s.idle_timeout_s, messages,
                target);
  }
  json_object j;
  j.str("mode", "consume")
      .num("messages", static_cast<int64_t>(messages))
      .num("bytes", static_cast<int64_t>(bytes))
      .num("seconds", seconds)
      .num("msgs_per_sec", static_cast<double>(messages) / seconds)
      .num("mb_per_sec", static_cast<double>(bytes) / seconds / 1e6)
      .boolean("complete", !idle && messages >= target)
      .str("first_error", first_error)
      .obj("settings", settings_json(s, mode::consume, *topic));
  const bool wrote = write_json(s, j);
  return idle || !first_error.empty() || !wrote ? 1 : 0;
}

// ---- e2e --------------------------------------------------------------------------------------

int run_e2e(const settings& s) {
  auto admin = connect_admin(s);
  if (!admin) return report_error("connecting to " + s.bootstrap, admin.error());
  auto topic = ensure_topic(**admin, s, mode::e2e);
  if (!topic) return report_error("topic", topic.error());
  auto slots = make_producers(s, *topic);
  if (!slots) return report_error("producer", slots.error());
  // Readers start at the high watermark after the warm-up: they see exactly the timed messages
  // (and ignore anything without the timestamp header that another client writes meanwhile).
  auto after_warmup = describe(**admin, s.topic);
  if (!after_warmup) return report_error("topic", after_warmup.error());
  auto readers = make_readers(s, *after_warmup, /*from_earliest=*/false);
  if (!readers) return report_error("reader", readers.error());
  print_header(mode::e2e, s, *topic);
  std::fflush(stdout);

  read_state st;
  st.start = steady::now();
  const uint64_t target = static_cast<uint64_t>(s.messages);
  std::vector<std::thread> threads;
  st.running = static_cast<int>(readers->size());
  for (auto& r : *readers) threads.emplace_back([&, slot = r.get()] { read_loop(*slot, st, s, true, target); });

  steady::time_point produce_start;
  produce_result pr = run_producers(*slots, s, /*stamp=*/true, &produce_start);
  for (auto& slot : *slots) slot->producer->close();

  // Everything is acknowledged; wait for the readers to see it (or stall).
  bool idle = false;
  const uint64_t expected = pr.acked;
  {
    progress_printer progress("e2e/read", [&] { return st.stamped.load(std::memory_order_relaxed); });
    while (!st.stop.load() && st.stamped.load() < expected) {
      std::this_thread::sleep_for(milliseconds(20));
      const auto now_ns = ns_since(st.start, steady::now());
      if (now_ns - st.last_progress_ns.load() > int64_t{s.idle_timeout_s} * 1'000'000'000) idle = true;
      if (idle || st.running.load() == 0) break;
    }
    st.stop = true;
  }
  for (auto& t : threads) t.join();

  histogram e2e;
  std::string first_error = pr.first_error;
  for (auto& r : *readers) {
    e2e.merge(r->e2e_latency);
    if (!r->error.empty() && first_error.empty()) first_error = "reader: " + r->error;
  }
  const uint64_t bytes = pr.acked * s.size;
  const auto ack = summarize(pr.ack_latency);
  const auto end_to_end = summarize(e2e);
  print_throughput(pr.acked, bytes, pr.seconds);
  std::printf("  %-28s %" PRIu64 "\n", "read back", e2e.count());
  print_latency("publish-to-ack latency (ms)", ack);
  print_latency("end-to-end latency (ms)", end_to_end);
  std::printf("  %-28s %s\n", "latency precision", histogram::precision_text().c_str());
  if (pr.failed) std::printf("  %-28s %" PRIu64 " (first: %s)\n", "FAILED messages", pr.failed, first_error.c_str());
  if (idle) std::printf("  STOPPED: readers saw nothing for %ds\n", s.idle_timeout_s);

  json_object j;
  j.str("mode", "e2e")
      .num("messages", static_cast<int64_t>(pr.acked))
      .num("bytes", static_cast<int64_t>(bytes))
      .num("seconds", pr.seconds)
      .num("msgs_per_sec", static_cast<double>(pr.acked) / pr.seconds)
      .num("mb_per_sec", static_cast<double>(bytes) / pr.seconds / 1e6)
      .num("read_back", static_cast<int64_t>(e2e.count()));
  add_latency(j, "latency", ack);
  add_latency(j, "e2e_latency", end_to_end);
  j.str("latency_precision", histogram::precision_text())
      .num("errors", static_cast<int64_t>(pr.failed))
      .str("first_error", first_error)
      .obj("settings", settings_json(s, mode::e2e, *topic));
  const bool wrote = write_json(s, j);
  return pr.failed || idle || e2e.count() < expected || !first_error.empty() || !wrote ? 1 : 0;
}

// ---- subscribe --------------------------------------------------------------------------------
// A fresh subscription (from the earliest offset) drains what the topic holds with --members
// consumer members, each acking every message individually (the client batches acks on the
// wire). The clock runs from joining until the broker has confirmed (made durable) the last ack.
// With --ordered, per-key order is checked: a key's messages must arrive in offset order (within
// its partition) unless one was redelivered.

struct member_slot {
  std::unique_ptr<fc::consumer> consumer;
  alignas(64) std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> redelivered{0};
  std::atomic<uint64_t> confirmed{0};
  std::atomic<uint64_t> failed{0};
  std::mutex error_mu;
  std::string first_error;
};

int run_subscribe(settings s) {
  auto admin = connect_admin(s);
  if (!admin) return report_error("connecting to " + s.bootstrap, admin.error());
  auto topic = ensure_topic(**admin, s, mode::subscribe);
  if (!topic) return report_error("topic", topic.error());
  uint64_t available = 0;
  for (const auto& ps : topic->states) available += static_cast<uint64_t>(ps.high_watermark - ps.log_start_offset);
  if (available == 0) {
    std::fprintf(stderr, "error: topic '%s' is empty: produce first (ferry-bench produce --topic %s)\n",
                 s.topic.c_str(), s.topic.c_str());
    return 1;
  }
  if (s.subscription.empty()) s.subscription = "bench-" + std::to_string(::getpid());
  fc::subscription_config sc;
  sc.start = fc::start_position::earliest;
  sc.ordered = s.ordered;
  sc.max_deliveries = 0;
  sc.ack_timeout = std::chrono::seconds(60);
  auto created = (*admin)->create_subscription(s.topic, s.subscription, sc);
  if (!created) return report_error("creating subscription " + s.subscription, created.error());
  // The target: every message stored (control records of other subscriptions are not messages;
  // the topic must not have had subscriptions acking on it, or the count is an upper bound).
  uint64_t target = s.messages_given ? static_cast<uint64_t>(s.messages) : available;
  print_header(mode::subscribe, s, *topic);
  std::fflush(stdout);

  std::vector<std::unique_ptr<member_slot>> members;
  for (int i = 0; i < s.members; ++i) {
    fc::consumer_options co;
    co.bootstrap = s.bootstrap;
    co.member_name = "bench-" + std::to_string(i);
    co.credit_messages = s.credit;
    auto c = fc::consumer::create(co, s.topic, s.subscription);
    if (!c) return report_error("joining " + s.subscription, c.error());
    auto slot = std::make_unique<member_slot>();
    slot->consumer = std::move(*c);
    members.push_back(std::move(slot));
  }
  const auto start = steady::now();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> total_received{0}, total_confirmed{0};
  std::atomic<int64_t> last_progress_ns{0};
  std::mutex order_mu;
  std::map<std::pair<int32_t, std::string>, int64_t> last_offset_of_key;
  std::atomic<uint64_t> order_violations{0};
  std::vector<std::thread> threads;
  threads.reserve(members.size());
  for (auto& m : members) {
    threads.emplace_back([&, slot = m.get()] {
      while (!stop.load(std::memory_order_relaxed)) {
        auto got = slot->consumer->poll(milliseconds(100), 4096);
        if (!got) {
          std::lock_guard lk(slot->error_mu);
          if (slot->first_error.empty()) slot->first_error = got.error().to_string();
          continue;
        }
        if (got->empty()) continue;
        last_progress_ns.store(ns_since(start, steady::now()), std::memory_order_relaxed);
        if (s.ordered) {
          std::lock_guard lk(order_mu);
          for (auto& d : *got) {
            if (!d.key || d.delivery_count > 1) continue;
            auto [it, fresh] = last_offset_of_key.try_emplace({d.partition, *d.key}, d.offset);
            if (!fresh) {
              if (d.offset < it->second) order_violations.fetch_add(1, std::memory_order_relaxed);
              it->second = d.offset;
            }
          }
        }
        for (auto& d : *got) {
          if (d.delivery_count > 1) slot->redelivered.fetch_add(1, std::memory_order_relaxed);
          slot->consumer->ack(d, [slot, &total_confirmed](const result<void>& r) {
            if (r) {
              slot->confirmed.fetch_add(1, std::memory_order_relaxed);
              total_confirmed.fetch_add(1, std::memory_order_relaxed);
            } else {
              slot->failed.fetch_add(1, std::memory_order_relaxed);
              std::lock_guard lk(slot->error_mu);
              if (slot->first_error.empty()) slot->first_error = r.error().to_string();
            }
          });
        }
        slot->received.fetch_add(got->size(), std::memory_order_relaxed);
        total_received.fetch_add(got->size(), std::memory_order_relaxed);
      }
    });
  }
  bool idle = false;
  steady::time_point end;
  {
    progress_printer progress("subscribe", [&] { return total_confirmed.load(std::memory_order_relaxed); });
    while (total_confirmed.load() < target) {
      std::this_thread::sleep_for(milliseconds(2));
      if (ns_since(start, steady::now()) - last_progress_ns.load() > int64_t{s.idle_timeout_s} * 1'000'000'000) {
        idle = true;
        break;
      }
    }
    end = steady::now();
  }
  stop = true;
  for (auto& t : threads) t.join();
  for (auto& m : members) m->consumer->close();
  const double seconds = static_cast<double>(ns_since(start, end)) / 1e9;
  uint64_t redelivered = 0, failed = 0;
  std::string first_error;
  for (auto& m : members) {
    redelivered += m->redelivered.load();
    failed += m->failed.load();
    if (first_error.empty()) first_error = m->first_error;
  }
  const uint64_t confirmed = total_confirmed.load();
  std::printf("  %-28s %" PRIu64 "\n", "messages acked (durable)", confirmed);
  std::printf("  %-28s %" PRIu64 "\n", "messages received", total_received.load());
  std::printf("  %-28s %.3f\n", "seconds", seconds);
  std::printf("  %-28s %.0f\n", "messages/s (acked)", static_cast<double>(confirmed) / seconds);
  for (size_t i = 0; i < members.size(); ++i)
    std::printf("  %-28s %" PRIu64 "\n", ("member " + std::to_string(i) + " received").c_str(),
                members[i]->received.load());
  std::printf("  %-28s %" PRIu64 "\n", "redelivered", redelivered);
  if (s.ordered) std::printf("  %-28s %" PRIu64 "\n", "key order violations", order_violations.load());
  if (failed) std::printf("  %-28s %" PRIu64 " (first: %s)\n", "FAILED acks", failed, first_error.c_str());
  if (idle)
    std::printf("  STOPPED: no message for %ds with %" PRIu64 " of %" PRIu64 " acked\n", s.idle_timeout_s, confirmed,
                target);
  (void)(*admin)->delete_subscription(s.topic, s.subscription);
  json_object j;
  j.str("mode", "subscribe")
      .num("messages", static_cast<int64_t>(confirmed))
      .num("seconds", seconds)
      .num("msgs_per_sec", static_cast<double>(confirmed) / seconds)
      .num("received", static_cast<int64_t>(total_received.load()))
      .num("redelivered", static_cast<int64_t>(redelivered))
      .num("order_violations", static_cast<int64_t>(order_violations.load()))
      .num("errors", static_cast<int64_t>(failed))
      .str("first_error", first_error)
      .obj("settings", settings_json(s, mode::subscribe, *topic));
  const bool wrote = write_json(s, j);
  return idle || failed || order_violations.load() || !wrote ? 1 : 0;
}

// ---- delayed ----------------------------------------------------------------------------------
// Publishes --messages delayed messages whose due times lie in [start + --delay-min, + --spread)
// (absolute deliver_at, spread pseudo-randomly). Reports how fast they were scheduled (published
// and durable). With --consume, a subscription made before publishing receives them with
// --members consumers acking each, and the run reports lateness = receive time - due time on the
// wall clock (broker and load generator share the machine and its clock; a negative lateness is
// an early delivery and fails the run). With --broker-pid, the broker's resident memory is sampled
// every 200 ms while publishing and for --settle seconds after.

int run_delayed(settings s) {
  s.delayed = true;
  auto admin = connect_admin(s);
  if (!admin) return report_error("connecting to " + s.bootstrap, admin.error());
  auto topic = ensure_topic(**admin, s, mode::delayed);
  if (!topic) return report_error("topic", topic.error());
  std::string sub = "bench-delayed-" + std::to_string(::getpid());
  std::vector<std::unique_ptr<fc::consumer>> consumers;
  if (s.consume_delayed) {
    fc::subscription_config sc;
    sc.start = fc::start_position::latest;
    sc.ordered = false;
    sc.max_deliveries = 0;
    auto created = (*admin)->create_subscription(s.topic, sub, sc);
    if (!created) return report_error("creating subscription " + sub, created.error());
    for (int i = 0; i < s.delay_members; ++i) {
      fc::consumer_options co;
      co.bootstrap = s.bootstrap;
      co.credit_messages = 5000;
      auto c = fc::consumer::create(co, s.topic, sub);
      if (!c) return report_error("joining " + sub, c.error());
      consumers.push_back(std::move(*c));
    }
  }
  auto slots = make_producers(s, *topic);
  if (!slots) return report_error("producer", slots.error());
  print_header(mode::delayed, s, *topic);
  std::fflush(stdout);

  std::atomic<bool> stop{false};
  std::atomic<double> rss_max{-1};
  std::thread sampler([&] {
    while (!stop.load()) {
      double r = rss_mib(s.broker_pid);
      double cur = rss_max.load();
      if (r > cur) rss_max.store(r);
      std::this_thread::sleep_for(milliseconds(200));
    }
  });
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> early{0};
  std::vector<histogram> lateness(consumers.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < consumers.size(); ++i) {
    threads.emplace_back([&, i] {
      auto& c = *consumers[i];
      while (!stop.load(std::memory_order_relaxed)) {
        auto got = c.poll(milliseconds(50), 4096);
        if (!got) continue;
        double now_us = wall_now_us();
        for (auto& d : *got) {
          c.ack(d);
          if (!d.deliver_at_ms) continue;  // the untimed warm-up messages
          double late_us = now_us - static_cast<double>(*d.deliver_at_ms) * 1000.0;
          if (late_us < 0) early.fetch_add(1, std::memory_order_relaxed);
          lateness[i].record(static_cast<uint64_t>(std::max(0.0, late_us) * 1000.0));
          received.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  s.delay_base_ms = wall_now_ms();
  produce_result pr = run_producers(*slots, s, /*stamp=*/false);
  for (auto& slot : *slots) slot->producer->close();
  const double rss_publish = rss_max.load();
  const int64_t last_due = s.delay_base_ms + s.delay_min_ms + s.delay_spread_ms;
  bool idle = false;
  if (s.consume_delayed) {
    progress_printer progress("delayed/received", [&] { return received.load(std::memory_order_relaxed); });
    while (received.load() < pr.acked) {
      std::this_thread::sleep_for(milliseconds(20));
      if (wall_now_ms() > last_due + int64_t{s.idle_timeout_s} * 1000) {
        idle = true;
        break;
      }
    }
  } else if (s.broker_pid > 0) {
    std::this_thread::sleep_for(std::chrono::seconds(s.settle_s));
  }
  stop = true;
  for (auto& t : threads) t.join();
  sampler.join();
  for (auto& c : consumers) c->close();
  if (s.consume_delayed) (void)(*admin)->delete_subscription(s.topic, sub);
  histogram all;
  for (auto& h : lateness) all.merge(h);
  const auto late = summarize(all);
  std::printf("  %-28s %" PRIu64 "\n", "delayed messages scheduled", pr.acked);
  std::printf("  %-28s %.3f\n", "seconds", pr.seconds);
  std::printf("  %-28s %.0f\n", "scheduled/s (durable)", static_cast<double>(pr.acked) / pr.seconds);
  if (s.consume_delayed) {
    std::printf("  %-28s %" PRIu64 "\n", "received", received.load());
    print_latency("lateness after due (ms)", late);
    std::printf("  %-28s %" PRIu64 "\n", "early deliveries", early.load());
    std::printf("  %-28s %s\n", "latency precision",
                (histogram::precision_text() + "; due times are whole ms").c_str());
  }
  if (s.broker_pid > 0) {
    std::printf("  %-28s %.1f (while publishing) / %.1f (max, incl. %ds after)\n", "broker RSS MiB", rss_publish,
                rss_max.load(), s.consume_delayed ? 0 : s.settle_s);
  }
  if (pr.failed) std::printf("  %-28s %" PRIu64 " (first: %s)\n", "FAILED messages", pr.failed, pr.first_error.c_str());
  if (idle)
    std::printf("  STOPPED: %" PRIu64 " of %" PRIu64 " received %ds after the last due time\n", received.load(),
                pr.acked, s.idle_timeout_s);
  json_object j;
  j.str("mode", "delayed")
      .num("messages", static_cast<int64_t>(pr.acked))
      .num("seconds", pr.seconds)
      .num("msgs_per_sec", static_cast<double>(pr.acked) / pr.seconds)
      .num("received", static_cast<int64_t>(received.load()))
      .num("early", static_cast<int64_t>(early.load()))
      .num("rss_max_mib", rss_max.load())
      .num("rss_publish_mib", rss_publish);
  if (s.consume_delayed) add_latency(j, "lateness", late);
  j.num("errors", static_cast<int64_t>(pr.failed))
      .str("first_error", pr.first_error)
      .obj("settings", settings_json(s, mode::delayed, *topic));
  const bool wrote = write_json(s, j);
  return pr.failed || idle || early.load() || !wrote ? 1 : 0;
}

// ---- command line -----------------------------------------------------------------------------

void add_common(CLI::App* cmd, settings& s) {
  cmd->add_option("--bootstrap", s.bootstrap, "broker host:port (default: $FERRY_BOOTSTRAP or 127.0.0.1:7070)");
  cmd->add_option("--topic", s.topic, "topic name")->capture_default_str();
  cmd->add_flag("--create-topic", s.create_topic, "create the topic (it is also created when missing)");
  cmd->add_option("--partitions", s.partitions, "partitions of a created topic")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--json", s.json_file, "also write the result as one JSON object to FILE");
  cmd->add_option("--idle-timeout", s.idle_timeout_s, "readers give up after this many seconds without a message")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
}

void add_producing(CLI::App* cmd, settings& s) {
  cmd->add_option("--size", s.size, "value size in bytes")->capture_default_str()->check(CLI::Range(0, 64 << 20));
  cmd->add_option("--producers", s.producers, "producer objects, one sending thread each")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--batch-bytes", s.batch_bytes, "producer batch size per partition")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--linger-ms", s.linger_ms, "producer linger")->capture_default_str()->check(CLI::Range(0, 60000));
  cmd->add_option("--max-in-flight", s.max_in_flight, "unanswered batches per partition")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--rate", s.rate, "messages/s over all producers, paced open-loop (0 = unlimited)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e12));
  cmd->add_option("--keys", s.keys, "distinct keys, message i has key i mod N (0 = keyless, spread)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
}

}  // namespace
}  // namespace ferry::bench

int checked_main(int argc, char** argv) {
  using namespace ferry::bench;
  settings s;
  CLI::App app{"ferry-bench: Ferry's load generator (produce, consume, end-to-end, subscribe, delayed)"};
  app.require_subcommand(1);

  auto* produce = app.add_subcommand("produce", "publish --messages and measure throughput and publish-to-ack latency");
  add_common(produce, s);
  add_producing(produce, s);
  produce->add_option("--messages", s.messages, "messages to publish, over all producers")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));

  auto* consume = app.add_subcommand("consume", "read --messages from the earliest offset of every partition");
  add_common(consume, s);
  consume->add_option("--messages", s.messages, "messages to read over all partitions (default: all stored)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  consume->add_option("--fetch-bytes", s.fetch_bytes, "max bytes per poll")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));

  auto* e2e = app.add_subcommand("e2e", "publish at --rate while reading, measure end-to-end latency");
  add_common(e2e, s);
  add_producing(e2e, s);
  e2e->add_option("--messages", s.messages, "messages to publish, over all producers")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));

  auto* subscribe = app.add_subcommand(
      "subscribe", "drain the topic with a new subscription: --members consumers acking every message");
  add_common(subscribe, s);
  subscribe->add_option("--messages", s.messages, "messages to ack (default: all stored)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  subscribe->add_option("--members", s.members, "consumer members, one thread each")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  subscribe->add_flag("--ordered", s.ordered, "ordered keys (and check per-key order)");
  subscribe->add_option("--credit", s.credit, "messages each member may have outstanding")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  subscribe->add_option("--subscription", s.subscription, "subscription name (default: bench-<pid>, deleted after)");

  auto* delayed = app.add_subcommand(
      "delayed", "publish delayed messages due over --spread; scheduling rate, lateness (--consume), broker memory");
  add_common(delayed, s);
  add_producing(delayed, s);
  delayed->add_option("--messages", s.messages, "delayed messages to publish")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  delayed->add_option("--delay-min-ms", s.delay_min_ms, "earliest due time, ms after the start")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  delayed->add_option("--spread-ms", s.delay_spread_ms, "due times spread over this many ms")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  delayed->add_flag("--consume", s.consume_delayed, "receive them with a subscription and measure lateness");
  delayed->add_option("--members", s.delay_members, "consumers with --consume")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  delayed->add_option("--broker-pid", s.broker_pid, "sample this process's resident memory (the broker's)");
  delayed->add_option("--settle", s.settle_s, "seconds to keep sampling memory after publishing (without --consume)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (s.bootstrap.empty()) s.bootstrap = ferry::client::default_bootstrap();
  s.messages_given = consume->count("--messages") > 0 || subscribe->count("--messages") > 0;

  try {
    if (produce->parsed()) return run_produce(s);
    if (consume->parsed()) return run_consume(s);
    if (subscribe->parsed()) return run_subscribe(s);
    if (delayed->parsed()) return run_delayed(s);
    return run_e2e(s);
  } catch (const std::exception& e) {
    // The client returns errors as values; anything thrown here is unexpected.
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

int main(int argc, char** argv) { return ferry::guarded_main("ferry-bench", checked_main, argc, argv); }
