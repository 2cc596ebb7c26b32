// The metrics registry: which series exist (families by name, series by labels), which cells each
// one owns, the threads' slots of cells, and the prometheus::Collectable that turns them into
// MetricFamily values at scrape time. One mutex guards all of it; the update path never takes it
// (metrics.h: a thread writes only its own slot).
#include "broker/runtime/metrics.h"

#include <prometheus/check_names.h>
#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "broker/base/assert.h"

namespace ferry::metrics {
namespace detail {

enum class kind : uint8_t { counter, gauge, value_gauge, histogram };

struct series {
  labels lbls;
  std::string key;  // lbls, encoded (the family's map key)
  std::string family;
  uint32_t first_cell = 0;
  uint32_t cell_count = 0;  // 0: a value_gauge (no cells)
  uint64_t holders = 0;     // series_sets holding it
  bool permanent = false;   // asked for by get_*(): never removed
  std::unique_ptr<counter> c;
  std::unique_ptr<gauge> g;
  std::unique_ptr<value_gauge> v;
  std::unique_ptr<histogram> h;
};

struct family {
  std::string help;
  kind k = kind::counter;
  std::map<std::string, std::unique_ptr<series>> all;  // by key: the exposition order
};

namespace {

std::string key_of(const labels& l) {
  std::string k;
  for (const auto& [name, value] : l) {
    k += std::to_string(name.size());
    k += ':';
    k += name;
    k += std::to_string(value.size());
    k += ':';
    k += value;
  }
  return k;
}

prometheus::MetricType type_of(kind k) {
  switch (k) {
    case kind::counter:
      return prometheus::MetricType::Counter;
    case kind::gauge:
    case kind::value_gauge:
      return prometheus::MetricType::Gauge;
    case kind::histogram:
      return prometheus::MetricType::Histogram;
  }
  return prometheus::MetricType::Untyped;
}

// Gives a thread's slot back to the pool when the thread exits (its values stay in it).
struct slot_releaser {
  slot_releaser() noexcept = default;
  slot_releaser(const slot_releaser&) = delete;
  slot_releaser& operator=(const slot_releaser&) = delete;
  ~slot_releaser();
  bool armed = false;
};

}  // namespace

class registry final : public prometheus::Collectable {
 public:
  static registry& get() {
    // Never destroyed: threads (and their slot_releasers) may outlive static destruction.
    static auto* r = new registry;
    return *r;
  }

  slot* acquire_slot() {
    std::lock_guard lk(mu_);
    if (!free_slots_.empty()) {
      slot* s = free_slots_.back();
      free_slots_.pop_back();
      return s;
    }
    slots_.push_back(std::make_unique<slot>());
    return slots_.back().get();
  }

  void release_slot(slot* s) {
    std::lock_guard lk(mu_);
    free_slots_.push_back(s);
  }

  uint64_t sum(uint32_t id) const {
    std::lock_guard lk(mu_);
    return sum_locked(id);
  }

  series* find_or_add(std::string_view name, std::string_view help, kind k, labels l, bool permanent) {
    FERRY_ASSERT(prometheus::CheckMetricName(std::string(name)), "metrics: invalid metric name");
    for ([[maybe_unused]] const auto& lb : l)
      FERRY_ASSERT(prometheus::CheckLabelName(lb.name) && lb.name != "le", "metrics: invalid label name");
    std::lock_guard lk(mu_);
    auto fit = families_.find(name);
    if (fit == families_.end()) {
      fit = families_.emplace(std::string(name), family{}).first;
      fit->second.help = std::string(help);
      fit->second.k = k;
    }
    family& f = fit->second;
    FERRY_ASSERT(f.k == k, "metrics: one name registered as two types");
    std::string key = key_of(l);
    auto sit = f.all.find(key);
    if (sit == f.all.end()) {
      auto s = std::make_unique<series>();
      s->lbls = std::move(l);
      s->key = key;
      s->family = fit->first;
      switch (k) {
        case kind::counter:
          s->cell_count = 1;
          s->first_cell = alloc_cells(1);
          s->c.reset(new counter(s->first_cell));
          break;
        case kind::gauge:
          s->cell_count = 1;
          s->first_cell = alloc_cells(1);
          s->g.reset(new gauge(s->first_cell));
          break;
        case kind::value_gauge:
          s->v = std::make_unique<value_gauge>();
          break;
        case kind::histogram:
          s->cell_count = histogram::cell_count;
          s->first_cell = alloc_cells(histogram::cell_count);
          s->h.reset(new histogram(s->first_cell));
          break;
      }
      sit = f.all.emplace(std::move(key), std::move(s)).first;
    }
    series* s = sit->second.get();
    if (permanent)
      s->permanent = true;
    else
      ++s->holders;
    return s;
  }

