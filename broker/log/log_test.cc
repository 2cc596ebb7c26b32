#include "broker/log/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "broker/base/failpoint.h"
#include "broker/log/faulty_file.h"
#include "broker/log/log_test_fixture.h"

namespace ferry::log {
namespace {

using namespace ferry::log::test;

TEST_F(log_test, append_read_round_trip_across_size_rolls) {
  auto l = open(config(2048));
  for (int i = 0; i < 40; ++i) {
    auto info = append(*l);
    EXPECT_EQ(info.base.value, i * 3);
    EXPECT_EQ(info.last.value, i * 3 + 2);
  }
  EXPECT_GE(l->segment_count(), 4u);
  EXPECT_EQ(l->next_offset().value, 120);
  for (auto& s : l->segments()) EXPECT_LE(s.size_bytes, 2048u);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  ASSERT_TRUE(l->close());
  l.reset();
  l = open(config(2048));
  EXPECT_EQ(l->next_offset().value, 120);
  EXPECT_EQ(l->durable_offset().value, 120);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  append(*l);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

TEST_F(log_test, stamps_offset_epoch_and_append_time) {
  auto l = open(config());
  append(*l);
  clk_.advance_ms(5);
  append(*l);
  bytes out;
  ASSERT_TRUE(l->read(offset{3}, 1, offset{100}, out));
  auto h = wire::verify_batch(out);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->base_offset, 3);
  EXPECT_EQ(h->leader_epoch, 7);
  EXPECT_EQ(h->append_time, clk_.now_ms());
}

TEST_F(log_test, segments_roll_by_age) {
  auto c = config(1 << 20);
  c.segment_ms = 1000;
  auto l = open(c);
  append(*l);
  clk_.advance_ms(999);
  append(*l);
  EXPECT_EQ(l->segment_count(), 1u);
  clk_.advance_ms(1);
  append(*l);
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_EQ(l->segments()[1].base.value, 6);
  append(*l);
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

TEST_F(log_test, batch_bigger_than_a_segment_gets_its_own_segment) {
  auto l = open(config(1024));
  append(*l);
  append(*l, 3, 2000);
  append(*l);
  EXPECT_EQ(l->segment_count(), 3u);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

TEST_F(log_test, reads_from_every_offset_return_the_batch_containing_it) {
  auto l = open(config(2048));
  for (int i = 0; i < 30; ++i) append(*l, 1 + i % 4);
  int64_t end = l->next_offset().value;
  size_t b = 0;
  int64_t base = 0;
  for (int64_t o = 0; o < end; ++o) {
    auto h = wire::parse_batch_header(stored_[b]);
    if (o >= base + h->record_count) {
      base += h->record_count;
      ++b;
    }
    bytes out;
    ASSERT_TRUE(l->read(offset{o}, 1, offset{end}, out)) << o;
    EXPECT_EQ(out, stored_[b]) << "offset " << o;
    out.clear();
    ASSERT_TRUE(l->read(offset{o}, SIZE_MAX, offset{end}, out));
    EXPECT_EQ(out, expected_from(b)) << "offset " << o;
  }
}

TEST_F(log_test, read_limits_and_range_errors) {
  auto l = open(config(1 << 20));
  for (int i = 0; i < 5; ++i) append(*l);  // offsets 0..14
  bytes out;
  // max_bytes: whole batches only, but at least one.
  ASSERT_TRUE(l->read(offset{0}, stored_[0].size() + stored_[1].size() + 1, offset{15}, out));
  bytes all = expected_from(0);
  EXPECT_EQ(out, bytes(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(stored_[0].size() + stored_[1].size())));
  // upto: never a batch whose last offset >= upto.
  out.clear();
  ASSERT_TRUE(l->read(offset{0}, SIZE_MAX, offset{8}, out));
  EXPECT_EQ(out.size(), stored_[0].size() + stored_[1].size());
  out.clear();
  ASSERT_TRUE(l->read(offset{0}, SIZE_MAX, offset{2}, out));
  EXPECT_TRUE(out.empty());
  out.clear();
  ASSERT_TRUE(l->read(offset{15}, SIZE_MAX, offset{15}, out));
  EXPECT_TRUE(out.empty());
  auto r = l->read(offset{16}, SIZE_MAX, offset{16}, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::offset_out_of_range);
  auto r2 = l->read(offset{-1}, SIZE_MAX, offset{16}, out);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, errc::offset_out_of_range);
}

TEST_F(log_test, for_each_batch_header_visits_from_the_containing_batch) {
  auto l = open(config(1024));
  for (int i = 0; i < 20; ++i) append(*l);
  std::vector<int64_t> bases;
  ASSERT_TRUE(
      l->for_each_batch_header(offset{31}, [&](const wire::batch_header& h) { bases.push_back(h.base_offset); }));
  ASSERT_EQ(bases.size(), 10u);
  EXPECT_EQ(bases.front(), 30);
  EXPECT_EQ(bases.back(), 57);
}

TEST_F(log_test, rejects_a_batch_whose_header_does_not_parse) {
  auto l = open(config());
  auto b = make_batch(2, 10, 1);
  b[wire::hdr::magic] = std::byte{9};
  auto r = l->append(b, epoch{1});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::corrupt_batch);
  EXPECT_EQ(l->next_offset().value, 0);
}

// Writes the first `cut` bytes of one more (stamped) batch at the end of the log in `c.dir`, as
// a crash in the middle of its write would leave it.
class torn_tail_test : public log_test, public ::testing::WithParamInterface<bool> {};

TEST_P(torn_tail_test, torn_tail_at_every_byte_recovers_every_complete_batch) {
  const bool prealloc = GetParam();
  auto last = make_batch(3, 20, 5);
  for (size_t cut = 0; cut <= last.size(); ++cut) {
    fs::remove_all(dir_ / "p0");
    stored_.clear();
    auto c = config(1024, prealloc);
    auto l = open(c);
    for (int i = 0; i < 8; ++i) append(*l, 3, 20);
    ASSERT_GT(l->segment_count(), 1u);
    int64_t next = l->next_offset().value;
    auto segs = l->segments();
    uint64_t pos = segs.back().size_bytes;
    auto seg_path = c.dir / seg_name(segs.back().base.value, ".log");
    l.reset();  // no close: a preallocated file keeps its zero tail
    auto torn = last;
    wire::stamp_batch(torn, next, 7, clk_.now_ms());
    {
      int fd = ::open(seg_path.c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::pwrite(fd, torn.data(), cut, static_cast<off_t>(pos)), static_cast<ssize_t>(cut));
      ::close(fd);
    }
    if (prealloc) {
      EXPECT_EQ(fs::file_size(seg_path), 1024u);
    }
    l = open(c);
    ASSERT_TRUE(l) << "cut " << cut;
    // In a preallocated file the zeros after the cut are the batch's own trailing zero bytes, if
    // it ends with some: then the batch is on disk complete.
    bool complete =
        cut == last.size() || (prealloc && std::all_of(torn.begin() + static_cast<std::ptrdiff_t>(cut), torn.end(),
                                                       [](std::byte b) { return b == std::byte{0}; }));
    if (complete) {
      // The whole batch made it: it is part of the log.
      EXPECT_EQ(l->next_offset().value, next + 3);
      stored_.push_back(torn);
    } else {
      EXPECT_EQ(l->next_offset().value, next) << "cut " << cut;
    }
    EXPECT_EQ(read_all(*l, offset{0}), expected_from(0)) << "cut " << cut;
    // Appending after recovery works and lands right after the last complete batch.
    append(*l, 3, 20);
    l.reset();
    l = open(c);
    EXPECT_EQ(read_all(*l, offset{0}), expected_from(0)) << "cut " << cut;
  }
}

INSTANTIATE_TEST_SUITE_P(preallocate, torn_tail_test, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? std::string("on") : std::string("off"); });

// These four used to assert that open() fails (or, below, that reads after the damage are still
// served); damage followed by valid data now opens the log in the corrupt state instead.
TEST_F(log_test, corrupt_middle_batch_in_last_segment_opens_corrupt_and_truncates_nothing) {
  auto c = config(1 << 20);
  auto l = open(c);
  for (int i = 0; i < 5; ++i) append(*l);
  ASSERT_TRUE(l->close());
  l.reset();
  uint64_t pos2 = stored_[0].size() + stored_[1].size();
  auto seg = c.dir / seg_name(0, ".log");
  flip_byte(seg, pos2 + 80);  // inside batch 2's records
  bytes damaged = read_file(seg);
  l = open(c);
  ASSERT_TRUE(l);
  auto d = l->corruption();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->at.value, 6);
  EXPECT_NE(d->where.find(seg.string()), std::string::npos) << d->where;
  EXPECT_NE(d->where.find("position " + std::to_string(pos2)), std::string::npos) << d->where;
  EXPECT_EQ(l->next_offset().value, 15);
  l.reset();
  // Nothing was truncated or rewritten.
  EXPECT_EQ(read_file(seg), damaged);
}

