#pragma once
// group: one Raft-style consensus group (DESIGN.md "A cluster", REPLICATION.md C) as a
// deterministic state machine in the style of etcd's raft. No sockets, disk, clock, threads or
// global randomness inside: the host feeds it messages, time and storage completions, and drains
// the work it asks for (`ready`, types.h). One group is a few hundred bytes plus its log; a host
// runs thousands on one shard and ticks them from one timer.
//
// Threading: not thread-safe; one owner (the shard the group lives on) calls everything.
//
// Inputs
//   step(m, now)      a message from a peer, `now` read when it was received (the lease needs the
//                     receive time, not the last tick's).
//   tick(now)         time passes: heartbeats, election timeouts, check-quorum, transfer timeout.
//                     Call it at least every heartbeat_interval / 4 or so; the core only compares.
//   synced(i, t)      the host's fsync completed and covers the log up to index i, whose entry
//                     has term t (a stale completion, for an entry truncated since, is ignored).
//   propose(data)     a leader appends an entry (returns not_leader / transferring otherwise).
//   compact(upto)     the host holds a durable snapshot up to `upto`: the log starts after it.
//   transfer_leadership(target, now), propose_membership(voters, learners, now).
//
// Outputs (take_ready(), in the order the host must honour; see `ready` in types.h)
//   entries to write (and a truncation before them), the hard state (term, vote) to make durable
//   BEFORE sending the messages of the same ready, messages, committed entries to apply, and
//   whether role / leader / term changed. holds_lease(now) says whether the leader's lease holds.
//
// Host obligations
//   - Persist `hard` with an fsync before sending any message of that ready. A vote reply, or any
//     message at a new term, must never leave before (term, vote) is durable.
//   - Write `entries` (after `truncate_from`) before handling the next ready; messages may leave
//     before those entries are fsynced (the leader's own fsync overlaps its followers'); report
//     the fsync with synced(). Only fsynced entries count for a commit, the leader's own too.
//   - After a crash, construct the group from what is durable: the hard state and the fsynced log.
//     Whatever was only in the page cache is gone, and that is what the core assumes.
//   - Construct it with the current `now`: a restarted node refuses votes for election_min after
//     it starts, because it may have acknowledged a leader's lease round just before it crashed.
//
// Rules (each has a unit test in group_test.cc and is checked by the simulator, tests/consensus):
//   - Terms; pre-vote (a pre-candidate asks at term+1 without changing any term; only with a
//     majority of pre-votes does it become a candidate), then votes with the log up-to-date check.
//   - A follower, and a leader, ignores (pre-)vote requests while it has heard from a live leader
//     within election_min (except a transfer campaign, which the leader asked for).
//   - Appends: log matching on (prev_index, prev_term); a divergent tail is truncated only at the
//     first entry whose term differs (a stale, reordered append never cuts matching entries); a
//     refusal carries a conflict hint (the term at prev_index and the first index of that term).
//   - Commit: the largest index fsynced on a majority of voters (the leader's own fsynced index
//     counts like any other) whose entry has the current term; a new leader appends a noop entry
//     of its term at once so earlier entries commit with it.
//   - Check-quorum: a leader that has not heard from a majority (itself included) within
//     election_min steps down.
//   - Leadership transfer to a voter: the leader stops taking proposals, brings the target up to
//     date, sends timeout_now, and gives up its lease for the rest of its term (the target's
//     campaign is granted by voters even while they hear from the old leader). It gives up the
//     transfer after election_min.
//   - Learners get the log and the commit index; they never campaign, vote, or count.
//
// The leader lease
//   Every append and heartbeat carries sent_at, the leader's clock when it sent it; replies echo it.
//   The lease starts at the newest send time that a majority (the leader counting itself) has
//   acknowledged in this term, and holds_lease(now) is true while now < start + lease, the group
//   is leader, an entry of its term has committed, and no transfer gave the lease away.
//   Why no other node can be leader then, with clocks whose rates are within 1 +- rho of real time:
//   let S be the real time the round was sent. Each acknowledging voter received it at real time
//   R >= S and refuses votes (and does not campaign) until election_min has passed on its clock
//   since then, i.e. until real time R + election_min / (1 + rho) at the earliest; a restarted
//   voter waits election_min from its restart, later still. A new leader needs one of them, so it
//   exists no earlier than S + election_min / (1 + rho). The old leader's lease ends on its clock
//   at (its reading at S) + lease, which is real time S + lease / (1 - rho) at the latest. So
//       lease / (1 - rho) < election_min / (1 + rho)  <=>  lease * (1 + rho) < election_min * (1 - rho)
//   The constructor asserts it. Defaults: 800 ms * 1.1 = 880 ms < 1000 ms * 0.9 = 900 ms.
//   A paused leader's clock keeps running, so on waking its lease has expired; a crash drops it.
//
//   - Log start: after compact(upto), a follower that needs an entry at or below `upto` gets an
//     install_snapshot at (upto, its term) instead; the host sends its snapshot with it. The
//     follower installs it (ready::snapshot) unless it already has that entry; the leader resends
//     it only after election_min without an answer.
//
//   - Membership changes by joint consensus (membership.h): while joint, elections, commits, the
//     lease and check-quorum need a majority of the old and of the new voters. Votes are granted
//     to any candidate that asks (a new voter may not know yet that it is one); a candidate
//     counts only its own configuration's voters.
//
// Not yet: reading the log from storage instead of keeping it in memory.
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "broker/consensus/progress.h"
#include "broker/consensus/types.h"

