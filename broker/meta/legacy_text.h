#pragma once
// Internal to broker/meta: the shared name rule, and the decoders of the "key=value" text that
// brokers wrote before metadata records became FlatBuffers (schema/meta.md, "The old text
// records"). Read only: the text is never written again.
#include <string_view>

#include "broker/meta/subscription_config.h"
#include "broker/meta/topic_config.h"
#include "schema/result.h"

namespace ferry::meta::detail {

// Names of topics and subscriptions: [A-Za-z0-9._-]{1,200}, not "." or "..". `what` names the
// kind ("topic", "subscription") in the message; `code` is the error to return.
[[nodiscard]] result<void> validate_name(std::string_view what, errc code, std::string_view name);

// A record in the old text format; storage_error if a value is malformed or a name is missing.
[[nodiscard]] result<topic_record> decode_text_topic_record(std::string_view s);
[[nodiscard]] result<subscription_record> decode_text_subscription_record(std::string_view s);

}  // namespace ferry::meta::detail
