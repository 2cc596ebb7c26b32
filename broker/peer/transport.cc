#include "broker/peer/transport.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "broker/base/assert.h"
#include "broker/runtime/logger.h"
#include "broker/runtime/metrics.h"
#include "broker/runtime/runtime.h"
#include "schema/endian.h"

namespace ferry::peer {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::use_awaitable;
using asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {
runtime::subsystem_logger logger{"peer"};

// The first frame of a connection is a Hello: a stranger cannot make us allocate more than this
// before it has said who it is.
constexpr uint32_t max_handshake_frame_bytes = 64 * 1024;
constexpr size_t read_chunk_bytes = size_t{64} * 1024;

// Process-wide metrics (/metrics); transport_stats holds the same counts per transport.
struct probe {
  metrics::counter& dialed = metrics::get_counter(
      "ferry_peer_connections_total", "Peer connections established (Hello exchange done)", {{"side", "dialed"}});
  metrics::counter& accepted = metrics::get_counter(
      "ferry_peer_connections_total", "Peer connections established (Hello exchange done)", {{"side", "accepted"}});
  metrics::counter& closed =
      metrics::get_counter("ferry_peer_connections_closed_total", "Established peer connections that closed");
  metrics::counter& dial_failures =
      metrics::get_counter("ferry_peer_dial_failures_total", "Peer dials whose connect or Hello exchange failed");
  metrics::counter& refused =
      metrics::get_counter("ferry_peer_hellos_refused_total", "Peer Hellos refused (cluster id, version, direction)");
  metrics::counter& refused_by_peer =
      metrics::get_counter("ferry_peer_refused_by_peer_total", "Our Hellos that a peer refused");
  metrics::counter& malformed = metrics::get_counter("ferry_peer_malformed_frames_total",
                                                     "Peer frames that did not decode or were over the size limit");
  metrics::counter& frames_out = metrics::get_counter("ferry_peer_frames_sent_total", "Peer frames sent");
  metrics::counter& frames_in = metrics::get_counter("ferry_peer_frames_received_total", "Peer frames received");
  metrics::counter& bytes_out = metrics::get_counter("ferry_peer_sent_bytes_total", "Peer bytes sent");
  metrics::counter& bytes_in = metrics::get_counter("ferry_peer_received_bytes_total", "Peer bytes received");
  metrics::counter& writes =
      metrics::get_counter("ferry_peer_writes_total", "Peer socket writes (each gathers frames)");
  metrics::counter& messages_out =
      metrics::get_counter("ferry_peer_messages_sent_total", "Consensus messages sent to peers");
  metrics::counter& messages_in =
      metrics::get_counter("ferry_peer_messages_received_total", "Consensus messages received from peers");
  metrics::counter& dropped_bulk_frames =
      metrics::get_counter("ferry_peer_dropped_frames_total",
                           "Queued peer frames dropped, oldest first, over the queue bound", {{"lane", "bulk"}});
  metrics::counter& dropped_control_frames =
      metrics::get_counter("ferry_peer_dropped_frames_total",
                           "Queued peer frames dropped, oldest first, over the queue bound", {{"lane", "control"}});
  metrics::counter& dropped_bulk_messages = metrics::get_counter(
      "ferry_peer_dropped_messages_total", "Consensus messages in dropped peer frames", {{"lane", "bulk"}});
  metrics::counter& dropped_control_messages = metrics::get_counter(
      "ferry_peer_dropped_messages_total", "Consensus messages in dropped peer frames", {{"lane", "control"}});
  static probe& get() {
    static probe p;
    return p;
  }
};

// One received frame in an 8-byte aligned buffer, the length prefix included (the codec verifies
// alignment relative to the frame start).
struct in_buf {
  std::vector<uint64_t> storage;
  size_t n = 0;
  std::byte* data() { return reinterpret_cast<std::byte*>(storage.data()); }
  std::span<const std::byte> view() const { return {reinterpret_cast<const std::byte*>(storage.data()), n}; }
};
}  // namespace

consensus::time_point monotonic_raw_now() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return consensus::time_point(int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
}

namespace {

struct connection {
  connection(tcp::socket s, uint64_t conn_id) : sock(std::move(s)), id(conn_id), timer(sock.get_executor()) {}
  tcp::socket sock;
  uint64_t id;
  node_id peer;              // known once the Hello arrived
  bool established = false;  // Hello exchange done, attached to its peer
  bool closed = false;
  std::string remote;  // host:port for logs
  steady::time_point last_read = steady::now();
  std::optional<steady::time_point> write_started;
  asio::steady_timer timer;  // handshake deadline, then the watchdog's
};

// Everything we know about one other broker: where to dial it (if we dial), the messages and frames
// waiting for it, and its current connection.
struct peer_state {
  peer_state(node_id n, const asio::any_io_executor& ex) : id(n), writer_wake(ex), dial_wake(ex) {}
  node_id id;
  std::string host;
  uint16_t port = 0;
  bool has_address = false;
  bool dialing = false;                    // its dialer coroutine runs
  std::vector<addressed_message> pending;  // queued by send(), not yet encoded
  std::deque<frame> control;
  std::deque<frame> bulk;
  size_t control_bytes = 0;
  size_t bulk_bytes = 0;
  std::shared_ptr<connection> conn;  // established; null while there is none
  asio::steady_timer writer_wake;    // cancelled when frames are queued or the connection closes
  asio::steady_timer dial_wake;      // cancelled when the connection closes or the transport stops
};

std::string endpoint_text(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

struct transport::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor e, transport_config c, message_handler h)
      : ex(std::move(e)), cfg(std::move(c)), on_message(std::move(h)), acceptor(ex) {}

