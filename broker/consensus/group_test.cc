#include "broker/consensus/group.h"

#include <functional>
#include <map>
#include <memory>

#include <gtest/gtest.h>

namespace ferry::consensus {
namespace {

using namespace std::chrono_literals;

node_id n(int i) { return node_id{i}; }

// A hand-driven group of cores: messages wait in `wire` until the test delivers them, the clock
// moves only when the test says, and storage syncs at once unless `auto_sync` is off.
struct cluster {
  std::map<int, std::unique_ptr<group>> nodes;
  std::map<int, std::vector<entry>> disk;  // what each node wrote (synced or not)
  std::map<int, hard_state> hard;
  std::vector<message> wire;
  time_point now{0};
  bool auto_sync = true;

  explicit cluster(int voters, int learners = 0, const std::map<int, durable_state>& restored = {}) {
    config c;
    for (int i = 1; i <= voters; ++i) c.voters.push_back(n(i));
    for (int i = voters + 1; i <= voters + learners; ++i) c.learners.push_back(n(i));
    for (int i = 1; i <= voters + learners; ++i) {
      c.self = n(i);
      c.seed = 7;
      durable_state d;
      if (auto it = restored.find(i); it != restored.end()) d = it->second;
      disk[i] = d.log;
      nodes[i] = std::make_unique<group>(c, d, now);
    }
  }
  group& operator[](int i) { return *nodes.at(i); }

