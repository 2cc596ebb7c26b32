#include "broker/meta/topic_config.h"

#include <cstdio>

#include "broker/meta/legacy_text.h"

namespace ferry::meta {

namespace detail {
result<void> validate_name(std::string_view what, errc code, std::string_view name) {
  std::string w(what);
  if (name.empty() || name.size() > 200)
    return fail(code, w + " name must be 1 to 200 characters, got " + std::to_string(name.size()));
  if (name == "." || name == "..") return fail(code, w + " name cannot be '.' or '..'");
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      char shown[8];
      if (c >= 0x20 && c < 0x7f)
        std::snprintf(shown, sizeof shown, "%c", c);
      else
        std::snprintf(shown, sizeof shown, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      std::string m = w;
      m += " name '";
      m += name.substr(0, 64);
      m += "' has invalid character '";
      m += shown;
      m += "' (allowed: A-Z a-z 0-9 . _ -)";
      return fail(code, std::move(m));
    }
  }
  return {};
}
}  // namespace detail

result<void> validate_topic_name(std::string_view name) {
  return detail::validate_name("topic", errc::invalid_topic_name, name);
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
  constexpr int64_t ten_years = 10LL * 366 * 24 * 3600 * 1000;
  if (c.max_delay_ms < 0 || c.max_delay_ms > ten_years)
    return bad("max_delay_ms must be between 0 and 10 years, got " + std::to_string(c.max_delay_ms));
  return {};
}

}  // namespace ferry::meta
