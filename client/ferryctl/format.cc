#include "client/ferryctl/format.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iterator>
#include <limits>

namespace ferry::ctl {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one (overlong forms,
// surrogates and code points above U+10FFFF are invalid).
size_t utf8_sequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  // Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::optional<int64_t> parse_duration_ms(std::string_view s) {
  if (s == "0") return 0;
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0 || i == s.size()) return std::nullopt;
  int64_t n = 0;
  auto r = std::from_chars(s.data(), s.data() + i, n);
  if (r.ec != std::errc{}) return std::nullopt;
  std::string_view unit = s.substr(i);
  int64_t mul;
  if (unit == "ms")
    mul = 1;
  else if (unit == "s")
    mul = 1000;
  else if (unit == "m")
    mul = 60'000;
  else if (unit == "h")
    mul = 3'600'000;
  else if (unit == "d")
    mul = 86'400'000;
  else
    return std::nullopt;
  if (n > std::numeric_limits<int64_t>::max() / mul) return std::nullopt;
  return n * mul;
}

std::optional<int64_t> parse_rfc3339_ms(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (s.size() < 20 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) || s[13] != ':' ||
      !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
    return std::nullopt;
  static constexpr int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap) return std::nullopt;
  if (sec == 60) sec = 59;  // a leap second: the closest representable instant
  size_t i = 19;
  int64_t frac_ms = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    int scale = 100;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      frac_ms += int64_t{s[i] - '0'} * scale;
      scale /= 10;
      ++i;
    }
    if (i == start) return std::nullopt;
  }
  if (i >= s.size()) return std::nullopt;
  int64_t offset_min = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    int oh, om;
    if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(s, i + 4, 2, om) || oh > 23 ||
        om > 59)
      return std::nullopt;
    offset_min = (int64_t{oh} * 60 + om) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * 86400 + int64_t{h} * 3600 + int64_t{mi} * 60 + sec - offset_min * 60;
  return secs * 1000 + frac_ms;
}

std::string format_rfc3339_ms(int64_t ms) {
  int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  int64_t milli = ms - secs * 1000;
  int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  int64_t rem = secs - days * 86400;
  // civil_from_days (Hinnant).
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[128];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", static_cast<long long>(y), m, d,
                static_cast<long long>(rem / 3600), static_cast<long long>(rem / 60 % 60),
                static_cast<long long>(rem % 60), static_cast<long long>(milli));
  return buf;
}

