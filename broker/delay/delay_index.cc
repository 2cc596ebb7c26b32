#include "broker/delay/delay_index.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <cstring>

#include "broker/base/varint.h"

namespace ferry::delay {
namespace {

using ferry::byte_reader;
using ferry::byte_writer;

constexpr uint8_t value_version = 1;

error from_status(const rocksdb::Status& s, const std::string& what) {
  errc code = s.IsNoSpace() ? errc::disk_full : errc::storage_error;
  return error{code, "delay index: " + what + ": " + s.ToString()};
}

// Keys (schema/delay.md): a kind byte, the topic id and partition big-endian, then the rest
// big-endian so that RocksDB's byte order is numeric order.
//   'D' tid p due off  -> the message        (due has its sign bit flipped: negative dues sort first)
//   'O' tid p off      -> due                 (cancel looks a message up by offset)
//   'X' tid p off      -> ""                  (cancelled)
//   'A' tid p          -> applied_upto, pending
void put_be64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}
void put_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t flip(int64_t v) { return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63); }
int64_t unflip(uint64_t v) { return static_cast<int64_t>(v ^ (uint64_t{1} << 63)); }

std::string prefix(char kind, partition_key p) {
  std::string k(1, kind);
  put_be64(k, p.topic_id);
  put_be32(k, static_cast<uint32_t>(p.partition));
  return k;
}
std::string due_key(partition_key p, int64_t due, int64_t off) {
  auto k = prefix('D', p);
  put_be64(k, flip(due));
  put_be64(k, static_cast<uint64_t>(off));
  return k;
}
std::string offset_key(char kind, partition_key p, int64_t off) {
  auto k = prefix(kind, p);
  put_be64(k, static_cast<uint64_t>(off));
  return k;
}
constexpr size_t prefix_len = 1 + 8 + 4;

std::string encode_message(const pending_message& m) {
  byte_writer w;
  w.u8(value_version);
  w.varint(m.append_time);
  w.varint(m.timestamp);
  w.u8(m.key ? 1 : 0);
  if (m.key) w.str(*m.key);
  w.u8(m.value ? 1 : 0);
  if (m.value) w.str(*m.value);
  w.uvarint(m.headers.size());
  for (auto& [k, v] : m.headers) {
    w.str(k);
    w.u8(v ? 1 : 0);
    if (v) w.str(*v);
  }
  return std::move(w).str();
}

bool decode_message(std::string_view s, pending_message& m) {
  byte_reader r{s};
  if (r.u8() != value_version) return false;
  m.append_time = r.varint();
  m.timestamp = r.varint();
  if (r.u8()) m.key = r.str();
  if (r.u8()) m.value = r.str();
  uint64_t n = r.uvarint();
  if (!r.ok || n > s.size()) return false;
  for (uint64_t i = 0; i < n && r.ok; ++i) {
    std::string k = r.str();
    std::optional<std::string> v;
    if (r.u8()) v = r.str();
    m.headers.emplace_back(std::move(k), std::move(v));
  }
  return r.ok && r.pos == s.size();
}

