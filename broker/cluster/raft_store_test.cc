#include "broker/cluster/raft_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "broker/base/failpoint.h"

namespace ferry::consensus {
// Readable failure messages for log comparisons (found by argument-dependent lookup).
void PrintTo(const entry& e, std::ostream* os) {
  *os << "{" << e.index << "@" << e.term << " kind " << static_cast<int>(e.kind) << " '" << e.data << "'}";
}
}  // namespace ferry::consensus

namespace ferry::cluster {
namespace {

using consensus::entry;
using consensus::entry_kind;
using consensus::hard_state;
using consensus::index_t;
using consensus::snapshot_ref;
using consensus::term_t;

entry make(index_t i, term_t t, entry_kind k = entry_kind::normal, std::string data = {}) {
  if (data.empty() && k == entry_kind::normal) data = "entry " + std::to_string(i) + " term " + std::to_string(t);
  return entry{i, t, k, std::move(data)};
}

std::vector<entry> run(index_t from, index_t to, term_t t) {
  std::vector<entry> out;
  for (index_t i = from; i <= to; ++i) out.push_back(make(i, t));
  return out;
}

// The documented key of log entry i: "log/" and the big-endian index.
std::string log_key(index_t i) {
  std::string k = "log/";
  for (int s = 56; s >= 0; s -= 8) k.push_back(static_cast<char>((i >> s) & 0xff));
  return k;
}

class raft_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ferry-raft-store-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    failpoint::disarm_all();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<raft_store> open() {
    auto s = raft_store::open(dir_);
    EXPECT_TRUE(s) << s.error().to_string();
    return s ? std::move(*s) : nullptr;
  }

  // Changes the raw store while no raft_store has it open.
  void poke(const std::string& key, const std::optional<std::string>& value) {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions o;
    o.sync = true;
    if (value) {
      ASSERT_TRUE(db->Put(o, key, *value).ok());
    } else {
      ASSERT_TRUE(db->Delete(o, key).ok());
    }
  }
  std::string peek(const std::string& key) {
    rocksdb::DB* raw = nullptr;
    EXPECT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string v;
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), key, &v).ok());
    return v;
  }

  std::filesystem::path dir_;
};

TEST_F(raft_store_test, a_new_store_is_empty) {
  auto s = open();
  ASSERT_TRUE(s);
  auto st = s->load();
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(st->durable.hard, hard_state{});
  EXPECT_EQ(st->durable.snapshot_index, 0U);
  EXPECT_FALSE(st->durable.snapshot_config.has_value());
  EXPECT_TRUE(st->durable.log.empty());
  EXPECT_TRUE(st->snapshot_data.empty());
  EXPECT_EQ(s->sync().value(), (log_position{0, 0}));
}

TEST_F(raft_store_test, hard_state_and_entries_round_trip) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->save_hard_state(hard_state{3, node_id{2}}));
  std::vector<entry> es = {make(1, 1, entry_kind::noop, ""), make(2, 1),
                           make(3, 2, entry_kind::config, "v=1,2,3;o=;l=4"), make(4, 3, entry_kind::normal, ""),
                           make(5, 3, entry_kind::normal, std::string("\0\xff\x01 binary", 10))};
  ASSERT_TRUE(s->append(std::nullopt, es));
  EXPECT_EQ(s->last(), (log_position{5, 3}));
  auto synced = s->sync();
  ASSERT_TRUE(synced);
  EXPECT_EQ(*synced, (log_position{5, 3}));
  auto st = s->load();
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(st->durable.hard, (hard_state{3, node_id{2}}));
  EXPECT_EQ(st->durable.log, es);
  // A later hard state replaces the earlier one.
  ASSERT_TRUE(s->save_hard_state(hard_state{4, node_id{0}}));
  EXPECT_EQ(s->load()->durable.hard, (hard_state{4, node_id{0}}));
}

TEST_F(raft_store_test, a_divergent_tail_is_truncated_then_appended) {
  auto s = open();
  ASSERT_TRUE(s);
  auto es = run(1, 3, 1);
  for (auto& e : run(4, 7, 2)) es.push_back(e);
  ASSERT_TRUE(s->append(std::nullopt, es));
  // A new leader's log diverges from index 5: entries 5.. are replaced by term 3's.
  auto fresh = run(5, 6, 3);
  ASSERT_TRUE(s->append(index_t{5}, fresh));
  EXPECT_EQ(s->last(), (log_position{6, 3}));
  EXPECT_EQ(s->sync().value(), (log_position{6, 3}));
  auto st = s->load();
  ASSERT_TRUE(st);
  std::vector<entry> want(es.begin(), es.begin() + 4);
  want.insert(want.end(), fresh.begin(), fresh.end());
  EXPECT_EQ(st->durable.log, want);  // entry 7 of term 2 is gone too
  // A truncation alone: the last position comes from the entry before it, read from the store.
  ASSERT_TRUE(s->append(index_t{4}, {}));
  EXPECT_EQ(s->last(), (log_position{3, 1}));
  EXPECT_EQ(s->load()->durable.log, run(1, 3, 1));
  ASSERT_TRUE(s->append(std::nullopt, run(4, 4, 4)));
  EXPECT_EQ(s->sync().value(), (log_position{4, 4}));
}

