#include "broker/net/server.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <deque>

#include "broker/runtime/logger.h"
#include "broker/runtime/runtime.h"

namespace ferry::net {

using tcp = asio::ip::tcp;
using asio::as_tuple;
using asio::use_awaitable;

namespace {

constexpr size_t frame_prefix_bytes = 4;  // schema/wire.md: u32 little-endian length

uint32_t frame_length(const std::byte* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

std::shared_ptr<spdlog::logger> logger() {
  static auto l = runtime::named_logger("net");
  return l;
}

struct probe {
  metrics::counter& accepted = metrics::get_counter("ferry_connections_accepted_total", "Client connections accepted");
  metrics::gauge& open = metrics::get_gauge("ferry_connections_open", "Client connections open");
  metrics::counter& frames_in = metrics::get_counter("ferry_frames_received_total", "Request frames received");
  metrics::counter& bytes_in = metrics::get_counter("ferry_received_bytes_total", "Request bytes received");
  metrics::counter& bytes_out = metrics::get_counter("ferry_sent_bytes_total", "Response bytes sent");
  metrics::counter& pushed = metrics::get_counter("ferry_pushed_frames_total", "Frames sent unasked (deliveries)");
  metrics::counter& oversized =
      metrics::get_counter("ferry_frames_too_large_total", "Frames refused for their length prefix");
  metrics::counter& handler_exceptions =
      metrics::get_counter("ferry_session_exceptions_total", "Exceptions that escaped a request handler (bugs)");
  metrics::counter& backpressure = metrics::get_counter(
      "ferry_backpressure_waits_total", "Times a connection stopped reading because too much was in flight");
  static probe& get() {
    static probe p;
    return p;
  }
};

template <class Socket>
std::string endpoint_string(const Socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

class session : public session_channel, public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket sock, frame_handler& h, const server_config& cfg, session_info info)
      : sock_(std::move(sock)),
        ex_(sock_.get_executor()),
        handler_(h),
        cfg_(cfg),
        info_(std::move(info)),
        writer_wake_(sock_.get_executor()),
        reader_wake_(sock_.get_executor()),
        watchdog_(sock_.get_executor()) {}

  void start() {
    probe::get().open.add(1);
    auto self = shared_from_this();
    info_.channel = std::weak_ptr<session_channel>(std::static_pointer_cast<session_channel>(self));
    auto ex = sock_.get_executor();
    runtime::spawn_logged(ex, reader(self), "session reader");
    runtime::spawn_logged(ex, writer(self), "session writer");
    runtime::spawn_logged(ex, watchdog(self), "session watchdog");
  }

  // Closes the connection; the coroutines finish on their own. Call on the session's shard.
  void close() {
    if (closed_) return;
    closed_ = true;
    closed_flag_.store(true, std::memory_order_release);
    boost::system::error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
    writer_wake_.cancel();
    reader_wake_.cancel();
    watchdog_.cancel();
    pushes_.clear();
    handler_.on_session_closed(info_);
  }

  // session_channel
  bool push(out_frame_ptr f) override {
    if (closed_flag_.load(std::memory_order_acquire)) return false;
    if (runtime::shard_set::current_index() == info_.shard.value) {
      enqueue_push(std::move(f));
    } else {
      auto self = shared_from_this();
      // Frames are owned by a unique_ptr: hand it over through a shared holder (post needs a
      // copyable handler only for some executors; this keeps it simple for all).
      auto holder = std::make_shared<out_frame_ptr>(std::move(f));
      asio::post(ex_, [self, holder] { self->enqueue_push(std::move(*holder)); });
    }
    return true;
  }
  bool closed() const override { return closed_flag_.load(std::memory_order_acquire); }
  asio::any_io_executor executor() const override { return ex_; }

  bool finished() const { return finished_; }

  void enqueue_push(out_frame_ptr f) {
    if (closed_) return;
    probe::get().pushed.inc();
    pushes_.push_back(std::move(f));
    writer_wake_.cancel();
  }
  ~session() { probe::get().open.add(-1); }

 private:
  struct slot {
    out_frame_ptr resp;
    size_t request_bytes = 0;
    bool ready = false;
  };

  void push_ready(out_frame_ptr f) {
    auto s = std::make_shared<slot>();
    s->resp = std::move(f);
    s->ready = true;
    queue_.push_back(std::move(s));
    writer_wake_.cancel();
  }

  static asio::awaitable<void> reader(std::shared_ptr<session> self) {
    auto& pr = probe::get();
    auto& log = *logger();
    for (;;) {
      std::byte prefix[frame_prefix_bytes];
      auto [ec, n] = co_await asio::async_read(self->sock_, asio::buffer(prefix), as_tuple(use_awaitable));
      if (ec) break;
      self->last_activity_ = std::chrono::steady_clock::now();
      uint32_t len = frame_length(prefix);
      if (len > self->cfg_.max_frame_bytes) {
        // The stream cannot be resynchronised after an oversized prefix: answer, then close.
        pr.oversized.inc();
        log.warn("conn {} from {}: frame of {} bytes over the limit of {}, closing", self->info_.id, self->info_.peer,
                 len, self->cfg_.max_frame_bytes);
        self->push_ready(self->handler_.error_frame(
            errc::frame_too_large, "frame of " + std::to_string(len) + " bytes is over the broker's limit of " +
                                       std::to_string(self->cfg_.max_frame_bytes) + " bytes"));
        break;
      }
      auto f = std::make_shared<in_frame>();
      f->bytes.resize(frame_prefix_bytes + len);
      std::memcpy(f->bytes.data(), prefix, sizeof prefix);
      if (len > 0) {
        auto [ec2, n2] = co_await asio::async_read(self->sock_, asio::buffer(f->bytes.data() + sizeof prefix, len),
                                                   as_tuple(use_awaitable));
        if (ec2) break;
      }
      self->last_activity_ = std::chrono::steady_clock::now();
      pr.frames_in.inc();
      pr.bytes_in.inc(f->bytes.size());
      // Backpressure: stop reading while too much is unanswered.
      while (!self->closed_ && (self->queue_.size() >= self->cfg_.max_inflight_requests ||
                                self->inflight_bytes_ >= self->cfg_.max_inflight_bytes)) {
        pr.backpressure.inc();
        self->reader_wake_.expires_at(std::chrono::steady_clock::time_point::max());
        co_await self->reader_wake_.async_wait(as_tuple(use_awaitable));
      }
      if (self->closed_) break;
      auto s = std::make_shared<slot>();
      s->request_bytes = f->bytes.size();
      self->inflight_bytes_ += s->request_bytes;
      self->queue_.push_back(s);
      runtime::spawn_logged(self->sock_.get_executor(), process(self, s, std::move(f)), "request");
    }
    self->reader_done_ = true;
    self->writer_wake_.cancel();
  }

  static asio::awaitable<void> process(std::shared_ptr<session> self, std::shared_ptr<slot> s,
                                       std::shared_ptr<in_frame> f) {
    try {
      s->resp = co_await self->handler_.handle(std::move(f), self->info_);
    } catch (const std::exception& e) {
      probe::get().handler_exceptions.inc();
      logger()->error("conn {} from {}: request handler threw: {}; closing the connection", self->info_.id,
                      self->info_.peer, e.what());
      self->close();
    }
    s->ready = true;
    self->writer_wake_.cancel();
  }

  static asio::awaitable<void> writer(std::shared_ptr<session> self) {
    std::vector<asio::const_buffer> bufs;
    std::vector<std::shared_ptr<slot>> batch;
    std::vector<out_frame_ptr> pushing;
    while (!self->closed_) {
      // Pushed frames first (they wait for no request), then every answered request at the head
      // of the queue: responses keep request order.
      batch.clear();
      bufs.clear();
      pushing.clear();
      while (!self->pushes_.empty() && pushing.size() < 64) {
        pushing.push_back(std::move(self->pushes_.front()));
        self->pushes_.pop_front();
        auto b = pushing.back()->bytes();
        bufs.emplace_back(b.data(), b.size());
      }
      for (auto& s : self->queue_) {
        if (!s->ready || batch.size() >= 64) break;
        batch.push_back(s);
        if (s->resp) {
          auto b = s->resp->bytes();
          bufs.emplace_back(b.data(), b.size());
        }
      }
      if (!batch.empty() || !pushing.empty()) {
        auto [ec, n] = co_await asio::async_write(self->sock_, bufs, as_tuple(use_awaitable));
        if (ec) break;
        probe::get().bytes_out.inc(n);
        for (size_t i = 0; i < batch.size(); ++i) {
          self->inflight_bytes_ -= self->queue_.front()->request_bytes;
          self->queue_.pop_front();
        }
        if (!batch.empty()) self->reader_wake_.cancel();
        continue;
      }
      if (self->reader_done_ && self->queue_.empty()) break;
      if (self->reader_done_ && !self->queue_.empty() && !self->queue_.front()->ready) {
        // Reader hit EOF/error: still answer what is in flight.
      }
      self->writer_wake_.expires_at(std::chrono::steady_clock::time_point::max());
      co_await self->writer_wake_.async_wait(as_tuple(use_awaitable));
    }
    self->close();
    self->finished_ = true;
    logger()->debug("conn {} from {} closed", self->info_.id, self->info_.peer);
  }

  static asio::awaitable<void> watchdog(std::shared_ptr<session> self) {
    auto period = std::chrono::milliseconds(std::max<int64_t>(self->cfg_.idle_timeout_ms / 4, 10));
    while (!self->closed_) {
      self->watchdog_.expires_after(period);
      co_await self->watchdog_.async_wait(as_tuple(use_awaitable));
      if (self->closed_) break;
      auto idle = std::chrono::steady_clock::now() - self->last_activity_;
      if (self->queue_.empty() && idle > std::chrono::milliseconds(self->cfg_.idle_timeout_ms)) {
        logger()->info("conn {} from {}: idle for {} ms, closing", self->info_.id, self->info_.peer,
                       std::chrono::duration_cast<std::chrono::milliseconds>(idle).count());
        self->close();
      }
    }
  }

  tcp::socket sock_;
  asio::any_io_executor ex_;
  frame_handler& handler_;
  const server_config& cfg_;
  session_info info_;
  std::deque<std::shared_ptr<slot>> queue_;
  size_t inflight_bytes_ = 0;
  asio::steady_timer writer_wake_;
  asio::steady_timer reader_wake_;
  asio::steady_timer watchdog_;
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
  bool reader_done_ = false;
  bool closed_ = false;
  std::atomic<bool> closed_flag_{false};  // closed_ for other threads (push())
  std::deque<out_frame_ptr> pushes_;
  bool finished_ = false;
};

struct server::impl {
  runtime::shard_set& rt;
  frame_handler& handler;
  server_config cfg;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::atomic<uint64_t> next_id{1};
  // Sessions per shard, touched only on that shard.
  std::vector<std::vector<std::weak_ptr<session>>> sessions;
  std::atomic<bool> stopping{false};

