#pragma once
// JSON output of ferryctl and ferry-bench, through nlohmann-json (Debian's nlohmann-json3-dev).
// Objects keep their fields in the order they were added (ordered_json), numbers stay numbers,
// and a document is printed compact on one line ({"a":1,"b":"x"}).
//
// Strings: JSON text must be UTF-8, but message keys, values and headers are bytes. json_text()
// passes valid UTF-8 through unchanged and turns each byte that is not part of a valid UTF-8
// sequence into the code point of the same value (the byte read as Latin-1, e.g. 0xFF -> U+00FF):
// the output is always valid JSON, but such bytes do not round-trip exactly. Values meant for
// scripts should be UTF-8.
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ferry::ctl {

using json = nlohmann::ordered_json;

// `s` as a JSON string (see the file comment).
json json_text(std::string_view s);
// json_text(*s), or null if `s` is absent.
json json_text_or_null(const std::optional<std::string>& s);
// `j` as compact text without a trailing newline.
std::string json_line(const json& j);

}  // namespace ferry::ctl
