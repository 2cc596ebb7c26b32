#pragma once
// producer_state: the idempotent-producer state of one partition (schema/wire.md "Produce",
// idempotence): for every producer id, its most recent batches (sequence range, offset, append
// time), so a retried batch is recognised and answered with its original offset, and a gap in a
// producer's sequence is refused.
//
// It is a state machine of the log: remember() is called for every batch appended (on start-up
// for every batch still in the log, in offset order), so the state survives restarts. A producer
// whose newest batch is older than the expiry (by the batch's append time, stamped in the log)
// is forgotten by expire(), like Kafka's producer id expiration, so random producer ids do not
// grow memory without end; beyond max_producers the least recently active are forgotten first.
// A forgotten producer is treated as new: its next batch is accepted whatever its sequence.
//
// Pure and single-threaded (the partition's shard); no I/O.
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "schema/record_batch.h"

namespace ferry::partition {

struct producer_limits {
  // How many recent batches per producer are remembered for duplicate detection. At least the
  // client's max_in_flight (5), so any retried in-flight batch is recognised.
  size_t window = 16;
  int64_t expiry_ms = 24LL * 3600 * 1000;  // forget a producer idle this long (by append time)
  size_t max_producers = 200'000;          // per partition; the least recently active go first
};

class producer_state {
 public:
  struct batch {
    int32_t first_seq = 0;
    int32_t last_seq = 0;
    int64_t base_offset = 0;
    int64_t append_time = 0;
    int64_t next_offset() const { return base_offset + wire::sequence_distance(first_seq, last_seq) + 1; }
  };

  enum class verdict {
    accept,        // new producer, no sequence, or the next sequence: append it
    duplicate,     // already stored: answer with `original`
    out_of_order,  // a gap: an earlier batch of this producer is missing (retriable)
    too_old,       // older than the batches remembered: cannot tell, refuse
  };
  struct check_result {
    verdict v = verdict::accept;
    batch original;        // duplicate: the stored batch
    int32_t expected = 0;  // out_of_order / too_old: the sequence expected next
  };

  explicit producer_state(producer_limits limits = {}) : lim_(limits) {}

  // What to do with a batch from a producer (h.producer_id >= 0); batches without a producer id
  // are always accepted.
  check_result check(const wire::batch_header& h) const;
  // Records an appended batch (its header as stored: base offset and append time stamped).
  void remember(const wire::batch_header& h);
  // Forgets producers whose newest batch was appended before now_ms - expiry, and the least
  // recently active beyond max_producers. Returns how many were forgotten.
  size_t expire(int64_t now_ms);
  void clear() { producers_.clear(); }

  size_t size() const { return producers_.size(); }
  const producer_limits& limits() const { return lim_; }

 private:
  struct entry {
    std::vector<batch> recent;  // oldest first, at most lim_.window
    int64_t last_append = 0;
  };
  producer_limits lim_;
  std::unordered_map<int64_t, entry> producers_;
};

}  // namespace ferry::partition
