// The metadata state machine. Every rule reads only the image and the entry (see the header: a
// rule that looked at anything else could make replicas disagree).
#include "broker/cluster/metadata_image.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "broker/base/assert.h"

namespace ferry::cluster {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  auto l = spdlog::get("cluster");
  return l ? l : spdlog::default_logger();
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

const char* state_name(broker_state s) { return s == broker_state::alive ? "alive" : "fenced"; }

}  // namespace

apply_outcome metadata_image::apply(metadata_version offset, std::string_view bytes) {
  FERRY_ASSERT(offset > version_, "metadata entries are applied once each, in offset order");
  version_ = offset;
  auto rec = decode_metadata_record(bytes);
  result<void> r = rec ? apply_record(offset, std::move(*rec)) : result<void>(rec.error());
  if (r) return {};
  ++refused_;
  logger()->warn("metadata offset {}: {} refused, the version advances without it: {}", offset,
                 rec ? record_kind(*rec) : "entry", r.error().message);
  return {apply_status::refused, r.error().message};
}

void metadata_image::advance(metadata_version offset) {
  FERRY_ASSERT(offset >= version_, "the metadata version never goes back");
  version_ = offset;
}

result<void> metadata_image::apply_record(metadata_version offset, metadata_record r) {
  return std::visit(
      [&](auto& v) -> result<void> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, topic_entry>) return apply_topic(offset, std::move(v));
        if constexpr (std::is_same_v<T, meta::subscription_record>) return apply_subscription(std::move(v));
        if constexpr (std::is_same_v<T, broker_registration>) return apply_registration(offset, std::move(v));
        if constexpr (std::is_same_v<T, broker_fenced>) return apply_fenced(v);
        if constexpr (std::is_same_v<T, broker_unfenced>) return apply_unfenced(v);
        if constexpr (std::is_same_v<T, topic_deleted>) return apply_topic_deleted(v);
        if constexpr (std::is_same_v<T, subscription_deleted>) return apply_subscription_deleted(v);
        if constexpr (std::is_same_v<T, id_allocation>) return apply_ids(v);
      },
      r);  // `r` is ours: the visitor moves out of it
}

result<void> metadata_image::apply_topic(metadata_version offset, topic_entry t) {
  const meta::topic_record& rec = t.topic;
  if (auto r = meta::validate_topic_name(rec.name); !r) return r.error();
  if (auto r = meta::validate_topic_config(rec.config, max_replication_factor); !r)
    return fail(r.error().code, "topic " + quoted(rec.name) + ": " + r.error().message);
  if (t.assignments.size() != static_cast<size_t>(rec.config.partitions))
    return fail(errc::invalid_argument, "topic " + quoted(rec.name) + " has " + std::to_string(rec.config.partitions) +
                                            " partitions but " + std::to_string(t.assignments.size()) + " assignments");
  for (size_t p = 0; p < t.assignments.size(); ++p) {
    const partition_assignment& a = t.assignments[p];
    std::string where = "topic " + quoted(rec.name) + " partition " + std::to_string(p);
    if (a.partition != static_cast<int32_t>(p))
      return fail(errc::invalid_argument, where + ": assignment names partition " + std::to_string(a.partition));
    if (a.replicas.size() != static_cast<size_t>(rec.config.replication))
      return fail(errc::invalid_argument, where + ": " + std::to_string(a.replicas.size()) +
                                              " replicas for replication factor " +
                                              std::to_string(rec.config.replication));
    std::set<node_id> seen;
    for (node_id n : a.replicas) {
      if (!seen.insert(n).second)
        return fail(errc::invalid_argument, where + ": broker " + std::to_string(n.value) + " assigned twice");
      if (!brokers_.contains(n))
        return fail(errc::invalid_argument, where + ": broker " + std::to_string(n.value) + " is not registered");
    }
  }
  auto it = topics_.find(rec.name);
  if (it == topics_.end()) {
    if (rec.id == 0 || rec.id < next_topic_id_)
      return fail(errc::invalid_argument, "new topic " + quoted(rec.name) + " with id " + std::to_string(rec.id) +
                                              ", not above the ids handed out (next " + std::to_string(next_topic_id_) +
                                              ")");
    next_topic_id_ = rec.id + 1;
    std::string name = rec.name;
    topics_.emplace(std::move(name), topic_info{std::move(t), offset, offset});
    return {};
  }
  topic_info& cur = it->second;
  if (rec.id != cur.entry.topic.id)
    return fail(errc::topic_exists, "topic " + quoted(rec.name) + " exists with id " +
                                        std::to_string(cur.entry.topic.id) + ", not " + std::to_string(rec.id));
  if (rec.config.partitions < cur.entry.topic.config.partitions)
    return fail(errc::invalid_argument, "topic " + quoted(rec.name) + " cannot go from " +
                                            std::to_string(cur.entry.topic.config.partitions) + " to " +
                                            std::to_string(rec.config.partitions) + " partitions");
  if (t.assignments != cur.entry.assignments) cur.assigned_at = offset;
  cur.changed_at = offset;
  cur.entry = std::move(t);
  return {};
}

