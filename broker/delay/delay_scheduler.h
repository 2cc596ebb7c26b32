#pragma once
// delay_scheduler: the delayed messages of one partition (DESIGN.md "Delayed message",
// "Scheduler"), on the partition's shard.
//
// A message published with a due time later than its append time is kept by the partition's
// delay index (broker/delay, RocksDB) until it is due, and subscriptions skip it in the log. When
// it falls due it is *released*: a copy is appended to the partition's log (a batch with
// attr_released, header "ferry-delayed-id" naming the original), which every subscription then
// delivers like a message published at that moment. Cancelling appends a cancel control record.
//
// Memory is bounded: only the near horizon (what is due within `horizon_ms`, at most
// `max_loaded` messages) is in memory, on a wall-clock timing wheel; the rest waits in the index
// and is loaded, in due order, as the horizon moves. Releases are rate-limited (`release_rate`),
// so a catch-up after a restart does not starve immediate messages.
//
// The index is a state machine of the log: delay_machine (delay_machine.h) calls on_inserted /
// on_released / on_cancelled for every committed change in log order (and again, on start-up, for
// the log after the index's applied offset), then set_applied(committed). Writes to the index, its
// loads and syncs run on the `state` executor, in order; synced_upto() is the log offset the index
// is safe up to (the low-water mark must not pass it). Releases are leader-only work: they happen
// only while set_releasing(true) (the partition's leader services turn it on and off).
//
// Time comes from the injected clock only: due times on a wall-clock wheel, the periodic tick
// (loads, writes, syncs, clock-step checks) and the release rate limit on a monotonic wheel. A
// test drives both with a manual clock and wake(), running the executors to idle: no sleeps.
//
// Threading: every member function on the owner executor's thread.
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "broker/base/clock.h"
#include "broker/delay/delay_index.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::scheduler {
class wheel_driver;
}

namespace ferry::delay {

struct delay_limits {
  int64_t horizon_ms = 60'000;          // load what falls due within this
  int64_t direct_window_ms = 2'000;     // a new message due within this goes to memory at once
  size_t max_loaded = 100'000;          // messages in memory at most (soft: entries not yet in the index stay)
  size_t max_loaded_bytes = 64u << 20;  // and bytes of them (keys, values, headers; same softness)
  double release_rate = 50'000;         // releases per second at most
  size_t release_burst = 5'000;
  size_t max_release_batch = 1000;
  int64_t tick_ms = 20;              // clock-step check, loader and write cadence
  int64_t sync_interval_ms = 1000;   // index syncs
  int64_t removed_memory_ms = 5000;  // how long a release or cancel is remembered in memory
};

enum class cancel_outcome { cancelled, too_late, unknown };

class delay_scheduler {
 public:
  // Appends a release batch to the log (not durable yet) naming the released (due, offset)s; the
  // partition reports them back through on_released once durable.
  using release_fn = std::function<result<void>(std::vector<std::byte> batch, std::vector<delay_key> released)>;

  // `index` and `clk` must outlive the scheduler. `id_prefix` is "topic/partition/". `owner`: the
  // partition's executor (every call and callback runs there); `state`: where index writes, loads
  // and syncs run (a thread of their own in the broker: they block on RocksDB).
  delay_scheduler(delay_index& index, partition_key pk, std::string id_prefix, boost::asio::any_io_executor owner,
                  boost::asio::any_io_executor state, const ferry::clock& clk, delay_limits limits, release_fn release);
  ~delay_scheduler();
  delay_scheduler(const delay_scheduler&) = delete;
  delay_scheduler& operator=(const delay_scheduler&) = delete;

  // Start-up: the index's applied offset (a blocking read). The partition then replays the log
  // from there through the on_* calls and calls finish_replay(log end), which starts writing the
  // replayed changes (on the state thread, not blocking) and starts the timers.
  [[nodiscard]] result<int64_t> open();
  [[nodiscard]] result<void> finish_replay(int64_t log_end);

  // Durable changes, in log order; `base` is the log offset of the batch they come from.
  void on_inserted(int64_t base, std::vector<pending_message> msgs);
  void on_released(int64_t base, const std::vector<delay_key>& released);
  cancel_outcome on_cancelled(int64_t base, int64_t offset, int64_t due);
  void set_applied(int64_t durable);

  // Index writes are behind by more than the limit: the partition holds produces back (in order)
  // until on_drained() runs, so memory stays bounded whatever the publish rate.
  bool backlogged() const { return queued_ops_.size() + inflight_ops_ > max_backlog_ops; }
  // A write to the index failed: it is not written again until restart (the log keeps every
  // change; start-up applies it again). The drained callback runs once when this happens, so
  // produces held back by backpressure fail at once instead of waiting for ever.
  bool index_failed() const { return index_failed_; }
  void set_drained_callback(std::function<void()> fn) { drained_ = std::move(fn); }
  // The append time of the oldest batch with delayed messages that is not applied yet (INT64_MAX:
  // none). A message due at or before it may be released; a later one waits, because a message not
  // yet applied may be due before it (due order per key holds however late batches are applied).
  void set_release_barrier(std::function<int64_t()> fn) { barrier_ = std::move(fn); }
  static constexpr size_t max_backlog_ops = 200'000;

