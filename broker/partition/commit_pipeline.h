#pragma once
// commit_pipeline: the one apply path of a partition (DESIGN.md "State machines").
//
// The log reports a new commit index (today: the offset below which everything is durable on this
// broker; with replication: durable on a majority), and every registered state machine (the
// subscriptions' ack state, the delay index, anything later) is applied from the committed
// batches, in offset order, by the same code everywhere: on the live path from the batches queued
// as they were appended (no re-read of the log), at start-up from the log itself (replay()), and
// (later) on a follower from the batches it received.
//
// Contract:
//   - appended() is called for every batch appended to the log, in offset order, with its header as
//     stored. A batch that no machine wants() is not kept (the hot path of plain messages costs two
//     header checks). A wanted batch's bytes are kept (copied, or moved in) until it is applied.
//   - commit(c) applies, in offset order, every kept batch whose last offset is below c, to every
//     machine that wants it, then tells every machine the commit index (committed(c)), then sets
//     the high-water mark. commit indexes only grow.
//   - The high-water mark (what readers, subscriptions and the delay index may see) is set here and
//     nowhere else: the commit index, or, for a topic with fsync=interval (visibility::appended),
//     the log end as soon as a batch is appended (the documented lossy mode: readers may see what a
//     crash then loses; the machines still apply only committed batches).
//   - discard_from(o): kept batches at or above `o` will never commit (the log failed; with
//     replication: a divergent tail was truncated). They are dropped unapplied.
//   - replay(log, m, from, to) applies batches [from, to) of the log to machine `m` alone, through
//     the same apply(): start-up, and a machine added later (a new subscription).
//
// Producer (idempotence) state is not a machine here: it must know batches as soon as they are
// appended, committed or not, to recognise a retry of a batch still waiting for its commit
// (producer_state.h; it is rebuilt from the log after a truncation).
//
// Threading: the partition's shard. No I/O but replay() (reads the log).
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <vector>

#include "broker/log/state_machine.h"
#include "schema/record_batch.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::log {
class partition_log;
}

namespace ferry::partition {

using log::batch_hint;
using log::state_machine;

enum class visibility : uint8_t { committed, appended };

class commit_pipeline {
 public:
  // `publish(hwm)` runs after the high-water mark moved up (wake readers and deliveries).
  commit_pipeline(offset initial_hwm, visibility v, std::function<void(offset)> publish);

  // Machines are applied in the order they were added. Both must outlive the pipeline, or be
  // removed first.
  void add(state_machine& m);
  void remove(state_machine& m);

  void appended(const wire::batch_header& h, std::span<const std::byte> batch, batch_hint hint);
  void appended(const wire::batch_header& h, std::vector<std::byte>&& batch, batch_hint hint);
  void commit(offset c);
  void discard_from(offset from);
  [[nodiscard]] result<void> replay(log::partition_log& log, state_machine& m, offset from, offset to);

  offset committed() const { return committed_; }
  offset high_watermark() const { return hwm_; }
  // Calls fn(header, hint) for every kept batch not committed yet, in offset order.
  void for_each_pending(const std::function<void(const wire::batch_header&, batch_hint)>& fn) const;

 private:
  struct pending {
    wire::batch_header h;
    batch_hint hint;
    std::vector<std::byte> bytes;
  };
  bool wanted(const wire::batch_header& h, batch_hint hint) const;
  void set_hwm(offset o);

  visibility vis_;
  std::function<void(offset)> publish_;
  std::vector<state_machine*> machines_;
  std::deque<pending> pending_;
  offset committed_;
  offset hwm_;
};

}  // namespace ferry::partition
