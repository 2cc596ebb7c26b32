#pragma once
// broker/net: the HTTP/1.1 listener for health, readiness and Prometheus metrics (Boost.Beast,
// kept out of this header). It runs on its own thread and io_context, never on a shard, so
// produce/fetch traffic and a slow HTTP client or a slow route never delay each other.
//
// Each connection serves one request and is closed (Connection: close). Bounded: a request
// (line, headers and any body) must arrive within `read_timeout_ms`, the response must be
// taken by the client within `write_timeout_ms`; headers above 8 KiB or a body above 4 KiB are
// refused with 400. At most `max_connections` are open: a new one beyond that closes the oldest
// connection still waiting for its request (a slowloris loses its slot to a fresh probe), or,
// if none is waiting, is itself closed at once. Only GET is served (anything else: 405 with
// `Allow: GET`, the route is not called); the route decides everything else, 404 included.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace ferry::net {

struct http_response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct http_config {
  std::string host = "127.0.0.1";
  uint16_t port = 7072;  // 0: any free port
  size_t max_connections = 64;
  int64_t read_timeout_ms = 5000;   // for the whole request, from accept
  int64_t write_timeout_ms = 5000;  // for the whole response
};

class http_server {
 public:
  // Called on the HTTP thread (not a shard) for each GET, with the request target's path (the
  // query string removed, e.g. "/metrics"); the method is always "GET" today. Must be safe to call
  // from that thread and must not block without a deadline: while it runs, no other HTTP request
  // is served. An exception from it is answered with 500 and logged.
  using route_fn = std::function<http_response(std::string_view method, std::string_view path)>;

  http_server(http_config cfg, route_fn route);
  ~http_server();  // stop(), then joins the HTTP thread
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  // Binds and listens; returns the bound port.
  [[nodiscard]] result<uint16_t> listen();
  // Starts the HTTP thread and accepting. After listen() succeeded.
  void start();
  // Stops accepting and closes every HTTP connection; returns without waiting (the destructor
  // joins the thread). From any thread, more than once.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace ferry::net
