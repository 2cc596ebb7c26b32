#pragma once
// broker/peer transport: the connections between brokers that carry the consensus core's messages
// (schema/peer.md has the protocol: frames, Hello, which side dials, lanes).
//
// One transport per broker process, on one executor (one shard): it listens on the peer port
// (ferryd's --peer-listen, default 7071), keeps one TCP connection per pair of brokers (the lower
// node id dials the higher, with capped exponential backoff; the acceptor keeps the newest
// connection from a peer), exchanges Hellos first (a wrong cluster id, protocol version or dial
// direction is refused with a logged reason), and then moves messages both ways.
//
// Sending: send() only queues. Every message queued for a peer before the transport next runs on
// its executor is encoded together (broker/peer/codec.h), so a host that drains all its groups in
// one go sends all their heartbeats to a peer as ONE frame. Frames wait in two bounded queues per
// peer: control (heartbeats, votes, replies) and bulk (appends, snapshots). The writer always
// takes every queued control frame first and at most `max_bulk_write_bytes` of bulk per write,
// and gathers them into one write (pipelined), so heartbeats never queue behind more than one
// write's worth of bulk data. A queue over its byte bound drops its OLDEST frames (counted in
// stats()); consensus tolerates lost messages. Queues survive a reconnection.
//
// Receiving: every message of a verified frame is handed to the on_message callback with the time
// the frame was read (the consensus core wants the receive time, group.h step()). A frame over
// `max_frame_bytes` or one that fails to decode closes that connection (logged, counted).
//
// Liveness: an idle connection sends a keepalive (an empty Heartbeats frame) every
// `keepalive_interval`; a connection with nothing read for `idle_timeout`, or whose write makes no
// progress for `write_timeout`, is closed (the dialer reconnects).
//
// Threading: construct, call and destroy on the executor's thread only (or before it runs); the
// callback runs there too. Ownership: the transport owns its sockets and coroutines; close()
// starts an orderly stop, stopped() says when every coroutine has finished. Destroying a transport
// whose coroutines are still running is allowed only after the executor's io_context stopped.
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "broker/consensus/types.h"
#include "broker/peer/codec.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::peer {

// CLOCK_MONOTONIC_RAW, the consensus core's clock (types.h time_point).
consensus::time_point monotonic_raw_now() noexcept;

struct transport_config {
  std::string cluster_id;
  node_id self;
  uint64_t incarnation = 0;  // changes on every process start
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 7071;  // 0: any free port (listen() returns the bound one)
  uint32_t max_frame_bytes = default_max_frame_bytes;
  size_t max_control_queue_bytes = size_t{8} << 20;  // per peer
  size_t max_bulk_queue_bytes = size_t{64} << 20;    // per peer
  size_t max_bulk_write_bytes = size_t{256} << 10;   // bulk bytes gathered into one write
  std::chrono::milliseconds reconnect_min{20};
  std::chrono::milliseconds reconnect_max{2000};
  std::chrono::milliseconds handshake_timeout{5000};  // connect + Hello exchange
  std::chrono::milliseconds keepalive_interval{1000};
  std::chrono::milliseconds idle_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};
  encode_options encoding;
  // The receive time handed to on_message; monotonic_raw_now unless a test injects another.
  std::function<consensus::time_point()> clock = monotonic_raw_now;
};

// Counters for the metrics probe (all since construction).
struct transport_stats {
  uint64_t connections_dialed = 0;    // Hello exchange completed on a connection we dialed
  uint64_t connections_accepted = 0;  // ... on a connection we accepted
  uint64_t connections_closed = 0;    // established connections that closed
  uint64_t dial_failures = 0;         // connect or handshake failed (we dialed)
  uint64_t hellos_refused = 0;        // we refused a peer's Hello
  uint64_t refused_by_peer = 0;       // a peer refused ours (Reject received)
  uint64_t malformed_frames = 0;      // frames that did not decode, or over the size limit
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t writes = 0;             // socket writes (each gathers one or more frames)
  uint64_t messages_sent = 0;      // consensus messages in frames written
  uint64_t messages_received = 0;  // consensus messages handed to on_message
  uint64_t bulk_dropped_frames = 0;
  uint64_t bulk_dropped_messages = 0;
  uint64_t control_dropped_frames = 0;
  uint64_t control_dropped_messages = 0;
};

class transport {
 public:
  using message_handler = std::function<void(group_id, consensus::message, consensus::time_point received)>;

  // `on_message` is called on `ex` for every message received. Nothing runs before start().
  transport(boost::asio::any_io_executor ex, transport_config cfg, message_handler on_message);
  ~transport();
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  // Binds the peer listener; returns the bound port. Errors (address in use, bad address) are
  // errc::invalid_argument with the reason.
  [[nodiscard]] result<uint16_t> listen();
  // Starts accepting (if listen() succeeded) and dialing the peers added so far.
  void start();
  // Makes `peer` known. If its id is higher than ours, we dial host:port (and keep dialing after
  // every loss, with backoff); a lower id dials us and its address is not needed. Calling it again
  // for a peer changes the address used by the next dial.
  void add_peer(node_id peer, std::string host, uint16_t port);
  // Queues `m` (its `to` must be `peer`) for `peer`. Messages to a peer with no connection wait in
  // its bounded queues.
  void send(node_id peer, group_id group, consensus::message m);
  // Closes the current connection to `peer`, if any (the dialing side reconnects).
  void disconnect(node_id peer);
  // Whether a connection to `peer` has completed its Hello exchange and is open.
  [[nodiscard]] bool connected(node_id peer) const;

  // Stops accepting and dialing and closes every connection. Queued messages are dropped.
  void close();
  // True once close() was called and every coroutine of the transport has finished.
  [[nodiscard]] bool stopped() const;

  [[nodiscard]] const transport_stats& stats() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace ferry::peer