result<void> metadata_image::apply_subscription(meta::subscription_record s) {
  std::string what = "subscription " + quoted(s.topic + "/" + s.name);
  const topic_info* t = topic(s.topic);
  if (!t || t->entry.topic.id != s.topic_id)
    return fail(errc::unknown_topic, what + ": no topic " + quoted(s.topic) + " with id " + std::to_string(s.topic_id));
  if (auto r = meta::validate_subscription_name(s.name); !r) return r.error();
  if (auto r = meta::validate_subscription_config(s.config); !r)
    return fail(r.error().code, what + ": " + r.error().message);
  subscription_key key{s.topic, s.name};
  auto it = subscriptions_.find(key);
  if (it == subscriptions_.end()) {
    if (s.id == 0 || s.id < next_subscription_id_)
      return fail(errc::invalid_argument, "new " + what + " with id " + std::to_string(s.id) +
                                              ", not above the ids handed out (next " +
                                              std::to_string(next_subscription_id_) + ")");
    next_subscription_id_ = s.id + 1;
    subscriptions_.emplace(std::move(key), std::move(s));
    return {};
  }
  if (it->second.id != s.id)
    return fail(errc::subscription_exists,
                what + " exists with id " + std::to_string(it->second.id) + ", not " + std::to_string(s.id));
  it->second = std::move(s);
  return {};
}

result<void> metadata_image::apply_registration(metadata_version offset, broker_registration r) {
  std::string what = "registration of broker " + std::to_string(r.node.value);
  if (r.node.value <= 0) return fail(errc::invalid_argument, what + ": node ids start at 1");
  if (r.client_address.empty() || r.peer_address.empty())
    return fail(errc::invalid_argument, what + ": client and peer addresses are required");
  auto it = brokers_.find(r.node);
  if (it != brokers_.end() && r.incarnation <= it->second.registration.incarnation)
    return fail(errc::invalid_argument, what + ": incarnation " + std::to_string(r.incarnation) +
                                            " is not newer than the registered " +
                                            std::to_string(it->second.registration.incarnation));
  node_id n = r.node;
  brokers_[n] = broker_info{std::move(r), broker_state::alive, offset};
  return {};
}

result<void> metadata_image::apply_fenced(const broker_fenced& f) {
  std::string what = "fencing broker " + std::to_string(f.node.value) + " incarnation " + std::to_string(f.incarnation);
  auto it = brokers_.find(f.node);
  if (it == brokers_.end()) return fail(errc::invalid_argument, what + ": not registered");
  if (it->second.registration.incarnation != f.incarnation)
    return fail(errc::invalid_argument,
                what + ": the registered incarnation is " + std::to_string(it->second.registration.incarnation));
  if (it->second.state == broker_state::fenced) return fail(errc::invalid_argument, what + ": already fenced");
  it->second.state = broker_state::fenced;
  return {};
}

result<void> metadata_image::apply_unfenced(const broker_unfenced& u) {
  std::string what =
      "unfencing broker " + std::to_string(u.node.value) + " incarnation " + std::to_string(u.incarnation);
  auto it = brokers_.find(u.node);
  if (it == brokers_.end()) return fail(errc::invalid_argument, what + ": not registered");
  if (it->second.registration.incarnation != u.incarnation)
    return fail(errc::invalid_argument,
                what + ": the registered incarnation is " + std::to_string(it->second.registration.incarnation));
  if (it->second.state == broker_state::alive) return fail(errc::invalid_argument, what + ": not fenced");
  it->second.state = broker_state::alive;
  return {};
}

result<void> metadata_image::apply_topic_deleted(const topic_deleted& d) {
  auto it = topics_.find(d.name);
  if (it == topics_.end() || it->second.entry.topic.id != d.id)
    return fail(errc::unknown_topic,
                "deleting topic " + quoted(d.name) + " id " + std::to_string(d.id) + ": no such topic");
  topics_.erase(it);
  // Its subscriptions: the keys (topic, name) of one topic are adjacent in the map.
  auto sub = subscriptions_.lower_bound(subscription_key{d.name, ""});
  while (sub != subscriptions_.end() && sub->first.first == d.name) sub = subscriptions_.erase(sub);
  return {};
}

result<void> metadata_image::apply_subscription_deleted(const subscription_deleted& d) {
  auto it = subscriptions_.find(subscription_key{d.topic, d.name});
  if (it == subscriptions_.end() || it->second.id != d.id)
    return fail(errc::unknown_subscription, "deleting subscription " + quoted(d.topic + "/" + d.name) + " id " +
                                                std::to_string(d.id) + ": no such subscription");
  subscriptions_.erase(it);
  return {};
}

