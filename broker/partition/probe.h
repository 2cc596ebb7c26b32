#pragma once
// Metrics of the partition layer (one probe for all partitions of the process).
#include "broker/runtime/metrics.h"

namespace ferry::partition {

struct probe {
  metrics::counter& appended_batches = metrics::get_counter("ferry_appended_batches_total", "Record batches appended");
  metrics::counter& appended_records = metrics::get_counter("ferry_appended_records_total", "Records appended");
  metrics::counter& appended_bytes = metrics::get_counter("ferry_appended_bytes_total", "Bytes of record batches appended");
  metrics::counter& append_errors = metrics::get_counter("ferry_append_errors_total", "Failed appends");
  metrics::counter& duplicates = metrics::get_counter("ferry_duplicate_batches_total", "Producer retries recognised as duplicates");
  metrics::counter& out_of_order = metrics::get_counter("ferry_out_of_order_batches_total", "Batches refused for a sequence gap");
  metrics::counter& fsyncs = metrics::get_counter("ferry_fsyncs_total", "Group-commit fdatasync calls");
  metrics::histogram& fsync_latency = metrics::get_histogram("ferry_fsync_seconds", "Group-commit fdatasync latency");
  metrics::histogram& produce_latency =
      metrics::get_histogram("ferry_partition_produce_seconds", "Append until durable, per batch, on the partition's shard");
  metrics::counter& control_batches =
      metrics::get_counter("ferry_control_batches_total", "Control batches (acks, dead-letter moves, seeks) appended");
  metrics::counter& checkpoints =
      metrics::get_counter("ferry_subscription_checkpoints_total", "Subscription state checkpoints saved");
  metrics::counter& fetched_bytes = metrics::get_counter("ferry_fetched_bytes_total", "Bytes of record batches returned by fetch");

  static probe& get() {
    static probe p;
    return p;
  }
};

}  // namespace ferry::partition
