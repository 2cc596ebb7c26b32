#include "tests/consensus/simulator.h"

#include <cinttypes>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <utility>
#include <vector>

#include "broker/consensus/group.h"

namespace ferry::consensus::sim {
namespace {

using real_ns = int64_t;  // simulated real time
constexpr real_ns ms = 1'000'000;

// splitmix64: the same numbers on every platform (std:: distributions are not specified exactly).
struct rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int64_t range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo)); }
  double unit() { return static_cast<double>(next() >> 11) / 9007199254740992.0; }
  bool chance(double p) { return unit() < p; }
};

struct node {
  int id = 0;
  config cfg;
  std::unique_ptr<group> g;
  bool up = true;
  real_ns paused_until = 0;  // paused while now < paused_until
  double rate = 1;
  int64_t offset = 0;
  int incarnation = 0;
  std::vector<real_ns> crashed_at;  // per incarnation: when it ended
  // Storage: written (page cache) and durable (fsynced) log; durable hard state.
  std::vector<entry> written;
  std::vector<entry> durable;
  hard_state durable_hard;
  snapshot_ref snapshot;    // durable; `written` and `durable` hold the committed entries it covers
  int sync_generation = 0;  // an installed snapshot makes a sync in flight moot
  bool dirty = false;
  bool syncing = false;
  std::vector<entry> sync_copy;
  real_ns hard_barrier = 0;  // messages may leave only from this time (hard state durable)
  // Checks.
  index_t applied = 0;
  index_t last_commit = 0;
};

enum class ev : uint8_t { tick, deliver, sync_done, hard_done, propose, fault, restart, heal, end };

struct event {
  real_ns at = 0;
  uint64_t seq = 0;
  ev kind = ev::tick;
  int node = 0;
  int incarnation = 0;
  real_ns sent = 0;  // deliver: when the message left the sender
  int sender_incarnation = 0;
  message msg;
  hard_state hard;
};
event make_event(real_ns at, ev kind, int node = 0, int incarnation = 0) {
  event e;
  e.at = at;
  e.kind = kind;
  e.node = node;
  e.incarnation = incarnation;
  return e;
}
struct later {
  bool operator()(const event& a, const event& b) const { return a.at != b.at ? a.at > b.at : a.seq > b.seq; }
};

struct trace_line {
  real_ns at;
  std::string text;
};

class simulation {
 public:
  explicit simulation(const options& opt) : opt_(opt), rng_{opt.seed * 0x9e3779b97f4a7c15ULL + 1} {}

