// Damaged segments at open (schema/segment.md, "Recovery"): only a torn tail is truncated; damage
// followed by valid data opens the log in the corrupt state, and the corrupt state's API.
#include <algorithm>
#include <string>

#include <gtest/gtest.h>

#include "broker/log/faulty_file.h"
#include "broker/log/log.h"
#include "broker/log/log_test_fixture.h"

namespace ferry::log {
namespace {

using namespace ferry::log::test;

class recovery_test : public log_test {
 protected:
  // `n` batches of `records` records, synced and closed.
  std::unique_ptr<partition_log> fill(const log_config& c, int n, int records = 10, size_t value_size = 40) {
    auto l = open(c);
    for (int i = 0; i < n; ++i) append(*l, records, value_size);
    sync(*l);
    return l;
  }

  // Checks the corrupt state of `l` at batch `batch`: reads stop before it, writes are refused,
  // the log end is past everything that was appended.
  // The last batch stored in segment `si`: an older segment is CRC-checked at open only from its
  // last index point on (the batch with interval 256 and these batch sizes).
  size_t last_batch_in(const std::vector<segment_info>& segs, size_t si) const {
    if (si + 1 == segs.size()) return stored_.size() - 1;
    size_t b = 0;
    while (base_of(b + 1) < segs[si + 1].base.value) ++b;
    return b;
  }

  void expect_corrupt_at(partition_log& l, size_t batch, const fs::path& seg) {
    auto d = l.corruption();
    ASSERT_TRUE(d);
    int64_t at = base_of(batch);
    EXPECT_EQ(d->at.value, at);
    EXPECT_NE(d->where.find(seg.string()), std::string::npos) << d->where;
    EXPECT_EQ(l.next_offset().value, end_offset());
    EXPECT_EQ(l.durable_offset(), l.next_offset());
    EXPECT_EQ(read_all(l, l.start_offset()), expected_below(at));
    bytes out;
    auto r = l.read(offset{at}, SIZE_MAX, l.next_offset(), out);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::corrupt_batch);
    EXPECT_TRUE(out.empty());
    auto a = append_copy(l, make_batch(1, 1, 1));
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code, errc::corrupt_batch);
    EXPECT_NE(a.error().message.find(d->where), std::string::npos) << a.error().message;
    EXPECT_FALSE(l.failed());
  }
};

// The reported case: a flipped length field in the last segment made recovery treat everything
// after it (1,340 fsynced messages) as a torn tail, because it trusted that length to find the
// next batch. Every bit of the field, so the bad length is shorter, longer and past the file end.
TEST_F(recovery_test, flipped_length_field_in_the_last_segment_keeps_the_1340_messages_after_it) {
  for (int bit = 0; bit < 32; bit += 3) {
    fs::remove_all(dir_ / "p0");
    stored_.clear();
    auto c = config(1 << 20);
    auto l = fill(c, 20 + 1 + 134, 10);
    l.reset();  // no close: like a crash after the sync
    auto p = place_of(c, {segment_info{offset{0}, 0, 0}}, 20);
    auto before = data_files(c.dir);
    ASSERT_TRUE(flip_bits(p.seg, p.pos + wire::hdr::batch_length + bit / 8, static_cast<uint8_t>(1u << (bit % 8))));
    auto damaged = data_files(c.dir);
    l = open(c);
    ASSERT_TRUE(l) << "bit " << bit;
    expect_corrupt_at(*l, 20, p.seg);
    EXPECT_EQ(end_offset() - base_of(21), 1340);  // valid, fsynced messages after the damaged batch
    l.reset();
    EXPECT_EQ(data_files(c.dir), damaged) << "bit " << bit;
  }
}

TEST_F(recovery_test, zeroed_page_in_the_middle_of_the_last_segment_opens_corrupt) {
  auto c = config(1 << 20);
  auto l = fill(c, 200, 10);
  l.reset();
  auto seg = c.dir / seg_name(0, ".log");
  ASSERT_GT(fs::file_size(seg), 3 * 4096u);
  ASSERT_TRUE(zero_range(seg, 4096, 4096));
  auto damaged = data_files(c.dir);
  // The first batch that overlaps the page.
  size_t batch = 0;
  for (uint64_t end = 0; (end += stored_[batch].size()) <= 4096;) ++batch;
  l = open(c);
  ASSERT_TRUE(l);
  expect_corrupt_at(*l, batch, seg);
  l.reset();
  EXPECT_EQ(data_files(c.dir), damaged);
}

