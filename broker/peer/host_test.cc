// Three consensus hosts on loopback, each with its transport and an in-memory storage: the groups
// elect leaders and commit proposals over real sockets, in real (shortened) time. No sleeps: the
// io_context runs until a condition holds, with a deadline.
#include "broker/peer/host.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "broker/peer/transport.h"

namespace ferry::peer {
namespace {

namespace asio = boost::asio;
using consensus::role;

struct broker {
  node_id id;
  std::unique_ptr<memory_storage> store;
  std::unique_ptr<transport> t;
  std::unique_ptr<host> h;
  uint16_t port = 0;
  std::map<group_id, std::vector<std::string>> applied;  // normal entries' data, in commit order
};

class peer_host : public ::testing::Test {
 protected:
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::vector<std::unique_ptr<broker>> brokers;

  void TearDown() override {
    for (auto& b : brokers) {
      b->h->stop();
      b->t->close();
    }
    EXPECT_TRUE(run_until(
        [&] { return std::all_of(brokers.begin(), brokers.end(), [](const auto& b) { return b->t->stopped(); }); }));
  }

  bool run_until(const std::function<bool()>& pred, std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end) return false;
      io.run_one_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  // Three brokers, each hosting `groups` groups whose voters are the three.
  void start_cluster(size_t groups) {
    for (int id = 1; id <= 3; ++id) {
      auto b = std::make_unique<broker>();
      b->id = node_id{id};
      b->store = std::make_unique<memory_storage>(io.get_executor());
      transport_config tc;
      tc.cluster_id = "host-test";
      tc.self = b->id;
      tc.listen_port = 0;
      tc.reconnect_min = std::chrono::milliseconds(5);
      tc.reconnect_max = std::chrono::milliseconds(50);
      broker* raw = b.get();
      b->t = std::make_unique<transport>(
          io.get_executor(), tc,
          [raw](group_id g, const consensus::message& m, consensus::time_point at) { raw->h->deliver(g, m, at); });
      auto port = b->t->listen();
      ASSERT_TRUE(port);
      b->port = *port;
      host_config hc;
      hc.tick_interval = std::chrono::milliseconds(5);
      b->h = std::make_unique<host>(
          io.get_executor(), *b->t, *b->store,
          [raw](group_id g, const std::vector<consensus::entry>& committed) {
            for (const auto& e : committed)
              if (e.kind == consensus::entry_kind::normal) raw->applied[g].push_back(e.data);
          },
          hc);
      b->store->attach(*b->h);
      for (group_id g = 0; g < groups; ++g) {
        consensus::config cfg;
        cfg.self = b->id;
        cfg.voters = {node_id{1}, node_id{2}, node_id{3}};
        cfg.heartbeat_interval = std::chrono::milliseconds(20);
        cfg.election_min = std::chrono::milliseconds(200);
        cfg.lease = std::chrono::milliseconds(150);  // 150 * 1.1 = 165 < 200 * 0.9 = 180
        cfg.seed = static_cast<uint64_t>(id) * 100'003 + g;
        b->h->add_group(g, cfg, {});
      }
      brokers.push_back(std::move(b));
    }
    for (auto& a : brokers)
      for (auto& b : brokers)
        if (a != b) a->t->add_peer(b->id, "127.0.0.1", b->port);
    for (auto& b : brokers) {
      b->t->start();
      b->h->start();
    }
  }

  // The leader of group g if exactly one broker leads it and the others follow it in its term
  // (among the brokers not in `down`).
  broker* settled_leader(group_id g, const std::vector<node_id>& down = {}) {
    auto up = [&](const broker& b) { return std::find(down.begin(), down.end(), b.id) == down.end(); };
    broker* leader = nullptr;
    for (auto& b : brokers) {
      if (!up(*b)) continue;
      const auto* grp = b->h->find(g);
      if (grp->current_role() == role::leader) {
        if (leader != nullptr) return nullptr;
        leader = b.get();
      }
    }
    if (leader == nullptr) return nullptr;
    const auto term = leader->h->find(g)->term();
    for (auto& b : brokers) {
      if (!up(*b)) continue;
      const auto* grp = b->h->find(g);
      if (grp->term() != term || grp->leader() != leader->id) return nullptr;
    }
    return leader;
  }

