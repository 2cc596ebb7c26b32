#pragma once
// partition: one partition of a topic on this broker: its log, its producer (deduplication)
// state, group commit and the readers waiting for new data.
//
// Threading: a partition belongs to one shard (owner()); every member function must be called on
// that shard's thread, except the const accessors marked "any thread". Cross-shard callers
// co_spawn onto owner() and await (STYLE.md "Async model").
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/base/result.h"
#include "broker/base/types.h"
#include "broker/log/log.h"
#include "schema/record_batch.h"

namespace ferry::runtime {
class shard_set;
}

namespace ferry::partition {

namespace asio = boost::asio;

enum class fsync_policy { always, interval };
enum class ack_level { durable, leader };

struct partition_config {
  log::log_config log;
  fsync_policy fsync = fsync_policy::always;
  int64_t fsync_interval_ms = 1000;
};

struct produce_result {
  offset base{-1};
  int64_t append_time = -1;
  bool duplicate = false;
};

struct partition_stats {
  offset log_start{0};
  offset high_watermark{0};
  offset log_end{0};
  uint64_t size_bytes = 0;
  size_t segments = 0;
};

class partition : public std::enable_shared_from_this<partition> {
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
  asio::awaitable<result<produce_result>> produce(std::span<std::byte> batch, wire::batch_header h, ack_level acks);

  // Whole batches from the one containing `from`, up to the high-water mark (see log::read).
  [[nodiscard]] result<void> read(offset from, size_t max_bytes, std::vector<std::byte>& out);

  // Calls `wake` (once, on this shard) when the high-water mark moves above `from` or the
  // partition closes. `wake` must post to wherever the waiter lives.
  void on_data(offset from, std::function<void()> wake);

  [[nodiscard]] result<offset> offset_for_timestamp(int64_t ts);
  [[nodiscard]] result<log::retention_result> apply_retention(offset low_water_mark);

  // Stops accepting produces, waits for the sync in flight, syncs and closes the log.
  asio::awaitable<void> close();

  offset high_watermark() const { return offset{hwm_.load(std::memory_order_acquire)}; }  // any thread
  partition_stats stats() const;
  shard_id owner() const { return owner_; }        // any thread
  const std::string& topic() const { return topic_; }  // any thread
  partition_id id() const { return id_; }          // any thread

 private:
  struct producer_batch {
    int32_t first_seq;
    int32_t last_seq;
    int64_t base_offset;
    int64_t append_time;
  };
  struct producer_entry {
    std::deque<producer_batch> recent;  // newest at the back, at most producer_window entries
  };
  struct durability_waiter {
    offset upto;
    asio::any_completion_handler<void(errc)> handler;
  };

  partition(std::string topic, partition_id id, partition_config cfg, runtime::shard_set& rt, shard_id owner,
            std::unique_ptr<log::partition_log> log);

  void remember_batch(const wire::batch_header& h);
  void maybe_start_sync();
  void sync_done(log::pending_sync s, result<void> r);
  void advance_hwm(offset to);
  asio::awaitable<errc> wait_durable(offset upto);
  void start_interval_sync();

  std::string topic_;
  partition_id id_;
  partition_config cfg_;
  runtime::shard_set& rt_;
  shard_id owner_;
  std::unique_ptr<log::partition_log> log_;
  std::unordered_map<int64_t, producer_entry> producers_;
  std::deque<durability_waiter> durability_waiters_;
  std::vector<std::pair<offset, std::function<void()>>> data_waiters_;
  std::atomic<int64_t> hwm_{0};
  bool sync_running_ = false;
  bool closing_ = false;
  std::unique_ptr<asio::steady_timer> interval_timer_;
};

}  // namespace ferry::partition
