#pragma once
// topic_manager: the topics this broker holds, their partitions (each opened on its owner shard),
// creation and deletion (persisted in the metadata store first), start-up and shutdown.
//
// Threading: find()/list()/version() from any thread (a shared lock over a small map; the hot
// path takes it once per request). create/delete/start/close are coroutines that may run on any
// shard; they hop to the disk pool for the metadata store and to each partition's owner shard.
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "broker/meta/meta_store.h"
#include "broker/meta/topic_config.h"
#include "broker/partition/partition.h"
#include "schema/result.h"

namespace ferry::runtime {
class shard_set;
}

namespace ferry::topics {

namespace asio = boost::asio;

// The message of an unknown_partition error: names the partition asked for and how many there are.
inline std::string no_partition_message(const std::string& topic, int32_t partition, size_t partitions) {
  return "topic '" + topic + "' has no partition " + std::to_string(partition) + " (it has " +
         std::to_string(partitions) + ")";
}

struct topic {
  std::string name;
  uint64_t id = 0;
  meta::topic_config config;
  std::vector<std::shared_ptr<partition::partition>> partitions;  // index = partition id
};

struct broker_defaults {
  meta::topic_config topic;                // defaults for values a create request leaves unset
  meta::subscription_config subscription;  // defaults for a new subscription
  int max_replication = 1;                 // until replication lands
  bool preallocate = true;
  int64_t retention_check_ms = 30000;
  int64_t checkpoint_interval_ms = 1000;
  delay::delay_index* delays = nullptr;  // the broker's delay index; must outlive the manager
  delay::delay_limits delay;
  partition::producer_limits producers;
};

// A subscription as the rest of the broker sees it.
using subscription_ptr = std::shared_ptr<const meta::subscription_record>;

class topic_manager final : public partition::dead_letter_sink {
 public:
  // `rt` and `store` must outlive the manager.
  topic_manager(runtime::shard_set& rt, meta::meta_store& store, std::filesystem::path data_dir, broker_defaults d);

  // Loads every stored topic and opens its partitions (recovery). Removes folders of topics
  // whose deletion was interrupted. Starts the retention loop.
  asio::awaitable<result<void>> start();
  asio::awaitable<result<meta::topic_config>> create_topic(std::string name, meta::topic_config cfg);
  asio::awaitable<result<void>> delete_topic(std::string name);
  // Closes every partition (sync + close logs). No topic is usable afterwards.
  asio::awaitable<void> close_all();

  std::shared_ptr<const topic> find(std::string_view name) const;
  std::vector<std::shared_ptr<const topic>> list() const;

  // Subscriptions: persisted in the metadata store first, then added to every partition (on its
  // shard). `cfg` values are complete (the protocol layer fills in defaults). Creating computes
  // the start cursor of every partition (log start or high-water mark, per cfg.start).
  asio::awaitable<result<subscription_ptr>> create_subscription(std::string topic, std::string name,
                                                                meta::subscription_config cfg);
  asio::awaitable<result<void>> delete_subscription(std::string topic, std::string name);
  subscription_ptr find_subscription(std::string_view topic, std::string_view name) const;
  // Every subscription of `topic` (all topics if empty), sorted by topic and name.
  std::vector<subscription_ptr> list_subscriptions(std::string_view topic) const;

  // dead_letter_sink: creates the dead-letter topic (1 partition) on first use.
  void write_dead_letter(subscription::dead_letter_request r, std::function<void(result<void>)> done) override;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  const broker_defaults& defaults() const { return defaults_; }
  shard_id shard_for(std::string_view topic, int32_t partition) const;

 private:
  asio::awaitable<result<std::shared_ptr<topic>>> open_topic(meta::topic_record rec);
  asio::awaitable<void> close_topic(std::shared_ptr<topic> t);
  asio::awaitable<void> retention_loop();
  asio::awaitable<void> dead_letter_task(subscription::dead_letter_request r, std::function<void(result<void>)> done);
  asio::awaitable<result<void>> attach_subscription(std::shared_ptr<const topic> t, subscription_ptr s,
                                                    bool load_checkpoints);
  asio::awaitable<void> detach_subscription(std::shared_ptr<const topic> t, subscription_ptr s);
  asio::awaitable<result<void>> load_subscriptions();
  std::filesystem::path topic_dir(const meta::topic_record& r) const;
  partition::partition_config partition_cfg(const meta::topic_record& r, int32_t p) const;

  runtime::shard_set& rt_;
  meta::meta_store& store_;
  std::filesystem::path data_dir_;
  broker_defaults defaults_;
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<topic>, std::less<>> topics_;
  std::set<std::string, std::less<>> pending_;  // names being created or deleted
  // topic -> name -> subscription
  std::map<std::string, std::map<std::string, subscription_ptr, std::less<>>, std::less<>> subs_;
  std::set<std::pair<std::string, std::string>> subs_pending_;
  std::atomic<uint64_t> version_{1};
  std::atomic<bool> closed_{false};
};

}  // namespace ferry::topics
