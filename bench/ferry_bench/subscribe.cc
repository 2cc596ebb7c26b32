// ferry-bench subscribe: a fresh subscription (from the earliest offset) drains what the topic
// holds with --members consumer members, each acking every message individually (the client
// batches acks on the wire). The clock runs from joining until the broker has confirmed (made
// durable) the last ack. With --ordered, per-key order is checked: a key's messages must arrive in
// offset order (within its partition) unless one was redelivered.
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "bench/ferry_bench/report.h"

namespace ferry::bench {
namespace {

struct member_slot {
  std::unique_ptr<fc::consumer> consumer;
  alignas(64) std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> redelivered{0};
  std::atomic<uint64_t> confirmed{0};
  std::atomic<uint64_t> failed{0};
  std::mutex error_mu;
  std::string first_error;
};

}  // namespace

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
        auto got = slot->consumer->poll(std::chrono::milliseconds(100), 4096);
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
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
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
  json j;
  j["mode"] = "subscribe";
  j["messages"] = confirmed;
  j["seconds"] = seconds;
  j["msgs_per_sec"] = static_cast<double>(confirmed) / seconds;
  j["received"] = total_received.load();
  j["redelivered"] = redelivered;
  j["order_violations"] = order_violations.load();
  j["errors"] = failed;
  j["first_error"] = ctl::json_text(first_error);
  j["settings"] = settings_json(s, mode::subscribe, *topic);
  const bool wrote = write_json(s, j);
  return idle || failed || order_violations.load() || !wrote ? 1 : 0;
}

}  // namespace ferry::bench