  result run() {
    const int total = opt_.voters + opt_.learners;
    nodes_.resize(total + 1);
    links_.assign(total + 1, std::vector<bool>(total + 1, true));
    for (int i = 1; i <= total; ++i) {
      node& nd = nodes_[i];
      nd.id = i;
      const double r = rng_.unit();
      const double rho = opt_.clock_rho < 0 ? opt_.rho : opt_.clock_rho;
      nd.rate = r < 0.3 ? 1 - rho : r < 0.6 ? 1 + rho : 1 - rho + 2 * rho * rng_.unit();
      nd.offset = rng_.range(0, 1000'000 * ms);
      for (int v = 1; v <= opt_.voters; ++v) nd.cfg.voters.push_back(node_id{v});
      for (int l = opt_.voters + 1; l <= total; ++l) nd.cfg.learners.push_back(node_id{l});
      nd.cfg.self = node_id{i};
      nd.cfg.max_clock_rate_error = opt_.rho;
      nd.cfg.seed = rng_.next();
      nd.g = std::make_unique<group>(nd.cfg, durable_state{}, local(nd));
      schedule(make_event(rng_.range(0, 10 * ms), ev::tick, i));
    }
    schedule(make_event(rng_.range(0, 100 * ms), ev::propose));
    fault_gap_ = rng_.chance(0.3) ? 300 * ms : 1500 * ms;  // a storm of faults, or a steady drizzle
    schedule(make_event(rng_.range(100 * ms, 1000 * ms), ev::fault));
    schedule(make_event(opt_.fault_ms * ms, ev::heal));
    schedule(make_event((opt_.fault_ms + opt_.liveness_ms) * ms, ev::end));
    while (!queue_.empty() && res_.ok && !finished_) {
      event e = queue_.top();
      queue_.pop();
      now_ = e.at;
      ++res_.events;
      handle(e);
      if (res_.ok) check_leases();
    }
    if (!res_.ok) {
      for (const auto& t : trace_) {
        char head[48];
        std::snprintf(head, sizeof head, "%10.3f ms  ", static_cast<double>(t.at) / ms);
        res_.trace += head + t.text + "\n";
      }
    }
    return res_;
  }

 private:
  time_point local(const node& nd) const {
    return time_point(nd.offset + static_cast<int64_t>(nd.rate * static_cast<double>(now_)));
  }
  bool paused(const node& nd) const { return now_ < nd.paused_until; }
  void schedule(event e) {
    e.seq = seq_++;
    queue_.push(std::move(e));
  }
  void note(std::string text) {
    if (opt_.verbose) std::printf("%10.3f ms  %s\n", static_cast<double>(now_) / ms, text.c_str());
    trace_.push_back(trace_line{now_, std::move(text)});
    if (trace_.size() > 400) trace_.pop_front();
  }
  void fail(const std::string& what) {
    if (!res_.ok) return;
    res_.ok = false;
    char buf[64];
    std::snprintf(buf, sizeof buf, "at %.3f ms: ", static_cast<double>(now_) / ms);
    res_.failure = buf + what;
  }
  static std::string fmt(const char* f, auto... args) {
    char buf[256];
    std::snprintf(buf, sizeof buf, f, args...);
    return buf;
  }

  void handle(const event& e) {
    switch (e.kind) {
      case ev::tick: {
        node& nd = nodes_[e.node];
        if (nd.up && !paused(nd)) {
          nd.g->tick(local(nd));
          after_input(nd);
        }
        schedule(make_event(now_ + rng_.range(5 * ms, 15 * ms), ev::tick, e.node));
        break;
      }
      case ev::deliver:
        deliver(e);
        break;
      case ev::sync_done:
        sync_done(e);
        break;
      case ev::hard_done: {
        node& nd = nodes_[e.node];
        if (nd.incarnation == e.incarnation) nd.durable_hard = e.hard;
        break;
      }
      case ev::propose:
        propose();
        break;
      case ev::fault:
        fault();
        break;
      case ev::restart:
        restart(nodes_[e.node]);
        break;
      case ev::heal:
        heal();
        break;
      case ev::end:
        if (recovered_at_ < 0) fail("liveness: no new entry committed within the bound after healing");
        finished_ = true;
        break;
    }
  }

  void deliver(const event& e) {
    const node& from = nodes_[e.msg.from.value];
    // A message that had not left when its sender crashed never left at all.
    if (from.incarnation != e.sender_incarnation && from.crashed_at[e.sender_incarnation] < e.sent) return;
    node& nd = nodes_[e.node];
    if (!nd.up) return;
    if (!links_[e.msg.from.value][e.node]) return;  // cut while in flight
    if (paused(nd)) {
      event again = e;
      again.at = nd.paused_until + rng_.range(0, ms);
      schedule(std::move(again));
      return;
    }
    if (opt_.verbose)
      note(fmt("n%d <- n%d %s t%" PRIu64, nd.id, e.msg.from.value, msg_type_name(e.msg.type), e.msg.term));
    nd.g->step(e.msg, local(nd));
    after_input(nd);
  }

  void sync_done(const event& e) {
    node& nd = nodes_[e.node];
    if (nd.incarnation != e.incarnation || e.sender_incarnation != nd.sync_generation) return;
    if (paused(nd)) {
      event again = e;
      again.at = nd.paused_until + rng_.range(0, ms);
      schedule(std::move(again));
      return;
    }
    nd.durable = nd.sync_copy;
    nd.syncing = false;
    if (!nd.durable.empty()) nd.g->synced(nd.durable.size(), nd.durable.back().term);
    after_input(nd);
  }

  // Does what a host does with each ready, and checks what the node did.
  void after_input(node& nd) {
    group& g = *nd.g;
    while (g.has_ready()) {
      ready r = g.take_ready();
      if (r.snapshot) install_snapshot(nd, *r.snapshot);
      if (r.truncate_from) {
        if (*r.truncate_from <= nd.applied) fail(fmt("n%d truncates applied entry %" PRIu64, nd.id, *r.truncate_from));
        nd.written.resize(std::min<size_t>(nd.written.size(), *r.truncate_from - 1));
        nd.dirty = true;
      }
      for (const entry& e : r.entries) {
        if (e.index != nd.written.size() + 1)
          fail(fmt("n%d writes index %" PRIu64 " after %zu", nd.id, e.index, nd.written.size()));
        check_log_matching(nd, e);
        nd.written.push_back(e);
        nd.dirty = true;
      }
      if (r.hard) {
        nd.hard_barrier = std::max(now_, nd.hard_barrier) + rng_.range(ms / 2, 5 * ms);
        event h = make_event(nd.hard_barrier, ev::hard_done, nd.id, nd.incarnation);
        h.hard = *r.hard;
        schedule(std::move(h));
      }
      for (const message& m : r.messages) send(nd, m);
      for (const entry& e : r.committed) check_committed(nd, e);
      if (r.role_changed) {
        note(fmt("n%d is %s term %" PRIu64 " leader n%d", nd.id, role_name(g.current_role()), g.term(),
                 g.leader().value));
        if (g.current_role() == role::leader) check_new_leader(nd);
      }
    }
    if (g.last_index() != nd.written.size())
      fail(fmt("n%d: core log %" PRIu64 " != written %zu", nd.id, g.last_index(), nd.written.size()));
    if (g.commit_index() < nd.last_commit)
      fail(fmt("n%d: commit index went back from %" PRIu64, nd.id, nd.last_commit));
    nd.last_commit = g.commit_index();
    if (nd.dirty && !nd.syncing) {
      nd.sync_copy = nd.written;
      nd.dirty = false;
      nd.syncing = true;
      const real_ns latency = rng_.chance(0.05) ? rng_.range(20 * ms, 80 * ms) : rng_.range(ms / 2, 10 * ms);
      event e = make_event(now_ + latency, ev::sync_done, nd.id, nd.incarnation);
      e.sender_incarnation = nd.sync_generation;
      schedule(std::move(e));
    }
  }

  void send(const node& from, const message& m) {
    ++res_.messages;
    const int to = m.to.value;
    const real_ns leaves = std::max(now_, from.hard_barrier);
    if (!links_[from.id][to] || rng_.chance(drop_)) return;
    const int copies = rng_.chance(dup_) ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      real_ns delay = rng_.range(ms / 5, 5 * ms);
      if (rng_.chance(reorder_)) delay += rng_.range(0, 60 * ms);
      event e = make_event(leaves + delay, ev::deliver, to);
      e.sent = leaves;
      e.sender_incarnation = from.incarnation;
      e.msg = m;
      schedule(std::move(e));
    }
  }

