#pragma once
// The broker's metadata store, a RocksDB database under <data-dir>/meta: topics and subscriptions
// (every write synced before it returns), and the checkpoints of the partitions' state machines
// (written without a sync: a checkpoint only saves replaying the log, which stays the source of
// truth, so losing the newest one in a crash costs a longer replay, never state), and the delivery
// journals of subscriptions. RocksDB stays inside meta_store.cc. Blocking calls: run them on the
// disk pool or the state thread, never on a shard.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "broker/meta/subscription_config.h"
#include "broker/meta/topic_config.h"
#include "schema/result.h"

namespace ferry::meta {

class meta_store {
 public:
  // create: a missing store is created (a new data folder). must_exist: a missing or unreadable
  // store is an error (a data folder that holds topic data: a fresh store would forget it).
  enum class open_mode { create, must_exist };
  [[nodiscard]] static result<std::unique_ptr<meta_store>> open(const std::filesystem::path& dir,
                                                                open_mode mode = open_mode::create);
  virtual ~meta_store() = default;
  [[nodiscard]] virtual result<void> put_topic(const topic_record& r) = 0;
  // Deletes the topic's record and, in the same synced write, records that its data folder
  // `folder` (a name under <data-dir>/topics) is to be deleted: start-up deletes only folders
  // recorded so (an interrupted delete), never a folder it knows nothing of.
  [[nodiscard]] virtual result<void> delete_topic(const std::string& name, const std::string& folder) = 0;
  [[nodiscard]] virtual result<std::vector<topic_record>> list_topics() = 0;
  // Folders of deleted topics not yet known to be gone, and forgetting one once it is.
  [[nodiscard]] virtual result<std::vector<std::string>> list_deleted_folders() = 0;
  [[nodiscard]] virtual result<void> forget_deleted_folder(const std::string& folder) = 0;
  // A new unique id, persisted (never handed out twice, also across restarts).
  [[nodiscard]] virtual result<uint64_t> next_id() = 0;

  [[nodiscard]] virtual result<void> put_subscription(const subscription_record& r) = 0;
  [[nodiscard]] virtual result<void> delete_subscription(const std::string& topic, const std::string& name) = 0;
  [[nodiscard]] virtual result<std::vector<subscription_record>> list_subscriptions() = 0;

  // Checkpoints, keyed by the caller ("ckpt/<topic id>/<partition>/<subscription id>"). Unsynced.
  // In the same atomic write, deletes the keys in each [from, to) of `erase` (journal records the
  // checkpoints now cover).
  [[nodiscard]] virtual result<void> put_checkpoints(const std::vector<std::pair<std::string, std::string>>& kvs,
                                                     const std::vector<std::pair<std::string, std::string>>& erase) = 0;
  // The stored value, or nullopt if there is none.
  [[nodiscard]] virtual result<std::optional<std::string>> get_checkpoint(const std::string& key) = 0;
  // Deletes every checkpoint whose key starts with `prefix` (synced).
  [[nodiscard]] virtual result<void> delete_checkpoints(const std::string& prefix) = 0;
  // Deletes the checkpoint `key` and every key under `key + "/"` (its journal), synced.
  [[nodiscard]] virtual result<void> delete_checkpoint(const std::string& key) = 0;

  // Delivery journals (subscription/dispatcher.h, partition_port::record_deliveries): small records
  // under "<checkpoint key>/d/<sequence>". Written unsynced, so they survive a crash of the process
  // (kill -9), not a power loss. Called on the state thread (never on a shard).
  [[nodiscard]] virtual result<void> put_journal(const std::string& key, const std::string& value) = 0;
  // Every (key, value) whose key starts with `prefix`, in key order.
  [[nodiscard]] virtual result<std::vector<std::pair<std::string, std::string>>> list_journal(
      const std::string& prefix) = 0;
};

}  // namespace ferry::meta
