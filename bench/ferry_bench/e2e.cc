// ferry-bench e2e: publishes at --rate while reading every partition in the same process;
// end-to-end latency (send -> read) from a timestamp header, and publish-to-ack latency.
#include <cinttypes>
#include <cstdio>
#include <thread>

#include "bench/ferry_bench/producing.h"
#include "bench/ferry_bench/reading.h"

namespace ferry::bench {

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
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
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

  json j;
  j["mode"] = "e2e";
  j["messages"] = pr.acked;
  j["bytes"] = bytes;
  j["seconds"] = pr.seconds;
  j["msgs_per_sec"] = static_cast<double>(pr.acked) / pr.seconds;
  j["mb_per_sec"] = static_cast<double>(bytes) / pr.seconds / 1e6;
  j["read_back"] = e2e.count();
  add_latency(j, "latency", ack);
  add_latency(j, "e2e_latency", end_to_end);
  j["latency_precision"] = histogram::precision_text();
  j["errors"] = pr.failed;
  j["first_error"] = ctl::json_text(first_error);
  j["settings"] = settings_json(s, mode::e2e, *topic);
  const bool wrote = write_json(s, j);
  return pr.failed || idle || e2e.count() < expected || !first_error.empty() || !wrote ? 1 : 0;
}

}  // namespace ferry::bench