TEST_F(log_test, corrupt_header_magic_in_middle_batch_opens_corrupt) {
  auto c = config(1 << 20);
  auto l = open(c);
  for (int i = 0; i < 5; ++i) append(*l);
  ASSERT_TRUE(l->close());
  l.reset();
  auto seg = c.dir / seg_name(0, ".log");
  flip_byte(seg, stored_[0].size() + wire::hdr::magic);
  bytes damaged = read_file(seg);
  l = open(c);
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->corruption());
  EXPECT_EQ(l->corruption()->at.value, 3);
  EXPECT_EQ(l->next_offset().value, 15);
  l.reset();
  EXPECT_EQ(read_file(seg), damaged);
}

TEST_F(log_test, corrupt_batch_in_older_segment_is_detected_at_read_never_served_or_skipped) {
  auto c = config(2048);
  auto l = open(c);
  for (int i = 0; i < 30; ++i) append(*l);
  ASSERT_GT(l->segment_count(), 2u);
  ASSERT_TRUE(l->close());
  l.reset();
  // Batch 2 (offsets 6..8) lies in segment 0 and is not its last batch.
  auto seg = c.dir / seg_name(0, ".log");
  ASSERT_GT(fs::file_size(seg), stored_[0].size() + stored_[1].size() + stored_[2].size() + stored_[3].size());
  uint64_t pos2 = stored_[0].size() + stored_[1].size();
  flip_byte(seg, pos2 + 90);
  l = open(c);
  ASSERT_TRUE(l);
  EXPECT_FALSE(l->corruption()) << "an older segment is trusted for its size at open";
  bytes all = expected_from(0);
  {
    // The read that finds it: corrupt_batch, whole good batches before it only.
    bytes out;
    auto r = l->read(offset{0}, SIZE_MAX, l->next_offset(), out);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::corrupt_batch);
    EXPECT_NE(r.error().message.find(seg.string()), std::string::npos);
    EXPECT_NE(r.error().message.find("position " + std::to_string(pos2)), std::string::npos) << r.error().message;
    EXPECT_EQ(out, bytes(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(pos2)));
  }
  ASSERT_TRUE(l->corruption());
  EXPECT_EQ(l->corruption()->at.value, 6);
  // From now on reads stop before it, and nothing at or after it is served.
  EXPECT_EQ(read_all(*l, offset{0}), bytes(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(pos2)));
  for (int64_t from : {6, 7, 9, 60}) {
    bytes out;
    auto r = l->read(offset{from}, SIZE_MAX, l->next_offset(), out);
    ASSERT_FALSE(r) << from;
    EXPECT_EQ(r.error().code, errc::corrupt_batch);
    EXPECT_NE(r.error().message.find("position " + std::to_string(pos2)), std::string::npos) << r.error().message;
    EXPECT_TRUE(out.empty());
  }
  bytes out;
  ASSERT_TRUE(l->read(offset{0}, 1, offset{100}, out));
  EXPECT_EQ(out, stored_[0]);
}

