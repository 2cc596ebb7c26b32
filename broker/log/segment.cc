// One segment file of partition_log: its name, the bookkeeping of each batch in it (note_batch,
// which also places the sparse index points), reading and checking its batch headers and CRCs
// (read_header, crc_ok, scan), and creating and rolling segments. Format: schema/segment.md.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "broker/log/log_impl.h"

namespace ferry::log {

namespace detail {

std::string base_name(int64_t base) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020" PRId64, base);
  return buf;
}

std::string where(const std::filesystem::path& data_path, uint64_t pos) {
  return "segment " + data_path.string() + " position " + std::to_string(pos);
}

result<void> delete_segment_files(file_factory& fs, const std::filesystem::path& data_path) {
  auto p = data_path;
  if (auto r = fs.remove(p.replace_extension(".timeindex")); !r) return r;
  if (auto r = fs.remove(p.replace_extension(".index")); !r) return r;
  return fs.remove(data_path);
}

// Adds one batch (at `pos`) to the segment's bookkeeping and, every index_interval bytes, an index
// point: offset entry {rel, pos} and time entry {max timestamp of every batch before it, rel}.
// The same rule runs on append and on rebuild, so a rebuilt index is identical to the written one.
// `indexed`: the batch already has its index point (resuming a scan at the last loaded entry).
void note_batch(segment& s, uint64_t pos, const wire::batch_header& h, uint32_t interval, bool indexed) {
  if (indexed) {
    s.since_entry = 0;
  } else if (pos > 0 && s.since_entry >= interval) {
    auto rel = static_cast<uint32_t>(h.base_offset - s.base);
    s.oi.push_back({rel, static_cast<uint32_t>(pos)});
    s.ti.push_back({s.max_ts, rel});
    s.since_entry = 0;
  }
  s.since_entry += static_cast<uint32_t>(h.batch_length);
  s.max_ts = std::max(s.max_ts, h.max_timestamp);
  s.last_append = std::max(s.last_append, h.append_time);
  if (pos == 0) s.first_append = h.append_time;
  s.next = h.next_offset();
  s.size = pos + static_cast<uint32_t>(h.batch_length);
}

}  // namespace detail

using namespace detail;

// ---- reading helpers ----

// The header at `pos` of `s`, which must have base offset `expected` and fit in the segment's
// data. Errors name what is wrong, not where (callers add that: at_where).
result<wire::batch_header> partition_log::impl::read_header(const segment& s, uint64_t pos, int64_t expected) {
  std::array<std::byte, hsize> hb;
  if (pos + hsize > s.size) return fail(errc::corrupt_batch, "batch header past the end of data");
  auto n = s.data->pread(hb, pos);
  if (!n) return n.error();
  if (*n != hsize) return fail(errc::corrupt_batch, "short read of a batch header");
  auto h = wire::parse_batch_header(hb);
  if (!h) return h.error();
  if (h->base_offset != expected)
    return fail(errc::corrupt_batch,
                "batch base offset " + std::to_string(h->base_offset) + ", expected " + std::to_string(expected));
  if (pos + static_cast<uint32_t>(h->batch_length) > s.size)
    return fail(errc::corrupt_batch, "batch runs past the end of data");
  return h;
}

result<bool> partition_log::impl::crc_ok(const segment& s, uint64_t pos, const wire::batch_header& h) {
  auto len = static_cast<uint32_t>(h.batch_length);
  scratch.resize(len);
  auto m = s.data->pread(scratch, pos);
  if (!m) return m.error();
  return *m == len && wire::compute_batch_crc(scratch) == h.crc;
}

