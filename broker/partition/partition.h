#pragma once
// partition: one partition of a topic on this broker: its log, its producer (deduplication)
// state, group commit, the readers waiting for new data, and its subscriptions (one dispatcher
// each, see broker/subscription/dispatcher.h) with the control records that change them.
//
// Control records: acks, dead-letter moves and seeks are appended to this log as control batches.
// When one is durable it is applied, in log order, to every subscription of the partition, then
// the caller is answered. On open, each subscription loads its checkpoint (meta store) and the
// control batches after it are applied again. `applied_upto()`: every control batch below it has
// been applied.
//
// Threading: a partition belongs to one shard (owner()); every member function must be called on
// that shard's thread, except the const accessors marked "any thread". Cross-shard callers
// co_spawn onto owner() and await (STYLE.md "Async model").
#include <atomic>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/base/clock.h"
#include "broker/base/result.h"
#include "broker/base/types.h"
#include "broker/log/log.h"
#include "broker/meta/subscription_config.h"
#include "broker/partition/delay_scheduler.h"
#include "broker/partition/producer_state.h"
#include "broker/subscription/dispatcher.h"
#include "schema/record_batch.h"

namespace ferry::runtime {
class shard_set;
}
namespace ferry::meta {
class meta_store;
}
namespace ferry::scheduler {
class wheel_driver;
}

namespace ferry::partition {

namespace asio = boost::asio;

enum class fsync_policy { always, interval };
enum class ack_level { durable, leader };

// Where dead letters go: implemented by the topic manager (it may create the dead-letter topic).
// `done` may run on any thread.
class dead_letter_sink {
 public:
  virtual ~dead_letter_sink() = default;
  virtual void write_dead_letter(subscription::dead_letter_request r, std::function<void(result<void>)> done) = 0;
};

struct partition_config {
  log::log_config log;
  fsync_policy fsync = fsync_policy::always;
  int64_t fsync_interval_ms = 1000;
  uint64_t topic_id = 0;                     // names the checkpoints in the meta store
  meta::meta_store* store = nullptr;         // checkpoints; must outlive the partition
  dead_letter_sink* dead_letters = nullptr;  // must outlive the partition
  int64_t checkpoint_interval_ms = 1000;     // how often dirty subscription state is saved
  subscription::window_limits window;        // per subscription
  delay::delay_index* delays = nullptr;      // delayed messages; must outlive the partition
  delay_limits delay;                        // memory and release rate of delayed messages
  producer_limits producers;                 // idempotent-producer state: window, expiry, bound
};

// Whether a produced batch has deliver_at fields (the protocol layer knows from verify_batch).
enum class batch_delays { none, some };

struct cancel_result {
  cancel_outcome outcome = cancel_outcome::unknown;
  std::string message;
};

struct produce_result {
  offset base{-1};
  int64_t append_time = -1;
  bool duplicate = false;
};

// What is wrong with a partition, for /health, /ready, the metrics and topic describe. Bits.
enum class partition_health : uint32_t {
  ok = 0,
  log_failed = 1,          // a write or fsync failed: the log refuses writes until restart
  corrupt = 2,             // damaged data in the log: fenced (reads and writes across it refused)
  disk_full = 4,           // the last append found the disk full
  delay_index_failed = 8,  // the delay index failed a write: produces refused until restart
};
inline uint32_t operator&(uint32_t a, partition_health b) { return a & static_cast<uint32_t>(b); }

struct partition_stats {
  offset log_start{0};
  offset high_watermark{0};
  offset log_end{0};
  uint64_t size_bytes = 0;
  size_t segments = 0;
};

class partition : public std::enable_shared_from_this<partition>, private subscription::partition_port {
 public:
  // Opens and recovers the partition's log in cfg.log.dir and rebuilds producer state from it.
  // Call on the owner shard. `rt` must outlive the partition.
  [[nodiscard]] static result<std::shared_ptr<partition>> open(std::string topic, partition_id id, partition_config cfg,
                                                               runtime::shard_set& rt, shard_id owner);
  ~partition();
  partition(const partition&) = delete;
  partition& operator=(const partition&) = delete;

  // Appends a verified batch (wire::verify_batch passed; `h` is its header). Deduplicates by
  // (producer id, sequence). Completes after the batch is durable (ack_level::durable, with
  // fsync=always) or written (otherwise). The bytes are stamped in place.
  asio::awaitable<result<produce_result>> produce(std::span<std::byte> batch, wire::batch_header h, ack_level acks,
                                                  batch_delays delays = batch_delays::none);

