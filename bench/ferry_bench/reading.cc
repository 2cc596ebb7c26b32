#include "bench/ferry_bench/reading.h"

#include <algorithm>

#include "bench/ferry_bench/producing.h"

namespace ferry::bench {
namespace {

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

}  // namespace

void read_loop(reader_slot& slot, read_state& st, const settings& s, bool e2e, uint64_t target) {
  struct on_exit {
    read_state& st;
    ~on_exit() { st.running.fetch_sub(1); }
  } exit_guard{st};
  while (!st.stop.load(std::memory_order_relaxed)) {
    auto batch = slot.reader->poll(std::chrono::milliseconds(100), s.fetch_bytes);
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

}  // namespace ferry::bench
