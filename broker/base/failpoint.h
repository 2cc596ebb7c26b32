#pragma once
// Named failpoints, compiled in only when FERRY_FAILPOINTS is defined (test builds).
// A test (or ferryd via the FERRY_FAILPOINTS environment variable, "name=action,name=action")
// arms a point; code calls FERRY_FAILPOINT("log.after_append_before_sync") at the spot.
// Actions: "crash" (_exit(137) at once, like kill -9), "error" (the macro's result is true:
// the caller fails the operation as an I/O error), "sleep-N" (the calling thread pauses N ms, then
// goes on: a slow disk).
#include <string_view>

namespace ferry::failpoint {
void arm(std::string_view name, std::string_view action);
void disarm_all();
void arm_from_env();              // reads FERRY_FAILPOINTS
bool hit(std::string_view name);  // true if the point is armed with "error"; exits on "crash"
}  // namespace ferry::failpoint

#ifdef FERRY_FAILPOINTS
#define FERRY_FAILPOINT(name) (::ferry::failpoint::hit(name))
#else
#define FERRY_FAILPOINT(name) (false)
#endif
