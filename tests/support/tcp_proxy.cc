#include "tests/support/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace ferry::test {

struct tcp_proxy::link {
  int client = -1;
  int server = -1;
  std::atomic<bool> done{false};
  std::thread thread;
};

namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

tcp_proxy::tcp_proxy(uint16_t target_port) : target_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(std::string("tcp_proxy socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  auto a = loopback(0);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 128) != 0)
    throw std::runtime_error(std::string("tcp_proxy bind/listen: ") + std::strerror(errno));
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("tcp_proxy pipe");
  acceptor_ = std::thread([this] { accept_loop(); });
}

tcp_proxy::~tcp_proxy() {
  stopping_.store(true);
  char c = 'x';
  [[maybe_unused]] auto n = ::write(wake_[1], &c, 1);
  acceptor_.join();
  cut_all();
  std::list<std::shared_ptr<link>> links;
  {
    std::lock_guard lk(mu_);
    links.swap(links_);
  }
  for (auto& l : links)
    if (l->thread.joinable()) l->thread.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void tcp_proxy::cut_all() {
  std::lock_guard lk(mu_);
  for (auto& l : links_) {
    // shutdown() wakes the pump's poll; the pump closes the descriptors.
    ::shutdown(l->client, SHUT_RDWR);
    ::shutdown(l->server, SHUT_RDWR);
  }
}

void tcp_proxy::reap_finished() {
  std::list<std::shared_ptr<link>> finished;
  {
    std::lock_guard lk(mu_);
    for (auto it = links_.begin(); it != links_.end();) {
      if ((*it)->done.load()) {
        finished.push_back(*it);
        it = links_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& l : finished)
    if (l->thread.joinable()) l->thread.join();
}

void tcp_proxy::accept_loop() {
  while (!stopping_.load()) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int r = ::poll(p, 2, 200);
    reap_finished();
    if (r <= 0 || !(p[0].revents & POLLIN)) continue;
    int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    accepted_.fetch_add(1);
    if (refuse_.load()) {
      ::close(c);
      continue;
    }
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto a = loopback(target_.load());
    if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (s >= 0) ::close(s);
      ::close(c);
      continue;
    }
    int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto l = std::make_shared<link>();
    l->client = c;
    l->server = s;
    std::lock_guard lk(mu_);
    links_.push_back(l);
    l->thread = std::thread([this, l] { pump(l); });
  }
}

void tcp_proxy::pump(const std::shared_ptr<link>& l) {
  std::vector<char> buf(64 << 10);
  for (;;) {
    pollfd p[2] = {{l->client, POLLIN, 0}, {l->server, POLLIN, 0}};
    int r = ::poll(p, 2, 200);
    if (stopping_.load()) break;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    bool broken = false;
    for (int i = 0; i < 2 && !broken; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::recv(p[i].fd, buf.data(), buf.size(), 0);
      if (n <= 0) {
        broken = true;
        break;
      }
      if (blackhole_.load()) continue;
      if (auto d = delay_ms_.load(); d > 0) std::this_thread::sleep_for(std::chrono::milliseconds(d));
      if (!write_all(i == 0 ? l->server : l->client, buf.data(), static_cast<size_t>(n))) broken = true;
    }
    if (broken) break;
  }
  {
    std::lock_guard lk(mu_);
    ::shutdown(l->client, SHUT_RDWR);
    ::shutdown(l->server, SHUT_RDWR);
    ::close(l->client);
    ::close(l->server);
    l->client = l->server = -1;
  }
  l->done.store(true);
}

}  // namespace ferry::test
