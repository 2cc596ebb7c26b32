#include "client/src/connection.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

#include "schema/record_batch.h"

namespace ferry::client::detail {

using tcp = asio::ip::tcp;

namespace {
constexpr size_t initial_read_buffer = 256u << 10;
constexpr size_t builder_pool_max = 16;
constexpr size_t builder_keep_bytes = 4u << 20;  // larger builders are freed, not pooled
}  // namespace

result<std::pair<std::string, std::string>> split_host_port(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size())
    return fail(errc::invalid_argument, "address '" + s + "' is not host:port");
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return fail(errc::invalid_argument, "address '" + s + "' has no host");
  return std::pair{host, s.substr(colon + 1)};
}

connection::connection(asio::io_context& io, const client_options& opts)
    : io_(io), opts_(opts), resolver_(io), socket_(io), connect_timer_(io), request_timer_(io) {
  rcap_ = initial_read_buffer;
  rbuf_.reset(new uint64_t[rcap_ / 8]);
}

connection::~connection() = default;

void connection::start() {
  if (state_ != state::idle) return;
  state_ = state::connecting;
  auto hp = split_host_port(opts_.bootstrap);
  if (!hp) {
    auto self = shared_from_this();
    asio::post(io_, [self, e = hp.error()] { self->close(e); });
    return;
  }
  auto self = shared_from_this();
  connect_timer_.expires_after(opts_.connect_timeout);
  connect_timer_.async_wait([self](const boost::system::error_code& ec) {
    if (ec || self->state_ != state::connecting) return;
    self->close(fail(errc::connection_closed, "connect to " + self->opts_.bootstrap + " timed out after " +
                                                  std::to_string(self->opts_.connect_timeout.count()) + " ms"));
  });
  resolver_.async_resolve(hp->first, hp->second,
                          [self](const boost::system::error_code& ec, const tcp::resolver::results_type& results) {
                            self->on_resolved(ec, results);
                          });
}

void connection::on_resolved(const boost::system::error_code& ec, const tcp::resolver::results_type& results) {
  if (state_ != state::connecting) return;
  if (ec) return close(fail(errc::connection_closed, "cannot resolve " + opts_.bootstrap + ": " + ec.message()));
  auto self = shared_from_this();
  asio::async_connect(socket_, results, [self](const boost::system::error_code& ec, const tcp::endpoint&) {
    if (self->state_ != state::connecting) return;
    if (ec)
      return self->close(
          fail(errc::connection_closed, "cannot connect to " + self->opts_.bootstrap + ": " + ec.message()));
    self->connect_timer_.cancel();
    self->state_ = state::connected;
    boost::system::error_code ignored;
    self->socket_.set_option(tcp::no_delay(true), ignored);
    self->start_read();
    self->start_write();
  });
}

builder_ptr connection::acquire_builder() {
  if (builder_pool_.empty()) return std::make_unique<flatbuffers::FlatBufferBuilder>(1024);
  auto b = std::move(builder_pool_.back());
  builder_pool_.pop_back();
  return b;
}

void connection::send(builder_ptr frame, uint64_t correlation_id, std::chrono::milliseconds extra, response_handler h) {
  if (state_ == state::closed) {
    // Report asynchronously so a caller never re-enters itself.
    asio::post(io_, [h = std::move(h), target = opts_.bootstrap] {
      h(fail(errc::connection_closed, "connection to " + target + " is closed"));
    });
    return;
  }
  if (state_ == state::idle) start();
  auto deadline = steady::now() + opts_.request_timeout + extra;
  pending_.push_back(pending_request{correlation_id, deadline, std::move(h)});
  queued_.push_back(std::move(frame));
  arm_request_timer(deadline);
  if (state_ == state::connected && writing_.empty()) start_write();
}

void connection::start_write() {
  if (state_ != state::connected || !writing_.empty() || queued_.empty()) return;
  writing_.swap(queued_);
  write_bufs_.clear();
  for (auto& f : writing_) write_bufs_.emplace_back(f->GetBufferPointer(), f->GetSize());
  auto self = shared_from_this();
  asio::async_write(socket_, write_bufs_, [self](const boost::system::error_code& ec, size_t) {
    if (self->state_ != state::connected) return;
    if (ec)
      return self->close(
          fail(errc::connection_closed, "write to " + self->opts_.bootstrap + " failed: " + ec.message()));
    for (auto& f : self->writing_) {
      if (self->builder_pool_.size() < builder_pool_max && f->GetSize() <= builder_keep_bytes) {
        f->Clear();
        self->builder_pool_.push_back(std::move(f));
      }
    }
    self->writing_.clear();
    self->start_write();
  });
}

