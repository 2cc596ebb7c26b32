// The fault-injecting file layer (faulty_files) and what the log does against it: lost directory
// entries, torn writes that are not a prefix, bit rot and zeroed pages in synced data, directory
// fsync order, and running out of file descriptors.
#include <algorithm>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "broker/log/faulty_file.h"
#include "broker/log/log.h"
#include "broker/log/log_test_fixture.h"

namespace ferry::log {
namespace {

using namespace ferry::log::test;

void put(faulty_files& ff, const fs::path& p, const bytes& b, bool sync) {
  auto f = ff.open(p, open_mode::create);
  ASSERT_TRUE(f);
  ASSERT_TRUE((*f)->pwrite_all(b, 0));
  if (sync) {
    ASSERT_TRUE((*f)->datasync());
  }
}

bytes pattern(size_t n, uint8_t seed) {
  bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 7 + seed) % 251 + 1);
  return b;
}

// ---- the model itself ----

TEST_F(log_test, faulty_files_lose_directory_entries_that_were_not_synced) {
  faulty_files ff;
  auto d = dir_ / "d";
  ASSERT_TRUE(ff.create_dir(d));
  ASSERT_TRUE(ff.sync_dir(dir_));
  put(ff, d / "kept", pattern(100, 1), true);
  put(ff, d / "renamed", pattern(100, 2), true);
  put(ff, d / "removed", pattern(100, 3), true);
  ASSERT_TRUE(ff.sync_dir(d));
  put(ff, d / "new", pattern(100, 4), true);  // data synced, name not
  ASSERT_TRUE(ff.rename(d / "renamed", d / "target"));
  ASSERT_TRUE(ff.remove(d / "removed"));
  ASSERT_TRUE(ff.create_dir(d / "sub"));
  put(ff, d / "sub" / "f", pattern(10, 5), true);
  ASSERT_TRUE(ff.sync_dir(d / "sub"));  // its entry in d is still not durable
  ASSERT_TRUE(ff.crash());
  EXPECT_EQ(read_file(d / "kept"), pattern(100, 1));
  EXPECT_FALSE(fs::exists(d / "new"));
  EXPECT_FALSE(fs::exists(d / "target"));
  EXPECT_EQ(read_file(d / "renamed"), pattern(100, 2));
  EXPECT_EQ(read_file(d / "removed"), pattern(100, 3));
  EXPECT_FALSE(fs::exists(d / "sub"));
  // After a sync_dir the same changes stay.
  put(ff, d / "new", pattern(100, 4), true);
  ASSERT_TRUE(ff.remove(d / "removed"));
  ASSERT_TRUE(ff.sync_dir(d));
  ASSERT_TRUE(ff.crash());
  EXPECT_EQ(read_file(d / "new"), pattern(100, 4));
  EXPECT_FALSE(fs::exists(d / "removed"));
  // A folder never synced into its parent is gone with everything in it.
  ASSERT_TRUE(ff.create_dir(dir_ / "e"));
  put(ff, dir_ / "e" / "f", pattern(10, 6), true);
  ASSERT_TRUE(ff.sync_dir(dir_ / "e"));
  ASSERT_TRUE(ff.crash());
  EXPECT_FALSE(fs::exists(dir_ / "e"));
}

TEST_F(log_test, faulty_files_tear_unsynced_writes_by_sector_not_as_a_prefix) {
  const uint64_t n = 16 * faulty_files::sector;
  bool hole_then_data = false, old_contents = false;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    faulty_files ff;
    auto p = dir_ / ("f" + std::to_string(seed));
    auto old = pattern(n, 9);
    put(ff, p, old, true);
    ASSERT_TRUE(ff.sync_dir(dir_));
    // Unsynced: cut back to 1000 bytes (inside sector 1), then new bytes from there on, 8 sectors
    // further than the old end.
    auto f = ff.open(p, open_mode::existing);
    ASSERT_TRUE(f);
    ASSERT_TRUE((*f)->truncate(1000));
    auto fresh = pattern(n + 8 * faulty_files::sector - 1000, 77);
    ASSERT_TRUE((*f)->pwrite_all(fresh, 1000));
    f->reset();
    ASSERT_TRUE(ff.crash_sectors(seed));
    auto got = read_file(p);
    ASSERT_GE(got.size(), n) << "never shorter than at the last sync";
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + 1000, old.begin())) << "synced bytes survive";
    bool lost_before = false;
    for (uint64_t s = 0; s * faulty_files::sector < got.size(); ++s) {
      uint64_t a = std::max<uint64_t>(s * faulty_files::sector, 1000);
      uint64_t e = std::min<uint64_t>((s + 1) * faulty_files::sector, got.size());
      if (a >= e) continue;
      auto span = [&](const bytes& b, uint64_t off) {
        return off + (e - a) <= b.size() &&
               std::equal(got.begin() + static_cast<std::ptrdiff_t>(a), got.begin() + static_cast<std::ptrdiff_t>(e),
                          b.begin() + static_cast<std::ptrdiff_t>(off));
      };
      bool is_new = span(fresh, a - 1000);
      bool is_old = a < n && span(old, a);
      bool is_zero =
          std::all_of(got.begin() + static_cast<std::ptrdiff_t>(a), got.begin() + static_cast<std::ptrdiff_t>(e),
                      [](std::byte b) { return b == std::byte{0}; });
      EXPECT_TRUE(is_new || is_old || is_zero) << "seed " << seed << " sector " << s;
      if (!is_new) lost_before = true;
      if (is_new && lost_before) hole_then_data = true;
      if (is_old && !is_new) old_contents = true;
    }
  }
  EXPECT_TRUE(hole_then_data) << "some seed keeps a sector after a lost one";
  EXPECT_TRUE(old_contents) << "some seed brings old contents back";
}

