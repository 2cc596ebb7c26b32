// The metadata group's durable state in RocksDB. The crash reasoning is in the header: each
// method is one WriteBatch (atomic in the write-ahead log), and the order of the batches is the
// order RocksDB recovers them in, so what survives a crash is always a prefix of what was written.
#include "broker/cluster/raft_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <system_error>
#include <utility>

#include "broker/base/assert.h"
#include "broker/base/failpoint.h"
#include "schema/crc32c.h"
#include "schema/endian.h"

namespace ferry::cluster {

using consensus::entry;
using consensus::entry_kind;
using consensus::index_t;
using consensus::term_t;

namespace {

constexpr std::string_view hard_key = "hard_state";
constexpr std::string_view snapshot_key = "snapshot";
constexpr std::string_view log_prefix = "log/";
constexpr uint8_t value_format = 1;

std::string log_key(index_t i) {
  std::string k(log_prefix);
  for (int shift = 56; shift >= 0; shift -= 8) k.push_back(static_cast<char>((i >> shift) & 0xff));
  return k;
}

std::string key_name(std::string_view key) {
  if (!key.starts_with(log_prefix) || key.size() != log_prefix.size() + 8) return std::string(key);
  index_t i = 0;
  for (size_t p = log_prefix.size(); p < key.size(); ++p) i = (i << 8) | static_cast<uint8_t>(key[p]);
  return "log entry " + std::to_string(i);
}

error damaged(std::string_view key, const std::string& what) {
  return fail(errc::storage_error, "raft store: " + key_name(key) + ": " + what);
}

error from_status(const rocksdb::Status& s, const std::string& what) {
  errc code = s.IsNoSpace() ? errc::disk_full : errc::storage_error;
  return error{code, "raft store: " + what + ": " + s.ToString()};
}

template <class T>
void put(std::string& out, T v) {
  std::byte b[sizeof(T)];
  wire::store_le(b, v);
  out.append(reinterpret_cast<const char*>(b), sizeof(T));
}

// Appends the CRC-32C of everything before it.
std::string seal(std::string v) {
  put<uint32_t>(v, crc32c(v.data(), v.size()));
  return v;
}

// Reads a sealed value front to back; every read is bounds-checked, so damaged bytes are a value.
class reader {
 public:
  reader(std::string_view key, std::string_view value) : key_(key), rest_(value) {}

  // Checks the checksum and the format byte; afterwards the reads see the payload only.
  result<void> open() {
    if (rest_.size() < 5) return damaged(key_, std::to_string(rest_.size()) + " bytes, too short");
    const size_t n = rest_.size() - 4;
    const auto want = wire::load_le<uint32_t>(reinterpret_cast<const std::byte*>(rest_.data() + n));
    if (crc32c(rest_.data(), n) != want) return damaged(key_, "checksum mismatch (damaged)");
    rest_ = rest_.substr(0, n);
    uint8_t format = 0;
    if (!get(format) || format != value_format)
      return damaged(key_, "format " + std::to_string(format) + "; this broker reads format 1");
    return {};
  }
  template <class T>
  bool get(T& v) {
    if (rest_.size() < sizeof(T)) return false;
    v = wire::load_le<T>(reinterpret_cast<const std::byte*>(rest_.data()));
    rest_.remove_prefix(sizeof(T));
    return true;
  }
  bool bytes(size_t n, std::string_view& v) {
    if (rest_.size() < n) return false;
    v = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }
  std::string_view rest() const { return rest_; }
  error truncated() const { return damaged(key_, "value ends early"); }

