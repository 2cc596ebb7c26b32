#pragma once
// What a leader knows about each member of its group (progress), and the quorum arithmetic over
// those members. Owned by a group (group.h); only its leader role uses it.
#include <algorithm>
#include <optional>
#include <vector>

#include "broker/consensus/types.h"

namespace ferry::consensus {

struct progress {
  node_id id;
  bool voter = true;  // false: a learner, never counted for a quorum
  // Probe: we do not know where the follower's log matches ours; one append per heartbeat until a
  // reply tells us. Replicate: appends stream optimistically from `next`.
  enum class mode : uint8_t { probe, replicate } state = mode::probe;
  index_t next = 1;  // the next index to send
  // Highest index known to match our log. Volatile on the follower (it acknowledges before its
  // fsync, and a crash loses what was not synced), so it may be too high; never below `durable`.
  index_t match = 0;
  index_t durable = 0;             // highest index known to match our log and be fsynced there: stable
  index_t match_at_heartbeat = 0;  // its match at the previous heartbeat reply (stall detection)
  // Below our log start: the snapshot we sent it (index; 0: none) and when, so that a big
  // snapshot is not sent again on every heartbeat while the first is on its way.
  index_t snapshot_sent = 0;
  time_point snapshot_sent_at{0};
  time_point last_heard{0};  // our clock when we last received a reply of this term from it
  // The send time (our clock) of the newest append/heartbeat it acknowledged in this term; the
  // lease counts from the quorum's oldest such time (group::lease_start()).
  std::optional<time_point> acked_sent_at;
};

// The largest value v such that a majority of `values` (one per voter) is >= v. `values` is taken
// by value: sorted here. Precondition: not empty.
template <class T>
T quorum_value(std::vector<T> values) {
  std::sort(values.begin(), values.end(), [](const T& a, const T& b) { return b < a; });
  return values[values.size() / 2];  // the (n/2 + 1)-th largest: a majority is >= it
}

}  // namespace ferry::consensus