  impl(runtime::shard_set& r, frame_handler& h, server_config c) : rt(r), handler(h), cfg(std::move(c)) {
    sessions.resize(rt.size());
  }

  asio::awaitable<void> accept_loop() {
    size_t next_shard = 0;
    for (;;) {
      shard_id target{static_cast<uint32_t>(next_shard++ % rt.size())};
      auto [ec, sock] = co_await acceptor->async_accept(rt.context(target), as_tuple(use_awaitable));
      if (ec) {
        if (stopping || ec == asio::error::operation_aborted) break;
        logger()->warn("accept failed: {}", ec.message());
        continue;
      }
      probe::get().accepted.inc();
      sock.set_option(tcp::no_delay(true));
      session_info info{next_id++, endpoint_string(sock), target, {}};
      logger()->debug("conn {} from {} on shard {}", info.id, info.peer, target.value);
      asio::post(rt.executor(target), [this, target, sock = std::move(sock), info = std::move(info)]() mutable {
        if (stopping) return;
        auto s = std::make_shared<session>(std::move(sock), handler, cfg, std::move(info));
        auto& list = sessions[target.value];
        std::erase_if(list, [](const std::weak_ptr<session>& w) { return w.expired(); });
        list.push_back(s);
        s->start();
      });
    }
  }
};

server::server(runtime::shard_set& rt, frame_handler& handler, server_config cfg)
    : impl_(std::make_unique<impl>(rt, handler, std::move(cfg))) {}
server::~server() = default;

result<uint16_t> server::listen() {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(impl_->cfg.host, ec);
  if (ec) return fail(errc::invalid_argument, "listen address '" + impl_->cfg.host + "': " + ec.message());
  tcp::endpoint ep(addr, impl_->cfg.port);
  auto acc = std::make_unique<tcp::acceptor>(impl_->rt.context(shard_id{0}));
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return fail(errc::invalid_argument,
                "cannot listen on " + impl_->cfg.host + ":" + std::to_string(impl_->cfg.port) + ": " + ec.message());
  auto port = acc->local_endpoint().port();
  impl_->acceptor = std::move(acc);
  return port;
}

void server::start() { runtime::spawn_logged(impl_->rt.executor(shard_id{0}), impl_->accept_loop(), "accept loop"); }

asio::awaitable<void> server::stop() {
  auto* im = impl_.get();
  im->stopping = true;
  auto close_acceptor = [im] {
    boost::system::error_code ec;
    if (im->acceptor) im->acceptor->close(ec);
  };
  auto ex0 = im->rt.executor(shard_id{0});
  co_await runtime::run_on(ex0, std::move(close_acceptor));
  for (uint32_t i = 0; i < im->rt.size(); ++i) {
    auto close_sessions = [im, i] {
      for (auto& w : im->sessions[i])
        if (auto s = w.lock()) s->close();
    };
    auto ex = im->rt.executor(shard_id{i});
    co_await runtime::run_on(ex, std::move(close_sessions));
  }
}

// ---- HTTP --------------------------------------------------------------------------------------

struct http_server::impl {
  runtime::shard_set& rt;
  std::string host;
  uint16_t port;
  route_fn route;
  std::unique_ptr<tcp::acceptor> acceptor;

