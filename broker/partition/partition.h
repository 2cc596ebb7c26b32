#pragma once
// partition: one partition of a topic hosted on this broker (a replica). It owns, and joins:
//   - the segmented log (broker/log) and group commit: appends are made durable by one fdatasync
//     for everything queued behind it;
//   - producer state (producer_state.h): idempotent produce, updated at append;
//   - the commit pipeline (commit_pipeline.h): the one apply path. When the commit index moves
//     (today: durable on this broker), the state machines are applied from the committed batches
//     in offset order, and the high-water mark moves. The machines: the subscriptions' state
//     (subscription_host.h) and the delay index (broker/delay/delay_machine.h);
//   - the leader services (leader_services.h): subscription delivery and delayed-message releases,
//     started and stopped with leadership (today: started once the partition is open);
//   - the readers waiting for new data, retention, health.
//
// Control records: acks, dead-letter moves, seeks and cancels are appended to this log as control
// batches; the caller is answered once the batch is committed and applied. On open, each state
// machine resumes from its own saved state (checkpoint, delay index) and the pipeline replays the
// log after it through the same apply code.
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
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/base/clock.h"
#include "broker/delay/delay_machine.h"
#include "broker/log/log.h"
#include "broker/meta/subscription_config.h"
#include "broker/partition/commit_pipeline.h"
#include "broker/partition/leader_services.h"
#include "broker/partition/probe.h"
#include "broker/partition/producer_state.h"
#include "broker/partition/subscription_host.h"
#include "broker/subscription/dispatcher.h"
#include "schema/record_batch.h"
#include "schema/result.h"
#include "schema/types.h"

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
  delay::delay_limits delay;                 // memory and release rate of delayed messages
  producer_limits producers;                 // idempotent-producer state: window, expiry, bound
};

// Whether a produced batch has deliver_at fields (the protocol layer knows from verify_batch).
enum class batch_delays { none, some };

using delay::cancel_outcome;
using delay::cancel_result;

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