TEST_F(recovery_test, several_damaged_batches_open_corrupt_at_the_first) {
  auto c = config(1 << 20);
  auto l = fill(c, 60, 5);
  auto segs = l->segments();
  l.reset();
  auto p5 = place_of(c, segs, 5), p10 = place_of(c, segs, 10), p30 = place_of(c, segs, 30);
  ASSERT_TRUE(flip_bits(p5.seg, p5.pos + 100, 0x20));                            // records
  ASSERT_TRUE(flip_bits(p10.seg, p10.pos + wire::hdr::magic, 0x02));             // header
  ASSERT_TRUE(flip_bits(p30.seg, p30.pos + wire::hdr::batch_length + 1, 0x01));  // length
  auto damaged = data_files(c.dir);
  l = open(c);
  ASSERT_TRUE(l);
  expect_corrupt_at(*l, 5, p5.seg);
  l.reset();
  EXPECT_EQ(data_files(c.dir), damaged);
}

// The reported case: damage in the second-to-last segment made recovery delete the whole last
// segment (the gap after the "torn" segment).
TEST_F(recovery_test, damage_in_the_second_to_last_segment_keeps_the_last_segment) {
  for (int shape = 0; shape < 3; ++shape) {
    fs::remove_all(dir_ / "p0");
    stored_.clear();
    auto c = config(8192);
    auto l = fill(c, 60, 5);
    auto segs = l->segments();
    ASSERT_GE(segs.size(), 3u);
    l.reset();
    // The last batch of the second-to-last segment: after its last index point.
    size_t batch = 0;
    while (base_of(batch + 1) < segs[segs.size() - 1].base.value) ++batch;
    auto p = place_of(c, segs, batch);
    if (shape == 0) {
      ASSERT_TRUE(flip_bits(p.seg, p.pos + 150, 0x01));
    }
    if (shape == 1) {
      ASSERT_TRUE(flip_bits(p.seg, p.pos + wire::hdr::batch_length, 0x08));
    }
    if (shape == 2) {
      ASSERT_TRUE(zero_range(p.seg, p.pos, fs::file_size(p.seg) - p.pos));
    }
    auto damaged = data_files(c.dir);
    l = open(c);
    ASSERT_TRUE(l) << "shape " << shape;
    expect_corrupt_at(*l, batch, p.seg);
    EXPECT_EQ(l->segment_count(), segs.size() - 1);
    l.reset();
    EXPECT_EQ(data_files(c.dir), damaged) << "shape " << shape;
    EXPECT_TRUE(fs::exists(c.dir / seg_name(segs.back().base.value, ".index")));
  }
}

// An older segment with a sound index is trusted for its size at open; the header walk the
// partition runs at start-up (for_each_batch_header) finds a chain that breaks in it. The
// reported case: this made the whole broker refuse to start.
TEST_F(recovery_test, broken_header_chain_in_the_first_segment_is_found_by_the_header_walk) {
  for (bool length_field : {true, false}) {
    fs::remove_all(dir_ / "p0");
    stored_.clear();
    auto c = config(8192);
    auto l = fill(c, 80, 5);
    auto segs = l->segments();
    ASSERT_GE(segs.size(), 3u);
    l.reset();
    auto p = place_of(c, segs, 3);  // well before the first segment's last index point
    if (length_field) {
      ASSERT_TRUE(flip_bits(p.seg, p.pos + wire::hdr::batch_length, 0x10));
    } else {
      ASSERT_TRUE(zero_range(p.seg, p.pos, 4096));
    }
    auto damaged = data_files(c.dir);
    l = open(c);
    ASSERT_TRUE(l);
    std::vector<int64_t> visited;
    ASSERT_TRUE(l->for_each_batch_header(l->start_offset(),
                                         [&](const wire::batch_header& h) { visited.push_back(h.base_offset); }));
    ASSERT_TRUE(l->corruption());
    EXPECT_EQ(l->corruption()->at.value, base_of(3)) << l->corruption()->why;
    EXPECT_EQ(visited, (std::vector<int64_t>{0, 5, 10}));
    EXPECT_EQ(read_all(*l, offset{0}), expected_below(base_of(3)));
    EXPECT_EQ(l->next_offset().value, end_offset());
    EXPECT_FALSE(append_copy(*l, make_batch(1, 1, 1)));
    l.reset();
    EXPECT_EQ(data_files(c.dir), damaged);
  }
}

