// partition_log: segments, sparse indexes, recovery, group commit, retention.
// On-disk format and the crash-safety argument: schema/segment.md.
#include "broker/log/log.h"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <system_error>

#include <spdlog/spdlog.h>

#include "broker/base/failpoint.h"

namespace ferry::log {
namespace {

constexpr size_t oentry_size = 8;   // {u32 relative offset, u32 position}
constexpr size_t tentry_size = 12;  // {i64 max timestamp before the entry, u32 relative offset}
constexpr size_t hsize = wire::batch_header_size;

struct oentry {
  uint32_t rel;
  uint32_t pos;
};
struct tentry {
  int64_t ts;
  uint32_t rel;
};

std::shared_ptr<spdlog::logger> logger() {
  auto l = spdlog::get("log");
  return l ? l : spdlog::default_logger();
}

std::string base_name(int64_t base) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020" PRId64, base);
  return buf;
}

void put_le64(std::byte* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
uint64_t get_le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// One segment: its data file and, in memory, its sparse indexes (the files are caches of these).
// Indexes first, data file last: a crash in between leaves a data file without indexes, which
// open() rebuilds (or a leftover index without data, which open() deletes).
result<void> delete_segment_files(file_factory& fs, const std::filesystem::path& data_path) {
  auto p = data_path;
  if (auto r = fs.remove(p.replace_extension(".timeindex")); !r) return r;
  if (auto r = fs.remove(p.replace_extension(".index")); !r) return r;
  return fs.remove(data_path);
}

struct segment {
  int64_t base = 0;
  int64_t next = 0;   // offset after the last batch
  uint64_t size = 0;  // logical bytes of data (the file may be longer: preallocation)
  std::filesystem::path data_path;
  std::shared_ptr<file> data;
  std::shared_ptr<file> oidx;  // open only for the active segment
  std::shared_ptr<file> tidx;
  std::vector<oentry> oi;
  std::vector<tentry> ti;      // ti[i] pairs with oi[i] (same relative offset)
  size_t oi_written = 0;       // entries already in the index files
  uint64_t since_entry = 0;    // data bytes since the last index point
  int64_t max_ts = INT64_MIN;  // max batch max_timestamp
  int64_t last_append = INT64_MIN;
  int64_t first_append = INT64_MIN;

  std::filesystem::path path(const char* ext) const {
    auto p = data_path;
    p.replace_extension(ext);
    return p;
  }
};

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

struct scan_end {
  bool clean = true;     // reached the end of the file exactly at a batch boundary
  uint64_t bad_pos = 0;  // else: the first bad batch
  std::string why;
  std::array<std::byte, hsize> raw{};
  size_t raw_n = 0;
};

std::string where(const segment& s, uint64_t pos) {
  return "segment " + s.data_path.string() + " position " + std::to_string(pos);
}

}  // namespace

struct partition_log::impl {
  log_config cfg;
  const clock* clk = nullptr;
  system_clock_source sys_clock;
  file_factory* fs = nullptr;
  std::vector<segment> segs;
  int64_t durable = 0;
  bool failed = false;
  bool closed = false;
  // Group commit.
  std::vector<std::shared_ptr<file>> rolled;  // data files of segments rolled since the last begin_sync
  bool dir_dirty = false;
  int64_t last_begin_upto = -1;
  std::deque<int64_t> inflight;    // `upto` of begun syncs; lowered by truncate_suffix
  std::vector<std::byte> scratch;  // reused read buffer
  std::vector<std::byte> ibuf;     // reused index encode buffer
  bool index_write_warned = false;

  segment& active() { return segs.back(); }
  int64_t next() const { return segs.back().next; }
  std::string dir() const { return cfg.dir.string(); }

  // ---- reading helpers ----

  result<wire::batch_header> read_header(const segment& s, uint64_t pos, int64_t expected) {
    std::array<std::byte, hsize> hb;
    if (pos + hsize > s.size) return fail(errc::corrupt_batch, where(s, pos) + ": batch header past the end of data");
    auto n = s.data->pread(hb, pos);
    if (!n) return n.error();
    if (*n != hsize) return fail(errc::corrupt_batch, where(s, pos) + ": short read of a batch header");
    auto h = wire::parse_batch_header(hb);
    if (!h) return fail(errc::corrupt_batch, where(s, pos) + ": " + h.error().message);
    if (h->base_offset != expected)
      return fail(errc::corrupt_batch, where(s, pos) + ": batch base offset " + std::to_string(h->base_offset) +
                                           ", expected " + std::to_string(expected));
    if (pos + static_cast<uint32_t>(h->batch_length) > s.size)
      return fail(errc::corrupt_batch, where(s, pos) + ": batch runs past the end of data");
    return h;
  }

