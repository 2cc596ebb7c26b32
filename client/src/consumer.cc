// The consumer: one member of a subscription. Deliveries are pushed by the broker (Delivery
// frames, correlation id 0) on the connection where the member joined, decoded on the I/O thread
// into a buffer that poll() drains. Acks, nacks and extends are queued by the application threads
// and sent by the I/O thread, batched into AckRequests.
//
// Credit: the member joins with credit_messages / credit_bytes and the broker never sends more
// than it was granted. poll() gives credit back for what it takes out of the buffer (one message
// and the size of its `record` bytes each); that credit travels in the next AckRequest (one with
// only credit is fine), so the buffer never holds more than the credit window.
//
// Batching: an item is sent at most ack_linger after the first item queued behind the last send,
// or at once when ack_batch items are queued. One AckRequest never names a (partition, offset)
// twice: AckFailure carries no kind, so a repeat starts the next request, and the broker answers a
// connection's requests in order, so the repeat is applied after the first.
//
// Connection loss: pending callbacks fail (connection_closed), deliveries still in the buffer are
// dropped (the broker redelivers them once the old member is gone) and the consumer joins again,
// with backoff, as a new member. A delivery remembers the member it came to (delivery::member_id):
// settling one of an earlier member is answered locally with lease_not_held, never sent.
//
// Locking: mu_ guards everything application threads and the I/O thread share; callbacks run on
// the I/O thread with mu_ released. conn_ and the timers are touched on the I/O thread only.
#include <unistd.h>
#include <boost/asio/steady_timer.hpp>

#include <climits>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "client/src/connection.h"
#include "schema/record_batch.h"

namespace ferry::client {
namespace {

using namespace detail;
namespace w = ferry::wire;
using ms = std::chrono::milliseconds;

enum class settle_kind : uint8_t { ack, nack, extend };

const char* kind_name(settle_kind k) {
  switch (k) {
    case settle_kind::ack:
      return "ack";
    case settle_kind::nack:
      return "nack";
    case settle_kind::extend:
      return "extend";
  }
  return "?";
}

struct settle_item {
  settle_kind kind = settle_kind::ack;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t value = -1;   // nack: delay_ms, extend: extend_ms; -1: the broker's default
  uint64_t member = 0;  // the member the delivery came to
  settle_callback cb;
  bool counted = true;  // counts in unsettled_ (false: the consumer's own nack of an unreadable message)
};

struct buffered {
  delivery d;
  size_t bytes;  // credit it took: the size of its record
};

struct unreadable {  // a delivered record that does not decode
  int32_t partition;
  int64_t offset;
  size_t bytes;
  uint64_t member;
};

using completion = std::pair<settle_callback, result<void>>;

std::string default_member_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "unknown");
  return std::string(host) + "-" + std::to_string(::getpid());
}

// Decodes one delivered record (schema/record_batch.md "Records", length prefix included) with
// the fields of its batch header that the record format refers to.
result<delivery> decode_delivered(const w::DeliveredMessage& dm, const std::string& topic, uint64_t member) {
  if (dm.record() == nullptr) return fail(errc::corrupt_batch, "delivered message without a record");
  std::span<const std::byte> rec(reinterpret_cast<const std::byte*>(dm.record()->data()), dm.record()->size());
  w::batch_header h;
  h.base_offset = 0;
  h.first_timestamp = dm.first_timestamp();
  h.append_time = dm.append_time();
  h.attributes = dm.batch_attributes();
  w::record_view rv;
  auto n = w::detail::decode_record(rec, h, rv);
  if (!n) return n.error();
  if (*n != rec.size()) return fail(errc::corrupt_batch, "trailing bytes after the delivered record");
  delivery d;
  d.topic = topic;
  d.partition = dm.partition();
  d.offset = dm.offset();  // the record's own offset delta means nothing outside its batch
  d.timestamp_ms = rv.timestamp;
  d.append_time_ms = dm.append_time();
  if (rv.key) d.key = std::string(*rv.key);
  if (rv.value) d.value = std::string(*rv.value);
  d.headers.reserve(rv.headers.size());
  for (const auto& hv : rv.headers) {
    header hd;
    hd.key = std::string(hv.key);
    if (hv.value) hd.value = std::string(*hv.value);
    d.headers.push_back(std::move(hd));
  }
  d.deliver_at_ms = rv.deliver_at;
  d.delivery_count = dm.delivery_count();
  d.member_id = member;
  return d;
}