// With its index gone, an older segment is walked header by header at open: a damaged length
// field is blamed on its own batch (whose CRC fails), not on the garbage it points to.
TEST_F(recovery_test, damaged_length_in_an_older_segment_without_index_opens_corrupt_at_that_batch) {
  auto c = config(8192);
  auto l = fill(c, 80, 5);
  auto segs = l->segments();
  l.reset();
  fs::remove(c.dir / seg_name(0, ".index"));
  fs::remove(c.dir / seg_name(0, ".timeindex"));
  auto p = place_of(c, segs, 4);
  ASSERT_TRUE(flip_bits(p.seg, p.pos + wire::hdr::batch_length, 0x20));
  auto damaged = data_files(c.dir);
  l = open(c);
  ASSERT_TRUE(l);
  expect_corrupt_at(*l, 4, p.seg);
  l.reset();
  EXPECT_EQ(data_files(c.dir), damaged);
}

TEST_F(recovery_test, whole_last_batch_with_a_damaged_length_field_is_not_a_torn_tail) {
  auto c = config(1 << 20);
  auto l = fill(c, 30, 4);
  l.reset();
  auto p = place_of(c, {segment_info{offset{0}, 0, 0}}, 29);
  ASSERT_TRUE(flip_bits(p.seg, p.pos + wire::hdr::batch_length, 0x40));
  auto damaged = data_files(c.dir);
  l = open(c);
  ASSERT_TRUE(l);
  expect_corrupt_at(*l, 29, p.seg);
  EXPECT_NE(l->corruption()->why.find("length field"), std::string::npos) << l->corruption()->why;
  l.reset();
  EXPECT_EQ(data_files(c.dir), damaged);
}

TEST_F(recovery_test, missing_middle_segment_file_opens_corrupt_and_keeps_the_rest) {
  auto c = config(4096);
  auto l = fill(c, 60, 5);
  auto segs = l->segments();
  ASSERT_GE(segs.size(), 4u);
  l.reset();
  fs::remove(c.dir / seg_name(segs[1].base.value, ".log"));
  auto damaged = data_files(c.dir);
  l = open(c);
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->corruption());
  EXPECT_EQ(l->corruption()->at, segs[1].base);
  EXPECT_EQ(l->next_offset().value, end_offset());
  EXPECT_EQ(read_all(*l, offset{0}), expected_below(segs[1].base.value));
  l.reset();
  EXPECT_EQ(data_files(c.dir), damaged);
}

// What is still truncated: damage with nothing valid after it, in this file or any later one.
TEST_F(recovery_test, torn_tail_followed_only_by_garbage_is_truncated) {
  for (bool prealloc : {false, true}) {
    fs::remove_all(dir_ / "p0");
    stored_.clear();
    auto c = config(1 << 16, prealloc);
    auto l = fill(c, 20, 5);
    int64_t end = l->next_offset().value;
    auto seg = c.dir / seg_name(0, ".log");
    uint64_t size = l->size_bytes();
    l.reset();
    // Half a batch, then bytes that hold the magic value here and there but no valid batch.
    bytes tail = make_batch(5, 40, 1);
    tail.resize(tail.size() / 2);
    for (int i = 0; i < 2000; ++i) tail.push_back(static_cast<std::byte>(i % 7 == 0 ? 1 : (i * 37) & 0xff));
    {
      int fd = ::open(seg.c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::pwrite(fd, tail.data(), tail.size(), static_cast<off_t>(size)), static_cast<ssize_t>(tail.size()));
      ::close(fd);
    }
    l = open(c);
    ASSERT_TRUE(l);
    EXPECT_FALSE(l->corruption());
    EXPECT_EQ(l->next_offset().value, end);
    EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
    append(*l);
    EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  }
}

