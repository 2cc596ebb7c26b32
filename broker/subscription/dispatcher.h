#pragma once
// dispatcher: the leader-only delivery engine of one subscription on one partition (DESIGN.md
// "Subscription"): which messages are out with which member (leases, redeliveries, ordered keys,
// dead letters), reading the subscription's replicated state.
//
// State machine. The durable state is a subscription_state (state.h): the ack_set, dead-letter
// and expiry counts, restored delivery counts. It changes only through apply_control() (control
// batches once committed, in log order), expire_below(), clamp_to_log_end() and restore(); the
// engine listens to it and finishes the deliveries those changes end. A dispatcher either owns its
// state (tests, the convenience constructor) or borrows one that outlives it (the partition keeps
// the state while engines start and stop with leadership). The methods below that change the
// state forward to it.
//
// Deliveries. Messages from the cursor on are read from the log into a bounded window of entries.
// Each entry is ready (to be sent), in flight (leased to one member until its deadline), backing
// off (waiting for its redelivery time), blocked (ordered keys: waiting for the previous message
// of its key), acking (an ack is being made durable) or dead-lettering. One timer entry per
// message, on the partition's timing wheel, serves the lease, the backoff and their updates in
// place. Leases and backoffs are not durable: after a restart every unacknowledged message is
// delivered again, with its delivery count plus one. Delivery counts are exact across a crash of
// the process: each round of deliveries is journaled (partition_port::record_deliveries, unsynced)
// before it is sent, and restore_deliveries() adds the rounds after the checkpoint back.
//
// Delayed messages: a record due later than its batch's append time is the delay index's (the
// partition keeps it and releases a copy into the log when it falls due): the dispatcher counts it
// as acknowledged and skips it. Every record is checked against its due time at the last step
// before it goes to a member: one not due yet (the wall clock stepped back) waits, in order.
//
// Ordered keys: while a message of a key is not acknowledged or dead-lettered, later messages of
// that key stay blocked, whatever happens to it (redeliveries, members leaving). Keys are told
// apart by a 64-bit hash of the key bytes; two keys with the same hash are ordered together,
// which costs parallelism, never order. Keyless messages are never blocked.
//
// Flow control: a message goes to a member only if it takes one message (and the record's bytes)
// of the member's credit (member_link::try_take), so the broker never sends more than granted.
// Members are served round-robin, messages in order: redeliveries first, then new ones by offset.
//
// Threading: everything here runs on the partition's shard, except member_link's credit and
// close flag, which any thread may touch.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "broker/base/clock.h"
#include "broker/meta/subscription_config.h"
#include "broker/scheduler/wheel.h"
#include "broker/subscription/ack_set.h"
#include "broker/subscription/control.h"
#include "broker/subscription/state.h"
#include "schema/result.h"

namespace ferry::scheduler {
class wheel_driver;
}

namespace ferry::subscription {

// Timer entries of the partition's timing wheel (scheduler/wheel.h).
using scheduler::timed_entry;

// Log bytes read by a dispatcher; deliveries point into it, so it is shared with members' shards.
struct chunk {
  std::vector<std::byte> bytes;
};

struct delivered_message {
  int64_t offset = 0;
  int32_t delivery_count = 0;
  int64_t first_timestamp = 0;
  int64_t append_time = 0;
  uint16_t batch_attributes = 0;
  std::shared_ptr<const chunk> data;
  uint32_t record_pos = 0;  // the record (length prefix included) is data->bytes[pos, pos + len)
  uint32_t record_len = 0;
  std::span<const std::byte> record() const { return std::span(data->bytes).subspan(record_pos, record_len); }
};

// A member of a subscription, as the dispatchers of its partitions see it. Owned (shared) by the
// consumer session that joined; the protocol layer implements deliver().
class member_link {
 public:
  // ack_timeout_ms: the member's own lease length, or -1 for the subscription's.
  member_link(uint64_t id, std::string name, std::string peer, int64_t ack_timeout_ms)
      : id_(id), name_(std::move(name)), peer_(std::move(peer)), ack_timeout_ms_(ack_timeout_ms) {}
  virtual ~member_link() = default;
  member_link(const member_link&) = delete;
  member_link& operator=(const member_link&) = delete;

  uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  const std::string& peer() const { return peer_; }
  int64_t ack_timeout_ms() const { return ack_timeout_ms_; }

  // Credit, from any thread. bytes == 0 in add_credit's first grant means "no byte limit".
  void add_credit(int64_t messages, int64_t bytes);
  // Takes one message of `bytes` bytes from the credit if both counts allow it.
  bool try_take(size_t bytes);
  int64_t credit_messages() const { return credit_messages_.load(std::memory_order_relaxed); }
  int64_t credit_bytes() const { return credit_bytes_.load(std::memory_order_relaxed); }
  void set_byte_limit(bool limited) { bytes_limited_.store(limited, std::memory_order_relaxed); }

  bool closed() const { return closed_.load(std::memory_order_acquire); }
  void close() { closed_.store(true, std::memory_order_release); }

