#pragma once
// The controller's decisions (DESIGN.md "A cluster"): a pure function of the metadata image and a
// request to the records the controller proposes to the metadata log, or the error the request
// gets. No state of its own: the controller (the metadata group's leader) calls these with its
// image, proposes the records, and answers the client once they are committed and applied.
//
// Every record decided here applies to `image` (metadata_image's rules are checked here first,
// with the error codes a client gets). Two decisions made against the same image may conflict
// (two creates of one name, two ids alike); the log orders them and the image refuses the second.
// A controller that has proposals in flight therefore decides against its image with those
// proposals applied (a copy), and answers a request only after its records were applied, from
// the outcome.
//
// Errors (schema/errc.h): invalid_argument, invalid_topic_name, topic_exists, unknown_topic,
// invalid_subscription_name, subscription_exists, unknown_subscription; the message says which
// value and why.
#include <string>
#include <vector>

#include "broker/cluster/metadata_image.h"
#include "broker/cluster/records.h"
#include "broker/cluster/sessions.h"
#include "broker/meta/subscription_config.h"
#include "broker/meta/topic_config.h"
#include "schema/result.h"

namespace ferry::cluster {

using decision = result<std::vector<metadata_record>>;

// A broker announces itself. A new node, or a new incarnation: a BrokerRegistration. The
// registered incarnation again: nothing while it is alive (a retried registration), or a
// BrokerUnfenced if it was fenced (the same process came back), provided the addresses are the
// same (a process keeps its listeners; a restart takes a new incarnation). An older incarnation
// is refused (invalid_argument): a delayed message from a process that is gone.
[[nodiscard]] decision decide_register(const metadata_image& image, const broker_registration& r);

// The session tracker found `s` expired: a BrokerFenced while that incarnation is the registered
// one and alive; nothing otherwise (it registered again, or is fenced already).
[[nodiscard]] std::vector<metadata_record> decide_fence(const metadata_image& image, const expired_session& s);

// A topic: valid name and config, a name not taken, replicas placed on alive brokers
// (placement.h), the next topic id.
[[nodiscard]] decision decide_create_topic(const metadata_image& image, const std::string& name,
                                           const meta::topic_config& config);
[[nodiscard]] decision decide_delete_topic(const metadata_image& image, const std::string& name);

// A subscription on an existing topic. `requested` gives topic, name, config, created_ms and
// optionally start_offsets (then one per partition); the controller fills in topic_id, the next
// subscription id and, when empty, the default dead-letter topic.
[[nodiscard]] decision decide_create_subscription(const metadata_image& image, meta::subscription_record requested);
[[nodiscard]] decision decide_delete_subscription(const metadata_image& image, const std::string& topic,
                                                  const std::string& name);

}  // namespace ferry::cluster
