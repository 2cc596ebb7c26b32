#pragma once
// Metrics of the partition layer (one probe for all partitions of the process).
#include <string>
#include <utility>

#include "broker/runtime/metrics.h"

namespace ferry::partition {

struct probe {
  metrics::counter& appended_batches = metrics::get_counter("ferry_appended_batches_total", "Record batches appended");
  metrics::counter& appended_records = metrics::get_counter("ferry_appended_records_total", "Records appended");
  metrics::counter& appended_bytes =
      metrics::get_counter("ferry_appended_bytes_total", "Bytes of record batches appended");
  metrics::counter& append_errors = metrics::get_counter("ferry_append_errors_total", "Failed appends");
  metrics::counter& duplicates =
      metrics::get_counter("ferry_duplicate_batches_total", "Producer retries recognised as duplicates");
  metrics::counter& out_of_order =
      metrics::get_counter("ferry_out_of_order_batches_total", "Batches refused for a sequence gap");
  metrics::counter& fsyncs = metrics::get_counter("ferry_fsyncs_total", "Group-commit fdatasync calls");
  metrics::histogram& fsync_latency = metrics::get_histogram("ferry_fsync_seconds", "Group-commit fdatasync latency");
  metrics::histogram& produce_latency = metrics::get_histogram(
      "ferry_partition_produce_seconds", "Append until durable, per batch, on the partition's shard");
  metrics::counter& control_batches =
      metrics::get_counter("ferry_control_batches_total", "Control batches (acks, dead-letter moves, seeks) appended");
  metrics::counter& checkpoints =
      metrics::get_counter("ferry_subscription_checkpoints_total", "Subscription state checkpoints saved");
  metrics::counter& journal_records = metrics::get_counter(
      "ferry_delivery_journal_records_total", "Delivery journal records written (one per round of deliveries)");
  metrics::counter& journal_errors =
      metrics::get_counter("ferry_delivery_journal_errors_total", "Delivery journal writes that failed");
  metrics::counter& backpressure_waits = metrics::get_counter(
      "ferry_delay_backpressure_waits_total", "Produces held back because the delay index's writes were behind");
  metrics::counter& producers_expired =
      metrics::get_counter("ferry_producers_expired_total", "Idle producer ids forgotten (producer state expiry)");
  metrics::counter& fetched_bytes =
      metrics::get_counter("ferry_fetched_bytes_total", "Bytes of record batches returned by fetch");

  // ferry_partition_problem{topic, partition, problem} is 1 while the partition has the problem
  // (partition_health bits: log_failed, corrupt, disk_full, delay_index_failed), else 0.
  void set_health(const std::string& topic, int32_t partition, uint32_t flags) {
    static constexpr std::pair<uint32_t, const char*> problems[] = {
        {1, "log_failed"}, {2, "corrupt"}, {4, "disk_full"}, {8, "delay_index_failed"}};
    for (auto [bit, name] : problems) {
      std::string labels =
          "topic=\"" + topic + "\",partition=\"" + std::to_string(partition) + "\",problem=\"" + name + "\"";
      metrics::get_gauge("ferry_partition_problem", "1 while the partition has this problem", labels)
          .set((flags & bit) != 0 ? 1 : 0);
    }
  }

  static probe& get() {
    static probe p;
    return p;
  }
};

}  // namespace ferry::partition