class partition : public std::enable_shared_from_this<partition>,
                  private subscription::partition_port,
                  private delay::cancel_port {
 public:
  // Opens and recovers the partition's log in cfg.log.dir, rebuilds producer state from it, brings
  // the delay index up to date and starts the leader services. Call on the owner shard. `rt` must
  // outlive the partition.
  [[nodiscard]] static result<std::shared_ptr<partition>> open(std::string topic, partition_id id, partition_config cfg,
                                                               runtime::shard_set& rt, shard_id owner);
  ~partition() override;
  partition(const partition&) = delete;
  partition& operator=(const partition&) = delete;

  // Appends a verified batch (wire::verify_batch passed; `h` is its header). Deduplicates by
  // (producer id, sequence). Completes after the batch is committed (ack_level::durable, with
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

  // Stops accepting produces, waits for the sync in flight, stops the leader services, saves the
  // subscriptions' checkpoints, syncs and closes the log.
  asio::awaitable<void> close();

  // ---- subscriptions (owner shard) ----
  // Adds a subscription: from `saved` (its checkpoint and delivery journal) if there is one, else
  // from its start offset on this partition. `existing`: it existed before (start-up), so the
  // control batches after the checkpoint (or after its start offset, without one) are applied
  // again from the log; a brand-new subscription has none.
  enum class subscription_origin { created, existing };
  using saved_subscription = subscription_host::saved_subscription;
  [[nodiscard]] result<void> add_subscription(const meta::subscription_record& rec, saved_subscription saved,
                                              subscription_origin origin);
  void remove_subscription(uint64_t sub_id);
  // The subscription's delivery engine, or null (unknown here, or this broker does not lead).
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
  // Cancels the delayed message at `offset` (delay_machine.h); `done` on this shard with the
  // outcome once decided (after the cancel record is committed when one is needed).
  void cancel(int64_t offset, std::function<void(result<cancel_result>)> done);
  delay::delay_scheduler* delays() { return delays_.get(); }

  // Key of this partition's checkpoint for `sub_id` in the meta store, and of its journal records.
  std::string checkpoint_key(uint64_t sub_id) const { return subs_.checkpoint_key(sub_id); }
  std::string journal_prefix(uint64_t sub_id) const { return subs_.journal_prefix(sub_id); }
  static std::string checkpoint_prefix(uint64_t topic_id) { return subscription_host::checkpoint_prefix(topic_id); }

  offset hwm() const { return offset{hwm_.load(std::memory_order_acquire)}; }  // any thread
  partition_stats stats() const;
  // partition_health bits (any thread) and a sentence naming the problems (any thread).
  uint32_t health() const { return health_.load(std::memory_order_acquire); }
  // "ok", or the problems' names, comma-separated ("corrupt,disk_full").
  static std::string health_names(uint32_t health);
  std::string health_detail() const;
  // Forgets idle producers (producer_state::expire, by the broker clock). Owner shard.
  size_t expire_producers();
  size_t producer_count() const { return producers_.size(); }
  leader_services& services() { return services_; }

  shard_id owner() const { return owner_; }                     // any thread
  const std::string& topic() const override { return topic_; }  // any thread
  partition_id id() const { return id_; }                       // any thread
  // This partition's metric series ({topic, partition}); updates from any thread.
  partition_probe& series() { return series_; }

 private:
  struct commit_waiter {
    offset upto;
    asio::any_completion_handler<void(errc)> handler;
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
  void record_deliveries(uint64_t sub_id, std::span<const int64_t> offsets, std::function<void()> journaled) override;

  // delay::cancel_port
  std::string message_id(int64_t offset) const override;
  [[nodiscard]] result<void> read_batch(int64_t offset, std::vector<std::byte>& out) override;
  void append_cancel(int64_t offset, int64_t due, std::function<void(result<void>)> done) override;

  [[nodiscard]] result<void> open_delays();
  result<void> append_release(std::vector<std::byte> batch);
  void start_checkpoints();
  asio::awaitable<void> save_checkpoints(bool all);

  // Appends a broker-built batch (control, release) and queues it in the pipeline.
  result<log::append_info> append_own(std::vector<std::byte> batch);
  void maybe_start_sync();
  void sync_done(const log::pending_sync& s, const result<void>& r);
  void on_high_watermark(offset to);
  // Resolves commit waiters up to the commit index; the rest with the error after a log failure or
  // when `closed` (the partition closes: they will not commit now).
  void run_commit_waiters(bool closed);
  void wait_commit(offset upto, std::function<void(result<void>)> done);
  asio::awaitable<errc> wait_committed(offset upto);
  void start_interval_sync();

  std::string topic_;
  partition_id id_;
  partition_probe series_;
  partition_config cfg_;
  runtime::shard_set& rt_;
  shard_id owner_;
  std::unique_ptr<log::partition_log> log_;
  producer_state producers_;
  std::deque<commit_waiter> commit_waiters_;
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
  void note_read_error(const error& e);
  // The log end, or where damage starts if the log is corrupt (what start-up may replay).
  offset readable_end() const;
  std::atomic<uint32_t> health_{0};
  bool disk_full_ = false;
  mutable std::mutex health_mu_;
  std::string health_detail_;  // under health_mu_
  bool sync_running_ = false;
  bool closing_ = false;
  std::unique_ptr<asio::steady_timer> interval_timer_;

  const ferry::clock& clock_ = broker_clock();
  std::unique_ptr<scheduler::wheel_driver> timers_;  // leases and backoffs of the subscriptions
  commit_pipeline pipeline_;
  subscription_host subs_;
  std::unique_ptr<asio::steady_timer> checkpoint_timer_;

  std::unique_ptr<delay::delay_scheduler> delays_;
  std::unique_ptr<delay::delay_machine> delay_machine_;
  leader_services services_;
  // Produces held back while the delay index is too far behind (in arrival order).
  std::deque<asio::any_completion_handler<void()>> gate_;
  asio::awaitable<void> wait_gate();
  void open_gate();
  error delay_index_failed() const;
};

}  // namespace ferry::partition