void connection::start_read() {
  if (state_ != state::connected) return;
  if (rend_ == rcap_ && rbegin_ > 0) {
    auto* base = reinterpret_cast<std::byte*>(rbuf_.get());
    std::memmove(base, base + rbegin_, rend_ - rbegin_);
    rend_ -= rbegin_;
    rbegin_ = 0;
  } else if (rend_ == rcap_) {
    // Cannot happen with a whole prefix in the buffer (on_read makes room for the frame); kept
    // as a safety net.
    size_t ncap = rcap_ * 2;
    std::unique_ptr<uint64_t[]> nb(new uint64_t[ncap / 8]);
    std::memcpy(nb.get(), reinterpret_cast<const std::byte*>(rbuf_.get()) + rbegin_, rend_ - rbegin_);
    rend_ -= rbegin_;
    rbegin_ = 0;
    rbuf_ = std::move(nb);
    rcap_ = ncap;
  }
  auto self = shared_from_this();
  auto* base = reinterpret_cast<std::byte*>(rbuf_.get());
  socket_.async_read_some(
      asio::buffer(base + rend_, rcap_ - rend_), [self](const boost::system::error_code& ec, size_t n) {
        if (self->state_ != state::connected) return;
        if (ec) {
          std::string why = ec == asio::error::eof ? "closed by the broker" : ec.message();
          return self->close(fail(errc::connection_closed, "connection to " + self->opts_.bootstrap + " lost: " + why));
        }
        self->on_read(n);
      });
}

void connection::on_read(size_t n) {
  auto self = shared_from_this();  // a handler may drop the owner's reference
  rend_ += n;
  auto* base = reinterpret_cast<std::byte*>(rbuf_.get());
  while (rend_ - rbegin_ >= wire::frame_prefix_bytes) {
    uint32_t len = wire::get_le32(base + rbegin_);
    if (len > opts_.max_frame_bytes)
      return close(fail(errc::frame_too_large, "broker " + opts_.bootstrap + " sent a frame of " + std::to_string(len) +
                                                   " bytes, above the limit of " +
                                                   std::to_string(opts_.max_frame_bytes)));
    size_t total = wire::frame_prefix_bytes + len;
    if (rend_ - rbegin_ < total) {
      // Make room for the whole frame: move it to the start, grow if it cannot fit.
      if (total > rcap_ - rbegin_) {
        size_t ncap = rcap_;
        while (ncap < total) ncap *= 2;
        if (ncap != rcap_) {
          std::unique_ptr<uint64_t[]> nb(new uint64_t[(ncap + 7) / 8]);
          std::memcpy(nb.get(), base + rbegin_, rend_ - rbegin_);
          rbuf_ = std::move(nb);
          rcap_ = ncap;
        } else {
          std::memmove(base, base + rbegin_, rend_ - rbegin_);
        }
        rend_ -= rbegin_;
        rbegin_ = 0;
      }
      break;
    }
    const std::byte* frame = base + rbegin_;
    if (rbegin_ % 8 != 0) {
      if (scratch_cap_ < total) {
        scratch_cap_ = std::max<size_t>(total, 4096);
        scratch_.reset(new uint64_t[(scratch_cap_ + 7) / 8]);
      }
      std::memcpy(scratch_.get(), frame, total);
      frame = reinterpret_cast<const std::byte*>(scratch_.get());
    }
    rbegin_ += total;
    if (!dispatch_frame(frame, total)) return;
    base = reinterpret_cast<std::byte*>(rbuf_.get());
  }
  if (rbegin_ == rend_) rbegin_ = rend_ = 0;
  start_read();
}

