#include "broker/meta/topic_config.h"

#include <charconv>

namespace ferry::meta {

result<void> validate_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 200)
    return fail(errc::invalid_topic_name,
                "topic name must be 1 to 200 characters, got " + std::to_string(name.size()));
  if (name == "." || name == "..") return fail(errc::invalid_topic_name, "topic name cannot be '.' or '..'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      std::string shown = (c >= 0x20 && c < 0x7f) ? std::string(1, c) : "\\x" + std::to_string(static_cast<unsigned char>(c));
      return fail(errc::invalid_topic_name,
                  "topic name '" + std::string(name.substr(0, 64)) + "' has invalid character '" + shown +
                      "' (allowed: A-Z a-z 0-9 . _ -)");
    }
  }
  return {};
}

result<void> validate_topic_config(const topic_config& c, int max_replication) {
  auto bad = [](std::string what) -> result<void> { return fail(errc::invalid_argument, std::move(what)); };
  if (c.partitions < 1 || c.partitions > 10000)
    return bad("partitions must be between 1 and 10000, got " + std::to_string(c.partitions));
  if (c.replication < 1 || c.replication > max_replication)
    return bad("replication must be between 1 and " + std::to_string(max_replication) + " on this cluster, got " +
               std::to_string(c.replication));
  if (c.segment_bytes < (1LL << 20) || c.segment_bytes > (1LL << 30))
    return bad("segment_bytes must be between 1 MiB and 1 GiB, got " + std::to_string(c.segment_bytes));
  if (c.segment_ms < 1000) return bad("segment_ms must be at least 1000, got " + std::to_string(c.segment_ms));
  if (c.max_batch_bytes < 1024 || c.max_batch_bytes > (64 << 20))
    return bad("max_batch_bytes must be between 1 KiB and 64 MiB, got " + std::to_string(c.max_batch_bytes));
  if (c.fsync == fsync_mode::interval && (c.fsync_interval_ms < 1 || c.fsync_interval_ms > 3600000))
    return bad("fsync_interval_ms must be between 1 and 3600000, got " + std::to_string(c.fsync_interval_ms));
  return {};
}

std::string encode_topic_record(const topic_record& r) {
  const auto& c = r.config;
  std::string s;
  auto kv = [&](const char* k, const std::string& v) { s += std::string(k) + "=" + v + "\n"; };
  kv("format", "1");
  kv("name", r.name);
  kv("id", std::to_string(r.id));
  kv("partitions", std::to_string(c.partitions));
  kv("replication", std::to_string(c.replication));
  kv("retention_ms", std::to_string(c.retention_ms));
  kv("retention_bytes", std::to_string(c.retention_bytes));
  kv("segment_bytes", std::to_string(c.segment_bytes));
  kv("segment_ms", std::to_string(c.segment_ms));
  kv("max_batch_bytes", std::to_string(c.max_batch_bytes));
  kv("fsync", c.fsync == fsync_mode::interval ? "interval" : "always");
  kv("fsync_interval_ms", std::to_string(c.fsync_interval_ms));
  return s;
}

result<topic_record> decode_topic_record(std::string_view s) {
  topic_record r;
  auto& c = r.config;
  while (!s.empty()) {
    auto nl = s.find('\n');
    auto line = s.substr(0, nl);
    s = nl == std::string_view::npos ? std::string_view{} : s.substr(nl + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    auto k = line.substr(0, eq);
    auto v = line.substr(eq + 1);
    int64_t n = 0;
    auto num = [&](auto& out) {
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec == std::errc{}) out = static_cast<std::remove_reference_t<decltype(out)>>(n);
      return ec == std::errc{};
    };
    bool ok = true;
    if (k == "name") r.name = std::string(v);
    else if (k == "id") ok = num(r.id);
    else if (k == "partitions") ok = num(c.partitions);
    else if (k == "replication") ok = num(c.replication);
    else if (k == "retention_ms") ok = num(c.retention_ms);
    else if (k == "retention_bytes") ok = num(c.retention_bytes);
    else if (k == "segment_bytes") ok = num(c.segment_bytes);
    else if (k == "segment_ms") ok = num(c.segment_ms);
    else if (k == "max_batch_bytes") ok = num(c.max_batch_bytes);
    else if (k == "fsync") c.fsync = v == "interval" ? fsync_mode::interval : fsync_mode::always;
    else if (k == "fsync_interval_ms") ok = num(c.fsync_interval_ms);
    if (!ok) return fail(errc::storage_error, "metadata record has a bad value for " + std::string(k));
  }
  if (r.name.empty()) return fail(errc::storage_error, "metadata record without a topic name");
  return r;
}

}  // namespace ferry::meta
