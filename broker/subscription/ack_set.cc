#include "broker/subscription/ack_set.h"

#include <algorithm>
#include <iterator>

namespace ferry::subscription {

bool ack_set::contains(int64_t o) const {
  if (o < cursor_) return true;
  auto it = ranges_.upper_bound(o);
  if (it == ranges_.begin()) return false;
  --it;
  return o < it->second;
}

int64_t ack_set::add(int64_t from, int64_t to) {
  from = std::max(from, cursor_);
  if (from >= to) return 0;
  // Merge with every range that overlaps or touches [from, to).
  auto it = ranges_.upper_bound(from);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= from) it = prev;
  }
  int64_t added = to - from;
  int64_t lo = from, hi = to;
  while (it != ranges_.end() && it->first <= hi) {
    // Overlap of [it->first, it->second) with [from, to) was already acknowledged.
    int64_t ov = std::min(it->second, to) - std::max(it->first, from);
    if (ov > 0) added -= ov;
    lo = std::min(lo, it->first);
    hi = std::max(hi, it->second);
    above_ -= it->second - it->first;
    it = ranges_.erase(it);
  }
  ranges_.emplace(lo, hi);
  above_ += hi - lo;
  absorb();
  return added;
}

void ack_set::absorb() {
  auto it = ranges_.begin();
  if (it != ranges_.end() && it->first <= cursor_) {
    above_ -= it->second - it->first;
    cursor_ = std::max(cursor_, it->second);
    ranges_.erase(it);
  }
}

void ack_set::reset(int64_t cursor) {
  cursor_ = cursor;
  ranges_.clear();
  above_ = 0;
}

void ack_set::truncate_from(int64_t end) {
  if (cursor_ >= end) {
    reset(end);
    return;
  }
  while (!ranges_.empty()) {
    auto last = std::prev(ranges_.end());
    if (last->second <= end) break;
    if (last->first >= end) {
      above_ -= last->second - last->first;
      ranges_.erase(last);
    } else {
      above_ -= last->second - end;
      last->second = end;
      break;
    }
  }
}

int64_t ack_set::advance_to(int64_t to) {
  if (to <= cursor_) return 0;
  int64_t unacked = (to - cursor_) - acked_in(cursor_, to);
  // Drop ranges below `to`, keep the part of a range that straddles it.
  int64_t keep_end = -1;
  while (!ranges_.empty() && ranges_.begin()->first < to) {
    auto it = ranges_.begin();
    above_ -= it->second - it->first;
    if (it->second > to) keep_end = it->second;
    ranges_.erase(it);
  }
  cursor_ = to;
  if (keep_end > to) cursor_ = keep_end;
  absorb();
  return unacked;
}

int64_t ack_set::next_unacked(int64_t from) const {
  if (from < cursor_) from = cursor_;
  auto it = ranges_.upper_bound(from);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (from < prev->second) return prev->second;  // ranges never touch, so prev->second is unacked
  }
  return from;
}

int64_t ack_set::acked_in(int64_t from, int64_t to) const {
  if (from >= to) return 0;
  int64_t n = 0;
  if (from < cursor_) {
    n += std::min(to, cursor_) - from;
    from = cursor_;
  }
  if (from >= to) return n;
  auto it = ranges_.upper_bound(from);
  if (it != ranges_.begin()) --it;
  for (; it != ranges_.end() && it->first < to; ++it) {
    int64_t ov = std::min(it->second, to) - std::max(it->first, from);
    if (ov > 0) n += ov;
  }
  return n;
}

}  // namespace ferry::subscription
