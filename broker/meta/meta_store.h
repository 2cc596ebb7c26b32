#pragma once
// The broker's metadata store: topics and their configuration, in a RocksDB database under
// <data-dir>/meta. Every write is synced before it returns. RocksDB stays inside meta_store.cc.
// Blocking calls: run them on the disk pool, never on a shard.
#include <filesystem>
#include <memory>
#include <vector>

#include "broker/base/result.h"
#include "broker/meta/topic_config.h"

namespace ferry::meta {

class meta_store {
 public:
  [[nodiscard]] static result<std::unique_ptr<meta_store>> open(const std::filesystem::path& dir);
  virtual ~meta_store() = default;
  [[nodiscard]] virtual result<void> put_topic(const topic_record& r) = 0;
  [[nodiscard]] virtual result<void> delete_topic(const std::string& name) = 0;
  [[nodiscard]] virtual result<std::vector<topic_record>> list_topics() = 0;
  // A new unique id, persisted (never handed out twice, also across restarts).
  [[nodiscard]] virtual result<uint64_t> next_id() = 0;
};

}  // namespace ferry::meta