  // Does what the host does with each ready: write, persist, send.
  void drain() {
    for (auto& [id, g] : nodes) {
      while (g->has_ready()) {
        ready r = g->take_ready();
        auto& log = disk[id];
        if (r.snapshot) {  // the snapshot's entries stand in for the state it carries
          log.clear();
          for (index_t i = 1; i <= r.snapshot->index; ++i)
            log.push_back(entry{i, r.snapshot->term, entry_kind::noop, {}});
        }
        if (r.truncate_from) log.resize(std::min<size_t>(log.size(), *r.truncate_from - 1));
        for (auto& e : r.entries) log.push_back(e);
        if (r.hard) hard[id] = *r.hard;
        for (auto& m : r.messages) wire.push_back(m);
        if (auto_sync && !log.empty()) g->synced(log.size(), log.back().term);
      }
    }
  }
  void sync(int id, index_t upto) {
    nodes.at(id)->synced(upto, disk[id][upto - 1].term);
    drain();
  }
  // Delivers every message on the wire that `keep` accepts (the rest are dropped), until quiet.
  void deliver(const std::function<bool(const message&)>& keep = {}) {
    drain();
    for (int rounds = 0; !wire.empty() && rounds < 1000; ++rounds) {
      auto batch = std::move(wire);
      wire.clear();
      for (auto& m : batch) {
        if (!keep || keep(m)) nodes.at(m.to.value)->step(m, now);
      }
      drain();
    }
  }
  void tick_all() {
    for (auto& [id, g] : nodes) g->tick(now);
    drain();
  }
  // Node `id` times out and campaigns; everything is delivered.
  void elect(int id) {
    now += 2100ms;  // past every election deadline and every node's leader contact
    nodes.at(id)->tick(now);
    deliver();
  }
};

std::vector<entry> log_of_terms(std::initializer_list<term_t> terms) {
  std::vector<entry> log;
  for (term_t t : terms) log.push_back(entry{log.size() + 1, t, entry_kind::normal, "x"});
  return log;
}

durable_state on_disk(hard_state h, std::vector<entry> log) {
  durable_state d;
  d.hard = h;
  d.log = std::move(log);
  return d;
}

TEST(consensus, pre_vote_then_vote_elects_a_leader_that_commits_a_noop) {
  cluster c(3);
  c.elect(1);
  EXPECT_EQ(c[1].current_role(), role::leader);
  EXPECT_EQ(c[1].term(), 1u);
  EXPECT_EQ(c[2].leader(), n(1));
  EXPECT_EQ(c[1].commit_index(), 1u);
  EXPECT_EQ(c[1].entry_at(1).kind, entry_kind::noop);
  EXPECT_EQ(c.hard[2].vote, n(1));
}

TEST(consensus, pre_vote_does_not_bump_any_term) {
  cluster c(3);
  c.now += 2100ms;
  c[3].tick(c.now);
  c.drain();
  EXPECT_EQ(c[3].current_role(), role::pre_candidate);
  c.deliver([](const message& m) { return m.type == msg_type::pre_vote; });  // replies are lost
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(c[i].term(), 0u) << i;
  EXPECT_EQ(c[3].current_role(), role::pre_candidate);
}

TEST(consensus, vote_refused_for_a_stale_log) {
  cluster c(3, 0, {{2, on_disk(hard_state{2, {}}, log_of_terms({1, 2}))}});
  c.now += 2100ms;
  message m;
  m.type = msg_type::vote;
  m.from = n(1);
  m.to = n(2);
  m.term = 3;
  m.last_index = 5;
  m.last_term = 1;  // longer, but its last term is older
  c[2].step(m, c.now);
  ready r = c[2].take_ready();
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_FALSE(r.messages[0].granted);
  EXPECT_EQ(c[2].term(), 3u);
}

TEST(consensus, granted_vote_leaves_with_its_hard_state_in_the_same_ready) {
  cluster c(3);
  c.now += 2100ms;
  message m;
  m.type = msg_type::vote;
  m.from = n(1);
  m.to = n(2);
  m.term = 1;
  c[2].step(m, c.now);
  ready r = c[2].take_ready();
  ASSERT_TRUE(r.hard.has_value());
  EXPECT_EQ(*r.hard, (hard_state{1, n(1)}));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_TRUE(r.messages[0].granted);
}

TEST(consensus, votes_ignored_while_a_live_leader_is_heard) {
  cluster c(3);
  c.elect(1);
  c.now += 500ms;
  c.tick_all();  // heartbeat
  c.deliver();
  for (auto type : {msg_type::pre_vote, msg_type::vote}) {
    message m;
    m.type = type;
    m.from = n(3);
    m.to = n(2);
    m.term = 5;
    m.last_index = 10;
    m.last_term = 4;
    c[2].step(m, c.now + 300ms);
    EXPECT_FALSE(c[2].has_ready());
    EXPECT_EQ(c[2].term(), 1u);
  }
}

TEST(consensus, restarted_node_refuses_votes_for_an_election_timeout) {
  cluster c(3);
  message m;
  m.type = msg_type::vote;
  m.from = n(3);
  m.to = n(2);
  m.term = 1;
  c[2].step(m, c.now + 999ms);
  EXPECT_FALSE(c[2].has_ready());
  c[2].step(m, c.now + 1000ms);
  EXPECT_TRUE(c[2].has_ready());
}

TEST(consensus, conflict_hint_skips_a_divergent_term_in_one_round_trip) {
  cluster c(3, 0,
            {{1, on_disk(hard_state{3, {}}, log_of_terms({1, 1, 3, 3, 3, 3, 3}))},
             {2, on_disk(hard_state{2, {}}, log_of_terms({1, 1, 2, 2, 2, 2}))},
             {3, on_disk(hard_state{3, {}}, log_of_terms({1, 1, 3, 3, 3, 3, 3}))}});
  std::vector<message> to_2;
  c.now += 2100ms;
  c[1].tick(c.now);
  c.deliver([&](const message& m) {
    if (m.to == n(2) && m.type == msg_type::append) to_2.push_back(m);
    return true;
  });
  ASSERT_EQ(c[1].current_role(), role::leader);
  // 1: after the new noop (prev 7: too long for it); 2: prev 6, term 3 (refused: it has term 2
  // there, first at index 3); 3: straight to prev 2, past the whole run of term 2.
  ASSERT_GE(to_2.size(), 3u);
  EXPECT_EQ(to_2[1].prev_index, 6u);
  EXPECT_EQ(to_2[2].prev_index, 2u);
  EXPECT_EQ(c.disk[2].size(), 8u);
  EXPECT_EQ(c.disk[2][2].term, 3u);
  EXPECT_EQ(c[2].commit_index(), c[1].commit_index());
}

TEST(consensus, commit_waits_for_a_majority_of_fsyncs) {
  cluster c(3);
  c.auto_sync = false;
  c.elect(1);
  ASSERT_EQ(c[1].current_role(), role::leader);
  EXPECT_EQ(c[1].commit_index(), 0u);  // everyone wrote the noop, nobody synced it
  c.sync(1, 1);
  c.deliver();
  EXPECT_EQ(c[1].commit_index(), 0u);  // the leader's own fsync is one of three
  c.sync(3, 1);
  c.deliver();
  EXPECT_EQ(c[1].commit_index(), 1u);
}

TEST(consensus, entries_of_an_older_term_do_not_commit_by_counting) {
  cluster c(3, 0,
            {{1, on_disk(hard_state{1, {}}, log_of_terms({1, 1}))},
             {2, on_disk(hard_state{1, {}}, log_of_terms({1}))},
             {3, on_disk(hard_state{1, {}}, log_of_terms({1}))}});
  c.auto_sync = false;
  c.elect(1);
  ASSERT_EQ(c[1].current_role(), role::leader);
  ASSERT_EQ(c.disk[2].size(), 3u);
  c.sync(1, 3);
  c.sync(2, 2);  // index 2 (term 1) is durable on a majority; index 3 (term 2) only on the leader
  c.deliver();
  EXPECT_EQ(c[1].commit_index(), 0u);
  c.sync(2, 3);
  c.deliver();
  EXPECT_EQ(c[1].commit_index(), 3u);
}

TEST(consensus, leader_steps_down_without_a_quorum) {
  cluster c(3);
  c.elect(1);
  for (int i = 0; i < 9; ++i) {
    c.now += 100ms;
    c.tick_all();
    c.deliver([](const message& m) { return m.to == n(1) && m.from == n(2); });
  }
  EXPECT_EQ(c[1].current_role(), role::leader);  // node 2 still answers: 2 of 3
  for (int i = 0; i < 11; ++i) {
    c.now += 100ms;
    c[1].tick(c.now);
    c.deliver([](const message&) { return false; });
  }
  EXPECT_EQ(c[1].current_role(), role::follower);
}

TEST(consensus, lease_needs_a_majority_ack_and_ends_lease_after_its_send_time) {
  cluster c(3);
  c.now += 2100ms;
  c[1].tick(c.now);
  c.deliver([](const message& m) { return m.type != msg_type::append_reply; });
  ASSERT_EQ(c[1].current_role(), role::leader);
  EXPECT_FALSE(c[1].holds_lease(c.now));  // nobody acknowledged a round yet
  const time_point sent = c.now;
  c.now += 100ms;
  c.tick_all();  // heartbeat round sent at `hb`
  const time_point hb = c.now;
  c.deliver();
  ASSERT_EQ(c[1].commit_index(), 1u);
  EXPECT_EQ(c[1].lease_expiry(), hb + 800ms);
  EXPECT_TRUE(c[1].holds_lease(hb + 799ms));
  EXPECT_FALSE(c[1].holds_lease(hb + 800ms));
  EXPECT_GT(hb, sent);
}

TEST(consensus, transfer_hands_leadership_to_a_caught_up_voter) {
  cluster c(3);
  c.elect(1);
  c.now += 100ms;
  c.tick_all();
  c.deliver();
  ASSERT_TRUE(c[1].holds_lease(c.now));
  ASSERT_TRUE(c[1].transfer_leadership(n(2), c.now));
  EXPECT_EQ(c[1].propose("refused", c.now).status, propose_status::transferring);
  EXPECT_FALSE(c[1].holds_lease(c.now));  // timeout_now went out: the lease is given away
  c.deliver();
  EXPECT_EQ(c[2].current_role(), role::leader);
  EXPECT_EQ(c[2].term(), 2u);
  EXPECT_EQ(c[1].current_role(), role::follower);
  EXPECT_EQ(c[2].propose("ok", c.now).status, propose_status::ok);
}

TEST(consensus, learner_gets_the_log_but_never_votes_or_counts) {
  cluster c(3, 1);
  c.elect(1);
  ASSERT_EQ(c[1].current_role(), role::leader);
  EXPECT_EQ(c[4].current_role(), role::learner);
  c.auto_sync = false;
  auto r = c[1].propose("a", c.now);
  c.deliver();
  c.sync(1, r.index);
  c.sync(4, r.index);
  c.deliver();
  EXPECT_EQ(c[1].commit_index(), 1u);  // leader + learner durable: not a majority of voters
  c.sync(2, r.index);
  c.deliver();
  c.now += 100ms;
  c.tick_all();
  c.deliver();
  EXPECT_EQ(c[1].commit_index(), r.index);
  EXPECT_EQ(c[4].commit_index(), r.index);
  c.now += 10s;
  c[4].tick(c.now);
  EXPECT_EQ(c[4].current_role(), role::learner);
  EXPECT_FALSE(c[4].has_ready());
}

TEST(consensus, follower_behind_the_log_start_gets_the_snapshot_then_entries) {
  cluster c(3);
  c.elect(1);
  auto cut_3 = [](const message& m) { return m.to != n(3) && m.from != n(3); };
  for (int i = 0; i < 5; ++i) (void)c[1].propose("e" + std::to_string(i), c.now);
  c.deliver(cut_3);
  ASSERT_EQ(c[1].commit_index(), 6u);
  c[1].compact(4);
  EXPECT_EQ(c[1].snapshot_index(), 4u);
  EXPECT_EQ(c[1].term_at(4), 1u);
  (void)c[1].propose("e5", c.now);
  std::vector<message> to_3;
  c.now += 100ms;
  c.tick_all();
  c.deliver([&](const message& m) {
    if (m.to == n(3)) to_3.push_back(m);
    return true;
  });
  ASSERT_FALSE(to_3.empty());
  bool snapshot_sent = false;
  for (const auto& m : to_3) {
    if (m.type == msg_type::install_snapshot) {
      snapshot_sent = true;
      EXPECT_EQ(m.prev_index, 4u);
    }
  }
  EXPECT_TRUE(snapshot_sent);
  EXPECT_EQ(c[3].snapshot_index(), 4u);
  EXPECT_EQ(c[3].last_index(), 7u);
  EXPECT_EQ(c[3].entry_at(7).data, "e5");
  EXPECT_EQ(c[1].commit_index(), 7u);
  EXPECT_EQ(c.disk[3].size(), 7u);
  EXPECT_EQ(c[3].durable_index(), 7u);
}

TEST(consensus, install_snapshot_only_commits_when_the_entry_is_already_there) {
  cluster c(3);
  c.elect(1);
  message m;
  m.type = msg_type::install_snapshot;
  m.from = n(1);
  m.to = n(2);
  m.term = 1;
  m.prev_index = 1;
  m.prev_term = 1;
  (void)c[2].take_ready();
  c[2].step(m, c.now);
  ready r = c[2].take_ready();
  EXPECT_FALSE(r.snapshot.has_value());
  EXPECT_EQ(c[2].commit_index(), 1u);
  m.prev_index = 9;  // past its log: installed
  c[2].step(m, c.now);
  r = c[2].take_ready();
  ASSERT_TRUE(r.snapshot.has_value());
  EXPECT_EQ(r.snapshot->index, 9u);
  EXPECT_EQ(c[2].last_index(), 9u);
  EXPECT_EQ(c[2].commit_index(), 9u);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].durable, 9u);
}