  asio::any_io_executor ex;
  transport_config cfg;
  message_handler on_message;
  tcp::acceptor acceptor;
  bool listening = false;
  bool started = false;
  bool stopping = false;
  bool flush_posted = false;
  size_t live = 0;  // coroutines running
  uint64_t next_conn_id = 1;
  std::map<int32_t, std::unique_ptr<peer_state>> peers;
  std::vector<std::shared_ptr<connection>> handshaking;  // not yet established, closed by close()
  transport_stats stats;

  int32_t self() const { return cfg.self.value; }

  // Counts in this transport's stats and in the process-wide metric.
  void count(uint64_t transport_stats::*field, metrics::counter& metric, uint64_t n = 1) {
    stats.*field += n;
    metric.inc(n);
  }

  peer_state& peer(node_id n) {
    auto& p = peers[n.value];
    if (!p) p = std::make_unique<peer_state>(n, ex);
    return *p;
  }

  // --- coroutines ------------------------------------------------------------------------------

  struct live_guard {
    impl* i;
    ~live_guard() { --i->live; }
  };
  static asio::awaitable<void> counted(std::shared_ptr<impl> self, asio::awaitable<void> a) {
    live_guard g{self.get()};
    co_await std::move(a);
  }
  void spawn(asio::awaitable<void> a, const char* what) {
    ++live;
    runtime::spawn_logged(ex, counted(shared_from_this(), std::move(a)), what);
  }

  // --- connections -------------------------------------------------------------------------------

  // Closes `c` (idempotent). If it was its peer's connection, the peer has none now: its writer
  // and dialer wake up.
  void close_conn(const std::shared_ptr<connection>& conn, std::string_view why) {
    // A copy that keeps the connection alive: `conn` may be p.conn, which is reset below.
    const std::shared_ptr<connection> c = conn;  // NOLINT(performance-unnecessary-copy-initialization)
    if (c->closed) return;
    c->closed = true;
    boost::system::error_code ec;
    c->sock.shutdown(tcp::socket::shutdown_both, ec);
    c->sock.close(ec);
    c->timer.cancel();
    std::erase(handshaking, c);
    if (!c->established) return;
    count(&transport_stats::connections_closed, probe::get().closed);
    peer_state& p = peer(c->peer);
    if (p.conn == c) p.conn.reset();
    p.writer_wake.cancel();
    p.dial_wake.cancel();
    if (stopping) {
      logger()->debug("node {}: connection {} to node {} closed: {}", self(), c->id, c->peer.value, why);
    } else {
      logger()->info("node {}: connection {} to node {} ({}) closed: {}", self(), c->id, c->peer.value, c->remote, why);
    }
  }

