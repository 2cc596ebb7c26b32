#pragma once
// One named spdlog logger per subsystem (STYLE.md "Logging and metrics"): the one ferryd
// registered under `name` at start-up (its sinks and its pattern with the node id), or, where none
// was registered (unit tests, tools), a clone of the default logger under that name.
#include <spdlog/spdlog.h>

#include <memory>

namespace ferry::runtime {

inline std::shared_ptr<spdlog::logger> named_logger(const char* name) {
  auto existing = spdlog::get(name);
  return existing ? existing : spdlog::default_logger()->clone(name);
}

}  // namespace ferry::runtime