TEST_F(recovery_test, torn_tail_in_the_second_to_last_segment_before_a_segment_with_no_valid_batch_is_truncated) {
  auto c = config(4096);
  auto l = fill(c, 40, 5);
  auto segs = l->segments();
  ASSERT_GE(segs.size(), 3u);
  l.reset();
  // The last segment holds only garbage; the one before it ends in half a batch.
  auto last = c.dir / seg_name(segs.back().base.value, ".log");
  bytes garbage(3000);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<std::byte>((i * 131) & 0xff);
  write_file(last, garbage);
  auto prev = c.dir / seg_name(segs[segs.size() - 2].base.value, ".log");
  fs::resize_file(prev, fs::file_size(prev) - 30);
  l = open(c);
  ASSERT_TRUE(l);
  EXPECT_FALSE(l->corruption());
  EXPECT_FALSE(fs::exists(last));
  size_t batches = 0;
  while (base_of(batches + 1) < segs.back().base.value) ++batches;
  EXPECT_EQ(l->next_offset().value, base_of(batches));
  stored_.resize(batches);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

// A zeroed page at the very end cannot be told from a torn write (which leaves zeros): it is cut.
// Only damage with valid data after it is kept; see the tests above.
TEST_F(recovery_test, zeroed_last_page_is_a_torn_tail) {
  auto c = config(1 << 20);
  auto l = fill(c, 100, 5);
  l.reset();
  auto seg = c.dir / seg_name(0, ".log");
  uint64_t size = fs::file_size(seg);
  ASSERT_TRUE(zero_range(seg, size - 4096, 4096));
  l = open(c);
  ASSERT_TRUE(l);
  EXPECT_FALSE(l->corruption());
  EXPECT_LT(l->next_offset().value, end_offset());
  EXPECT_EQ(read_all(*l, offset{0}), expected_below(l->next_offset().value));
}

// ---- the corrupt state's API ----

TEST_F(recovery_test, corrupt_log_serves_below_the_damage_and_nothing_from_it) {
  auto c = config(4096);
  auto l = fill(c, 60, 5, 100);
  auto segs = l->segments();
  l.reset();
  ASSERT_GE(segs.size(), 5u);
  size_t batch = last_batch_in(segs, 2);
  auto p = place_of(c, segs, batch);
  ASSERT_TRUE(flip_bits(p.seg, p.pos + 90, 0x04));
  l = open(c);
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->corruption());
  int64_t at = base_of(batch);
  EXPECT_EQ(l->corruption()->at.value, at);
  EXPECT_EQ(l->corruption()->why.rfind("batch CRC32C mismatch", 0), 0u) << l->corruption()->why;
  // Reads from every offset below `at` return whole batches ending before it.
  for (int64_t from = 0; from < at; from += 7) {
    bytes out;
    ASSERT_TRUE(l->read(offset{from}, SIZE_MAX, l->next_offset(), out)) << from;
    EXPECT_FALSE(out.empty());
    bytes want = expected_below(at);
    EXPECT_TRUE(std::equal(out.rbegin(), out.rend(), want.rbegin())) << from;
  }
  for (int64_t from : {at, at + 1, l->next_offset().value}) {
    bytes out;
    auto r = l->read(offset{from}, SIZE_MAX, l->next_offset(), out);
    ASSERT_FALSE(r) << from;
    EXPECT_EQ(r.error().code, errc::corrupt_batch);
  }
  bytes out;
  auto r = l->read(offset{l->next_offset().value + 1}, SIZE_MAX, l->next_offset(), out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::offset_out_of_range);
  // Headers: the batches below the damage, then success.
  std::vector<int64_t> bases;
  ASSERT_TRUE(
      l->for_each_batch_header(offset{0}, [&](const wire::batch_header& h) { bases.push_back(h.base_offset); }));
  ASSERT_EQ(bases.size(), batch);
  EXPECT_EQ(bases.back(), base_of(batch - 1));
  bases.clear();
  ASSERT_TRUE(
      l->for_each_batch_header(offset{at + 2}, [&](const wire::batch_header& h) { bases.push_back(h.base_offset); }));
  EXPECT_TRUE(bases.empty());
  // Never a time lookup beyond the damage.
  auto t = l->offset_for_timestamp(INT64_MAX - 1);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->value, at);
  // Nothing to sync; durability stays at the log end.
  EXPECT_TRUE(l->begin_sync().empty());
  EXPECT_EQ(l->durable_offset(), l->next_offset());
  // Closing does not cut the damaged segment.
  auto before = data_files(c.dir);
  ASSERT_TRUE(l->close());
  l.reset();
  EXPECT_EQ(data_files(c.dir), before);
}

