// partition_log recovery: what open() does with a log folder. It tells a torn tail (truncated)
// from damage followed by valid data (the corrupt state: nothing is truncated or deleted), and
// creates missing folders durably. Format and reasoning: schema/segment.md, "Recovery".
#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <string>
#include <system_error>

#include <spdlog/spdlog.h>

#include "broker/log/log_impl.h"
#include "schema/varint.h"

namespace ferry::log {

using namespace detail;

namespace {

std::filesystem::path parent_of(const std::filesystem::path& p) {
  return p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
}

// Segment files are "<20 digits>.<log|index|timeindex>". Returns the base offset and sets `bit`
// (1 .log, 2 .index, 4 .timeindex), or nullopt for any other name (ignored).
std::optional<int64_t> segment_file(const std::string& name, int& bit) {
  auto dot = name.find('.');
  if (dot != 20 || name.find_first_not_of("0123456789") != 20) return std::nullopt;
  auto ext = name.substr(dot);
  bit = ext == ".log" ? 1 : ext == ".index" ? 2 : ext == ".timeindex" ? 4 : 0;
  if (bit == 0) return std::nullopt;
  int64_t base = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + 20, base);
  if (ec != std::errc() || p != name.data() + 20) return std::nullopt;  // beyond int64: not ours
  return base;
}

constexpr size_t search_chunk = 1 << 20;

}  // namespace

result<void> partition_log::impl::make_dirs() {
  auto d = cfg.dir.lexically_normal();
  if (!d.has_filename() && d.has_parent_path()) d = d.parent_path();
  std::vector<std::filesystem::path> missing;  // deepest first
  std::error_code ec;
  for (auto p = d; !p.empty(); p = p.parent_path()) {
    bool there = std::filesystem::exists(p, ec);
    if (ec) return fail(errc::storage_error, "stat '" + p.string() + "': " + ec.message());
    if (there) break;
    missing.push_back(p);
    if (p.parent_path() == p) break;
  }
  std::vector<std::filesystem::path> created;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    auto r = fs->create_dir(*it);
    if (!r) return fail(r.error().code, "create directory '" + it->string() + "': " + r.error().message);
    if (*r) created.push_back(*it);
  }
  // Each new folder's name is made durable in its parent before open() returns (and so before
  // anything in it is acknowledged): deepest first, then up the tree. A crash half way loses the
  // whole new branch, which held nothing yet.
  for (auto it = created.rbegin(); it != created.rend(); ++it)
    if (auto r = fs->sync_dir(parent_of(*it)); !r) return r;
  return {};
}

result<std::optional<wire::batch_header>> partition_log::impl::whole_batch_with_bad_length(file& f, uint64_t pos,
                                                                                           uint64_t size,
                                                                                           int64_t expected) {
  std::optional<wire::batch_header> none;
  if (pos + hsize > size) return none;
  std::array<std::byte, hsize> hb;
  auto n = f.pread(hb, pos);
  if (!n) return n.error();
  if (*n != hsize) return none;
  // Parse with a stand-in length: the one in the file is the field under suspicion.
  auto patched = hb;
  wire::put_le32(patched.data() + wire::hdr::batch_length, static_cast<uint32_t>(hsize));
  auto h = wire::parse_batch_header(patched);
  if (!h || h->base_offset != expected) return none;
  // Walk the records by their own length prefixes.
  std::vector<std::byte> win(64 << 10);
  uint64_t wstart = 0, wlen = 0;
  uint64_t p = pos + hsize;
  for (int32_t i = 0; i < h->record_count; ++i) {
    if (p >= size) return none;
    if (p < wstart || p + 10 > wstart + wlen) {
      auto m = f.pread(std::span(win.data(), std::min<uint64_t>(win.size(), size - p)), p);
      if (!m) return m.error();
      wstart = p;
      wlen = *m;
    }
    const std::byte* q = win.data() + (p - wstart);
    const std::byte* end = win.data() + wlen;
    bool ok = true;
    uint64_t len = read_uvarint(q, end, ok);
    if (!ok) return none;
    p = wstart + static_cast<uint64_t>(q - win.data()) + len;
    if (p > size) return none;
  }
  uint64_t total = p - pos;
  if (total > UINT32_MAX || total == static_cast<uint32_t>(h->batch_length)) return none;
  h->batch_length = static_cast<int32_t>(total);
  scratch.resize(total);
  auto m = f.pread(scratch, pos);
  if (!m) return m.error();
  if (*m != total || wire::compute_batch_crc(scratch) != h->crc) return none;
  return std::optional<wire::batch_header>(*h);
}

