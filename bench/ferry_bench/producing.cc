#include "bench/ferry_bench/producing.h"

#include <algorithm>
#include <future>
#include <latch>
#include <optional>
#include <random>
#include <thread>

namespace ferry::bench {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

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

// The sending loop of one producer thread; see main.cc for the pacing rule.
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

}  // namespace

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

produce_result run_producers(std::vector<std::unique_ptr<producer_slot>>& slots, const settings& s, bool stamp,
                             steady::time_point* start_out) {
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

}  // namespace ferry::bench
