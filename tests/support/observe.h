#pragma once
// Test support: observing a broker from outside: what /proc says about its process (resident
// memory and build flavour are in process.h), a raw HTTP GET, Prometheus text lookups, and the
// "keeps serving, nothing stored changed" checks every attack test ends with.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/process.h"

namespace ferry::test {

inline std::string read_proc(int pid, const char* what) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/" + what);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// utime + stime of `pid` in clock ticks (fields 14 and 15 of /proc/PID/stat).
inline uint64_t cpu_ticks(int pid) {
  auto s = read_proc(pid, "stat");
  auto close_paren = s.rfind(')');
  if (close_paren == std::string::npos) return 0;
  std::istringstream in(s.substr(close_paren + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return utime + stime;
}

// Number of open file descriptors of `pid`.
inline size_t open_fds(int pid) {
  auto path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return 0;
  size_t n = 0;
  while (auto* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

// Names (comm) of the threads of `pid`.
inline std::vector<std::string> thread_names(int pid) {
  std::vector<std::string> out;
  auto path = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return out;
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(path + "/" + e->d_name + "/comm");
    std::string name;
    std::getline(f, name);
    out.push_back(name);
  }
  ::closedir(d);
  return out;
}

struct http_reply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

// Sends `request` (raw bytes) to 127.0.0.1:port and reads until the server closes the connection
// or `timeout` passes. Fails on connect errors and timeouts.
inline result<http_reply> http_exchange(uint16_t port, const std::string& request,
                                        std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto c = raw_connection::connect(port, timeout);
  if (!c) return c.error();
  c->set_timeout(timeout);
  if (auto r = c->send_bytes(request); !r) return r.error();
  auto deadline = clock_type::now() + timeout;
  std::string all;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(c->fd(), buf, sizeof buf, 0);
    if (n > 0) {
      all.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) break;  // reset: keep what arrived
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    if (left <= 0) return fail(errc::timeout, "no complete HTTP response within the timeout; got: " + all);
    pollfd p{c->fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left));
  }
  auto split = all.find("\r\n\r\n");
  if (all.compare(0, 9, "HTTP/1.1 ") != 0 || split == std::string::npos)
    return fail(errc::unknown, "not an HTTP response: '" + all + "'");
  http_reply r;
  r.status = std::atoi(all.c_str() + 9);
  r.head = all.substr(0, split);
  r.body = all.substr(split + 4);
  return r;
}

inline result<http_reply> http_get(uint16_t port, const std::string& path,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return http_exchange(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout);
}

// The value of the sample `name` (with its labels, as rendered: `x_total{listener="http"}`) in
// Prometheus text; nullopt if absent.
inline std::optional<double> metric_value(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, name.size(), name) == 0 && line.size() > name.size() && line[name.size()] == ' ')
      return std::strtod(line.c_str() + name.size() + 1, nullptr);
  }
  return std::nullopt;
}

// One metric from the broker's /metrics (nullopt if it could not be fetched or is absent).
inline std::optional<double> broker_metric(const broker_process& b, const std::string& name) {
  auto r = http_get(b.http_port(), "/metrics");
  if (!r || r->status != 200) return std::nullopt;
  return metric_value(r->body, name);
}

// A topic written before an attack and compared after it: "nothing stored changes".
class seeded_topic {
 public:
  static constexpr const char* name = "seed-data";

  ::testing::AssertionResult write(uint16_t port, int batches = 4) {
    auto c = raw_client::connect(port);
    if (!c) return ::testing::AssertionFailure() << "connect: " << c.error().to_string();
    auto [e, m] = c->create_topic(name, 1);
    if (e != errc::ok) return ::testing::AssertionFailure() << "create_topic: " << m;
    for (int b = 0; b < batches; ++b) {
      std::vector<test_record> recs;
      for (int i = 0; i < 10; ++i) {
        test_record r;
        r.key = "k" + std::to_string(b) + "-" + std::to_string(i);
        r.value = random_payload(static_cast<uint64_t>(b) * 100 + static_cast<uint64_t>(i), 10, 2000);
        recs.push_back(r);
      }
      auto out = c->produce(name, 0, make_batch(recs));
      if (out.error != errc::ok) return ::testing::AssertionFailure() << "produce: " << out.message;
    }
    auto all = c->read_all(name, 0);
    if (!all) return ::testing::AssertionFailure() << "read_all: " << all.error().to_string();
    records_ = std::move(*all);
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult unchanged(uint16_t port) const {
    auto c = raw_client::connect(port);
    if (!c) return ::testing::AssertionFailure() << "connect: " << c.error().to_string();
    auto now = c->read_all(name, 0);
    if (!now) return ::testing::AssertionFailure() << "read_all: " << now.error().to_string();
    if (now->size() != records_.size())
      return ::testing::AssertionFailure() << now->size() << " records, " << records_.size() << " before";
    for (size_t i = 0; i < now->size(); ++i) {
      const auto& a = (*now)[i];
      const auto& b = records_[i];
      if (a.offset != b.offset || a.key != b.key || a.value != b.value || a.timestamp != b.timestamp)
        return ::testing::AssertionFailure() << "record " << i << " changed";
    }
    return ::testing::AssertionSuccess();
  }

 private:
  std::vector<stored_record> records_;
};

// A normal producer and reader on a fresh connection: creates `topic` (once), produces three
// records and reads the whole partition back.
inline ::testing::AssertionResult serves_producer_and_reader(uint16_t port, const std::string& topic) {
  auto c = raw_client::connect(port);
  if (!c) return ::testing::AssertionFailure() << "connect: " << c.error().to_string();
  auto [e, m] = c->create_topic(topic, 1);
  if (e != errc::ok && e != errc::topic_exists) return ::testing::AssertionFailure() << "create_topic: " << m;
  auto before = c->read_all(topic, 0);
  if (!before) return ::testing::AssertionFailure() << "read_all: " << before.error().to_string();
  auto out = c->produce(topic, 0, make_value_batch({"one", "two", std::string(1000, 'x')}));
  if (out.error != errc::ok) return ::testing::AssertionFailure() << "produce: " << out.message;
  auto all = c->read_all(topic, 0);
  if (!all) return ::testing::AssertionFailure() << "read_all: " << all.error().to_string();
  if (all->size() != before->size() + 3)
    return ::testing::AssertionFailure() << all->size() << " records after producing 3 onto " << before->size();
  if (all->back().value != std::string(1000, 'x')) return ::testing::AssertionFailure() << "last record differs";
  return ::testing::AssertionSuccess();
}

}  // namespace ferry::test
