#include "broker/delay/release.h"

#include <charconv>
#include <optional>
#include <string>

namespace ferry::delay {

void add_release_record(wire::batch_builder& b, const pending_message& m, std::string_view id_prefix) {
  std::string original = std::string(id_prefix) + std::to_string(m.offset);
  std::vector<wire::header_view> hs;
  hs.reserve(m.headers.size() + 1);
  for (const auto& [k, v] : m.headers)
    hs.push_back(wire::header_view{k, v ? std::optional<std::string_view>(*v) : std::nullopt});
  hs.push_back(wire::header_view{delayed_id_header, original});
  b.add(m.key ? std::optional<std::string_view>(*m.key) : std::nullopt,
        m.value ? std::optional<std::string_view>(*m.value) : std::nullopt, hs, m.timestamp, m.due);
}

std::vector<delay_key> released_keys(std::span<const std::byte> batch) {
  std::vector<delay_key> keys;
  (void)wire::for_each_record(batch, [&](const wire::record_view& rv) {
    // The broker's own header is the last one (producers cannot set ferry- headers).
    for (auto it = rv.headers.rbegin(); it != rv.headers.rend(); ++it) {
      if (it->key != delayed_id_header || !it->value) continue;
      auto slash = it->value->rfind('/');
      if (slash == std::string_view::npos) break;
      auto digits = it->value->substr(slash + 1);
      int64_t off = -1;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), off);
      if (ec == std::errc{} && p == digits.data() + digits.size() && off >= 0)
        keys.emplace_back(rv.deliver_at.value_or(0), off);
      break;
    }
  });
  return keys;
}

std::vector<pending_message> delayed_records(std::span<const std::byte> batch) {
  std::vector<pending_message> out;
  auto h = wire::parse_batch_header(batch);
  if (!h || (h->attributes & (wire::attr_control | wire::attr_released)) != 0) return out;
  int64_t append_time = h->append_time;
  (void)wire::for_each_record(batch, [&](const wire::record_view& rv) {
    if (!rv.deliver_at || *rv.deliver_at <= append_time) return;  // due at once: an ordinary message
    pending_message m;
    m.due = *rv.deliver_at;
    m.offset = rv.offset;
    m.append_time = append_time;
    m.timestamp = rv.timestamp;
    if (rv.key) m.key = std::string(*rv.key);
    if (rv.value) m.value = std::string(*rv.value);
    for (const auto& hv : rv.headers)
      m.headers.emplace_back(std::string(hv.key), hv.value ? std::optional<std::string>(*hv.value) : std::nullopt);
    out.push_back(std::move(m));
  });
  return out;
}

}  // namespace ferry::delay