TEST_F(log_test, corrupt_last_batch_of_an_old_segment_opens_corrupt_and_truncates_nothing) {
  auto c = config(1024);
  auto l = open(c);
  for (int i = 0; i < 20; ++i) append(*l);
  auto segs = l->segments();
  ASSERT_GT(segs.size(), 3u);
  ASSERT_TRUE(l->close());
  l.reset();
  auto seg0 = c.dir / seg_name(0, ".log");
  flip_byte(seg0, segs[0].size_bytes - 5);
  l = open(c);
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->corruption());
  EXPECT_EQ(l->corruption()->at.value, segs[1].base.value - 3);
  EXPECT_EQ(l->next_offset().value, 60);
  l.reset();
  EXPECT_EQ(fs::file_size(seg0), segs[0].size_bytes);
  EXPECT_EQ(std::distance(fs::directory_iterator(c.dir), fs::directory_iterator()), static_cast<long>(3 * segs.size()));
}

class index_damage_test : public log_test, public ::testing::WithParamInterface<int> {};

TEST_P(index_damage_test, damaged_index_files_are_rebuilt_and_reads_are_identical) {
  const int mode =
      GetParam();  // 0 deleted, 1 truncated mid-entry, 2 truncated at an entry, 3 garbage, 4 plausible but wrong
  auto c = config(8192);
  auto l = open(c);
  for (int i = 0; i < 100; ++i) append(*l, 2, 60, 1000 + i * 10);
  ASSERT_GT(l->segment_count(), 2u);
  int64_t end = l->next_offset().value;
  std::vector<bytes> per_offset;
  for (int64_t o = 0; o < end; ++o) {
    bytes out;
    ASSERT_TRUE(l->read(offset{o}, 1000, offset{end}, out));
    per_offset.push_back(out);
  }
  std::vector<int64_t> by_ts;
  for (int64_t ts = 990; ts < 2020; ts += 7) by_ts.push_back(l->offset_for_timestamp(ts)->value);
  ASSERT_TRUE(l->close());
  l.reset();
  std::map<fs::path, bytes> originals;
  std::mt19937 rng(mode);
  for (auto& e : fs::directory_iterator(c.dir)) {
    const auto& p = e.path();
    if (p.extension() != ".index" && p.extension() != ".timeindex") continue;  // not data, not the clean marker
    auto b = read_file(p);
    originals[p] = b;
    ASSERT_FALSE(b.empty()) << p;
    switch (mode) {
      case 0:
        fs::remove(p);
        break;
      case 1:
        fs::resize_file(p, b.size() / 2 + 1);
        break;
      case 2:
        fs::resize_file(p, p.extension() == ".index" ? 8 : 12);
        break;
      case 3:
        for (auto& x : b) x = static_cast<std::byte>(rng());
        write_file(p, b);
        break;
      case 4:
        // Monotonic, in range, but every position off by one batch header's worth of bytes.
        if (p.extension() == ".index") {
          for (size_t i = 0; i + 8 <= b.size(); i += 8) wire::put_le32(&b[i + 4], wire::get_le32(&b[i + 4]) - 10);
          write_file(p, b);
        }
        break;
    }
  }
  l = open(c);
  ASSERT_TRUE(l);
  for (int64_t o = 0; o < end; ++o) {
    bytes out;
    ASSERT_TRUE(l->read(offset{o}, 1000, offset{end}, out)) << o;
    EXPECT_EQ(out, per_offset[static_cast<size_t>(o)]) << "offset " << o;
  }
  size_t k = 0;
  for (int64_t ts = 990; ts < 2020; ts += 7) EXPECT_EQ(l->offset_for_timestamp(ts)->value, by_ts[k++]) << ts;
  ASSERT_TRUE(l->close());
  // The rebuilt index files are byte for byte what was written on append.
  for (auto& [p, b] : originals) EXPECT_EQ(read_file(p), b) << p;
}

