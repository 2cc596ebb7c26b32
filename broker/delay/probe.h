#pragma once
// Metrics of delayed delivery (one probe for every partition's delay scheduler in the process).
#include "broker/runtime/metrics.h"

namespace ferry::delay {

struct probe {
  metrics::counter& delayed_scheduled =
      metrics::get_counter("ferry_delayed_scheduled_total", "Delayed messages stored for later delivery");
  metrics::counter& delayed_released =
      metrics::get_counter("ferry_delayed_released_total", "Delayed messages released (fell due, re-appended)");
  metrics::counter& delayed_cancelled =
      metrics::get_counter("ferry_delayed_cancelled_total", "Delayed messages cancelled");
  metrics::counter& delayed_loaded =
      metrics::get_counter("ferry_delayed_loaded_total", "Delayed messages loaded from the delay index into memory");
  metrics::counter& delayed_evicted =
      metrics::get_counter("ferry_delayed_evicted_total", "Delayed messages dropped from memory (still in the index)");
  metrics::histogram& delayed_release_lateness = metrics::get_histogram(
      "ferry_delayed_release_lateness_seconds", "Release time minus due time of the first message of a release batch");
  metrics::counter& delay_index_failures = metrics::get_counter(
      "ferry_delay_index_failures_total", "Delay index writes that failed (the partition then refuses produces)");

  static probe& get() {
    static probe p;
    return p;
  }
};

}  // namespace ferry::delay