result<void> partition_log::impl::search_after(file& f, const std::filesystem::path& name, uint64_t from, uint64_t size,
                                               int64_t min_base, int64_t anchor_base, uint64_t anchor_pos,
                                               bool stop_at_first, search_result& out) {
  std::vector<std::byte> buf(static_cast<size_t>(std::min<uint64_t>(search_chunk, size > from ? size - from : 0)));
  uint64_t wstart = 0, wlen = 0;  // the window [wstart, wstart + wlen) of the file in buf
  uint64_t q = from;
  while (q + hsize <= size) {
    if (q < wstart || q + hsize > wstart + wlen) {
      // No batch starts in a hole (or in preallocated space never written): skip what the file
      // system knows reads as zeros, so a preallocated segment's tail costs one seek.
      auto nd = f.next_data(q);
      if (!nd) return nd.error();
      if (*nd > q) {
        q = *nd;
        if (q + hsize > size) break;
      }
      auto n = f.pread(std::span(buf.data(), std::min<uint64_t>(buf.size(), size - q)), q);
      if (!n) return n.error();
      wstart = q;
      wlen = *n;
      if (wlen < hsize) break;
    }
    // The next place whose magic byte is right.
    size_t i = q - wstart;
    size_t last = wlen - hsize;  // the last window index where a whole header fits
    const void* hit = std::memchr(buf.data() + i + wire::hdr::magic, wire::batch_magic, last - i + 1);
    if (hit == nullptr) {
      q = wstart + last + 1;
      continue;
    }
    i = static_cast<size_t>(static_cast<const std::byte*>(hit) - buf.data()) - wire::hdr::magic;
    q = wstart + i;
    auto h = wire::parse_batch_header(std::span(buf.data() + i, hsize));
    bool valid = false;
    uint64_t len = 0;
    if (h) {
      len = static_cast<uint32_t>(h->batch_length);
      // An offset takes at least one byte, so a batch this far after the anchor cannot start
      // more than that many offsets after it; and offsets only grow.
      bool plausible = h->base_offset >= min_base &&
                       h->base_offset - anchor_base <= static_cast<int64_t>(q - anchor_pos) && len <= size - q;
      if (plausible) {
        uint32_t crc;
        if (i + len <= wlen) {
          crc = wire::compute_batch_crc(std::span(buf.data() + i, len));
        } else {
          scratch.resize(len);
          auto m = f.pread(scratch, q);
          if (!m) return m.error();
          crc = *m == len ? wire::compute_batch_crc(scratch) : ~h->crc;
        }
        valid = crc == h->crc;
      }
    }
    if (!valid) {
      ++q;
      continue;
    }
    if (!out.any) out.first = where(name, q);
    out.any = true;
    out.end = std::max(out.end, h->next_offset());
    if (stop_at_first) return {};
    q += len;  // the next batch is most likely right there; if not, the search goes on from there
  }
  return {};
}