  // Closes `c` if the timer runs out before it is cancelled (the handshake's deadline).
  static void arm_deadline(const std::shared_ptr<connection>& c, std::chrono::milliseconds d) {
    c->timer.expires_after(d);
    c->timer.async_wait([c](boost::system::error_code ec) {
      if (ec) return;
      boost::system::error_code ignored;
      c->sock.close(ignored);
    });
  }

  static asio::awaitable<result<in_buf>> read_frame(std::shared_ptr<connection> c, uint32_t max_bytes) {
    std::array<std::byte, frame_prefix_bytes> prefix{};
    auto [ec, n] = co_await asio::async_read(c->sock, asio::buffer(prefix), as_tuple(use_awaitable));
    if (ec) co_return fail(errc::connection_closed, ec.message());
    c->last_read = steady::now();
    const uint32_t len = wire::get_le32(prefix.data());
    if (len > max_bytes) {
      co_return fail(errc::frame_too_large,
                     "frame of " + std::to_string(len) + " bytes, over the limit of " + std::to_string(max_bytes));
    }
    // The buffer grows as the body arrives (doubling from 64 KiB): a length prefix alone never
    // allocates the length it announces.
    in_buf b;
    b.n = frame_prefix_bytes + len;
    size_t have = 0;
    b.storage.resize((frame_prefix_bytes + std::min<size_t>(len, read_chunk_bytes) + 7) / 8);
    std::memcpy(b.data(), prefix.data(), prefix.size());
    while (have < len) {
      const size_t chunk = std::min<size_t>(len - have, std::max(read_chunk_bytes, have));
      b.storage.resize((frame_prefix_bytes + have + chunk + 7) / 8);
      auto [ec2, n2] = co_await asio::async_read(c->sock, asio::buffer(b.data() + frame_prefix_bytes + have, chunk),
                                                 as_tuple(use_awaitable));
      if (ec2) co_return fail(errc::connection_closed, ec2.message());
      have += n2;
      c->last_read = steady::now();
    }
    co_return b;
  }

  static asio::awaitable<bool> write_frame(std::shared_ptr<connection> c, frame f) {
    auto b = f.bytes();
    auto [ec, n] = co_await asio::async_write(c->sock, asio::buffer(b.data(), b.size()), as_tuple(use_awaitable));
    co_return !ec;
  }

  // Why a Hello is refused, empty if it is acceptable. `expected`: the node we dialed (0 when we
  // accepted the connection).
  std::string check_hello(const hello& h, node_id expected) const {
    if (h.cluster_id != cfg.cluster_id)
      return "cluster id '" + h.cluster_id + "' is not ours ('" + cfg.cluster_id + "')";
    if (h.version != protocol_version) return "protocol version " + std::to_string(h.version) + " is not spoken here";
    if (h.node.value <= 0) return "node id " + std::to_string(h.node.value) + " is not valid";
    if (h.node == cfg.self) return "node id " + std::to_string(h.node.value) + " is ours";
    if (expected.value != 0 && h.node != expected)
      return "dialed node " + std::to_string(expected.value) + " but node " + std::to_string(h.node.value) +
             " answered";
    if (expected.value == 0 && h.node.value > self())
      return "node " + std::to_string(h.node.value) + " has the higher id and must wait for node " +
             std::to_string(self()) + " to dial it";
    return {};
  }

  hello our_hello() const { return hello{cfg.cluster_id, cfg.self, cfg.incarnation, protocol_version}; }