  // Log matching, checked incrementally: every (index, term) has one payload and one previous
  // term everywhere; by induction, two logs that share an (index, term) share the whole prefix.
  void check_log_matching(const node& nd, const entry& e) {
    const term_t prev = e.index > 1 ? nd.written[e.index - 2].term : 0;
    auto [it, fresh] = entries_.try_emplace({e.index, e.term}, std::make_pair(e.data, prev));
    if (!fresh && (it->second.first != e.data || it->second.second != prev)) {
      fail(fmt("log matching: n%d has a different (index %" PRIu64 ", term %" PRIu64 ")", nd.id, e.index, e.term));
    }
  }

  void check_committed(node& nd, const entry& e) {
    if (e.index != nd.applied + 1) fail(fmt("n%d applies %" PRIu64 " after %" PRIu64, nd.id, e.index, nd.applied));
    nd.applied = e.index;
    if (e.index <= committed_.size()) {
      if (committed_[e.index - 1] != e) fail(fmt("committed entry %" PRIu64 " changed on n%d", e.index, nd.id));
      return;
    }
    committed_.push_back(e);
    commit_terms_.push_back(nd.g->term());
    ++res_.committed;
    if (heal_seq_ >= 0 && recovered_at_ < 0 && e.kind == entry_kind::normal && e.data.size() > 1 &&
        std::stoll(e.data.substr(1)) >= heal_seq_) {
      recovered_at_ = now_;
      res_.recovery_ms = (now_ - opt_.fault_ms * ms) / ms;
      note(fmt("recovered: %s committed", e.data.c_str()));
    }
  }

