#pragma once
// broker/net: the client listener. Accepts connections (at most `max_connections` at once,
// broker-wide), spreads them over the shards, and runs a session per connection: a reader
// coroutine (length-prefixed frames, bounded, handed to the frame_handler) and a writer coroutine
// (responses in request order, pushed frames between them). Requests are pipelined; per
// connection the number of unanswered requests and the bytes it holds (unanswered requests,
// responses and pushes not yet sent) are bounded, and when full the session stops reading
// (backpressure). A connection with no bytes read or written for the idle timeout, or whose
// writes make no progress for the write timeout, is closed. net knows frames, not what is in
// them: the protocol layer implements frame_handler. The HTTP listener is in http_server.h.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "broker/base/uninit_buffer.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::runtime {
class shard_set;
}

namespace ferry::net {

namespace asio = boost::asio;

// One received frame: the 4-byte length prefix and the body, in one 16-byte aligned buffer
// (the FlatBuffers verifier checks alignment relative to the frame start). The buffer grows as the
// body's bytes arrive: a length prefix alone never allocates the length it announces.
struct in_frame {
  uninit_buffer bytes;  // grown as the socket fills it: never zeroed first
  std::span<const std::byte> view() const { return bytes; }
};

// A response frame to send; kept alive until its write completes.
class out_frame {
 public:
  virtual ~out_frame() = default;
  virtual std::span<const std::byte> bytes() const = 0;
};
using out_frame_ptr = std::unique_ptr<out_frame>;

// A live connection, for frames the broker sends unasked (subscription deliveries: response
// frames with correlation id 0). They go out between responses, never inside one; responses keep
// their order among themselves.
class session_channel {
 public:
  virtual ~session_channel() = default;
  // Queues `f` for sending; from any thread. False (and `f` is dropped) once the connection is
  // closed. Queued frames count against the connection's byte budget (server_config), so a
  // client that does not read its deliveries stops being read, and is closed after the write
  // timeout.
  virtual bool push(out_frame_ptr f) = 0;
  virtual bool closed() const = 0;
  // The connection's shard.
  virtual asio::any_io_executor executor() const = 0;
};

// One request's share of its connection's byte budget (server_config::max_inflight_bytes), for a
// handler about to build a large response. Without it, requests are handled concurrently and a
// response counts only once built: a client pipelining fetches it never reads would make the
// broker build them all at once.
class response_budget {
 public:
  virtual ~response_budget() = default;
  // Waits until the connection has room for a response of up to `bytes` (capped at the frame
  // limit, which no response exceeds) and holds that room for this request until its response is
  // queued; from then the response's real size counts. Earlier requests' reservations are granted
  // first; a request with no unsent response ahead of it is granted at once, even over the budget,
  // so a connection always makes progress. False if the connection closed meanwhile (the answer
  // will never be sent: build none). Once per request, on the session's shard, inside handle().
  virtual asio::awaitable<bool> reserve(size_t bytes) = 0;
};

struct session_info {
  uint64_t id = 0;
  std::string peer;
  shard_id shard{0};
  std::weak_ptr<session_channel> channel;   // the connection itself (weak: it may close any time)
  std::shared_ptr<response_budget> budget;  // in handle(): this request's; null elsewhere
};

class frame_handler {
 public:
  virtual ~frame_handler() = default;
  // Runs on the session's shard for each frame; may hop to other shards and must come back
  // (co_spawn ... use_awaitable does). Returns the response frame. An exception is a bug: the
  // session logs and counts it and closes the connection.
  virtual asio::awaitable<out_frame_ptr> handle(std::shared_ptr<in_frame> f, session_info s) = 0;
  // A response for a frame that could not be read at all (correlation id 0).
  virtual out_frame_ptr error_frame(errc code, std::string message) = 0;
  // The connection closed (EOF, reset, idle timeout, shutdown); once per session, on its shard.
  virtual void on_session_closed(const session_info& s) {}
};

struct server_config {
  std::string host = "127.0.0.1";
  uint16_t port = 7070;  // 0: any free port
  uint32_t max_frame_bytes = 16u << 20;
  // Broker-wide: a connection beyond this gets one resource_exhausted frame and is closed.
  size_t max_connections = 10'000;
  size_t max_inflight_requests = 256;  // per connection
  // Per connection: bytes of unanswered requests plus responses and pushed frames not yet sent.
  // At or above it the session reads no further request until the client has read enough.
  size_t max_inflight_bytes = 64u << 20;
  int64_t idle_timeout_ms = int64_t{10} * 60 * 1000;  // close a connection with no bytes read or written this long
  int64_t write_timeout_ms = 30'000;  // close a connection whose pending write made no progress this long
};

class server {
 public:
  // `rt` and `handler` must outlive the server.
  server(runtime::shard_set& rt, frame_handler& handler, server_config cfg);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and listens; returns the bound port. Call before rt.start() or from any thread.
  [[nodiscard]] result<uint16_t> listen();
  void start();                  // starts accepting (on shard 0)
  asio::awaitable<void> stop();  // stops accepting, closes every session, waits for them

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace ferry::net
