#pragma once
// ferryctl's parsing and formatting helpers: durations, ages, time left, RFC 3339 times, header
// flags, seek targets, dead-letter ids, text for JSON, aligned tables, argument errors. Pure
// functions, unit tested in client/test/client_test.cc.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::ctl {

// "500ms", "30s", "15m", "2h", "7d" (a non-negative integer and one unit; "0" alone is allowed)
// to milliseconds; nullopt if malformed or out of range.
std::optional<int64_t> parse_duration_ms(std::string_view s);

// RFC 3339 date-time ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.250+02:00"; 't'/'z' and a
// space for 'T' accepted) to milliseconds since the epoch; nullopt if malformed.
std::optional<int64_t> parse_rfc3339_ms(std::string_view s);
// Milliseconds since the epoch as RFC 3339 UTC with milliseconds ("2024-05-01T12:00:00.250Z").
std::string format_rfc3339_ms(int64_t ms);

// A duration for people, in the largest unit that divides it exactly: "7d", "15m", "30s",
// "1500ms", "0"; "default" for a negative value (the wire's "broker default").
std::string format_duration_ms(int64_t ms);

// How long ago something happened, truncated to one unit: "850ms", "3s", "2m", "5h", "4d".
// A negative age (clock skew) is "0s".
std::string format_age_ms(int64_t age_ms);

// Time left until something is due, in its two largest units, truncated (never claims more time
// than there is): "14m59s", "2h5m", "3d4h", "1h", "45s", "850ms"; "due" when nothing is left.
std::string format_time_left_ms(int64_t left_ms);

// A non-negative decimal integer, nothing else around it; nullopt if malformed or out of range.
std::optional<int64_t> parse_decimal(std::string_view s);

// `sub seek --to`: "earliest", "latest", an RFC 3339 time or a non-negative offset.
struct seek_to {
  enum class kind { earliest, latest, time, offset };
  kind what = kind::earliest;
  int64_t value = 0;  // time: ms since the epoch; offset: the offset
};
std::optional<seek_to> parse_seek_to(std::string_view s);

// "PARTITION/OFFSET" (a message's position in the dead-letter topic); nullopt if malformed.
std::optional<std::pair<int32_t, int64_t>> parse_partition_offset(std::string_view s);

// "k=v" to {k, v} (the value may contain '='; the key may not be empty); nullopt if malformed.
std::optional<std::pair<std::string, std::string>> parse_header(std::string_view s);

// `s` as valid UTF-8: unchanged if it is; otherwise each byte that is not part of a valid UTF-8
// sequence (overlong forms, surrogates and code points above U+10FFFF are not) becomes the code
// point of the same value, i.e. the byte read as Latin-1 (0xFF -> U+00FF, "\xc3\xbf").
std::string utf8_or_latin1(std::string_view s);

// A table for people: columns padded to the widest cell, two spaces apart.
class table {
 public:
  explicit table(std::vector<std::string> headers) { rows_.push_back(std::move(headers)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string str() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// For table cells: control characters and invalid UTF-8 as \xNN, so a value cannot break a row.
std::string printable(std::string_view s);

// ---- argument errors, as a person would write them ----

// What is wrong with `text` as a whole number from `lo` to `hi` (decimal, an optional '-') for an
// option of a type holding type_min..type_max, or nullopt if nothing is. The bounds in words:
// "must be between 1 and 10000, got 0"; "must be 0 or more, got -1" (hi == type_max: no upper
// bound of its own, and then "must be at most 2147483647, got 3000000000"); "must be a whole
// number between 1 and 10000, got 'abc'".
std::optional<std::string> whole_number_problem(std::string_view text, int64_t lo, int64_t hi, int64_t type_min,
                                                int64_t type_max);

// "a", "a or b", "a, b or c".
std::string one_of_text(const std::vector<std::string>& choices);
// What is wrong with `text` as one of `choices`, or nullopt: "must be table or json, got 'yaml'".
std::optional<std::string> choice_problem(std::string_view text, const std::vector<std::string>& choices);

}  // namespace ferry::ctl