  // Hands deliveries of partition `partition` to the member. Called on a partition's shard; the
  // implementation moves them to the member's own shard. Must not call back into the dispatcher.
  virtual void deliver(int32_t partition, std::vector<delivered_message> batch) = 0;

 private:
  uint64_t id_;
  std::string name_;
  std::string peer_;
  int64_t ack_timeout_ms_;
  std::atomic<int64_t> credit_messages_{0};
  std::atomic<int64_t> credit_bytes_{0};
  std::atomic<bool> bytes_limited_{true};
  std::atomic<bool> closed_{false};
};

// What a message moved to the dead-letter topic carries (the partition layer writes it).
struct dead_letter_request {
  std::string topic;  // the original topic
  int32_t partition = 0;
  int64_t offset = 0;
  std::string subscription;
  std::string dead_letter_topic;
  int32_t delivery_count = 0;
  std::string reason;
  int64_t timestamp = 0;  // the message's own (producer) timestamp
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
};

// What the dispatcher needs from its partition. Implemented by broker/partition; every call is
// made on the partition's shard and every callback must run there too.
class partition_port {
 public:
  virtual ~partition_port() = default;
  virtual const std::string& topic() const = 0;
  virtual int32_t partition_number() const = 0;
  virtual int64_t high_watermark() const = 0;  // consumers see offsets below it
  virtual int64_t log_start() const = 0;
  // Whole batches from the one containing `from`, up to the high-water mark (partition_log::read).
  [[nodiscard]] virtual result<void> read(int64_t from, size_t max_bytes, std::vector<std::byte>& out) = 0;
  // Appends control operations as one control batch. `done` runs once the batch is durable and
  // has been applied (apply_control) on every dispatcher of the partition, or with the error.
  virtual void append_control(std::vector<control_op> ops, std::function<void(result<void>)> done) = 0;
  // Writes a message to its dead-letter topic; `done` runs once it is durable there.
  virtual void dead_letter(dead_letter_request r, std::function<void(result<void>)> done) = 0;
  virtual scheduler::wheel_driver& timers() = 0;  // monotonic ms
  virtual const ferry::clock& clock() const = 0;
  // Runs `fn` later on this shard (never inline).
  virtual void post(std::function<void()> fn) = 0;
  // Journals one round of deliveries of subscription `sub_id`, so their delivery counts survive a
  // crash before the next checkpoint (restore_deliveries()). `journaled` runs on this shard (never
  // inline) once the record is written (or its write failed): the round is sent only then.
  virtual void record_deliveries(uint64_t sub_id, std::span<const int64_t> offsets,
                                 std::function<void()> journaled) = 0;
};

// Limits of the in-memory window of one dispatcher.
struct window_limits {
  size_t max_messages = 20'000;    // unacknowledged messages held in memory
  size_t max_bytes = 32u << 20;    // record bytes held
  size_t read_bytes = 256u << 10;  // log bytes read per refill
};

struct dispatcher_stats {
  int64_t cursor = 0;
  int64_t log_start = 0;
  int64_t high_watermark = 0;
  int64_t backlog = 0;
  int64_t in_flight = 0;
  int64_t acked_above_cursor = 0;
  int64_t redeliveries = 0;
  int64_t dead_lettered = 0;
  int64_t expired = 0;
  int64_t oldest_unacked_time = -1;
  size_t window = 0;
  size_t members = 0;
};

// One ack, nack or extend of a settle() call and its outcome.
struct settle_failure {
  int32_t partition = 0;
  int64_t offset = 0;
  errc code = errc::ok;
  std::string message;
};

struct settle_outcome {
  int32_t acked = 0;
  int32_t nacked = 0;
  int32_t extended = 0;
  std::vector<settle_failure> failures;
};

// Longest nack delay and lease extension a member may ask for (24 h).
inline constexpr int64_t max_settle_ms = 24LL * 3600 * 1000;

struct nack_item {
  int64_t offset = 0;
  int64_t delay_ms = -1;  // -1: the subscription's backoff
};
struct extend_item {
  int64_t offset = 0;
  int64_t extend_ms = -1;  // -1: the member's ack timeout
};

class dispatcher final : private state_listener {
 public:
  // `port` must outlive the dispatcher. With its own state, starting with cursor `start` (a new
  // subscription) until restore() loads a checkpoint.
  dispatcher(partition_port& port, meta::subscription_record rec, int64_t start, window_limits limits = {});
  // The delivery engine of `state`, which outlives it (the partition keeps the state, replicated,
  // while delivery engines come and go with leadership).
  dispatcher(partition_port& port, meta::subscription_record rec, subscription_state& state, window_limits limits = {});
  ~dispatcher();
  dispatcher(const dispatcher&) = delete;
  dispatcher& operator=(const dispatcher&) = delete;

  uint64_t sub_id() const { return rec_.id; }
  const meta::subscription_record& record() const { return rec_; }

