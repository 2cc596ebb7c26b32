// The sparse indexes of partition_log's segments: an offset index ({relative offset, position})
// and a time index ({max timestamp before the entry, relative offset}) every index_interval_bytes
// of data, kept in memory and written to .index / .timeindex files that are only caches (validated
// or rebuilt on open, never synced). Also the lookups that use them. Format: schema/segment.md.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "broker/log/log_impl.h"
#include "schema/endian.h"

namespace ferry::log {

using namespace detail;

using wire::get_le64;
using wire::put_le64;

// ---- index files ----

// Loads and validates an older segment's index files: whole entries, the two files agree,
// offsets and positions strictly increase inside the data, timestamps never decrease.
bool partition_log::impl::load_index(segment& s, uint64_t file_size) {
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
bool partition_log::impl::index_tail_matches(segment& s, uint64_t file_size) {
  uint64_t saved = s.size;
  s.size = file_size;
  bool ok = static_cast<bool>(read_header(s, s.oi.back().pos, s.base + s.oi.back().rel));
  s.size = saved;
  return ok;
}

void partition_log::impl::encode_entries(const segment& s, size_t from, bool time) {
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

void partition_log::impl::warn_index(const error& e) {
  if (!index_write_warned) logger()->warn("{}: index write failed (indexes are rebuilt on open): {}", dir(), e.message);
  index_write_warned = true;
}

// Appends the entries not yet written to the active segment's index files. Plain writes, no
// fsync: the indexes are caches, validated or rebuilt on open. Handles of the active segment that
// could not be opened (EMFILE) are opened again here, once per sync at most.
void partition_log::impl::flush_index(segment& s) {
  if (s.oi_written >= s.oi.size()) return;
  if (!s.oidx || !s.tidx) {
    if (&s != &segs.back() || end_beyond >= 0) return;
    if (auto r = open_index_handles(s); !r) return warn_index(r.error());
  }
  size_t from = s.oi_written;
  encode_entries(s, from, false);
  if (auto r = s.oidx->pwrite_all(ibuf, from * oentry_size); !r) warn_index(r.error());
  encode_entries(s, from, true);
  if (auto r = s.tidx->pwrite_all(ibuf, from * tentry_size); !r) warn_index(r.error());
  s.oi_written = s.oi.size();
}

// Rewrites both index files of `s` from memory (after a rebuild or a truncation).
void partition_log::impl::write_index_files(segment& s) {
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

result<void> partition_log::impl::open_index_handles(segment& s) {
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
void partition_log::impl::rebuild_index(segment& s) {
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

// ---- lookups ----

size_t partition_log::impl::find_segment(int64_t off) const {
  auto it = std::upper_bound(segs.begin(), segs.end(), off, [](int64_t o, const segment& s) { return o < s.base; });
  return it == segs.begin() ? 0 : static_cast<size_t>(it - segs.begin() - 1);
}

// Largest index point at or below `off` in segment si.
partition_log::impl::cursor partition_log::impl::index_start(size_t si, int64_t off) const {
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

}  // namespace ferry::log
