#pragma once
// router: which replica serves a request for partition p of a topic. The protocol layer asks it
// instead of indexing a topic's partitions: the answer is this broker's replica when this broker
// leads the partition, or errc::not_leader naming the broker believed to lead it (a hint a client
// may try before it refreshes its metadata). Metadata and describe answers read the leader from
// the same table, so "who leads partition p" is decided in one place.
//
// The topic catalog (topic_manager: names, configs, subscriptions) says which partitions exist;
// the router says where each is led. Today every partition is hosted and led by this broker (one
// broker, no replication), so nothing calls set_leader outside tests yet; the replication issue
// feeds it as leadership moves (node, leader epoch).
//
// Threading: any thread. route() is on the produce and fetch paths: while every partition is led
// here it reads one atomic and takes no lock; otherwise a shared lock over a small map.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "broker/topics/topic_manager.h"
#include "schema/result.h"

namespace ferry::topics {

inline constexpr int32_t unknown_leader = -1;

struct leader_view {
  int32_t node = unknown_leader;  // broker id, unknown_leader if no broker is known to lead it
  int32_t epoch = 0;              // leader epoch (the replication term); 0 before replication
};

class router {
 public:
  explicit router(int32_t self) : self_(self) {}
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  int32_t self() const { return self_; }

  // The leader of partition p of t as this broker knows it.
  leader_view leader_of(const topic& t, int32_t p) const;

  // This broker's replica of partition p of t, if this broker leads it. Errors: unknown_partition
  // (p outside 0..partitions-1; the message says how many there are), not_leader (another broker
  // leads it, or none is known; the message names it and *leader_hint gets its id or
  // unknown_leader).
  result<std::shared_ptr<partition::partition>> route(const topic& t, int32_t p, int32_t* leader_hint = nullptr) const;

  // The replicas of t this broker leads, in partition order (describe, list-delayed, subscription
  // views and member notices: work that goes to every partition led here).
  std::vector<std::shared_ptr<partition::partition>> led_here(const topic& t) const;

  // Records who leads partition p of the topic with id `topic_id`. A view naming this broker
  // (self()) removes the entry: the local replica leads again.
  void set_leader(uint64_t topic_id, int32_t p, leader_view v);

 private:
  const int32_t self_;
  std::atomic<bool> any_elsewhere_{false};
  mutable std::shared_mutex mu_;
  std::map<std::pair<uint64_t, int32_t>, leader_view> elsewhere_;  // partitions not led here
};

}  // namespace ferry::topics
