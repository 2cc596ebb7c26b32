#pragma once
// A topic's stored configuration, and the rules for names and values.
#include <cstdint>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace ferry::meta {

enum class fsync_mode : uint8_t { always = 0, interval = 1 };

struct topic_config {
  int32_t partitions = 1;
  int16_t replication = 1;
  int64_t retention_ms = 7LL * 24 * 3600 * 1000;  // <= 0: keep forever
  int64_t retention_bytes = -1;                   // per partition; <= 0: no size limit
  int64_t segment_bytes = 128LL << 20;
  int64_t segment_ms = 7LL * 24 * 3600 * 1000;
  int32_t max_batch_bytes = 8 << 20;
  fsync_mode fsync = fsync_mode::always;
  int32_t fsync_interval_ms = 1000;
  int64_t max_delay_ms = 365LL * 24 * 3600 * 1000;  // longest accepted delivery delay
};

struct topic_record {
  std::string name;
  uint64_t id = 0;  // unique per broker; the data folder is topics/<id>-<name>
  topic_config config;
};

// Topic names: [A-Za-z0-9._-]{1,200}, and not "." or "..".
[[nodiscard]] result<void> validate_topic_name(std::string_view name);
// Ranges: partitions 1..10000, replication 1..7 (1 until replication lands), segment_bytes
// 1 MiB..1 GiB, max_batch_bytes 1 KiB..64 MiB, ...
[[nodiscard]] result<void> validate_topic_config(const topic_config& c, int max_replication);

// The stored encoding (broker/meta/record.cc): a FlatBuffers `Record` of schema/meta.fbs, the bytes
// of the metadata store's value and, later, of a metadata log entry. decode also reads the
// "key=value" text of brokers before it (schema/meta.md); storage_error if the bytes are neither,
// or hold another kind of record or an unknown version.
std::string encode_topic_record(const topic_record& r);
[[nodiscard]] result<topic_record> decode_topic_record(std::string_view s);

}  // namespace ferry::meta