class consumer_impl final : public consumer {
 public:
  consumer_impl(consumer_options opts, std::string topic, std::string subscription)
      : opts_(std::move(opts)), topic_(std::move(topic)), sub_(std::move(subscription)) {
    member_name_ = opts_.member_name.empty() ? default_member_name() : opts_.member_name;
    backoff_ = opts_.reconnect_backoff;
    runner_ = std::make_unique<io_runner>(opts_);
    linger_timer_ = std::make_unique<asio::steady_timer>(runner_->io());
    rejoin_timer_ = std::make_unique<asio::steady_timer>(runner_->io());
    keepalive_timer_ = std::make_unique<asio::steady_timer>(runner_->io());
  }
  ~consumer_impl() override { close(); }

  // The first join, blocking: its error is create()'s.
  result<void> start() {
    auto done = std::make_shared<std::promise<result<void>>>();
    auto fut = done->get_future();
    runner_->post([this, done] {
      first_join_ = [done](result<void> r) { done->set_value(std::move(r)); };
      join();
    });
    return fut.get();  // bounded by the connect and request timeouts
  }

  result<std::vector<delivery>> poll(std::chrono::milliseconds max_wait, size_t max_messages) override;
  void ack(const delivery& d, settle_callback cb) override { settle(settle_kind::ack, d, -1, std::move(cb)); }
  void nack(const delivery& d, std::optional<std::chrono::milliseconds> delay, settle_callback cb) override {
    settle(settle_kind::nack, d, delay ? std::max<int64_t>(delay->count(), 0) : -1, std::move(cb));
  }
  void extend(const delivery& d, std::optional<std::chrono::milliseconds> by, settle_callback cb) override {
    settle(settle_kind::extend, d, by ? std::max<int64_t>(by->count(), 0) : -1, std::move(cb));
  }
  result<void> flush(std::chrono::milliseconds timeout) override;
  void close() override;
  uint64_t member_id() const override {
    std::lock_guard lk(mu_);
    return member_;
  }

 private:
  void settle(settle_kind k, const delivery& d, int64_t value, settle_callback cb);
  void arm_linger_locked();
  void send_now_locked();
  int64_t initial_credit_messages_locked() const;

  // I/O thread.
  void join();
  void on_join(uint64_t gen, int32_t credit_messages, const result<const w::Response*>& r);
  void join_failed(const error& e);
  void on_push(uint64_t gen, const w::Response& r);
  void reject_locked(const unreadable& u);
  void on_closed(uint64_t gen, const error& e);
  void schedule_rejoin();
  void send_acks();
  void arm_keepalive();
  void on_ack_response(const std::shared_ptr<std::vector<settle_item>>& items, const result<const w::Response*>& r);
  void complete(std::vector<completion>& done);
  template <class Build>
  void send_request(Build&& build, response_handler h) {
    auto fbb = conn_->acquire_builder();
    uint64_t id = conn_->next_correlation_id();
    wire::finish_request(*fbb, build(*fbb, id));
    conn_->send(std::move(fbb), id, ms(0), std::move(h));
  }

  consumer_options opts_;
  std::string topic_;
  std::string sub_;
  std::string member_name_;
  std::unique_ptr<io_runner> runner_;
  std::unique_ptr<asio::steady_timer> linger_timer_;
  std::unique_ptr<asio::steady_timer> rejoin_timer_;
  std::unique_ptr<asio::steady_timer> keepalive_timer_;

