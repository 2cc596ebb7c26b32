#pragma once
// Private to the client library: one TCP connection to a broker with pipelined requests, and the
// I/O thread (io_runner) that every producer, reader, admin and consumer object owns (the consumer
// opens its connections itself, on that thread, to receive pushed deliveries).
//
// Threading: a connection is used only on its io_context's thread. Handlers run there too.
//
// Push frames: the broker sends `Delivery` responses (correlation id 0) unsolicited on the
// connection where a consumer joined. They never match a pending request; they go to the push
// handler (dropped if none is set). Any other frame with correlation id 0 is a connection-level
// error and closes the connection.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ferry/client/client.h"
#include "schema/frame.h"

namespace ferry::client::detail {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;
using builder_ptr = std::unique_ptr<flatbuffers::FlatBufferBuilder>;

// Receives the verified response (valid only during the call) or the error that ended the request:
// errc::timeout (request timeout), errc::connection_closed (dropped, refused, connect timeout) or
// the broker's connection-level error. Runs exactly once, on the I/O thread.
using response_handler = std::function<void(result<const wire::Response*>)>;
// Receives a verified push frame (body type Delivery), valid only during the call. I/O thread.
using push_handler = std::function<void(const wire::Response&)>;
// Runs once when the connection closes, after the unanswered requests were failed with `e`.
using close_handler = std::function<void(const error& e)>;

// Splits "host:port" or "[v6]:port".
result<std::pair<std::string, std::string>> split_host_port(const std::string& s);

class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(asio::io_context& io, const client_options& opts);
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection();

  // Starts resolving and connecting; requests sent before the connection is up are queued.
  void start();
  // A builder to build one request in (reused between requests).
  builder_ptr acquire_builder();
  uint64_t next_correlation_id() { return next_id_++; }
  // Queues a finished frame (wire::finish_request). The request times out after request_timeout
  // plus `extra` (a fetch's max_wait). `h` runs exactly once.
  void send(builder_ptr frame, uint64_t correlation_id, std::chrono::milliseconds extra, response_handler h);
  // Closes the socket and fails every unanswered request with `e`, then runs the close handler.
  // Idempotent.
  void close(const error& e);
  // Set before start(). The handlers may drop the owner's last reference to the connection.
  void set_push_handler(push_handler h) { push_handler_ = std::move(h); }
  void set_close_handler(close_handler h) { close_handler_ = std::move(h); }
  bool closed() const { return state_ == state::closed; }
  size_t pending() const { return pending_.size(); }

 private:
  enum class state { idle, connecting, connected, closed };
  struct pending_request {
    uint64_t id;
    steady::time_point deadline;
    response_handler handler;
  };

  void on_resolved(const boost::system::error_code& ec, const asio::ip::tcp::resolver::results_type& results);
  void start_write();
  void start_read();
  void on_read(size_t n);
  bool dispatch_frame(const std::byte* frame, size_t size);
  void arm_request_timer(steady::time_point deadline);
  void on_request_timer();

  asio::io_context& io_;
  client_options opts_;
  asio::ip::tcp::resolver resolver_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer connect_timer_;
  asio::steady_timer request_timer_;
  steady::time_point request_timer_at_ = steady::time_point::max();
  state state_ = state::idle;
  uint64_t next_id_ = 1;
  push_handler push_handler_;
  close_handler close_handler_;

  std::deque<pending_request> pending_;  // unanswered requests, in the order sent
  std::vector<builder_ptr> queued_;      // frames not yet handed to async_write
  std::vector<builder_ptr> writing_;     // frames of the async_write in progress
  std::vector<asio::const_buffer> write_bufs_;
  std::vector<builder_ptr> builder_pool_;

  // Read buffer: 8-byte aligned (the FlatBuffers verifier checks alignment from the frame start).
  std::unique_ptr<uint64_t[]> rbuf_;
  size_t rcap_ = 0;  // bytes
  size_t rbegin_ = 0, rend_ = 0;
  std::unique_ptr<uint64_t[]> scratch_;  // for frames that start at an unaligned position
  size_t scratch_cap_ = 0;
};

// The I/O thread of one client object, with the current connection to the bootstrap broker.
class io_runner {
 public:
  explicit io_runner(client_options opts);
  ~io_runner();  // stop()s; pending handlers are destroyed, not run
  // Stops and joins the I/O thread (idempotent). Not on the I/O thread. Afterwards nothing runs;
  // objects bound to io() (timers) must be destroyed before the io_runner.
  void stop();
  io_runner(const io_runner&) = delete;
  io_runner& operator=(const io_runner&) = delete;

  asio::io_context& io() { return io_; }
  const client_options& options() const { return opts_; }
  bool on_io_thread() const { return std::this_thread::get_id() == thread_id_; }
  // The live connection, opening a new one if there is none or the last one closed. I/O thread.
  connection& conn();
  // Sends one request and calls `h` with the response. I/O thread.
  // `build(fbb, correlation_id)` returns the Request root; the frame is finished here.
  void request(
      const std::function<flatbuffers::Offset<wire::Request>(flatbuffers::FlatBufferBuilder&, uint64_t)>& build,
      std::chrono::milliseconds extra, response_handler h);

  // Blocking helper for admin and reader (never call it on the I/O thread): sends the request,
  // checks the request-level error and the body type, and returns parse(response) computed on the
  // I/O thread. Always returns: the connection's connect and request timeouts bound the wait.
  template <class T>
  result<T> call(
      wire::ResponseBody expected,
      const std::function<flatbuffers::Offset<wire::Request>(flatbuffers::FlatBufferBuilder&, uint64_t)>& build,
      const std::function<result<T>(const wire::Response&)>& parse,
      std::chrono::milliseconds extra = std::chrono::milliseconds(0)) {
    std::promise<result<T>> done;
    auto fut = done.get_future();
    post([&] {
      request(build, extra, [&](result<const wire::Response*> r) {
        if (!r) return done.set_value(r.error());
        const wire::Response& resp = **r;
        if (resp.error() != wire::ErrorCode::Ok)
          return done.set_value(
              fail(wire::from_wire(resp.error()), resp.error_message() ? resp.error_message()->str() : ""));
        if (resp.body_type() != expected)
          return done.set_value(fail(errc::malformed_frame, "response body does not match the request"));
        done.set_value(parse(resp));
      });
    });
    return fut.get();
  }
  void post(std::function<void()> fn);

 private:
  client_options opts_;
  asio::io_context io_;
  std::thread thread_;
  std::thread::id thread_id_;
  std::shared_ptr<connection> conn_;
};

// Builds the Request envelope around a body.
template <class Body>
flatbuffers::Offset<wire::Request> make_request(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                                                flatbuffers::Offset<Body> body) {
  return wire::CreateRequest(fbb, 1, id, wire::RequestBodyTraits<Body>::enum_value, body.Union());
}

}  // namespace ferry::client::detail