  void elect_and_commit(size_t groups, size_t proposals) {
    start_cluster(groups);
    ASSERT_TRUE(run_until([&] {
      for (group_id g = 0; g < groups; ++g)
        if (settled_leader(g) == nullptr) return false;
      return true;
    })) << "not every group elected a leader";
    for (group_id g = 0; g < groups; ++g) {
      broker* leader = settled_leader(g);
      ASSERT_NE(leader, nullptr);
      for (size_t k = 0; k < proposals; ++k) {
        auto r = leader->h->propose(g, "g" + std::to_string(g) + "-" + std::to_string(k));
        ASSERT_EQ(r.status, consensus::propose_status::ok) << "group " << g;
      }
    }
    ASSERT_TRUE(run_until([&] {
      for (auto& b : brokers)
        for (group_id g = 0; g < groups; ++g)
          if (b->applied[g].size() < proposals) return false;
      return true;
    })) << "not every proposal was applied on every broker";
    for (group_id g = 0; g < groups; ++g) {
      std::vector<std::string> want;
      for (size_t k = 0; k < proposals; ++k) want.push_back("g" + std::to_string(g) + "-" + std::to_string(k));
      for (auto& b : brokers) EXPECT_EQ(b->applied[g], want) << "broker " << b->id.value << " group " << g;
    }
    // The durable log agrees with what was applied: every broker stored the same entries.
    for (group_id g = 0; g < groups; ++g) {
      const auto* first = brokers[0]->store->state(g);
      ASSERT_NE(first, nullptr);
      for (auto& b : brokers) {
        const auto* st = b->store->state(g);
        ASSERT_NE(st, nullptr);
        EXPECT_GE(st->log.size(), proposals + 1);  // + the leader's noop
        for (size_t i = 0; i < std::min(st->log.size(), first->log.size()); ++i) EXPECT_EQ(st->log[i], first->log[i]);
      }
    }
  }
};

TEST_F(peer_host, three_hosts_with_one_group_elect_a_leader_and_commit) { elect_and_commit(1, 20); }

TEST_F(peer_host, three_hosts_with_a_hundred_groups_elect_leaders_and_commit) {
  elect_and_commit(100, 5);
  // Coalescing at work: many consensus messages per frame (every tick's heartbeats to a peer
  // are one frame, and one drain's replies another).
  uint64_t messages = 0;
  uint64_t frames = 0;
  for (auto& b : brokers) {
    messages += b->t->stats().messages_sent;
    frames += b->t->stats().frames_sent;
    EXPECT_EQ(b->h->dropped_unknown_group(), 0U);
  }
  std::printf("100 groups x 3 brokers: %llu messages in %llu frames (%.1f per frame)\n",
              static_cast<unsigned long long>(messages), static_cast<unsigned long long>(frames),
              static_cast<double>(messages) / static_cast<double>(frames));
  EXPECT_GT(static_cast<double>(messages) / static_cast<double>(frames), 2.5);  // 1.0 without coalescing
}

TEST_F(peer_host, idle_groups_keep_their_leaders_on_coalesced_heartbeats) {
  start_cluster(100);
  ASSERT_TRUE(run_until([&] {
    for (group_id g = 0; g < 100; ++g)
      if (settled_leader(g) == nullptr) return false;
    return true;
  }));
  std::map<group_id, std::pair<node_id, consensus::term_t>> before;
  for (group_id g = 0; g < 100; ++g) before[g] = {settled_leader(g)->id, settled_leader(g)->h->find(g)->term()};
  // Several election timeouts of idle time: heartbeats alone keep every leader in its term.
  const uint64_t ticks_then = brokers[0]->h->ticks();
  const auto frames_then = brokers[0]->t->stats().frames_received;
  ASSERT_TRUE(run_until([&] { return brokers[0]->h->ticks() >= ticks_then + 200; }));  // >= 1 s
  for (group_id g = 0; g < 100; ++g) {
    broker* l = settled_leader(g);
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(l->id, before[g].first) << "group " << g;
    EXPECT_EQ(l->h->find(g)->term(), before[g].second) << "group " << g;
  }
  // Broker 1 hears from two peers; with a 20 ms heartbeat over >= 1 s, per-group frames would
  // be thousands. Coalesced, it is a few per heartbeat round per peer.
  const auto frames = brokers[0]->t->stats().frames_received - frames_then;
  std::printf("broker 1 received %llu frames in 200 ticks of 100 idle groups\n",
              static_cast<unsigned long long>(frames));
  EXPECT_LT(frames, 2000U);
}

TEST_F(peer_host, when_a_broker_stops_the_others_take_over_its_groups_and_commit) {
  constexpr size_t groups = 10;
  start_cluster(groups);
  ASSERT_TRUE(run_until([&] {
    for (group_id g = 0; g < groups; ++g)
      if (settled_leader(g) == nullptr) return false;
    return true;
  }));
  // Broker 1 goes away: no more ticks, its connections closed (peers see them drop).
  broker& gone = *brokers[0];
  gone.h->stop();
  gone.t->close();
  const std::vector<node_id> down{gone.id};
  ASSERT_TRUE(run_until([&] {
    for (group_id g = 0; g < groups; ++g)
      if (settled_leader(g, down) == nullptr) return false;
    return true;
  })) << "groups led by the stopped broker did not elect another leader";
  for (group_id g = 0; g < groups; ++g) {
    auto r = settled_leader(g, down)->h->propose(g, "after-" + std::to_string(g));
    ASSERT_EQ(r.status, consensus::propose_status::ok);
  }
  ASSERT_TRUE(run_until([&] {
    for (size_t i = 1; i < brokers.size(); ++i)
      for (group_id g = 0; g < groups; ++g)
        if (brokers[i]->applied[g].empty() || brokers[i]->applied[g].back() != "after-" + std::to_string(g))
          return false;
    return true;
  })) << "a proposal after the stop was not applied on both live brokers";
}

}  // namespace
}  // namespace ferry::peer