TEST_F(recovery_test, truncate_suffix_at_the_damage_repairs_the_log) {
  for (bool prealloc : {false, true}) {
    fs::remove_all(dir_ / "p0");
    stored_.clear();
    auto c = config(4096, prealloc);
    auto l = fill(c, 60, 5, 100);
    auto segs = l->segments();
    ASSERT_GE(segs.size(), 5u);
    l.reset();
    size_t batch = last_batch_in(segs, 1);
    auto p = place_of(c, segs, batch);
    ASSERT_TRUE(flip_bits(p.seg, p.pos + wire::hdr::magic, 0x01));
    l = open(c);
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->corruption());
    int64_t at = l->corruption()->at.value;
    ASSERT_EQ(at, base_of(batch));
    // Not above the damage.
    auto bad = l->truncate_suffix(offset{at + 5});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, errc::corrupt_batch);
    EXPECT_TRUE(l->corruption());
    // At it: the damage and everything after it go; the log is writable again.
    ASSERT_TRUE(l->truncate_suffix(offset{at}));
    EXPECT_FALSE(l->corruption());
    EXPECT_FALSE(l->failed());
    EXPECT_EQ(l->next_offset().value, at);
    EXPECT_EQ(l->durable_offset().value, at);
    for (size_t i = 2; i < segs.size(); ++i) EXPECT_FALSE(fs::exists(c.dir / seg_name(segs[i].base.value, ".log")));
    EXPECT_EQ(fs::file_size(p.seg), p.pos);
    stored_.resize(batch);
    EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
    for (int i = 0; i < 30; ++i) append(*l, 5, 100);
    sync(*l);
    EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
    l.reset();
    l = open(c);
    ASSERT_TRUE(l);
    EXPECT_FALSE(l->corruption());
    EXPECT_EQ(l->next_offset().value, end_offset());
    EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
  }
}

TEST_F(recovery_test, truncate_suffix_below_the_damage_repairs_the_log) {
  auto c = config(1 << 20);
  auto l = fill(c, 40, 5);
  l.reset();
  auto p = place_of(c, {segment_info{offset{0}, 0, 0}}, 30);
  ASSERT_TRUE(zero_range(p.seg, p.pos + 10, 50));
  l = open(c);
  ASSERT_TRUE(l->corruption());
  auto notb = l->truncate_suffix(offset{base_of(10) + 1});
  ASSERT_FALSE(notb);
  EXPECT_EQ(notb.error().code, errc::invalid_argument);
  ASSERT_TRUE(l->truncate_suffix(offset{base_of(10)}));
  EXPECT_FALSE(l->corruption());
  stored_.resize(10);
  append(*l);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

// Bit rot after start-up: the read that meets it puts the log in the corrupt state.
TEST_F(recovery_test, crc_mismatch_found_at_run_time_sets_corruption_and_truncate_repairs) {
  auto c = config(1 << 20);
  auto l = fill(c, 40, 5);
  EXPECT_FALSE(l->corruption());
  auto p = place_of(c, {segment_info{offset{0}, 0, 0}}, 12);
  ASSERT_TRUE(flip_bits(p.seg, p.pos + 80, 0x01));  // under the open log
  bytes out;
  auto r = l->read(offset{base_of(10)}, SIZE_MAX, l->next_offset(), out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::corrupt_batch);
  ASSERT_TRUE(l->corruption());
  EXPECT_EQ(l->corruption()->at.value, base_of(12));
  EXPECT_EQ(l->next_offset().value, end_offset()) << "offsets already handed out stay handed out";
  auto a = append_copy(*l, make_batch(1, 1, 1));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, errc::corrupt_batch);
  EXPECT_EQ(read_all(*l, offset{0}), expected_below(base_of(12)));
  // Damage found lower moves `at` down.
  auto p5 = place_of(c, {segment_info{offset{0}, 0, 0}}, 5);
  ASSERT_TRUE(flip_bits(p5.seg, p5.pos + 80, 0x01));
  out.clear();
  EXPECT_FALSE(l->read(offset{0}, SIZE_MAX, l->next_offset(), out));
  EXPECT_EQ(l->corruption()->at.value, base_of(5));
  ASSERT_TRUE(l->truncate_suffix(offset{base_of(5)}));
  EXPECT_FALSE(l->corruption());
  stored_.resize(5);
  append(*l);
  EXPECT_EQ(read_all(*l, offset{0}), expected_from(0));
}