  // ---- the state machine (subscription_state; these forward to it) ----
  subscription_state& sub_state() { return *state_; }
  // Applies a durable control batch at offsets [base, last]: its own offsets count as
  // acknowledged (they are never delivered), and the operations for this subscription change
  // the state.
  void apply_control(int64_t base, int64_t last, std::span<const control_op> ops);
  // Retention deleted everything below `log_start`: unacknowledged messages there are counted as
  // expired and the cursor moves up. Returns how many were lost.
  int64_t expire_below(int64_t log_start);
  // The checkpoint of the state, given the offset below which every control batch is applied.
  std::string checkpoint(int64_t applied_upto) const;
  // Loads a checkpoint; returns its applied_upto (control batches from there on must be applied
  // again). Call before any delivery.
  [[nodiscard]] result<int64_t> restore(std::string_view blob);
  // Adds one delivery to each unacknowledged offset of a delivery journal record written after the
  // checkpoint (record_deliveries): on start-up, after restore() and before the control batches
  // after the checkpoint are applied. Call before any delivery.
  [[nodiscard]] result<void> restore_deliveries(std::string_view record);
  // Start-up, after restore(): the log ends at `log_end`, below what the checkpoint knew (its tail
  // was lost). State at or above it is dropped, so new messages at those offsets are delivered.
  // Returns true if anything was dropped. Call before any delivery.
  bool clamp_to_log_end(int64_t log_end);
  int64_t cursor() const { return state_->cursor(); }
  bool dirty() const { return state_->dirty(); }
  void clear_dirty() { state_->clear_dirty(); }
  // Delivery counts of the messages in the window (for the state's checkpoint).
  std::vector<std::pair<int64_t, int32_t>> delivery_counts() const;

  // ---- members and deliveries ----
  void add_member(std::shared_ptr<member_link> m);
  // The member's leases end at once: its in-flight messages are redelivered to others.
  void remove_member(uint64_t member_id);
  // New data below the high-water mark, or new credit: schedules a dispatch pass.
  void wake();

  // Acks, nacks and extends of one member. Nacks and extends take effect at once; acks are
  // written as one control batch, and `done` runs once it is durable (at once if there is none).
  void settle(uint64_t member_id, std::span<const int64_t> acks, std::span<const nack_item> nacks,
              std::span<const extend_item> extends, std::function<void(settle_outcome)> done);

  // What a seek to `new_cursor` would change: (old cursor, new cursor, old backlog, new backlog).
  struct seek_preview {
    int64_t old_cursor, new_cursor, old_backlog, new_backlog;
  };
  seek_preview preview_seek(int64_t new_cursor) const;

  dispatcher_stats stats() const;
  std::vector<std::pair<uint64_t, int64_t>> member_in_flight() const;  // (member id, in flight)
  // Stops timers and drops every entry (the subscription is deleted or the partition closes).
  void shutdown();

 private:
  enum class state : uint8_t { free, ready, in_flight, backoff, blocked, acking, dead_lettering, not_due };
  struct entry;
  struct key_state {
    entry* active = nullptr;     // the message of this key that is out (any state but blocked)
    std::deque<entry*> waiting;  // blocked behind it, in offset order
  };
  struct member_slot {
    std::shared_ptr<member_link> link;
    int64_t in_flight = 0;
  };

  void schedule_pass();
  void pass();
  void fill_window();
  void deliver_ready();
  entry* next_ready();
  member_slot* pick_member(size_t bytes);
  void on_timer(entry& e);
  // A delivery failed (nack or lease expiry): dead-letter it or schedule its redelivery.
  void failed_delivery(entry& e, std::string reason, int64_t delay_ms);
  void make_ready(entry& e);
  void start_dead_letter(entry& e, std::string reason);
  // The message is acknowledged or dead-lettered for good: drop it and unblock its key.
  void finish(entry& e);
  void drop_all();
  void rehome(entry& e);  // copies the record into its own chunk so it does not pin a big one
  int64_t lease_ms(const member_slot& m) const;
  member_slot* find_member(uint64_t id);
  errc check_lease(uint64_t member_id, int64_t offset, entry*& out, std::string& why);
  entry* alloc_entry();
  void free_entry(entry* e);
  int64_t now_ms() const;

  // state_listener
  void on_settled(int64_t from, int64_t to) override;
  void on_seek(int64_t cursor) override;
  void on_expired_below(int64_t log_start) override;
  void on_changed() override;

  partition_port& port_;
  meta::subscription_record rec_;
  window_limits limits_;
  std::unique_ptr<subscription_state> own_state_;  // when constructed with a start offset
  subscription_state* state_ = nullptr;
  int64_t redeliveries_ = 0;
  std::vector<int64_t> journal_offsets_;  // reused by deliver_ready()

  int64_t read_pos_;  // next offset to read into the window
  std::unordered_map<int64_t, entry*> entries_;
  size_t window_bytes_ = 0;
  std::unordered_map<uint64_t, key_state> keys_;
  std::deque<std::pair<entry*, uint32_t>> redeliver_;  // (entry, generation)
  std::deque<std::pair<entry*, uint32_t>> fresh_;
  std::vector<member_slot> members_;
  size_t rr_ = 0;
  bool pass_scheduled_ = false;
  bool shut_down_ = false;
  std::shared_ptr<bool> alive_;  // callbacks posted to the shard check it

  std::vector<std::unique_ptr<entry[]>> pools_;
  std::vector<entry*> free_;
};

}  // namespace ferry::subscription
