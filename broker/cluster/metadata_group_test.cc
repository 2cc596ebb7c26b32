#include "broker/cluster/metadata_group.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/cluster/cluster_test_fixture.h"

namespace ferry::cluster {
namespace {

using namespace std::chrono_literals;
using testing::registration;
using testing::topic;

// Three members of the metadata group in one thread: messages go through an in-memory queue,
// time is a number the test advances, and each member's store is a real RocksDB under /tmp.
class three_members : public ::testing::TestWithParam<uint64_t> {
 protected:
  struct in_flight {
    consensus::message m;
    std::string snapshot;
  };

  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("ferry-metadata-group-" + std::to_string(::getpid()) + "-" + std::to_string(GetParam()));
    std::filesystem::remove_all(root_);
    for (int32_t n = 1; n <= 3; ++n) start(n);
  }
  void TearDown() override {
    for (auto& m : members_) m.reset();
    std::filesystem::remove_all(root_);
  }

  std::filesystem::path dir(int32_t n) const { return root_ / ("node-" + std::to_string(n)); }

  // Opens member n from whatever its store holds (a restart, or a first start).
  void start(int32_t n) {
    consensus::config cfg;
    cfg.self = node_id{n};
    cfg.voters = {node_id{1}, node_id{2}, node_id{3}};
    cfg.seed = GetParam();  // election jitter: each seed is another interleaving
    auto store = raft_store::open(dir(n));
    ASSERT_TRUE(store) << store.error().to_string();
    auto g =
        metadata_group::open(cfg, std::move(*store), now_, [this](const consensus::message& m, std::string_view s) {
          queue_.push_back(in_flight{m, std::string(s)});
        });
    ASSERT_TRUE(g) << g.error().to_string();
    members_[static_cast<size_t>(n - 1)] = std::move(*g);
  }
  void stop(int32_t n) { members_[static_cast<size_t>(n - 1)].reset(); }
  metadata_group& member(int32_t n) { return *members_[static_cast<size_t>(n - 1)]; }

  // One round: time passes by 10 ms, every member ticks, and every message is delivered (and
  // the ones those cause) until the network is quiet. Messages to a stopped member are lost.
  void round() {
    now_ += 10ms;
    for (auto& m : members_) {
      if (m) {
        ASSERT_TRUE(m->tick(now_));
      }
    }
    for (int delivered = 0; !queue_.empty(); ++delivered) {
      ASSERT_LT(delivered, 100000) << "the network never goes quiet";
      in_flight f = std::move(queue_.front());
      queue_.pop_front();
      auto& to = members_[static_cast<size_t>(f.m.to.value - 1)];
      if (to) {
        ASSERT_TRUE(to->step(f.m, f.snapshot, now_));
      }
    }
  }
  // Rounds until `done` holds; false after `limit` rounds (10 ms each).
  bool run_until(const std::function<bool()>& done, int limit = 1000) {
    for (int i = 0; i < limit; ++i) {
      if (done()) return true;
      round();
      if (::testing::Test::HasFatalFailure()) return false;
    }
    return done();
  }

  int32_t leader() {
    for (int32_t n = 1; n <= 3; ++n)
      if (members_[static_cast<size_t>(n - 1)] && member(n).core().current_role() == consensus::role::leader) return n;
    return 0;
  }
  // Proposes at the leader; converged() then waits for this entry too.
  void propose(const std::string& record) {
    const int32_t l = leader();
    ASSERT_NE(l, 0);
    auto r = member(l).propose(record, now_);
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_EQ(r->status, consensus::propose_status::ok);
    proposed_ = r->index;
  }
  std::string state() {
    std::string out;
    for (int32_t n = 1; n <= 3; ++n) {
      if (!members_[static_cast<size_t>(n - 1)]) continue;
      const auto& c = member(n).core();
      out += "member " + std::to_string(n) + ": " + consensus::role_name(c.current_role()) + " term " +
             std::to_string(c.term()) + " commit " + std::to_string(c.commit_index()) + " last " +
             std::to_string(c.last_index()) + " snapshot " + std::to_string(c.snapshot_index()) + " version " +
             std::to_string(member(n).image().version()) + "\n";
    }
    return out;
  }
  // The leader committed the last proposal, every running member has applied everything the
  // leader committed, and the images are equal.
  bool converged() {
    const int32_t l = leader();
    if (l == 0) return false;
    const consensus::index_t commit = member(l).core().commit_index();
    if (commit < proposed_) return false;
    for (auto& m : members_)
      if (m && (m->image().version() != commit || m->image() != member(l).image())) return false;
    return true;
  }

