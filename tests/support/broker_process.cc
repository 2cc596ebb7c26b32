#include "tests/support/broker_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "schema/frame.h"
#include "schema/record_batch.h"
#include "tests/support/process.h"
#include "tests/support/sanitizer_report.h"

namespace ferry::test {

namespace {

// Reads a whole small file; nullopt if it does not exist (yet).
std::optional<std::string> read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The integer after `"key":` in a flat JSON object; nullopt if absent.
std::optional<long> json_int(const std::string& json, const std::string& key) {
  auto pos = json.find("\"" + key + "\"");
  if (pos == std::string::npos) return std::nullopt;
  pos = json.find(':', pos);
  if (pos == std::string::npos) return std::nullopt;
  ++pos;
  while (pos < json.size() && (json[pos] == ' ' || json[pos] == '\t')) ++pos;
  char* end = nullptr;
  long v = std::strtol(json.c_str() + pos, &end, 10);
  if (end == json.c_str() + pos) return std::nullopt;
  return v;
}

bool keep_test_data() {
  const char* v = std::getenv("FERRY_KEEP_TEST_DATA");
  return v && *v && std::string_view(v) != "0";
}

}  // namespace

std::string ferryd_path() {
  if (const char* v = std::getenv("FERRYD"); v && *v) return v;
#ifdef FERRYD_PATH
  return FERRYD_PATH;
#else
  return "ferryd";
#endif
}

broker_process::broker_process(broker_options opts) : opts_(std::move(opts)) {
  std::string base = "/tmp";
  if (const char* t = std::getenv("TMPDIR"); t && *t) base = t;
  std::string tmpl = base + "/ferry-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << tmpl << ") failed: " << std::strerror(errno);
    root_ = std::filesystem::temp_directory_path() / ("ferry-test-fallback-" + std::to_string(::getpid()));
    std::filesystem::create_directories(root_);
  } else {
    root_ = buf.data();
  }
}

broker_process::~broker_process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGCONT);  // a stopped process still dies of SIGKILL, but be explicit
    ::kill(pid_, SIGKILL);
    reap_blocking();
  }
  // A sanitizer build of ferryd halts on its first report; whatever the test did with the process
  // afterwards (killed it, restarted it), the report in the log fails the test.
  if (auto log = read_file(log_path())) fail_on_sanitizer_report("ferryd (" + log_path().string() + ")", *log);
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  bool failed = info != nullptr && info->result() != nullptr && info->result()->Failed();
  if (failed) {
    std::cerr << "---- ferryd log (" << log_path().string() << "), last bytes ----\n"
              << log_tail(16384) << "\n---- end of ferryd log ----\n";
  }
  if (keep_test_data() || root_.empty()) {
    if (!root_.empty()) std::cerr << "FERRY_KEEP_TEST_DATA: kept " << root_.string() << "\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

std::string broker_process::log_tail(size_t max_bytes) const {
  auto s = read_file(log_path());
  if (!s) return "(no log)";
  if (s->size() > max_bytes) return "..." + s->substr(s->size() - max_bytes);
  return *s;
}

int broker_process::decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void broker_process::reap_blocking() {
  if (pid_ <= 0) return;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  last_status_ = status;
  pid_ = -1;
}

bool broker_process::alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    last_status_ = status;
    pid_ = -1;
    return false;
  }
  return r == 0;
}

::testing::AssertionResult broker_process::start() {
  if (pid_ > 0) return ::testing::AssertionFailure() << "ferryd already running (pid " << pid_ << ")";
  std::filesystem::create_directories(data_dir());
  auto ready = root_ / "ready.json";
  std::error_code ec;
  std::filesystem::remove(ready, ec);
  client_port_ = http_port_ = 0;

  std::vector<std::string> args = {ferryd_path(),
                                   "--data-dir",
                                   data_dir().string(),
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--http",
                                   "127.0.0.1:0",
                                   "--ready-file",
                                   ready.string(),
                                   "--shards",
                                   std::to_string(opts_.shards),
                                   "--log-level",
                                   opts_.log_level};
  if (opts_.max_frame_bytes) {
    args.push_back("--max-frame-bytes");
    args.push_back(std::to_string(*opts_.max_frame_bytes));
  }
  if (opts_.segment_bytes) {
    args.push_back("--segment-bytes");
    args.push_back(std::to_string(*opts_.segment_bytes));
  }
  args.insert(args.end(), opts_.extra_args.begin(), opts_.extra_args.end());

  std::vector<std::string> env = child_environment(opts_.env);

  // Everything the child touches is prepared before fork(): after fork in a multi-threaded
  // process only async-signal-safe calls are allowed.
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string log = log_path().string();
  {
    std::ofstream f(log, std::ios::app);
    f << "==== test harness: starting";
    for (auto& a : args) f << ' ' << a;
    for (auto& [k, v] : opts_.env) f << " [env " << k << '=' << v << ']';
    f << " ====\n";
  }
  std::optional<rlimit> nofile;
  if (opts_.max_open_files) nofile = rlimit{*opts_.max_open_files, *opts_.max_open_files};
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return ::testing::AssertionFailure() << "fork failed: " << std::strerror(errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::setpgid(0, 0);  // a Ctrl-C on the test run does not reach the broker first
    if (nofile && ::setrlimit(RLIMIT_NOFILE, &*nofile) != 0) ::_exit(125);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || devnull < 0) ::_exit(126);
    ::dup2(devnull, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "test harness: execve of ferryd failed\n";
    [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  pid_ = pid;

  auto deadline = clock_type::now() + opts_.ready_timeout;
  for (;;) {
    if (auto s = read_file(ready); s && !s->empty()) {
      auto port = json_int(*s, "client_port");
      auto http = json_int(*s, "http_port");
      auto rpid = json_int(*s, "pid");
      if (!port || *port <= 0 || *port > 65535)
        return ::testing::AssertionFailure() << "ready file " << ready << " has no valid client_port: " << *s;
      if (rpid && *rpid != pid_)
        return ::testing::AssertionFailure() << "ready file pid " << *rpid << " is not the started process " << pid_;
      client_port_ = static_cast<uint16_t>(*port);
      http_port_ = http ? static_cast<uint16_t>(*http) : 0;
      return ::testing::AssertionSuccess();
    }
    if (!alive()) {
      return ::testing::AssertionFailure()
             << "ferryd exited before it was ready (status " << decode_status(last_status_) << "); log tail:\n"
             << log_tail(4096);
    }
    if (clock_type::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      reap_blocking();
      return ::testing::AssertionFailure() << "ferryd not ready after " << opts_.ready_timeout.count()
                                           << " ms (no ready file); killed it. Log tail:\n"
                                           << log_tail(4096);
    }
    std::this_thread::sleep_for(5ms);
  }
}

::testing::AssertionResult broker_process::restart() {
  if (pid_ > 0) kill9();
  return start();
}

int broker_process::kill9() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGKILL);
  reap_blocking();
  std::ofstream(log_path(), std::ios::app) << "==== test harness: killed with SIGKILL ====\n";
  return decode_status(last_status_);
}