  void attach(const std::shared_ptr<connection>& c, node_id n, bool dialed) {
    std::erase(handshaking, c);
    c->timer.cancel();
    c->peer = n;
    c->established = true;
    c->last_read = steady::now();
    peer_state& p = peer(n);
    if (p.conn) close_conn(p.conn, "replaced by a newer connection from the same node");
    p.conn = c;
    if (dialed) {
      count(&transport_stats::connections_dialed, probe::get().dialed);
    } else {
      count(&transport_stats::connections_accepted, probe::get().accepted);
    }
    logger()->info("node {}: connected to node {} ({}, connection {}, {})", self(), n.value, c->remote, c->id,
                   dialed ? "dialed" : "accepted");
    spawn(reader(shared_from_this(), c), "peer reader");
    spawn(writer(shared_from_this(), c), "peer writer");
    spawn(watchdog(shared_from_this(), c), "peer watchdog");
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<impl> self) {
    asio::steady_timer backoff(self->ex);
    while (!self->stopping) {
      auto [ec, sock] = co_await self->acceptor.async_accept(as_tuple(use_awaitable));
      if (self->stopping) break;
      if (ec) {
        // Out of file descriptors and the like: wait a little rather than spin.
        logger()->warn("node {}: accepting a peer connection failed: {}", self->self(), ec.message());
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(as_tuple(use_awaitable));
        continue;
      }
      auto c = std::make_shared<connection>(std::move(sock), self->next_conn_id++);
      self->spawn(accept_handshake(self, c), "peer handshake");
    }
  }

  static asio::awaitable<void> accept_handshake(std::shared_ptr<impl> self, std::shared_ptr<connection> c) {
    c->remote = endpoint_text(c->sock);
    boost::system::error_code ignored;
    c->sock.set_option(tcp::no_delay(true), ignored);
    self->handshaking.push_back(c);
    arm_deadline(c, self->cfg.handshake_timeout);
    auto f = co_await read_frame(c, max_handshake_frame_bytes);
    if (!f) {
      logger()->debug("node {}: connection {} from {} gone before its Hello: {}", self->self(), c->id, c->remote,
                      f.error().to_string());
      self->close_conn(c, "no Hello");
      co_return;
    }
    auto d = decode_frame(f->view(), node_id{}, self->cfg.self);
    if (!d || d->type != decoded_frame::kind::hello) {
      self->count(&transport_stats::malformed_frames, probe::get().malformed);
      logger()->warn("node {}: connection {} from {}: first frame is not a Hello ({})", self->self(), c->id, c->remote,
                     d ? "another frame type" : d.error().to_string());
      self->close_conn(c, "no Hello");
      co_return;
    }
    if (auto why = self->check_hello(d->hello, node_id{}); !why.empty()) {
      self->count(&transport_stats::hellos_refused, probe::get().refused);
      logger()->warn("node {}: refused connection {} from {} (node {}): {}", self->self(), c->id, c->remote,
                     d->hello.node.value, why);
      frame reject = encode_reject(why);
      co_await write_frame(c, std::move(reject));
      self->close_conn(c, "refused");
      co_return;
    }
    frame ours = encode_hello(self->our_hello());
    if (!co_await write_frame(c, std::move(ours)) || c->closed || self->stopping) {
      self->close_conn(c, "Hello not sent");
      co_return;
    }
    logger()->debug("node {}: Hello from node {} incarnation {}", self->self(), d->hello.node.value,
                    d->hello.incarnation);
    self->attach(c, d->hello.node, false);
  }

  // Dials `n` until the transport stops: whenever it has no connection, with capped exponential
  // backoff between failed attempts.
  static asio::awaitable<void> dialer(std::shared_ptr<impl> self, node_id n) {
    peer_state& p = self->peer(n);
    auto backoff = self->cfg.reconnect_min;
    while (!self->stopping) {
      if (p.conn) {
        p.dial_wake.expires_at(steady::time_point::max());
        co_await p.dial_wake.async_wait(as_tuple(use_awaitable));
        continue;
      }
      if (co_await dial_once(self, n)) {
        backoff = self->cfg.reconnect_min;
        continue;
      }
      self->count(&transport_stats::dial_failures, probe::get().dial_failures);
      if (self->stopping) break;
      p.dial_wake.expires_after(backoff);
      co_await p.dial_wake.async_wait(as_tuple(use_awaitable));
      backoff = std::min(backoff * 2, self->cfg.reconnect_max);
    }
    p.dialing = false;
  }