// Scans batches from `pos` (expected base offset `expected`) to `file_size`, adding them to `s`.
// CRC-checks every batch when `crc_all`, else only one that ends exactly at file_size (the
// segment's last batch: the cheap check of an older segment). Without `crc_all` a batch is added
// only once the next header chains after it: a damaged length field leads to garbage, and then the
// batch it belongs to (its CRC fails over the wrong length) is the damage, not the garbage.
result<scan_end> partition_log::impl::scan(segment& s, uint64_t pos, int64_t expected, uint64_t file_size, bool crc_all,
                                           bool resume) {
  scan_end e;
  s.size = pos;
  s.next = expected;
  bool first = true;
  std::optional<std::pair<uint64_t, wire::batch_header>> pending;
  auto commit = [&] {
    note_batch(s, pending->first, pending->second, cfg.index_interval_bytes, first && resume);
    first = false;
    pending.reset();
  };
  auto bad = [&](std::string why) -> result<scan_end> {
    if (pending) {
      auto ok = crc_ok(s, pending->first, pending->second);
      if (!ok) return ok.error();
      if (!*ok) {
        why = "batch CRC32C mismatch (its length field leads to a bad header at position " + std::to_string(pos) +
              ": " + why + ")";
        pos = pending->first;
        auto n = s.data->pread(e.raw, pos);
        if (!n) return n.error();
        e.raw_n = *n;
      } else {
        commit();
      }
    }
    e.clean = false;
    e.bad_pos = pos;
    e.why = std::move(why);
    return e;
  };
  while (pos < file_size) {
    uint64_t left = file_size - pos;
    auto n = s.data->pread(std::span(e.raw.data(), std::min<uint64_t>(hsize, left)), pos);
    if (!n) return n.error();
    e.raw_n = *n;
    if (left < hsize) return bad("partial batch header");
    auto h = wire::parse_batch_header(e.raw);
    if (!h) return bad(h.error().message);
    if (h->base_offset != expected)
      return bad("batch base offset " + std::to_string(h->base_offset) + ", expected " + std::to_string(expected));
    auto len = static_cast<uint32_t>(h->batch_length);
    if (len > left) return bad("batch of " + std::to_string(len) + " bytes runs past the end of the file");
    bool checked = crc_all || len == left;
    if (checked) {
      auto ok = crc_ok(s, pos, *h);
      if (!ok) return ok.error();
      if (!*ok) return bad("batch CRC32C mismatch");
    }
    if (pending) commit();
    pending.emplace(pos, *h);
    if (checked) commit();
    expected = h->next_offset();
    pos += len;
  }
  if (pending) commit();
  return e;
}

// ---- segments ----

result<segment> partition_log::impl::make_segment(int64_t base) {
  segment s;
  s.base = s.next = base;
  s.data_path = cfg.dir / (base_name(base) + ".log");
  auto d = fs->open(s.data_path, open_mode::create);
  if (!d) return d.error();
  s.data = std::move(*d);
  if (auto r = open_index_handles(s); !r) return r.error();
  // A leftover file with this name can only hold data that was truncated away (truncate_suffix
  // or recovery): start empty.
  if (auto r = s.data->truncate(0); !r) {
    failed = true;
    return r.error();
  }
  (void)s.oidx->truncate(0);
  (void)s.tidx->truncate(0);
  if (cfg.preallocate) {
    if (auto r = s.data->preallocate(cfg.segment_bytes); !r)
      logger()->warn("{}: cannot preallocate {}: {}", dir(), s.data_path.filename().string(), r.error().message);
  }
  size_t expect = std::min<uint64_t>(cfg.segment_bytes / std::max<uint32_t>(cfg.index_interval_bytes, 1) + 2, 1 << 16);
  s.oi.reserve(expect);
  s.ti.reserve(expect);
  return s;
}

result<void> partition_log::impl::create_segment(int64_t base) {
  auto s = make_segment(base);
  if (!s) return s.error();
  segs.push_back(std::move(*s));
  dir_dirty = true;  // the new directory entries are made durable by the next sync
  return {};
}

result<void> partition_log::impl::roll() {
  // The new segment's files are opened first: if that fails (EMFILE, ENFILE, ...) nothing has
  // changed, the old segment stays active and the next append tries again. Not a poison: the log
  // on disk is intact. A stray empty (or preallocated) file it may leave is reused by the retry or
  // dropped by recovery.
  auto ns = make_segment(active().next);
  if (!ns && failed) return ns.error();  // a failed truncate of the new file: a write failure
  if (!ns) {
    logger()->warn("{}: cannot open a new segment at offset {}; the next append tries again: {}", dir(), next(),
                   ns.error().message);
    return fail(ns.error().code,
                dir() + ": cannot open a new segment (the next append tries again): " + ns.error().message);
  }
  segment& old = active();
  flush_index(old);
  // The logical size becomes the file size, so an older segment is "trusted for its size" on
  // open. This ftruncate is made durable by the next sync, which includes this file.
  if (cfg.preallocate) {
    if (auto r = old.data->truncate(old.size); !r) {
      failed = true;
      return r;
    }
  }
  rolled.push_back(old.data);
  old.oidx.reset();
  old.tidx.reset();
  segs.push_back(std::move(*ns));
  // The new name is durable before durable_offset() covers a batch in it: the next begin_sync()
  // includes the folder, and end_sync() moves durable_offset() only after that fsync succeeded.
  dir_dirty = true;
  return {};
}

}  // namespace ferry::log
