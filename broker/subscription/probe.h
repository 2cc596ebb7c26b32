#pragma once
// Metrics of the subscription layer (one probe for every subscription of the process).
#include "broker/runtime/metrics.h"

namespace ferry::subscription {

struct probe {
  metrics::counter& delivered =
      metrics::get_counter("ferry_deliveries_total", "Messages delivered to subscription members");
  metrics::counter& delivery_batches = metrics::get_counter(
      "ferry_delivery_batches_total", "Delivery batches handed to members (one per member per pass)");
  metrics::counter& redeliveries =
      metrics::get_counter("ferry_redeliveries_total", "Deliveries beyond a message's first");
  metrics::counter& acks = metrics::get_counter("ferry_acks_total", "Messages acknowledged (durably)");
  metrics::counter& nacks = metrics::get_counter("ferry_nacks_total", "Negative acknowledgements");
  metrics::counter& lease_expiries =
      metrics::get_counter("ferry_lease_expiries_total", "Deliveries whose ack timeout expired");
  metrics::counter& dead_lettered =
      metrics::get_counter("ferry_dead_lettered_total", "Messages moved to a dead-letter topic");
  metrics::counter& expired = metrics::get_counter("ferry_subscription_expired_total",
                                                   "Unacknowledged messages deleted by the retention limit");

  static probe& get() {
    static probe p;
    return p;
  }
};

}  // namespace ferry::subscription