TEST_F(raft_store_test, a_snapshot_drops_the_prefix_and_keeps_the_tail) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->append(std::nullopt, run(1, 10, 2)));
  consensus::membership m{{node_id{1}, node_id{2}, node_id{3}}, {}, {node_id{4}}};
  ASSERT_TRUE(s->save_snapshot(snapshot_ref{6, 2, m}, "image at 6", snapshot_log::keep_tail));
  EXPECT_EQ(s->snapshot_index(), 6U);
  EXPECT_EQ(s->last(), (log_position{10, 2}));
  auto st = s->load();
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(st->durable.snapshot_index, 6U);
  EXPECT_EQ(st->durable.snapshot_term, 2U);
  EXPECT_EQ(st->durable.snapshot_config, m);
  EXPECT_EQ(st->snapshot_data, "image at 6");
  EXPECT_EQ(st->durable.log, run(7, 10, 2));
  // The keys below the snapshot are gone from RocksDB, not just skipped.
  s.reset();
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string v;
    for (index_t i = 1; i <= 6; ++i) EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), log_key(i), &v).IsNotFound()) << i;
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), log_key(7), &v).ok());
  }
  s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->snapshot_index(), 6U);
  // A leader's snapshot past our log replaces all of it; the log goes on after it.
  ASSERT_TRUE(s->save_snapshot(snapshot_ref{20, 5, m}, "image at 20", snapshot_log::drop_log));
  EXPECT_EQ(s->last(), (log_position{20, 5}));
  EXPECT_TRUE(s->load()->durable.log.empty());
  EXPECT_EQ(s->sync().value(), (log_position{20, 5}));
  ASSERT_TRUE(s->append(std::nullopt, run(21, 22, 5)));
  st = s->load();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->durable.log, run(21, 22, 5));
  EXPECT_EQ(st->snapshot_data, "image at 20");
  // drop_log also removes entries after the snapshot's index (they may be divergent).
  ASSERT_TRUE(s->save_snapshot(snapshot_ref{21, 6, m}, "image at 21", snapshot_log::drop_log));
  EXPECT_TRUE(s->load()->durable.log.empty());
  EXPECT_EQ(s->last(), (log_position{21, 6}));
}

// A random mix of writes against a model of what the store must hold; after every few
// operations the store is closed and reopened, and load() must give exactly the model.
TEST_F(raft_store_test, reopen_returns_exactly_what_was_written_and_synced) {
  std::mt19937_64 rng(42);
  auto pick = [&rng](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  hard_state hard;
  index_t snap_index = 0;
  term_t snap_term = 0;
  std::string snap_data;
  std::vector<entry> log;  // after the snapshot
  term_t term = 1;
  auto s = open();
  ASSERT_TRUE(s);
  size_t truncations = 0;
  size_t snapshots = 0;
  for (int step = 0; step < 400; ++step) {
    const index_t last = log.empty() ? snap_index : log.back().index;
    switch (pick(0, 9)) {
      case 0:
        hard = hard_state{++term, node_id{static_cast<int32_t>(pick(0, 3))}};
        ASSERT_TRUE(s->save_hard_state(hard));
        break;
      case 1:
        if (!log.empty()) {
          const index_t upto = pick(snap_index + 1, last);
          snap_term = log[upto - snap_index - 1].term;
          snap_data = "snapshot " + std::to_string(upto);
          const bool drop = pick(0, 3) == 0;
          ASSERT_TRUE(s->save_snapshot(snapshot_ref{upto, snap_term, {}}, snap_data,
                                       drop ? snapshot_log::drop_log : snapshot_log::keep_tail));
          log.erase(log.begin(), drop ? log.end() : log.begin() + static_cast<std::ptrdiff_t>(upto - snap_index));
          snap_index = upto;
          ++snapshots;
        }
        break;
      case 2:
      case 3:
        if (!log.empty()) {
          const index_t from = pick(snap_index + 1, last);
          log.resize(from - snap_index - 1);
          auto fresh = run(from, from + pick(0, 3), ++term);
          ASSERT_TRUE(s->append(from, fresh));
          log.insert(log.end(), fresh.begin(), fresh.end());
          ++truncations;
          break;
        }
        [[fallthrough]];
      default: {
        auto fresh = run(last + 1, last + pick(1, 5), term);
        fresh.front().kind = pick(0, 4) == 0 ? entry_kind::noop : entry_kind::normal;
        ASSERT_TRUE(s->append(std::nullopt, fresh));
        log.insert(log.end(), fresh.begin(), fresh.end());
      }
    }
    const log_position want_last =
        log.empty() ? log_position{snap_index, snap_term} : log_position{log.back().index, log.back().term};
    ASSERT_EQ(s->last(), want_last) << "step " << step;
    if (pick(0, 2) == 0) {
      ASSERT_EQ(s->sync().value(), want_last);
    }
    if (pick(0, 9) == 0 || step == 399) {
      ASSERT_TRUE(s->sync());
      s.reset();
      s = open();
      ASSERT_TRUE(s);
      ASSERT_EQ(s->last(), want_last) << "step " << step;
      ASSERT_EQ(s->snapshot_index(), snap_index);
      auto st = s->load();
      ASSERT_TRUE(st) << st.error().to_string();
      ASSERT_EQ(st->durable.hard, hard) << "step " << step;
      ASSERT_EQ(st->durable.snapshot_index, snap_index);
      ASSERT_EQ(st->durable.snapshot_term, snap_term);
      ASSERT_EQ(st->snapshot_data, snap_data);
      ASSERT_EQ(st->durable.log, log) << "step " << step;
    }
  }
  EXPECT_GT(truncations, 20U);
  EXPECT_GT(snapshots, 10U);
}

TEST_F(raft_store_test, a_damaged_entry_is_storage_error_naming_it) {
  {
    auto s = open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->append(std::nullopt, run(1, 5, 1)));
    ASSERT_TRUE(s->sync());
  }
  std::string v = peek(log_key(3));
  v[v.size() / 2] ^= 0x20;
  poke(log_key(3), v);
  auto s = open();  // the last entry is intact: open reads only that one
  ASSERT_TRUE(s);
  auto st = s->load();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, errc::storage_error);
  EXPECT_NE(st.error().message.find("log entry 3"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("checksum"), std::string::npos) << st.error().message;
  s.reset();
  // The last entry damaged: open() itself refuses, it cannot say where the log ends.
  poke(log_key(5), std::string("\x01\x02", 2));
  auto bad = raft_store::open(dir_);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::storage_error);
  EXPECT_NE(bad.error().message.find("log entry 5"), std::string::npos) << bad.error().message;
}

