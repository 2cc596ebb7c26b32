#pragma once
// ack_set: which offsets of one partition a subscription has acknowledged (or dead-lettered).
//
// A cursor (every offset below it is acknowledged) and the acknowledged offsets above it as
// disjoint, non-adjacent half-open ranges [from, to), with no cap on their number (a consumer that
// acks out of order leaves holes; each costs one map node). When the range starting at the cursor
// grows, the cursor moves past it.
//
// Not thread-safe: it belongs to its partition's shard.
#include <cstdint>
#include <map>

namespace ferry::subscription {

class ack_set {
 public:
  explicit ack_set(int64_t cursor = 0) : cursor_(cursor) {}

  int64_t cursor() const { return cursor_; }
  bool contains(int64_t o) const;
  // Acknowledges [from, to); returns how many of those offsets were not acknowledged before.
  int64_t add(int64_t from, int64_t to);
  int64_t add(int64_t o) { return add(o, o + 1); }
  // Seek: the cursor becomes `cursor`, everything below is acknowledged, nothing above is.
  void reset(int64_t cursor);
  // Moves the cursor up to `to` if it is below (retention deleted the offsets under `to`);
  // returns how many offsets in [old cursor, to) were not acknowledged.
  int64_t advance_to(int64_t to);
  // Forgets every offset at or above `end` (the log is shorter than this state says, e.g. after
  // its tail was lost): the cursor drops to `end` if above it, ranges are cut there.
  void truncate_from(int64_t end);
  // The first offset >= from that is not acknowledged.
  int64_t next_unacked(int64_t from) const;
  // Acknowledged offsets above the cursor, and in [from, to).
  int64_t acked_above_cursor() const { return above_; }
  int64_t acked_in(int64_t from, int64_t to) const;
  // The ranges above the cursor, keyed by start, value = end (exclusive).
  const std::map<int64_t, int64_t>& ranges() const { return ranges_; }

 private:
  void absorb();  // moves the cursor over a range that now starts at it

  int64_t cursor_;
  std::map<int64_t, int64_t> ranges_;
  int64_t above_ = 0;
};

}  // namespace ferry::subscription
