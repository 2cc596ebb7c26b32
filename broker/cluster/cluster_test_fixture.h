#pragma once
// Builders shared by the broker/cluster unit tests: records as entry bytes.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "broker/cluster/metadata_image.h"
#include "broker/cluster/records.h"

namespace ferry::cluster::testing {

inline std::string registration(int32_t node, uint64_t incarnation) {
  broker_registration r;
  r.node = node_id{node};
  r.incarnation = incarnation;
  r.client_address = "10.0.0." + std::to_string(node) + ":7070";
  r.peer_address = "10.0.0." + std::to_string(node) + ":7071";
  r.http_address = "10.0.0." + std::to_string(node) + ":7072";
  return encode_metadata_record(r);
}

inline topic_entry topic(const std::string& name, uint64_t id, std::vector<std::vector<int32_t>> replicas) {
  topic_entry t;
  t.topic.name = name;
  t.topic.id = id;
  t.topic.config.partitions = static_cast<int32_t>(replicas.size());
  t.topic.config.replication = static_cast<int16_t>(replicas.empty() ? 1 : replicas.front().size());
  for (size_t p = 0; p < replicas.size(); ++p) {
    partition_assignment a;
    a.partition = static_cast<int32_t>(p);
    for (int32_t n : replicas[p]) a.replicas.emplace_back(n);
    t.assignments.push_back(std::move(a));
  }
  return t;
}

inline meta::subscription_record subscription(const std::string& topic, uint64_t topic_id, const std::string& name,
                                              uint64_t id) {
  meta::subscription_record s;
  s.topic = topic;
  s.topic_id = topic_id;
  s.name = name;
  s.id = id;
  s.config.dead_letter_topic = meta::default_dead_letter_topic(topic, name);
  return s;
}

// Applies `bytes` at the next offset and says whether it was applied.
inline bool apply_next(metadata_image& image, const std::string& bytes) {
  return image.apply(image.version() + 1, bytes).status == apply_status::applied;
}

}  // namespace ferry::cluster::testing