  void check_new_leader(const node& nd) {
    const term_t t = nd.g->term();
    auto [it, fresh] = leaders_.try_emplace(t, nd.id);
    if (!fresh && it->second != nd.id) fail(fmt("two leaders in term %" PRIu64 ": n%d and n%d", t, it->second, nd.id));
    if (fresh) ++res_.leaders;
    // Leader completeness: an entry known committed in term T is in every leader's log of a later
    // term. (A leader of an older term, elected late from votes cast long ago, may lack it; it
    // can commit nothing, as the next check and log matching would show.)
    for (const entry& c : committed_) {
      if (c.index < nd.g->snapshot_index()) continue;  // in its snapshot, checked when it was made
      if (commit_terms_[c.index - 1] < t && nd.g->term_at(c.index) != c.term) {
        fail(fmt("leader n%d (term %" PRIu64 ") lacks committed entry %" PRIu64, nd.id, t, c.index));
        return;
      }
    }
  }

  void check_leases() {
    int holder = 0;
    for (size_t i = 1; i < nodes_.size(); ++i) {
      const node& nd = nodes_[i];
      if (!nd.up || !nd.g->holds_lease(local(nd))) continue;
      if (holder != 0) fail(fmt("n%d and n%d both hold the lease", holder, nd.id));
      holder = nd.id;
    }
  }

  void propose() {
    schedule(make_event(now_ + rng_.range(20 * ms, 200 * ms), ev::propose));
    if (idle_ && now_ < opt_.fault_ms * ms) return;
    node& nd = nodes_[rng_.range(1, static_cast<int64_t>(nodes_.size()))];
    if (!nd.up || paused(nd)) return;
    if (rng_.chance(0.05) && nd.applied > 0) {
      compact(nd, nd.applied -
                      static_cast<index_t>(rng_.range(0, static_cast<int64_t>(std::min<index_t>(nd.applied, 30)))));
      after_input(nd);
    }
    node* target = &nd;
    if (nd.g->current_role() != role::leader && nd.g->leader().value != 0) target = &nodes_[nd.g->leader().value];
    if (!target->up || paused(*target) || target->g->current_role() != role::leader) return;
    const int64_t k = proposals_++;
    auto r = target->g->propose("p" + std::to_string(k), local(*target));
    if (r.status == propose_status::ok) note(fmt("n%d proposes p%" PRId64 " at %" PRIu64, target->id, k, r.index));
    after_input(*target);
  }

  // The host's snapshot is the committed prefix; the simulator knows it, so it needs no data.
  std::vector<entry> committed_prefix(index_t upto) const {
    return {committed_.begin(), committed_.begin() + static_cast<std::ptrdiff_t>(upto)};
  }

  void install_snapshot(node& nd, const snapshot_ref& s) {
    if (s.index > committed_.size() || committed_[s.index - 1].term != s.term) {
      fail(fmt("n%d installs a snapshot of uncommitted entry %" PRIu64, nd.id, s.index));
      return;
    }
    note(fmt("n%d installs snapshot %" PRIu64, nd.id, s.index));
    ++res_.snapshots;
    nd.written = committed_prefix(s.index);
    nd.durable = nd.written;
    nd.snapshot = s;
    nd.applied = s.index;
    nd.dirty = false;
    nd.syncing = false;
    ++nd.sync_generation;
  }