  void release(series* s) {
    std::lock_guard lk(mu_);
    FERRY_ASSERT(s->holders > 0, "metrics: series released more often than held");
    if (--s->holders > 0 || s->permanent) return;
    auto fit = families_.find(s->family);
    FERRY_ASSERT(fit != families_.end(), "metrics: series of an unknown family");
    if (s->cell_count > 0) free_cells(s->first_cell, s->cell_count);
    fit->second.all.erase(s->key);  // destroys *s
    if (fit->second.all.empty()) families_.erase(fit);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard lk(mu_);
    std::vector<prometheus::MetricFamily> out;
    out.reserve(families_.size());
    for (const auto& [name, f] : families_) {
      prometheus::MetricFamily mf;
      mf.name = name;
      mf.help = f.help;
      mf.type = type_of(f.k);
      mf.metric.reserve(f.all.size());
      for (const auto& [key, s] : f.all) {
        prometheus::ClientMetric m;
        m.label.reserve(s->lbls.size());
        for (const auto& [ln, lv] : s->lbls) m.label.push_back({ln, lv});
        switch (f.k) {
          case kind::counter:
            m.counter.value = static_cast<double>(sum_locked(s->first_cell));
            break;
          case kind::gauge:
            m.gauge.value = static_cast<double>(static_cast<int64_t>(sum_locked(s->first_cell)));
            break;
          case kind::value_gauge:
            m.gauge.value = static_cast<double>(s->v->value());
            break;
          case kind::histogram:
            fill_histogram(*s, m.histogram);
            break;
        }
        mf.metric.push_back(std::move(m));
      }
      out.push_back(std::move(mf));
    }
    return out;
  }

 private:
  registry() = default;

  uint64_t sum_locked(uint32_t id) const {
    uint64_t total = 0;
    for (const auto& s : slots_) {
      const cell* chunk = s->chunks[id >> chunk_bits].load(std::memory_order_acquire);
      if (chunk != nullptr) total += chunk[id & (chunk_cells - 1)].load(std::memory_order_relaxed);
    }
    return total;
  }

  // Cumulative buckets at 2^i us (in seconds), then +Inf; count and sum from the same reads.
  void fill_histogram(const series& s, prometheus::ClientMetric::Histogram& out) const {
    uint64_t cumulative = 0;
    out.bucket.reserve(histogram::buckets + 1);
    for (uint32_t i = 0; i < histogram::buckets; ++i) {
      cumulative += sum_locked(s.first_cell + i);
      out.bucket.push_back({cumulative, static_cast<double>(uint64_t{1} << i) / 1e6});
    }
    cumulative += sum_locked(s.first_cell + histogram::buckets);
    out.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    out.sample_count = cumulative;
    out.sample_sum = static_cast<double>(sum_locked(s.first_cell + histogram::buckets + 1)) / 1e6;
  }

  // `n` cells in one chunk: reused ones of the same size first (zeroed when freed).
  uint32_t alloc_cells(uint32_t n) {
    auto& reuse = free_cells_[n];
    if (!reuse.empty()) {
      uint32_t id = reuse.back();
      reuse.pop_back();
      return id;
    }
    if ((next_cell_ & (chunk_cells - 1)) + n > chunk_cells) next_cell_ = (next_cell_ | (chunk_cells - 1)) + 1;
    FERRY_ASSERT(next_cell_ / chunk_cells < max_chunks, "metrics: out of cells (16 M series cells in use)");
    uint32_t id = next_cell_;
    next_cell_ += n;
    return id;
  }

