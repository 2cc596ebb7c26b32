#pragma once
// A subscription's stored configuration, and the rules for its name and values (DESIGN.md
// "Subscription"). Persisted in the metadata store next to the topics.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "schema/result.h"

namespace ferry::meta {

enum class start_position : uint8_t { latest = 0, earliest = 1 };
enum class backoff_kind : uint8_t { exponential = 0, fixed = 1 };

struct subscription_config {
  start_position start = start_position::latest;
  int64_t ack_timeout_ms = 30'000;  // lease of one delivery
  int32_t max_deliveries = 10;      // deliveries before the dead-letter topic; 0: never
  bool ordered = true;              // ordered keys
  backoff_kind backoff = backoff_kind::exponential;
  int64_t backoff_initial_ms = 1000;  // redelivery delay after the first failed delivery
  int64_t backoff_max_ms = 60'000;    // cap of the exponential backoff
  std::string dead_letter_topic;      // filled in at creation: "<topic>.<name>.dlq" by default

  // The redelivery delay after the `deliveries`-th failed delivery (>= 1): fixed, or
  // initial * 2^(deliveries-1) capped at backoff_max_ms.
  int64_t backoff_for(int32_t deliveries) const;
};

struct subscription_record {
  std::string topic;
  uint64_t topic_id = 0;
  std::string name;
  uint64_t id = 0;  // unique per broker, never reused: control records name it
  subscription_config config;
  std::vector<int64_t> start_offsets;  // the cursor each partition started at
  int64_t created_ms = 0;
};

// Same alphabet as topic names: [A-Za-z0-9._-]{1,200}, not "." or "..".
[[nodiscard]] result<void> validate_subscription_name(std::string_view name);
// ack_timeout 1 ms..24 h, max_deliveries 0..1000, backoff_initial 0..24 h, backoff_max >= initial
// and <= 24 h, dead_letter_topic a valid topic name (when set).
[[nodiscard]] result<void> validate_subscription_config(const subscription_config& c);
std::string default_dead_letter_topic(std::string_view topic, std::string_view subscription);

// The stored encoding, as encode_topic_record (broker/meta/record.cc, schema/meta.md).
std::string encode_subscription_record(const subscription_record& r);
[[nodiscard]] result<subscription_record> decode_subscription_record(std::string_view s);

}  // namespace ferry::meta
