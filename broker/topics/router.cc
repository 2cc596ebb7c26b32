#include "broker/topics/router.h"

#include <mutex>
#include <string>

namespace ferry::topics {

leader_view router::leader_of(const topic& t, int32_t p) const {
  if (!any_elsewhere_.load(std::memory_order_acquire)) return leader_view{self_, 0};
  std::shared_lock lock(mu_);
  auto it = elsewhere_.find({t.id, p});
  return it == elsewhere_.end() ? leader_view{self_, 0} : it->second;
}

result<std::shared_ptr<partition::partition>> router::route(const topic& t, int32_t p, int32_t* leader_hint) const {
  if (leader_hint != nullptr) *leader_hint = unknown_leader;
  if (p < 0 || static_cast<size_t>(p) >= t.partitions.size())
    return fail(errc::unknown_partition, no_partition_message(t.name, p, t.partitions.size()));
  if (any_elsewhere_.load(std::memory_order_acquire)) {
    leader_view v = leader_of(t, p);
    if (v.node != self_) {
      if (leader_hint != nullptr) *leader_hint = v.node;
      std::string where =
          v.node == unknown_leader ? "no broker is known to lead it" : "broker " + std::to_string(v.node) + " leads it";
      return fail(errc::not_leader, "partition " + std::to_string(p) + " of topic '" + t.name +
                                        "' is not led by this broker (" + std::to_string(self_) + "): " + where +
                                        " (epoch " + std::to_string(v.epoch) + ")");
    }
  }
  return t.partitions[static_cast<size_t>(p)];
}

std::vector<std::shared_ptr<partition::partition>> router::led_here(const topic& t) const {
  std::vector<std::shared_ptr<partition::partition>> out;
  out.reserve(t.partitions.size());
  for (size_t i = 0; i < t.partitions.size(); ++i)
    if (leader_of(t, static_cast<int32_t>(i)).node == self_) out.push_back(t.partitions[i]);
  return out;
}

void router::set_leader(uint64_t topic_id, int32_t p, leader_view v) {
  std::unique_lock lock(mu_);
  if (v.node == self_)
    elsewhere_.erase({topic_id, p});
  else
    elsewhere_[{topic_id, p}] = v;
  any_elsewhere_.store(!elsewhere_.empty(), std::memory_order_release);
}

}  // namespace ferry::topics
