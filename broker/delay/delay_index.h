#pragma once
// delay_index: the delayed messages of every partition that are not due yet, in a RocksDB
// database of their own (<data-dir>/delay), ordered by (due time, offset) (DESIGN.md "Scheduler";
// byte formats in schema/delay.md). One index per partition, shared by all its subscriptions.
//
// It is a state machine of the partition's log: the partition applies, in log order, an insert
// for every delayed message that becomes durable and a remove for every one released (fell due)
// or cancelled, each batch of changes atomically with the log offset below which every change is
// applied (applied_upto). A crash loses at most the newest unsynced batches; the partition then
// applies the log again from the applied_upto that survived. The index holds each message's key,
// value and headers, so the log segment it came from can be deleted by retention before it is due.
//
// Blocking (RocksDB): call it on the disk pool, never on a shard. Thread-safe. RocksDB stays
// inside delay_index.cc.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "schema/result.h"

namespace ferry::delay {

// A delayed message as the index keeps it: enough to release it without the log.
struct pending_message {
  int64_t due = 0;          // ms since the epoch, broker clock
  int64_t offset = 0;       // of the original in the partition's log
  int64_t append_time = 0;  // of the original
  int64_t timestamp = 0;    // the producer's
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  size_t bytes() const;  // rough memory footprint
};

struct index_op {
  enum class kind : uint8_t { insert, remove };
  kind what = kind::insert;
  pending_message message;  // insert: the whole message; remove: due and offset
  bool cancelled = false;   // remove: by a cancel (leaves a marker so a second cancel says so)
};

// A delayed message's place in due order: (due time, offset).
using delay_key = std::pair<int64_t, int64_t>;

struct partition_key {
  uint64_t topic_id = 0;
  int32_t partition = 0;
};

struct index_state {
  int64_t applied_upto = 0;  // every change from log offsets below this is applied
  int64_t pending = 0;       // messages in the index
};

class delay_index {
 public:
  struct options {
    size_t write_buffer_bytes = 16u << 20;
    size_t block_cache_bytes = 8u << 20;
  };
  [[nodiscard]] static result<std::unique_ptr<delay_index>> open(const std::filesystem::path& dir, options o);
  [[nodiscard]] static result<std::unique_ptr<delay_index>> open(const std::filesystem::path& dir) {
    return open(dir, options{});
  }
  virtual ~delay_index() = default;

  // Applies `ops` in order and sets the partition's state, atomically. Not synced (sync()).
  [[nodiscard]] virtual result<void> apply(partition_key p, std::span<const index_op> ops, index_state after) = 0;
  [[nodiscard]] virtual result<index_state> state(partition_key p) = 0;
  // Pending messages with (due, offset) > (after_due, after_offset) and due < due_before, ascending,
  // at most max_count and about max_bytes.
  [[nodiscard]] virtual result<std::vector<pending_message>> load(partition_key p, int64_t after_due,
                                                                  int64_t after_offset, int64_t due_before,
                                                                  size_t max_count, size_t max_bytes) = 0;
  // The due time of a pending message, or nullopt.
  [[nodiscard]] virtual result<std::optional<int64_t>> due_of(partition_key p, int64_t offset) = 0;
  // Whether the message was removed by a cancel.
  [[nodiscard]] virtual result<bool> cancelled(partition_key p, int64_t offset) = 0;
  // Everything applied so far survives a power loss once this returns.
  [[nodiscard]] virtual result<void> sync() = 0;
  // Deletes every key of the topic (it was deleted).
  [[nodiscard]] virtual result<void> drop_topic(uint64_t topic_id) = 0;
};

}  // namespace ferry::delay
