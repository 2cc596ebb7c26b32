#include "client/ferryctl/json.h"

#include "client/ferryctl/format.h"

namespace ferry::ctl {

json json_text(std::string_view s) { return json(utf8_or_latin1(s)); }

json json_text_or_null(const std::optional<std::string>& s) { return s ? json_text(*s) : json(nullptr); }

std::string json_line(const json& j) {
  // Every string should have come through json_text; should one not have, an invalid byte
  // becomes U+FFFD rather than an exception.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace ferry::ctl
