#include "broker/meta/meta_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <string_view>

#include <charconv>
#include <mutex>

#include "broker/base/assert.h"

namespace ferry::meta {
namespace {

error from_status(const rocksdb::Status& s, const std::string& what) {
  errc code = s.IsNoSpace() ? errc::disk_full : errc::storage_error;
  return error{code, "metadata store: " + what + ": " + s.ToString()};
}

constexpr const char* topic_prefix = "topic/";
constexpr const char* id_key = "next_id";
constexpr const char* sub_prefix = "sub/";
constexpr const char* deleted_prefix = "deleted/";

std::string sub_key(const std::string& topic, const std::string& name) { return sub_prefix + topic + "/" + name; }

class rocks_store final : public meta_store {
 public:
  explicit rocks_store(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) { wo_.sync = true; }

  result<void> put_topic(const topic_record& r) override {
    rocksdb::WriteBatch b;
    b.Put(topic_prefix + r.name, encode_topic_record(r));
    return write(wo_, b, "writing topic ", r.name);
  }

  result<void> delete_topic(const std::string& name, const std::string& folder) override {
    rocksdb::WriteBatch b;
    b.Delete(topic_prefix + name);
    b.Put(deleted_prefix + folder, "");
    return write(wo_, b, "deleting topic ", name);
  }

  result<std::vector<std::string>> list_deleted_folders() override {
    std::vector<std::string> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(deleted_prefix); it->Valid() && it->key().starts_with(deleted_prefix); it->Next())
      out.push_back(it->key().ToString().substr(std::string_view(deleted_prefix).size()));
    if (!it->status().ok()) return from_status(it->status(), "listing deleted topic folders");
    return out;
  }

  result<void> forget_deleted_folder(const std::string& folder) override {
    rocksdb::WriteBatch b;
    b.Delete(deleted_prefix + folder);
    return write(wo_, b, "forgetting deleted folder ", folder);
  }

  result<std::vector<topic_record>> list_topics() override {
    std::vector<topic_record> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(topic_prefix); it->Valid() && it->key().starts_with(topic_prefix); it->Next()) {
      auto r = decode_topic_record(std::string_view(it->value().data(), it->value().size()));
      if (!r) return r.error();
      out.push_back(std::move(*r));
    }
    if (!it->status().ok()) return from_status(it->status(), "listing topics");
    return out;
  }

  result<uint64_t> next_id() override {
    // Read-modify-write: two disk threads creating topics at once must not get the same id.
    std::lock_guard lk(id_mu_);
    std::string v;
    uint64_t id = 1;
    auto s = db_->Get(rocksdb::ReadOptions(), id_key, &v);
    if (s.ok()) {
      std::from_chars(v.data(), v.data() + v.size(), id);
    } else if (!s.IsNotFound()) {
      return from_status(s, "reading the id counter");
    }
    rocksdb::WriteBatch b;
    b.Put(id_key, std::to_string(id + 1));
    if (auto w = write(wo_, b, "writing the id counter", {}); !w) return w.error();
    return id;
  }

  result<void> put_subscription(const subscription_record& r) override {
    rocksdb::WriteBatch b;
    b.Put(sub_key(r.topic, r.name), encode_subscription_record(r));
    return write(wo_, b, "writing subscription ", r.topic + "/" + r.name);
  }

  result<void> delete_subscription(const std::string& topic, const std::string& name) override {
    rocksdb::WriteBatch b;
    b.Delete(sub_key(topic, name));
    return write(wo_, b, "deleting subscription ", topic + "/" + name);
  }

  result<std::vector<subscription_record>> list_subscriptions() override {
    std::vector<subscription_record> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(sub_prefix); it->Valid() && it->key().starts_with(sub_prefix); it->Next()) {
      auto r = decode_subscription_record(std::string_view(it->value().data(), it->value().size()));
      if (!r) return r.error();
      out.push_back(std::move(*r));
    }
    if (!it->status().ok()) return from_status(it->status(), "listing subscriptions");
    return out;
  }

  result<void> put_checkpoints(const std::vector<std::pair<std::string, std::string>>& kvs,
                               const std::vector<std::pair<std::string, std::string>>& erase) override {
    rocksdb::WriteBatch b;
    for (auto& [k, v] : kvs) b.Put(k, v);
    for (auto& [from, to] : erase) b.DeleteRange(from, to);
    return write(unsynced_, b, "writing checkpoints", {});
  }

  result<std::optional<std::string>> get_checkpoint(const std::string& key) override {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), key, &v);
    if (s.IsNotFound()) return std::optional<std::string>{};
    if (!s.ok()) return from_status(s, "reading checkpoint " + key);
    return std::optional<std::string>(std::move(v));
  }

  result<void> delete_checkpoints(const std::string& prefix) override {
    rocksdb::WriteBatch b;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) b.Delete(it->key());
    if (!it->status().ok()) return from_status(it->status(), "listing checkpoints " + prefix);
    return write(wo_, b, "deleting checkpoints ", prefix);
  }

  result<void> delete_checkpoint(const std::string& key) override {
    rocksdb::WriteBatch b;
    b.Delete(key);
    b.DeleteRange(key + "/", key + "0");  // '0' follows '/': exactly the keys under key + "/"
    return write(wo_, b, "deleting checkpoint ", key);
  }

  result<void> put_journal(const std::string& key, const std::string& value) override {
    rocksdb::WriteBatch b;
    b.Put(key, value);
    return write(unsynced_, b, "writing delivery journal ", key);
  }

  result<std::vector<std::pair<std::string, std::string>>> list_journal(const std::string& prefix) override {
    std::vector<std::pair<std::string, std::string>> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
      out.emplace_back(it->key().ToString(), it->value().ToString());
    if (!it->status().ok()) return from_status(it->status(), "reading delivery journal " + prefix);
    return out;
  }

 private:
  // Every write goes through here: on a disk thread (it blocks on RocksDB, and on fsync with
  // wo_), its failure named as `what` + `subject`.
  result<void> write(const rocksdb::WriteOptions& o, rocksdb::WriteBatch& b, const char* what,
                     std::string_view subject) {
    FERRY_ASSERT_OFF_EVENT_LOOP("a metadata store write");
    auto s = db_->Write(o, &b);
    if (!s.ok()) return from_status(s, what + std::string(subject));
    return {};
  }

  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions unsynced_;
  rocksdb::WriteOptions wo_;
  std::mutex id_mu_;
};

}  // namespace

result<std::unique_ptr<meta_store>> meta_store::open(const std::filesystem::path& dir, open_mode mode) {
  rocksdb::Options opts;
  opts.create_if_missing = mode == open_mode::create;
  opts.max_background_jobs = 1;
  opts.keep_log_file_num = 3;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(opts, dir.string(), &raw);
  if (!s.ok()) return from_status(s, "opening " + dir.string());
  return std::unique_ptr<meta_store>(std::make_unique<rocks_store>(std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace ferry::meta