  // I/O thread only.
  std::shared_ptr<connection> conn_;
  uint64_t conn_gen_ = 0;                         // counts connections: handlers of older ones do nothing
  bool joining_ = false;                          // a JoinRequest is unanswered on conn_
  std::function<void(result<void>)> first_join_;  // create() waits for this one
  ms backoff_;
  std::mt19937 rng_{std::random_device{}()};

  mutable std::mutex mu_;
  std::condition_variable cv_;  // deliveries arrived, callbacks ran, state changed
  uint64_t member_ = 0;         // 0: not a member right now
  bool joined_once_ = false;
  std::deque<buffered> buffer_;
  std::vector<buffered> early_;  // pushed on conn_ before its JoinResponse was read
  std::vector<unreadable> early_unreadable_;
  // Credit of the current member, in messages and bytes: granted in all, received in all, and
  // taken by poll() but not yet given back.
  int64_t granted_messages_ = 0;
  int64_t received_messages_ = 0;
  int64_t return_messages_ = 0;
  int64_t return_bytes_ = 0;
  int64_t taken_ = 0;  // messages poll() returned, over the consumer's life (message_limit)
  std::deque<settle_item> queue_;
  int64_t unsettled_ = 0;  // counted items whose callback has not run yet
  int inflight_ = 0;       // AckRequests unanswered
  bool linger_armed_ = false;
  bool send_posted_ = false;
  std::optional<error> first_error_;  // since the last flush()
  std::optional<error> join_error_;   // the last failed attempt to join again
  bool closing_ = false;
  bool closed_ = false;
};

// ---- application threads -------------------------------------------------------------------

int64_t consumer_impl::initial_credit_messages_locked() const {
  int64_t c = opts_.credit_messages;
  if (opts_.message_limit) c = std::min<int64_t>(c, std::max<int64_t>(*opts_.message_limit - taken_, 0));
  return c;
}

result<std::vector<delivery>> consumer_impl::poll(std::chrono::milliseconds max_wait, size_t max_messages) {
  if (runner_ && runner_->on_io_thread())
    return fail(errc::invalid_argument, "poll() called from a consumer callback would wait for itself");
  std::unique_lock lk(mu_);
  auto ready = [&] { return !buffer_.empty() || closing_ || closed_ || (member_ == 0 && join_error_); };
  if (max_messages > 0) cv_.wait_for(lk, max_wait, ready);
  if (closing_ || closed_) return fail(errc::shutting_down, "consumer is closed");
  std::vector<delivery> out;
  if (max_messages == 0) return out;
  if (buffer_.empty()) {
    if (member_ == 0 && join_error_) return *join_error_;
    return out;
  }
  size_t n = std::min(max_messages, buffer_.size());
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto& b = buffer_.front();
    return_messages_ += 1;
    return_bytes_ += static_cast<int64_t>(b.bytes);
    out.push_back(std::move(b.d));
    buffer_.pop_front();
  }
  taken_ += static_cast<int64_t>(n);
  arm_linger_locked();  // the credit goes back with the next AckRequest, at most ack_linger from now
  return out;
}

void consumer_impl::settle(settle_kind k, const delivery& d, int64_t value, settle_callback cb) {
  std::unique_lock lk(mu_);
  if (closed_ || closing_) {
    lk.unlock();
    if (cb) cb(fail(errc::shutting_down, "consumer is closed"));
    return;
  }
  ++unsettled_;
  std::optional<error> local;
  if (d.member_id == 0 || d.member_id != member_) {
    // Delivered to an earlier member of this consumer (before a reconnect): that lease is gone
    // and the message is redelivered; the broker would refuse the request anyway.
    local = fail(errc::lease_not_held, std::string(kind_name(k)) + " of " + d.id() + ": delivered to member " +
                                           std::to_string(d.member_id) + ", which left (now member " +
                                           std::to_string(member_) + ")");
  }
  if (local) {
    runner_->post([this, cb = std::move(cb), e = std::move(*local)]() mutable {
      std::vector<completion> done;
      done.emplace_back(std::move(cb), result<void>(std::move(e)));
      complete(done);
    });
    return;
  }
  queue_.push_back(settle_item{k, d.partition, d.offset, value, d.member_id, std::move(cb), true});
  if (queue_.size() >= std::max<size_t>(opts_.ack_batch, 1))
    send_now_locked();
  else
    arm_linger_locked();
}