  static asio::awaitable<bool> dial_once(std::shared_ptr<impl> self, node_id n) {
    peer_state& p = self->peer(n);
    const std::string where = p.host + ":" + std::to_string(p.port);
    tcp::resolver resolver(self->ex);
    auto [rec, endpoints] = co_await resolver.async_resolve(p.host, std::to_string(p.port), as_tuple(use_awaitable));
    if (rec) {
      logger()->warn("node {}: cannot resolve node {} at {}: {}", self->self(), n.value, where, rec.message());
      co_return false;
    }
    auto c = std::make_shared<connection>(tcp::socket(self->ex), self->next_conn_id++);
    c->remote = where;
    self->handshaking.push_back(c);
    arm_deadline(c, self->cfg.handshake_timeout);
    auto [cec, ep] = co_await asio::async_connect(c->sock, endpoints, as_tuple(use_awaitable));
    if (cec || c->closed || self->stopping) {
      logger()->debug("node {}: dialing node {} at {} failed: {}", self->self(), n.value, where, cec.message());
      self->close_conn(c, "connect failed");
      co_return false;
    }
    boost::system::error_code ignored;
    c->sock.set_option(tcp::no_delay(true), ignored);
    frame ours = encode_hello(self->our_hello());
    if (!co_await write_frame(c, std::move(ours))) {
      self->close_conn(c, "Hello not sent");
      co_return false;
    }
    auto f = co_await read_frame(c, max_handshake_frame_bytes);
    if (!f) {
      logger()->debug("node {}: node {} at {} closed before its Hello: {}", self->self(), n.value, where,
                      f.error().to_string());
      self->close_conn(c, "no Hello");
      co_return false;
    }
    auto d = decode_frame(f->view(), n, self->cfg.self);
    if (d && d->type == decoded_frame::kind::reject) {
      self->count(&transport_stats::refused_by_peer, probe::get().refused_by_peer);
      logger()->warn("node {}: node {} at {} refused our connection: {}", self->self(), n.value, where, d->reason);
      self->close_conn(c, "refused by peer");
      co_return false;
    }
    if (!d || d->type != decoded_frame::kind::hello) {
      self->count(&transport_stats::malformed_frames, probe::get().malformed);
      logger()->warn("node {}: node {} at {} did not answer with a Hello ({})", self->self(), n.value, where,
                     d ? "another frame type" : d.error().to_string());
      self->close_conn(c, "no Hello");
      co_return false;
    }
    if (auto why = self->check_hello(d->hello, n); !why.empty()) {
      self->count(&transport_stats::hellos_refused, probe::get().refused);
      logger()->warn("node {}: refused the answer of {} (dialed as node {}): {}", self->self(), where, n.value, why);
      frame reject = encode_reject(why);
      co_await write_frame(c, std::move(reject));
      self->close_conn(c, "refused");
      co_return false;
    }
    if (c->closed || self->stopping) {
      self->close_conn(c, "stopping");
      co_return false;
    }
    self->attach(c, n, true);
    co_return true;
  }

  static asio::awaitable<void> reader(std::shared_ptr<impl> self, std::shared_ptr<connection> c) {
    while (!c->closed) {
      auto f = co_await read_frame(c, self->cfg.max_frame_bytes);
      if (c->closed) break;
      if (!f) {
        if (f.error().code == errc::frame_too_large) {
          self->count(&transport_stats::malformed_frames, probe::get().malformed);
          logger()->warn("node {}: node {} sent a {}", self->self(), c->peer.value, f.error().message);
        }
        self->close_conn(c, f.error().to_string());
        break;
      }
      const consensus::time_point now = self->cfg.clock();
      self->count(&transport_stats::frames_received, probe::get().frames_in);
      self->count(&transport_stats::bytes_received, probe::get().bytes_in, f->n);
      auto d = decode_frame(f->view(), c->peer, self->cfg.self);
      if (!d || d->type != decoded_frame::kind::messages) {
        self->count(&transport_stats::malformed_frames, probe::get().malformed);
        const std::string why = d ? "a Hello or Reject after the handshake" : d.error().to_string();
        logger()->warn("node {}: closing connection {} to node {}: bad frame: {}", self->self(), c->id, c->peer.value,
                       why);
        self->close_conn(c, "bad frame");
        break;
      }
      for (auto& a : d->messages) {
        self->count(&transport_stats::messages_received, probe::get().messages_in);
        self->on_message(a.group, std::move(a.msg), now);
      }
    }
  }

