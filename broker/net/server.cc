#include "broker/net/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>
#include <deque>

#include "broker/net/accept_errors.h"
#include "broker/runtime/logger.h"
#include "broker/runtime/runtime.h"
#include "schema/endian.h"

namespace ferry::net {

using tcp = asio::ip::tcp;
using asio::as_tuple;
using asio::use_awaitable;
using steady = std::chrono::steady_clock;

namespace {

constexpr size_t frame_prefix_bytes = 4;  // schema/wire.md: u32 little-endian length
// A frame body is allocated as its bytes arrive: at first this much (or what the socket already
// holds), then at least doubling. Frames up to this size are read exactly as before: one
// allocation, one read.
constexpr size_t first_body_bytes = 64u << 10;
// Bytes a writer hands the kernel per write_some (Asio's transfer_all default): after each one
// the session notes write progress for the write deadline.
constexpr size_t write_chunk_bytes = 64u << 10;
// A refused connection (over --max-connections) gets its error frame, a FIN, and then up to this
// long to close its side before the broker closes the socket: closing with the client's request
// unread would send a reset, which can destroy the error frame before the client reads it.
constexpr auto refusal_linger = std::chrono::milliseconds(1000);
constexpr size_t max_lingering_refusals = 64;  // beyond this many at once, refusals close at once

// The FlatBuffers verifier needs the frame 8-byte aligned; in_frame promises 16. Vector storage
// comes from operator new, which aligns to at least this.
static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= 16);

uint32_t frame_length(const std::byte* p) { return wire::get_le32(p); }

runtime::subsystem_logger logger{"net"};

struct probe {
  metrics::counter& accepted = metrics::get_counter("ferry_connections_accepted_total", "Client connections accepted");
  metrics::gauge& open = metrics::get_gauge("ferry_connections_open", "Client connections open");
  metrics::counter& refused = metrics::get_counter("ferry_connections_refused_total",
                                                   "Client connections refused because --max-connections were open");
  metrics::counter& idle_closed =
      metrics::get_counter("ferry_connections_idle_closed_total",
                           "Connections closed after --idle-timeout-ms with no bytes read or written");
  metrics::counter& write_timeouts = metrics::get_counter(
      "ferry_connections_write_timeouts_total",
      "Connections closed because a write made no progress for --write-timeout-ms (the client stopped reading)");
  metrics::gauge& queued_bytes =
      metrics::get_gauge("ferry_connection_queued_bytes",
                         "Bytes held for connections: unanswered requests, responses and pushes not yet sent");
  metrics::gauge& frame_bytes_reading = metrics::get_gauge(
      "ferry_frame_bytes_reading", "Bytes allocated for request frames still arriving (they grow as bytes arrive)");
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

int64_t elapsed_ms(steady::time_point since, steady::time_point now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - since).count();
}

enum class refusal_kind { linger, at_once };

// Sends a refused connection its error frame and closes it. Runs on the socket's shard.
// `linger`: after the frame, a FIN, then up to refusal_linger for the client to close first (see
// refusal_linger); `lingering` counts these and is decremented at the end. `at_once` (a flood of
// refusals): one non-blocking write (the frame fits an empty send buffer) and close.
asio::awaitable<void> refuse_connection(tcp::socket sock, out_frame_ptr frame, refusal_kind kind,
                                        std::shared_ptr<std::atomic<size_t>> lingering) {
  auto b = frame->bytes();
  boost::system::error_code ignore;
  if (kind == refusal_kind::at_once) {
    sock.non_blocking(true, ignore);
    sock.write_some(asio::buffer(b.data(), b.size()), ignore);
    sock.close(ignore);
    co_return;
  }
  auto s = std::make_shared<tcp::socket>(std::move(sock));
  asio::steady_timer deadline(s->get_executor());
  deadline.expires_after(refusal_linger);
  // The timer's handler owns the socket too: at the deadline it closes it, which ends the write
  // or read below; if those end first, the timer's destructor cancels it.
  deadline.async_wait([s](const boost::system::error_code& ec) {
    boost::system::error_code ignore;
    if (!ec) s->close(ignore);
  });
  auto [ec, n] = co_await asio::async_write(*s, asio::buffer(b.data(), b.size()), as_tuple(use_awaitable));
  if (!ec) {
    s->shutdown(tcp::socket::shutdown_send, ignore);
    std::byte sink[512];
    for (;;) {
      auto [rec, rn] = co_await s->async_read_some(asio::buffer(sink), as_tuple(use_awaitable));
      if (rec) break;
    }
  }
  s->close(ignore);
  lingering->fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

class session : public session_channel, public std::enable_shared_from_this<session> {
 public:
  // `cfg` (the server's) must outlive the session's coroutines. `open_connections` is the
  // server's count, which this session holds one of until it closes.
  session(tcp::socket sock, frame_handler& h, const server_config& cfg, session_info info,
          std::shared_ptr<std::atomic<size_t>> open_connections)
      : sock_(std::move(sock)),
        ex_(sock_.get_executor()),
        handler_(h),
        cfg_(cfg),
        info_(std::move(info)),
        open_connections_(std::move(open_connections)),
        writer_wake_(sock_.get_executor()),
        reader_wake_(sock_.get_executor()),
        budget_wake_(sock_.get_executor()),
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
    release_connection_slot();
    boost::system::error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
    writer_wake_.cancel();
    reader_wake_.cancel();
    budget_wake_.cancel();
    watchdog_.cancel();
    // Nothing more will be sent: let go of every queued frame now, not when the last pending
    // request (a long-poll, say) lets go of the session. Slots still being handled see closed_.
    for (auto& f : pushes_) account(-static_cast<int64_t>(f->bytes().size()));
    pushes_.clear();
    for (auto& s : queue_) {
      account(-static_cast<int64_t>(s->bytes));
      s->bytes = 0;
      s->resp.reset();
    }
    queue_.clear();
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
    account(static_cast<int64_t>(f->bytes().size()));
    pushes_.push_back(std::move(f));
    writer_wake_.cancel();
  }

  ~session() {
    // Coroutines that never ran to close() (the shard stopped first) still give the slot back.
    release_connection_slot();
    probe::get().open.add(-1);
    probe::get().queued_bytes.add(-queued_bytes_);
  }

 private:
  // One request, from read to written; also its response_budget (session_info::budget).
  struct slot final : response_budget {
    explicit slot(std::weak_ptr<session> s) : owner(std::move(s)) {}
    asio::awaitable<bool> reserve(size_t bytes) override;

    std::weak_ptr<session> owner;
    uint64_t seq = 0;  // request order on the connection
    out_frame_ptr resp;
    // Accounted in queued_bytes_: the request's bytes plus any reservation until answered, then
    // the response's until written.
    size_t bytes = 0;
    bool ready = false;
  };

  // Asio completion condition for the writer: called before each write_some and after each
  // partial write, so the watchdog sees progress even inside one long write.
  struct note_progress {
    session* s;
    size_t operator()(const boost::system::error_code& ec, size_t /*written*/) const {
      if (ec) return 0;
      s->last_write_progress_ = s->last_io_ = steady::now();
      return write_chunk_bytes;
    }
  };

  void release_connection_slot() {
    if (open_connections_) open_connections_->fetch_sub(1, std::memory_order_relaxed);
    open_connections_.reset();
  }

  void account(int64_t delta) {
    queued_bytes_ += delta;
    probe::get().queued_bytes.add(delta);
  }

  // A reservation waiting for room means the budget is as good as spent.
  bool over_budget() const {
    return queue_.size() >= cfg_.max_inflight_requests ||
           queued_bytes_ >= static_cast<int64_t>(cfg_.max_inflight_bytes) || !reserving_.empty();
  }

  void push_ready(out_frame_ptr f) {
    auto s = std::make_shared<slot>(weak_from_this());
    s->seq = next_seq_++;
    s->bytes = f ? f->bytes().size() : 0;
    account(static_cast<int64_t>(s->bytes));
    s->resp = std::move(f);
    s->ready = true;
    queue_.push_back(std::move(s));
    writer_wake_.cancel();
  }

  // Reads the body of a frame whose prefix (`len` bytes announced) is already in f->bytes. The
  // buffer grows only as bytes arrive (first_body_bytes, or what the socket already holds, then
  // at least doubling), so a client that announces 16 MiB and sends nothing costs 64 KiB, and
  // one that sends slowly never holds more than about twice what it sent. False if the
  // connection failed or closed first.
  static asio::awaitable<bool> read_body(std::shared_ptr<session> self, std::shared_ptr<in_frame> f, uint32_t len) {
    // The buffer's size shows in ferry_frame_bytes_reading until the frame is complete or given up.
    struct reading_bytes {
      metrics::gauge& g = probe::get().frame_bytes_reading;
      size_t counted = 0;
      void set(size_t n) {
        g.add(static_cast<int64_t>(n) - static_cast<int64_t>(counted));
        counted = n;
      }
      reading_bytes() = default;
      reading_bytes(const reading_bytes&) = delete;
      reading_bytes& operator=(const reading_bytes&) = delete;
      ~reading_bytes() { set(0); }
    } reading;
    const size_t total = frame_prefix_bytes + len;
    size_t have = frame_prefix_bytes;
    auto grow_to = [&](size_t at_least) {
      boost::system::error_code ignore;
      size_t ready = self->sock_.available(ignore);
      f->bytes.resize(std::min(total, std::max(at_least, have + ready)));
      reading.set(f->bytes.size());
    };
    if (len <= first_body_bytes) {
      f->bytes.resize(total);
      reading.set(total);
    } else {
      grow_to(frame_prefix_bytes + first_body_bytes);
    }
    while (have < total) {
      if (have == f->bytes.size()) grow_to(2 * have);
      auto [ec, n] = co_await self->sock_.async_read_some(asio::buffer(f->bytes.data() + have, f->bytes.size() - have),
                                                          as_tuple(use_awaitable));
      if (ec || self->closed_) co_return false;
      have += n;
      self->last_io_ = steady::now();
    }
    co_return true;
  }

  static asio::awaitable<void> reader(std::shared_ptr<session> self) {
    auto& pr = probe::get();
    auto& log = *logger();
    for (;;) {
      // Backpressure: read nothing more (the client's sends then block in TCP) while too much is
      // unanswered or unsent; the writer wakes us as the client reads.
      while (!self->closed_ && self->over_budget()) {
        pr.backpressure.inc();
        self->reader_wake_.expires_at(steady::time_point::max());
        co_await self->reader_wake_.async_wait(as_tuple(use_awaitable));
      }
      if (self->closed_) break;
      std::byte prefix[frame_prefix_bytes];
      auto [ec, n] = co_await asio::async_read(self->sock_, asio::buffer(prefix), as_tuple(use_awaitable));
      if (ec || self->closed_) break;
      self->last_io_ = steady::now();
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
      f->bytes.resize(frame_prefix_bytes);
      std::memcpy(f->bytes.data(), prefix, sizeof prefix);
      if (!co_await read_body(self, f, len)) break;
      pr.frames_in.inc();
      pr.bytes_in.inc(f->bytes.size());
      auto s = std::make_shared<slot>(self->weak_from_this());
      s->seq = self->next_seq_++;
      s->bytes = f->bytes.size();
      self->account(static_cast<int64_t>(s->bytes));
      self->queue_.push_back(s);
      runtime::spawn_logged(self->sock_.get_executor(), process(self, s, std::move(f)), "request");
    }
    self->reader_done_ = true;
    self->writer_wake_.cancel();
  }

  static asio::awaitable<void> process(std::shared_ptr<session> self, std::shared_ptr<slot> s,
                                       std::shared_ptr<in_frame> f) {
    try {
      auto info = self->info_;
      info.budget = s;
      s->resp = co_await self->handler_.handle(std::move(f), std::move(info));
    } catch (const std::exception& e) {
      probe::get().handler_exceptions.inc();
      logger()->error("conn {} from {}: request handler threw: {}; closing the connection", self->info_.id,
                      self->info_.peer, e.what());
      self->close();
    }
    if (self->closed_) {  // close() released this slot; the answer goes nowhere
      s->resp.reset();
      co_return;
    }
    // The request's bytes are released (the handler has let go of the frame); the response's
    // count until it is written.
    size_t resp_bytes = s->resp ? s->resp->bytes().size() : 0;
    self->account(static_cast<int64_t>(resp_bytes) - static_cast<int64_t>(s->bytes));
    s->bytes = resp_bytes;
    s->ready = true;
    self->writer_wake_.cancel();
    self->budget_wake_.cancel();
  }

  // response_budget::reserve for slot `me` (kept alive by the caller).
  static asio::awaitable<bool> reserve_room(std::shared_ptr<session> self, slot* me, size_t bytes) {
    bytes = std::min<size_t>(bytes, self->cfg_.max_frame_bytes);
    const auto budget = static_cast<int64_t>(self->cfg_.max_inflight_bytes);
    self->reserving_.push_back(me);
    bool granted = false;
    while (!self->closed_) {
      // In request order, whatever order the handlers asked in: a later request holding room
      // while an earlier one waits could wait for the earlier one's response for ever.
      bool first_in_line = std::none_of(self->reserving_.begin(), self->reserving_.end(),
                                        [me](const slot* o) { return o->seq < me->seq; });
      bool nothing_ahead = !self->queue_.empty() && self->queue_.front().get() == me;
      if (first_in_line && (nothing_ahead || self->queued_bytes_ + static_cast<int64_t>(bytes) <= budget)) {
        granted = true;
        break;
      }
      // Several reservations may wait on this timer: setting its expiry would wake the others,
      // so set it only once; wake-ups are cancel()s.
      if (self->budget_wake_.expiry() != steady::time_point::max())
        self->budget_wake_.expires_at(steady::time_point::max());
      co_await self->budget_wake_.async_wait(as_tuple(use_awaitable));
    }
    std::erase(self->reserving_, me);
    if (granted) {
      me->bytes += bytes;
      self->account(static_cast<int64_t>(bytes));
    }
    self->budget_wake_.cancel();  // the next in line may fit as well
    self->reader_wake_.cancel();  // the reader waits while a reservation does
    co_return granted;
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
        self->writing_ = true;
        note_progress progress{self.get()};
        auto [ec, n] = co_await asio::async_write(self->sock_, bufs, progress, as_tuple(use_awaitable));
        self->writing_ = false;
        // Written or not, these frames leave the queue (on an error the session closes below;
        // if it closed meanwhile, close() has released the queue already).
        for (auto& p : pushing) self->account(-static_cast<int64_t>(p->bytes().size()));
        pushing.clear();
        if (self->closed_) break;
        for (size_t i = 0; i < batch.size(); ++i) {
          self->account(-static_cast<int64_t>(self->queue_.front()->bytes));
          self->queue_.pop_front();
        }
        if (ec) break;
        probe::get().bytes_out.inc(n);
        self->reader_wake_.cancel();
        self->budget_wake_.cancel();
        continue;
      }
      // Reader hit EOF/error: still answer what is in flight, then close.
      if (self->reader_done_ && self->queue_.empty()) break;
      self->writer_wake_.expires_at(steady::time_point::max());
      co_await self->writer_wake_.async_wait(as_tuple(use_awaitable));
    }
    self->close();
    self->finished_ = true;
    logger()->debug("conn {} from {} closed", self->info_.id, self->info_.peer);
  }

  // Closes the connection when its pending write has made no progress for write_timeout_ms (the
  // client stopped reading and its receive window is full), or when no byte was read or written
  // for idle_timeout_ms, requests pending or not (a long-poll that outlasts the idle timeout is
  // closed too: the idle timeout must exceed the longest max_wait clients use).
  static asio::awaitable<void> watchdog(std::shared_ptr<session> self) {
    auto shortest = std::min(self->cfg_.idle_timeout_ms, self->cfg_.write_timeout_ms);
    auto period = std::chrono::milliseconds(std::max<int64_t>(shortest / 4, 10));
    auto& log = *logger();
    while (!self->closed_) {
      self->watchdog_.expires_after(period);
      co_await self->watchdog_.async_wait(as_tuple(use_awaitable));
      if (self->closed_) break;
      auto now = steady::now();
      if (self->writing_ && elapsed_ms(self->last_write_progress_, now) > self->cfg_.write_timeout_ms) {
        probe::get().write_timeouts.inc();
        log.warn("conn {} from {}: no write progress for {} ms ({} bytes queued; the client is not reading), closing",
                 self->info_.id, self->info_.peer, elapsed_ms(self->last_write_progress_, now), self->queued_bytes_);
        self->close();
      } else if (elapsed_ms(self->last_io_, now) > self->cfg_.idle_timeout_ms) {
        probe::get().idle_closed.inc();
        log.info("conn {} from {}: idle for {} ms ({} requests pending), closing", self->info_.id, self->info_.peer,
                 elapsed_ms(self->last_io_, now), self->queue_.size());
        self->close();
      }
    }
  }

  tcp::socket sock_;
  asio::any_io_executor ex_;
  frame_handler& handler_;
  const server_config& cfg_;
  session_info info_;
  std::shared_ptr<std::atomic<size_t>> open_connections_;  // null once this session's slot is released
  std::deque<std::shared_ptr<slot>> queue_;
  int64_t queued_bytes_ = 0;      // slots' bytes plus pushes_ not yet written
  std::vector<slot*> reserving_;  // slots waiting in reserve_room()
  uint64_t next_seq_ = 0;
  asio::steady_timer writer_wake_;
  asio::steady_timer reader_wake_;
  asio::steady_timer budget_wake_;  // wakes reserve_room() waiters when bytes leave the queue
  asio::steady_timer watchdog_;
  steady::time_point last_io_ = steady::now();              // last byte read or write progress
  steady::time_point last_write_progress_ = steady::now();  // meaningful while writing_
  bool writing_ = false;
  bool reader_done_ = false;
  bool closed_ = false;
  std::atomic<bool> closed_flag_{false};  // closed_ for other threads (push())
  std::deque<out_frame_ptr> pushes_;
  bool finished_ = false;
};

