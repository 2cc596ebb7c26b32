#pragma once
// The "key=value" line encoding of metadata records, and the shared name rule (internal to
// broker/meta).
#include <charconv>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>

#include "broker/base/result.h"

namespace ferry::meta::detail {

// Names of topics and subscriptions: [A-Za-z0-9._-]{1,200}, not "." or "..". `what` names the
// kind ("topic", "subscription") in the message; `code` is the error to return.
[[nodiscard]] result<void> validate_name(std::string_view what, errc code, std::string_view name);

class record_writer {
 public:
  void kv(std::string_view k, std::string_view v) {
    s_.append(k);
    s_ += '=';
    s_.append(v);
    s_ += '\n';
  }
  void kv(std::string_view k, int64_t v) { kv(k, std::string_view(std::to_string(v))); }
  std::string str() && { return std::move(s_); }

 private:
  std::string s_;
};

// Calls fn(key, value) for each "key=value" line; lines without '=' are skipped.
inline void for_each_kv(std::string_view s, const std::function<bool(std::string_view, std::string_view)>& fn,
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

}  // namespace ferry::meta::detail