result<void> metadata_image::apply_ids(const id_allocation& a) {
  if (a.next_topic_id < next_topic_id_ || a.next_subscription_id < next_subscription_id_)
    return fail(errc::invalid_argument, "id allocation (topics from " + std::to_string(a.next_topic_id) +
                                            ", subscriptions from " + std::to_string(a.next_subscription_id) +
                                            ") would lower a counter (now " + std::to_string(next_topic_id_) + ", " +
                                            std::to_string(next_subscription_id_) + ")");
  next_topic_id_ = a.next_topic_id;
  next_subscription_id_ = a.next_subscription_id;
  return {};
}

const broker_info* metadata_image::broker(node_id n) const {
  auto it = brokers_.find(n);
  return it == brokers_.end() ? nullptr : &it->second;
}

const topic_info* metadata_image::topic(std::string_view name) const {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : &it->second;
}

const meta::subscription_record* metadata_image::subscription(const std::string& topic, const std::string& name) const {
  auto it = subscriptions_.find(subscription_key{topic, name});
  return it == subscriptions_.end() ? nullptr : &it->second;
}

route metadata_image::make_route(const topic_info& t, int32_t partition) const {
  const partition_assignment& a = t.entry.assignments[static_cast<size_t>(partition)];
  route r;
  r.topic = t.entry.topic.name;
  r.topic_id = t.entry.topic.id;
  r.partition = partition;
  r.replicas = a.replicas;
  r.epoch = t.assigned_at;
  // A topic is applied only with `replication` >= 1 registered replicas per partition, and brokers
  // are never removed, so the first replica is always known.
  const broker_info* b = broker(a.replicas.front());
  FERRY_ASSERT(b != nullptr, "an applied assignment names registered brokers only");
  if (b->state == broker_state::alive) {
    r.leader = a.replicas.front();
    r.client_address = b->registration.client_address;
  }
  return r;
}

routing_table metadata_image::routing() const {
  routing_table out{version_, {}};
  for (const auto& [name, t] : topics_)
    for (int32_t p = 0; p < t.entry.topic.config.partitions; ++p) out.routes.push_back(make_route(t, p));
  return out;
}

result<route> metadata_image::route_of(std::string_view topic_name, int32_t partition) const {
  const topic_info* t = topic(topic_name);
  if (!t) return fail(errc::unknown_topic, "topic " + quoted(topic_name) + " not found");
  if (partition < 0 || partition >= t->entry.topic.config.partitions)
    return fail(errc::unknown_partition, "topic " + quoted(topic_name) + " has partitions 0.." +
                                             std::to_string(t->entry.topic.config.partitions - 1) + ", not " +
                                             std::to_string(partition));
  return make_route(*t, partition);
}

std::string metadata_image::dump() const {
  std::ostringstream o;
  o << "version " << version_ << "\nnext_topic_id " << next_topic_id_ << "\nnext_subscription_id "
    << next_subscription_id_ << "\n";
  for (const auto& [n, b] : brokers_) {
    const broker_registration& r = b.registration;
    o << "broker " << n.value << " incarnation " << r.incarnation << " " << state_name(b.state) << " client "
      << r.client_address << " peer " << r.peer_address << " http " << r.http_address << " rack " << r.rack
      << " registered_at " << b.registered_at << "\n";
  }
  for (const auto& [name, t] : topics_) {
    const meta::topic_config& c = t.entry.topic.config;
    o << "topic " << name << " id " << t.entry.topic.id << " changed_at " << t.changed_at << " assigned_at "
      << t.assigned_at << " partitions " << c.partitions << " replication " << c.replication << " retention_ms "
      << c.retention_ms << " retention_bytes " << c.retention_bytes << " segment_bytes " << c.segment_bytes
      << " segment_ms " << c.segment_ms << " max_batch_bytes " << c.max_batch_bytes << " fsync "
      << static_cast<int>(c.fsync) << " fsync_interval_ms " << c.fsync_interval_ms << " max_delay_ms " << c.max_delay_ms
      << "\n";
    for (const auto& a : t.entry.assignments) {
      o << "  partition " << a.partition << " replicas";
      for (node_id n : a.replicas) o << " " << n.value;
      o << "\n";
    }
  }
  for (const auto& [key, s] : subscriptions_) {
    const meta::subscription_config& c = s.config;
    o << "subscription " << key.first << "/" << key.second << " id " << s.id << " topic_id " << s.topic_id << " start "
      << static_cast<int>(c.start) << " ack_timeout_ms " << c.ack_timeout_ms << " max_deliveries " << c.max_deliveries
      << " ordered " << c.ordered << " backoff " << static_cast<int>(c.backoff) << " backoff_initial_ms "
      << c.backoff_initial_ms << " backoff_max_ms " << c.backoff_max_ms << " dlq " << c.dead_letter_topic
      << " created_ms " << s.created_ms << " start_offsets";
    for (int64_t off : s.start_offsets) o << " " << off;
    o << "\n";
  }
  return o.str();
}

}  // namespace ferry::cluster
