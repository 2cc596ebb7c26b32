#pragma once
// Test support: finding sanitizer reports in what a child process wrote (scripts/sanitize.sh runs
// the suite with ASan+UBSan and TSan builds). A broker or tool that hits a sanitizer error halts
// (halt_on_error=1) and exits non-zero, but a test may not look at its exit status or its log (it
// kills it, or restarts it anyway): broker_process, run_process and child_process therefore scan
// the output and fail the current test when they find a report.
#include <optional>
#include <string>
#include <string_view>

namespace ferry::test {

// The first sanitizer report in `text` (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer,
// ThreadSanitizer): its first line and up to 40 lines after it, or nullopt if there is none.
std::optional<std::string> sanitizer_report(std::string_view text);

// ADD_FAILURE() with the report if `text` (the output of `who`) holds one. Returns whether it did.
bool fail_on_sanitizer_report(std::string_view who, std::string_view text);

}  // namespace ferry::test