  static asio::awaitable<void> serve(impl* self, tcp::socket sock) {
    asio::streambuf buf(8192);
    auto [ec, n] = co_await asio::async_read_until(sock, buf, "\r\n\r\n", as_tuple(use_awaitable));
    int status = 400;
    std::string type = "text/plain; charset=utf-8";
    std::string body = "bad request\n";
    if (!ec) {
      std::string req(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<long>(n));
      auto sp1 = req.find(' ');
      auto sp2 = req.find(' ', sp1 + 1);
      if (sp1 != std::string::npos && sp2 != std::string::npos && req.substr(0, sp1) == "GET") {
        status = 200;
        body = self->route(req.substr(sp1 + 1, sp2 - sp1 - 1), status, type);
      } else if (sp1 != std::string::npos) {
        status = 405;
        body = "only GET is supported\n";
      }
    }
    const char* reason = status == 200   ? "OK"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 503 ? "Service Unavailable"
                                         : "Bad Request";
    std::string resp = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
                       "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    co_await asio::async_write(sock, asio::buffer(resp), as_tuple(use_awaitable));
    boost::system::error_code ignore;
    sock.shutdown(tcp::socket::shutdown_both, ignore);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor->async_accept(as_tuple(use_awaitable));
      if (ec) break;
      runtime::spawn_logged(rt.executor(shard_id{0}), serve(this, std::move(sock)), "http request");
    }
  }
};

http_server::http_server(runtime::shard_set& rt, std::string host, uint16_t port, route_fn route)
    : impl_(std::make_unique<impl>(impl{rt, std::move(host), port, std::move(route), nullptr})) {}
http_server::~http_server() = default;

result<uint16_t> http_server::listen() {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(impl_->host, ec);
  if (ec) return fail(errc::invalid_argument, "http address '" + impl_->host + "': " + ec.message());
  tcp::endpoint ep(addr, impl_->port);
  auto acc = std::make_unique<tcp::acceptor>(impl_->rt.context(shard_id{0}));
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(64, ec);
  if (ec)
    return fail(errc::invalid_argument,
                "cannot listen for HTTP on " + impl_->host + ":" + std::to_string(impl_->port) + ": " + ec.message());
  auto port = acc->local_endpoint().port();
  impl_->acceptor = std::move(acc);
  return port;
}

void http_server::start() {
  runtime::spawn_logged(impl_->rt.executor(shard_id{0}), impl_->accept_loop(), "http accept loop");
}

void http_server::stop() {
  auto* im = impl_.get();
  asio::post(im->rt.executor(shard_id{0}), [im] {
    boost::system::error_code ec;
    if (im->acceptor) im->acceptor->close(ec);
  });
}

}  // namespace ferry::net
