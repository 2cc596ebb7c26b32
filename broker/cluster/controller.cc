// Each decision checks, with a client's error code, what metadata_image::apply would refuse, so
// that a refusal in the log means a race between proposals, never a request let through.
#include "broker/cluster/controller.h"

#include <string>
#include <utility>

#include "broker/cluster/placement.h"

namespace ferry::cluster {

namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

decision decide_register(const metadata_image& image, const broker_registration& r) {
  std::string who = "broker " + std::to_string(r.node.value);
  if (r.node.value <= 0)
    return fail(errc::invalid_argument, "node ids start at 1, not " + std::to_string(r.node.value));
  if (r.client_address.empty() || r.peer_address.empty())
    return fail(errc::invalid_argument, who + ": a registration needs the client and peer addresses");
  const broker_info* cur = image.broker(r.node);
  if (!cur || r.incarnation > cur->registration.incarnation) return std::vector<metadata_record>{r};
  if (r.incarnation < cur->registration.incarnation)
    return fail(errc::invalid_argument, who + ": incarnation " + std::to_string(r.incarnation) +
                                            " is older than the registered " +
                                            std::to_string(cur->registration.incarnation));
  if (!(r == cur->registration))
    return fail(errc::invalid_argument, who + " incarnation " + std::to_string(r.incarnation) +
                                            " is registered with other addresses; a restarted broker "
                                            "takes a new incarnation");
  if (cur->state == broker_state::alive) return std::vector<metadata_record>{};
  return std::vector<metadata_record>{broker_unfenced{r.node, r.incarnation}};
}

std::vector<metadata_record> decide_fence(const metadata_image& image, const expired_session& s) {
  const broker_info* b = image.broker(s.node);
  if (!b || b->registration.incarnation != s.incarnation || b->state != broker_state::alive) return {};
  return {broker_fenced{s.node, s.incarnation}};
}

decision decide_create_topic(const metadata_image& image, const std::string& name, const meta::topic_config& config) {
  if (auto r = meta::validate_topic_name(name); !r) return r.error();
  if (auto r = meta::validate_topic_config(config, max_replication_factor); !r) return r.error();
  if (image.topic(name)) return fail(errc::topic_exists, "topic " + quoted(name) + " already exists");
  auto placed = place_partitions(loads_of(image), 0, config.partitions, config.replication);
  if (!placed) return fail(placed.error().code, "topic " + quoted(name) + ": " + placed.error().message);
  topic_entry t;
  t.topic.name = name;
  t.topic.id = image.next_topic_id();
  t.topic.config = config;
  t.assignments = std::move(*placed);
  return std::vector<metadata_record>{std::move(t)};
}

decision decide_delete_topic(const metadata_image& image, const std::string& name) {
  const topic_info* t = image.topic(name);
  if (!t) return fail(errc::unknown_topic, "topic " + quoted(name) + " not found");
  return std::vector<metadata_record>{topic_deleted{name, t->entry.topic.id}};
}

decision decide_create_subscription(const metadata_image& image, meta::subscription_record requested) {
  const topic_info* t = image.topic(requested.topic);
  if (!t) return fail(errc::unknown_topic, "topic " + quoted(requested.topic) + " not found");
  if (auto r = meta::validate_subscription_name(requested.name); !r) return r.error();
  if (requested.config.dead_letter_topic.empty())
    requested.config.dead_letter_topic = meta::default_dead_letter_topic(requested.topic, requested.name);
  if (auto r = meta::validate_subscription_config(requested.config); !r) return r.error();
  if (image.subscription(requested.topic, requested.name))
    return fail(errc::subscription_exists,
                "subscription " + quoted(requested.topic + "/" + requested.name) + " already exists");
  const int32_t partitions = t->entry.topic.config.partitions;
  if (!requested.start_offsets.empty() && requested.start_offsets.size() != static_cast<size_t>(partitions))
    return fail(errc::invalid_argument, "subscription " + quoted(requested.topic + "/" + requested.name) + ": " +
                                            std::to_string(requested.start_offsets.size()) + " start offsets for " +
                                            std::to_string(partitions) + " partitions");
  requested.topic_id = t->entry.topic.id;
  requested.id = image.next_subscription_id();
  return std::vector<metadata_record>{std::move(requested)};
}

decision decide_delete_subscription(const metadata_image& image, const std::string& topic, const std::string& name) {
  if (!image.topic(topic)) return fail(errc::unknown_topic, "topic " + quoted(topic) + " not found");
  const meta::subscription_record* s = image.subscription(topic, name);
  if (!s) return fail(errc::unknown_subscription, "subscription " + quoted(topic + "/" + name) + " not found");
  return std::vector<metadata_record>{subscription_deleted{topic, name, s->id}};
}

}  // namespace ferry::cluster