// ---- directory fsyncs ----

TEST_F(log_test, open_makes_the_new_topic_and_partition_folders_durable) {
  faulty_files ff;
  auto c = config();
  c.dir = dir_ / "topic" / "p0";
  c.files = &ff;
  auto l = open(c);
  append(*l);
  sync(*l);
  l.reset();
  ASSERT_TRUE(ff.crash());
  ASSERT_TRUE(fs::exists(c.dir / seg_name(0, ".log")));
  l = open(c);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

TEST_F(log_test, a_new_segment_is_durable_once_durable_offset_covers_it) {
  for (bool synced : {false, true}) {
    fs::remove_all(dir_ / "p0");
    stored_.clear();
    faulty_files ff;
    auto c = config(1024);
    c.files = &ff;
    auto l = open(c);
    append(*l);
    sync(*l);
    size_t before = stored_.size();
    while (l->segment_count() < 2) append(*l);
    auto new_seg = c.dir / seg_name(l->segments()[1].base.value, ".log");
    if (synced) {
      sync(*l);
      EXPECT_EQ(l->durable_offset(), l->next_offset());
    }
    int64_t durable = l->durable_offset().value;
    l.reset();
    ASSERT_TRUE(ff.crash());
    EXPECT_EQ(fs::exists(new_seg), synced) << "an unsynced new segment's name is lost";
    l = open(c);
    EXPECT_EQ(l->next_offset().value, durable);
    if (!synced) stored_.resize(before);
    EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  }
}

// close() leaves a marker once everything is synced; open() takes it away durably, so a crash
// after the open is never mistaken for a clean shutdown (which skips the full CRC scan of the
// segment before the active one).
TEST_F(log_test, clean_shutdown_marker_is_written_by_close_and_removed_durably_by_open) {
  faulty_files ff;
  auto c = config(1024);
  c.files = &ff;
  auto marker = c.dir / "clean_shutdown";
  auto l = open(c);
  while (l->segment_count() < 3) append(*l);
  EXPECT_FALSE(fs::exists(marker));
  ASSERT_TRUE(l->close());
  EXPECT_TRUE(fs::exists(marker));
  l.reset();
  ASSERT_TRUE(ff.crash());
  EXPECT_TRUE(fs::exists(marker)) << "its name was synced";
  l = open(c);
  EXPECT_FALSE(fs::exists(marker));
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  append(*l);
  l.reset();
  ASSERT_TRUE(ff.crash());
  EXPECT_FALSE(fs::exists(marker)) << "its removal was synced";
  // A corrupt log writes none.
  l = open(c);
  ASSERT_TRUE(flip_bits(c.dir / seg_name(0, ".log"), 80, 0x01));
  bytes out;
  EXPECT_FALSE(l->read(offset{0}, SIZE_MAX, l->next_offset(), out));
  ASSERT_TRUE(l->corruption());
  ASSERT_TRUE(l->close());
  EXPECT_FALSE(fs::exists(marker));
}

// Retention deletes oldest first and syncs the folder after each segment: whatever subset of
// unsynced deletions a crash keeps, at any point, the log left is contiguous and whole.
TEST_F(log_test, crash_at_any_step_of_retention_leaves_a_contiguous_log) {
  for (int step = 0; step <= 9; ++step) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      fs::remove_all(dir_ / "p0");
      stored_.clear();
      faulty_files ff;
      auto c = config(1024);
      c.files = &ff;
      auto l = open(c);
      for (int i = 0; i < 20; ++i) append(*l);
      ASSERT_TRUE(l->close());
      auto segs = l->segments();
      ASSERT_GE(segs.size(), 5u);
      // The `step`-th unlink fails (the process dies there); 3 files per segment.
      ff.fail(faulty_files::op::remove, faulty_files::fault::io_error, faulty_files::repeat::once, "", step);
      auto r = l->apply_retention(segs[3].base);
      l.reset();
      ASSERT_TRUE(ff.crash_sectors(seed));
      ff.heal();
      l = open(c);
      ASSERT_TRUE(l);
      EXPECT_FALSE(l->corruption()) << "step " << step << " seed " << seed << ": " << l->corruption()->why;
      EXPECT_EQ(l->next_offset().value, 60);
      EXPECT_LE(l->start_offset(), segs[3].base);
      size_t first = 0;
      while (base_of(first) < l->start_offset().value) ++first;
      EXPECT_EQ(read_all(*l, l->start_offset()), expected_from(first)) << "step " << step;
      if (step == 9) {
        ASSERT_TRUE(r);
        EXPECT_EQ(l->start_offset(), segs[3].base) << "deletions synced: they do not come back";
      }
    }
  }
}