std::string damage_name(const ::testing::TestParamInfo<int>& i) {
  static const char* names[] = {"deleted", "truncated_mid_entry", "truncated_at_entry", "garbage",
                                "plausible_but_wrong"};
  return names[i.param];
}

INSTANTIATE_TEST_SUITE_P(modes, index_damage_test, ::testing::Values(0, 1, 2, 3, 4), damage_name);

TEST_F(log_test, retention_by_low_water_mark_deletes_only_whole_segments_below_it) {
  auto l = open(config(1024));
  for (int i = 0; i < 20; ++i) append(*l);
  auto segs = l->segments();
  ASSERT_GT(segs.size(), 3u);
  // A low-water mark inside segment 2: segments 0 and 1 go.
  int64_t lwm = segs[2].base.value + 1;
  auto r = l->apply_retention(offset{lwm});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->segments_deleted, 2);
  EXPECT_EQ(r->bytes_deleted, segs[0].size_bytes + segs[1].size_bytes);
  EXPECT_EQ(r->new_start, segs[2].base);
  EXPECT_EQ(l->start_offset(), segs[2].base);
  EXPECT_FALSE(fs::exists(dir_ / "p0" / seg_name(0, ".log")));
  EXPECT_FALSE(fs::exists(dir_ / "p0" / seg_name(0, ".index")));
  bytes out;
  auto rr = l->read(offset{0}, SIZE_MAX, l->next_offset(), out);
  ASSERT_FALSE(rr);
  EXPECT_EQ(rr.error().code, errc::offset_out_of_range);
  EXPECT_EQ(read_all(*l, segs[2].base).size(), l->size_bytes());
}

