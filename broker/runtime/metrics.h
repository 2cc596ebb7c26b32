#pragma once
// Process-wide metrics: counters, gauges and histograms, exposed at the broker's HTTP /metrics in
// the Prometheus text format. The text is prometheus-cpp's (TextSerializer), built at scrape time
// by a prometheus::Collectable over this registry (metrics.cc); prometheus-cpp stays out of this
// header. Each subsystem keeps its handles in a small probe struct (broker/partition/probe.h,
// broker/subscription/probe.h, ...) instead of sprinkling lookups through its logic.
//
// Cost on the hot path: no shared atomic. Every thread that updates a metric (a shard thread, a
// disk or state pool thread, the HTTP thread, a test's thread) owns a slot of cells that only it
// writes, with a relaxed load and store: a plain add, no locked instruction, no cache line that
// another thread writes. A scrape sums the slots. When a thread exits its slot goes back to a
// pool with its values in it, and the next new thread continues in it: counters never go back.
//
// Lifetime. Series from get_counter() and its siblings live for the process: use them for series
// without labels, or labelled with something that lasts (an API, an error code, a listener).
// Series labelled with something that can go away (a topic, a partition, a subscription) belong
// to a series_set held by that thing; they leave /metrics when the last series_set holding them
// is destroyed, so topics created and deleted do not make /metrics grow.
//
// Threads. Every update (inc, add, observe_us, set) may be called on any thread; value() reads
// sum the slots (for tests and scrapes). get_*() and series_set take a mutex: call them at set-up,
// not per event.
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::metrics {

struct label {
  std::string name;
  std::string value;
};
// In the order they are written out; values are escaped by the serializer.
using labels = std::vector<label>;

namespace detail {

using cell = std::atomic<uint64_t>;
inline constexpr uint32_t chunk_bits = 12;
inline constexpr uint32_t chunk_cells = uint32_t{1} << chunk_bits;  // 32 KiB of cells
inline constexpr uint32_t max_chunks = 4096;                        // 16 M cells

// One thread's cells, in chunks allocated by that thread on first use. Slots are never freed.
struct slot {
  std::array<std::atomic<cell*>, max_chunks> chunks{};
  cell* grow(uint32_t chunk);  // the owner only
};

slot* acquire_slot();  // the calling thread's slot, taken from the pool on its first update
inline constinit thread_local slot* this_slot = nullptr;

// Cells [id, id + n) of one series lie in one chunk (the allocator never splits them).
inline cell* cells(uint32_t id) noexcept {
  slot* s = this_slot;
  if (s == nullptr) [[unlikely]]
    s = acquire_slot();
  uint32_t c = id >> chunk_bits;
  cell* chunk = s->chunks[c].load(std::memory_order_relaxed);  // written by this thread only
  if (chunk == nullptr) [[unlikely]]
    chunk = s->grow(c);
  return chunk + (id & (chunk_cells - 1));
}

// Only the owning thread writes its cell: load and store, not a read-modify-write. Scrapes read
// it with relaxed loads and may see a value a moment old, never a torn one.
inline void bump(cell& c, uint64_t n) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

uint64_t sum(uint32_t id) noexcept;  // cell `id` summed over every slot

class registry;
struct series;

}  // namespace detail

class counter {
 public:
  void inc(uint64_t n = 1) noexcept { detail::bump(*detail::cells(cell_), n); }
  uint64_t value() const noexcept { return detail::sum(cell_); }

  counter(const counter&) = delete;
  counter& operator=(const counter&) = delete;

 private:
  friend class detail::registry;
  explicit counter(uint32_t cell) : cell_(cell) {}
  uint32_t cell_;
};

// A value that goes up and down by deltas (connections open, bytes queued): each thread adds its
// deltas to its own cell; the value is their sum. A delta may be added on another thread than the
// one that added its opposite.
class gauge {
 public:
  void add(int64_t d) noexcept { detail::bump(*detail::cells(cell_), static_cast<uint64_t>(d)); }
  int64_t value() const noexcept { return static_cast<int64_t>(detail::sum(cell_)); }

  gauge(const gauge&) = delete;
  gauge& operator=(const gauge&) = delete;

 private:
  friend class detail::registry;
  explicit gauge(uint32_t cell) : cell_(cell) {}
  uint32_t cell_;
};

// A value set outright, rarely (a partition's problem flags): one atomic, not per thread.
class value_gauge {
 public:
  void set(int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

  value_gauge() = default;
  value_gauge(const value_gauge&) = delete;
  value_gauge& operator=(const value_gauge&) = delete;

 private:
  std::atomic<int64_t> v_{0};
};

// Microsecond values in buckets at powers of two: bucket i < 26 counts values below 2^i us (1 us
// .. ~34 s), bucket 26 the rest. Exported as a Prometheus histogram in seconds (le = 2^i / 1e6).
class histogram {
 public:
  static constexpr int buckets = 26;
  static constexpr uint32_t cell_count = buckets + 2;  // the buckets, the overflow bucket, the sum

  void observe_us(uint64_t us) noexcept {
    int i = us == 0 ? 0 : static_cast<int>(std::bit_width(us));  // bucket i holds values < 2^i us
    if (i > buckets) i = buckets;
    detail::cell* c = detail::cells(base_);
    detail::bump(c[i], 1);
    detail::bump(c[buckets + 1], us);
  }
  uint64_t count() const noexcept;
  uint64_t sum_us() const noexcept { return detail::sum(base_ + buckets + 1); }
  uint64_t bucket(int i) const noexcept { return detail::sum(base_ + static_cast<uint32_t>(i)); }

  histogram(const histogram&) = delete;
  histogram& operator=(const histogram&) = delete;

 private:
  friend class detail::registry;
  explicit histogram(uint32_t base) : base_(base) {}
  uint32_t base_;
};

// Series for the life of the process; the same name and labels give the same object. A name has
// one type and one help text (the first registration's).
counter& get_counter(std::string_view name, std::string_view help, const labels& l = {});
gauge& get_gauge(std::string_view name, std::string_view help, const labels& l = {});
value_gauge& get_value_gauge(std::string_view name, std::string_view help, const labels& l = {});
histogram& get_histogram(std::string_view name, std::string_view help, const labels& l = {});

// Series that belong to one object (a partition, a subscription): each carries the set's labels
// first, then its own. Shared, counted, with every other set that asks for the same name and
// labels (the dispatchers of one subscription on several partitions add to one series); a series
// leaves /metrics, and its cells are zeroed for reuse, when the last set holding it is destroyed.
// References returned stay valid while this set lives.
class series_set {
 public:
  explicit series_set(labels common);
  ~series_set();
  series_set(const series_set&) = delete;
  series_set& operator=(const series_set&) = delete;

  counter& get_counter(std::string_view name, std::string_view help, const labels& extra = {});
  gauge& get_gauge(std::string_view name, std::string_view help, const labels& extra = {});
  value_gauge& get_value_gauge(std::string_view name, std::string_view help, const labels& extra = {});
  histogram& get_histogram(std::string_view name, std::string_view help, const labels& extra = {});

 private:
  labels with(const labels& extra) const;
  labels common_;
  std::vector<detail::series*> held_;  // released in the destructor
};

// Every series, in the Prometheus text exposition format 0.0.4, by prometheus-cpp's
// TextSerializer. Any thread (the HTTP thread calls it).
std::string render_prometheus();

}  // namespace ferry::metrics
