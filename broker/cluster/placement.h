#pragma once
// placement: which brokers get the replicas of new partitions (DESIGN.md "A cluster": "assigns each
// new partition's replicas to distinct brokers, balanced by count"). A pure function of the brokers
// and what they already host, so the controller's choice is reproducible and testable.
//
// For each new partition, in order:
//   - its first replica (the broker that serves it) is the alive broker serving the fewest
//     partitions, then hosting the fewest replicas, then with the lowest node id;
//   - each further replica is the alive broker not yet chosen for it hosting the fewest replicas,
//     then serving the MOST partitions, then with the lowest node id: among equally loaded
//     brokers, the ones that already serve more make the followers, which leaves the others free
//     to serve the next partitions (preferring the ones serving fewer, 10 partitions of factor 2
//     on 5 brokers came out 5/3 replicas instead of 4/4);
//   - the counts include the partitions placed before it in the same call.
// Fenced brokers get nothing. Racks are not considered yet.
#include <cstdint>
#include <vector>

#include "broker/cluster/metadata_image.h"
#include "broker/cluster/records.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::cluster {

struct broker_load {
  node_id node{0};
  broker_state state = broker_state::alive;
  int32_t replicas = 0;  // replicas it hosts
  int32_t leaders = 0;   // partitions it serves (it is their first replica)
};

// Every registered broker of `image` with the replicas and first replicas it holds, by node id.
[[nodiscard]] std::vector<broker_load> loads_of(const metadata_image& image);

// Replicas for partitions first_partition .. first_partition + count - 1, `replication` distinct
// alive brokers each. Errors: invalid_argument when replication < 1 or count < 0, or when fewer
// than `replication` brokers are alive (the message says how many are alive and fenced).
[[nodiscard]] result<std::vector<partition_assignment>> place_partitions(const std::vector<broker_load>& brokers,
                                                                         int32_t first_partition, int32_t count,
                                                                         int32_t replication);

}  // namespace ferry::cluster