TEST_F(raft_store_test, a_hole_in_the_log_and_a_damaged_hard_state_or_snapshot_are_storage_error) {
  {
    auto s = open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->save_hard_state(hard_state{2, node_id{1}}));
    ASSERT_TRUE(s->append(std::nullopt, run(1, 5, 1)));
    ASSERT_TRUE(s->save_snapshot(snapshot_ref{2, 1, {}}, "image", snapshot_log::keep_tail));
  }
  poke(log_key(4), std::nullopt);
  {
    auto s = open();
    ASSERT_TRUE(s);
    auto st = s->load();
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("entry 4 is missing"), std::string::npos) << st.error().message;
  }
  // An entry left below the snapshot (the snapshot's batch removes them) is damage too.
  poke(log_key(4), peek(log_key(3)));
  poke(log_key(1), peek(log_key(3)));
  {
    auto s = open();
    ASSERT_TRUE(s);
    auto st = s->load();
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("at or below the snapshot"), std::string::npos) << st.error().message;
  }
  poke(log_key(1), std::nullopt);
  ASSERT_TRUE(open()->load());
  poke("hard_state", std::string("garbage!"));
  {
    auto s = open();
    ASSERT_TRUE(s);
    auto st = s->load();
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, errc::storage_error);
    EXPECT_NE(st.error().message.find("hard_state"), std::string::npos) << st.error().message;
  }
  std::string snap = peek("snapshot");
  snap[3] ^= 0x01;
  poke("snapshot", snap);
  auto bad = raft_store::open(dir_);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::storage_error);
  EXPECT_NE(bad.error().message.find("snapshot"), std::string::npos) << bad.error().message;
}

TEST_F(raft_store_test, after_a_failed_sync_every_write_is_refused_until_reopened) {
#ifndef FERRY_FAILPOINTS
  GTEST_SKIP() << "needs FERRY_FAILPOINTS";
#else
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->append(std::nullopt, run(1, 2, 1)));
  failpoint::arm("raft_store.before_sync", "error");
  auto r = s->sync();
  failpoint::disarm_all();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::storage_error);
  EXPECT_FALSE(s->sync());
  EXPECT_FALSE(s->append(std::nullopt, run(3, 3, 1)));
  EXPECT_FALSE(s->save_hard_state(hard_state{1, node_id{1}}));
  EXPECT_FALSE(s->save_snapshot(snapshot_ref{1, 1, {}}, "x", snapshot_log::keep_tail));
  s.reset();
  s = open();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->sync());
  EXPECT_TRUE(s->append(std::nullopt, run(3, 3, 1)));
#endif
}

}  // namespace
}  // namespace ferry::cluster
