#include "broker/runtime/metrics.h"

#include <bit>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <string_view>
#include <tuple>
#include <variant>

namespace ferry::metrics {

void histogram::observe_us(uint64_t us) noexcept {
  int i = us == 0 ? 0 : std::bit_width(us);  // bucket i holds values < 2^i us
  if (i > buckets) i = buckets;
  b_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(us, std::memory_order_relaxed);
}

namespace {
struct entry {
  std::string help;
  std::string type;
  std::map<std::string, std::variant<std::unique_ptr<counter>, std::unique_ptr<gauge>, std::unique_ptr<histogram>>>
      series;
};
std::mutex mu;
std::map<std::string, entry>& registry() {
  static std::map<std::string, entry> r;
  return r;
}

template <class T>
T& get(const std::string& name, const std::string& help, const std::string& labels, const char* type) {
  std::lock_guard lk(mu);
  auto& e = registry()[name];
  if (e.type.empty()) {
    e.help = help;
    e.type = type;
  }
  auto it = e.series.find(labels);
  if (it == e.series.end()) it = e.series.emplace(labels, std::make_unique<T>()).first;
  return *std::get<std::unique_ptr<T>>(it->second);
}

std::string braces(const std::string& labels, const std::string& extra = "") {
  std::string all = labels;
  if (!extra.empty()) all += (all.empty() ? "" : ",") + extra;
  return all.empty() ? "" : "{" + all + "}";
}
}  // namespace

counter& get_counter(const std::string& n, const std::string& h, const std::string& l) {
  return get<counter>(n, h, l, "counter");
}
gauge& get_gauge(const std::string& n, const std::string& h, const std::string& l) {
  return get<gauge>(n, h, l, "gauge");
}
histogram& get_histogram(const std::string& n, const std::string& h, const std::string& l) {
  return get<histogram>(n, h, l, "histogram");
}

std::string render_prometheus() {
  std::lock_guard lk(mu);
  std::string out;
  // One sample line: name+suffix{labels} value
  auto sample = [&out](const std::string& name, std::string_view suffix, const std::string& labels,
                       std::string_view value) {
    out += name;
    out += suffix;
    out += labels;
    out += ' ';
    out += value;
    out += '\n';
  };
  char buf[128];
  for (auto& [name, e] : registry()) {
    for (std::string_view part :
         std::initializer_list<std::string_view>{"# HELP ", name, " ", e.help, "\n# TYPE ", name, " ", e.type, "\n"})
      out += part;
    for (auto& [labels, s] : e.series) {
      if (auto* c = std::get_if<std::unique_ptr<counter>>(&s)) {
        sample(name, "", braces(labels), std::to_string((*c)->value()));
      } else if (auto* g = std::get_if<std::unique_ptr<gauge>>(&s)) {
        sample(name, "", braces(labels), std::to_string((*g)->value()));
      } else if (auto* hp = std::get_if<std::unique_ptr<histogram>>(&s)) {
        const histogram& h = **hp;
        uint64_t cum = 0;
        for (int i = 0; i <= histogram::buckets; ++i) {
          cum += h.bucket(i);
          if (i == histogram::buckets) break;
          std::snprintf(buf, sizeof buf, "le=\"%g\"", static_cast<double>(uint64_t{1} << i) / 1e6);
          sample(name, "_bucket", braces(labels, buf), std::to_string(cum));
        }
        sample(name, "_bucket", braces(labels, "le=\"+Inf\""), std::to_string(h.count()));
        std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(h.sum_us()) / 1e6);
        sample(name, "_sum", braces(labels), buf);
        sample(name, "_count", braces(labels), std::to_string(h.count()));
      }
    }
  }
  return out;
}

}  // namespace ferry::metrics