  // Scans batches from `pos` (expected base offset `expected`) to `file_size`, adding them to `s`.
  // CRC-checks every batch when `crc_all`, else only one that ends exactly at file_size (the
  // segment's last batch: the cheap check of an older segment).
  result<scan_end> scan(segment& s, uint64_t pos, int64_t expected, uint64_t file_size, bool crc_all, bool resume) {
    scan_end e;
    s.size = pos;
    s.next = expected;
    bool first = true;
    auto bad = [&](std::string why) {
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
      if (crc_all || len == left) {
        scratch.resize(len);
        auto m = s.data->pread(scratch, pos);
        if (!m) return m.error();
        if (*m != len) return bad("short read");
        if (wire::compute_batch_crc(scratch) != h->crc) return bad("batch CRC32C mismatch");
      }
      note_batch(s, pos, *h, cfg.index_interval_bytes, first && resume);
      first = false;
      expected = h->next_offset();
      pos += len;
    }
    return e;
  }

  // True if a whole valid batch (parses, fits, CRC ok) starts right after the bad one at e.bad_pos,
  // judging the bad batch's extent by its raw length field.
  result<bool> valid_batch_follows(const segment& s, const scan_end& e, uint64_t file_size) {
    if (e.raw_n < hsize) return false;
    uint32_t len = wire::get_le32(e.raw.data() + wire::hdr::batch_length);
    if (len < hsize || len > file_size - e.bad_pos) return false;
    uint64_t q = e.bad_pos + len;
    if (file_size - q < hsize) return false;
    std::array<std::byte, hsize> hb;
    auto n = s.data->pread(hb, q);
    if (!n) return n.error();
    auto h = wire::parse_batch_header(hb);
    if (!h || static_cast<uint32_t>(h->batch_length) > file_size - q) return false;
    scratch.resize(static_cast<uint32_t>(h->batch_length));
    auto m = s.data->pread(scratch, q);
    if (!m) return m.error();
    return *m == scratch.size() && wire::compute_batch_crc(scratch) == h->crc;
  }

  // ---- index files ----

  // Loads and validates an older segment's index files: whole entries, the two files agree,
  // offsets and positions strictly increase inside the data, timestamps never decrease.
  bool load_index(segment& s, uint64_t file_size) {
    auto of = fs->open(s.path(".index"), open_mode::existing);
    auto tf = fs->open(s.path(".timeindex"), open_mode::existing);
    if (!of || !tf) return false;
    auto osz = (*of)->size();
    auto tsz = (*tf)->size();
    if (!osz || !tsz || *osz % oentry_size != 0 || *tsz % tentry_size != 0) return false;
    size_t n = *osz / oentry_size;
    if (*tsz / tentry_size != n) return false;
    std::vector<std::byte> ob(*osz), tb(*tsz);
    auto r1 = (*of)->pread(ob, 0);
    auto r2 = (*tf)->pread(tb, 0);
    if (!r1 || !r2 || *r1 != ob.size() || *r2 != tb.size()) return false;
    s.oi.clear();
    s.ti.clear();
    s.oi.reserve(n);
    s.ti.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      oentry o{wire::get_le32(&ob[i * oentry_size]), wire::get_le32(&ob[i * oentry_size + 4])};
      tentry t{static_cast<int64_t>(get_le64(&tb[i * tentry_size])), wire::get_le32(&tb[i * tentry_size + 8])};
      if (o.rel == 0 || o.pos == 0 || o.pos >= file_size || t.rel != o.rel) return false;
      if (i > 0 && (o.rel <= s.oi.back().rel || o.pos <= s.oi.back().pos || t.ts < s.ti.back().ts)) return false;
      s.oi.push_back(o);
      s.ti.push_back(t);
    }
    s.oi_written = n;
    return true;
  }

  // The last index point names a batch with the expected base offset.
  bool index_tail_matches(segment& s, uint64_t file_size) {
    uint64_t saved = s.size;
    s.size = file_size;
    bool ok = static_cast<bool>(read_header(s, s.oi.back().pos, s.base + s.oi.back().rel));
    s.size = saved;
    return ok;
  }