void consumer_impl::arm_linger_locked() {
  if (linger_armed_ || closed_) return;
  linger_armed_ = true;
  runner_->post([this] {
    linger_timer_->expires_after(opts_.ack_linger);
    linger_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      {
        std::lock_guard lk(mu_);
        linger_armed_ = false;
      }
      send_acks();
    });
  });
}

void consumer_impl::send_now_locked() {
  if (send_posted_ || closed_) return;
  send_posted_ = true;
  runner_->post([this] { send_acks(); });
}

result<void> consumer_impl::flush(std::chrono::milliseconds timeout) {
  if (runner_ && runner_->on_io_thread())
    return fail(errc::invalid_argument, "flush() called from a consumer callback would wait for itself");
  std::unique_lock lk(mu_);
  if (!closed_) send_now_locked();
  // send_posted_ clears when the I/O thread has taken the queue and the credit to send them.
  bool ok = cv_.wait_for(
      lk, timeout, [&] { return closed_ || (!send_posted_ && unsettled_ == 0 && inflight_ == 0 && queue_.empty()); });
  if (!ok)
    return fail(errc::timeout, "consumer flush timed out after " + std::to_string(timeout.count()) + " ms with " +
                                   std::to_string(unsettled_) + " acks, nacks or extends unanswered");
  auto e = std::move(first_error_);
  first_error_.reset();
  if (e) return *e;
  return {};
}

void consumer_impl::close() {
  {
    std::lock_guard lk(mu_);
    if (closed_ || closing_ || !runner_) return;
  }
  // Not from a callback: the steps below wait for the I/O thread.
  if (runner_->on_io_thread()) return;
  (void)flush(std::min<ms>(opts_.request_timeout, ms(5000)));
  {
    std::lock_guard lk(mu_);
    closing_ = true;
    cv_.notify_all();
  }
  // Leave, so the broker hands what this member holds to others now rather than on disconnect.
  auto left = std::make_shared<std::promise<void>>();
  auto left_fut = left->get_future();
  runner_->post([this, left] {
    rejoin_timer_->cancel();
    keepalive_timer_->cancel();
    uint64_t m;
    {
      std::lock_guard lk(mu_);
      m = member_;
    }
    if (!conn_ || conn_->closed() || m == 0) return left->set_value();
    send_request([m](flatbuffers::FlatBufferBuilder& fbb,
                     uint64_t id) { return make_request(fbb, id, w::CreateLeaveRequest(fbb, m)); },
                 [left](const result<const w::Response*>&) { left->set_value(); });
  });
  left_fut.wait_for(std::min<ms>(opts_.request_timeout, ms(5000)));
  auto stopped = std::make_shared<std::promise<void>>();
  auto stopped_fut = stopped->get_future();
  runner_->post([this, stopped] {
    linger_timer_->cancel();
    if (auto c = std::move(conn_)) c->close(fail(errc::shutting_down, "consumer closed"));
    stopped->set_value();
  });
  stopped_fut.wait();
  {
    // From here on ack() and friends answer on the caller's thread: nothing posted would run.
    std::lock_guard lk(mu_);
    closed_ = true;
  }
  runner_->stop();
  std::vector<completion> left_over;
  {
    std::lock_guard lk(mu_);
    member_ = 0;
    buffer_.clear();
    for (auto& it : queue_)
      if (it.counted)
        left_over.emplace_back(std::move(it.cb), result<void>(fail(errc::shutting_down, "consumer closed")));
    queue_.clear();
    unsettled_ = 0;
    inflight_ = 0;
    cv_.notify_all();
  }
  for (auto& [cb, r] : left_over) {
    try {
      if (cb) cb(r);
    } catch (...) {
    }
  }
  // The stopped runner and the timers stay until the destructor (timers first, then the runner).
}

