#pragma once
// metadata_image: the cluster's metadata as a state machine over the metadata log (DESIGN.md "A
// cluster"). Every broker feeds it the committed entries of the metadata group in offset order and
// reads from it the brokers, topics with their assignments, subscriptions and id counters, and the
// routing table clients cache. The metadata version is the offset of the last applied entry.
//
// Deterministic: no clock, thread, disk or randomness inside, and every decision depends only on
// the image and the entry. Two images fed the same entries are equal (operator==, over dump()).
//
// Refused entries. An entry that does not decode, or that breaks a rule below against the image
// it meets, changes nothing but the version: the image logs why (warn, logger "cluster") and
// apply() returns the reason. Every replica meets the same entry with the same image, so every
// replica refuses it too; that is why a refusal must still advance the version (a replica that
// stopped, or skipped the offset, would disagree with the others about every later version), and
// why a rule may look only at the image and the entry, never at local configuration or time. The
// controller checks the same rules before it proposes (controller.h), so a refusal means a
// proposal raced another one, or a bug.
//
// Rules, by record (schema/meta.md "The metadata log"):
//   Topic                 valid name and config; one assignment per partition in partition order,
//                         each with `replication` distinct registered brokers. A new name needs an
//                         id >= next_topic_id (next_topic_id becomes id + 1: ids are never reused);
//                         an existing name keeps its id and never loses partitions.
//   Subscription          its topic exists with that topic id; valid name and config; a new one
//                         needs an id >= next_subscription_id, an existing one keeps its id.
//   BrokerRegistration    node id > 0, client and peer addresses set, incarnation greater than the
//                         registered one; the broker is alive (unfenced) with these addresses.
//   BrokerFenced          the broker's current incarnation, and it is alive.
//   BrokerUnfenced        the broker's current incarnation, and it is fenced.
//   TopicDeleted          a topic of that name and id; its subscriptions go with it.
//   SubscriptionDeleted   a subscription of that topic, name and id.
//   IdAllocation          neither counter goes down.
//
// Threading: none inside; one owner, or a copy per reader (it is a value).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker/cluster/records.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::cluster {

// Largest replication factor a topic may have (meta::validate_topic_config's bound).
inline constexpr int max_replication_factor = 7;
// A partition whose serving broker is fenced has no leader in the routing table.
inline constexpr node_id no_leader{-1};

enum class broker_state : uint8_t { alive, fenced };

struct broker_info {
  broker_registration registration;
  broker_state state = broker_state::alive;
  metadata_version registered_at = 0;  // offset of the registration in force
};

struct topic_info {
  topic_entry entry;
  metadata_version changed_at = 0;   // offset of the last Topic record applied for it
  metadata_version assigned_at = 0;  // offset at which its assignments last changed
};

// One partition of the routing table: who serves it and where to reach it.
struct route {
  std::string topic;
  uint64_t topic_id = 0;
  int32_t partition = 0;
  node_id leader = no_leader;  // the first replica, or no_leader while that broker is fenced
  std::string client_address;  // the leader's; empty without a leader
  std::vector<node_id> replicas;
  metadata_version epoch = 0;  // assigned_at of the topic: changes when the assignment does
};

// What a client caches: every partition's route and the metadata version they are as of. A
// response from a broker at a newer version, or a not_leader, tells the client to fetch it again.
struct routing_table {
  metadata_version version = 0;
  std::vector<route> routes;  // by topic name, then partition
};

enum class apply_status : uint8_t { applied, refused };
struct apply_outcome {
  apply_status status = apply_status::applied;
  std::string reason;  // refused: why
};

class metadata_image {
 public:
  using subscription_key = std::pair<std::string, std::string>;  // (topic, name)

  metadata_image() = default;

  // Applies the entry at `offset`. Precondition (asserted): offset > version(). Afterwards
  // version() == offset, whether the record was applied or refused.
  apply_outcome apply(metadata_version offset, std::string_view bytes);
  // Entries of the metadata group that hold no record (the consensus core's noop and
  // membership entries): version() becomes `offset`. Precondition: offset >= version().
  void advance(metadata_version offset);

  [[nodiscard]] metadata_version version() const { return version_; }
  [[nodiscard]] uint64_t next_topic_id() const { return next_topic_id_; }
  [[nodiscard]] uint64_t next_subscription_id() const { return next_subscription_id_; }
  [[nodiscard]] uint64_t refused() const { return refused_; }  // entries refused so far (not in dump)

  [[nodiscard]] const std::map<node_id, broker_info>& brokers() const { return brokers_; }
  [[nodiscard]] const broker_info* broker(node_id n) const;
  [[nodiscard]] const std::map<std::string, topic_info, std::less<>>& topics() const { return topics_; }
  [[nodiscard]] const topic_info* topic(std::string_view name) const;
  [[nodiscard]] const std::map<subscription_key, meta::subscription_record>& subscriptions() const {
    return subscriptions_;
  }
  [[nodiscard]] const meta::subscription_record* subscription(const std::string& topic, const std::string& name) const;

  // The routing table: every partition of every topic, at version().
  [[nodiscard]] routing_table routing() const;
  // One partition's route. unknown_topic, or unknown_partition (the message says how many there are).
  [[nodiscard]] result<route> route_of(std::string_view topic, int32_t partition) const;

  // The whole image as bytes, a MetadataSnapshot (schema/meta.fbs, schema/meta.md "Snapshots of
  // the metadata image"): restore() of them is an image equal to this one (dump() and refused()),
  // which applies the entry at version() + 1 next. Equal images have equal snapshots.
  [[nodiscard]] std::string snapshot() const;
  // The image in `bytes`, as snapshot() made it. storage_error, and no image, when the bytes lack
  // the identifier, fail verification or the checksum, carry an unknown format or enum value, or
  // break the image's invariants (the message says which); the bytes may come from another broker
  // or the disk, so nothing in them is trusted before it is checked.
  [[nodiscard]] static result<metadata_image> restore(std::string_view bytes);

  // A canonical text of the whole state (sorted, every field): equal images have equal dumps.
  [[nodiscard]] std::string dump() const;
  friend bool operator==(const metadata_image& a, const metadata_image& b) { return a.dump() == b.dump(); }

 private:
  result<void> apply_record(metadata_version offset, metadata_record r);
  result<void> apply_topic(metadata_version offset, topic_entry t);
  result<void> apply_subscription(meta::subscription_record s);
  result<void> apply_registration(metadata_version offset, broker_registration r);
  result<void> apply_fenced(const broker_fenced& f);
  result<void> apply_unfenced(const broker_unfenced& u);
  result<void> apply_topic_deleted(const topic_deleted& d);
  result<void> apply_subscription_deleted(const subscription_deleted& d);
  result<void> apply_ids(const id_allocation& a);
  route make_route(const topic_info& t, int32_t partition) const;

  metadata_version version_ = 0;
  uint64_t next_topic_id_ = 1;  // 0 is "no id"
  uint64_t next_subscription_id_ = 1;
  uint64_t refused_ = 0;
  std::map<node_id, broker_info> brokers_;
  std::map<std::string, topic_info, std::less<>> topics_;
  std::map<subscription_key, meta::subscription_record> subscriptions_;
};

}  // namespace ferry::cluster