  // The series is gone: nobody writes its cells any more (its holders are destroyed, and that
  // happened before this under the mutex), so zeroing them here cannot lose an update, and the
  // next series given these cells starts at zero.
  void free_cells(uint32_t id, uint32_t n) {
    for (const auto& s : slots_) {
      cell* chunk = s->chunks[id >> chunk_bits].load(std::memory_order_acquire);
      if (chunk == nullptr) continue;
      for (uint32_t i = 0; i < n; ++i) chunk[(id & (chunk_cells - 1)) + i].store(0, std::memory_order_relaxed);
    }
    free_cells_[n].push_back(id);
  }

  mutable std::mutex mu_;
  std::map<std::string, family, std::less<>> families_;
  std::vector<std::unique_ptr<slot>> slots_;  // every slot ever made (never freed)
  std::vector<slot*> free_slots_;             // of threads that exited
  uint32_t next_cell_ = 0;
  std::map<uint32_t, std::vector<uint32_t>> free_cells_;  // by run length
};

namespace {
slot_releaser::~slot_releaser() {
  if (armed && this_slot != nullptr) registry::get().release_slot(this_slot);
  this_slot = nullptr;
}
}  // namespace

cell* slot::grow(uint32_t chunk) {
  FERRY_ASSERT(chunk < max_chunks, "metrics: cell id out of range");
  auto* p = new cell[chunk_cells]();  // zeroed; never freed (the slot outlives its threads)
  chunks[chunk].store(p, std::memory_order_release);
  return p;
}

slot* acquire_slot() {
  // First update on this thread: its releaser gives the slot back when the thread exits.
  static thread_local slot_releaser releaser;
  slot* s = registry::get().acquire_slot();
  releaser.armed = true;
  this_slot = s;
  return s;
}

uint64_t sum(uint32_t id) noexcept { return registry::get().sum(id); }

}  // namespace detail

using detail::kind;
using detail::registry;

uint64_t histogram::count() const noexcept {
  uint64_t n = 0;
  for (int i = 0; i <= buckets; ++i) n += bucket(i);
  return n;
}

counter& get_counter(std::string_view name, std::string_view help, const labels& l) {
  return *registry::get().find_or_add(name, help, kind::counter, l, true)->c;
}
gauge& get_gauge(std::string_view name, std::string_view help, const labels& l) {
  return *registry::get().find_or_add(name, help, kind::gauge, l, true)->g;
}
value_gauge& get_value_gauge(std::string_view name, std::string_view help, const labels& l) {
  return *registry::get().find_or_add(name, help, kind::value_gauge, l, true)->v;
}
histogram& get_histogram(std::string_view name, std::string_view help, const labels& l) {
  return *registry::get().find_or_add(name, help, kind::histogram, l, true)->h;
}

series_set::series_set(labels common) : common_(std::move(common)) {}

series_set::~series_set() {
  for (auto* s : held_) registry::get().release(s);
}

labels series_set::with(const labels& extra) const {
  labels all = common_;
  all.insert(all.end(), extra.begin(), extra.end());
  return all;
}

counter& series_set::get_counter(std::string_view name, std::string_view help, const labels& extra) {
  held_.push_back(registry::get().find_or_add(name, help, kind::counter, with(extra), false));
  return *held_.back()->c;
}
gauge& series_set::get_gauge(std::string_view name, std::string_view help, const labels& extra) {
  held_.push_back(registry::get().find_or_add(name, help, kind::gauge, with(extra), false));
  return *held_.back()->g;
}
value_gauge& series_set::get_value_gauge(std::string_view name, std::string_view help, const labels& extra) {
  held_.push_back(registry::get().find_or_add(name, help, kind::value_gauge, with(extra), false));
  return *held_.back()->v;
}
histogram& series_set::get_histogram(std::string_view name, std::string_view help, const labels& extra) {
  held_.push_back(registry::get().find_or_add(name, help, kind::histogram, with(extra), false));
  return *held_.back()->h;
}

std::string render_prometheus() { return prometheus::TextSerializer().Serialize(registry::get().Collect()); }

}  // namespace ferry::metrics
