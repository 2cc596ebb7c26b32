#pragma once
// subscription_host: the subscriptions of one partition. For each, its replicated state
// (subscription::subscription_state, always here, applied from committed control batches: this is
// a state machine of the commit pipeline) and, while the partition leads, its delivery engine
// (subscription::dispatcher: members, leases, windows, timers; started and stopped with the
// leader services). It also keeps the states' checkpoints in the meta store and the delivery
// journal (schema/control.md).
//
// Threading: the partition's shard; checkpoint and journal writes run on the `state` executor.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "broker/log/state_machine.h"
#include "broker/meta/subscription_config.h"
#include "broker/subscription/dispatcher.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::meta {
class meta_store;
}

namespace ferry::partition {

class subscription_host final : public log::state_machine {
 public:
  // What start-up found of a subscription: its newest checkpoint and the delivery journal records
  // written after it (key, value), in order.
  struct saved_subscription {
    std::optional<std::string> checkpoint;
    std::vector<std::pair<std::string, std::string>> journal;
  };

  // `port` (the partition) and `store` (may be null: no checkpoints) outlive the host.
  subscription_host(subscription::partition_port& port, uint64_t topic_id, meta::meta_store* store,
                    subscription::window_limits window, boost::asio::any_io_executor state,
                    boost::asio::any_io_executor shard);
  ~subscription_host() override;
  subscription_host(const subscription_host&) = delete;
  subscription_host& operator=(const subscription_host&) = delete;

  // log::state_machine: control batches, applied to every subscription's state.
  bool wants(const wire::batch_header& h, log::batch_hint hint) const override;
  void apply(const wire::batch_header& h, std::span<const std::byte> batch) override;

  // Adds a subscription's state, starting at `start` or from `saved`; returns the offset from which
  // its control batches must be replayed (the checkpoint's applied offset, or `start`). No-op
  // (nullopt) if it is here already. `log_end`: state beyond it is forgotten (a shorter log).
  [[nodiscard]] result<std::optional<offset>> add(const meta::subscription_record& rec, int64_t start,
                                                  saved_subscription saved, offset log_end);
  // The state alone, for replaying its control batches after add().
  log::state_machine* replay_machine(uint64_t sub_id);
  void remove(uint64_t sub_id);
  size_t size() const { return subs_.size(); }

  // Leader services: delivery engines for every subscription (and for those added later), or none.
  void start_delivery();
  void stop_delivery();
  bool delivering() const { return delivering_; }
  subscription::dispatcher* engine(uint64_t sub_id);
  // Wakes every engine (new data is visible).
  void wake();

  // Retention: lowest offset a subscription still needs (cursors and saved checkpoints), and what a
  // restart must read again (saved checkpoints); INT64_MAX if there is none.
  int64_t low_water_mark() const;
  int64_t keep_from() const;
  void expire_below(int64_t log_start);

  // Journals one round of deliveries (on the state executor, unsynced); `journaled` then runs on
  // the shard (`shard`, given at construction).
  void record_deliveries(uint64_t sub_id, std::span<const int64_t> offsets, std::function<void()> journaled);
  // Saves the dirty states' checkpoints (`all`: also clean ones whose checkpoint lags `applied`).
  boost::asio::awaitable<void> save_checkpoints(bool all, offset applied);
  bool saving() const { return saving_; }

  std::string checkpoint_key(uint64_t sub_id) const;
  std::string journal_prefix(uint64_t sub_id) const { return checkpoint_key(sub_id) + "/d/"; }
  static std::string checkpoint_prefix(uint64_t topic_id);

 private:
  struct slot {
    meta::subscription_record rec;
    std::unique_ptr<subscription::subscription_state> state;
    std::unique_ptr<subscription::dispatcher> engine;
    offset saved_applied{0};    // applied offset of its newest checkpoint on disk
    uint64_t journal_next = 0;  // sequence of its next delivery journal record
    std::string journal_key;    // journal_prefix(id), kept: a record is written per delivery round
  };
  struct one_state;  // a state_machine over one slot's state (replay after add)

  void start_engine(slot& s);

  subscription::partition_port& port_;
  uint64_t topic_id_;
  meta::meta_store* store_;
  subscription::window_limits window_;
  boost::asio::any_io_executor state_ex_;
  boost::asio::any_io_executor shard_ex_;
  std::map<uint64_t, slot> subs_;
  std::map<uint64_t, std::unique_ptr<one_state>> replayers_;
  bool delivering_ = false;
  bool saving_ = false;
};

}  // namespace ferry::partition
