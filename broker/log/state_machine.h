#pragma once
// state_machine: what is applied from a partition's committed log (the subscriptions' ack state,
// the delay index, later anything else), batch by batch in offset order. The partition's commit
// pipeline (broker/partition/commit_pipeline.h) drives it; its contract is there.
#include <cstdint>
#include <span>

#include "schema/record_batch.h"
#include "schema/types.h"

namespace ferry::log {

// What the appending side knows of a batch without decoding its records.
enum class batch_hint : uint8_t {
  none,          // a producer batch without delivery delays (the protocol layer checked every record)
  maybe_delays,  // it may carry delivery delays (the producer set some, or nobody looked: replay)
};

// A state machine of the committed log.
class state_machine {
 public:
  virtual ~state_machine() = default;
  // Whether apply() needs this batch (a header check; `hint` as above).
  virtual bool wants(const wire::batch_header& h, batch_hint hint) const = 0;
  // Applies one committed batch: `batch` is the whole batch as stored (header stamped).
  virtual void apply(const wire::batch_header& h, std::span<const std::byte> batch) = 0;
  // Every batch below `c` has been applied (called after the batches of a commit).
  virtual void committed(offset c) {}
};

}  // namespace ferry::log