  void encode_entries(const segment& s, size_t from, bool time) {
    size_t esz = time ? tentry_size : oentry_size;
    ibuf.resize((s.oi.size() - from) * esz);
    std::byte* p = ibuf.data();
    for (size_t i = from; i < s.oi.size(); ++i, p += esz) {
      if (time) {
        put_le64(p, static_cast<uint64_t>(s.ti[i].ts));
        wire::put_le32(p + 8, s.ti[i].rel);
      } else {
        wire::put_le32(p, s.oi[i].rel);
        wire::put_le32(p + 4, s.oi[i].pos);
      }
    }
  }

  void warn_index(const error& e) {
    if (!index_write_warned)
      logger()->warn("{}: index write failed (indexes are rebuilt on open): {}", dir(), e.message);
    index_write_warned = true;
  }

  // Appends the entries not yet written to the active segment's index files. Plain writes, no
  // fsync: the indexes are caches, validated or rebuilt on open.
  void flush_index(segment& s) {
    if (!s.oidx || !s.tidx || s.oi_written >= s.oi.size()) return;
    size_t from = s.oi_written;
    encode_entries(s, from, false);
    if (auto r = s.oidx->pwrite_all(ibuf, from * oentry_size); !r) warn_index(r.error());
    encode_entries(s, from, true);
    if (auto r = s.tidx->pwrite_all(ibuf, from * tentry_size); !r) warn_index(r.error());
    s.oi_written = s.oi.size();
  }

  // Rewrites both index files of `s` from memory (after a rebuild or a truncation).
  void write_index_files(segment& s) {
    auto of = s.oidx ? result<std::shared_ptr<file>>(s.oidx) : fs->open(s.path(".index"), open_mode::create);
    auto tf = s.tidx ? result<std::shared_ptr<file>>(s.tidx) : fs->open(s.path(".timeindex"), open_mode::create);
    if (!of) return warn_index(of.error());
    if (!tf) return warn_index(tf.error());
    encode_entries(s, 0, false);
    if (auto r = (*of)->truncate(0); !r) warn_index(r.error());
    if (auto r = (*of)->pwrite_all(ibuf, 0); !r) warn_index(r.error());
    encode_entries(s, 0, true);
    if (auto r = (*tf)->truncate(0); !r) warn_index(r.error());
    if (auto r = (*tf)->pwrite_all(ibuf, 0); !r) warn_index(r.error());
    s.oi_written = s.oi.size();
  }

  result<void> open_index_handles(segment& s) {
    auto of = fs->open(s.path(".index"), open_mode::create);
    if (!of) return of.error();
    auto tf = fs->open(s.path(".timeindex"), open_mode::create);
    if (!tf) return tf.error();
    s.oidx = std::move(*of);
    s.tidx = std::move(*tf);
    return {};
  }

  // Rebuilds an older segment's index from its data (headers only), after a read found the index
  // pointing at something that is not the expected batch. Stops at the first bad header.
  void rebuild_index(segment& s) {
    segment t;
    t.base = s.base;
    t.data = s.data;
    t.data_path = s.data_path;
    auto e = scan(t, 0, s.base, s.size, false, false);
    logger()->warn("{}: rebuilt the index of {}{}", dir(), s.data_path.filename().string(),
                   e && !e->clean ? " up to a bad batch at position " + std::to_string(e->bad_pos) : std::string());
    s.oi = std::move(t.oi);
    s.ti = std::move(t.ti);
    write_index_files(s);
  }

  // ---- segments ----

  result<void> remove_segment_files(const std::filesystem::path& data_path) {
    return delete_segment_files(*fs, data_path);
  }

  result<void> create_segment(int64_t base) {
    segment s;
    s.base = s.next = base;
    s.data_path = cfg.dir / (base_name(base) + ".log");
    auto d = fs->open(s.data_path, open_mode::create);
    if (!d) return d.error();
    s.data = std::move(*d);
    // A leftover file with this name can only hold data that was truncated away (truncate_suffix
    // or recovery): start empty.
    if (auto r = s.data->truncate(0); !r) return r;
    if (cfg.preallocate) {
      if (auto r = s.data->preallocate(cfg.segment_bytes); !r)
        logger()->warn("{}: cannot preallocate {}: {}", dir(), s.data_path.filename().string(), r.error().message);
    }
    if (auto r = open_index_handles(s); !r) return r;
    (void)s.oidx->truncate(0);
    (void)s.tidx->truncate(0);
    size_t expect =
        std::min<uint64_t>(cfg.segment_bytes / std::max<uint32_t>(cfg.index_interval_bytes, 1) + 2, 1 << 16);
    s.oi.reserve(expect);
    s.ti.reserve(expect);
    segs.push_back(std::move(s));
    dir_dirty = true;  // the new directory entry is made durable by the next sync
    return {};
  }