  // Cancel, before the control record is appended (see the .cc for the protocol). Returns
  // too_late if the message is being released now; otherwise marks it so no release takes it
  // while the cancel is in flight, and says whether memory knows its due time.
  struct precheck {
    std::optional<cancel_outcome> answer;  // decided already
    std::optional<int64_t> due;            // in memory: its due time
  };
  precheck begin_cancel(int64_t offset);
  void end_cancel(int64_t offset);  // the cancel was not appended after all

  int64_t synced_upto() const { return synced_upto_; }
  int64_t pending() const { return pending_; }
  // The earliest due time known in memory, or -1 (then ask the index).
  int64_t next_due_in_memory() const;
  size_t loaded() const { return mem_.size(); }
  size_t loaded_bytes() const { return mem_bytes_; }
  delay_index& index() { return index_; }
  const partition_key& key() const { return pk_; }

  // Leader-only: releases happen only while on (off at construction).
  void set_releasing(bool on);
  bool releasing() const { return releasing_; }
  // Re-reads the clock now (a test's manual clock, a clock step): fires what is due.
  void wake();

  // Stops the timers, writes what is left and syncs the index.
  boost::asio::awaitable<void> close();

 private:
  enum class state : uint8_t { waiting, due, releasing };
  struct entry;
  struct removed_mark {
    uint64_t write_pos;  // written once ops_written_ >= write_pos
    bool cancelled;
    int64_t at_mono_ms;
  };
  struct queued_op {
    index_op op;
    int64_t event_begin;  // log offset of the batch it comes from
    int delta;            // +1 insert, -1 remove (the pending count)
    bool far;             // an insert not in memory: unwritten_far_ holds its key until written
  };
  uint64_t queue_op(index_op op, int64_t event_begin, int delta, bool far);

  void add_to_memory(pending_message m, bool written);
  void erase_from_memory(std::unordered_map<int64_t, std::unique_ptr<entry>>::iterator it);
  // How full memory is: the larger of the count and byte fractions of their limits.
  double fill() const;
  void on_fire(entry& e);
  void schedule_release_pass();
  void release_pass();
  void evict_if_over();
  void tick();
  void maybe_load();
  void flush_writes();
  bool now_for_state_write();
  void maybe_sync();
  void forget(entry& e);
  int64_t mono_ms() const;

  delay_index& index_;
  partition_key pk_;
  std::string id_prefix_;
  boost::asio::any_io_executor owner_;
  boost::asio::any_io_executor state_ex_;
  const ferry::clock& clk_;
  delay_limits lim_;
  release_fn release_;
  std::unique_ptr<scheduler::wheel_driver> timers_;  // due times (wall clock)
  std::unique_ptr<scheduler::wheel_driver> ticks_;   // the tick and release waits (monotonic)

  // In memory: loaded or inserted messages, by offset; ordered key sets by state.
  std::unordered_map<int64_t, std::unique_ptr<entry>> mem_;
  size_t mem_bytes_ = 0;  // sum of pending_message::bytes() in mem_
  std::set<delay_key> waiting_;
  std::set<delay_key> due_;
  std::set<int64_t> cancel_pending_;
  std::unordered_map<int64_t, removed_mark> removed_;
  std::deque<std::pair<int64_t, int64_t>> removed_order_;  // (at_mono_ms, offset), oldest first

  // Loading: every index key <= loaded_upto_ is in memory (or removed).
  delay_key loaded_upto_{INT64_MIN, INT64_MAX};
  bool loading_ = false;
  std::set<delay_key> unwritten_far_;                       // inserted, not in memory, not written to the index yet
  std::unordered_map<int64_t, int64_t> unwritten_far_due_;  // the same, offset -> due (for cancels)
  std::set<delay_key> far_since_load_;                      // inserted (not in memory) while the running load scans

  // Index writes: ops queued, then posted in chunks (several in flight; the state thread runs them
  // in order). Positions count ops: an op is written once ops_written_ >= its position.
  std::deque<queued_op> queued_ops_;
  uint64_t ops_queued_ = 0;
  uint64_t ops_written_ = 0;
  size_t inflight_ops_ = 0;
  int inflight_writes_ = 0;
  int64_t posted_applied_ = 0;  // applied offset of the last posted write
  int64_t posted_pending_ = 0;  // pending count after the last posted write
  bool index_failed_ = false;
  std::function<void()> drained_;
  std::function<int64_t()> barrier_;
  bool waiting_barrier_ = false;
  bool blocked_by_load_ = false;  // a due message waits for the loader to pass it
  int64_t applied_ = 0;           // durable offset passed through on_*
  int64_t written_applied_ = 0;   // applied_ of the last completed write
  int64_t synced_upto_ = 0;
  bool syncing_ = false;
  int64_t last_sync_mono_ = 0;
  int64_t last_state_write_mono_ = 0;
  int64_t pending_ = 0;  // messages in the index (after the queued ops)

  // Release rate limit (token bucket).
  double tokens_;
  int64_t tokens_at_mono_ms_;
  bool pass_scheduled_ = false;
  struct timed;  // the tick and release-wait entries on ticks_
  std::unique_ptr<timed> tick_entry_;
  std::unique_ptr<timed> release_entry_;
  struct idle_signal;  // wakes close() when the last write, load or sync in flight completes
  std::unique_ptr<idle_signal> idle_;
  void note_done();
  bool busy() const { return inflight_writes_ > 0 || syncing_ || loading_; }
  bool releasing_ = false;
  bool closed_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ferry::delay
