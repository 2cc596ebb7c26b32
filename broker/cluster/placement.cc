#include "broker/cluster/placement.h"

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>

namespace ferry::cluster {

std::vector<broker_load> loads_of(const metadata_image& image) {
  std::vector<broker_load> out;
  out.reserve(image.brokers().size());
  for (const auto& [n, b] : image.brokers()) out.push_back(broker_load{n, b.state, 0, 0});
  // brokers() is ordered by node id, so `out` is too: find by binary search.
  auto find = [&out](node_id n) {
    return std::lower_bound(out.begin(), out.end(), n, [](const broker_load& l, node_id v) { return l.node < v; });
  };
  for (const auto& [name, t] : image.topics()) {
    for (const auto& a : t.entry.assignments) {
      for (size_t i = 0; i < a.replicas.size(); ++i) {
        auto it = find(a.replicas[i]);
        if (it == out.end() || it->node != a.replicas[i]) continue;
        ++it->replicas;
        if (i == 0) ++it->leaders;
      }
    }
  }
  return out;
}

result<std::vector<partition_assignment>> place_partitions(const std::vector<broker_load>& brokers,
                                                           int32_t first_partition, int32_t count,
                                                           int32_t replication) {
  if (replication < 1) return fail(errc::invalid_argument, "replication factor must be at least 1");
  if (count < 0) return fail(errc::invalid_argument, "cannot place a negative number of partitions");
  std::vector<broker_load> alive;
  for (const broker_load& b : brokers)
    if (b.state == broker_state::alive) alive.push_back(b);
  if (alive.size() < static_cast<size_t>(replication))
    return fail(errc::invalid_argument, "replication factor " + std::to_string(replication) + " needs " +
                                            std::to_string(replication) + " alive brokers; " +
                                            std::to_string(alive.size()) + " alive, " +
                                            std::to_string(brokers.size() - alive.size()) + " fenced");
  // Sorted once by node id, so every min_element below breaks ties by the lowest id.
  std::sort(alive.begin(), alive.end(), [](const broker_load& a, const broker_load& b) { return a.node < b.node; });
  std::vector<partition_assignment> out;
  out.reserve(static_cast<size_t>(count));
  std::vector<bool> chosen(alive.size());
  for (int32_t p = 0; p < count; ++p) {
    partition_assignment a;
    a.partition = first_partition + p;
    std::fill(chosen.begin(), chosen.end(), false);
    for (int32_t r = 0; r < replication; ++r) {
      // `alive` is in node id order and only a strictly better broker replaces `best`, so equal
      // loads go to the lowest node id.
      size_t best = alive.size();
      for (size_t i = 0; i < alive.size(); ++i) {
        if (chosen[i]) continue;
        if (best == alive.size()) {
          best = i;
          continue;
        }
        const broker_load& x = alive[i];
        const broker_load& y = alive[best];
        bool better = r == 0 ? std::tie(x.leaders, x.replicas) < std::tie(y.leaders, y.replicas)
                             : std::tie(x.replicas, y.leaders) < std::tie(y.replicas, x.leaders);
        if (better) best = i;
      }
      chosen[best] = true;
      ++alive[best].replicas;
      if (r == 0) ++alive[best].leaders;
      a.replicas.push_back(alive[best].node);
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace ferry::cluster