TEST_F(recovery_test, retention_never_deletes_segments_at_or_after_the_damage) {
  // Found at open, in segment 2 of several.
  {
    auto c = config(2048);
    auto l = fill(c, 60, 5);
    auto segs = l->segments();
    ASSERT_GE(segs.size(), 5u);
    l.reset();
    auto p = place_of(c, segs, last_batch_in(segs, 2));
    ASSERT_TRUE(flip_bits(p.seg, p.pos + 75, 0x01));
    l = open(c);
    ASSERT_TRUE(l->corruption());
    auto before = data_files(c.dir);
    auto r = l->apply_retention(offset{INT64_MAX});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->segments_deleted, 2);
    EXPECT_EQ(l->start_offset(), segs[2].base);
    for (size_t i = 2; i < segs.size(); ++i) {
      auto name = seg_name(segs[i].base.value, ".log");
      EXPECT_EQ(read_file(c.dir / name), before[name]) << name;
    }
    c.retention_bytes = 1;
    c.retention_ms = 1;
    l.reset();
    l = open(c);
    clk_.advance_ms(1000);
    ASSERT_TRUE(l->apply_retention(offset{INT64_MAX}));
    EXPECT_EQ(l->start_offset(), segs[2].base);
  }
  // Found at run time, with every segment still in the log.
  fs::remove_all(dir_ / "p0");
  stored_.clear();
  auto c = config(2048);
  auto l = fill(c, 60, 5);
  auto segs = l->segments();
  size_t batch = 0;
  while (base_of(batch) < segs[1].base.value) ++batch;
  auto p = place_of(c, segs, batch + 1);
  ASSERT_TRUE(flip_bits(p.seg, p.pos + 75, 0x01));
  bytes out;
  EXPECT_FALSE(l->read(offset{0}, SIZE_MAX, l->next_offset(), out));
  ASSERT_TRUE(l->corruption());
  auto r = l->apply_retention(l->next_offset());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->segments_deleted, 1);
  EXPECT_EQ(l->start_offset(), segs[1].base);
}

// Found by fuzzing (segment_recovery): a segment named with a base offset near 2^63 was accepted,
// and offset sums on it overflowed. Such a name is damage: the log refuses to open and touches
// nothing.
TEST_F(recovery_test, segment_named_beyond_2_to_the_62_refuses_to_open_and_deletes_nothing) {
  auto c = config(4096);
  auto l = fill(c, 3, 5);
  l.reset();
  auto p = c.dir / seg_name(0, ".log");
  fs::rename(p, c.dir / "09223372036854775807.log");
  auto before = data_files(c.dir);
  auto r = partition_log::open(c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::corrupt_batch);
  EXPECT_NE(r.error().message.find("09223372036854775807"), std::string::npos) << r.error().message;
  EXPECT_EQ(data_files(c.dir), before);
}

}  // namespace
}  // namespace ferry::log