TEST_F(log_test, detached_segments_leave_the_log_at_once_and_their_files_go_later) {
  auto l = open(config(1024));
  for (int i = 0; i < 20; ++i) append(*l);
  auto segs = l->segments();
  ASSERT_GT(segs.size(), 3u);
  auto r = l->detach_for_retention(offset{segs[2].base.value + 1});
  EXPECT_EQ(r.segments_deleted, 2);
  EXPECT_EQ(r.new_start, segs[2].base);
  EXPECT_EQ(l->start_offset(), segs[2].base);
  bytes out;
  auto rr = l->read(offset{0}, SIZE_MAX, l->next_offset(), out);
  ASSERT_FALSE(rr) << "reads see the new start at once";
  EXPECT_EQ(rr.error().code, errc::offset_out_of_range);
  EXPECT_TRUE(fs::exists(dir_ / "p0" / seg_name(0, ".log"))) << "no file I/O on the shard";
  ASSERT_EQ(r.retired.data_paths.size(), 2u);
  // A crash before the files are deleted: the restart finds them; nothing is lost, and retention
  // deletes them again.
  ASSERT_TRUE(l->close());
  l.reset();
  l = open(config(1024));
  EXPECT_EQ(l->start_offset().value, 0);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  auto again = l->detach_for_retention(offset{segs[2].base.value + 1});
  EXPECT_EQ(again.segments_deleted, 2);
  ASSERT_TRUE(partition_log::remove_retired(again.retired));
  EXPECT_TRUE(again.retired.empty());
  EXPECT_TRUE(again.retired.handles.empty());
  EXPECT_FALSE(fs::exists(dir_ / "p0" / seg_name(0, ".log")));
  EXPECT_FALSE(fs::exists(dir_ / "p0" / seg_name(0, ".index")));
  EXPECT_FALSE(fs::exists(dir_ / "p0" / seg_name(0, ".timeindex")));
  EXPECT_EQ(read_all(*l, segs[2].base).size(), l->size_bytes());
  // The first detach's files are gone by now; removing them again is not an error.
  EXPECT_TRUE(partition_log::remove_retired(r.retired));
}

TEST_F(log_test, retention_never_deletes_the_active_segment) {
  auto l = open(config(1024));
  for (int i = 0; i < 20; ++i) append(*l);
  auto r = l->apply_retention(l->next_offset());
  ASSERT_TRUE(r);
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_EQ(l->start_offset(), l->segments()[0].base);
  EXPECT_EQ(l->next_offset().value, 60);
  append(*l);
  EXPECT_EQ(l->next_offset().value, 63);
}