  result<void> roll() {
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
    auto r = create_segment(old.next);
    if (!r) {
      if (r.error().code != errc::disk_full) failed = true;
      // The old segment stays active; reopen its index handles for the next attempt.
      (void)open_index_handles(segs.back());
      return r;
    }
    return {};
  }

  size_t find_segment(int64_t off) const {
    auto it = std::upper_bound(segs.begin(), segs.end(), off, [](int64_t o, const segment& s) { return o < s.base; });
    return it == segs.begin() ? 0 : static_cast<size_t>(it - segs.begin() - 1);
  }

  struct cursor {
    size_t si = 0;
    uint64_t pos = 0;
    int64_t expected = 0;
  };

  // Largest index point at or below `off` in segment si.
  cursor index_start(size_t si, int64_t off) const {
    const segment& s = segs[si];
    cursor c{si, 0, s.base};
    auto rel = static_cast<uint64_t>(off - s.base);
    auto it = std::upper_bound(s.oi.begin(), s.oi.end(), rel, [](uint64_t r, const oentry& e) { return r < e.rel; });
    if (it != s.oi.begin()) {
      --it;
      c.pos = it->pos;
      c.expected = s.base + it->rel;
    }
    return c;
  }

  // Cursor at the batch containing `off` (start_offset() <= off < next()). An index that leads
  // somewhere wrong is rebuilt once; a bad batch on the way is corrupt_batch.
  result<cursor> locate(int64_t off) {
    size_t si = find_segment(off);
    for (int attempt = 0;; ++attempt) {
      cursor c = index_start(si, off);
      bool from_index = c.pos != 0;
      error err;
      for (;;) {
        auto h = read_header(segs[si], c.pos, c.expected);
        if (!h) {
          err = h.error();
          break;
        }
        if (h->next_offset() > off) return c;
        c.pos += static_cast<uint32_t>(h->batch_length);
        c.expected = h->next_offset();
      }
      if (attempt > 0 || !from_index || si + 1 == segs.size()) return err;
      rebuild_index(segs[si]);
    }
  }

  // Header at the cursor, moving to the next segment at a segment's end; nullopt at the log end.
  result<std::optional<wire::batch_header>> header_at(cursor& c) {
    while (c.pos >= segs[c.si].size) {
      if (c.si + 1 >= segs.size()) return std::optional<wire::batch_header>{};
      ++c.si;
      c.pos = 0;
    }
    auto h = read_header(segs[c.si], c.pos, c.expected);
    if (!h) return h.error();
    return std::optional<wire::batch_header>(*h);
  }

  // ---- recovery ----

  result<void> recover();
};

