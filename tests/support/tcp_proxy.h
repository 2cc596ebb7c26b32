#pragma once
// Test support: a loopback TCP proxy between a client and a broker (STYLE.md, "Tests"). It
// listens on 127.0.0.1 (port 0) and forwards every accepted connection to 127.0.0.1:target.
// A test can retarget it (a restarted broker has a new port, while clients keep the proxy's
// address), delay traffic, black-hole it (bytes are swallowed, connections stay open) or cut
// every current connection.
//
// Threads: one accept thread plus one pump thread per connection; every method is thread-safe.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

namespace ferry::test {

class tcp_proxy {
 public:
  explicit tcp_proxy(uint16_t target_port);
  ~tcp_proxy();  // cuts every connection and joins every thread
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  uint16_t port() const { return port_; }
  // New connections go to 127.0.0.1:port; current ones stay where they are.
  void set_target(uint16_t port) { target_.store(port); }
  // Every chunk is forwarded `d` after it was read (both directions).
  void set_delay(std::chrono::milliseconds d) { delay_ms_.store(d.count()); }
  // While on, bytes read from either side are dropped instead of forwarded.
  void set_blackhole(bool on) { blackhole_.store(on); }
  // While on, new connections are accepted and closed at once.
  void set_refuse(bool on) { refuse_.store(on); }
  // Closes both sides of every current connection.
  void cut_all();
  uint64_t connections_accepted() const { return accepted_.load(); }

 private:
  struct link;
  void accept_loop();
  void pump(const std::shared_ptr<link>& l);
  void reap_finished();

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<uint16_t> target_;
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<bool> blackhole_{false};
  std::atomic<bool> refuse_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0};
  std::mutex mu_;
  std::list<std::shared_ptr<link>> links_;
  std::thread acceptor_;
};

}  // namespace ferry::test