result<void> partition_log::impl::on_damage(uint64_t dfile_size, uint64_t bad_pos, std::string why,
                                            const scan_end* tail, const std::vector<int64_t>& later,
                                            std::vector<std::shared_ptr<file>>& later_files) {
  segment& d = segs.back();
  const int64_t at = d.next;
  search_result found;
  // The batch at the damage may be whole with only its length field wrong (bit rot: a torn write
  // never leaves a whole batch with a matching CRC behind).
  auto whole = whole_batch_with_bad_length(*d.data, bad_pos, dfile_size, at);
  if (!whole) return whole.error();
  if (*whole) {
    why += "; the batch there is whole (CRC32C matches over " + std::to_string((*whole)->batch_length) +
           " bytes), its length field is damaged";
    found.any = true;
    found.end = (*whole)->next_offset();
    found.first = where(d.data_path, bad_pos);
  }
  if (!found.any) {
    if (auto r = search_after(*d.data, d.data_path, bad_pos, dfile_size, at, at, bad_pos, true, found); !r) return r;
  }
  for (size_t j = 0; j < later.size(); ++j) {
    auto p = cfg.dir / (base_name(later[j]) + ".log");
    auto f = fs->open(p, open_mode::existing);
    if (!f) return f.error();
    later_files.push_back(*f);
    if (found.any) continue;
    auto sz = (*f)->size();
    if (!sz) return sz.error();
    if (auto r = search_after(**f, p, 0, *sz, std::max(at, later[j]), later[j], 0, true, found); !r) return r;
  }

  if (found.any) {
    // Damage in the middle: keep every byte. The log ends where the last segment's last valid
    // batch ends (or at the last segment's base offset, if none of its batches is readable), so
    // that no offset is ever handed out twice.
    search_result tail_end;
    if (later.empty()) {
      if (auto r = search_after(*d.data, d.data_path, bad_pos, dfile_size, at, at, bad_pos, false, tail_end); !r)
        return r;
    } else {
      auto sz = later_files.back()->size();
      if (!sz) return sz.error();
      auto p = cfg.dir / (base_name(later.back()) + ".log");
      if (auto r = search_after(*later_files.back(), p, 0, *sz, std::max(at, later.back()), later.back(), 0, false,
                                tail_end);
          !r)
        return r;
    }
    end_beyond = std::max({at, found.end, tail_end.end, later.empty() ? at : later.back()});
    for (auto b : later) beyond.push_back(cfg.dir / (base_name(b) + ".log"));
    note_damage(at, d.data_path, bad_pos, why + "; valid data follows (first at " + found.first + ")");
    return {};
  }

  // A torn tail: nothing valid anywhere after the damage. What follows it was never synced (a
  // sync covers every batch before its end), so cutting it loses nothing acknowledged.
  bool zeros = tail && std::all_of(tail->raw.begin(), tail->raw.begin() + static_cast<std::ptrdiff_t>(tail->raw_n),
                                   [](std::byte b) { return b == std::byte{0}; });
  if (!zeros)
    logger()->warn(
        "{}: torn tail in {}: {}; no valid batch after it; truncating the file ({} bytes{}) to the last "
        "complete batch",
        dir(), where(d.data_path, bad_pos), why, dfile_size - bad_pos,
        cfg.preallocate ? ", preallocated zeros included" : "");
  if (auto r = d.data->truncate(bad_pos); !r) return r;
  // Newest first; made durable by the folder sync at the end of recovery (if a crash brings one
  // back first, it holds no valid batch and goes again).
  later_files.clear();
  for (auto it = later.rbegin(); it != later.rend(); ++it) {
    auto p = cfg.dir / (base_name(*it) + ".log");
    logger()->warn("{}: removing segment {} after the torn tail of {}: it holds no valid batch", dir(),
                   p.filename().string(), d.data_path.filename().string());
    if (auto r = remove_segment_files(p); !r) return r;
  }
  return {};
}