// ---- I/O thread ----------------------------------------------------------------------------

void consumer_impl::join() {
  auto c = std::make_shared<connection>(runner_->io(), opts_);
  conn_ = c;
  joining_ = true;
  uint64_t gen = ++conn_gen_;
  c->set_push_handler([this, gen](const w::Response& r) { on_push(gen, r); });
  c->set_close_handler([this, gen](const error& e) { on_closed(gen, e); });
  c->start();
  int32_t credit_messages;
  {
    std::lock_guard lk(mu_);
    credit_messages = static_cast<int32_t>(initial_credit_messages_locked());
  }
  int64_t ack_timeout = opts_.ack_timeout ? opts_.ack_timeout->count() : -1;
  send_request(
      [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
        auto t = fbb.CreateString(topic_);
        auto s = fbb.CreateString(sub_);
        auto n = fbb.CreateString(member_name_);
        return make_request(fbb, id,
                            w::CreateJoinRequest(fbb, t, s, n, ack_timeout, credit_messages, opts_.credit_bytes));
      },
      [this, gen, credit_messages](const result<const w::Response*>& r) { on_join(gen, credit_messages, r); });
}

void consumer_impl::on_join(uint64_t gen, int32_t credit_messages, const result<const w::Response*>& r) {
  if (gen != conn_gen_ || !conn_) return;  // a connection given up on
  joining_ = false;
  std::optional<error> err;
  if (!r) {
    err = r.error();
  } else if ((*r)->error() != w::ErrorCode::Ok) {
    err = fail(w::from_wire((*r)->error()), (*r)->error_message() ? (*r)->error_message()->str() : "join failed");
  } else if ((*r)->body_type() != w::ResponseBody::JoinResponse) {
    err = fail(errc::malformed_frame, "broker answered a join with another response type");
  }
  if (err) {
    err->message = "joining subscription '" + sub_ + "' of topic '" + topic_ + "': " + err->message;
    auto dead = std::move(conn_);  // on_closed ignores it now
    dead->close(*err);
    {
      std::lock_guard lk(mu_);
      early_.clear();
      early_unreadable_.clear();
    }
    return join_failed(*err);
  }
  uint64_t id = (*r)->body_as_JoinResponse()->member_id();
  {
    std::lock_guard lk(mu_);
    member_ = id;
    joined_once_ = true;
    join_error_.reset();
    buffer_.clear();
    granted_messages_ = credit_messages;
    received_messages_ = 0;
    return_messages_ = 0;
    return_bytes_ = 0;
    for (auto& b : early_) {
      if (b.d.member_id != id) continue;
      ++received_messages_;
      buffer_.push_back(std::move(b));
    }
    early_.clear();
    for (auto& u : early_unreadable_) {
      if (u.member != id) continue;
      ++received_messages_;
      reject_locked(u);
    }
    early_unreadable_.clear();
    cv_.notify_all();
  }
  backoff_ = opts_.reconnect_backoff;
  arm_keepalive();
  if (auto f = std::move(first_join_)) {
    first_join_ = nullptr;
    f({});
  }
}

void consumer_impl::join_failed(const error& e) {
  if (auto f = std::move(first_join_)) {  // create() reports it; nothing retries
    first_join_ = nullptr;
    f(e);
    return;
  }
  {
    std::lock_guard lk(mu_);
    if (!errc_retriable(e.code)) join_error_ = e;  // poll() reports it while we keep trying
    cv_.notify_all();
  }
  schedule_rejoin();
}

