#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>

#include "tests/support/sanitizer_report.h"

extern char** environ;

namespace ferry::test {

int64_t resident_kib(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

bool built_with_asan() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

using steady = std::chrono::steady_clock;

std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto k = kv.substr(0, kv.find('='));
    bool drop = k == "FERRY_BOOTSTRAP";
    for (auto& [ok, ov] : overrides) drop = drop || k == ok;
    if (!drop) env.emplace_back(kv);
  }
  for (auto& [k, v] : overrides) {
    std::string kv = k;
    kv += '=';
    kv += v;
    env.push_back(std::move(kv));
  }
  return env;
}

namespace {

struct spawned {
  int pid = -1;
  int in = -1, out = -1, err = -1;
};

// fork + execve with stdin/stdout/stderr on pipes. The child dies with the test (PDEATHSIG).
result<spawned> spawn(const std::vector<std::string>& argv_s, const std::vector<std::string>& env_s) {
  std::vector<std::string> args = argv_s, envs = env_s;
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  int pin[2], pout[2], perr[2];
  if (::pipe2(pin, O_CLOEXEC) || ::pipe2(pout, O_CLOEXEC) || ::pipe2(perr, O_CLOEXEC))
    return fail(errc::unknown, std::string("pipe: ") + std::strerror(errno));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return fail(errc::unknown, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(pin[0], 0);
    ::dup2(pout[1], 1);
    ::dup2(perr[1], 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(pin[0]);
  ::close(pout[1]);
  ::close(perr[1]);
  return spawned{pid, pin[1], pout[0], perr[0]};
}

int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

run_result run_process(const std::vector<std::string>& argv, const std::string& in,
                       const std::vector<std::pair<std::string, std::string>>& env, std::chrono::milliseconds timeout) {
  run_result res;
  auto sp = spawn(argv, child_environment(env));
  if (!sp) {
    res.err = sp.error().to_string();
    return res;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::fcntl(sp->in, F_SETFL, O_NONBLOCK);
  size_t written = 0;
  int in_fd = sp->in;
  if (in.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  int out_fd = sp->out, err_fd = sp->err;
  auto deadline = steady::now() + timeout;
  bool timed_out = false;
  while (out_fd >= 0 || err_fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    ::poll(p, 3, static_cast<int>(left));
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? out_fd : err_fd;
      if (fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? res.out : res.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fd);
        fd = -1;
      }
    }
    if (in_fd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(in_fd, in.data() + written, in.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) written = in.size();
      if (written == in.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd})
    if (fd >= 0) ::close(fd);
  if (timed_out) ::kill(sp->pid, SIGKILL);
  int status = 0;
  while (::waitpid(sp->pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    res.exit_code = -1;
    res.err += "\n(test harness: killed after " + std::to_string(timeout.count()) + " ms)";
  } else {
    res.exit_code = decode(status);
  }
  fail_on_sanitizer_report(argv.empty() ? "child process" : argv[0], res.err);
  return res;
}

child_process::~child_process() {
  kill9();
  drain_stderr();
  fail_on_sanitizer_report("child process", err_);
  for (int fd : {out_fd_, err_fd_})
    if (fd >= 0) ::close(fd);
}

result<void> child_process::start(const std::vector<std::string>& argv,
                                  const std::vector<std::pair<std::string, std::string>>& env) {
  auto sp = spawn(argv, child_environment(env));
  if (!sp) return sp.error();
  ::close(sp->in);
  pid_ = sp->pid;
  out_fd_ = sp->out;
  err_fd_ = sp->err;
  ::fcntl(err_fd_, F_SETFL, O_NONBLOCK);
  return {};
}

bool child_process::read_line(std::string& line, std::chrono::milliseconds timeout) {
  auto deadline = steady::now() + timeout;
  for (;;) {
    if (auto nl = out_buf_.find('\n'); nl != std::string::npos) {
      line = out_buf_.substr(0, nl);
      out_buf_.erase(0, nl + 1);
      return true;
    }
    if (out_fd_ < 0) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    if (left <= 0) return false;
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n > 0) {
      out_buf_.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      ::close(out_fd_);
      out_fd_ = -1;
    }
    drain_stderr();
  }
}

void child_process::drain_stderr() {
  if (err_fd_ < 0) return;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(err_fd_, buf, sizeof buf);
    if (n > 0) {
      err_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      ::close(err_fd_);
      err_fd_ = -1;
    }
    return;
  }
}

const std::string& child_process::stderr_text() {
  drain_stderr();
  return err_;
}

void child_process::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

int child_process::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  auto deadline = steady::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return decode(status);
    }
    if (steady::now() >= deadline) return -1;
    ::usleep(5000);
  }
}

}  // namespace ferry::test
