// ferry-bench delayed: publishes --messages delayed messages whose due times lie in
// [start + --delay-min, + --spread) (absolute deliver_at, spread pseudo-randomly). Reports how fast
// they were scheduled (published and durable). With --consume, a subscription made before
// publishing receives them with --members consumers acking each, and the run reports lateness =
// receive time - due time on the wall clock (broker and load generator share the machine and its
// clock; a negative lateness is an early delivery and fails the run). With --broker-pid, the
// broker's resident memory is sampled every 200 ms while publishing and for --settle seconds after.
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <thread>

#include "bench/ferry_bench/producing.h"

namespace ferry::bench {

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
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
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
        auto got = c.poll(std::chrono::milliseconds(50), 4096);
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
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
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
  json j;
  j["mode"] = "delayed";
  j["messages"] = pr.acked;
  j["seconds"] = pr.seconds;
  j["msgs_per_sec"] = static_cast<double>(pr.acked) / pr.seconds;
  j["received"] = received.load();
  j["early"] = early.load();
  j["rss_max_mib"] = rss_max.load();
  j["rss_publish_mib"] = rss_publish;
  if (s.consume_delayed) add_latency(j, "lateness", late);
  j["errors"] = pr.failed;
  j["first_error"] = ctl::json_text(pr.first_error);
  j["settings"] = settings_json(s, mode::delayed, *topic);
  const bool wrote = write_json(s, j);
  return pr.failed || idle || early.load() || !wrote ? 1 : 0;
}

}  // namespace ferry::bench