void consumer_impl::on_push(uint64_t gen, const w::Response& r) {
  if (gen != conn_gen_ || !conn_) return;
  const auto* d = r.body_as_Delivery();
  if (d == nullptr || d->messages() == nullptr) return;
  std::string topic = d->topic() ? d->topic()->str() : topic_;
  uint64_t member = d->member_id();
  std::vector<buffered> got;
  std::vector<unreadable> bad;
  got.reserve(d->messages()->size());
  for (const auto* dm : *d->messages()) {
    size_t bytes = dm->record() ? dm->record()->size() : 0;
    auto x = decode_delivered(*dm, topic, member);
    if (!x) {
      bad.push_back(unreadable{dm->partition(), dm->offset(), bytes, member});
      continue;
    }
    got.push_back(buffered{std::move(*x), bytes});
  }
  std::lock_guard lk(mu_);
  if (member_ == 0 && joining_) {
    // Before the JoinResponse was read: on_join takes those of the member it names.
    for (auto& b : got) early_.push_back(std::move(b));
    for (auto& u : bad) early_unreadable_.push_back(u);
    return;
  }
  if (member != member_) return;  // not for this member (cannot happen on its own connection)
  received_messages_ += static_cast<int64_t>(got.size() + bad.size());
  for (auto& b : got) buffer_.push_back(std::move(b));
  for (auto& u : bad) reject_locked(u);
  cv_.notify_all();
}

// A record that does not decode cannot reach the application: nack it (a failed delivery, so it
// ends in the dead-letter topic) and give its credit back.
void consumer_impl::reject_locked(const unreadable& u) {
  queue_.push_back(settle_item{settle_kind::nack, u.partition, u.offset, -1, u.member, nullptr, false});
  return_messages_ += 1;
  return_bytes_ += static_cast<int64_t>(u.bytes);
  arm_linger_locked();
}

void consumer_impl::on_closed(uint64_t gen, const error& e) {
  if (gen != conn_gen_ || !conn_) return;
  conn_.reset();
  bool was_joining = joining_;
  joining_ = false;
  std::vector<completion> done;
  bool rejoin;
  {
    std::lock_guard lk(mu_);
    member_ = 0;
    buffer_.clear();  // not handed out yet: the broker redelivers them
    early_.clear();
    early_unreadable_.clear();
    return_messages_ = return_bytes_ = 0;
    error why = fail(errc::connection_closed, e.message);
    for (auto& it : queue_)
      if (it.counted) done.emplace_back(std::move(it.cb), result<void>(why));
    queue_.clear();
    rejoin = !closing_ && !closed_ && joined_once_;
    cv_.notify_all();
  }
  complete(done);
  if (was_joining) return;  // on_join gets the error and decides
  if (rejoin) schedule_rejoin();
}

void consumer_impl::schedule_rejoin() {
  {
    std::lock_guard lk(mu_);
    if (closing_ || closed_) return;
  }
  // Full jitter over [backoff/2, backoff], so members of a dropped broker do not return in step.
  auto half = backoff_.count() / 2;
  auto wait =
      ms(half + static_cast<int64_t>(rng_() % static_cast<uint64_t>(std::max<int64_t>(backoff_.count() - half, 1))));
  backoff_ = std::min(backoff_ * 2, std::max(opts_.reconnect_backoff_max, opts_.reconnect_backoff));
  rejoin_timer_->expires_after(wait);
  rejoin_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    {
      std::lock_guard lk(mu_);
      if (closing_ || closed_) return;
    }
    join();
  });
}

// I/O thread: an empty AckRequest every keepalive while joined (answers are ignored; a dropped
// connection is noticed and handled by on_closed as always).
void consumer_impl::arm_keepalive() {
  if (opts_.keepalive.count() <= 0) return;
  keepalive_timer_->expires_after(opts_.keepalive);
  keepalive_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    uint64_t m;
    {
      std::lock_guard lk(mu_);
      if (closing_ || closed_) return;
      m = member_;
    }
    if (m != 0 && conn_ && !conn_->closed() && !joining_) {
      send_request([m](flatbuffers::FlatBufferBuilder& fbb,
                       uint64_t id) { return make_request(fbb, id, w::CreateAckRequest(fbb, m)); },
                   [](const result<const w::Response*>&) {});
    }
    arm_keepalive();
  });
}

