#pragma once
// Metrics of the partition layer: `probe` holds the process-wide series (one for all partitions),
// `partition_probe` the series of one partition, labelled {topic, partition}, which a partition
// owns and which leave /metrics with it (a deleted topic's series go when its partitions do).
//
// Labelled per partition, because an operator asks "which partition": what was appended and
// fetched, and its problems. Process-wide (one series per broker), because they are about the
// disk or the broker rather than one partition, or rare: errors, fsyncs and their latency, the
// produce latency histogram (per-partition counts are in ferry_appended_batches_total), control
// batches, checkpoints, the journal, producer expiry. README.md, "Metrics", has the cardinality.
#include <array>
#include <cstdint>
#include <iterator>
#include <mutex>
#include <string>
#include <utility>

#include "broker/runtime/metrics.h"

namespace ferry::partition {

struct probe {
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

  static probe& get() {
    static probe p;
    return p;
  }
};

// One partition's series, labelled {topic, partition}. Updates from any thread (fetch counts its
// bytes on the connection's shard); set_health() from any thread too (it takes a mutex: rare).
class partition_probe {
 public:
  partition_probe(const std::string& topic, int32_t partition)
      : set_({{"topic", topic}, {"partition", std::to_string(partition)}}),
        appended_batches(set_.get_counter("ferry_appended_batches_total", "Record batches appended")),
        appended_records(set_.get_counter("ferry_appended_records_total", "Records appended")),
        appended_bytes(set_.get_counter("ferry_appended_bytes_total", "Bytes of record batches appended")),
        fetched_bytes(set_.get_counter("ferry_fetched_bytes_total", "Bytes of record batches returned by fetch")) {}
  partition_probe(const partition_probe&) = delete;
  partition_probe& operator=(const partition_probe&) = delete;

 private:
  metrics::series_set set_;  // first: the references below point into it

 public:
  metrics::counter& appended_batches;
  metrics::counter& appended_records;
  metrics::counter& appended_bytes;
  metrics::counter& fetched_bytes;

  // ferry_partition_problem{topic, partition, problem} is 1 while the partition has the problem
  // (partition_health bits: log_failed, corrupt, disk_full, delay_index_failed), else 0. The four
  // series appear at the partition's first change of health (a healthy partition shows none).
  void set_health(uint32_t flags) {
    static constexpr std::pair<uint32_t, const char*> problems[] = {
        {1, "log_failed"}, {2, "corrupt"}, {4, "disk_full"}, {8, "delay_index_failed"}};
    std::lock_guard lk(health_mu_);
    for (size_t i = 0; i < std::size(problems); ++i) {
      auto [bit, name] = problems[i];
      if (problem_[i] == nullptr)
        problem_[i] = &set_.get_value_gauge("ferry_partition_problem", "1 while the partition has this problem",
                                            {{"problem", name}});
      problem_[i]->set((flags & bit) != 0 ? 1 : 0);
    }
  }

 private:
  std::mutex health_mu_;
  std::array<metrics::value_gauge*, 4> problem_{};
};

}  // namespace ferry::partition
