#pragma once
// One named spdlog logger per subsystem (STYLE.md "Logging and metrics"): the one ferryd
// registered under `name` at start-up (its sinks and its pattern with the node id), or, where none
// was registered (unit tests, tools), a clone of the default logger under that name.
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>

namespace ferry::runtime {

inline std::shared_ptr<spdlog::logger> named_logger(const char* name) {
  auto existing = spdlog::get(name);
  return existing ? existing : spdlog::default_logger()->clone(name);
}

// A subsystem's logger, looked up on first use (after ferryd registered its loggers) and kept:
//   namespace { runtime::subsystem_logger logger{"net"}; }   ...   logger()->info(...);
class subsystem_logger {
 public:
  explicit constexpr subsystem_logger(const char* name) : name_(name) {}
  subsystem_logger(const subsystem_logger&) = delete;
  subsystem_logger& operator=(const subsystem_logger&) = delete;

  const std::shared_ptr<spdlog::logger>& operator()() {
    std::call_once(once_, [this] { logger_ = named_logger(name_); });
    return logger_;
  }

 private:
  const char* name_;
  std::once_flag once_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace ferry::runtime