  // Whole batches from the one containing `from`, up to the high-water mark (see log::read).
  [[nodiscard]] result<void> read(offset from, size_t max_bytes, std::vector<std::byte>& out);

  // Registers a long-poll waiter: calls `wake` (once, on this shard) when the high-water mark
  // moves above `from` or the partition closes; at once if it is above already (the result is
  // then 0). `wake` must post to wherever the waiter lives. Returns the waiter's id for
  // cancel_wait(), or errc::resource_exhausted when max_data_waiters are waiting already.
  [[nodiscard]] result<uint64_t> on_data(offset from, std::function<void()> wake);
  // Removes a waiter that timed out (no-op if it was woken already).
  void cancel_wait(uint64_t id);
  size_t data_waiters() const { return data_waiters_.size(); }
  static constexpr size_t max_data_waiters = 10'000;

  [[nodiscard]] result<offset> offset_for_timestamp(int64_t ts);

  // Stops accepting produces, waits for the sync in flight, saves the subscriptions' checkpoints,
  // syncs and closes the log.
  asio::awaitable<void> close();

  // ---- subscriptions (owner shard) ----
  // Adds a subscription: from `checkpoint` (its saved state) if there is one, else from its start
  // offset on this partition. `existing`: it existed before (start-up), so control batches after
  // the checkpoint (or after its start offset, without one) are applied again from the log; a
  // brand-new subscription has none.
  // `journal`: its delivery journal records written after the checkpoint (key, value), in order.
  enum class subscription_origin { created, existing };
  struct saved_subscription {
    std::optional<std::string> checkpoint;
    std::vector<std::pair<std::string, std::string>> journal;
  };
  [[nodiscard]] result<void> add_subscription(const meta::subscription_record& rec, saved_subscription saved,
                                              subscription_origin origin);
  void remove_subscription(uint64_t sub_id);
  subscription::dispatcher* find_subscription(uint64_t sub_id);
  size_t subscription_count() const { return subs_.size(); }
  // A seek of one subscription: appends the seek control record; `done` once it is applied.
  void seek_subscription(uint64_t sub_id, int64_t new_cursor, std::function<void(result<void>)> done);
  // Applies retention: takes out of the log the segments below the low-water mark (every
  // subscription's cursor and the oldest saved checkpoint) or over the topic's time/size limit;
  // what the limit removes unacknowledged is counted in the subscriptions' `expired`. Their files
  // are in the result's `retired`: the caller deletes them on a disk thread
  // (log::partition_log::remove_retired), never on the shard.
  [[nodiscard]] result<log::retention_result> apply_retention_with_subscriptions();
  // The lowest offset a subscription still needs (log_start if there is none).
  offset low_water_mark() const;
  // Messages (not control records) in [from, high-water mark): a header scan of the log.
  int64_t messages_from(offset from);
  // Append time of the batch holding `o`, or -1 (for "oldest unacked" in describe).
  int64_t append_time_at(offset o);
  // ---- delayed messages (owner shard) ----
  // Cancels the delayed message at `offset` (see delay_scheduler.h); `done` on this shard with the
  // outcome once decided (after the cancel record is durable when one is needed).
  void cancel(int64_t offset, std::function<void(result<cancel_result>)> done);
  int64_t delayed_pending() const { return delays_ ? delays_->pending() : 0; }
  // Earliest due time in memory (-1: none there; the delay index may still have later ones).
  int64_t next_due_in_memory() const { return delays_ ? delays_->next_due_in_memory() : -1; }
  delay_scheduler* delays() { return delays_.get(); }

  // Key of this partition's checkpoint for `sub_id` in the meta store.
  std::string checkpoint_key(uint64_t sub_id) const;
  // Delivery journal records of a subscription are keyed journal_prefix + 20-digit sequence.
  std::string journal_prefix(uint64_t sub_id) const { return checkpoint_key(sub_id) + "/d/"; }
  static std::string checkpoint_prefix(uint64_t topic_id);

  offset hwm() const { return offset{hwm_.load(std::memory_order_acquire)}; }  // any thread
  partition_stats stats() const;
  // partition_health bits (any thread) and a sentence naming the problems (any thread).
  uint32_t health() const { return health_.load(std::memory_order_acquire); }
  std::string health_detail() const;
  // Forgets idle producers (producer_state::expire, by the broker clock). Owner shard.
  size_t expire_producers();
  size_t producer_count() const { return producers_.size(); }
  shard_id owner() const { return owner_; }                     // any thread
  const std::string& topic() const override { return topic_; }  // any thread
  partition_id id() const { return id_; }                       // any thread

