#pragma once
// The main() of every Ferry program (ferryd, ferryctl, ferry-bench): anything thrown past the
// program's own error handling ends the process with a message and exit code 1 instead of
// std::terminate's abort.
#include <cstdio>
#include <exception>

namespace ferry {

inline int guarded_main(const char* program, int (*body)(int, char**), int argc, char** argv) noexcept {
  try {
    return body(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: fatal: %s\n", program, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: fatal: unknown exception\n", program);
  }
  return 1;
}

}  // namespace ferry