void consumer_impl::send_acks() {
  std::vector<std::shared_ptr<std::vector<settle_item>>> batches;
  int32_t credit_messages = 0, credit_bytes = 0;
  uint64_t member;
  std::vector<completion> stale;
  {
    std::lock_guard lk(mu_);
    send_posted_ = false;
    cv_.notify_all();
    member = member_;
    if (member == 0 || !conn_ || joining_) return;  // on_closed failed the queue; nothing to send
    if (return_messages_ > 0 || return_bytes_ > 0) {
      int64_t m = return_messages_;
      if (opts_.message_limit) {
        // Never let the broker send more than the application will take in all.
        int64_t outstanding = granted_messages_ - received_messages_;
        int64_t room = *opts_.message_limit - taken_ - static_cast<int64_t>(buffer_.size()) - outstanding;
        m = std::clamp<int64_t>(room, 0, m);
      }
      credit_messages = static_cast<int32_t>(std::min<int64_t>(m, INT32_MAX));
      credit_bytes = static_cast<int32_t>(std::min<int64_t>(return_bytes_, INT32_MAX));
      granted_messages_ += credit_messages;
      return_messages_ = 0;
      return_bytes_ = 0;
    }
    const size_t max_items = std::max<size_t>(opts_.ack_batch, 1);
    std::set<std::pair<int32_t, int64_t>> seen;
    auto cur = std::make_shared<std::vector<settle_item>>();
    while (!queue_.empty()) {
      settle_item it = std::move(queue_.front());
      queue_.pop_front();
      if (it.member != member) {
        if (it.counted)
          stale.emplace_back(std::move(it.cb),
                             result<void>(fail(errc::lease_not_held, std::string(kind_name(it.kind)) +
                                                                         " of a delivery to an earlier member")));
        continue;
      }
      if (cur->size() >= max_items || !seen.insert({it.partition, it.offset}).second) {
        batches.push_back(std::move(cur));
        cur = std::make_shared<std::vector<settle_item>>();
        seen.clear();
        seen.insert({it.partition, it.offset});
      }
      cur->push_back(std::move(it));
    }
    if (!cur->empty() || (batches.empty() && (credit_messages > 0 || credit_bytes > 0)))
      batches.push_back(std::move(cur));
    inflight_ += static_cast<int>(batches.size());
  }
  complete(stale);
  for (size_t i = 0; i < batches.size(); ++i) {
    auto items = batches[i];
    int32_t cm = i == 0 ? credit_messages : 0;
    int32_t cb = i == 0 ? credit_bytes : 0;
    send_request(
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          std::map<int32_t, std::vector<int64_t>> acks;
          std::vector<flatbuffers::Offset<w::NackItem>> nacks;
          std::vector<flatbuffers::Offset<w::ExtendItem>> extends;
          for (const auto& it : *items) {
            switch (it.kind) {
              case settle_kind::ack:
                acks[it.partition].push_back(it.offset);
                break;
              case settle_kind::nack:
                nacks.push_back(w::CreateNackItem(fbb, it.partition, it.offset, it.value));
                break;
              case settle_kind::extend:
                extends.push_back(w::CreateExtendItem(fbb, it.partition, it.offset, it.value));
                break;
            }
          }
          std::vector<flatbuffers::Offset<w::PartitionOffsets>> parts;
          parts.reserve(acks.size());
          for (auto& [p, offs] : acks) parts.push_back(w::CreatePartitionOffsets(fbb, p, fbb.CreateVector(offs)));
          auto a = parts.empty() ? 0 : fbb.CreateVector(parts);
          auto n = nacks.empty() ? 0 : fbb.CreateVector(nacks);
          auto e = extends.empty() ? 0 : fbb.CreateVector(extends);
          return make_request(fbb, id, w::CreateAckRequest(fbb, member, a, n, e, cm, cb));
        },
        [this, items](const result<const w::Response*>& r) { on_ack_response(items, r); });
  }
}