 private:
  struct durability_waiter {
    offset upto;
    asio::any_completion_handler<void(errc)> handler;
  };

  struct pending_control {
    offset base;
    offset last;
    std::vector<subscription::control_op> ops;
    std::function<void(result<void>)> done;
  };
  struct sub_slot {
    std::unique_ptr<subscription::dispatcher> d;
    offset saved_applied{0};    // applied_upto of its newest checkpoint on disk
    uint64_t journal_next = 0;  // sequence of its next delivery journal record
    std::string journal_key;    // journal_prefix(id), kept: a record is written per delivery round
  };

  partition(std::string topic, partition_id id, partition_config cfg, runtime::shard_set& rt, shard_id owner,
            std::unique_ptr<log::partition_log> log);

  // subscription::partition_port
  int32_t partition_number() const override { return id_.value; }
  int64_t high_watermark() const override { return hwm_.load(std::memory_order_acquire); }
  int64_t log_start() const override;
  [[nodiscard]] result<void> read(int64_t from, size_t max_bytes, std::vector<std::byte>& out) override;
  void append_control(std::vector<subscription::control_op> ops, std::function<void(result<void>)> done) override;
  void dead_letter(subscription::dead_letter_request r, std::function<void(result<void>)> done) override;
  scheduler::wheel_driver& timers() override { return *timers_; }
  const ferry::clock& clock() const override { return clock_; }
  void post(std::function<void()> fn) override;
  void record_deliveries(uint64_t sub_id, std::span<const int64_t> offsets) override;

  struct delay_event {
    offset base;
    offset last;
    int64_t append_time = 0;
    std::vector<delay::pending_message> inserts;  // a produced batch's delayed messages
    std::vector<delay_key> released;              // a release batch's originals
  };
  void apply_pending_controls(offset durable, bool failed);
  void apply_delay_event(delay_event& ev);
  // Delayed messages of a stamped batch (due later than its append time).
  static std::vector<delay::pending_message> delayed_records(std::span<const std::byte> batch);
  [[nodiscard]] result<void> replay_delays(offset from);
  result<void> append_release(std::vector<std::byte> batch, std::vector<delay_key> released);
  void finish_cancel(int64_t offset, std::optional<int64_t> due, bool cancelled_before,
                     std::function<void(result<cancel_result>)> done);
  [[nodiscard]] result<void> replay_controls(sub_slot& s, offset from);
  offset applied_upto() const;
  void start_checkpoints();
  asio::awaitable<void> save_checkpoints(bool all);

  void maybe_start_sync();
  void sync_done(const log::pending_sync& s, const result<void>& r);
  void advance_hwm(offset to);
  asio::awaitable<errc> wait_durable(offset upto);
  void start_interval_sync();

  std::string topic_;
  partition_id id_;
  partition_config cfg_;
  runtime::shard_set& rt_;
  shard_id owner_;
  std::unique_ptr<log::partition_log> log_;
  producer_state producers_;
  std::deque<durability_waiter> durability_waiters_;
  struct data_waiter {
    offset from;
    std::function<void()> wake;
  };
  std::unordered_map<uint64_t, data_waiter> data_waiters_;
  uint64_t next_waiter_ = 1;
  std::atomic<int64_t> hwm_{0};
  // Health: recomputed on the owner shard when something fails (or recovers).
  void refresh_health();
  void note_append_error(const error& e);
  std::atomic<uint32_t> health_{0};
  bool disk_full_ = false;
  mutable std::mutex health_mu_;
  std::string health_detail_;  // under health_mu_
  bool sync_running_ = false;
  bool closing_ = false;
  std::unique_ptr<asio::steady_timer> interval_timer_;

  const ferry::clock& clock_ = broker_clock();
  std::unique_ptr<scheduler::wheel_driver> timers_;
  std::map<uint64_t, sub_slot> subs_;
  std::deque<pending_control> pending_controls_;  // appended, not yet durable, in offset order
  std::unique_ptr<asio::steady_timer> checkpoint_timer_;
  bool checkpoint_running_ = false;

  std::unique_ptr<delay_scheduler> delays_;
  // Produces held back while the delay index is too far behind (in arrival order).
  std::deque<asio::any_completion_handler<void()>> gate_;
  asio::awaitable<void> wait_gate();
  void open_gate();
  error delay_index_failed() const;
  std::deque<delay_event> delay_events_;                         // appended, not yet durable, in offset order
  std::unordered_map<int64_t, cancel_outcome> cancel_outcomes_;  // decided at apply, read by the caller
};

}  // namespace ferry::partition