void broker_process::sigstop() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void broker_process::sigcont() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

int broker_process::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return decode_status(last_status_);
  if (wait_until([&] { return !alive(); }, timeout, 5ms)) return decode_status(last_status_);
  return -1;
}

int broker_process::sigterm_and_wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int rc = wait_exit(timeout);
  if (rc == -1 && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    reap_blocking();
    std::ofstream(log_path(), std::ios::app) << "==== test harness: no exit after SIGTERM, killed with SIGKILL ====\n";
    return -1;
  }
  return rc;
}

// ---- raw_connection -------------------------------------------------------------------------

raw_connection::~raw_connection() { close(); }

raw_connection& raw_connection::operator=(raw_connection&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    timeout_ = o.timeout_;
  }
  return *this;
}

void raw_connection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

result<raw_connection> raw_connection::connect(uint16_t port, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail(errc::unknown, std::string("socket: ") + std::strerror(errno));
  raw_connection c;
  c.fd_ = fd;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return fail(errc::connection_closed, std::string("connect: ") + std::strerror(errno));
    pollfd p{fd, POLLOUT, 0};
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r <= 0) return fail(errc::timeout, "connect to port " + std::to_string(port) + " timed out");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail(errc::connection_closed, std::string("connect: ") + std::strerror(err));
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return c;
}

result<void> raw_connection::send_bytes(std::string_view bytes) {
  return send_bytes(std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
}

result<void> raw_connection::send_bytes(std::span<const std::byte> bytes) {
  if (fd_ < 0) return fail(errc::connection_closed, "not connected");
  auto deadline = clock_type::now() + timeout_;
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
      if (left <= 0) return fail(errc::timeout, "send timed out");
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left));
      continue;
    }
    return fail(errc::connection_closed, std::string("send: ") + std::strerror(errno));
  }
  return {};
}

result<void> raw_connection::read_exact(std::byte* p, size_t n, clock_type::time_point deadline) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::recv(fd_, p + done, n - done, 0);
    if (r > 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return fail(errc::connection_closed, "connection closed by the broker");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
      if (left <= 0) return fail(errc::timeout, "no complete frame before the timeout");
      pollfd pf{fd_, POLLIN, 0};
      ::poll(&pf, 1, static_cast<int>(left));
      continue;
    }
    return fail(errc::connection_closed, std::string("recv: ") + std::strerror(errno));
  }
  return {};
}

result<std::vector<std::byte>> raw_connection::read_frame(std::optional<std::chrono::milliseconds> timeout) {
  if (fd_ < 0) return fail(errc::connection_closed, "not connected");
  auto deadline = clock_type::now() + timeout.value_or(timeout_);
  std::vector<std::byte> frame(wire::frame_prefix_bytes);
  if (auto r = read_exact(frame.data(), frame.size(), deadline); !r) return r.error();
  uint32_t len = wire::get_le32(frame.data());
  if (len > (256u << 20)) return fail(errc::frame_too_large, "response length prefix " + std::to_string(len));
  frame.resize(wire::frame_prefix_bytes + len);
  if (auto r = read_exact(frame.data() + wire::frame_prefix_bytes, len, deadline); !r) return r.error();
  return frame;
}

result<response_frame> raw_connection::read_response(std::optional<std::chrono::milliseconds> timeout) {
  auto f = read_frame(timeout);
  if (!f) return f.error();
  response_frame out;
  out.bytes = std::move(*f);  // vector storage from operator new: aligned well beyond 8 bytes
  auto r = wire::decode_response(out.bytes);
  if (!r) return r.error();
  out.resp = *r;
  return out;
}

result<response_frame> raw_connection::roundtrip(std::span<const std::byte> frame) {
  if (auto r = send_bytes(frame); !r) return r.error();
  return read_response();
}

bool raw_connection::wait_closed(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return true;
  auto deadline = clock_type::now() + timeout;
  std::byte buf[4096];
  for (;;) {
    ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
    if (r == 0) return true;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
    if (r > 0) continue;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    if (left <= 0) return false;
    pollfd pf{fd_, POLLIN, 0};
    ::poll(&pf, 1, static_cast<int>(left));
  }
}

}  // namespace ferry::test