TEST_F(log_test, retention_by_time_uses_the_newest_append_time_of_a_segment) {
  auto c = config(1024);
  c.retention_ms = 10'000;
  auto l = open(c);
  for (int i = 0; i < 10; ++i) append(*l);  // old
  size_t old_segments = l->segment_count();
  clk_.advance_ms(5'000);
  for (int i = 0; i < 10; ++i) append(*l);  // newer
  clk_.advance_ms(5'001);
  auto r = l->apply_retention(offset{0});
  ASSERT_TRUE(r);
  // Segments whose newest batch is from the first round go; the one straddling both stays.
  EXPECT_EQ(static_cast<size_t>(r->segments_deleted), old_segments - 1);
  EXPECT_LE(l->start_offset().value, 30);
  clk_.advance_ms(100'000);
  ASSERT_TRUE(l->apply_retention(offset{0}));
  EXPECT_EQ(l->segment_count(), 1u);
}

TEST_F(log_test, retention_by_size_deletes_oldest_while_over_the_limit) {
  auto c = config(1024);
  c.retention_bytes = 2500;
  auto l = open(c);
  for (int i = 0; i < 20; ++i) append(*l);
  auto r = l->apply_retention(offset{0});
  ASSERT_TRUE(r);
  EXPECT_GT(r->segments_deleted, 0);
  EXPECT_LE(l->size_bytes(), 2500u);
  EXPECT_GT(l->size_bytes() + l->segments()[0].size_bytes, 0u);
  EXPECT_EQ(read_all(*l, l->start_offset()).size(), l->size_bytes());
}

TEST_F(log_test, reopen_after_interrupted_deletion_finishes_it) {
  auto c = config(1024);
  auto l = open(c);
  for (int i = 0; i < 20; ++i) append(*l);
  auto segs = l->segments();
  ASSERT_TRUE(l->close());
  l.reset();
  // Segment 0: data file gone, indexes left over. Segment 1: indexes gone, data left.
  fs::remove(c.dir / seg_name(segs[0].base.value, ".log"));
  fs::remove(c.dir / seg_name(segs[1].base.value, ".index"));
  fs::remove(c.dir / seg_name(segs[1].base.value, ".timeindex"));
  l = open(c);
  ASSERT_TRUE(l);
  EXPECT_FALSE(fs::exists(c.dir / seg_name(segs[0].base.value, ".index")));
  EXPECT_FALSE(fs::exists(c.dir / seg_name(segs[0].base.value, ".timeindex")));
  EXPECT_EQ(l->start_offset(), segs[1].base);
  EXPECT_EQ(l->next_offset().value, 60);
  bytes all = expected_from(0);
  EXPECT_EQ(read_all(*l, segs[1].base),
            bytes(all.begin() + static_cast<std::ptrdiff_t>(segs[0].size_bytes), all.end()));
}

TEST_F(log_test, gap_between_segments_is_reported_as_corruption) {
  auto c = config(1024);
  auto l = open(c);
  for (int i = 0; i < 20; ++i) append(*l);
  auto segs = l->segments();
  ASSERT_TRUE(l->close());
  l.reset();
  fs::remove(c.dir / seg_name(segs[1].base.value, ".log"));
  // Used to fail open(); now the corrupt state, and every other file is kept.
  l = open(c);
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->corruption());
  EXPECT_EQ(l->corruption()->at, segs[1].base);
  EXPECT_NE(l->corruption()->why.find("gap"), std::string::npos) << l->corruption()->why;
  EXPECT_EQ(l->next_offset().value, 60);
  l.reset();
  for (size_t i = 2; i < segs.size(); ++i) EXPECT_TRUE(fs::exists(c.dir / seg_name(segs[i].base.value, ".log")));
}

TEST_F(log_test, group_commit_covers_only_appends_before_begin_sync) {
  auto l = open(config());
  EXPECT_EQ(l->durable_offset().value, 0);
  append(*l);
  auto s1 = l->begin_sync();
  EXPECT_EQ(s1.upto.value, 3);
  append(*l);
  auto s2 = l->begin_sync();
  EXPECT_EQ(s2.upto.value, 6);
  auto s3 = l->begin_sync();
  EXPECT_TRUE(s3.empty());  // nothing new since s2
  auto r1 = partition_log::run_sync(s1);
  auto r2 = partition_log::run_sync(s2);
  l->end_sync(s1, r1);
  EXPECT_EQ(l->durable_offset().value, 3);
  l->end_sync(s2, r2);
  EXPECT_EQ(l->durable_offset().value, 6);
  l->end_sync(s3, partition_log::run_sync(s3));
  EXPECT_EQ(l->durable_offset().value, 6);
}

TEST_F(log_test, sync_after_a_roll_covers_the_previous_segment_and_the_directory) {
  auto l = open(config(1024));
  append(*l);
  sync(*l);
  while (l->segment_count() == 1) append(*l);
  auto s = l->begin_sync();
  EXPECT_EQ(s.files.size(), 2u);
  EXPECT_FALSE(s.dir.empty());
  auto r = partition_log::run_sync(s);
  l->end_sync(s, r);
  EXPECT_EQ(l->durable_offset(), l->next_offset());
  append(*l);
  auto s2 = l->begin_sync();
  EXPECT_EQ(s2.files.size(), 1u);
  EXPECT_TRUE(s2.dir.empty());
  l->end_sync(s2, partition_log::run_sync(s2));
}

TEST_F(log_test, failed_fsync_poisons_the_log) {
  faulty_files ff;
  auto c = config();
  c.files = &ff;
  auto l = open(c);
  append(*l);
  sync(*l);
  append(*l);
  ff.fail(faulty_files::op::sync, faulty_files::fault::io_error);
  auto s = l->begin_sync();
  auto r = partition_log::run_sync(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::storage_error);
  l->end_sync(s, r);
  EXPECT_TRUE(l->failed());
  EXPECT_EQ(l->durable_offset().value, 3);
  auto a = append_copy(*l, make_batch(1, 1, 1));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, errc::storage_error);
  // Even a later sync that would succeed does not move durable_offset().
  EXPECT_TRUE(l->begin_sync().empty());
  l.reset();
  l = open(c);
  EXPECT_FALSE(l->failed());
  EXPECT_EQ(l->next_offset().value, 6);
}

TEST_F(log_test, failpoint_before_fsync_fails_the_sync) {
  auto l = open(config());
  append(*l);
  failpoint::arm("log.before_fsync", "error");
  auto s = l->begin_sync();
  auto r = partition_log::run_sync(s);
  failpoint::disarm_all();
  ASSERT_FALSE(r);
  l->end_sync(s, r);
  EXPECT_TRUE(l->failed());
}

class enospc_test : public log_test, public ::testing::WithParamInterface<bool> {};

TEST_P(enospc_test, enospc_on_append_leaves_no_partial_bytes_and_appends_work_after) {
  faulty_files ff;
  auto c = config(1 << 20, GetParam());
  c.files = &ff;
  auto l = open(c);
  append(*l);
  append(*l);
  ff.fail(faulty_files::op::write, faulty_files::fault::disk_full);
  auto b = make_batch(3, 40, 1);
  auto r = l->append(b, epoch{7});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::disk_full);
  EXPECT_FALSE(l->failed());
  EXPECT_EQ(l->next_offset().value, 6);
  if (!GetParam()) {
    EXPECT_EQ(fs::file_size(c.dir / seg_name(0, ".log")), expected_from(0).size());
  }
  append(*l);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  ASSERT_TRUE(l->close());
  l.reset();
  l = open(c);
  EXPECT_EQ(l->next_offset().value, 9);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

INSTANTIATE_TEST_SUITE_P(preallocate, enospc_test, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? std::string("on") : std::string("off"); });

