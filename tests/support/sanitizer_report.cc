#include "tests/support/sanitizer_report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>

namespace ferry::test {

namespace {
// The lines each sanitizer runtime (gcc's and clang's) starts a report with.
constexpr std::array<std::string_view, 6> markers = {
    "ERROR: AddressSanitizer",  "ERROR: LeakSanitizer",
    "WARNING: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer",
    "ERROR: ThreadSanitizer",   "ERROR: UndefinedBehaviorSanitizer",
};
// A UBSan report starts with "file:line:col: runtime error: ..." (the SUMMARY line follows it).
constexpr std::string_view ubsan_line = ": runtime error: ";
}  // namespace

std::optional<std::string> sanitizer_report(std::string_view text) {
  size_t first = std::string_view::npos;
  for (auto m : markers) first = std::min(first, text.find(m));
  if (auto u = text.find(ubsan_line); u != std::string_view::npos) first = std::min(first, u);
  if (first == std::string_view::npos) return std::nullopt;
  size_t begin = text.rfind('\n', first);
  begin = begin == std::string_view::npos ? 0 : begin + 1;
  size_t end = begin;
  for (int lines = 0; lines < 41 && end != std::string_view::npos && end < text.size(); ++lines) {
    end = text.find('\n', end);
    if (end != std::string_view::npos) ++end;
  }
  return std::string(text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
}

bool fail_on_sanitizer_report(std::string_view who, std::string_view text) {
  auto r = sanitizer_report(text);
  if (!r) return false;
  ADD_FAILURE() << who << " reported a sanitizer error:\n" << *r;
  return true;
}

}  // namespace ferry::test