 private:
  std::string_view key_;
  std::string_view rest_;
};

std::string encode_entry(const entry& e) {
  std::string v;
  v.reserve(1 + 8 + 1 + e.data.size() + 4);
  put<uint8_t>(v, value_format);
  put<uint64_t>(v, e.term);
  put<uint8_t>(v, static_cast<uint8_t>(e.kind));
  v += e.data;
  return seal(std::move(v));
}

result<entry> decode_entry(std::string_view key, index_t index, std::string_view value) {
  reader r(key, value);
  if (auto ok = r.open(); !ok) return ok.error();
  entry e;
  e.index = index;
  uint8_t kind = 0;
  if (!r.get(e.term) || !r.get(kind)) return r.truncated();
  if (kind > static_cast<uint8_t>(entry_kind::config))
    return damaged(key, "unknown entry kind " + std::to_string(kind));
  if (e.term == 0) return damaged(key, "an entry of term 0");
  e.kind = static_cast<entry_kind>(kind);
  e.data = std::string(r.rest());
  return e;
}

std::string encode_hard(const consensus::hard_state& h) {
  std::string v;
  put<uint8_t>(v, value_format);
  put<uint64_t>(v, h.term);
  put<int32_t>(v, h.vote.value);
  return seal(std::move(v));
}

result<consensus::hard_state> decode_hard(std::string_view value) {
  reader r(hard_key, value);
  if (auto ok = r.open(); !ok) return ok.error();
  consensus::hard_state h;
  if (!r.get(h.term) || !r.get(h.vote.value)) return r.truncated();
  return h;
}

std::string encode_snapshot(const consensus::snapshot_ref& ref, std::string_view data) {
  const std::string config = consensus::encode_membership(ref.config);
  std::string v;
  v.reserve(1 + 8 + 8 + 4 + config.size() + data.size() + 4);
  put<uint8_t>(v, value_format);
  put<uint64_t>(v, ref.index);
  put<uint64_t>(v, ref.term);
  put<uint32_t>(v, static_cast<uint32_t>(config.size()));
  v += config;
  v += data;
  return seal(std::move(v));
}

struct stored_snapshot {
  consensus::snapshot_ref ref;
  std::string data;
};

result<stored_snapshot> decode_snapshot(std::string_view value) {
  reader r(snapshot_key, value);
  if (auto ok = r.open(); !ok) return ok.error();
  stored_snapshot s;
  uint32_t n = 0;
  std::string_view config;
  if (!r.get(s.ref.index) || !r.get(s.ref.term) || !r.get(n) || !r.bytes(n, config)) return r.truncated();
  if (!consensus::decode_membership(config, s.ref.config))
    return damaged(snapshot_key, "membership '" + std::string(config.substr(0, 64)) + "' does not parse");
  if (s.ref.index == 0 || s.ref.term == 0) return damaged(snapshot_key, "a snapshot at index or term 0");
  s.data = std::string(r.rest());
  return s;
}

std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

}  // namespace

struct raft_store::impl {
  std::unique_ptr<rocksdb::DB> db;
  std::string dir;
  bool failed = false;

  result<void> writable() const {
    if (failed) return fail(errc::storage_error, "raft store " + dir + ": an earlier write or sync failed; reopen it");
    return {};
  }

  result<void> write(rocksdb::WriteBatch& b, bool sync, const std::string& what) {
    FERRY_ASSERT_OFF_EVENT_LOOP("a raft store write");
    rocksdb::WriteOptions o;
    o.sync = sync;
    auto s = db->Write(o, &b);
    if (!s.ok()) {
      // What reached the disk is unknown now (STYLE.md: never retry an fsync and pretend).
      failed = true;
      return from_status(s, what + " in " + dir);
    }
    return {};
  }

  // The value at `key`, or nullopt.
  result<std::optional<std::string>> get(std::string_view key) const {
    std::string v;
    auto s = db->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &v);
    if (s.IsNotFound()) return std::optional<std::string>{};
    if (!s.ok()) return from_status(s, "reading " + key_name(key) + " in " + dir);
    return std::optional<std::string>(std::move(v));
  }