result<void> partition_log::impl::recover() {
  std::error_code ec;
  std::filesystem::create_directories(cfg.dir, ec);
  if (ec) return fail(errc::storage_error, "create directory '" + dir() + "': " + ec.message());

  // Segment files: 20 digits + extension.
  std::map<int64_t, int> found;  // base -> bit 1: .log, 2: .index, 4: .timeindex
  for (auto it = std::filesystem::directory_iterator(cfg.dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    auto name = it->path().filename().string();
    auto dot = name.find('.');
    if (dot != 20 || name.find_first_not_of("0123456789") != 20) continue;
    auto ext = name.substr(dot);
    int bit = ext == ".log" ? 1 : ext == ".index" ? 2 : ext == ".timeindex" ? 4 : 0;
    if (bit == 0) continue;
    found[std::stoll(name.substr(0, 20))] |= bit;
  }
  if (ec) return fail(errc::storage_error, "list directory '" + dir() + "': " + ec.message());

  std::vector<int64_t> bases;
  for (auto [base, bits] : found) {
    if (bits & 1) {
      bases.push_back(base);
      continue;
    }
    // Index files without data: a deletion interrupted after the data file went. Finish it.
    auto p = cfg.dir / (base_name(base) + ".log");
    logger()->info("{}: removing leftover index files of deleted segment {}", dir(), base_name(base));
    if (auto r = remove_segment_files(p); !r) return r;
  }

  // An empty data file holds nothing: a segment created just before a crash (its first append
  // never reached the disk) or emptied by recovery. Drop it, keeping one file for the base offset.
  for (size_t k = 0; k < bases.size() && bases.size() > 1;) {
    auto p = cfg.dir / (base_name(bases[k]) + ".log");
    auto f = fs->open(p, open_mode::existing);
    if (!f) return f.error();
    auto sz = (*f)->size();
    if (!sz) return sz.error();
    if (*sz != 0) {
      ++k;
      continue;
    }
    logger()->info("{}: removing empty segment {}", dir(), p.filename().string());
    if (auto r = remove_segment_files(p); !r) return r;
    bases.erase(bases.begin() + static_cast<std::ptrdiff_t>(k));
  }

  bool prev_truncated = false;
  for (size_t k = 0; k < bases.size(); ++k) {
    segment s;
    s.base = bases[k];
    s.data_path = cfg.dir / (base_name(s.base) + ".log");
    if (!segs.empty() && s.base != segs.back().next) {
      if (!prev_truncated)
        return fail(errc::corrupt_batch, "gap in the log: segment " + segs.back().data_path.string() +
                                             " ends at offset " + std::to_string(segs.back().next) +
                                             " but the next segment starts at " + std::to_string(s.base));
      // The previous segment lost its unsynced tail, so no sync ever covered anything after it:
      // those segments hold only unacknowledged appends that a crash made unreachable.
      for (size_t j = bases.size(); j-- > k;) {
        auto p = cfg.dir / (base_name(bases[j]) + ".log");
        logger()->warn("{}: removing segment {} after the torn tail of the previous segment (never synced)", dir(),
                       p.filename().string());
        if (auto r = remove_segment_files(p); !r) return r;
      }
      break;
    }
    auto d = fs->open(s.data_path, open_mode::existing);
    if (!d) return d.error();
    s.data = std::move(*d);
    auto fsz = s.data->size();
    if (!fsz) return fsz.error();
    bool last = k + 1 == bases.size();

    result<scan_end> e = scan_end{};
    bool index_dirty = true;
    if (last) {
      // The active segment: full scan with CRC; its index is rebuilt from this scan.
      e = scan(s, 0, s.base, *fsz, true, false);
    } else if (load_index(s, *fsz) && !s.oi.empty() && index_tail_matches(s, *fsz)) {
      // Older segment with a sound index: check only from its last index point to the end.
      size_t loaded = s.oi.size();
      s.max_ts = s.ti.back().ts;
      e = scan(s, s.oi.back().pos, s.base + s.oi.back().rel, *fsz, true, true);
      index_dirty = s.oi.size() != loaded;
    } else {
      // Older segment with a missing, empty or damaged index: rebuild it from the headers.
      if (*fsz > 2ull * cfg.index_interval_bytes)
        logger()->info("{}: rebuilding the index of {}", dir(), s.data_path.filename().string());
      s.oi.clear();
      s.ti.clear();
      e = scan(s, 0, s.base, *fsz, false, false);
    }
    if (!e) return e.error();
    prev_truncated = false;
    if (!e->clean) {
      auto follows = valid_batch_follows(s, *e, *fsz);
      if (!follows) return follows.error();
      if (*follows)
        return fail(errc::corrupt_batch, "corrupt batch in " + where(s, e->bad_pos) + ": " + e->why +
                                             "; valid data follows, refusing to truncate it");
      if (!last && s.next != bases[k + 1] && k + 2 != bases.size())
        // Only the segment before the last can have an unsynced tail after a crash (a sync covers
        // the rolled segment too, and a segment holds more than one sync group). Elsewhere a bad
        // tail that cuts the offsets short is damage: truncating it would orphan later segments.
        return fail(errc::corrupt_batch, "corrupt batch in " + where(s, e->bad_pos) + ": " + e->why +
                                             "; later segments follow, refusing to truncate");
      bool zeros =
          std::all_of(e->raw.begin(), e->raw.begin() + e->raw_n, [](std::byte b) { return b == std::byte{0}; });
      if (!zeros)
        logger()->warn("{}: torn tail in {}: {}; truncating the file ({} bytes{}) to the last complete batch", dir(),
                       where(s, e->bad_pos), e->why, *fsz - e->bad_pos,
                       cfg.preallocate ? ", preallocated zeros included" : "");
      if (auto r = s.data->truncate(e->bad_pos); !r) return r;
      prev_truncated = true;
      index_dirty = true;
    }
    if (index_dirty && !last) write_index_files(s);
    segs.push_back(std::move(s));
  }

  // Segments left empty by truncation hold nothing; keep one so the log has its base offset.
  for (size_t i = 0; i < segs.size() && segs.size() > 1;) {
    if (segs[i].size != 0) {
      ++i;
      continue;
    }
    logger()->info("{}: removing empty segment {}", dir(), segs[i].data_path.filename().string());
    if (auto r = remove_segment_files(segs[i].data_path); !r) return r;
    segs.erase(segs.begin() + static_cast<std::ptrdiff_t>(i));
  }

  if (segs.empty()) {
    if (auto r = create_segment(0); !r) return r;
  } else {
    segment& a = active();
    if (a.size > 0 && a.first_append == INT64_MIN) {
      // An older segment became the active one (its successors were empty or dropped); its scan
      // started at the last index point, so read the first batch's append time for roll-by-age.
      auto h = read_header(a, 0, a.base);
      if (!h) return h.error();
      a.first_append = h->append_time;
    }
    if (auto r = open_index_handles(a); !r) return r;
    write_index_files(a);
    if (cfg.preallocate && a.size < cfg.segment_bytes) {
      auto fsz = a.data->size();
      if (fsz && *fsz < cfg.segment_bytes) (void)a.data->preallocate(cfg.segment_bytes);
    }
  }

  // Whatever is in the page cache now (a crashed process leaves unsynced appends there) becomes
  // the log: make it durable before anyone acknowledges on top of it.
  for (auto& s : segs)
    if (auto r = s.data->datasync(); !r) return r;
  if (auto r = fs->sync_dir(cfg.dir); !r) return r;
  dir_dirty = false;
  durable = next();
  last_begin_upto = next();
  return {};
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
  logger()->info("{}: opened, offsets [{}, {}), {} segments", p->dir(), p->segs.front().base, p->next(),
                 p->segs.size());
  return std::unique_ptr<partition_log>(new partition_log(std::move(p)));
}

result<append_info> partition_log::append(std::span<std::byte> batch, epoch leader_epoch) {
  impl& m = *impl_;
  if (m.failed) return fail(errc::storage_error, m.dir() + ": log failed earlier; refusing writes until reopened");
  if (m.closed) return fail(errc::storage_error, m.dir() + ": log is closed");
  auto h = wire::parse_batch_header(batch);
  if (!h) return h.error();
  if (static_cast<size_t>(h->batch_length) != batch.size())
    return fail(errc::corrupt_batch, "batch length field " + std::to_string(h->batch_length) + " but " +
                                         std::to_string(batch.size()) + " bytes");
  int64_t now = m.clk->now_ms();
  {
    segment& a = m.active();
    bool too_big = a.size + batch.size() > m.cfg.segment_bytes;
    bool too_old = a.size > 0 && a.first_append != INT64_MIN && now - a.first_append >= m.cfg.segment_ms;
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
  if (off < m.segs.front().base || off > m.next())
    return fail(errc::offset_out_of_range, "offset " + std::to_string(off) + " outside [" +
                                               std::to_string(m.segs.front().base) + ", " + std::to_string(m.next()) +
                                               "]");
  if (off == m.next() || upto.value <= off) return {};
  auto c = m.locate(off);
  if (!c) return c.error();
  size_t added = 0;
  for (;;) {
    auto h = m.header_at(*c);
    if (!h) return h.error();
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
      return fail(errc::corrupt_batch, "corrupt batch in " + where(s, c->pos) + ": CRC32C mismatch");
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
  if (off < m.segs.front().base || off > m.next())
    return fail(errc::offset_out_of_range, "offset " + std::to_string(off) + " outside the log");
  if (off == m.next()) return {};
  auto c = m.locate(off);
  if (!c) return c.error();
  for (;;) {
    auto h = m.header_at(*c);
    if (!h) return h.error();
    if (!*h) return {};
    fn(**h);
    c->pos += static_cast<uint32_t>((*h)->batch_length);
    c->expected = (*h)->next_offset();
  }
}

result<offset> partition_log::offset_for_timestamp(int64_t ts) {
  impl& m = *impl_;
  for (size_t si = 0; si < m.segs.size(); ++si) {
    segment& s = m.segs[si];
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
      while (c.pos < s.size) {
        auto h = m.read_header(s, c.pos, c.expected);
        if (!h) {
          err = h.error();
          break;
        }
        if (h->max_timestamp >= ts) return offset{h->base_offset};
        c.pos += static_cast<uint32_t>(h->batch_length);
        c.expected = h->next_offset();
      }
      if (!err) break;  // not in this segment after all (its max_ts said so): try the next
      // An index leading somewhere wrong is rebuilt once, as in locate().
      if (attempt > 0 || !from_index || si + 1 == m.segs.size()) return *err;
      m.rebuild_index(m.segs[si]);
    }
  }
  return offset{m.next()};
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
  // Oldest first, so the files left after a crash are a contiguous range at every step.
  for (auto& p : r.data_paths)
    if (auto a = delete_segment_files(*r.fs, p); !a) return a;
  r.data_paths.clear();
  r.handles.clear();  // the last close of an unlinked file frees its blocks: here, not on the shard
  return {};
}

retention_result partition_log::detach_for_retention(offset low_water_mark, offset keep_from) {
  impl& m = *impl_;
  retention_result rr;
  rr.retired.fs = m.fs;
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
  if (off < m.segs.front().base || off > m.next())
    return fail(errc::offset_out_of_range, "truncate at " + std::to_string(off) + " outside the log");
  if (off == m.next()) return {};
  auto c = m.locate(off);
  if (!c) return c.error();
  if (c->expected != off)
    return fail(errc::invalid_argument, "truncate at " + std::to_string(off) + ": not a batch boundary");
  size_t si = c->si;
  uint64_t pos = c->pos;
  // Newest segments first: if we crash half way the log is still a contiguous prefix.
  while (m.segs.size() > si + 1) {
    if (auto r = m.remove_segment_files(m.segs.back().data_path); !r) {
      m.failed = true;
      return r;
    }
    m.segs.pop_back();
  }
  segment& s = m.segs.back();
  if (pos == 0 && si > 0) {
    if (auto r = m.remove_segment_files(s.data_path); !r) {
      m.failed = true;
      return r;
    }
    m.segs.pop_back();
  } else {
    if (auto r = s.data->truncate(pos); !r) {
      m.failed = true;
      return r;
    }
    // Keep the index points below the cut and recompute the rest from the data.
    while (!s.oi.empty() && s.oi.back().pos >= pos) {
      s.oi.pop_back();
      s.ti.pop_back();
    }
    bool resume = !s.oi.empty();
    uint64_t start = resume ? s.oi.back().pos : 0;
    int64_t expected = resume ? s.base + s.oi.back().rel : s.base;
    s.max_ts = resume ? s.ti.back().ts : INT64_MIN;
    s.last_append = s.first_append = INT64_MIN;
    auto e = m.scan(s, start, expected, pos, false, resume);
    if (!e || !e->clean) {
      m.failed = true;
      return e ? fail(errc::corrupt_batch, "truncate: " + where(s, e->bad_pos) + ": " + e->why) : e.error();
    }
    if (resume) {
      auto h = m.read_header(s, 0, s.base);
      if (h) s.first_append = h->append_time;
    }
  }
  segment& a = m.active();
  if (!a.oidx) {
    if (auto r = m.open_index_handles(a); !r) {
      m.failed = true;
      return r;
    }
  }
  m.write_index_files(a);
  // A truncation must not come back after a crash (the replicated tail it removed is divergent):
  // make it durable now. Rare (leader change), so it is done inline.
  if (auto r = a.data->datasync(); !r) {
    m.failed = true;
    return r;
  }
  if (auto r = m.fs->sync_dir(m.cfg.dir); !r) {
    m.failed = true;
    return r;
  }
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
  if (m.cfg.preallocate) {
    if (auto r = a.data->truncate(a.size); !r) return r;
  }
  for (auto& f : m.rolled)
    if (auto r = f->datasync(); !r) return r;
  m.rolled.clear();
  if (auto r = a.data->datasync(); !r) return r;
  if (auto r = m.fs->sync_dir(m.cfg.dir); !r) return r;
  m.durable = m.next();
  return {};
}

offset partition_log::start_offset() const { return offset{impl_->segs.front().base}; }
offset partition_log::next_offset() const { return offset{impl_->next()}; }
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

}  // namespace ferry::log
