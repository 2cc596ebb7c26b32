#include "broker/meta/subscription_config.h"

#include <algorithm>

#include "broker/meta/record_text.h"
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

std::string encode_subscription_record(const subscription_record& r) {
  const auto& c = r.config;
  detail::record_writer w;
  w.kv("format", "1");
  w.kv("topic", r.topic);
  w.kv("topic_id", static_cast<int64_t>(r.topic_id));
  w.kv("name", r.name);
  w.kv("id", static_cast<int64_t>(r.id));
  w.kv("start", c.start == start_position::earliest ? "earliest" : "latest");
  w.kv("ack_timeout_ms", c.ack_timeout_ms);
  w.kv("max_deliveries", c.max_deliveries);
  w.kv("ordered", c.ordered ? "true" : "false");
  w.kv("backoff", c.backoff == backoff_kind::fixed ? "fixed" : "exponential");
  w.kv("backoff_initial_ms", c.backoff_initial_ms);
  w.kv("backoff_max_ms", c.backoff_max_ms);
  w.kv("dead_letter_topic", c.dead_letter_topic);
  w.kv("created_ms", r.created_ms);
  std::string starts;
  for (size_t i = 0; i < r.start_offsets.size(); ++i) {
    if (i) starts += ',';
    starts += std::to_string(r.start_offsets[i]);
  }
  w.kv("start_offsets", starts);
  return std::move(w).str();
}

result<subscription_record> decode_subscription_record(std::string_view s) {
  using detail::parse_int;
  subscription_record r;
  auto& c = r.config;
  std::string_view bad;
  detail::for_each_kv(
      s,
      [&](std::string_view k, std::string_view v) {
        if (k == "topic")
          r.topic = std::string(v);
        else if (k == "topic_id")
          return parse_int(v, r.topic_id);
        else if (k == "name")
          r.name = std::string(v);
        else if (k == "id")
          return parse_int(v, r.id);
        else if (k == "start")
          c.start = v == "earliest" ? start_position::earliest : start_position::latest;
        else if (k == "ack_timeout_ms")
          return parse_int(v, c.ack_timeout_ms);
        else if (k == "max_deliveries")
          return parse_int(v, c.max_deliveries);
        else if (k == "ordered")
          c.ordered = v == "true";
        else if (k == "backoff")
          c.backoff = v == "fixed" ? backoff_kind::fixed : backoff_kind::exponential;
        else if (k == "backoff_initial_ms")
          return parse_int(v, c.backoff_initial_ms);
        else if (k == "backoff_max_ms")
          return parse_int(v, c.backoff_max_ms);
        else if (k == "dead_letter_topic")
          c.dead_letter_topic = std::string(v);
        else if (k == "created_ms")
          return parse_int(v, r.created_ms);
        else if (k == "start_offsets") {
          while (!v.empty()) {
            auto comma = v.find(',');
            int64_t o = 0;
            if (!parse_int(v.substr(0, comma), o)) return false;
            r.start_offsets.push_back(o);
            v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
          }
        }
        return true;
      },
      &bad);
  if (!bad.empty()) return fail(errc::storage_error, "subscription record has a bad value for " + std::string(bad));
  if (r.topic.empty() || r.name.empty() || r.id == 0)
    return fail(errc::storage_error, "subscription record without topic, name or id");
  return r;
}

}  // namespace ferry::meta