TEST_F(log_test, eio_on_append_poisons_the_log_and_leaves_no_partial_bytes) {
  faulty_files ff;
  auto c = config();
  c.files = &ff;
  auto l = open(c);
  append(*l);
  ff.fail(faulty_files::op::write, faulty_files::fault::io_error);
  auto r = append_copy(*l, make_batch(3, 40, 1));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::storage_error);
  EXPECT_TRUE(l->failed());
  EXPECT_EQ(fs::file_size(c.dir / seg_name(0, ".log")), expected_from(0).size());
  auto r2 = append_copy(*l, make_batch(3, 40, 1));
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, errc::storage_error);
}

TEST_F(log_test, failed_truncate_after_enospc_poisons_the_log) {
  faulty_files ff;
  auto c = config();
  c.files = &ff;
  auto l = open(c);
  append(*l);
  ff.fail(faulty_files::op::write, faulty_files::fault::disk_full);
  ff.fail(faulty_files::op::truncate, faulty_files::fault::io_error);
  auto r = append_copy(*l, make_batch(3, 40, 1));
  ASSERT_FALSE(r);
  EXPECT_TRUE(l->failed());
}

class crash_test : public log_test, public ::testing::WithParamInterface<bool> {};

TEST_P(crash_test, crash_drops_unsynced_bytes_and_reopen_recovers_exactly_the_synced_batches) {
  for (uint64_t torn : {0, 1, 75, 150}) {
    fs::remove_all(dir_ / "p0");
    stored_.clear();
    faulty_files ff;
    auto c = config(1024, GetParam());
    c.files = &ff;
    auto l = open(c);
    for (int i = 0; i < 7; ++i) append(*l);
    sync(*l);
    int64_t synced = l->next_offset().value;
    size_t synced_batches = stored_.size();
    bytes synced_bytes = expected_from(0);
    // Unsynced appends, across one roll (a segment holds more than one sync group).
    size_t segs = l->segment_count();
    while (l->segment_count() < segs + 1) append(*l);
    append(*l);
    l.reset();
    ASSERT_TRUE(ff.crash(torn));
    l = open(c);
    ASSERT_TRUE(l) << "torn " << torn;
    // A torn prefix may complete a batch when it is long enough; never more than that.
    int64_t next = l->next_offset().value;
    EXPECT_GE(next, synced);
    bytes got = read_all(*l, offset{0});
    bytes want = synced_bytes;
    size_t b = synced_batches;
    for (; b < stored_.size() && want.size() < got.size(); ++b)
      want.insert(want.end(), stored_[b].begin(), stored_[b].end());
    EXPECT_EQ(got, want) << "torn " << torn;
    if (torn < stored_[synced_batches].size()) {
      EXPECT_EQ(next, synced) << "torn " << torn;
    }
    EXPECT_EQ(l->durable_offset(), l->next_offset());
    append(*l);
  }
}

INSTANTIATE_TEST_SUITE_P(preallocate, crash_test, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? std::string("on") : std::string("off"); });