void consumer_impl::on_ack_response(const std::shared_ptr<std::vector<settle_item>>& items,
                                    const result<const w::Response*>& r) {
  std::optional<error> all;  // the whole request failed
  const w::AckResponse* ar = nullptr;
  if (!r) {
    all = r.error();
  } else if ((*r)->error() != w::ErrorCode::Ok) {
    all =
        fail(w::from_wire((*r)->error()), (*r)->error_message() ? (*r)->error_message()->str() : "ack request failed");
  } else if ((ar = (*r)->body_as_AckResponse()) == nullptr) {
    all = fail(errc::malformed_frame, "broker answered an ack request with another response type");
  }
  std::map<std::pair<int32_t, int64_t>, errc> failed;
  // error_message explains the first failure; the others get their code's name.
  std::optional<std::pair<int32_t, int64_t>> first_failed;
  std::string why;
  if (ar != nullptr) {
    if (ar->failures() != nullptr) {
      for (const auto* f : *ar->failures()) {
        failed[{f->partition(), f->offset()}] = w::from_wire(f->error());
        if (!first_failed) first_failed = std::pair{f->partition(), f->offset()};
      }
    }
    if (ar->error_message() != nullptr) why = ar->error_message()->str();
  }
  std::vector<completion> done;
  done.reserve(items->size());
  for (auto& it : *items) {
    if (!it.counted) continue;
    std::string what = std::string(kind_name(it.kind)) + " of " + topic_ + "/" + std::to_string(it.partition) + "/" +
                       std::to_string(it.offset);
    if (all) {
      done.emplace_back(std::move(it.cb), result<void>(fail(all->code, what + ": " + all->message)));
      continue;
    }
    auto f = failed.find({it.partition, it.offset});
    if (f == failed.end()) {
      done.emplace_back(std::move(it.cb), result<void>());
    } else {
      auto code = f->second == errc::ok ? errc::unknown : f->second;
      bool explained = !why.empty() && first_failed == f->first;
      done.emplace_back(std::move(it.cb),
                        result<void>(fail(code, what + ": " + (explained ? why : std::string(errc_name(code))))));
    }
  }
  {
    std::lock_guard lk(mu_);
    --inflight_;
  }
  complete(done);
}

void consumer_impl::complete(std::vector<completion>& done) {
  if (done.empty()) {
    std::lock_guard lk(mu_);
    cv_.notify_all();
    return;
  }
  {
    std::lock_guard lk(mu_);
    for (auto& [cb, r] : done)
      if (!r && !first_error_) first_error_ = r.error();
  }
  for (auto& [cb, r] : done) {
    try {
      if (cb) cb(r);
    } catch (...) {
    }
  }
  std::lock_guard lk(mu_);
  unsettled_ -= static_cast<int64_t>(done.size());
  cv_.notify_all();
}

}  // namespace

result<std::unique_ptr<consumer>> consumer::create(consumer_options opts, std::string topic, std::string subscription) {
  if (auto hp = detail::split_host_port(opts.bootstrap); !hp) return hp.error();
  if (topic.empty()) return fail(errc::invalid_argument, "consumer needs a topic");
  if (subscription.empty()) return fail(errc::invalid_argument, "consumer needs a subscription");
  if (opts.credit_messages < 1 || opts.credit_bytes < 1)
    return fail(errc::invalid_argument, "credit_messages and credit_bytes must be above zero");
  if (opts.ack_linger.count() < 0) return fail(errc::invalid_argument, "ack_linger is negative");
  if (opts.reconnect_backoff.count() < 1) opts.reconnect_backoff = ms(1);
  if (opts.message_limit && *opts.message_limit < 0) return fail(errc::invalid_argument, "message_limit is negative");
  auto c = std::make_unique<consumer_impl>(std::move(opts), std::move(topic), std::move(subscription));
  if (auto r = c->start(); !r) return r.error();
  return std::unique_ptr<consumer>(std::move(c));
}

}  // namespace ferry::client
