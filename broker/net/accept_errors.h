#pragma once
// broker/net internal (server.cc, http_server.cc): what an accept loop does when accept() fails.
// EMFILE/ENFILE (out of file descriptors), ENOBUFS, ENOMEM and the like leave the pending
// connection in the listen backlog, so an immediate retry fails again at once: a loop that just
// `continue`s spins a core for as long as the condition lasts, and one that exits stops serving
// for good. Instead the loop counts the error, logs it at most once a second (with how many it
// left unlogged), waits `backoff` and tries again, for ever.
#include <spdlog/spdlog.h>

#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "broker/runtime/metrics.h"

namespace ferry::net {

class accept_errors {
 public:
  static constexpr std::chrono::milliseconds backoff{100};

  // `listener` names the loop in logs and in the metric's label ("client", "http").
  explicit accept_errors(std::string listener)
      : listener_(std::move(listener)),
        errors_(metrics::get_counter("ferry_accept_errors_total",
                                     "accept() failures (e.g. out of file descriptors); the loop backs off and retries",
                                     {{"listener", listener_}})) {}

  // Counts `ec` and logs it unless a line went out less than a second ago. Call from the loop's
  // own thread only.
  void report(spdlog::logger& log, const boost::system::error_code& ec) {
    errors_.inc();
    auto now = std::chrono::steady_clock::now();
    if (now < next_log_) {
      ++unlogged_;
      return;
    }
    next_log_ = now + std::chrono::seconds(1);
    log.warn("{} listener: accept failed: {} ({} more since the last report); retrying in {} ms", listener_,
             ec.message(), unlogged_, backoff.count());
    unlogged_ = 0;
  }

 private:
  std::string listener_;
  metrics::counter& errors_;
  std::chrono::steady_clock::time_point next_log_{};
  uint64_t unlogged_ = 0;
};

}  // namespace ferry::net