TEST_F(log_test, truncate_suffix_removes_the_tail_at_a_batch_boundary) {
  auto c = config(1024);
  auto l = open(c);
  for (int i = 0; i < 20; ++i) append(*l);
  sync(*l);
  auto segs = l->segments();
  ASSERT_GT(segs.size(), 3u);
  // Not a boundary.
  auto bad = l->truncate_suffix(offset{31});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
  // The second batch of segment 1.
  int64_t cut = segs[1].base.value + 3;
  ASSERT_TRUE(l->truncate_suffix(offset{cut}));
  EXPECT_EQ(l->next_offset().value, cut);
  EXPECT_EQ(l->durable_offset().value, cut);
  EXPECT_EQ(l->segment_count(), 2u);
  stored_.resize(static_cast<size_t>(cut / 3));
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  EXPECT_FALSE(fs::exists(c.dir / seg_name(segs[2].base.value, ".log")));
  append(*l);
  append(*l);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  EXPECT_LT(l->durable_offset(), l->next_offset());
  l.reset();
  l = open(c);
  EXPECT_EQ(l->next_offset().value, cut + 6);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  // At a segment base: that segment goes entirely.
  segs = l->segments();
  ASSERT_TRUE(l->truncate_suffix(segs[1].base));
  EXPECT_EQ(l->segment_count(), 1u);
  stored_.resize(static_cast<size_t>(segs[1].base.value / 3));
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  // Down to the start: an empty log that keeps its base.
  ASSERT_TRUE(l->truncate_suffix(offset{0}));
  EXPECT_EQ(l->next_offset().value, 0);
  stored_.clear();
  append(*l);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

TEST_F(log_test, truncate_suffix_back_into_an_older_segment_keeps_rolling_by_age) {
  auto c = config(1 << 20);
  c.segment_ms = 1000;
  auto l = open(c);
  for (int i = 0; i < 10; ++i) append(*l);  // several index points in segment 0
  clk_.advance_ms(1000);
  append(*l);
  ASSERT_EQ(l->segment_count(), 2u);
  auto second = l->segments()[1].base;
  ASSERT_TRUE(l->close());
  l.reset();
  l = open(c);  // segment 0 is an older segment now: checked from its last index point only
  ASSERT_TRUE(l->truncate_suffix(second));
  ASSERT_EQ(l->segment_count(), 1u);
  // Segment 0's first batch is more than segment_ms old: the next append starts a new segment.
  append(*l);
  EXPECT_EQ(l->segment_count(), 2u);
  stored_.erase(stored_.begin() + 10);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

TEST_F(log_test, truncate_suffix_lowers_an_in_flight_sync) {
  auto l = open(config());
  append(*l);
  append(*l);
  auto s = l->begin_sync();  // upto 6
  ASSERT_TRUE(l->truncate_suffix(offset{3}));
  append(*l);  // new offsets 3..5, not covered by s
  auto r = partition_log::run_sync(s);
  l->end_sync(s, r);
  EXPECT_EQ(l->durable_offset().value, 3);
}

TEST_F(log_test, offset_for_timestamp_finds_the_first_batch_at_or_after) {
  auto c = config(2048);
  auto l = open(c);
  // Batch i has timestamps [1000 + 100 i, 1000 + 100 i + 2], 3 records: offsets 3i..3i+2.
  for (int i = 0; i < 40; ++i) append(*l, 3, 40, 1000 + 100 * i);
  ASSERT_GT(l->segment_count(), 2u);
  EXPECT_EQ(l->offset_for_timestamp(0)->value, 0);
  EXPECT_EQ(l->offset_for_timestamp(1002)->value, 0);
  EXPECT_EQ(l->offset_for_timestamp(1003)->value, 3);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(l->offset_for_timestamp(1000 + 100 * i)->value, 3 * i) << i;
    EXPECT_EQ(l->offset_for_timestamp(1000 + 100 * i - 50)->value, 3 * i) << i;
  }
  EXPECT_EQ(l->offset_for_timestamp(1000 + 100 * 39 + 3)->value, 120);
  ASSERT_TRUE(l->close());
  l.reset();
  l = open(c);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(l->offset_for_timestamp(1000 + 100 * i - 1)->value, 3 * i) << i;
}

TEST_F(log_test, close_truncates_a_preallocated_segment_to_its_data) {
  auto c = config(1 << 20, true);
  auto l = open(c);
  auto seg = c.dir / seg_name(0, ".log");
  EXPECT_EQ(fs::file_size(seg), 1u << 20);
  append(*l);
  append(*l);
  ASSERT_TRUE(l->close());
  EXPECT_EQ(l->durable_offset().value, 6);
  EXPECT_EQ(fs::file_size(seg), expected_from(0).size());
  auto a = append_copy(*l, make_batch(1, 1, 1));
  EXPECT_FALSE(a);
  l.reset();
  l = open(c);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

TEST_F(log_test, rolled_preallocated_segment_is_cut_to_its_data) {
  auto c = config(2048, true);
  auto l = open(c);
  while (l->segment_count() < 3) append(*l);
  auto segs = l->segments();
  EXPECT_EQ(fs::file_size(c.dir / seg_name(0, ".log")), segs[0].size_bytes);
  EXPECT_EQ(fs::file_size(c.dir / seg_name(segs[2].base.value, ".log")), 2048u);
}

}  // namespace
}  // namespace ferry::log
