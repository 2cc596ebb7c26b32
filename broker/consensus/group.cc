#include "broker/consensus/group.h"

#include <algorithm>
#include <utility>

#include "broker/base/assert.h"

namespace ferry::consensus {

const char* role_name(role r) noexcept {
  switch (r) {
    case role::follower:
      return "follower";
    case role::pre_candidate:
      return "pre_candidate";
    case role::candidate:
      return "candidate";
    case role::leader:
      return "leader";
    case role::learner:
      return "learner";
  }
  return "?";
}

const char* msg_type_name(msg_type t) noexcept {
  switch (t) {
    case msg_type::pre_vote:
      return "pre_vote";
    case msg_type::pre_vote_reply:
      return "pre_vote_reply";
    case msg_type::vote:
      return "vote";
    case msg_type::vote_reply:
      return "vote_reply";
    case msg_type::append:
      return "append";
    case msg_type::append_reply:
      return "append_reply";
    case msg_type::heartbeat:
      return "heartbeat";
    case msg_type::heartbeat_reply:
      return "heartbeat_reply";
    case msg_type::timeout_now:
      return "timeout_now";
    case msg_type::install_snapshot:
      return "install_snapshot";
  }
  return "?";
}

namespace {

bool contains(const std::vector<node_id>& v, node_id n) { return std::find(v.begin(), v.end(), n) != v.end(); }

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

group::group(const config& cfg, durable_state restored, time_point now)
    : cfg_(cfg), rng_(cfg.seed ^ (static_cast<uint64_t>(cfg.self.value) * 0x2545f4914f6cdd1dULL)) {
  FERRY_ASSERT(!(contains(cfg_.voters, cfg_.self) && contains(cfg_.learners, cfg_.self)),
               "self must not be a voter and a learner");
  FERRY_ASSERT(cfg_.self.value != 0, "node id 0 means none");
  const double rho = cfg_.max_clock_rate_error;
  FERRY_ASSERT(rho >= 0 && rho < 1, "clock-rate bound out of range");
  FERRY_ASSERT(
      static_cast<double>(cfg_.lease.count()) * (1 + rho) < static_cast<double>(cfg_.election_min.count()) * (1 - rho),
      "lease * (1 + rho) must be below election_min * (1 - rho) (group.h, the leader lease)");
  FERRY_ASSERT(cfg_.heartbeat_interval < cfg_.lease, "a heartbeat round must fit in the lease");
  for (size_t i = 0; i < restored.log.size(); ++i) {
    FERRY_ASSERT(restored.log[i].index == restored.snapshot_index + i + 1, "restored log must follow the snapshot");
  }
  term_ = restored.hard.term;
  vote_ = restored.hard.vote;
  persisted_ = restored.hard;
  snapshot_index_ = restored.snapshot_index;
  snapshot_term_ = restored.snapshot_term;
  log_ = std::move(restored.log);
  base_config_ = restored.snapshot_config.value_or(membership{cfg_.voters, {}, cfg_.learners});
  config_ = membership_at(last_index());
  for (index_t i = last_index(); i > snapshot_index_ && config_index_ == 0; --i) {
    if (entry_at(i).kind == entry_kind::config) config_index_ = i;
  }
  voter_before_latest_ = config_index_ != 0 && membership_at(config_index_ - 1).is_voter(cfg_.self);
  durable_ = last_index();
  // The snapshot holds committed, applied state.
  commit_ = snapshot_index_;
  applied_ = snapshot_index_;
  role_ = is_voter(cfg_.self) ? role::follower : role::learner;
  // We may have acknowledged a leader's lease round just before a crash: refuse votes (and wait
  // before campaigning) for a full election timeout from now, as if we had just heard from it.
  last_leader_contact_ = now;
  reset_election_timer(now);
}

membership group::membership_at(index_t i) const {
  for (index_t j = std::min(i, last_index()); j > snapshot_index_; --j) {
    const entry& e = entry_at(j);
    if (e.kind != entry_kind::config) continue;
    membership m;
    FERRY_ASSERT(decode_membership(e.data, m), "a config entry that does not decode");
    return m;
  }
  return base_config_;
}

void group::refresh_membership(index_t from, time_point now) {
  if (config_index_ < from) {
    // Only entries at or after `from` changed: a config entry among them is the new latest.
    for (index_t j = last_index(); j >= from && j > snapshot_index_; --j) {
      if (entry_at(j).kind == entry_kind::config) {
        config_index_ = j;
        FERRY_ASSERT(decode_membership(entry_at(j).data, config_), "a config entry that does not decode");
        break;
      }
    }
  } else {
    // The entry it came from was truncated: find the latest one still there.
    config_index_ = 0;
    config_ = membership_at(last_index());
    for (index_t j = last_index(); j > snapshot_index_ && config_index_ == 0; --j) {
      if (entry_at(j).kind == entry_kind::config) config_index_ = j;
    }
  }
  voter_before_latest_ = config_index_ != 0 && membership_at(config_index_ - 1).is_voter(cfg_.self);
  const bool voter = is_voter(cfg_.self);
  if (role_ == role::learner && voter) {
    role_ = role::follower;
    ready_.role_changed = true;
    reset_election_timer(now);
  } else if ((role_ == role::follower || role_ == role::pre_candidate || role_ == role::candidate) && !voter) {
    role_ = role::learner;
    ready_.role_changed = true;
  } else if (role_ == role::leader) {
    sync_peers(now);
  }
}

void group::sync_peers(time_point now) {
  const std::vector<node_id> members = config_.others(cfg_.self);
  std::erase_if(peers_, [&](const progress& p) { return !config_.is_member(p.id); });
  for (node_id n : members) {
    if (progress* p = find_progress(n)) {
      p->voter = is_voter(n);
      continue;
    }
    progress p;
    p.id = n;
    p.voter = is_voter(n);
    p.next = last_index() + 1;
    p.last_heard = now;  // check-quorum gives every member a full election timeout
    peers_.push_back(p);
  }
}

progress* group::find_progress(node_id n) {
  for (auto& p : peers_) {
    if (p.id == n) return &p;
  }
  return nullptr;
}

const progress* group::progress_of(node_id peer) const {
  for (const auto& p : peers_) {
    if (p.id == peer) return &p;
  }
  return nullptr;
}

duration group::random_election_timeout() {
  const auto span = static_cast<uint64_t>(cfg_.election_min.count());
  return cfg_.election_min + duration(static_cast<int64_t>(splitmix64(rng_) % span));
}

void group::reset_election_timer(time_point now) { election_deadline_ = now + random_election_timeout(); }

bool group::in_leader_contact(time_point now) const {
  return role_ == role::leader || now - last_leader_contact_ < cfg_.election_min;
}

void group::set_hard_state(term_t term, node_id vote) {
  if (term != term_) ready_.role_changed = true;
  term_ = term;
  vote_ = vote;
  const hard_state hs{term_, vote_};
  if (hs != persisted_) {
    ready_.hard = hs;
    persisted_ = hs;
  }
}

void group::send(message m) {
  m.from = cfg_.self;
  if (m.term == 0) m.term = term_;
  ready_.messages.push_back(std::move(m));
}

void group::send_reply(message r) {
  r.match = matched_;
  r.durable = std::min(durable_, matched_);
  reported_durable_ = std::max(reported_durable_, r.durable);
  send(std::move(r));
}

ready group::take_ready() {
  ready r = std::move(ready_);
  ready_ = ready{};
  return r;
}

bool group::log_up_to_date(index_t their_last_index, term_t their_last_term) const {
  const term_t my_last_term = term_at(last_index());
  return their_last_term > my_last_term || (their_last_term == my_last_term && their_last_index >= last_index());
}

// --- roles ---------------------------------------------------------------------------------------

void group::become_follower(term_t term, node_id leader, time_point now) {
  if (term != term_) {
    set_hard_state(term, node_id{});
    matched_ = 0;  // what matched the old term's leader says nothing about the new one's log
    reported_durable_ = 0;
  }
  const role r = is_voter(cfg_.self) ? role::follower : role::learner;
  if (r != role_ || leader != leader_) ready_.role_changed = true;
  role_ = r;
  leader_ = leader;
  peers_.clear();
  votes_.clear();
  refusals_.clear();
  transfer_.reset();
  lease_given_away_ = false;
  committed_own_term_ = false;
  reset_election_timer(now);
}

void group::campaign(time_point now, campaign_kind kind) {
  if (cfg_.pre_vote && kind == campaign_kind::normal) {
    become_pre_candidate(now);
  } else {
    start_election(now, kind);
  }
}

void group::start_election(time_point now, campaign_kind kind) {
  become_candidate(now);
  if (role_ != role::candidate) return;  // a group of one is leader already
  for (node_id v : config_.others(cfg_.self)) {
    if (!is_voter(v)) continue;
    message m;
    m.type = msg_type::vote;
    m.to = v;
    m.last_index = last_index();
    m.last_term = term_at(last_index());
    m.transfer = kind == campaign_kind::transfer;
    send(std::move(m));
  }
}

void group::become_pre_candidate(time_point now) {
  role_ = role::pre_candidate;
  leader_ = node_id{};
  ready_.role_changed = true;
  votes_.assign(1, cfg_.self);
  refusals_.clear();
  reset_election_timer(now);
  if (config_.has_quorum(votes_)) {
    start_election(now, campaign_kind::normal);  // a group of one: nothing to ask
    return;
  }
  for (node_id v : config_.others(cfg_.self)) {
    if (!is_voter(v)) continue;
    message m;
    m.type = msg_type::pre_vote;
    m.to = v;
    m.term = term_ + 1;  // the term it would campaign at; its own term does not change
    m.last_index = last_index();
    m.last_term = term_at(last_index());
    send(std::move(m));
  }
}

void group::become_candidate(time_point now) {
  role_ = role::candidate;
  leader_ = node_id{};
  ready_.role_changed = true;
  matched_ = 0;
  reported_durable_ = 0;
  // The vote requests leave in this ready, after the host made (term + 1, self) durable.
  set_hard_state(term_ + 1, cfg_.self);
  votes_.assign(1, cfg_.self);
  refusals_.clear();
  reset_election_timer(now);
  if (config_.has_quorum(votes_)) become_leader(now);
}

void group::become_leader(time_point now) {
  role_ = role::leader;
  leader_ = cfg_.self;
  ready_.role_changed = true;
  votes_.clear();
  refusals_.clear();
  transfer_.reset();
  lease_given_away_ = false;
  committed_own_term_ = false;
  peers_.clear();
  sync_peers(now);
  // An entry of our own term, so everything before it can commit (entries of older terms never
  // commit by counting replicas: Raft figure 8).
  append_local(entry_kind::noop, {});
  for (auto& p : peers_) send_append(p, now, empty_append::send);
  next_heartbeat_ = now + cfg_.heartbeat_interval;
  maybe_commit();
}

// --- inputs --------------------------------------------------------------------------------------

void group::tick(time_point now) {
  if (role_ == role::leader) {
    if (now >= next_heartbeat_) {
      send_heartbeats(now);
      next_heartbeat_ = now + cfg_.heartbeat_interval;
    }
    // Check-quorum: count the voters we heard from within election_min (ourselves included).
    std::vector<node_id> active{cfg_.self};
    for (const auto& p : peers_) {
      if (p.voter && now - p.last_heard < cfg_.election_min) active.push_back(p.id);
    }
    // A leader not in C_new leaves once C_new is committed (it led the change to its end).
    const bool removed = !is_voter(cfg_.self) && config_index_ <= commit_;
    if (!config_.has_quorum(active) || removed) {
      become_follower(term_, node_id{}, now);
      return;
    }
    if (config_.joint() && config_index_ <= commit_) {
      // C_old,new is committed: now C_new alone.
      append_config(membership{config_.voters, {}, config_.learners}, now);
    }
    if (transfer_ && now >= transfer_->deadline) transfer_.reset();  // the lease stays given away
    return;
  }
  // A member outside its latest configuration campaigns only while that one is uncommitted and
  // it was a voter before it: if C_new reached only members outside C_new before its leader left,
  // one of them must lead to commit it (counting C_new's votes), or nobody could.
  if (role_ == role::learner && !(voter_before_latest_ && config_index_ > commit_)) return;
  if (now >= election_deadline_) campaign(now, campaign_kind::normal);
}

void group::step(const message& m, time_point now) {
  // Messages from non-members are not dropped: a new member may not know yet that it is one.
  if (m.to != cfg_.self) return;
  const bool vote_request = m.type == msg_type::pre_vote || m.type == msg_type::vote;
  if (m.term > term_) {
    // A live leader's followers ignore campaigns (etcd's "in lease"): a node that is cut off and
    // comes back must not depose a working leader, and the leader lease relies on it.
    if (vote_request && !m.transfer && in_leader_contact(now)) return;
    const bool granted_pre_vote = m.type == msg_type::pre_vote_reply && m.granted;
    if (m.type != msg_type::pre_vote && !granted_pre_vote) {
      const bool from_leader =
          m.type == msg_type::append || m.type == msg_type::heartbeat || m.type == msg_type::install_snapshot;
      become_follower(m.term, from_leader ? m.from : node_id{}, now);
    }
  } else if (m.term < term_) {
    // A stale leader or pre-candidate learns our term from the reply and steps down.
    if (m.type == msg_type::append || m.type == msg_type::heartbeat || m.type == msg_type::install_snapshot) {
      message r;
      r.type = m.type == msg_type::heartbeat ? msg_type::heartbeat_reply : msg_type::append_reply;
      r.to = m.from;
      r.prev_index = m.prev_index;
      send(std::move(r));
    } else if (m.type == msg_type::pre_vote) {
      message r;
      r.type = msg_type::pre_vote_reply;
      r.to = m.from;
      send(std::move(r));
    }
    return;
  }
  switch (m.type) {
    case msg_type::pre_vote:
    case msg_type::vote:
      handle_vote_request(m, now);
      break;
    case msg_type::pre_vote_reply:
    case msg_type::vote_reply:
      handle_vote_reply(m, now);
      break;
    case msg_type::append:
      handle_append(m, now);
      break;
    case msg_type::heartbeat:
      handle_heartbeat(m, now);
      break;
    case msg_type::install_snapshot:
      handle_install_snapshot(m, now);
      break;
    case msg_type::append_reply:
      handle_append_reply(m, now);
      break;
    case msg_type::heartbeat_reply:
      handle_heartbeat_reply(m, now);
      break;
    case msg_type::timeout_now:
      if (role_ == role::follower) campaign(now, campaign_kind::transfer);
      break;
  }
}

void group::handle_vote_request(const message& m, time_point now) {
  const bool pre = m.type == msg_type::pre_vote;
  // A pre-vote for a later term commits us to nothing; a real vote only if we have not voted for
  // someone else in this term and know no leader of it.
  const bool can_vote = vote_ == m.from || (vote_.value == 0 && leader_.value == 0) || (pre && m.term > term_);
  // Learners answer too: a new voter may not have the config entry that made it one yet; the
  // candidate counts only the voters of its own configuration.
  const bool grant = can_vote && log_up_to_date(m.last_index, m.last_term);
  message r;
  r.type = pre ? msg_type::pre_vote_reply : msg_type::vote_reply;
  r.to = m.from;
  r.granted = grant;
  if (grant && pre) {
    r.term = m.term;
  } else if (grant) {
    set_hard_state(term_, m.from);  // the reply leaves after this is durable
    reset_election_timer(now);
  }
  send(std::move(r));
}

void group::handle_vote_reply(const message& m, time_point now) {
  const bool pre = m.type == msg_type::pre_vote_reply;
  if (pre ? (role_ != role::pre_candidate || (m.granted && m.term != term_ + 1))
          : (role_ != role::candidate || m.term != term_)) {
    return;
  }
  auto& tally = m.granted ? votes_ : refusals_;
  if (!contains(tally, m.from) && is_voter(m.from)) tally.push_back(m.from);
  std::vector<node_id> could_still_vote;
  for (node_id v : config_.others(node_id{})) {
    if (is_voter(v) && !contains(refusals_, v)) could_still_vote.push_back(v);
  }
  if (config_.has_quorum(votes_)) {
    if (pre) {
      start_election(now, campaign_kind::normal);
    } else {
      become_leader(now);
    }
  } else if (!config_.has_quorum(could_still_vote)) {
    become_follower(term_, node_id{}, now);
  }
}

void group::note_leader_contact(const message& m, time_point now) {
  FERRY_ASSERT(role_ != role::leader, "two leaders in one term");
  if (role_ != role::follower && role_ != role::learner) become_follower(term_, m.from, now);
  if (leader_ != m.from) {
    leader_ = m.from;
    ready_.role_changed = true;
  }
  last_leader_contact_ = now;
  reset_election_timer(now);
  // Every committed entry is in the current leader's log (leader completeness), so the prefix up
  // to our commit index matches it whatever else we know.
  matched_ = std::max(matched_, commit_);
}

void group::handle_append(const message& m, time_point now) {
  note_leader_contact(m, now);

  message r;
  r.type = msg_type::append_reply;
  r.to = m.from;
  r.sent_at = m.sent_at;
  r.prev_index = m.prev_index;
  if (m.prev_index > last_index()) {
    r.conflict_term = 0;
    r.conflict_index = last_index() + 1;
  } else if (m.prev_index >= snapshot_index_ && term_at(m.prev_index) != m.prev_term) {
    // Entries up to commit_ are committed, so they match: the divergent run starts after them.
    r.conflict_term = term_at(m.prev_index);
    index_t first = m.prev_index;
    while (first - 1 > commit_ && term_at(first - 1) == r.conflict_term) --first;
    r.conflict_index = first;
  } else {
    index_t config_changed_from = 0;  // 0: no config entry appended or truncated
    // Below our log start everything is committed, so it matches: skip it.
    for (const entry& e : m.entries) {
      if (e.index <= snapshot_index_) continue;
      if (e.index <= last_index()) {
        if (term_at(e.index) == e.term) continue;  // already here: a duplicate never cuts anything
        FERRY_ASSERT(e.index > commit_, "a committed entry would be truncated");
        log_.resize(e.index - 1 - snapshot_index_);
        std::erase_if(ready_.entries, [&](const entry& x) { return x.index >= e.index; });
        ready_.truncate_from = std::min(ready_.truncate_from.value_or(e.index), e.index);
        durable_ = std::min(durable_, e.index - 1);
        matched_ = std::min(matched_, e.index - 1);
        if (config_index_ >= e.index && config_changed_from == 0) config_changed_from = e.index;
      }
      if (e.kind == entry_kind::config && config_changed_from == 0) config_changed_from = e.index;
      FERRY_ASSERT(e.index == last_index() + 1, "append entries must be contiguous");
      log_.push_back(e);
      ready_.entries.push_back(e);
    }
    if (config_changed_from != 0) refresh_membership(config_changed_from, now);
    matched_ = std::max({matched_, m.prev_index + m.entries.size(), snapshot_index_});
    r.granted = true;
    const index_t c = std::min(m.commit, matched_);
    if (c > commit_) advance_commit(c);
  }
  send_reply(std::move(r));
}

void group::handle_heartbeat(const message& m, time_point now) {
  note_leader_contact(m, now);
  const index_t c = std::min(m.commit, matched_);
  if (c > commit_) advance_commit(c);
  message r;
  r.type = msg_type::heartbeat_reply;
  r.to = m.from;
  r.sent_at = m.sent_at;
  send_reply(std::move(r));
}

void group::handle_install_snapshot(const message& m, time_point now) {
  note_leader_contact(m, now);
  const index_t index = m.prev_index;
  if (index > commit_) {
    if (term_at(index) == m.prev_term) {
      // We have that entry, hence the whole prefix: no need for the snapshot, just the commit.
      matched_ = std::max(matched_, index);
      advance_commit(index);
    } else {
      // Replace everything with the snapshot. Entries and commits not yet handed to the host are
      // older than the snapshot: the snapshot subsumes them.
      log_.clear();
      snapshot_index_ = index;
      snapshot_term_ = m.prev_term;
      commit_ = applied_ = durable_ = matched_ = index;
      ready_.entries.clear();
      ready_.truncate_from.reset();
      ready_.committed.clear();
      ready_.snapshot = snapshot_ref{index, m.prev_term, m.config};  // durable before our reply leaves
      base_config_ = m.config;
      config_ = m.config;
      config_index_ = 0;
      refresh_membership(index + 1, now);  // nothing after it: only the role follows
    }
  }
  message r;
  r.type = msg_type::append_reply;
  r.to = m.from;
  r.sent_at = m.sent_at;
  r.prev_index = index;
  r.granted = true;
  send_reply(std::move(r));
}

void group::compact(index_t upto) {
  if (upto <= snapshot_index_) return;
  FERRY_ASSERT(upto <= applied_, "compact past the applied index");
  snapshot_term_ = term_at(upto);
  base_config_ = membership_at(upto);
  if (config_index_ <= upto) {
    config_index_ = 0;  // config_ is base_config_ now, and committed
    voter_before_latest_ = false;
  }
  log_.erase(log_.begin(), log_.begin() + static_cast<std::ptrdiff_t>(upto - snapshot_index_));
  snapshot_index_ = upto;
  durable_ = std::max(durable_, upto);  // the snapshot is durable
}

void group::synced(index_t index, term_t term) {
  if (index == 0 || index > last_index() || term_at(index) != term || index <= durable_) return;
  durable_ = index;
  if (role_ == role::leader) {
    maybe_commit();
  } else if (leader_.value != 0 && std::min(durable_, matched_) > reported_durable_) {
    // Tell the leader at once: commit waits for durable copies.
    message r;
    r.type = msg_type::append_reply;
    r.to = leader_;
    r.granted = true;
    r.prev_index = matched_;
    send_reply(std::move(r));
  }
}

void group::advance_commit(index_t to) {
  FERRY_ASSERT(to <= last_index() && to > commit_, "commit must move forward within the log");
  commit_ = to;
  if (role_ == role::leader && term_at(to) == term_) committed_own_term_ = true;
  for (index_t i = applied_ + 1; i <= commit_; ++i) ready_.committed.push_back(entry_at(i));
  applied_ = commit_;
}

}  // namespace ferry::consensus
