#include "broker/partition/producer_state.h"

#include <algorithm>

namespace ferry::partition {

producer_state::check_result producer_state::check(const wire::batch_header& h) const {
  check_result r;
  if (h.producer_id < 0) return r;
  auto it = producers_.find(h.producer_id);
  if (it == producers_.end() || it->second.recent.empty()) return r;
  const auto& recent = it->second.recent;
  r.expected = wire::increment_sequence(recent.back().last_seq, 1);
  if (h.base_sequence == r.expected) return r;
  for (const auto& b : recent) {
    if (b.first_seq == h.base_sequence && b.last_seq == h.last_sequence()) {
      r.v = verdict::duplicate;
      r.original = b;
      return r;
    }
  }
  // Behind the expected sequence (by less than half the circle): an old batch, not a gap.
  int64_t behind = wire::sequence_distance(h.base_sequence, r.expected);
  bool old = h.base_sequence < 0 || (behind > 0 && behind < (int64_t{1} << 30));
  r.v = old ? verdict::too_old : verdict::out_of_order;
  return r;
}

void producer_state::remember(const wire::batch_header& h) {
  if (h.producer_id < 0) return;
  auto& e = producers_[h.producer_id];
  if (e.recent.size() >= lim_.window) e.recent.erase(e.recent.begin());
  e.recent.push_back(batch{h.base_sequence, h.last_sequence(), h.base_offset, h.append_time});
  e.last_append = std::max(e.last_append, h.append_time);
  // Bounded between the periodic expiries too: over the limit by a tenth, make room now.
  if (producers_.size() > lim_.max_producers + lim_.max_producers / 10) expire(h.append_time);
}

size_t producer_state::expire(int64_t now_ms) {
  size_t before = producers_.size();
  int64_t cutoff = now_ms - lim_.expiry_ms;
  std::erase_if(producers_, [cutoff](const auto& kv) { return kv.second.last_append < cutoff; });
  if (producers_.size() > lim_.max_producers) {
    // Keep the most recently active 90% of the limit, so this does not run on every new producer.
    size_t keep = lim_.max_producers - lim_.max_producers / 10;
    std::vector<int64_t> times;
    times.reserve(producers_.size());
    for (const auto& [id, e] : producers_) times.push_back(e.last_append);
    auto nth = times.begin() + static_cast<std::ptrdiff_t>(times.size() - keep);
    std::nth_element(times.begin(), nth, times.end());
    int64_t oldest_kept = *nth;
    size_t over = producers_.size() - keep;
    for (auto it = producers_.begin(); it != producers_.end() && over > 0;) {
      if (it->second.last_append < oldest_kept) {
        it = producers_.erase(it);
        --over;
      } else {
        ++it;
      }
    }
    // Ties at oldest_kept: drop some of them too, until at `keep`.
    for (auto it = producers_.begin(); it != producers_.end() && over > 0;) {
      if (it->second.last_append == oldest_kept) {
        it = producers_.erase(it);
        --over;
      } else {
        ++it;
      }
    }
  }
  return before - producers_.size();
}

}  // namespace ferry::partition
