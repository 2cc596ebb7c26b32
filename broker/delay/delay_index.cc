#include "broker/delay/delay_index.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "broker/base/assert.h"
#include "broker/delay/codec.h"

namespace ferry::delay {
namespace {

error from_status(const rocksdb::Status& s, const std::string& what) {
  errc code = s.IsNoSpace() ? errc::disk_full : errc::storage_error;
  return error{code, "delay index: " + what + ": " + s.ToString()};
}

// Keys and values: broker/delay/codec.h (schema/delay.md, "Store").

class rocks_index final : public delay_index {
 public:
  explicit rocks_index(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  result<void> apply(partition_key p, std::span<const index_op> ops, index_state after) override {
    rocksdb::WriteBatch b;
    for (const auto& op : ops) {
      const auto& m = op.message;
      if (op.what == index_op::kind::insert) {
        b.Put(due_key(p, m.due, m.offset), encode_message(m));
        b.Put(offset_key('O', p, m.offset), encode_due(m.due));
      } else {
        b.Delete(due_key(p, m.due, m.offset));
        b.Delete(offset_key('O', p, m.offset));
        if (op.cancelled) b.Put(offset_key('X', p, m.offset), "");
      }
    }
    b.Put(key_prefix('A', p), encode_state(after));
    FERRY_ASSERT_OFF_EVENT_LOOP("a delay index write");
    auto s = db_->Write(rocksdb::WriteOptions(), &b);
    if (!s.ok()) return from_status(s, "writing " + std::to_string(ops.size()) + " changes");
    return {};
  }

  result<index_state> state(partition_key p) override {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), key_prefix('A', p), &v);
    if (s.IsNotFound()) return index_state{};
    if (!s.ok()) return from_status(s, "reading the applied offset");
    auto st = decode_state(v);
    if (!st) return fail(errc::storage_error, "delay index: bad state record");
    return *st;
  }

  result<std::vector<pending_message>> load(partition_key p, int64_t after_due, int64_t after_offset,
                                            int64_t due_before, size_t max_count, size_t max_bytes) override {
    std::vector<pending_message> out;
    auto start = due_key(p, after_due, after_offset);
    auto pre = key_prefix('D', p);
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;  // a scan in due order: each block is read once
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    size_t bytes = 0;
    for (it->Seek(start); it->Valid() && out.size() < max_count && bytes < max_bytes; it->Next()) {
      auto k = it->key();
      if (!k.starts_with(pre)) break;
      if (k.compare(rocksdb::Slice(start)) == 0) continue;  // strictly after
      auto due_off = decode_due_key(std::string_view(k.data(), k.size()));
      if (!due_off) return fail(errc::storage_error, "delay index: bad key");
      pending_message m;
      m.due = due_off->first;
      m.offset = due_off->second;
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
    auto due = decode_due(v);
    if (!due) return fail(errc::storage_error, "delay index: bad offset record");
    return std::optional<int64_t>(*due);
  }

  result<bool> cancelled(partition_key p, int64_t offset) override {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), offset_key('X', p, offset), &v);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return from_status(s, "looking up a cancel");
    return true;
  }

  result<void> sync() override {
    FERRY_ASSERT_OFF_EVENT_LOOP("a delay index write");
    auto s = db_->SyncWAL();
    if (!s.ok()) return from_status(s, "syncing");
    return {};
  }

  result<void> drop_topic(uint64_t topic_id) override {
    rocksdb::WriteBatch b;
    for (char kind : {'D', 'O', 'X', 'A'}) {
      b.DeleteRange(topic_prefix(kind, topic_id), topic_prefix(kind, topic_id + 1));
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    FERRY_ASSERT_OFF_EVENT_LOOP("a delay index write");
    auto s = db_->Write(wo, &b);
    if (!s.ok()) return from_status(s, "dropping topic " + std::to_string(topic_id));
    return {};
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

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