std::string format_duration_ms(int64_t ms) {
  if (ms < 0) return "default";
  if (ms == 0) return "0";
  struct unit {
    int64_t ms;
    const char* name;
  };
  for (auto u : {unit{86'400'000, "d"}, unit{3'600'000, "h"}, unit{60'000, "m"}, unit{1000, "s"}})
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.name;
  return std::to_string(ms) + "ms";
}

std::string format_age_ms(int64_t age_ms) {
  if (age_ms < 0) return "0s";
  if (age_ms < 1000) return std::to_string(age_ms) + "ms";
  if (age_ms < 60'000) return std::to_string(age_ms / 1000) + "s";
  if (age_ms < 3'600'000) return std::to_string(age_ms / 60'000) + "m";
  if (age_ms < 86'400'000) return std::to_string(age_ms / 3'600'000) + "h";
  return std::to_string(age_ms / 86'400'000) + "d";
}

std::string format_time_left_ms(int64_t left_ms) {
  if (left_ms <= 0) return "due";
  if (left_ms < 1000) return std::to_string(left_ms) + "ms";
  struct unit {
    int64_t ms;
    const char* name;
  };
  static constexpr unit units[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  for (size_t i = 0; i < std::size(units); ++i) {
    if (left_ms < units[i].ms) continue;
    std::string out = std::to_string(left_ms / units[i].ms) + units[i].name;
    if (i + 1 < std::size(units)) {
      int64_t next = left_ms % units[i].ms / units[i + 1].ms;
      if (next > 0) out += std::to_string(next) + units[i + 1].name;
    }
    return out;
  }
  return "due";  // unreachable: left_ms >= 1000 matches the seconds unit
}

std::optional<int64_t> parse_decimal(std::string_view s) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return std::nullopt;
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<seek_to> parse_seek_to(std::string_view s) {
  if (s == "earliest") return seek_to{seek_to::kind::earliest, 0};
  if (s == "latest") return seek_to{seek_to::kind::latest, 0};
  if (auto off = parse_decimal(s)) return seek_to{seek_to::kind::offset, *off};
  if (auto t = parse_rfc3339_ms(s)) return seek_to{seek_to::kind::time, *t};
  return std::nullopt;
}

std::optional<std::pair<int32_t, int64_t>> parse_partition_offset(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto p = parse_decimal(s.substr(0, slash));
  auto o = parse_decimal(s.substr(slash + 1));
  if (!p || !o || *p > std::numeric_limits<int32_t>::max()) return std::nullopt;
  return std::pair{static_cast<int32_t>(*p), *o};
}

std::optional<std::pair<std::string, std::string>> parse_header(std::string_view s) {
  auto eq = s.find('=');
  if (eq == std::string_view::npos || eq == 0) return std::nullopt;
  return std::pair{std::string(s.substr(0, eq)), std::string(s.substr(eq + 1))};
}

std::string utf8_or_latin1(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    // U+0080..U+00FF in UTF-8: two bytes.
    auto c = static_cast<unsigned char>(s[i]);
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    ++i;
  }
  return out;
}

std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char buf[8];
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c >= 0x80 ? utf8_sequence(s, i) : 1;
    if (c >= 0x80 && n > 0) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    if (c < 0x20 || c == 0x7f || c >= 0x80) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  return out;
}

std::optional<std::string> whole_number_problem(std::string_view text, int64_t lo, int64_t hi, int64_t type_min,
                                                int64_t type_max) {
  const bool no_lo = lo <= type_min, no_hi = hi >= type_max;
  const std::string range = no_lo && no_hi ? ""
                            : no_hi        ? std::to_string(lo) + " or more"
                            : no_lo        ? std::to_string(hi) + " or less"
                                           : "between " + std::to_string(lo) + " and " + std::to_string(hi);
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto r = std::from_chars(text.data(), end, v);
  const bool overflow = r.ec == std::errc::result_out_of_range;
  if (text.empty() || r.ptr != end || (r.ec != std::errc{} && !overflow))
    return "must be a whole number" + (range.empty() ? "" : " " + range) + ", got '" + printable(text) + "'";
  const bool negative = text[0] == '-';
  const bool too_big = overflow ? !negative : v > hi;
  const bool too_small = overflow ? negative : v < lo;
  // A side without a bound of its own: the limit of the option's type.
  if (too_big && no_hi) return "must be at most " + std::to_string(type_max) + ", got " + std::string(text);
  if (too_small && no_lo) return "must be at least " + std::to_string(type_min) + ", got " + std::string(text);
  if (too_big || too_small) return "must be " + range + ", got " + std::string(text);
  return std::nullopt;
}

std::string one_of_text(const std::vector<std::string>& choices) {
  std::string out;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) out += i + 1 == choices.size() ? " or " : ", ";
    out += choices[i];
  }
  return out;
}

std::optional<std::string> choice_problem(std::string_view text, const std::vector<std::string>& choices) {
  for (const auto& c : choices)
    if (text == c) return std::nullopt;
  return "must be " + one_of_text(choices) + ", got '" + printable(text) + "'";
}

std::string table::str() const {
  std::vector<size_t> width;
  for (const auto& r : rows_) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows_) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 2, ' ');
    }
    out += line;
    out.push_back('\n');
  }
  return out;
}

}  // namespace ferry::ctl
