// partition_log's operations: open, append, read, batch headers and timestamp lookups, group
// commit (begin/run/end sync), retention, truncation and close, with the read cursor they share
// (locate, header_at) and the bookkeeping of damage found while reading. The segment files are in
// segment.cc, the sparse indexes in index.cc, recovery (what open() does with a folder) in
// recovery.cc. On-disk format and the crash-safety argument: schema/segment.md.
#include "broker/log/log.h"

#include <algorithm>
#include <climits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "broker/base/failpoint.h"
#include "broker/log/log_impl.h"

namespace ferry::log {

namespace detail {

std::shared_ptr<spdlog::logger> logger() {
  auto l = spdlog::get("log");
  return l ? l : spdlog::default_logger();
}

}  // namespace detail

using namespace detail;

namespace {

// A corrupt_batch error about the batch at `pos`, with the place in front; other errors as they are.
error at_where(const segment& s, uint64_t pos, const error& e) {
  if (e.code != errc::corrupt_batch) return e;
  return fail(e.code, where(s.data_path, pos) + ": " + e.message);
}

}  // namespace

// ---- damage ----

void partition_log::impl::note_damage(int64_t at, const std::filesystem::path& data_path, uint64_t pos,
                                      std::string why) {
  if (corrupt && corrupt->at.value <= at) return;
  bool lower = corrupt.has_value();
  corrupt = corruption_info{offset{at}, where(data_path, pos), std::move(why)};
  damage_pos = pos;
  logger()->error("{}: {} at offset {} ({}: {}); refusing writes, and reads from there, until it is repaired", dir(),
                  lower ? "damage found lower" : "damaged log", at, corrupt->where, corrupt->why);
}

error partition_log::impl::damage_error() const {
  return fail(errc::corrupt_batch, dir() + ": log damaged at offset " + std::to_string(corrupt->at.value) + " (" +
                                       corrupt->where + ": " + corrupt->why + ")");
}

// ---- the read cursor ----

void partition_log::impl::blame(const cursor& c, const std::optional<std::pair<cursor, wire::batch_header>>& prev,
                                const error& e) {
  if (e.code != errc::corrupt_batch) return;
  if (prev) {
    auto ok = crc_ok(segs[prev->first.si], prev->first.pos, prev->second);
    if (ok && !*ok) {
      note_damage(prev->first.expected, segs[prev->first.si].data_path, prev->first.pos,
                  "batch CRC32C mismatch (its length field leads to a bad header at position " + std::to_string(c.pos) +
                      ": " + e.message + ")");
      return;
    }
  }
  note_damage(c.expected, segs[c.si].data_path, c.pos, e.message);
}

// Cursor at the batch containing `off` (start_offset() <= off < next()). An index that leads
// somewhere wrong is rebuilt once; a bad batch on the way is damage (noted) and corrupt_batch.
result<partition_log::impl::cursor> partition_log::impl::locate(int64_t off) {
  size_t si = find_segment(off);
  for (int attempt = 0;; ++attempt) {
    cursor c = index_start(si, off);
    bool from_index = c.pos != 0;
    std::optional<std::pair<cursor, wire::batch_header>> prev;
    error err;
    for (;;) {
      auto h = read_header(segs[si], c.pos, c.expected);
      if (!h) {
        err = h.error();
        break;
      }
      if (h->next_offset() > off) return c;
      prev.emplace(c, *h);
      c.pos += static_cast<uint32_t>(h->batch_length);
      c.expected = h->next_offset();
    }
    if (attempt > 0 || !from_index || si + 1 == segs.size()) {
      blame(c, prev, err);
      return at_where(segs[si], c.pos, err);
    }
    rebuild_index(segs[si]);
  }
}

// Header at the cursor, moving to the next segment at a segment's end; nullopt at the end of the
// readable log. Errors as read_header (without the place).
result<std::optional<wire::batch_header>> partition_log::impl::header_at(cursor& c) {
  while (c.pos >= segs[c.si].size) {
    if (c.si + 1 >= segs.size()) return std::optional<wire::batch_header>{};
    ++c.si;
    c.pos = 0;
  }
  auto h = read_header(segs[c.si], c.pos, c.expected);
  if (!h) return h.error();
  return std::optional<wire::batch_header>(*h);
}

// ---- partition_log ----

partition_log::partition_log(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
partition_log::~partition_log() = default;

result<std::unique_ptr<partition_log>> partition_log::open(log_config cfg) {
  if (cfg.segment_bytes < wire::batch_header_size || cfg.segment_bytes > UINT32_MAX)
    return fail(errc::invalid_argument, "segment_bytes must be in [70, 4 GiB)");
  if (cfg.index_interval_bytes == 0) cfg.index_interval_bytes = 1;
  auto p = std::make_unique<impl>();
  p->cfg = std::move(cfg);
  p->clk = p->cfg.clk ? p->cfg.clk : &p->sys_clock;
  p->fs = p->cfg.files ? p->cfg.files : &posix_files();
  if (auto r = p->recover(); !r) return r.error();
  if (p->corrupt)
    logger()->error("{}: opened DAMAGED, offsets [{}, {}) readable, log end {}, {} segments ({} more after the damage)",
                    p->dir(), p->segs.front().base, p->readable_end(), p->end(), p->segs.size(), p->beyond.size());
  else
    logger()->info("{}: opened, offsets [{}, {}), {} segments", p->dir(), p->segs.front().base, p->next(),
                   p->segs.size());
  return std::unique_ptr<partition_log>(new partition_log(std::move(p)));
}

result<append_info> partition_log::append(std::span<std::byte> batch, epoch leader_epoch) {
  impl& m = *impl_;
  if (m.failed) return fail(errc::storage_error, m.dir() + ": log failed earlier; refusing writes until reopened");
  if (m.closed) return fail(errc::storage_error, m.dir() + ": log is closed");
  if (m.corrupt) [[unlikely]] {
    auto e = m.damage_error();
    e.message += "; refusing writes until it is repaired";
    return e;
  }
  auto h = wire::parse_batch_header(batch);
  if (!h) return h.error();
  if (static_cast<size_t>(h->batch_length) != batch.size())
    return fail(errc::corrupt_batch, "batch length field " + std::to_string(h->batch_length) + " but " +
                                         std::to_string(batch.size()) + " bytes");
  if (h->record_count < 0 || m.next() > max_log_offset - h->record_count)
    return fail(errc::resource_exhausted, "the log's offsets would pass 2^62");
  int64_t now = m.clk->now_ms();
  {
    segment& a = m.active();
    bool too_big = a.size + batch.size() > m.cfg.segment_bytes;
    // The first append time comes from the disk (any value after damage): compare without overflow.
    bool too_old = a.size > 0 && a.first_append != INT64_MIN && a.first_append < now &&
                   static_cast<uint64_t>(now) - static_cast<uint64_t>(a.first_append) >=
                       static_cast<uint64_t>(std::max<int64_t>(m.cfg.segment_ms, 0));
    bool rel_overflow = m.next() + h->record_count - a.base > UINT32_MAX;
    if (a.size > 0 && (too_big || too_old || rel_overflow)) {
      if (auto r = m.roll(); !r) return r.error();
    }
  }
  segment& a = m.active();
  int64_t base = m.next();
  wire::stamp_batch(batch, base, leader_epoch.value, now);
  h->base_offset = base;
  h->leader_epoch = leader_epoch.value;
  h->append_time = now;

  uint64_t pos = a.size;
  auto w = a.data->pwrite_all(batch, pos);
  if (w && FERRY_FAILPOINT("log.after_append_before_sync"))
    w = fail(errc::storage_error, m.dir() + ": failpoint log.after_append_before_sync");
  if (!w) {
    // Nothing partial may stay: a later append would land after it and recovery would call the
    // log corrupt. Cut the file back to the last complete batch.
    auto t = a.data->truncate(pos);
    if (!t) {
      m.failed = true;
      logger()->error("{}: cannot truncate {} after a failed write: {}", m.dir(), a.data_path.string(),
                      t.error().message);
    } else if (w.error().code != errc::disk_full) {
      m.failed = true;
    } else if (m.cfg.preallocate && pos == 0) {
      (void)a.data->preallocate(m.cfg.segment_bytes);
    }
    if (m.failed) logger()->error("{}: append failed, refusing writes until reopened: {}", m.dir(), w.error().message);
    return w.error();
  }
  note_batch(a, pos, *h, m.cfg.index_interval_bytes, false);
  return append_info{offset{base}, offset{h->last_offset()}, now};
}

result<void> partition_log::read(offset from, size_t max_bytes, offset upto, std::vector<std::byte>& out) {
  impl& m = *impl_;
  int64_t off = from.value;
  if (off < m.segs.front().base || off > m.end())
    return fail(errc::offset_out_of_range, "offset " + std::to_string(off) + " outside [" +
                                               std::to_string(m.segs.front().base) + ", " + std::to_string(m.end()) +
                                               "]");
  if (off >= m.readable_end()) [[unlikely]]
    return m.damage_error();
  if (off == m.next() || upto.value <= off) return {};
  auto c = m.locate(off);
  if (!c) return c.error();
  size_t added = 0;
  for (;;) {
    if (c->expected >= m.readable_end()) break;
    auto h = m.header_at(*c);
    if (!h) {
      // The batches before it were CRC-checked by this read: the damage is here.
      m.blame(*c, std::nullopt, h.error());
      return at_where(m.segs[c->si], c->pos, h.error());
    }
    if (!*h) break;
    if ((*h)->last_offset() >= upto.value) break;
    auto len = static_cast<uint32_t>((*h)->batch_length);
    if (added > 0 && added + len > max_bytes) break;
    const segment& s = m.segs[c->si];
    size_t old = out.size();
    out.resize(old + len);
    auto span = std::span(out.data() + old, len);
    auto n = s.data->pread(span, c->pos);
    if (!n || *n != len || wire::compute_batch_crc(span) != (*h)->crc) {
      out.resize(old);
      if (!n) return n.error();
      m.note_damage(c->expected, s.data_path, c->pos, "batch CRC32C mismatch");
      return fail(errc::corrupt_batch, "corrupt batch in " + where(s.data_path, c->pos) + ": CRC32C mismatch");
    }
    added += len;
    c->pos += len;
    c->expected = (*h)->next_offset();
  }
  return {};
}

result<void> partition_log::for_each_batch_header(offset from,
                                                  const std::function<void(const wire::batch_header&)>& fn) {
  impl& m = *impl_;
  int64_t off = from.value;
  if (off < m.segs.front().base || off > m.end())
    return fail(errc::offset_out_of_range, "offset " + std::to_string(off) + " outside the log");
  if (off >= m.readable_end() || off == m.next()) return {};
  auto c = m.locate(off);
  if (!c) {
    // Damage on the way to `from` (noted by locate, at or below `from`): nothing to visit.
    if (c.error().code == errc::corrupt_batch) return {};
    return c.error();
  }
  // Each header is passed on once the next one chains after it (or the log ends), so that a batch
  // whose length field is damaged, and which is therefore at or past the damage, is not visited.
  std::optional<std::pair<impl::cursor, wire::batch_header>> prev;
  for (;;) {
    if (c->expected >= m.readable_end()) break;
    auto h = m.header_at(*c);
    if (!h) {
      if (h.error().code != errc::corrupt_batch) return h.error();
      m.blame(*c, prev, h.error());
      break;
    }
    if (!*h) break;
    if (prev) fn(prev->second);
    prev.emplace(*c, **h);
    c->pos += static_cast<uint32_t>((*h)->batch_length);
    c->expected = (*h)->next_offset();
  }
  if (prev && prev->second.base_offset < m.readable_end()) fn(prev->second);
  return {};
}

result<offset> partition_log::offset_for_timestamp(int64_t ts) {
  impl& m = *impl_;
  for (size_t si = 0; si < m.segs.size(); ++si) {
    segment& s = m.segs[si];
    if (s.base >= m.readable_end()) break;
    if (s.size == 0 || s.max_ts < ts) continue;
    // ti[i].ts is the max timestamp of every batch before oi[i]: start at the last point where
    // that is still below ts.
    for (int attempt = 0;; ++attempt) {
      impl::cursor c{si, 0, s.base};
      auto it = std::lower_bound(s.ti.begin(), s.ti.end(), ts, [](const tentry& e, int64_t t) { return e.ts < t; });
      if (it != s.ti.begin()) {
        size_t i = static_cast<size_t>(it - s.ti.begin()) - 1;
        c.pos = s.oi[i].pos;
        c.expected = s.base + s.oi[i].rel;
      }
      bool from_index = c.pos != 0;
      std::optional<error> err;
      while (c.pos < s.size && c.expected < m.readable_end()) {
        auto h = m.read_header(s, c.pos, c.expected);
        if (!h) {
          err = h.error();
          break;
        }
        if (h->max_timestamp >= ts) return offset{std::min(h->base_offset, m.readable_end())};
        c.pos += static_cast<uint32_t>(h->batch_length);
        c.expected = h->next_offset();
      }
      if (!err) break;  // not in this segment after all (its max_ts said so): try the next
      // An index leading somewhere wrong is rebuilt once, as in locate().
      if (attempt > 0 || !from_index || si + 1 == m.segs.size()) {
        m.blame(c, std::nullopt, *err);
        return at_where(s, c.pos, *err);
      }
      m.rebuild_index(m.segs[si]);
    }
  }
  return offset{std::min(m.next(), m.readable_end())};
}

pending_sync partition_log::begin_sync() {
  impl& m = *impl_;
  pending_sync s;
  if (m.failed || m.closed) return s;
  m.flush_index(m.active());
  if (m.next() == m.last_begin_upto && m.rolled.empty() && !m.dir_dirty) return s;
  s.files = std::move(m.rolled);
  m.rolled.clear();
  s.files.push_back(m.active().data);
  s.upto = offset{m.next()};
  if (m.dir_dirty) {
    s.dir = m.cfg.dir;
    s.fs = m.fs;
    m.dir_dirty = false;
  }
  m.last_begin_upto = m.next();
  m.inflight.push_back(m.next());
  return s;
}

result<void> partition_log::run_sync(pending_sync& s) {
  // Older (rolled) segments first, then the active one, then the directory: all must succeed
  // before end_sync() moves durable_offset().
  for (auto& f : s.files) {
    if (FERRY_FAILPOINT("log.before_fsync")) return fail(errc::storage_error, "fdatasync: failpoint log.before_fsync");
    if (auto r = f->datasync(); !r) return r;
  }
  if (!s.dir.empty() && s.fs) {
    if (auto r = s.fs->sync_dir(s.dir); !r) return r;
  }
  return {};
}

void partition_log::end_sync(const pending_sync& s, const result<void>& outcome) {
  impl& m = *impl_;
  if (s.empty()) return;
  int64_t upto = s.upto.value;
  if (!m.inflight.empty()) {
    upto = std::min(upto, m.inflight.front());
    m.inflight.pop_front();
  }
  if (!outcome) {
    // Never retried: after a failed fdatasync the dirty pages may be gone (DESIGN.md).
    if (!m.failed)
      logger()->error("{}: fdatasync failed, refusing writes until reopened: {}", m.dir(), outcome.error().message);
    m.failed = true;
    return;
  }
  if (m.failed) return;
  m.durable = std::max(m.durable, std::min(upto, m.next()));
}

result<retention_result> partition_log::apply_retention(offset low_water_mark, offset keep_from) {
  auto rr = detach_for_retention(low_water_mark, keep_from);
  if (auto r = remove_retired(rr.retired); !r) return r.error();
  return rr;
}

result<void> partition_log::remove_retired(retired_segments& r) {
  // Oldest first, and each segment's removal made durable (folder fsync) before the next one
  // starts: after a crash at any point the segments left are a contiguous range, never an older
  // one back in front of a gap.
  for (auto& p : r.data_paths) {
    if (auto a = delete_segment_files(*r.fs, p); !a) return a;
    if (!r.dir.empty())
      if (auto a = r.fs->sync_dir(r.dir); !a) return a;
  }
  r.data_paths.clear();
  r.handles.clear();  // the last close of an unlinked file frees its blocks: here, not on the shard
  return {};
}

retention_result partition_log::detach_for_retention(offset low_water_mark, offset keep_from) {
  impl& m = *impl_;
  retention_result rr;
  rr.retired.fs = m.fs;
  rr.retired.dir = m.cfg.dir;
  // Never a segment at or after damage: truncate_suffix() (the repair) needs the offsets before it.
  keep_from = std::min(keep_from, offset{m.readable_end()});
  int64_t now = m.clk->now_ms();
  uint64_t total = size_bytes();
  while (m.segs.size() > 1) {
    segment& s = m.segs.front();
    bool below_lwm = s.next <= low_water_mark.value;
    bool too_old = m.cfg.retention_ms > 0 && s.last_append < now - m.cfg.retention_ms;
    bool too_big = m.cfg.retention_bytes > 0 && total > static_cast<uint64_t>(m.cfg.retention_bytes);
    if (!below_lwm && !too_old && !too_big) break;
    if (s.next > keep_from.value) break;  // the broker's own state still needs it
    // Oldest first, so the log stays a contiguous range at every step.
    rr.retired.data_paths.push_back(s.data_path);
    for (auto* h : {&s.data, &s.oidx, &s.tidx})
      if (*h) rr.retired.handles.push_back(std::move(*h));
    logger()->info("{}: retention removes {} (offsets [{}, {}), {} bytes{}{}{})", m.dir(),
                   s.data_path.filename().string(), s.base, s.next, s.size, below_lwm ? ", below low-water mark" : "",
                   too_old ? ", by time" : "", too_big ? ", by size" : "");
    rr.segments_deleted++;
    rr.bytes_deleted += s.size;
    total -= s.size;
    m.segs.erase(m.segs.begin());
  }
  rr.new_start = offset{m.segs.front().base};
  return rr;
}

result<void> partition_log::truncate_suffix(offset from) {
  impl& m = *impl_;
  int64_t off = from.value;
  if (m.failed) return fail(errc::storage_error, m.dir() + ": log failed earlier; refusing writes until reopened");
  if (off < m.segs.front().base || off > m.end())
    return fail(errc::offset_out_of_range, "truncate at " + std::to_string(off) + " outside the log");
  impl::cursor c;
  if (m.corrupt && off > m.corrupt->at.value) {
    auto e = m.damage_error();
    e.message += "; cannot truncate at " + std::to_string(off) + ", above the damage";
    return e;
  }
  if (m.corrupt && off == m.corrupt->at.value) {
    // Cut at the damage itself: its place is known, whatever the bytes there look like.
    c = impl::cursor{m.find_segment(off), m.damage_pos, off};
  } else {
    if (off == m.next()) return {};
    auto l = m.locate(off);
    if (!l) return l.error();  // damage below `off` (now in corruption()): truncate there instead
    c = *l;
    if (c.expected != off)
      return fail(errc::invalid_argument, "truncate at " + std::to_string(off) + ": not a batch boundary");
  }
  auto poison = [&](const error& e) -> result<void> {
    m.failed = true;
    logger()->error("{}: truncate at {} failed, refusing writes until reopened: {}", m.dir(), off, e.message);
    return e;
  };
  // Newest first, each removal made durable (folder fsync) before the next older one: after a
  // crash at any point the log is a contiguous prefix (a newer segment never outlives an older one
  // it followed). First the segment files after a damage found at open, then the log's own.
  for (auto it = m.beyond.rbegin(); it != m.beyond.rend(); ++it) {
    logger()->warn("{}: truncate at {} removes {} (after the damage)", m.dir(), off, it->filename().string());
    if (auto r = m.remove_segment_files(*it); !r) return poison(r.error());
    if (auto r = m.fs->sync_dir(m.cfg.dir); !r) return poison(r.error());
  }
  m.beyond.clear();
  m.end_beyond = -1;
  while (m.segs.size() > c.si + 1 || (m.segs.size() == c.si + 1 && c.pos == 0 && c.si > 0)) {
    if (auto r = m.remove_segment_files(m.segs.back().data_path); !r) return poison(r.error());
    if (auto r = m.fs->sync_dir(m.cfg.dir); !r) return poison(r.error());
    m.segs.pop_back();
  }
  segment& s = m.segs.back();
  if (m.segs.size() == c.si + 1) {
    if (auto r = s.data->truncate(c.pos); !r) return poison(r.error());
    // Keep the index points below the cut and recompute the rest from the data.
    while (!s.oi.empty() && s.oi.back().pos >= c.pos) {
      s.oi.pop_back();
      s.ti.pop_back();
    }
    s.oi_written = std::min(s.oi_written, s.oi.size());
    bool resume = !s.oi.empty();
    uint64_t start = resume ? s.oi.back().pos : 0;
    int64_t expected = resume ? s.base + s.oi.back().rel : s.base;
    s.max_ts = resume ? s.ti.back().ts : INT64_MIN;
    s.last_append = s.first_append = INT64_MIN;
    auto e = m.scan(s, start, expected, c.pos, false, resume);
    if (!e) return poison(e.error());
    if (!e->clean)
      return poison(fail(errc::corrupt_batch, "truncate: " + where(s.data_path, e->bad_pos) + ": " + e->why));
    if (resume) {
      auto h = m.read_header(s, 0, s.base);
      if (h) s.first_append = h->append_time;
    }
  }
  if (m.corrupt)
    logger()->warn("{}: truncate at {} removed the damage at offset {}; the log is writable again", m.dir(), off,
                   m.corrupt->at.value);
  m.corrupt.reset();
  m.damage_pos = 0;
  segment& a = m.active();
  if (a.size > 0 && a.first_append == INT64_MIN) {
    // An older segment became the active one; its scan at open started at its last index point.
    // Roll-by-age needs its first batch's append time.
    if (auto h = m.read_header(a, 0, a.base)) a.first_append = h->append_time;
  }
  if (!a.oidx || !a.tidx) {
    // A failed open here is not a poison: flush_index() opens them again at the next sync.
    if (auto r = m.open_index_handles(a); !r) m.warn_index(r.error());
  }
  m.write_index_files(a);
  // A truncation must not come back after a crash (the replicated tail it removed is divergent):
  // make it durable now. Rare (leader change, repair), so it is done inline.
  if (auto r = a.data->datasync(); !r) return poison(r.error());
  if (auto r = m.fs->sync_dir(m.cfg.dir); !r) return poison(r.error());
  m.durable = std::min(m.durable, off);
  m.last_begin_upto = std::min(m.last_begin_upto, off);
  for (auto& u : m.inflight) u = std::min(u, off);
  return {};
}

result<void> partition_log::close() {
  impl& m = *impl_;
  if (m.closed) return {};
  m.closed = true;
  segment& a = m.active();
  m.flush_index(a);
  if (m.failed) return fail(errc::storage_error, m.dir() + ": closed after an earlier failure; recovery runs on open");
  // Not when the active segment is the damaged one found at open: its bytes past the damage stay.
  if (m.cfg.preallocate && m.end_beyond < 0) {
    if (auto r = a.data->truncate(a.size); !r) return r;
  }
  for (auto& f : m.rolled)
    if (auto r = f->datasync(); !r) return r;
  m.rolled.clear();
  if (auto r = a.data->datasync(); !r) return r;
  if (auto r = m.fs->sync_dir(m.cfg.dir); !r) return r;
  m.durable = std::max(m.durable, m.next());
  // Everything is durable: the marker lets the next open skip the full scan of the segment before
  // the active one. Only an optimisation: if it cannot be written, the next open scans.
  if (!m.corrupt) {
    auto f = m.fs->open(m.cfg.dir / clean_marker, open_mode::create);
    auto r = f ? m.fs->sync_dir(m.cfg.dir) : result<void>(f.error());
    if (!r) logger()->warn("{}: cannot write the clean-shutdown marker: {}", m.dir(), r.error().message);
  }
  return {};
}

offset partition_log::start_offset() const { return offset{impl_->segs.front().base}; }
offset partition_log::next_offset() const { return offset{impl_->end()}; }
offset partition_log::durable_offset() const { return offset{impl_->durable}; }
uint64_t partition_log::size_bytes() const {
  uint64_t n = 0;
  for (auto& s : impl_->segs) n += s.size;
  return n;
}
size_t partition_log::segment_count() const { return impl_->segs.size(); }
std::vector<segment_info> partition_log::segments() const {
  std::vector<segment_info> v;
  for (auto& s : impl_->segs) v.push_back({offset{s.base}, s.size, s.max_ts});
  return v;
}
bool partition_log::failed() const { return impl_->failed; }
std::optional<corruption_info> partition_log::corruption() const { return impl_->corrupt; }

}  // namespace ferry::log
