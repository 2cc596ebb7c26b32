// ferry-bench produce: P producers publish --messages values of --size bytes; throughput and the
// publish-to-ack latency of every message.
#include <cinttypes>
#include <cstdio>

#include "bench/ferry_bench/producing.h"

namespace ferry::bench {

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

  json j;
  j["mode"] = "produce";
  j["messages"] = r.acked;
  j["bytes"] = bytes;
  j["seconds"] = r.seconds;
  j["msgs_per_sec"] = static_cast<double>(r.acked) / r.seconds;
  j["mb_per_sec"] = static_cast<double>(bytes) / r.seconds / 1e6;
  add_latency(j, "latency", lat);
  j["latency_precision"] = histogram::precision_text();
  j["errors"] = r.failed;
  j["first_error"] = ctl::json_text(r.first_error);
  j["settings"] = settings_json(s, mode::produce, *topic);
  const bool wrote = write_json(s, j);
  return r.failed || !wrote ? 1 : 0;
}

}  // namespace ferry::bench