  static asio::awaitable<void> writer(std::shared_ptr<impl> self, std::shared_ptr<connection> c) {
    peer_state& p = self->peer(c->peer);
    std::vector<frame> batch;
    std::vector<asio::const_buffer> bufs;
    while (!c->closed) {
      batch.clear();
      bufs.clear();
      // Every control frame first: heartbeats and votes never wait behind bulk data queued after
      // them, and behind at most one write's worth of bulk already on its way.
      while (!p.control.empty()) {
        p.control_bytes -= p.control.front().size();
        batch.push_back(std::move(p.control.front()));
        p.control.pop_front();
      }
      size_t bulk = 0;
      while (!p.bulk.empty() && (bulk == 0 || bulk + p.bulk.front().size() <= self->cfg.max_bulk_write_bytes)) {
        bulk += p.bulk.front().size();
        p.bulk_bytes -= p.bulk.front().size();
        batch.push_back(std::move(p.bulk.front()));
        p.bulk.pop_front();
      }
      if (batch.empty()) {
        p.writer_wake.expires_after(self->cfg.keepalive_interval);
        auto [ec] = co_await p.writer_wake.async_wait(as_tuple(use_awaitable));
        if (c->closed) break;
        if (ec || !p.control.empty() || !p.bulk.empty()) continue;  // woken: something to send
        batch.push_back(encode_keepalive());                        // idle: tell the peer we live
      }
      size_t messages = 0;
      for (const auto& f : batch) {
        bufs.emplace_back(f.bytes().data(), f.bytes().size());
        messages += f.messages();
      }
      c->write_started = steady::now();
      auto [ec, n] = co_await asio::async_write(c->sock, bufs, as_tuple(use_awaitable));
      c->write_started.reset();
      if (ec) {
        self->close_conn(c, "write failed: " + ec.message());
        break;
      }
      auto& pr = probe::get();
      self->count(&transport_stats::writes, pr.writes);
      self->count(&transport_stats::frames_sent, pr.frames_out, batch.size());
      self->count(&transport_stats::bytes_sent, pr.bytes_out, n);
      self->count(&transport_stats::messages_sent, pr.messages_out, messages);
    }
  }

  static asio::awaitable<void> watchdog(std::shared_ptr<impl> self, std::shared_ptr<connection> c) {
    const auto period = std::max(std::chrono::milliseconds(10), self->cfg.keepalive_interval / 2);
    while (!c->closed) {
      c->timer.expires_after(period);
      co_await c->timer.async_wait(as_tuple(use_awaitable));
      if (c->closed) break;
      const auto now = steady::now();
      if (now - c->last_read > self->cfg.idle_timeout) {
        self->close_conn(c, "nothing read for " + std::to_string(self->cfg.idle_timeout.count()) + " ms");
      } else if (c->write_started && now - *c->write_started > self->cfg.write_timeout) {
        self->close_conn(c, "a write made no progress for " + std::to_string(self->cfg.write_timeout.count()) + " ms");
      }
    }
  }

  // --- queues ------------------------------------------------------------------------------------

  void enqueue(peer_state& p, frame f) {
    const bool is_bulk = f.lane() == lane::bulk;
    auto& q = is_bulk ? p.bulk : p.control;
    size_t& bytes = is_bulk ? p.bulk_bytes : p.control_bytes;
    const size_t bound = is_bulk ? cfg.max_bulk_queue_bytes : cfg.max_control_queue_bytes;
    bytes += f.size();
    q.push_back(std::move(f));
    // Over the bound: the oldest frames go (the newest is kept even if alone over it). Consensus
    // resends what matters; an old heartbeat is worth nothing once a newer one is queued.
    while (bytes > bound && q.size() > 1) {
      bytes -= q.front().size();
      auto& pr = probe::get();
      if (is_bulk) {
        count(&transport_stats::bulk_dropped_frames, pr.dropped_bulk_frames);
        count(&transport_stats::bulk_dropped_messages, pr.dropped_bulk_messages, q.front().messages());
      } else {
        count(&transport_stats::control_dropped_frames, pr.dropped_control_frames);
        count(&transport_stats::control_dropped_messages, pr.dropped_control_messages, q.front().messages());
      }
      q.pop_front();
    }
  }