TEST_F(log_test, crash_at_any_step_of_truncate_suffix_leaves_a_prefix) {
  for (int step = 0; step <= 9; ++step) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      fs::remove_all(dir_ / "p0");
      stored_.clear();
      faulty_files ff;
      auto c = config(1024);
      c.files = &ff;
      auto l = open(c);
      for (int i = 0; i < 20; ++i) append(*l);
      sync(*l);
      auto segs = l->segments();
      ASSERT_GE(segs.size(), 5u);
      int64_t cut = segs[1].base.value + 3;
      ff.fail(faulty_files::op::remove, faulty_files::fault::io_error, faulty_files::repeat::once, "", step);
      auto r = l->truncate_suffix(offset{cut});
      l.reset();
      ASSERT_TRUE(ff.crash_sectors(seed));
      ff.heal();
      l = open(c);
      ASSERT_TRUE(l);
      EXPECT_FALSE(l->corruption()) << "step " << step << " seed " << seed << ": " << l->corruption()->why;
      int64_t end = l->next_offset().value;
      EXPECT_GE(end, cut);
      EXPECT_EQ(read_all(*l, offset{0}), expected_below(end)) << "step " << step;
      if (r) {
        EXPECT_EQ(end, cut) << "a completed truncation does not come back";
      }
    }
  }
}

// ---- torn writes that are not a prefix ----

class sector_crash_test : public log_test, public ::testing::WithParamInterface<bool> {};

TEST_P(sector_crash_test, torn_sectors_lose_no_synced_batch_and_never_cut_valid_data) {
  int truncated = 0, fenced = 0;
  for (uint64_t seed = 0; seed < 120; ++seed) {
    fs::remove_all(dir_ / "p0");
    stored_.clear();
    faulty_files ff;
    auto c = config(2048, GetParam());
    c.files = &ff;
    auto l = open(c);
    for (int i = 0; i < 5; ++i) append(*l, 2, 30);
    sync(*l);
    int64_t synced = l->next_offset().value;
    // Unsynced: small batches over several sectors, and across a roll.
    size_t segs = l->segment_count();
    while (l->segment_count() < segs + 1) append(*l, 1, 20);
    for (int i = 0; i < 4; ++i) append(*l, 1, 20);
    l.reset();
    ASSERT_TRUE(ff.crash_sectors(seed));
    l = open(c);
    ASSERT_TRUE(l) << "seed " << seed;
    if (auto d = l->corruption()) {
      // A lost sector with a whole batch after it: fenced, nothing cut; the repair cuts there.
      ++fenced;
      EXPECT_GE(d->at.value, synced) << "seed " << seed;
      EXPECT_EQ(read_all(*l, offset{0}), expected_below(d->at.value)) << "seed " << seed;
      EXPECT_GE(l->next_offset(), d->at);
      ASSERT_TRUE(l->truncate_suffix(d->at));
    } else {
      ++truncated;
    }
    int64_t next = l->next_offset().value;
    EXPECT_GE(next, synced) << "seed " << seed;
    EXPECT_EQ(read_all(*l, offset{0}), expected_below(next)) << "seed " << seed;
    append(*l);
  }
  EXPECT_GT(truncated, 0);
  EXPECT_GT(fenced, 0);
}

INSTANTIATE_TEST_SUITE_P(preallocate, sector_crash_test, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? std::string("on") : std::string("off"); });

// ---- bit rot and zeroed pages in synced data ----