asio::awaitable<bool> session::slot::reserve(size_t bytes) {
  auto s = owner.lock();
  if (!s) co_return false;
  co_return co_await session::reserve_room(std::move(s), this, bytes);
}

struct server::impl {
  runtime::shard_set& rt;
  frame_handler& handler;
  server_config cfg;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::atomic<uint64_t> next_id{1};
  // Connections open (sessions not yet closed), broker-wide: incremented by the accept loop only,
  // decremented by each session's close on its own shard.
  std::shared_ptr<std::atomic<size_t>> open_connections = std::make_shared<std::atomic<size_t>>(0);
  std::shared_ptr<std::atomic<size_t>> lingering_refusals = std::make_shared<std::atomic<size_t>>(0);
  // Sessions per shard, touched only on that shard.
  std::vector<std::vector<std::weak_ptr<session>>> sessions;
  std::atomic<bool> stopping{false};
  steady::time_point next_refusal_log{};  // accept loop only
  uint64_t unlogged_refusals = 0;

  impl(runtime::shard_set& r, frame_handler& h, server_config c) : rt(r), handler(h), cfg(std::move(c)) {
    sessions.resize(rt.size());
  }

  // Over the connection limit: one resource_exhausted frame, then close (on the socket's shard).
  void refuse(tcp::socket sock, shard_id target) {
    probe::get().refused.inc();
    auto now = steady::now();
    if (now >= next_refusal_log) {
      next_refusal_log = now + std::chrono::seconds(1);
      logger()->warn("connection limit of {} reached: refusing {} ({} more refused since the last report)",
                     cfg.max_connections, endpoint_string(sock), unlogged_refusals);
      unlogged_refusals = 0;
    } else {
      ++unlogged_refusals;
    }
    auto frame =
        handler.error_frame(errc::resource_exhausted, "connection limit of " + std::to_string(cfg.max_connections) +
                                                          " reached; retry later or on another broker");
    auto kind = refusal_kind::linger;
    if (lingering_refusals->fetch_add(1, std::memory_order_relaxed) >= max_lingering_refusals) {
      lingering_refusals->fetch_sub(1, std::memory_order_relaxed);
      kind = refusal_kind::at_once;
    }
    runtime::spawn_logged(rt.executor(target),
                          refuse_connection(std::move(sock), std::move(frame), kind, lingering_refusals),
                          "connection refusal");
  }