  void flush() {
    flush_posted = false;
    if (stopping) return;
    for (auto& [id, p] : peers) {
      if (p->pending.empty()) continue;
      auto frames = encode_messages(p->pending, cfg.encoding);
      p->pending.clear();
      for (auto& f : frames) enqueue(*p, std::move(f));
      p->writer_wake.cancel();
    }
  }

  void start_dialer(peer_state& p) {
    if (!started || stopping || p.dialing || !p.has_address || p.id.value <= self()) return;
    p.dialing = true;
    spawn(dialer(shared_from_this(), p.id), "peer dialer");
  }

  void close() {
    if (stopping) return;
    stopping = true;
    boost::system::error_code ec;
    acceptor.close(ec);
    auto pending_handshakes = handshaking;
    for (auto& c : pending_handshakes) close_conn(c, "transport stopping");
    for (auto& [id, p] : peers) {
      if (p->conn) close_conn(p->conn, "transport stopping");
      p->pending.clear();
      p->control.clear();
      p->bulk.clear();
      p->control_bytes = p->bulk_bytes = 0;
      p->writer_wake.cancel();
      p->dial_wake.cancel();
    }
  }
};

transport::transport(asio::any_io_executor ex, transport_config cfg, message_handler on_message)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(cfg), std::move(on_message))) {}

transport::~transport() {
  try {
    impl_->close();
  } catch (const std::exception& e) {
    logger()->error("node {}: closing the peer transport: {}", impl_->self(), e.what());
  } catch (...) {
    // Nothing more to do in a destructor: the sockets close with their objects anyway.
  }
}

result<uint16_t> transport::listen() {
  auto& i = *impl_;
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(i.cfg.listen_host, ec);
  if (ec) return fail(errc::invalid_argument, "peer listener: bad address '" + i.cfg.listen_host + "'");
  const tcp::endpoint ep(addr, i.cfg.listen_port);
  i.acceptor.open(ep.protocol(), ec);
  if (!ec) i.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) i.acceptor.bind(ep, ec);
  if (!ec) i.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    i.acceptor.close();
    return fail(errc::invalid_argument, "peer listener on " + i.cfg.listen_host + ":" +
                                            std::to_string(i.cfg.listen_port) + ": " + ec.message());
  }
  i.listening = true;
  const uint16_t port = i.acceptor.local_endpoint().port();
  logger()->info("node {}: peer listener on {}:{}", i.self(), i.cfg.listen_host, port);
  return port;
}

void transport::start() {
  auto& i = *impl_;
  if (i.started || i.stopping) return;
  i.started = true;
  if (i.listening) i.spawn(impl::accept_loop(impl_), "peer accept loop");
  for (auto& [id, p] : i.peers) i.start_dialer(*p);
}

void transport::add_peer(node_id peer, std::string host, uint16_t port) {
  FERRY_ASSERT(peer != impl_->cfg.self, "a transport's peer cannot be itself");
  auto& p = impl_->peer(peer);
  p.host = std::move(host);
  p.port = port;
  p.has_address = true;
  impl_->start_dialer(p);
}

void transport::send(node_id peer, group_id group, consensus::message m) {
  auto& i = *impl_;
  if (i.stopping) return;
  i.peer(peer).pending.push_back(addressed_message{group, std::move(m)});
  if (i.flush_posted) return;
  i.flush_posted = true;
  asio::post(i.ex, [w = std::weak_ptr<impl>(impl_)] {
    if (auto s = w.lock()) s->flush();
  });
}

void transport::disconnect(node_id peer) {
  auto it = impl_->peers.find(peer.value);
  if (it != impl_->peers.end() && it->second->conn) impl_->close_conn(it->second->conn, "disconnect() called");
}

bool transport::connected(node_id peer) const {
  auto it = impl_->peers.find(peer.value);
  return it != impl_->peers.end() && it->second->conn != nullptr;
}

void transport::close() { impl_->close(); }

bool transport::stopped() const { return impl_->stopping && impl_->live == 0; }

const transport_stats& transport::stats() const { return impl_->stats; }

}  // namespace ferry::peer