// Every batch's length field and every 4 KiB page of a synced log with several segments: the
// damage is found (at open, or by the header walk and a full read that the partition does) and
// never leads to a byte of any segment file being cut or deleted.
TEST_F(log_test, bit_rot_and_zeroed_pages_never_delete_the_data_after_them) {
  auto c = config(8192);
  {
    auto l = open(c);
    for (int i = 0; i < 60; ++i) append(*l, 4, 60);
    ASSERT_TRUE(l->close());
  }
  auto pristine = data_files(c.dir);
  auto segs_of = [&] {
    auto l = open(c);
    return l->segments();
  }();
  struct damage {
    fs::path seg;
    uint64_t pos;
    bool zero;
    uint8_t mask;
  };
  std::vector<damage> cases;
  for (size_t b = 0; b + 1 < stored_.size(); ++b) {
    auto p = place_of(c, segs_of, b);
    cases.push_back({p.seg, p.pos + wire::hdr::batch_length + (b % 3), false, static_cast<uint8_t>(1u << (b % 8))});
  }
  for (auto& [name, b] : pristine) {
    for (uint64_t page = 0; page + 4096 <= b.size(); page += 4096) {
      bool last_file = name == pristine.rbegin()->first;
      if (last_file && page + 4096 + stored_.back().size() > b.size()) continue;  // a torn tail's shape
      cases.push_back({c.dir / name, page, true, 0});
    }
  }
  ASSERT_GT(cases.size(), 60u);
  for (auto& d : cases) {
    for (auto& [name, b] : pristine) write_file(c.dir / name, b);
    if (d.zero) {
      ASSERT_TRUE(zero_range(d.seg, d.pos, 4096));
    } else {
      ASSERT_TRUE(flip_bits(d.seg, d.pos, d.mask));
    }
    auto damaged = data_files(c.dir);
    auto l = open(c);
    ASSERT_TRUE(l) << d.seg << " " << d.pos;
    // What the partition does at start-up and what readers do.
    ASSERT_TRUE(l->for_each_batch_header(l->start_offset(), [](const wire::batch_header&) {}));
    bytes out;
    (void)l->read(l->start_offset(), SIZE_MAX, l->next_offset(), out);
    auto cor = l->corruption();
    ASSERT_TRUE(cor) << d.seg << " " << d.pos << (d.zero ? " zeroed" : " flipped");
    EXPECT_EQ(l->next_offset().value, end_offset());
    if (cor->at.value > 0) {
      EXPECT_EQ(read_all(*l, offset{0}), expected_below(cor->at.value)) << d.seg << " " << d.pos;
    }
    l.reset();
    EXPECT_EQ(data_files(c.dir), damaged) << d.seg << " " << d.pos;
  }
}

// ---- running out of file descriptors ----

class emfile_test : public log_test, public ::testing::WithParamInterface<const char*> {};

TEST_P(emfile_test, failed_open_of_a_new_segment_fails_that_append_only) {
  faulty_files ff;
  auto c = config(1024);
  c.files = &ff;
  auto l = open(c);
  while (l->segment_count() < 2) append(*l);
  // Fill the active segment to the brim: the next append rolls.
  while (l->segments().back().size_bytes + stored_.back().size() <= 1024) append(*l);
  size_t segs = l->segment_count();
  int64_t next = l->next_offset().value;
  ff.fail(faulty_files::op::open, faulty_files::fault::too_many_files, faulty_files::repeat::always, GetParam());
  for (int i = 0; i < 3; ++i) {
    auto r = append_copy(*l, make_batch(3, 40, 1));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::storage_error);
    EXPECT_NE(r.error().message.find("Too many open files"), std::string::npos) << r.error().message;
    EXPECT_FALSE(l->failed()) << "not a poison";
    EXPECT_EQ(l->next_offset().value, next);
    EXPECT_EQ(l->segment_count(), segs);
  }
  // Syncing and reading go on meanwhile.
  sync(*l);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  ff.heal();
  append(*l);
  EXPECT_EQ(l->segment_count(), segs + 1);
  append(*l);
  sync(*l);
  EXPECT_EQ(l->durable_offset(), l->next_offset());
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  l.reset();
  ASSERT_TRUE(ff.crash());
  l = open(c);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

INSTANTIATE_TEST_SUITE_P(files, emfile_test, ::testing::Values(".log", ".index", ".timeindex"),
                         [](const auto& i) { return std::string(i.param + 1); });

TEST_F(log_test, a_failed_write_still_poisons_the_log_after_open_failures) {
  faulty_files ff;
  auto c = config(1024);
  c.files = &ff;
  auto l = open(c);
  while (l->segments().back().size_bytes + 300 <= 1024) append(*l);
  ff.fail(faulty_files::op::open, faulty_files::fault::too_many_files);
  EXPECT_FALSE(append_copy(*l, make_batch(3, 40, 1)));
  EXPECT_FALSE(l->failed());
  ff.fail(faulty_files::op::write, faulty_files::fault::io_error);
  EXPECT_FALSE(append_copy(*l, make_batch(3, 40, 1)));
  EXPECT_TRUE(l->failed());
}

}  // namespace
}  // namespace ferry::log