  // The host snapshots node `nd` at `upto` (applied there) and compacts its log.
  void compact(node& nd, index_t upto) {
    if (upto <= nd.snapshot.index || upto > nd.applied) return;
    nd.g->compact(upto);
    nd.snapshot = snapshot_ref{upto, committed_[upto - 1].term, nd.g->snapshot_membership()};
    if (nd.durable.size() < upto) nd.durable = committed_prefix(upto);
    if (nd.g->snapshot_index() != upto) fail(fmt("n%d: compact to %" PRIu64 " did not take", nd.id, upto));
  }

  void crash(node& nd) {
    if (!nd.up) return;
    ++res_.crashes;
    note(fmt("n%d crashes (durable log %zu, written %zu)", nd.id, nd.durable.size(), nd.written.size()));
    nd.up = false;
    nd.crashed_at.push_back(now_);
    ++nd.incarnation;
    nd.written = nd.durable;
    nd.syncing = false;
    nd.dirty = false;
    nd.paused_until = 0;
    const real_ns down = rng_.chance(0.3) ? rng_.range(ms, 50 * ms) : rng_.range(50 * ms, 3000 * ms);
    schedule(make_event(now_ + down, ev::restart, nd.id));
  }

  void restart(node& nd) {
    if (nd.up) return;
    nd.up = true;
    nd.hard_barrier = now_;
    // The commit index is volatile: it starts again from what is durable (the snapshot).
    durable_state d;
    d.hard = nd.durable_hard;
    d.snapshot_index = nd.snapshot.index;
    d.snapshot_term = nd.snapshot.term;
    if (nd.snapshot.index > 0) d.snapshot_config = nd.snapshot.config;
    d.log.assign(nd.durable.begin() + static_cast<std::ptrdiff_t>(nd.snapshot.index), nd.durable.end());
    nd.applied = nd.snapshot.index;  // the snapshot is applied state
    nd.last_commit = nd.snapshot.index;
    nd.g = std::make_unique<group>(nd.cfg, std::move(d), local(nd));
    note(fmt("n%d restarts: term %" PRIu64 " vote n%d log %zu", nd.id, nd.durable_hard.term, nd.durable_hard.vote.value,
             nd.durable.size()));
  }

