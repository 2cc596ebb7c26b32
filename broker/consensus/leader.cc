// The leader's side of a group (group.h): proposals, transfer, the lease, replication to each
// follower (appends, snapshots, heartbeats) and the commit rule.
#include "broker/consensus/group.h"

#include <algorithm>
#include <vector>

#include <utility>
#include "broker/base/assert.h"

namespace ferry::consensus {
namespace {

// The value a quorum agrees on under `c`: the (majority)-th largest of value_of(member) over the
// voters, and while joint the smaller of that and the same over the outgoing voters.
template <class T, class F>
T agreed(const membership& c, F value_of) {
  auto over = [&](const std::vector<node_id>& set) {
    std::vector<T> values;
    values.reserve(set.size());
    for (node_id n : set) values.push_back(value_of(n));
    return quorum_value(std::move(values));
  };
  T v = over(c.voters);
  if (c.joint()) v = std::min(v, over(c.outgoing));
  return v;
}

}  // namespace

propose_result group::propose(std::string data, time_point now) {
  propose_result r;
  if (role_ != role::leader) return r;
  if (transfer_) {
    r.status = propose_status::transferring;
    return r;
  }
  append_local(entry_kind::normal, std::move(data));
  for (auto& p : peers_) {
    if (p.state == progress::mode::replicate) send_append(p, now, empty_append::skip);
  }
  maybe_commit();  // a group of one
  r.status = propose_status::ok;
  r.index = last_index();
  r.term = term_;
  return r;
}

propose_result group::propose_membership(std::vector<node_id> voters, std::vector<node_id> learners, time_point now) {
  FERRY_ASSERT(!voters.empty(), "a configuration needs a voter");
  propose_result r;
  if (role_ != role::leader) return r;
  if (transfer_) {
    r.status = propose_status::transferring;
    return r;
  }
  // One change at a time, and only after an entry of our term committed (so no change of an
  // earlier leader is still uncommitted in our log: the single-server bug, thesis errata).
  if (!committed_own_term_ || config_.joint() || config_index_ > commit_) {
    r.status = propose_status::config_pending;
    return r;
  }
  append_config(membership{std::move(voters), config_.voters, std::move(learners)}, now);
  r.status = propose_status::ok;
  r.index = last_index();
  r.term = term_;
  return r;
}

void group::append_config(const membership& m, time_point now) {
  append_local(entry_kind::config, encode_membership(m));
  config_ = m;
  config_index_ = last_index();
  sync_peers(now);
  for (auto& p : peers_) {
    if (p.state == progress::mode::replicate) send_append(p, now, empty_append::skip);
  }
  maybe_commit();
}

bool group::transfer_leadership(node_id target, time_point now) {
  if (role_ != role::leader || target == cfg_.self || !is_voter(target)) return false;
  progress* p = find_progress(target);
  if (p == nullptr) return false;
  transfer_ = transfer_state{target, now + cfg_.election_min};
  if (p->match == last_index()) {
    maybe_send_timeout_now(*p);
  } else {
    send_append(*p, now, empty_append::send);
  }
  return true;
}

std::optional<time_point> group::lease_expiry() const {
  if (role_ != role::leader || !committed_own_term_ || lease_given_away_) return std::nullopt;
  const time_point start = agreed<time_point>(config_, [&](node_id n) {
    if (n == cfg_.self) return time_point::max();  // our own acknowledgement of any round is immediate
    const progress* p = progress_of(n);
    return p != nullptr && p->acked_sent_at ? *p->acked_sent_at : time_point::min();
  });
  if (start == time_point::min()) return std::nullopt;
  // We alone are a quorum (a group of one voter): nobody else can be elected while we lead.
  if (start == time_point::max()) return time_point::max();
  return start + cfg_.lease;
}

bool group::holds_lease(time_point now) const {
  const auto until = lease_expiry();
  return until && now < *until;
}

// --- leader --------------------------------------------------------------------------------------

void group::append_local(entry_kind kind, std::string data) {
  entry e;
  e.index = last_index() + 1;
  e.term = term_;
  e.kind = kind;
  e.data = std::move(data);
  log_.push_back(e);
  ready_.entries.push_back(std::move(e));
}

void group::send_append(progress& p, time_point now, empty_append empty) {
  if (p.next <= snapshot_index_) {
    // It needs entries we compacted: send the snapshot, unless it is on its way.
    if (p.snapshot_sent == snapshot_index_ && now - p.snapshot_sent_at < cfg_.election_min) return;
    p.state = progress::mode::probe;
    p.snapshot_sent = snapshot_index_;
    p.snapshot_sent_at = now;
    message m;
    m.type = msg_type::install_snapshot;
    m.to = p.id;
    m.prev_index = snapshot_index_;
    m.prev_term = snapshot_term_;
    m.config = base_config_;
    m.commit = commit_;
    m.sent_at = now;
    send(std::move(m));
    return;
  }
  const index_t last = last_index();
  index_t n = 0;
  if (p.next <= last) n = std::min<index_t>(last - p.next + 1, cfg_.max_entries_per_append);
  if (p.state == progress::mode::replicate) {
    const index_t room =
        p.match + cfg_.max_inflight_entries > p.next - 1 ? p.match + cfg_.max_inflight_entries - (p.next - 1) : 0;
    n = std::min(n, room);
  }
  if (n == 0 && empty == empty_append::skip) return;
  message m;
  m.type = msg_type::append;
  m.to = p.id;
  m.prev_index = p.next - 1;
  m.prev_term = term_at(m.prev_index);
  const auto first = log_.begin() + static_cast<std::ptrdiff_t>(p.next - 1 - snapshot_index_);
  m.entries.assign(first, first + static_cast<std::ptrdiff_t>(n));
  m.commit = commit_;
  m.sent_at = now;
  // Probe sends the same range again until a reply says where the logs match.
  if (p.state == progress::mode::replicate) p.next += n;
  send(std::move(m));
}

void group::send_heartbeats(time_point now) {
  for (const auto& p : peers_) {
    message m;
    m.type = msg_type::heartbeat;
    m.to = p.id;
    m.commit = commit_;
    m.sent_at = now;
    send(std::move(m));
  }
}

void group::handle_append_reply(const message& m, time_point now) {
  if (role_ != role::leader) return;
  progress* p = find_progress(m.from);
  if (p == nullptr) return;
  p->last_heard = now;
  if (m.sent_at != no_time) p->acked_sent_at = std::max(p->acked_sent_at.value_or(m.sent_at), m.sent_at);
  if (m.granted) {
    p->durable = std::max(p->durable, std::min(m.durable, last_index()));
    p->match = std::max({p->match, p->durable, std::min(m.match, last_index())});
    if (p->state == progress::mode::probe) p->state = progress::mode::replicate;
    p->next = std::max(p->next, p->match + 1);
    maybe_commit();
    send_append(*p, now, empty_append::skip);
    maybe_send_timeout_now(*p);
    return;
  }
  // Refused. What it durably holds in this term is never lost, so a refusal at or below that is
  // an old message overtaken by later ones; so is one for another probe than the current.
  if (m.prev_index <= p->durable) return;
  if (p->state == progress::mode::probe && m.prev_index != p->next - 1) return;
  index_t next = m.conflict_index;
  if (m.conflict_term != 0) {
    // If we have entries of the follower's conflicting term, our last one of them matches its
    // copy (one leader per term): resume after it. Otherwise skip its whole run of that term.
    for (index_t i = std::min<index_t>(m.prev_index, last_index()); i > 0 && term_at(i) >= m.conflict_term; --i) {
      if (term_at(i) == m.conflict_term) {
        next = i + 1;
        break;
      }
    }
  }
  next = std::max(std::min(next, m.prev_index), p->durable + 1);
  p->state = progress::mode::probe;
  p->next = next;
  p->match = std::max(p->durable, std::min(p->match, next - 1));
  send_append(*p, now, empty_append::send);
}

void group::handle_heartbeat_reply(const message& m, time_point now) {
  if (role_ != role::leader) return;
  progress* p = find_progress(m.from);
  if (p == nullptr) return;
  p->last_heard = now;
  if (m.sent_at != no_time) p->acked_sent_at = std::max(p->acked_sent_at.value_or(m.sent_at), m.sent_at);
  p->durable = std::max(p->durable, std::min(m.durable, last_index()));
  maybe_commit();
  // Behind, and either probing or no progress since the last heartbeat (a lost append, or it
  // restarted and lost what it had not synced): probe again from what it says it has.
  if (m.match < last_index() && (p->state == progress::mode::probe || m.match == p->match_at_heartbeat)) {
    p->state = progress::mode::probe;
    p->next = std::max(m.match, p->durable) + 1;
    p->match = std::max(p->durable, std::min(p->match, m.match));
    send_append(*p, now, empty_append::send);
  }
  p->match_at_heartbeat = m.match;
}

void group::maybe_send_timeout_now(progress& p) {
  if (!transfer_ || transfer_->target != p.id || p.match != last_index() || lease_given_away_) return;
  // The target's campaign is granted even by voters that hear from us: our lease ends here, for
  // the rest of this term, even if the transfer fails.
  lease_given_away_ = true;
  message m;
  m.type = msg_type::timeout_now;
  m.to = p.id;
  send(std::move(m));
}

void group::maybe_commit() {
  if (role_ != role::leader) return;
  const index_t q = agreed<index_t>(config_, [&](node_id n) {
    if (n == cfg_.self) return std::min<index_t>(durable_, last_index());
    const progress* p = progress_of(n);
    return p != nullptr ? p->durable : 0;
  });
  if (q > commit_ && term_at(q) == term_) advance_commit(q);
}

}  // namespace ferry::consensus