namespace ferry::consensus {

// What survived a crash: the durable hard state, the latest durable snapshot's index and term
// (0, 0: none) and the fsynced log after it (entries snapshot_index + 1 .. n, in order).
struct durable_state {
  hard_state hard;
  index_t snapshot_index = 0;
  term_t snapshot_term = 0;
  std::optional<membership> snapshot_config;  // with a snapshot: the membership at its index
  std::vector<entry> log;
};

enum class propose_status : uint8_t { ok, not_leader, transferring, config_pending };
struct propose_result {
  propose_status status = propose_status::not_leader;
  index_t index = 0;  // ok: the index the entry got
  term_t term = 0;
};

class group {
 public:
  // Precondition: cfg is valid (self in voters xor learners; lease bound above). `now` is the
  // host's clock at start.
  group(const config& cfg, durable_state restored, time_point now);
  group(const group&) = delete;
  group& operator=(const group&) = delete;

  void step(const message& m, time_point now);
  void tick(time_point now);
  void synced(index_t index, term_t term);
  [[nodiscard]] propose_result propose(std::string data, time_point now);
  // The host made a durable snapshot of the state after applying entries 1..upto; the core drops
  // them from its log. A follower behind the new log start gets that snapshot (install_snapshot).
  // Precondition: snapshot_index() <= upto <= the last index handed out in ready::committed.
  void compact(index_t upto);
  // Leader only: starts a change to `voters` (non-empty) and `learners` by joint consensus: it
  // appends C_old,new now and C_new once that is committed; a leader not in C_new steps down when
  // C_new is committed. Refused (config_pending) until an entry of this term has committed and
  // while another change is under way.
  [[nodiscard]] propose_result propose_membership(std::vector<node_id> voters, std::vector<node_id> learners,
                                                  time_point now);
  [[nodiscard]] const membership& current_membership() const { return config_; }
  [[nodiscard]] const membership& snapshot_membership() const { return base_config_; }
  // Starts a transfer to `target` (a voter other than self). False if not leader or no such voter.
  bool transfer_leadership(node_id target, time_point now);

  [[nodiscard]] bool has_ready() const { return !ready_.empty(); }
  [[nodiscard]] ready take_ready();

  [[nodiscard]] bool holds_lease(time_point now) const;
  // When the lease ends on our clock if no further round is acknowledged (nullopt: not held, or
  // not yet); a host can set one timer for it instead of polling holds_lease().
  [[nodiscard]] std::optional<time_point> lease_expiry() const;
  [[nodiscard]] role current_role() const { return role_; }
  [[nodiscard]] term_t term() const { return term_; }
  [[nodiscard]] node_id leader() const { return leader_; }
  [[nodiscard]] node_id id() const { return cfg_.self; }
  [[nodiscard]] index_t commit_index() const { return commit_; }
  [[nodiscard]] index_t last_index() const { return snapshot_index_ + log_.size(); }
  // The log starts after the host's latest snapshot: entries up to this index are compacted.
  [[nodiscard]] index_t snapshot_index() const { return snapshot_index_; }
  [[nodiscard]] index_t durable_index() const { return durable_; }
  // The term of entry i: 0 if i is past the end or compacted (the snapshot's own index answers).
  [[nodiscard]] term_t term_at(index_t i) const {
    if (i == snapshot_index_) return snapshot_term_;
    return i < snapshot_index_ || i > last_index() ? 0 : log_[i - snapshot_index_ - 1].term;
  }
  // Precondition: snapshot_index() < i <= last_index().
  [[nodiscard]] const entry& entry_at(index_t i) const { return log_[i - snapshot_index_ - 1]; }
  [[nodiscard]] bool transferring() const { return transfer_.has_value(); }
  // Leader only: what it knows about `peer` (nullptr otherwise).
  [[nodiscard]] const progress* progress_of(node_id peer) const;

