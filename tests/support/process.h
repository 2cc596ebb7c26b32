#pragma once
// Test support: running other binaries of the project (ferryctl, a consumer to kill -9) from a
// test, with their output captured and a deadline on everything.
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "schema/result.h"

namespace ferry::test {

// Environment for a child: the test's own, without FERRY_BOOTSTRAP, with `overrides` added (or
// replacing what is there).
std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& overrides);

struct run_result {
  int exit_code = -1;  // 128+signal if killed; -1 if it had to be killed after the timeout
  std::string out;
  std::string err;
  std::string describe() const {
    return "exit " + std::to_string(exit_code) + "\nstdout:\n" + out + "\nstderr:\n" + err;
  }
};

// Resident memory of a process in KiB (VmRSS in /proc/PID/status), or -1 if unreadable.
int64_t resident_kib(int pid);
// Whether this build runs under AddressSanitizer (memory figures are then not comparable).
bool built_with_asan();

// Runs argv[0] with argv, feeding `in` on stdin, until it exits or `timeout` passes (then SIGKILL).
run_result run_process(const std::vector<std::string>& argv, const std::string& in,
                       const std::vector<std::pair<std::string, std::string>>& env, std::chrono::milliseconds timeout);

// A child process running in the background; stdout is read line by line, stderr kept.
class child_process {
 public:
  child_process() = default;
  ~child_process();  // SIGKILL and reap if still running
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  [[nodiscard]] result<void> start(const std::vector<std::string>& argv,
                                   const std::vector<std::pair<std::string, std::string>>& env = {});
  // The next line of stdout (without '\n') within `timeout`; false on timeout or EOF.
  bool read_line(std::string& line, std::chrono::milliseconds timeout);
  void kill9();
  // Waits for the exit; returns the exit code, 128+signal, or -1 if still running after `timeout`.
  int wait(std::chrono::milliseconds timeout);
  const std::string& stderr_text();
  int pid() const { return pid_; }

 private:
  void drain_stderr();
  int pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_buf_;
  std::string err_;
};

}  // namespace ferry::test