  asio::awaitable<void> accept_loop() {
    size_t next_shard = 0;
    accept_errors errors("client");
    asio::steady_timer backoff(rt.executor(shard_id{0}));
    for (;;) {
      shard_id target{static_cast<uint32_t>(next_shard++ % rt.size())};
      auto [ec, sock] = co_await acceptor->async_accept(rt.context(target), as_tuple(use_awaitable));
      if (stopping) break;
      if (ec) {
        if (ec == asio::error::operation_aborted) break;
        // Out of file descriptors and the like: the connection stays in the backlog, so retrying
        // at once would spin. Wait, then try again.
        errors.report(*logger(), ec);
        backoff.expires_after(accept_errors::backoff);
        co_await backoff.async_wait(as_tuple(use_awaitable));
        if (stopping) break;
        continue;
      }
      probe::get().accepted.inc();
      if (open_connections->load(std::memory_order_relaxed) >= cfg.max_connections) {
        refuse(std::move(sock), target);
        continue;
      }
      open_connections->fetch_add(1, std::memory_order_relaxed);
      boost::system::error_code ignore;
      sock.set_option(tcp::no_delay(true), ignore);
      session_info info{next_id++, endpoint_string(sock), target, {}, nullptr};
      logger()->debug("conn {} from {} on shard {}", info.id, info.peer, target.value);
      asio::post(rt.executor(target), [this, target, sock = std::move(sock), info = std::move(info)]() mutable {
        if (stopping) {
          open_connections->fetch_sub(1, std::memory_order_relaxed);
          return;
        }
        auto s = std::make_shared<session>(std::move(sock), handler, cfg, std::move(info), open_connections);
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

}  // namespace ferry::net