  result<std::optional<stored_snapshot>> snapshot() const {
    auto v = get(snapshot_key);
    if (!v) return v.error();
    if (!*v) return std::optional<stored_snapshot>{};
    auto s = decode_snapshot(**v);
    if (!s) return s.error();
    return std::optional<stored_snapshot>(std::move(*s));
  }

  result<term_t> term_of(index_t i) const {
    const std::string key = log_key(i);
    auto v = get(key);
    if (!v) return v.error();
    if (!*v) return damaged(key, "missing");
    auto e = decode_entry(key, i, **v);
    if (!e) return e.error();
    return e->term;
  }
};

raft_store::raft_store(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
raft_store::~raft_store() = default;

result<std::unique_ptr<raft_store>> raft_store::open(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(errc::storage_error, "raft store: creating " + dir.string() + ": " + ec.message());
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.max_background_jobs = 1;
  opts.keep_log_file_num = 3;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(opts, dir.string(), &raw);
  if (!s.ok()) return from_status(s, "opening " + dir.string());
  auto i = std::make_unique<impl>();
  i->db.reset(raw);
  i->dir = dir.string();

  auto snap = i->snapshot();
  if (!snap) return snap.error();
  log_position snapshot;
  if (*snap) snapshot = {(*snap)->ref.index, (*snap)->ref.term};
  // The last entry: "log/" keys sort by index, and no other key sorts between them.
  log_position last = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(i->db->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(log_key(~index_t{0}));
  if (it->Valid() && view(it->key()).starts_with(log_prefix)) {
    const std::string key(view(it->key()));
    if (key.size() != log_prefix.size() + 8) return damaged(key, "a log key of the wrong length");
    index_t index = 0;
    for (size_t p = log_prefix.size(); p < key.size(); ++p) index = (index << 8) | static_cast<uint8_t>(key[p]);
    auto e = decode_entry(key, index, view(it->value()));
    if (!e) return e.error();
    if (index <= snapshot.index)
      return damaged(key, "at or below the snapshot's index " + std::to_string(snapshot.index));
    last = {index, e->term};
  }
  if (!it->status().ok()) return from_status(it->status(), "reading the log's end in " + dir.string());
  it.reset();  // before the DB it reads
  auto store = std::unique_ptr<raft_store>(new raft_store(std::move(i)));
  store->last_ = last;
  store->snapshot_ = snapshot;
  return store;
}

result<raft_store_state> raft_store::load() const {
  raft_store_state out;
  auto hard = impl_->get(hard_key);
  if (!hard) return hard.error();
  if (*hard) {
    auto h = decode_hard(**hard);
    if (!h) return h.error();
    out.durable.hard = *h;
  }
  auto snap = impl_->snapshot();
  if (!snap) return snap.error();
  if (*snap) {
    out.durable.snapshot_index = (*snap)->ref.index;
    out.durable.snapshot_term = (*snap)->ref.term;
    out.durable.snapshot_config = std::move((*snap)->ref.config);
    out.snapshot_data = std::move((*snap)->data);
  }
  // Every log key, so that an entry left at or below the snapshot, or a hole, is seen.
  index_t want = out.durable.snapshot_index + 1;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(rocksdb::Slice(log_prefix.data(), log_prefix.size()));
       it->Valid() && view(it->key()).starts_with(log_prefix); it->Next()) {
    const std::string key(view(it->key()));
    if (key.size() != log_prefix.size() + 8) return damaged(key, "a log key of the wrong length");
    index_t index = 0;
    for (size_t p = log_prefix.size(); p < key.size(); ++p) index = (index << 8) | static_cast<uint8_t>(key[p]);
    if (index != want)
      return damaged(key, index < want ? "at or below the snapshot's index " + std::to_string(want - 1)
                                       : "follows a hole: entry " + std::to_string(want) + " is missing");
    auto e = decode_entry(key, index, view(it->value()));
    if (!e) return e.error();
    out.durable.log.push_back(std::move(*e));
    ++want;
  }
  if (!it->status().ok()) return from_status(it->status(), "reading the log in " + impl_->dir);
  return out;
}

result<void> raft_store::save_hard_state(const consensus::hard_state& h) {
  if (auto ok = impl_->writable(); !ok) return ok.error();
  rocksdb::WriteBatch b;
  b.Put(rocksdb::Slice(hard_key.data(), hard_key.size()), encode_hard(h));
  // Synced: a vote or a new term must be on disk before any message that carries it leaves.
  return impl_->write(b, true, "writing the hard state");
}

result<void> raft_store::append(std::optional<index_t> truncate_from, const std::vector<entry>& entries) {
  const index_t first = truncate_from.value_or(last_.index + 1);
  FERRY_ASSERT(first > snapshot_.index && first <= last_.index + 1,
               "truncate after the snapshot and within the log (or append at its end)");
  for (size_t k = 0; k < entries.size(); ++k)
    FERRY_ASSERT(entries[k].index == first + k, "appended entries follow the log (or the truncation) contiguously");
  if (!truncate_from && entries.empty()) return {};
  if (auto ok = impl_->writable(); !ok) return ok.error();
  log_position last{first - 1, 0};
  if (!entries.empty()) {
    last = {entries.back().index, entries.back().term};
  } else if (last.index == snapshot_.index) {
    last.term = snapshot_.term;
  } else {
    auto t = impl_->term_of(last.index);
    if (!t) return t.error();
    last.term = *t;
  }
  // One batch: a crash keeps the truncation and the entries after it together, or neither.
  rocksdb::WriteBatch b;
  for (index_t i = first; i <= last_.index; ++i) b.Delete(log_key(i));
  for (const entry& e : entries) b.Put(log_key(e.index), encode_entry(e));
  if (auto ok = impl_->write(b, false, "appending to the log"); !ok) return ok.error();
  last_ = last;
  return {};
}

result<log_position> raft_store::sync() {
  if (auto ok = impl_->writable(); !ok) return ok.error();
  FERRY_ASSERT_OFF_EVENT_LOOP("a raft store sync");
  if (FERRY_FAILPOINT("raft_store.before_sync")) {
    impl_->failed = true;
    return fail(errc::storage_error, "raft store " + impl_->dir + ": sync: failpoint raft_store.before_sync");
  }
  // The log position is read before the sync: everything written up to it is in the WAL already,
  // and FlushWAL(true) fsyncs the WAL (SST files and the manifest are synced by RocksDB itself).
  const log_position covered = last_;
  auto s = impl_->db->FlushWAL(true);
  if (!s.ok()) {
    impl_->failed = true;
    return from_status(s, "syncing the log in " + impl_->dir);
  }
  return covered;
}

result<void> raft_store::save_snapshot(const consensus::snapshot_ref& ref, std::string_view data, snapshot_log log) {
  FERRY_ASSERT(ref.index > snapshot_.index, "a snapshot replaces an older one");
  FERRY_ASSERT(ref.term != 0, "a snapshot has the term of its last entry");
  if (auto ok = impl_->writable(); !ok) return ok.error();
  const index_t drop_to = log == snapshot_log::drop_log ? last_.index : std::min(ref.index, last_.index);
  // One synced batch: after a crash the store has the new snapshot without the entries it
  // replaced, or the old snapshot with all of them; never a log that starts after a hole.
  rocksdb::WriteBatch b;
  b.Put(rocksdb::Slice(snapshot_key.data(), snapshot_key.size()), encode_snapshot(ref, data));
  for (index_t i = snapshot_.index + 1; i <= drop_to; ++i) b.Delete(log_key(i));
  if (auto ok = impl_->write(b, true, "writing a snapshot"); !ok) return ok.error();
  snapshot_ = {ref.index, ref.term};
  if (log == snapshot_log::drop_log || ref.index >= last_.index) last_ = snapshot_;
  return {};
}

}  // namespace ferry::cluster
