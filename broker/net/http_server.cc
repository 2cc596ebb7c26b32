#include "broker/net/http_server.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <list>
#include <thread>

#include "broker/net/accept_errors.h"
#include "broker/runtime/logger.h"
#include "broker/runtime/metrics.h"
#include "broker/runtime/runtime.h"

namespace ferry::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::as_tuple;
using asio::use_awaitable;

namespace {

constexpr uint32_t header_limit = 8u << 10;
constexpr uint64_t body_limit = 4u << 10;

runtime::subsystem_logger logger{"net"};

struct probe {
  metrics::counter& requests = metrics::get_counter("ferry_http_requests_total", "HTTP requests answered");
  metrics::gauge& open = metrics::get_gauge("ferry_http_connections_open", "HTTP connections open");
  metrics::counter& read_timeouts =
      metrics::get_counter("ferry_http_timeouts_total", "HTTP connections closed at a deadline", {{"phase", "read"}});
  metrics::counter& write_timeouts =
      metrics::get_counter("ferry_http_timeouts_total", "HTTP connections closed at a deadline", {{"phase", "write"}});
  metrics::counter& evicted =
      metrics::get_counter("ferry_http_connections_evicted_total",
                           "HTTP connections still waiting for their request, closed to make room for a new one");
  metrics::counter& rejected = metrics::get_counter("ferry_http_connections_rejected_total",
                                                    "HTTP connections closed at once: every slot was busy answering");
  metrics::counter& route_exceptions =
      metrics::get_counter("ferry_http_route_exceptions_total", "Exceptions thrown by an HTTP route (answered 500)");
  static probe& get() {
    static probe p;
    return p;
  }
};

struct http_conn {
  explicit http_conn(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  enum class phase { reading, answering } state = phase::reading;
  std::list<std::shared_ptr<http_conn>>::iterator pos;  // in impl::conns while listed
  bool listed = false;
};

bool is_http_parse_error(const boost::system::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

const char* reason_text(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "";
  }
}

}  // namespace

struct http_server::impl {
  // Declared first, destroyed last: everything below may hold I/O objects of it.
  asio::io_context ctx{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{ctx.get_executor()};
  http_config cfg;
  route_fn route;
  tcp::acceptor acceptor{ctx};
  // Open connections, oldest first. HTTP thread only.
  std::list<std::shared_ptr<http_conn>> conns;
  std::atomic<bool> stopping{false};
  std::thread thread;

  impl(http_config c, route_fn r) : cfg(std::move(c)), route(std::move(r)) {}

  void unlist(http_conn& c) {
    if (!c.listed) return;
    c.listed = false;
    conns.erase(c.pos);
    probe::get().open.add(-1);
  }

  // Closes the oldest connection still waiting for (part of) its request. False if every open
  // connection is busy answering.
  bool evict_oldest_waiting() {
    for (auto& c : conns) {
      if (c->state != http_conn::phase::reading) continue;
      auto victim = c;  // unlist() erases the list's copy
      unlist(*victim);
      victim->stream.close();  // its pending read ends with operation_aborted
      probe::get().evicted.inc();
      return true;
    }
    return false;
  }

  http_response answer(const http::request<http::string_body>& req) {
    if (req.method() != http::verb::get) return {405, "text/plain; charset=utf-8", "only GET is supported\n"};
    std::string_view target(req.target().data(), req.target().size());
    auto path = target.substr(0, target.find('?'));
    try {
      return route("GET", path);
    } catch (const std::exception& e) {
      probe::get().route_exceptions.inc();
      logger()->error("HTTP route for {} threw: {}", path, e.what());
      return {500, "text/plain; charset=utf-8", "internal error\n"};
    }
  }

  static asio::awaitable<void> serve(impl* self, std::shared_ptr<http_conn> c) {
    auto& pr = probe::get();
    beast::flat_buffer buf(header_limit + body_limit);
    http::request_parser<http::string_body> parser;
    parser.header_limit(header_limit);
    parser.body_limit(body_limit);
    c->stream.expires_after(std::chrono::milliseconds(self->cfg.read_timeout_ms));
    auto [ec, n] = co_await http::async_read(c->stream, buf, parser, as_tuple(use_awaitable));
    http_response r;
    if (!ec) {
      r = self->answer(parser.get());
    } else if (is_http_parse_error(ec)) {
      r = {400, "text/plain; charset=utf-8", "bad request: " + ec.message() + "\n"};
    } else {
      // EOF, reset, evicted, stopping, or the read deadline.
      if (ec == beast::error::timeout) pr.read_timeouts.inc();
      self->unlist(*c);
      c->stream.close();
      co_return;
    }
    c->state = http_conn::phase::answering;
    http::response<http::string_body> res;
    res.version(11);
    res.result(static_cast<unsigned>(r.status));
    res.reason(reason_text(r.status));
    res.set(http::field::server, "ferryd");
    res.set(http::field::content_type, r.content_type);
    if (r.status == 405) res.set(http::field::allow, "GET");
    res.keep_alive(false);
    res.body() = std::move(r.body);
    res.prepare_payload();
    c->stream.expires_after(std::chrono::milliseconds(self->cfg.write_timeout_ms));
    auto [wec, wn] = co_await http::async_write(c->stream, res, as_tuple(use_awaitable));
    if (wec == beast::error::timeout) pr.write_timeouts.inc();
    if (!wec) {
      pr.requests.inc();
      boost::system::error_code ignore;
      c->stream.socket().shutdown(tcp::socket::shutdown_send, ignore);
    }
    self->unlist(*c);
    c->stream.close();
  }

  asio::awaitable<void> accept_loop() {
    accept_errors errors("http");
    asio::steady_timer backoff(ctx);
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(as_tuple(use_awaitable));
      if (stopping) break;
      if (ec) {
        if (ec == asio::error::operation_aborted) break;
        errors.report(*logger(), ec);  // out of file descriptors and the like: back off, retry
        backoff.expires_after(accept_errors::backoff);
        co_await backoff.async_wait(as_tuple(use_awaitable));
        if (stopping) break;
        continue;
      }
      if (conns.size() >= cfg.max_connections && !evict_oldest_waiting()) {
        probe::get().rejected.inc();
        boost::system::error_code ignore;
        sock.close(ignore);
        continue;
      }
      auto c = std::make_shared<http_conn>(std::move(sock));
      conns.push_back(c);
      c->pos = std::prev(conns.end());
      c->listed = true;
      probe::get().open.add(1);
      runtime::spawn_logged(ctx.get_executor(), serve(this, std::move(c)), "http connection");
    }
  }
};

http_server::http_server(http_config cfg, route_fn route)
    : impl_(std::make_unique<impl>(std::move(cfg), std::move(route))) {}

http_server::~http_server() {
  try {
    stop();
    if (impl_->thread.joinable()) impl_->thread.join();
  } catch (const std::exception& e) {
    // Only a failed post or join gets here; nothing is left to do but say so.
    std::fprintf(stderr, "ferryd: stopping the HTTP listener failed: %s\n", e.what());
  }
}

result<uint16_t> http_server::listen() {
  auto& cfg = impl_->cfg;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(cfg.host, ec);
  if (ec) return fail(errc::invalid_argument, "http address '" + cfg.host + "': " + ec.message());
  tcp::endpoint ep(addr, cfg.port);
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignore;
    acc.close(ignore);
    return fail(errc::invalid_argument,
                "cannot listen for HTTP on " + cfg.host + ":" + std::to_string(cfg.port) + ": " + ec.message());
  }
  return acc.local_endpoint().port();
}

void http_server::start() {
  auto* im = impl_.get();
  runtime::spawn_logged(im->ctx.get_executor(), im->accept_loop(), "http accept loop");
  im->thread = std::thread([im] { im->ctx.run(); });
  ::pthread_setname_np(im->thread.native_handle(), "ferry-http");
}

void http_server::stop() {
  auto* im = impl_.get();
  if (im->stopping.exchange(true)) return;
  asio::post(im->ctx, [im] {
    boost::system::error_code ignore;
    im->acceptor.close(ignore);
    // Closing a stream ends its pending read or write; each coroutine then unlists itself.
    for (auto& c : im->conns) c->stream.close();
    im->work.reset();
  });
}

}  // namespace ferry::net
