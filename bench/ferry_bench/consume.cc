// ferry-bench consume: one reader per partition reads --messages (default: everything stored)
// from the earliest offset; throughput.
#include <cinttypes>
#include <cstdio>
#include <thread>

#include "bench/ferry_bench/reading.h"

namespace ferry::bench {

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
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
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
  json j;
  j["mode"] = "consume";
  j["messages"] = messages;
  j["bytes"] = bytes;
  j["seconds"] = seconds;
  j["msgs_per_sec"] = static_cast<double>(messages) / seconds;
  j["mb_per_sec"] = static_cast<double>(bytes) / seconds / 1e6;
  j["complete"] = !idle && messages >= target;
  j["first_error"] = ctl::json_text(first_error);
  j["settings"] = settings_json(s, mode::consume, *topic);
  const bool wrote = write_json(s, j);
  return idle || !first_error.empty() || !wrote ? 1 : 0;
}

}  // namespace ferry::bench