 private:
  struct transfer_state {
    node_id target;
    time_point deadline;
  };

  bool is_voter(node_id n) const { return config_.is_voter(n); }
  // After the log changed at or below `from` (an append or a truncation): the membership in force
  // is the latest config entry in the log, else the snapshot's.
  void refresh_membership(index_t from, time_point now);
  membership membership_at(index_t i) const;
  void sync_peers(time_point now);
  void append_config(const membership& m, time_point now);
  void reset_election_timer(time_point now);
  void become_follower(term_t term, node_id leader, time_point now);
  void become_pre_candidate(time_point now);
  void become_candidate(time_point now);
  void become_leader(time_point now);
  void set_hard_state(term_t term, node_id vote);
  enum class campaign_kind : uint8_t { normal, transfer };  // transfer: answers timeout_now
  enum class empty_append : uint8_t { skip, send };         // send: as a probe, even with no entries
  void campaign(time_point now, campaign_kind kind);
  void start_election(time_point now, campaign_kind kind);
  void send(message m);
  // A follower's answer to its leader (append_reply, heartbeat_reply): fills in what it matches
  // and has durable (the two fields a leader commits and renews its lease from), then sends it.
  void send_reply(message r);
  void handle_vote_request(const message& m, time_point now);
  void handle_vote_reply(const message& m, time_point now);
  void handle_append(const message& m, time_point now);
  void handle_heartbeat(const message& m, time_point now);
  void handle_install_snapshot(const message& m, time_point now);
  void note_leader_contact(const message& m, time_point now);
  void handle_append_reply(const message& m, time_point now);
  void handle_heartbeat_reply(const message& m, time_point now);
  void send_append(progress& p, time_point now, empty_append empty);
  void send_heartbeats(time_point now);
  void append_local(entry_kind kind, std::string data);
  void maybe_commit();
  void advance_commit(index_t to);
  void maybe_send_timeout_now(progress& p);
  bool log_up_to_date(index_t their_last_index, term_t their_last_term) const;
  bool in_leader_contact(time_point now) const;
  duration random_election_timeout();
  progress* find_progress(node_id n);

  config cfg_;
  role role_ = role::follower;
  term_t term_ = 0;
  node_id vote_;
  node_id leader_;
  hard_state persisted_;        // the last hard state handed to the host
  index_t snapshot_index_ = 0;  // the log starts after the snapshot (0: no snapshot)
  term_t snapshot_term_ = 0;
  std::vector<entry> log_;            // entries snapshot_index_ + 1 .. last_index()
  membership base_config_;            // in force at snapshot_index_ (the bootstrap one without a snapshot)
  membership config_;                 // in force now: the latest config entry, or base_config_
  index_t config_index_ = 0;          // the entry config_ comes from (0: base_config_)
  bool voter_before_latest_ = false;  // a voter in the configuration before config_index_
  index_t commit_ = 0;
  index_t applied_ = 0;           // handed out in ready::committed
  index_t durable_ = 0;           // fsynced here (synced())
  index_t matched_ = 0;           // follower: highest index known to match the current leader's log
  index_t reported_durable_ = 0;  // follower: the durable index last sent to the leader
  uint64_t rng_;                  // splitmix64 state: election jitter
  time_point election_deadline_{0};
  time_point last_leader_contact_{0};  // when we last heard from the leader of our term (or started)
  time_point next_heartbeat_{0};
  time_point last_quorum_check_{0};
  std::vector<node_id> votes_;     // candidates: who granted
  std::vector<node_id> refusals_;  // candidates: who refused
  std::vector<progress> peers_;    // leader: every member but self
  std::optional<transfer_state> transfer_;
  bool lease_given_away_ = false;  // a timeout_now was sent in this term
  bool committed_own_term_ = false;
  ready ready_;
};

}  // namespace ferry::consensus