result<void> partition_log::impl::recover() {
  if (auto r = make_dirs(); !r) return r;

  // After a clean close() every byte is synced; the marker goes now (made durable by the folder
  // sync below, before anything new is written), so a crash later is never taken for clean.
  std::error_code mec;
  clean_start = std::filesystem::exists(cfg.dir / clean_marker, mec);
  if (clean_start)
    if (auto r = fs->remove(cfg.dir / clean_marker); !r) return r;

  std::map<int64_t, int> found;  // base -> bit 1: .log, 2: .index, 4: .timeindex
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(cfg.dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    int bit = 0;
    if (auto base = segment_file(it->path().filename().string(), bit)) found[*base] |= bit;
  }
  if (ec) return fail(errc::storage_error, "list directory '" + dir() + "': " + ec.message());

  // Offsets stay below 2^62 (at a million messages a second that is 146,000 years), so offset
  // sums can never overflow. A segment named beyond that is damage, not a log we wrote: refuse
  // before anything in the folder is touched.
  if (auto hi = found.upper_bound(max_log_offset); hi != found.end())
    return fail(errc::corrupt_batch, "segment file " + base_name(hi->first) + " in '" + dir() +
                                         "' starts beyond the largest offset a log holds (2^62)");
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

  std::vector<std::shared_ptr<file>> later_files;  // segment files after a damage: synced below
  for (size_t k = 0; k < bases.size(); ++k) {
    std::vector<int64_t> later(bases.begin() + static_cast<std::ptrdiff_t>(k + 1), bases.end());
    if (!segs.empty() && bases[k] != segs.back().next) {
      // No segment holds offsets [previous next, this base): damage at the end of the previous
      // segment (a lost file, or a name that lies), judged like any other.
      later.insert(later.begin(), bases[k]);
      auto fsz = segs.back().data->size();
      if (!fsz) return fsz.error();
      if (auto r = on_damage(*fsz, segs.back().size,
                             "gap in the log: the segment ends at offset " + std::to_string(segs.back().next) +
                                 " but the next segment file, " + base_name(bases[k]) + ".log, starts at offset " +
                                 std::to_string(bases[k]),
                             nullptr, later, later_files);
          !r)
        return r;
      break;
    }
    segment s;
    s.base = bases[k];
    s.data_path = cfg.dir / (base_name(s.base) + ".log");
    auto d = fs->open(s.data_path, open_mode::existing);
    if (!d) return d.error();
    s.data = std::move(*d);
    auto fsz = s.data->size();
    if (!fsz) return fsz.error();
    bool last = k + 1 == bases.size();

    result<scan_end> e = scan_end{};
    bool index_dirty = true;
    if (last || (k + 2 == bases.size() && !clean_start)) {
      // The active segment, and after a crash the one before it, which may have rolled after the
      // last sync (a sync covers a rolled segment as a whole, so no older one holds unsynced
      // bytes): full scan with CRC. Unsynced bytes may be torn anywhere, not only at the end (a
      // lost sector with later ones kept), so a check from the last index point is not enough.
      // Their indexes are rebuilt from this scan.
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
    if (!e->clean) {
      // s.size and s.next now end at the last good batch.
      segs.push_back(std::move(s));
      if (auto r = on_damage(*fsz, e->bad_pos, e->why, &*e, later, later_files); !r) return r;
      // Corrupt: index files are caches of the readable part; the data file stays as it is. (A
      // torn tail's segment is the active one now: its indexes are written below.)
      if (corrupt) write_index_files(segs.back());
      break;
    }
    if (index_dirty && !last) write_index_files(s);
    segs.push_back(std::move(s));
  }

  if (!corrupt) {
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
  }

  if (segs.empty()) {
    if (auto r = create_segment(0); !r) return r;
  } else if (!corrupt) {
    segment& a = active();
    if (a.size > 0 && a.first_append == INT64_MIN) {
      // An older segment became the active one (its successors were empty or dropped); its scan
      // started at the last index point, so read the first batch's append time for roll-by-age.
      auto h = read_header(a, 0, a.base);
      if (!h) return fail(h.error().code, where(a.data_path, 0) + ": " + h.error().message);
      a.first_append = h->append_time;
    }
    if (auto r = open_index_handles(a); !r) return r;
    write_index_files(a);
    if (cfg.preallocate && a.size < cfg.segment_bytes) {
      auto fsz = a.data->size();
      if (fsz && *fsz < cfg.segment_bytes) (void)a.data->preallocate(cfg.segment_bytes);
    }
  }
  // Corrupt: the damaged segment is the last readable one. No index handles, no preallocation,
  // no truncation: its bytes past the damage stay exactly as found, as do the files after it.

  // Whatever is in the page cache now (a crashed process leaves unsynced appends there) becomes
  // the log: make it durable before anyone acknowledges on top of it. That includes the segments
  // past a damage: the valid data there is what a repair may still want.
  for (auto& s : segs)
    if (auto r = s.data->datasync(); !r) return r;
  for (auto& f : later_files)
    if (auto r = f->datasync(); !r) return r;
  if (auto r = fs->sync_dir(cfg.dir); !r) return r;
  dir_dirty = false;
  durable = end();
  last_begin_upto = next();
  return {};
}

}  // namespace ferry::log