class rocks_index final : public delay_index {
 public:
  explicit rocks_index(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  result<void> apply(partition_key p, std::span<const index_op> ops, index_state after) override {
    rocksdb::WriteBatch b;
    for (const auto& op : ops) {
      const auto& m = op.message;
      if (op.what == index_op::kind::insert) {
        b.Put(due_key(p, m.due, m.offset), encode_message(m));
        std::string due;
        put_be64(due, flip(m.due));
        b.Put(offset_key('O', p, m.offset), due);
      } else {
        b.Delete(due_key(p, m.due, m.offset));
        b.Delete(offset_key('O', p, m.offset));
        if (op.cancelled) b.Put(offset_key('X', p, m.offset), "");
      }
    }
    std::string st;
    put_be64(st, static_cast<uint64_t>(after.applied_upto));
    put_be64(st, static_cast<uint64_t>(after.pending));
    b.Put(prefix('A', p), st);
    auto s = db_->Write(rocksdb::WriteOptions(), &b);
    if (!s.ok()) return from_status(s, "writing " + std::to_string(ops.size()) + " changes");
    return {};
  }

  result<index_state> state(partition_key p) override {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), prefix('A', p), &v);
    if (s.IsNotFound()) return index_state{};
    if (!s.ok()) return from_status(s, "reading the applied offset");
    if (v.size() != 16) return fail(errc::storage_error, "delay index: bad state record");
    return index_state{static_cast<int64_t>(get_be64(v.data())), static_cast<int64_t>(get_be64(v.data() + 8))};
  }

  result<std::vector<pending_message>> load(partition_key p, int64_t after_due, int64_t after_offset,
                                            int64_t due_before, size_t max_count, size_t max_bytes) override {
    std::vector<pending_message> out;
    auto start = due_key(p, after_due, after_offset);
    auto pre = prefix('D', p);
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;  // a scan in due order: each block is read once
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    size_t bytes = 0;
    for (it->Seek(start); it->Valid() && out.size() < max_count && bytes < max_bytes; it->Next()) {
      auto k = it->key();
      if (!k.starts_with(pre)) break;
      if (k.compare(rocksdb::Slice(start)) == 0) continue;  // strictly after
      if (k.size() != prefix_len + 16) return fail(errc::storage_error, "delay index: bad key");
      pending_message m;
      m.due = unflip(get_be64(k.data() + prefix_len));
      m.offset = static_cast<int64_t>(get_be64(k.data() + prefix_len + 8));
      if (m.due >= due_before) break;
      if (!decode_message(std::string_view(it->value().data(), it->value().size()), m))
        return fail(errc::storage_error,
                    "delay index: message at offset " + std::to_string(m.offset) + " does not decode");
      bytes += m.bytes();
      out.push_back(std::move(m));
    }
    if (!it->status().ok()) return from_status(it->status(), "scanning");
    return out;
  }

  result<std::optional<int64_t>> due_of(partition_key p, int64_t offset) override {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), offset_key('O', p, offset), &v);
    if (s.IsNotFound()) return std::optional<int64_t>{};
    if (!s.ok()) return from_status(s, "looking up offset " + std::to_string(offset));
    if (v.size() != 8) return fail(errc::storage_error, "delay index: bad offset record");
    return std::optional<int64_t>(unflip(get_be64(v.data())));
  }

  result<bool> cancelled(partition_key p, int64_t offset) override {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), offset_key('X', p, offset), &v);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return from_status(s, "looking up a cancel");
    return true;
  }

  result<void> sync() override {
    auto s = db_->SyncWAL();
    if (!s.ok()) return from_status(s, "syncing");
    return {};
  }

  result<void> drop_topic(uint64_t topic_id) override {
    rocksdb::WriteBatch b;
    for (char kind : {'D', 'O', 'X', 'A'}) {
      std::string from(1, kind), to(1, kind);
      put_be64(from, topic_id);
      put_be64(to, topic_id + 1);
      b.DeleteRange(from, to);
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto s = db_->Write(wo, &b);
    if (!s.ok()) return from_status(s, "dropping topic " + std::to_string(topic_id));
    return {};
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

size_t pending_message::bytes() const {
  size_t n = sizeof(*this) + (key ? key->size() : 0) + (value ? value->size() : 0);
  for (auto& [k, v] : headers) n += k.size() + (v ? v->size() : 0) + 64;
  return n;
}

result<std::unique_ptr<delay_index>> delay_index::open(const std::filesystem::path& dir, options o) {
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.max_background_jobs = 2;
  opts.keep_log_file_num = 3;
  // Memory stays bounded whatever the number of pending messages: small memtables, a small block
  // cache, index and filter blocks in (and evicted from) that cache.
  opts.write_buffer_size = o.write_buffer_bytes;
  opts.max_write_buffer_number = 2;
  opts.max_total_wal_size = 4 * o.write_buffer_bytes;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(o.block_cache_bytes);
  t.cache_index_and_filter_blocks = true;
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(opts, dir.string(), &raw);
  if (!s.ok()) return from_status(s, "opening " + dir.string());
  return std::unique_ptr<delay_index>(std::make_unique<rocks_index>(std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace ferry::delay
