#pragma once
// The values the consensus core (group.h) takes in and hands out: log entries, messages between
// the members of a group, the hard state that must be durable, the configuration with its timing
// defaults, and the `ready` batch of work the host drains. No behaviour here.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "broker/consensus/membership.h"
#include "schema/types.h"

namespace ferry::consensus {

// Terms and log indexes are plain integers: the core does arithmetic on them at every step, and
// the two never meet in one expression (a term is compared with terms, an index with indexes).
// Index 0 and term 0 mean "none": the first entry has index 1, the first real term is 1.
using term_t = uint64_t;
using index_t = uint64_t;

// Monotonic time on the host's clock, counted from an arbitrary origin (a raw monotonic clock:
// CLOCK_MONOTONIC_RAW, which NTP does not slew). Only differences of two readings of one
// process's clock mean anything; the core never compares its time with another node's.
using time_point = std::chrono::nanoseconds;
using duration = std::chrono::nanoseconds;
inline constexpr time_point no_time = time_point::min();  // "not set"

enum class entry_kind : uint8_t {
  normal,  // a client proposal
  noop,    // appended by a new leader at once, so an entry of its term can commit
  config,  // a membership (membership.h, encode_membership()): in force once in the log
};

struct entry {
  index_t index = 0;
  term_t term = 0;
  entry_kind kind = entry_kind::normal;
  std::string data;
  friend bool operator==(const entry&, const entry&) = default;
};

enum class role : uint8_t { follower, pre_candidate, candidate, leader, learner };
const char* role_name(role r) noexcept;

enum class msg_type : uint8_t {
  pre_vote,          // "would you vote for me at term+1?"; changes no state on either side
  pre_vote_reply,    //
  vote,              // a real vote request at the candidate's (already durable) term
  vote_reply,        //
  append,            // log entries after (prev_index, prev_term), and the leader's commit index
  append_reply,      //
  heartbeat,         // commit index and the lease round's send time; no entries, no log check
  heartbeat_reply,   //
  timeout_now,       // leadership transfer: "campaign now, you are caught up"
  install_snapshot,  // the follower needs entries the leader compacted: the host's snapshot at
                     // (prev_index, prev_term) goes with it; answered by an append_reply
};
const char* msg_type_name(msg_type t) noexcept;

// One message between two members of a group. A flat struct with the fields every type may use;
// the transport (issue 10 item 3) encodes only the ones its type needs.
struct message {
  msg_type type = msg_type::heartbeat;
  node_id from;
  node_id to;
  term_t term = 0;  // the sender's term (pre_vote: the term it would campaign at)

  // pre_vote, vote: the candidate's last log entry; transfer: the campaign answers timeout_now,
  // so voters grant it even while they hear from a live leader (the leader asked for it).
  index_t last_index = 0;
  term_t last_term = 0;
  bool transfer = false;
  // *_reply: the vote was granted / the append matched.
  bool granted = false;

  // append: entries follow (prev_index, prev_term). append, heartbeat: the leader's commit index.
  index_t prev_index = 0;
  term_t prev_term = 0;
  std::vector<entry> entries;
  index_t commit = 0;

  // append, heartbeat: the leader's clock when it sent the message; its replies echo it back
  // (the leader lease counts from the send time of what a majority acknowledged).
  time_point sent_at = no_time;

  // append_reply, heartbeat_reply (prev_index of a refused append echoes the refused one):
  //   match    - the last index known to match the leader's log (granted append: prev + entries)
  //   durable  - the last index that is both fsynced here and known to match the leader's log
  //   conflict - a refused append: conflict_term is the term this log has at prev_index (0: the
  //              log is shorter), conflict_index the first index of that term here (or last + 1),
  //              so the leader skips a whole divergent term in one round trip
  index_t match = 0;
  index_t durable = 0;
  term_t conflict_term = 0;
  index_t conflict_index = 0;

  // install_snapshot: the membership in force at the snapshot's index.
  membership config;
};

// What must be durable (fsynced) before any message that depends on it is sent: the current term
// and the vote cast in it. Raft's safety rests on a node never voting twice in a term and never
// going back to an older term after a crash.
struct hard_state {
  term_t term = 0;
  node_id vote;  // node_id{0}: no vote in this term (node ids start at 1)
  friend bool operator==(const hard_state&, const hard_state&) = default;
};

// Timing and membership of a group. The defaults, and why:
//  - heartbeat 100 ms: a lease round per heartbeat keeps the lease (800 ms) renewed eight times
//    over, so a few lost heartbeats never lose it; idle cost is one small message per peer.
//  - election timeout random in [1 s, 2 s): far above the heartbeat and a loopback/LAN round trip,
//    so a GC-free C++ broker does not hold false elections; the spread makes split votes rare.
//  - lease 800 ms with clock-rate bound rho = 0.1: see group.h ("The leader lease") for the
//    derivation; lease * (1 + rho) < election_min * (1 - rho), i.e. 880 ms < 900 ms.
//  - check-quorum after election_min: a leader cut off from a majority steps down as soon as the
//    others may elect another, so it stops serving.
struct config {
  node_id self;
  // The membership before any config entry or snapshot (the group's bootstrap): later ones come
  // from the log (group::propose_membership()).
  std::vector<node_id> voters;
  std::vector<node_id> learners;  // receive the log, never vote, never count for a quorum
  duration heartbeat_interval = std::chrono::milliseconds(100);
  duration election_min = std::chrono::milliseconds(1000);  // timeout random in [min, 2 * min)
  duration lease = std::chrono::milliseconds(800);
  double max_clock_rate_error = 0.1;  // rho: every clock runs at a rate within 1 +- rho of real time
  bool pre_vote = true;
  size_t max_entries_per_append = 64;
  index_t max_inflight_entries = 512;  // sent but not acknowledged, per follower
  uint64_t seed = 1;                   // election jitter; the host picks it (deterministic runs)
};

// A snapshot the host holds or must install: the state after applying entries 1..index.
struct snapshot_ref {
  index_t index = 0;
  term_t term = 0;
  membership config;  // in force at `index`; the host keeps it with the snapshot
  friend bool operator==(const snapshot_ref&, const snapshot_ref&) = default;
};

// What the core asks the host to do, drained by group::take_ready(). The host handles one ready
// completely, in this order, before asking for the next:
//   0. install `snapshot` (if set; its data came with the install_snapshot message at that
//      index and term) durably, replacing the state machine and the whole log;
//   1. truncate the log from `truncate_from` (if set), then write `entries` (page cache is
//      enough; report the fsync with group::synced() when it completes, in any later call);
//   2. make `hard` (term, vote) durable (fsync) if set;
//   3. only then send `messages` (they may carry the new term or vote);
//   4. apply `committed` in order (they are committed: a majority has them durably).
struct ready {
  std::optional<snapshot_ref> snapshot;  // install before anything else (follower only)
  std::optional<index_t> truncate_from;  // drop every entry at or after this index first
  std::vector<entry> entries;            // append after the (truncated) log, in order
  std::optional<hard_state> hard;        // make durable before sending `messages`
  std::vector<message> messages;
  std::vector<entry> committed;  // newly committed entries to apply, in index order
  bool role_changed = false;     // role(), leader() or term() changed since the last ready
  bool empty() const {
    return !snapshot && !truncate_from && entries.empty() && !hard && messages.empty() && committed.empty() &&
           !role_changed;
  }
};

}  // namespace ferry::consensus
