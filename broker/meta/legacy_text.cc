// The "key=value" text of metadata records written by brokers before schema/meta.fbs: one line
// per field, "format=1" first. Kept so that existing data folders open; never written.
#include "broker/meta/legacy_text.h"

#include <charconv>
#include <cstdint>
#include <functional>
#include <string>

namespace ferry::meta::detail {

namespace {

// Calls fn(key, value) for each "key=value" line; lines without '=' are skipped.
void for_each_kv(std::string_view s, const std::function<bool(std::string_view, std::string_view)>& fn,
                 std::string_view* bad_key) {
  while (!s.empty()) {
    auto nl = s.find('\n');
    auto line = s.substr(0, nl);
    s = nl == std::string_view::npos ? std::string_view{} : s.substr(nl + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    if (!fn(line.substr(0, eq), line.substr(eq + 1))) {
      if (bad_key) *bad_key = line.substr(0, eq);
      return;
    }
  }
}

// Parses an integer value into `out` (any integer type); false if malformed.
template <class T>
bool parse_int(std::string_view v, T& out) {
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{} || p != v.data() + v.size()) return false;
  out = static_cast<T>(n);
  return true;
}

}  // namespace

result<topic_record> decode_text_topic_record(std::string_view s) {
  topic_record r;
  auto& c = r.config;
  std::string_view bad;
  for_each_kv(
      s,
      [&](std::string_view k, std::string_view v) {
        if (k == "name")
          r.name = std::string(v);
        else if (k == "id")
          return parse_int(v, r.id);
        else if (k == "partitions")
          return parse_int(v, c.partitions);
        else if (k == "replication")
          return parse_int(v, c.replication);
        else if (k == "retention_ms")
          return parse_int(v, c.retention_ms);
        else if (k == "retention_bytes")
          return parse_int(v, c.retention_bytes);
        else if (k == "segment_bytes")
          return parse_int(v, c.segment_bytes);
        else if (k == "segment_ms")
          return parse_int(v, c.segment_ms);
        else if (k == "max_batch_bytes")
          return parse_int(v, c.max_batch_bytes);
        else if (k == "fsync")
          c.fsync = v == "interval" ? fsync_mode::interval : fsync_mode::always;
        else if (k == "fsync_interval_ms")
          return parse_int(v, c.fsync_interval_ms);
        else if (k == "max_delay_ms")
          return parse_int(v, c.max_delay_ms);
        return true;
      },
      &bad);
  if (!bad.empty()) return fail(errc::storage_error, "metadata record has a bad value for " + std::string(bad));
  if (r.name.empty()) return fail(errc::storage_error, "metadata record without a topic name");
  return r;
}

result<subscription_record> decode_text_subscription_record(std::string_view s) {
  subscription_record r;
  auto& c = r.config;
  std::string_view bad;
  for_each_kv(
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

}  // namespace ferry::meta::detail
