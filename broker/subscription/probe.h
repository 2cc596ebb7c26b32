#pragma once
// Metrics of the subscription layer: `probe` holds the process-wide series, `subscription_probe`
// those of one subscription, labelled {topic, subscription}. Each subscription_state (one
// subscription on one partition) holds a subscription_probe; the states of one subscription on
// its partitions share its series, which leave /metrics when the last of them goes (the
// subscription or its topic is deleted).
#include <string>

#include "broker/runtime/metrics.h"

namespace ferry::subscription {

struct probe {
  metrics::counter& delivery_batches = metrics::get_counter(
      "ferry_delivery_batches_total", "Delivery batches handed to members (one per member per pass)");

  static probe& get() {
    static probe p;
    return p;
  }
};

// One subscription's series. Updates from the partition's shard (any thread would do).
class subscription_probe {
 public:
  subscription_probe(const std::string& topic, const std::string& subscription)
      : set_({{"topic", topic}, {"subscription", subscription}}),
        delivered(set_.get_counter("ferry_deliveries_total", "Messages delivered to subscription members")),
        redeliveries(set_.get_counter("ferry_redeliveries_total", "Deliveries beyond a message's first")),
        acks(set_.get_counter("ferry_acks_total", "Messages acknowledged (durably)")),
        nacks(set_.get_counter("ferry_nacks_total", "Negative acknowledgements")),
        lease_expiries(set_.get_counter("ferry_lease_expiries_total", "Deliveries whose ack timeout expired")),
        dead_lettered(set_.get_counter("ferry_dead_lettered_total", "Messages moved to a dead-letter topic")),
        expired(set_.get_counter("ferry_subscription_expired_total",
                                 "Unacknowledged messages deleted by the retention limit")) {}
  subscription_probe(const subscription_probe&) = delete;
  subscription_probe& operator=(const subscription_probe&) = delete;

 private:
  metrics::series_set set_;  // first: the references below point into it

 public:
  metrics::counter& delivered;
  metrics::counter& redeliveries;
  metrics::counter& acks;
  metrics::counter& nacks;
  metrics::counter& lease_expiries;
  metrics::counter& dead_lettered;
  metrics::counter& expired;
};

}  // namespace ferry::subscription
