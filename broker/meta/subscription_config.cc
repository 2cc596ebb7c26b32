#include "broker/meta/subscription_config.h"

#include <algorithm>

#include "broker/meta/legacy_text.h"
#include "broker/meta/topic_config.h"

namespace ferry::meta {

int64_t subscription_config::backoff_for(int32_t deliveries) const {
  if (backoff == backoff_kind::fixed || deliveries <= 1) return std::min(backoff_initial_ms, backoff_max_ms);
  int64_t d = backoff_initial_ms;
  for (int32_t i = 1; i < deliveries && d < backoff_max_ms; ++i) d *= 2;
  return std::min(d, backoff_max_ms);
}

result<void> validate_subscription_name(std::string_view name) {
  return detail::validate_name("subscription", errc::invalid_subscription_name, name);
}

result<void> validate_subscription_config(const subscription_config& c) {
  constexpr int64_t day = 24LL * 3600 * 1000;
  auto bad = [](std::string what) -> result<void> { return fail(errc::invalid_argument, std::move(what)); };
  if (c.ack_timeout_ms < 1 || c.ack_timeout_ms > day)
    return bad("ack timeout must be between 1 ms and 24 h, got " + std::to_string(c.ack_timeout_ms) + " ms");
  if (c.max_deliveries < 0 || c.max_deliveries > 1000)
    return bad("max_deliveries must be between 0 (never dead-letter) and 1000, got " +
               std::to_string(c.max_deliveries));
  if (c.backoff_initial_ms < 0 || c.backoff_initial_ms > day)
    return bad("backoff initial delay must be between 0 and 24 h, got " + std::to_string(c.backoff_initial_ms) + " ms");
  if (c.backoff_max_ms < c.backoff_initial_ms || c.backoff_max_ms > day)
    return bad("backoff maximum must be between the initial delay and 24 h, got " + std::to_string(c.backoff_max_ms) +
               " ms");
  if (!c.dead_letter_topic.empty()) {
    if (auto r = validate_topic_name(c.dead_letter_topic); !r)
      return fail(errc::invalid_argument, "dead-letter topic: " + r.error().message);
  }
  return {};
}

std::string default_dead_letter_topic(std::string_view topic, std::string_view subscription) {
  return std::string(topic) + "." + std::string(subscription) + ".dlq";
}

}  // namespace ferry::meta
