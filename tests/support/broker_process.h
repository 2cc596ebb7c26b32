#pragma once
// Test support: a real ferryd process on 127.0.0.1 (STYLE.md, "Tests").
//
//   broker_process  starts ferryd with a fresh temporary data folder and port 0, waits for its
//                   ready file (deadline, never a fixed sleep), and can kill -9, SIGSTOP/SIGCONT,
//                   SIGTERM and restart it on the same data folder.
//   raw_connection  a blocking loopback socket with timeouts, for tests that send arbitrary bytes
//                   or hand-built frames and read one response frame at a time.
//   wait_until      polls a predicate with short waits until it holds or a deadline passes.
//
// Threads: a broker_process is used from one thread (the test's). It forks with
// PR_SET_PDEATHSIG, so a ferryd dies with the thread that started it: start and restart it from
// the test's main thread. Everything else here may be used from any thread, one object per thread.
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "schema/ferry_generated.h"
#include "schema/result.h"

namespace ferry::test {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// Polls `pred` every `poll` until it returns true (true) or `timeout` has passed (false; the
// predicate is evaluated one last time at the deadline).
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds timeout, std::chrono::milliseconds poll = 5ms) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (clock_type::now() >= deadline) return pred();
    std::this_thread::sleep_for(poll);
  }
}

// Path of the ferryd binary under test: FERRYD_PATH from the build, overridable with the
// environment variable FERRYD (to run the suite against another build).
std::string ferryd_path();

struct broker_options {
  int shards = 2;
  std::string log_level = "info";
  std::optional<uint32_t> max_frame_bytes;
  // Small segments by default: tests run in parallel and segments are preallocated.
  std::optional<int64_t> segment_bytes = 8 << 20;
  std::vector<std::string> extra_args;
  // Added to (or replacing) the test's environment, e.g. {"FERRY_FAILPOINTS", "x=crash"}.
  std::vector<std::pair<std::string, std::string>> env;
  std::chrono::milliseconds ready_timeout{30000};
  // RLIMIT_NOFILE (soft and hard) for the ferryd process, e.g. to run it out of file descriptors;
  // unset: inherited from the test.
  std::optional<uint64_t> max_open_files;
};

// One ferryd process and its temporary data folder.
//
// The data folder (mkdtemp under $TMPDIR or /tmp) holds `data/` (ferryd's --data-dir), the ready
// file and `ferryd.log` (stdout and stderr of every run, appended). It is removed by the
// destructor unless FERRY_KEEP_TEST_DATA is set; if the current test has failed, the log's tail
// is printed first. The destructor kills (SIGKILL) and reaps a running broker.
class broker_process {
 public:
  explicit broker_process(broker_options opts = {});
  ~broker_process();
  broker_process(const broker_process&) = delete;
  broker_process& operator=(const broker_process&) = delete;

  // Starts ferryd and waits for its ready file. Fails (with the reason and the log's tail) if
  // the process exits or the deadline passes; a broker that did not get ready is killed.
  [[nodiscard]] ::testing::AssertionResult start();
  // Starts again on the same data folder (the previous process must have exited or be killed
  // first: a running one is killed with SIGKILL). The client port changes.
  [[nodiscard]] ::testing::AssertionResult restart();

  // SIGKILL, then waits for the process; returns its wait status.
  int kill9();
  void sigstop();
  void sigcont();
  // SIGTERM and waits up to `timeout` for the exit. Returns the exit code (0..255), 128+signal if
  // a signal ended it, or -1 if it did not exit in time (it is then killed with SIGKILL).
  int sigterm_and_wait(std::chrono::milliseconds timeout = 30s);
  // Waits up to `timeout` for the process to exit on its own (e.g. a crash failpoint). Returns
  // the same encoding as sigterm_and_wait, or -1 if it is still running (it is left running).
  int wait_exit(std::chrono::milliseconds timeout);
  // Whether the process is still running (reaps it if it has exited).
  bool alive();

  int pid() const { return pid_; }
  uint16_t client_port() const { return client_port_; }
  uint16_t http_port() const { return http_port_; }
  std::string bootstrap() const { return "127.0.0.1:" + std::to_string(client_port_); }
  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path data_dir() const { return root_ / "data"; }
  std::filesystem::path log_path() const { return root_ / "ferryd.log"; }
  // The last `max_bytes` of the broker's log.
  std::string log_tail(size_t max_bytes = 8192) const;
  // Options used by the next start()/restart(), e.g. to disarm a failpoint before restarting.
  broker_options& options() { return opts_; }

 private:
  void reap_blocking();
  static int decode_status(int status);

  broker_options opts_;
  std::filesystem::path root_;
  int pid_ = -1;
  int last_status_ = 0;
  uint16_t client_port_ = 0;
  uint16_t http_port_ = 0;
};

// A response frame read off a socket, decoded. `bytes` owns the frame (8-byte aligned).
struct response_frame {
  std::vector<std::byte> bytes;
  const ferry::wire::Response* resp = nullptr;
};

// A blocking TCP connection to 127.0.0.1:port, with send/receive timeouts.
class raw_connection {
 public:
  raw_connection() = default;
  ~raw_connection();
  raw_connection(raw_connection&& o) noexcept : fd_(std::exchange(o.fd_, -1)), timeout_(o.timeout_) {}
  raw_connection& operator=(raw_connection&& o) noexcept;
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;

  [[nodiscard]] static result<raw_connection> connect(uint16_t port, std::chrono::milliseconds timeout = 5s);

  // Sends every byte; errc::connection_closed if the peer has gone.
  [[nodiscard]] result<void> send_bytes(std::span<const std::byte> bytes);
  [[nodiscard]] result<void> send_bytes(std::string_view bytes);
  // Reads one frame (length prefix included). errc::connection_closed on EOF or reset,
  // errc::timeout if nothing complete arrived in time.
  [[nodiscard]] result<std::vector<std::byte>> read_frame(std::optional<std::chrono::milliseconds> timeout = {});
  // read_frame + wire::decode_response.
  [[nodiscard]] result<response_frame> read_response(std::optional<std::chrono::milliseconds> timeout = {});
  // Sends one frame and reads the response.
  [[nodiscard]] result<response_frame> roundtrip(std::span<const std::byte> frame);
  // True once the peer has closed the connection (EOF or reset) within `timeout`; false if the
  // connection is still open then. Bytes that arrive meanwhile are discarded.
  bool wait_closed(std::chrono::milliseconds timeout);

  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  int fd() const { return fd_; }
  void close();

 private:
  [[nodiscard]] result<void> read_exact(std::byte* p, size_t n, clock_type::time_point deadline);

  int fd_ = -1;
  std::chrono::milliseconds timeout_{10000};
};

}  // namespace ferry::test