bool connection::dispatch_frame(const std::byte* frame, size_t size) {
  auto resp = wire::decode_response(std::span<const std::byte>(frame, size));
  if (!resp) {
    close(fail(errc::malformed_frame,
               "broker " + opts_.bootstrap + " sent an unreadable response: " + resp.error().message));
    return false;
  }
  if ((*resp)->body_type() == wire::ResponseBody::Delivery) {
    // Pushed by the broker to a joined consumer; answers no request, whatever its correlation id.
    if (push_handler_) push_handler_(**resp);
    return state_ == state::connected;
  }
  uint64_t id = (*resp)->correlation_id();
  if (id == 0) {
    // A connection-level error (frame_too_large, malformed_frame): it answers no particular request.
    auto code = wire::from_wire((*resp)->error());
    std::string msg = (*resp)->error_message() ? (*resp)->error_message()->str() : "";
    close(fail(code == errc::ok ? errc::unknown : code, "broker " + opts_.bootstrap + ": " + msg));
    return false;
  }
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->id != id) continue;
    response_handler h = std::move(it->handler);
    pending_.erase(it);
    h(*resp);
    return state_ == state::connected;
  }
  return true;  // an answer to a request we gave up on
}

void connection::arm_request_timer(steady::time_point deadline) {
  if (deadline >= request_timer_at_) return;
  request_timer_at_ = deadline;
  request_timer_.expires_at(deadline);
  auto self = shared_from_this();
  request_timer_.async_wait([self, deadline](const boost::system::error_code& ec) {
    if (ec || self->request_timer_at_ != deadline || self->state_ == state::closed) return;
    self->request_timer_at_ = steady::time_point::max();
    self->on_request_timer();
  });
}

void connection::on_request_timer() {
  auto now = steady::now();
  steady::time_point next = steady::time_point::max();
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->deadline <= now) {
      // The broker answers in order, so everything behind this request is stuck as well: give the
      // late request a timeout and close the connection (the rest get connection_closed).
      auto h = std::move(it->handler);
      pending_.erase(it);
      auto self = shared_from_this();
      close(fail(errc::connection_closed, "connection to " + opts_.bootstrap + " closed after a request timed out"));
      h(fail(errc::timeout, "request to " + opts_.bootstrap + " timed out after " +
                                std::to_string(opts_.request_timeout.count()) + " ms"));
      return;
    }
    next = std::min(next, it->deadline);
  }
  if (next != steady::time_point::max()) arm_request_timer(next);
}

void connection::close(const error& e) {
  if (state_ == state::closed) return;
  auto self = weak_from_this().lock();  // the handlers below may drop the owner's reference
  state_ = state::closed;
  boost::system::error_code ignored;
  resolver_.cancel();
  socket_.close(ignored);
  connect_timer_.cancel();
  request_timer_.cancel();
  request_timer_at_ = steady::time_point::max();
  queued_.clear();
  auto failed = std::move(pending_);
  pending_.clear();
  for (auto& p : failed) p.handler(e);
  // The push handler stays: it may be the caller (no frame is dispatched after this anyway).
  if (auto h = std::move(close_handler_)) {
    close_handler_ = nullptr;
    h(e);
  }
}

// ---- io_runner ---------------------------------------------------------------------------

io_runner::io_runner(client_options opts) : opts_(std::move(opts)) {
  std::promise<std::thread::id> started;
  auto id = started.get_future();
  thread_ = std::thread([this, &started] {
    auto guard = asio::make_work_guard(io_);
    started.set_value(std::this_thread::get_id());
    io_.run();
  });
  thread_id_ = id.get();
}

io_runner::~io_runner() {
  stop();
  // Handlers still queued hold the connection; destroy them while the io_context is alive.
  conn_.reset();
}

void io_runner::stop() {
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

connection& io_runner::conn() {
  if (!conn_ || conn_->closed()) {
    conn_ = std::make_shared<connection>(io_, opts_);
    conn_->start();
  }
  return *conn_;
}

void io_runner::request(
    const std::function<flatbuffers::Offset<wire::Request>(flatbuffers::FlatBufferBuilder&, uint64_t)>& build,
    std::chrono::milliseconds extra, response_handler h) {
  auto& c = conn();
  auto fbb = c.acquire_builder();
  uint64_t id = c.next_correlation_id();
  wire::finish_request(*fbb, build(*fbb, id));
  c.send(std::move(fbb), id, extra, std::move(h));
}

void io_runner::post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

}  // namespace ferry::client::detail