TEST(consensus, group_of_one_commits_after_its_own_fsync_and_holds_the_lease) {
  cluster c(1);
  c.auto_sync = false;
  c.elect(1);
  ASSERT_EQ(c[1].current_role(), role::leader);
  EXPECT_EQ(c[1].commit_index(), 0u);
  c.sync(1, 1);
  EXPECT_EQ(c[1].commit_index(), 1u);
  EXPECT_TRUE(c[1].holds_lease(c.now + 1000s));
}

TEST(consensus, membership_encoding_round_trips) {
  const membership m{{n(1), n(4), n(5)}, {n(1), n(2), n(3)}, {n(7)}};
  membership back;
  ASSERT_TRUE(decode_membership(encode_membership(m), back));
  EXPECT_EQ(back, m);
  ASSERT_TRUE(decode_membership(encode_membership(membership{{n(2)}, {}, {}}), back));
  EXPECT_EQ(back.voters.size(), 1u);
  EXPECT_FALSE(back.joint());
  EXPECT_FALSE(decode_membership("v=1;o=x;l=", back));
}

TEST(consensus, joint_change_needs_both_majorities_then_moves_to_the_new_voters) {
  cluster c(3, 2);  // voters 1..3, learners 4 and 5
  c.elect(1);
  ASSERT_EQ(c[1].current_role(), role::leader);
  auto r = c[1].propose_membership({n(1), n(4), n(5)}, {n(2), n(3)}, c.now);
  ASSERT_EQ(r.status, propose_status::ok);
  EXPECT_TRUE(c[1].current_membership().joint());
  EXPECT_EQ(c[1].propose_membership({n(1)}, {}, c.now).status, propose_status::config_pending);
  c.deliver([](const message& m) { return m.to != n(4) && m.to != n(5); });
  EXPECT_LT(c[1].commit_index(), r.index);  // the old voters agree; of the new, only the leader
  for (int i = 0; i < 2; ++i) {             // the second heartbeat finds 4 stalled and resends the entry
    c.now += 100ms;
    c.tick_all();
    c.deliver([](const message& m) { return m.to != n(5); });
  }
  EXPECT_GE(c[1].commit_index(), r.index);  // 1 and 4 of {1, 4, 5}, and 1..3 of {1, 2, 3}
  c.now += 100ms;
  c.tick_all();  // C_old,new is committed: the leader appends C_new
  c.deliver();
  EXPECT_FALSE(c[1].current_membership().joint());
  EXPECT_EQ(c[4].current_role(), role::follower);
  EXPECT_EQ(c[2].current_role(), role::learner);
  EXPECT_EQ(c[1].commit_index(), c[1].last_index());
}

TEST(consensus, leader_outside_the_new_voters_steps_down_once_they_committed_it) {
  cluster c(3, 1);
  c.elect(1);
  ASSERT_EQ(c[1].propose_membership({n(2), n(3), n(4)}, {n(1)}, c.now).status, propose_status::ok);
  for (int i = 0; i < 5; ++i) {
    c.now += 100ms;
    c.tick_all();
    c.deliver();
  }
  EXPECT_EQ(c[1].current_role(), role::learner);
  EXPECT_EQ(c[1].current_membership().voters, (std::vector<node_id>{n(2), n(3), n(4)}));
  c.elect(3);  // the new voters elect one of them
  int leaders = 0;
  for (int i = 2; i <= 4; ++i) leaders += c[i].current_role() == role::leader ? 1 : 0;
  EXPECT_EQ(leaders, 1);
  EXPECT_NE(c[1].current_role(), role::leader);
}

}  // namespace
}  // namespace ferry::consensus