  void fault() {
    if (now_ >= opt_.fault_ms * ms) return;
    schedule(make_event(now_ + rng_.range(fault_gap_ / 10, fault_gap_), ev::fault));
    const int n = static_cast<int>(nodes_.size()) - 1;
    node& victim = nodes_[rng_.range(1, n + 1)];
    const int64_t pick = rng_.range(0, 100);
    if (pick < 15) {
      crash(victim);
    } else if (pick < 30) {
      const real_ns len = rng_.chance(0.7) ? rng_.range(900 * ms, 4000 * ms) : rng_.range(10 * ms, 900 * ms);
      if (victim.up) {
        ++res_.pauses;
        victim.paused_until = now_ + len;
        note(fmt("n%d pauses for %" PRId64 " ms", victim.id, len / ms));
      }
    } else if (pick < 45) {
      // Split in two: each node on side A or B at random.
      std::vector<int> side(n + 1);
      for (int i = 1; i <= n; ++i) side[i] = static_cast<int>(rng_.range(0, 2));
      for (int a = 1; a <= n; ++a)
        for (int b = 1; b <= n; ++b) links_[a][b] = side[a] == side[b];
      note("partition");
    } else if (pick < 55) {
      const int a = static_cast<int>(rng_.range(1, n + 1));
      const int b = static_cast<int>(rng_.range(1, n + 1));
      links_[a][b] = false;
      const bool both = rng_.chance(0.5);
      if (both) links_[b][a] = false;
      note(fmt("cut n%d -> n%d (%s)", a, b, both ? "both ways" : "one way"));
    } else if (pick < 70) {
      for (auto& row : links_) row.assign(row.size(), true);
      note("network whole");
    } else if (pick < 75) {
      idle_ = !idle_;  // idle spells leave logs equal, so more campaigns are up to date
      note(idle_ ? "clients idle" : "clients busy");
    } else if (pick < 80) {
      drop_ = rng_.chance(0.5) ? 0 : rng_.unit() * 0.3;
      dup_ = rng_.unit() * 0.1;
      reorder_ = rng_.unit() * 0.3;
      note(fmt("drop %.2f dup %.2f reorder %.2f", drop_, dup_, reorder_));
    } else if (pick < 84) {
      change_membership();
    } else if (pick < 88) {
      for (size_t i = 1; i < nodes_.size(); ++i) {
        node& nd = nodes_[i];
        if (nd.up && !paused(nd) && nd.g->current_role() == role::leader) {
          const int target = static_cast<int>(rng_.range(1, opt_.voters + 1));
          if (nd.g->transfer_leadership(node_id{target}, local(nd))) {
            ++res_.transfers;
            note(fmt("n%zu transfers to n%d", i, target));
          }
          after_input(nd);
        }
      }
    } else {
      for (size_t i = 1; i < nodes_.size(); ++i) {
        if (!nodes_[i].up) restart(nodes_[i]);
      }
    }
  }

  // The leader (if any) moves the group to a random set of voters from all the nodes, the rest
  // learners, by joint consensus.
  void change_membership() {
    const int n = static_cast<int>(nodes_.size()) - 1;
    for (int i = 1; i <= n; ++i) {
      node& nd = nodes_[i];
      if (!nd.up || paused(nd) || nd.g->current_role() != role::leader) continue;
      std::vector<node_id> voters, learners;
      for (int j = 1; j <= n; ++j) (rng_.chance(0.7) ? voters : learners).push_back(node_id{j});
      if (voters.empty()) voters.push_back(node_id{i});
      std::string text;
      for (node_id v : voters) text += " n" + std::to_string(v.value);
      auto r = nd.g->propose_membership(voters, learners, local(nd));
      if (r.status == propose_status::ok) {
        ++res_.config_changes;
        note(fmt("n%d proposes voters%s at %" PRIu64, i, text.c_str(), r.index));
      }
      after_input(nd);
    }
  }

  void heal() {
    for (size_t i = 1; i < nodes_.size(); ++i) {
      node& nd = nodes_[i];
      if (!nd.up) restart(nd);
      nd.paused_until = 0;
    }
    for (auto& row : links_) row.assign(row.size(), true);
    drop_ = 0;
    dup_ = 0;
    heal_seq_ = proposals_;
    note("healed: network whole, every node up and running");
  }

  options opt_;
  rng rng_;
  result res_;
  std::vector<node> nodes_;  // index = node id; [0] unused
  std::vector<std::vector<bool>> links_;
  std::priority_queue<event, std::vector<event>, later> queue_;
  uint64_t seq_ = 0;
  real_ns now_ = 0;
  double drop_ = 0.02;
  double dup_ = 0.02;
  double reorder_ = 0.1;
  std::deque<trace_line> trace_;
  std::map<std::pair<index_t, term_t>, std::pair<std::string, term_t>> entries_;
  std::vector<entry> committed_;
  std::vector<term_t> commit_terms_;  // the term of the node that first reported each commit
  std::map<term_t, int> leaders_;
  int64_t proposals_ = 0;
  int64_t heal_seq_ = -1;
  real_ns recovered_at_ = -1;
  bool finished_ = false;
  bool idle_ = false;
  real_ns fault_gap_ = 1500 * ms;  // faults come every fault_gap_ / 10 .. fault_gap_
};

}  // namespace

result run(const options& opt) { return simulation(opt).run(); }

}  // namespace ferry::consensus::sim
