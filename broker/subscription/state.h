#pragma once
// subscription_state: the replicated state of one subscription on one partition (DESIGN.md "State
// machines"): which offsets are acknowledged or dead-lettered (an ack_set: a cursor and the ranges
// above it), how many were dead-lettered or expired by retention, and the delivery counts of
// unacknowledged messages that no delivery engine holds (from a checkpoint or the delivery
// journal). A pure state machine: no I/O, no timers, no members. It changes only through
// apply_control() (control batches, in log order, once committed: on every replica and again on
// start-up for what follows the checkpoint), expire_below() (retention), clamp_to_log_end()
// (start-up) and restore()/restore_deliveries() (start-up).
//
// The leader-only delivery engine (dispatcher) reads it, takes restored delivery counts as it
// windows messages, marks offsets it skips when reading the log (control batches, delayed
// originals), and listens for the changes that end deliveries (acks, dead letters, seeks,
// expiry) through state_listener.
//
// Checkpoint byte format: schema/control.md "Checkpoints". Threading: its partition's shard.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "broker/subscription/ack_set.h"
#include "broker/subscription/control.h"
#include "broker/subscription/probe.h"
#include "schema/result.h"

namespace ferry::subscription {

// Told about state changes that end deliveries (the delivery engine implements it).
class state_listener {
 public:
  virtual ~state_listener() = default;
  virtual void on_settled(int64_t from, int64_t to) = 0;  // acknowledged or dead-lettered: [from, to)
  virtual void on_seek(int64_t cursor) = 0;               // everything changed: start again at `cursor`
  virtual void on_expired_below(int64_t log_start) = 0;   // retention deleted what lies below
  virtual void on_changed() = 0;                          // the state moved: a dispatch pass may help
};

class subscription_state {
 public:
  // `sub_id` selects this subscription's operations in control batches; `what` names it in errors
  // and logs ("billing on orders/3"). A new subscription starts with every offset below `start`
  // acknowledged. Its metric series are labelled {topic, subscription} (subscription_probe).
  subscription_state(uint64_t sub_id, std::string what, int64_t start, const std::string& topic = {},
                     const std::string& subscription = {});

  void set_listener(state_listener* l) { listener_ = l; }
  state_listener* listener() const { return listener_; }

  // Applies a committed control batch at offsets [base, last]: its own offsets count as
  // acknowledged (they are never delivered), its operations for this subscription change the state.
  void apply_control(int64_t base, int64_t last, std::span<const control_op> ops);
  // Retention deleted everything below `log_start`: unacknowledged messages there are counted as
  // expired and the cursor moves up. Returns how many were lost.
  int64_t expire_below(int64_t log_start);
  // Start-up: the log ends at `log_end`, below what the saved state knew: forget what lies beyond.
  bool clamp_to_log_end(int64_t log_end);

  // The checkpoint: this state plus `engine_counts` (delivery counts of the messages the delivery
  // engine holds, which take precedence), with the offset below which every control batch has been
  // applied.
  std::string checkpoint(int64_t applied_upto, std::span<const std::pair<int64_t, int32_t>> engine_counts) const;
  // Loads a checkpoint; returns its applied_upto (control batches from there on are applied again).
  [[nodiscard]] result<int64_t> restore(std::string_view blob);
  // Adds one delivery to each unacknowledged offset of a delivery journal record.
  [[nodiscard]] result<void> restore_deliveries(std::string_view record);

  // ---- for the delivery engine ----
  const ack_set& acks() const { return acks_; }
  // Offsets the engine skips while reading the log (control batches, delayed originals the delay
  // index releases as copies): acknowledged, derived from the log itself.
  void mark_skipped(int64_t from, int64_t to) { acks_.add(from, to); }
  // The restored delivery count of `offset`, handed over to the engine (which now counts it).
  std::optional<int32_t> take_restored_count(int64_t offset);

  int64_t cursor() const { return acks_.cursor(); }
  int64_t dead_lettered() const { return dead_lettered_; }
  int64_t expired() const { return expired_; }
  bool dirty() const { return dirty_; }
  void mark_dirty() { dirty_ = true; }
  void clear_dirty() { dirty_ = false; }
  uint64_t sub_id() const { return sub_id_; }
  const std::string& what() const { return what_; }
  // This subscription's metric series (shared with its states on the other partitions).
  subscription_probe& series() { return series_; }

 private:
  uint64_t sub_id_;
  std::string what_;
  ack_set acks_;
  int64_t dead_lettered_ = 0;
  int64_t expired_ = 0;
  std::unordered_map<int64_t, int32_t> restored_counts_;
  bool dirty_ = false;
  state_listener* listener_ = nullptr;
  subscription_probe series_;
};

}  // namespace ferry::subscription