  std::filesystem::path root_;
  consensus::time_point now_{0};
  consensus::index_t proposed_ = 0;
  std::deque<in_flight> queue_;
  std::unique_ptr<metadata_group> members_[3];
};

TEST_P(three_members, elect_commit_records_restart_a_member_and_converge) {
  ASSERT_TRUE(run_until([&] { return leader() != 0; })) << "no leader within 10 s";
  for (int32_t n = 1; n <= 3; ++n) propose(registration(n, 1));
  propose(encode_metadata_record(topic("orders", 1, {{1, 2}, {2, 3}, {3, 1}})));
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  const int32_t l = leader();
  for (int32_t n = 1; n <= 3; ++n) {
    EXPECT_EQ(member(n).image().brokers().size(), 3U) << "member " << n;
    ASSERT_NE(member(n).image().topic("orders"), nullptr) << "member " << n;
    EXPECT_EQ(member(n).image().refused(), 0U);
  }
  // The versions count the leader's noop too: the version is the applied log offset.
  EXPECT_EQ(member(l).image().version(), member(l).core().commit_index());
  EXPECT_GE(member(l).image().version(), 5U);

  // A follower restarts from its store: its image is rebuilt from the log it kept.
  const int32_t f = l == 1 ? 2 : 1;
  const consensus::term_t term = member(f).core().term();
  stop(f);
  start(f);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(member(f).core().term(), term);                                 // the hard state survived
  EXPECT_EQ(member(f).core().last_index(), member(l).core().last_index());  // and the log
  propose(encode_metadata_record(topic("billing", 2, {{2, 1}})));
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  EXPECT_NE(member(f).image().topic("orders"), nullptr);
  EXPECT_NE(member(f).image().topic("billing"), nullptr);
  EXPECT_EQ(member(f).image().dump(), member(l).image().dump());
}

TEST_P(three_members, a_member_behind_the_leaders_log_start_catches_up_from_its_snapshot) {
  ASSERT_TRUE(run_until([&] { return leader() != 0; })) << "no leader within 10 s";
  for (int32_t n = 1; n <= 3; ++n) propose(registration(n, 1));
  propose(encode_metadata_record(topic("orders", 1, {{1, 2}, {2, 3}})));
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  const int32_t l = leader();

  // A follower is down while the others commit more and the leader compacts past its log.
  const int32_t f = l == 3 ? 2 : 3;
  const consensus::index_t f_last = member(f).core().last_index();
  stop(f);
  propose(encode_metadata_record(topic("billing", 2, {{3, 1}})));
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  ASSERT_TRUE(member(l).compact());
  const consensus::index_t snap = member(l).core().snapshot_index();
  EXPECT_EQ(snap, member(l).image().version());
  ASSERT_GT(snap, f_last);

  // It restarts from its store, behind the leader's log start: the leader sends its snapshot.
  start(f);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(member(f).image().version(), 0U);  // no snapshot of its own yet: rebuilt from the log
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  EXPECT_EQ(member(f).core().snapshot_index(), snap);  // installed, not replayed
  EXPECT_EQ(member(f).image().dump(), member(l).image().dump());
  EXPECT_NE(member(f).image().topic("billing"), nullptr);

  // Records after the snapshot reach it as entries, and a restart starts from the snapshot.
  propose(encode_metadata_record(topic("audit", 3, {{1, 3}})));
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  stop(f);
  start(f);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(member(f).image().version(), snap);
  EXPECT_NE(member(f).image().topic("orders"), nullptr);
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  EXPECT_EQ(member(f).image().dump(), member(l).image().dump());
  EXPECT_NE(member(f).image().topic("audit"), nullptr);
}

TEST_P(three_members, the_leader_restarts_and_the_others_go_on_without_losing_a_commit) {
  ASSERT_TRUE(run_until([&] { return leader() != 0; })) << "no leader within 10 s";
  for (int32_t n = 1; n <= 3; ++n) propose(registration(n, 1));
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  const int32_t old = leader();
  const consensus::index_t committed = member(old).core().commit_index();
  const std::string before = member(old).image().dump();
  // The leader crashes (its store keeps what it wrote) and stays down until another leads.
  stop(old);
  ASSERT_TRUE(run_until([&] { return leader() != 0; })) << state();
  const int32_t next = leader();
  ASSERT_NE(next, old);
  EXPECT_GE(member(next).image().version(), committed);  // it had applied them before the crash
  propose(encode_metadata_record(topic("orders", 1, {{1, 2}, {2, 3}, {3, 1}})));
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  EXPECT_EQ(member(next).image().brokers().size(), 3U);  // nothing committed was lost
  start(old);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(run_until([&] { return converged(); })) << state();
  EXPECT_EQ(leader(), next);  // the restarted member follows; it does not disrupt the leader
  EXPECT_EQ(member(old).image().dump(), member(next).image().dump());
  EXPECT_NE(member(old).image().dump(), before);
  EXPECT_NE(member(old).image().topic("orders"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(seeds, three_members, ::testing::Range<uint64_t>(1, 6));

}  // namespace
}  // namespace ferry::cluster
