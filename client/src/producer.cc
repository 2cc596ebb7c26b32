// The producer: per-partition batch accumulation under one mutex (send() threads), sending,
// retries and callbacks on the I/O thread.
//
// Life of a message: send() encodes it straight into its partition's open batch (batch_builder)
// and queues its callback beside it. A batch is sealed (finished with producer id and base
// sequence, copied out, never changed again except by resequence below) when it reaches
// batch_bytes, when it has lingered and its partition has a free in-flight slot, when its delay
// kind changes, or on flush(). Sealed batches wait in their partition's queue, in sequence order;
// pump() sends the first max_in_flight of them, one batch per partition per ProduceRequest and
// one request per topic carrying every ready partition. A batch leaves the queue when acked
// (callbacks with offsets) or finally failed (callbacks with the error).
//
// Retries: on a retriable error the failed batch and every later batch of its partition go back
// to "queued" and are resent in sequence order after retry_backoff, byte for byte; the broker
// deduplicates by (producer id, sequence) and answers duplicate=true for what it already has.
// Responses to superseded attempts are ignored unless they report success (then the batch is
// stored). A batch the broker definitively refused (not stored) is failed and the later batches
// of its partition are renumbered down (resequence) so they do not wait forever for the gap.
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <mutex>
#include <random>
#include <unordered_map>

#include "client/src/connection.h"
#include "schema/record_batch.h"

namespace ferry::client {
namespace {

using namespace detail;
namespace w = ferry::wire;
using ms = std::chrono::milliseconds;

int64_t now_ms() { return std::chrono::duration_cast<ms>(std::chrono::system_clock::now().time_since_epoch()).count(); }

enum class delay_kind : uint8_t { none, relative, absolute };

struct sealed_batch {
  enum class st : uint8_t { queued, sent, done };
  int32_t partition = 0;
  int32_t base_sequence = 0;
  int32_t record_count = 0;
  std::vector<std::byte> bytes;
  std::vector<producer::callback> callbacks;
  size_t accounted = 0;        // bytes counted in buffer_used_
  steady::time_point created;  // the first message's send(); delivery_timeout runs from here
  st state = st::queued;
  uint32_t attempt = 0;
};
using batch_ptr = std::shared_ptr<sealed_batch>;

struct partition_state {
  w::batch_builder builder;
  std::vector<producer::callback> open_cbs;
  delay_kind open_kind = delay_kind::none;
  steady::time_point open_since;
  size_t open_accounted = 0;
  int32_t next_sequence = 0;
  std::deque<batch_ptr> queue;  // sealed, unfinished, in sequence order; sent ones form a prefix
  int in_flight = 0;            // batches in state sent
  steady::time_point retry_at{};
};

struct waiting_message {  // sent before its topic's partition count was known
  message m;
  producer::callback cb;
  size_t accounted;
  steady::time_point since;
};

struct topic_state {
  std::string name;
  int32_t partitions = 0;  // 0: unknown yet
  std::vector<std::unique_ptr<partition_state>> parts;
  std::deque<waiting_message> waiting;
  bool metadata_in_flight = false;
  bool metadata_wanted = false;  // refresh asked for while one was in flight
  int32_t sticky = 0;
};

struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// What to tell the callbacks of one batch, computed under the lock and run outside it.
struct completion {
  batch_ptr batch;
  const std::string* topic;
  int64_t base_offset;
  std::optional<error> err;
};

bool definitive_rejection(errc e) {
  // The broker refused the batch without storing it.
  switch (e) {
    case errc::corrupt_batch:
    case errc::request_too_large:
    case errc::invalid_argument:
    case errc::unknown_partition:
    case errc::unknown_topic:
    case errc::malformed_frame:
    case errc::unsupported_api:
    case errc::unsupported_version:
    case errc::disk_full:
    case errc::delay_out_of_range:
      return true;
    default:
      return false;
  }
}

class producer_impl final : public producer {
 public:
  explicit producer_impl(producer_options opts) : opts_(std::move(opts)) {
    std::random_device rd;
    uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    producer_id_ = static_cast<int64_t>(id & 0x7fffffffffffffffull);  // 63 bits: never -1
    if (opts_.max_in_flight < 1) opts_.max_in_flight = 1;
    runner_ = std::make_unique<io_runner>(opts_);
    linger_timer_ = std::make_unique<asio::steady_timer>(runner_->io());
    retry_timer_ = std::make_unique<asio::steady_timer>(runner_->io());
  }
  ~producer_impl() override { close(); }

  using producer::send;
  void send(std::string_view topic, message m, callback cb) override;
  result<void> flush(std::chrono::milliseconds timeout) override;
  void close() override;
  int64_t producer_id() const override { return producer_id_; }

 private:
  topic_state& topic_locked(std::string_view name);
  void append_locked(topic_state& t, message&& m, callback&& cb);
  void seal_locked(topic_state& t, int32_t p);
  void request_pump_locked();
  void arm_linger_locked(steady::time_point at);
  void fail_later(callback cb, error e);

  // I/O thread.
  void pump();
  void on_linger();
  void request_metadata(topic_state& t);
  void on_metadata(topic_state& t, result<const w::Response*> r);
  struct produce_item {
    int32_t partition;
    batch_ptr batch;
    uint32_t attempt;
  };
  void on_produce(topic_state& t, const std::vector<produce_item>& items, result<const w::Response*> r);
  void handle_item_locked(topic_state& t, const produce_item& it, const w::ProducePartitionResult* pr,
                          const std::optional<error>& req_err, steady::time_point now, std::vector<completion>& done);
  void finish_locked(topic_state& t, partition_state& ps, const batch_ptr& b, int64_t base_offset,
                     std::optional<error> err, std::vector<completion>& done);
  void run_completions(std::vector<completion>& done);
  void seal_lingering_locked(topic_state& t, steady::time_point now, bool force, steady::time_point* next);

  producer_options opts_;
  int64_t producer_id_ = 0;
  std::unique_ptr<io_runner> runner_;
  std::unique_ptr<asio::steady_timer> linger_timer_;
  std::unique_ptr<asio::steady_timer> retry_timer_;

  std::mutex mu_;
  std::condition_variable cv_;  // buffer space freed, callbacks done
  std::unordered_map<std::string, std::unique_ptr<topic_state>, string_hash, std::equal_to<>> topics_;
  topic_state* last_topic_ = nullptr;
  std::vector<w::header_view> header_scratch_;
  size_t buffer_used_ = 0;
  int64_t outstanding_ = 0;  // messages accepted whose callback has not run yet
  bool pump_posted_ = false;
  bool linger_armed_ = false;
  steady::time_point linger_at_ = steady::time_point::max();
  steady::time_point retry_armed_at_ = steady::time_point::max();
  int flushing_ = 0;
  bool closed_ = false;
  std::mt19937 rng_{std::random_device{}()};
};

// ---- send() side ---------------------------------------------------------------------------

topic_state& producer_impl::topic_locked(std::string_view name) {
  if (last_topic_ != nullptr && last_topic_->name == name) return *last_topic_;
  auto it = topics_.find(name);
  if (it == topics_.end()) {
    auto t = std::make_unique<topic_state>();
    t->name = std::string(name);
    it = topics_.emplace(t->name, std::move(t)).first;
  }
  last_topic_ = it->second.get();
  return *last_topic_;
}

void producer_impl::fail_later(callback cb, error e) {
  // Callbacks run on the I/O thread (the header's promise), also for errors found in send().
  runner_->post([this, cb = std::move(cb), e = std::move(e)] {
    try {
      if (cb) cb(result<message_id>(e));
    } catch (...) {
    }
    std::lock_guard lk(mu_);
    --outstanding_;
    cv_.notify_all();
  });
}

void producer_impl::send(std::string_view topic, message m, callback cb) {
  std::unique_lock lk(mu_);
  if (closed_) {
    lk.unlock();
    if (cb) cb(result<message_id>(fail(errc::shutting_down, "producer is closed")));
    return;
  }
  ++outstanding_;
  if (m.delay_ms && m.deliver_at_ms) {
    fail_later(std::move(cb), fail(errc::invalid_argument, "a message has either delay_ms or deliver_at_ms, not both"));
    return;
  }
  if (m.delay_ms && *m.delay_ms < 0) {
    // The broker refuses it too (the whole batch); failing here keeps the batch's other messages.
    fail_later(std::move(cb),
               fail(errc::delay_out_of_range, "delay_ms " + std::to_string(*m.delay_ms) + " is negative"));
    return;
  }
  for (const auto& h : m.headers) {
    if (wire::is_reserved_header(h.first)) {
      // The broker refuses it too (the whole batch); failing here keeps the batch's other messages.
      fail_later(std::move(cb), fail(errc::invalid_argument, "header '" + h.first +
                                                                 "': names starting with 'ferry-' are reserved for "
                                                                 "the broker"));
      return;
    }
  }
  size_t estimate = 16 + m.value.size() + (m.key ? m.key->size() : 0);
  for (const auto& h : m.headers) estimate += 4 + h.first.size() + h.second.size();
  // Block while the buffer is full; never on the I/O thread (a callback sending), which would
  // wait for itself.
  if (buffer_used_ > 0 && buffer_used_ + estimate > opts_.buffer_bytes && !runner_->on_io_thread()) {
    cv_.wait(lk, [&] { return closed_ || buffer_used_ == 0 || buffer_used_ + estimate <= opts_.buffer_bytes; });
    if (closed_) {
      --outstanding_;
      lk.unlock();
      if (cb) cb(result<message_id>(fail(errc::shutting_down, "producer is closed")));
      return;
    }
  }
  if (m.timestamp_ms == 0) m.timestamp_ms = now_ms();
  topic_state& t = topic_locked(topic);
  if (t.partitions == 0) {
    buffer_used_ += estimate;
    t.waiting.push_back(waiting_message{std::move(m), std::move(cb), estimate, steady::now()});
    if (!t.metadata_in_flight) {
      t.metadata_in_flight = true;
      runner_->post([this, tp = &t] { request_metadata(*tp); });
    }
    return;
  }
  append_locked(t, std::move(m), std::move(cb));
}

void producer_impl::append_locked(topic_state& t, message&& m, callback&& cb) {
  int32_t p;
  if (m.partition) {
    p = *m.partition;
    if (p < 0 || p >= t.partitions) {
      fail_later(std::move(cb),
                 fail(errc::unknown_partition, "topic '" + t.name + "' has no partition " + std::to_string(p) +
                                                   " (it has " + std::to_string(t.partitions) + ")"));
      return;
    }
  } else if (m.key) {
    p = partition_for_key(*m.key, t.partitions);
  } else {
    p = t.sticky;
  }
  partition_state& ps = *t.parts[p];
  delay_kind kind = m.delay_ms ? delay_kind::relative : m.deliver_at_ms ? delay_kind::absolute : delay_kind::none;
  // A batch's deliver_at fields are all relative or all absolute (one attribute bit says which).
  if (kind != delay_kind::none && ps.open_kind != delay_kind::none && kind != ps.open_kind) seal_locked(t, p);
  if (ps.builder.record_count() == 0) {
    ps.open_since = steady::now();
    ps.open_kind = delay_kind::none;
    arm_linger_locked(flushing_ > 0 ? ps.open_since : ps.open_since + opts_.linger);
  }
  if (kind != delay_kind::none) {
    ps.open_kind = kind;
    ps.builder.set_relative_delays(kind == delay_kind::relative);
  }
  header_scratch_.clear();
  for (const auto& h : m.headers) header_scratch_.push_back(w::header_view{h.first, std::string_view(h.second)});
  size_t before = ps.builder.size_bytes();
  std::optional<std::string_view> key;
  if (m.key) key = *m.key;
  std::optional<int64_t> deliver = kind == delay_kind::relative ? m.delay_ms : m.deliver_at_ms;
  ps.builder.add(key, std::string_view(m.value), header_scratch_, m.timestamp_ms, deliver);
  size_t added = ps.builder.size_bytes() - before;
  ps.open_accounted += added;
  buffer_used_ += added;
  ps.open_cbs.push_back(std::move(cb));
  if (ps.builder.size_bytes() >= opts_.batch_bytes) seal_locked(t, p);
}

void producer_impl::seal_locked(topic_state& t, int32_t p) {
  partition_state& ps = *t.parts[p];
  if (ps.builder.record_count() == 0) return;
  auto b = std::make_shared<sealed_batch>();
  b->partition = p;
  b->record_count = ps.builder.record_count();
  b->base_sequence = ps.next_sequence;
  ps.next_sequence = w::increment_sequence(ps.next_sequence, b->record_count);
  auto bytes = ps.builder.finish(producer_id_, 0, b->base_sequence);
  b->bytes.assign(bytes.begin(), bytes.end());
  size_t n = ps.open_cbs.size();
  b->callbacks = std::move(ps.open_cbs);
  ps.open_cbs = {};
  ps.open_cbs.reserve(n);
  b->accounted = ps.open_accounted;
  ps.open_accounted = 0;
  b->created = ps.open_since;
  ps.builder.reset();
  ps.open_kind = delay_kind::none;
  ps.queue.push_back(std::move(b));
  if (p == t.sticky && t.partitions > 1) t.sticky = (t.sticky + 1) % t.partitions;  // spread keyless messages
  request_pump_locked();
}

void producer_impl::request_pump_locked() {
  if (pump_posted_) return;
  pump_posted_ = true;
  runner_->post([this] { pump(); });
}

void producer_impl::arm_linger_locked(steady::time_point at) {
  if (linger_armed_ && linger_at_ <= at) return;
  linger_armed_ = true;
  linger_at_ = at;
  runner_->post([this, at] {
    {
      std::lock_guard lk(mu_);
      if (linger_at_ != at) return;  // superseded by an earlier deadline
    }
    linger_timer_->expires_at(at);
    linger_timer_->async_wait([this, at](const boost::system::error_code& ec) {
      if (ec) return;
      {
        std::lock_guard lk(mu_);
        if (linger_at_ != at) return;
      }
      on_linger();
    });
  });
}

result<void> producer_impl::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (closed_) return {};
  if (runner_->on_io_thread())
    return fail(errc::invalid_argument, "flush() called from a producer callback would wait for itself");
  ++flushing_;
  linger_armed_ = false;  // re-arm at once: flushing seals every open batch
  arm_linger_locked(steady::now());
  bool ok = cv_.wait_for(lk, timeout, [&] { return outstanding_ == 0; });
  --flushing_;
  if (!ok)
    return fail(errc::timeout, "flush timed out after " + std::to_string(timeout.count()) + " ms with " +
                                   std::to_string(outstanding_) + " messages unacknowledged");
  return {};
}

void producer_impl::close() {
  {
    std::lock_guard lk(mu_);
    if (closed_ || !runner_) return;
  }
  (void)flush(opts_.delivery_timeout + opts_.request_timeout);
  {
    std::lock_guard lk(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  runner_->stop();
  linger_timer_.reset();
  retry_timer_.reset();
  runner_.reset();
  // Whatever flush could not finish fails now, on this thread (the I/O thread is gone).
  std::vector<std::pair<callback, std::string>> left;
  {
    std::lock_guard lk(mu_);
    for (auto& [name, t] : topics_) {
      for (auto& wm : t->waiting) left.emplace_back(std::move(wm.cb), name);
      t->waiting.clear();
      for (auto& ps : t->parts) {
        for (auto& b : ps->queue)
          for (auto& cb : b->callbacks) left.emplace_back(std::move(cb), name);
        ps->queue.clear();
        for (auto& cb : ps->open_cbs) left.emplace_back(std::move(cb), name);
        ps->open_cbs.clear();
      }
    }
    outstanding_ = 0;
  }
  for (auto& [cb, name] : left) {
    try {
      if (cb)
        cb(result<message_id>(
            fail(errc::shutting_down, "producer closed before '" + name + "' acknowledged the message")));
    } catch (...) {
    }
  }
}

// ---- I/O thread ----------------------------------------------------------------------------

void producer_impl::seal_lingering_locked(topic_state& t, steady::time_point now, bool force,
                                          steady::time_point* next) {
  for (int32_t p = 0; p < t.partitions; ++p) {
    partition_state& ps = *t.parts[p];
    if (ps.builder.record_count() == 0) continue;
    auto due = ps.open_since + opts_.linger;
    if (force || due <= now) {
      // Past its linger a batch still grows while its partition has no free slot: bigger batches
      // are what lets a busy pipeline catch up. A freed slot (on_produce) seals it.
      if (force || static_cast<int>(ps.queue.size()) < opts_.max_in_flight) seal_locked(t, p);
    } else if (next != nullptr) {
      *next = std::min(*next, due);
    }
  }
}

void producer_impl::on_linger() {
  std::lock_guard lk(mu_);
  linger_armed_ = false;
  linger_at_ = steady::time_point::max();
  auto now = steady::now();
  auto next = steady::time_point::max();
  for (auto& [name, t] : topics_) seal_lingering_locked(*t, now, flushing_ > 0, &next);
  if (next != steady::time_point::max()) arm_linger_locked(next);
}

void producer_impl::pump() {
  struct request_plan {
    topic_state* topic;
    std::vector<produce_item> items;
  };
  std::vector<request_plan> plans;
  auto now = steady::now();
  auto next_retry = steady::time_point::max();
  const size_t frame_budget =
      opts_.max_frame_bytes > (64u << 10) ? opts_.max_frame_bytes - (32u << 10) : opts_.max_frame_bytes;
  {
    std::lock_guard lk(mu_);
    pump_posted_ = false;
    if (closed_) return;
    for (auto& [name, tp] : topics_) {
      topic_state& t = *tp;
      for (;;) {  // one request per round, one batch per partition per request
        request_plan plan{&t, {}};
        size_t bytes = 0;
        for (int32_t p = 0; p < t.partitions; ++p) {
          partition_state& ps = *t.parts[p];
          if (ps.in_flight >= opts_.max_in_flight || ps.in_flight >= static_cast<int>(ps.queue.size())) continue;
          if (ps.retry_at > now) {
            next_retry = std::min(next_retry, ps.retry_at);
            continue;
          }
          const batch_ptr& b = ps.queue[ps.in_flight];
          if (!plan.items.empty() && bytes + b->bytes.size() > frame_budget) continue;  // next request
          bytes += b->bytes.size() + 64;
          b->state = sealed_batch::st::sent;
          ++b->attempt;
          ++ps.in_flight;
          plan.items.push_back(produce_item{p, b, b->attempt});
        }
        if (plan.items.empty()) break;
        plans.push_back(std::move(plan));
      }
    }
    if (next_retry != steady::time_point::max() && next_retry < retry_armed_at_) {
      retry_armed_at_ = next_retry;
      retry_timer_->expires_at(next_retry);
      retry_timer_->async_wait([this, next_retry](const boost::system::error_code& ec) {
        if (ec) return;
        {
          std::lock_guard lk(mu_);
          if (retry_armed_at_ != next_retry) return;
          retry_armed_at_ = steady::time_point::max();
        }
        pump();
      });
    }
  }
  // Build and send outside the lock: sealed batch bytes change only on this thread.
  const auto acks = opts_.wait_for_durable ? w::Acks::Durable : w::Acks::Leader;
  const auto timeout_ms = static_cast<int32_t>(opts_.request_timeout.count());
  for (auto& plan : plans) {
    topic_state* t = plan.topic;
    auto items = std::make_shared<std::vector<produce_item>>(std::move(plan.items));
    runner_->request(
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          std::vector<flatbuffers::Offset<w::ProducePartition>> parts;
          parts.reserve(items->size());
          for (const auto& it : *items) {
            auto recs =
                fbb.CreateVector(reinterpret_cast<const uint8_t*>(it.batch->bytes.data()), it.batch->bytes.size());
            parts.push_back(w::CreateProducePartition(fbb, it.partition, recs));
          }
          auto pv = fbb.CreateVector(parts);
          auto name = fbb.CreateString(t->name);
          return make_request(fbb, id, w::CreateProduceRequest(fbb, name, acks, timeout_ms, pv));
        },
        ms(0), [this, t, items](const result<const w::Response*>& r) { on_produce(*t, *items, r); });
  }
}

void producer_impl::on_produce(topic_state& t, const std::vector<produce_item>& items, result<const w::Response*> r) {
  std::vector<completion> done;
  std::optional<error> req_err;
  const w::ProduceResponse* body = nullptr;
  if (!r) {
    req_err = r.error();
  } else if ((*r)->error() != w::ErrorCode::Ok) {
    req_err =
        fail(w::from_wire((*r)->error()), (*r)->error_message() ? (*r)->error_message()->str() : "produce failed");
  } else if ((body = (*r)->body_as_ProduceResponse()) == nullptr) {
    req_err = fail(errc::malformed_frame, "broker answered a produce request with another response type");
  }
  auto now = steady::now();
  {
    std::lock_guard lk(mu_);
    for (const auto& it : items) {
      const w::ProducePartitionResult* pr = nullptr;
      if (!req_err && body->partitions() != nullptr) {
        for (const auto* x : *body->partitions())
          if (x->partition() == it.partition) {
            pr = x;
            break;
          }
      }
      handle_item_locked(t, it, pr, req_err, now, done);
    }
    // Freed slots: seal batches that lingered while their partition was full.
    seal_lingering_locked(t, now, flushing_ > 0, nullptr);
  }
  run_completions(done);
  pump();
}

void producer_impl::handle_item_locked(topic_state& t, const produce_item& it, const w::ProducePartitionResult* pr,
                                       const std::optional<error>& req_err, steady::time_point now,
                                       std::vector<completion>& done) {
  const batch_ptr& b = it.batch;
  if (b->state == sealed_batch::st::done) return;
  partition_state& ps = *t.parts[it.partition];
  std::optional<error> err = req_err;
  if (!err && pr == nullptr)
    err = fail(errc::malformed_frame,
               "produce response has no result for " + t.name + "/" + std::to_string(it.partition));
  if (!err && pr->error() != w::ErrorCode::Ok && pr->error() != w::ErrorCode::DuplicateSequence)
    err = fail(w::from_wire(pr->error()),
               pr->error_message() ? pr->error_message()->str() : std::string(errc_name(w::from_wire(pr->error()))));
  if (!err && pr->error() == w::ErrorCode::DuplicateSequence)
    // Stored long ago, outside the broker's memory of recent batches: stored, but the offsets are lost.
    err = fail(errc::duplicate_sequence, "batch was stored before but its offsets are no longer known (" + t.name +
                                             "/" + std::to_string(it.partition) + ")");
  if (!err) {  // success, including duplicate=true: the broker has it
    finish_locked(t, ps, b, pr->base_offset(), std::nullopt, done);
    return;
  }
  // Errors count only for the attempt in flight; older attempts were superseded by a resend.
  if (b->state != sealed_batch::st::sent || it.attempt != b->attempt) return;
  bool retriable = errc_retriable(err->code);
  if (err->code == errc::not_leader || err->code == errc::unknown_partition || err->code == errc::unknown_topic) {
    if (!t.metadata_in_flight) {
      t.metadata_in_flight = true;
      runner_->post([this, tp = &t] { request_metadata(*tp); });
    }
  }
  if (retriable && now + opts_.retry_backoff < b->created + opts_.delivery_timeout) {
    // Resend this batch and, to keep the order, every later one of the partition.
    auto pos = std::find(ps.queue.begin(), ps.queue.end(), b);
    for (auto q = pos; q != ps.queue.end(); ++q) {
      if ((*q)->state == sealed_batch::st::sent) {
        (*q)->state = sealed_batch::st::queued;
        --ps.in_flight;
      }
    }
    ps.retry_at = now + opts_.retry_backoff;
    return;
  }
  err->message = "producing to " + t.name + "/" + std::to_string(it.partition) + ": " + err->message;
  bool refused = definitive_rejection(err->code);
  int32_t removed_count = b->record_count;
  int32_t removed_seq = b->base_sequence;
  finish_locked(t, ps, b, -1, std::move(err), done);
  if (refused) {
    // The broker never stored it: close the sequence gap, or every later batch would be
    // out_of_order_sequence until it expired. Later batches were not stored either (the broker
    // refuses anything after a gap), so renumbering them cannot duplicate.
    for (auto& q : ps.queue) {
      // Only the batches after the removed one (sequences wrap at INT32_MAX).
      int64_t after = w::sequence_distance(removed_seq, q->base_sequence);
      if (after == 0 || after >= (int64_t{1} << 30)) continue;
      q->base_sequence = w::decrement_sequence(q->base_sequence, removed_count);
      std::memcpy(q->bytes.data() + w::hdr::base_sequence, &q->base_sequence, sizeof(int32_t));
      uint32_t crc = w::compute_batch_crc(q->bytes);
      std::memcpy(q->bytes.data() + w::hdr::crc, &crc, sizeof(uint32_t));
    }
    ps.next_sequence = w::decrement_sequence(ps.next_sequence, removed_count);
  }
}

void producer_impl::finish_locked(topic_state& t, partition_state& ps, const batch_ptr& b, int64_t base_offset,
                                  std::optional<error> err, std::vector<completion>& done) {
  if (b->state == sealed_batch::st::sent) --ps.in_flight;
  b->state = sealed_batch::st::done;
  auto pos = std::find(ps.queue.begin(), ps.queue.end(), b);
  if (pos != ps.queue.end()) ps.queue.erase(pos);
  buffer_used_ -= b->accounted;
  cv_.notify_all();
  done.push_back(completion{b, &t.name, base_offset, std::move(err)});
}

void producer_impl::run_completions(std::vector<completion>& done) {
  int64_t n = 0;
  for (auto& c : done) {
    auto& cbs = c.batch->callbacks;
    n += static_cast<int64_t>(cbs.size());
    if (c.err) {
      result<message_id> r(*c.err);
      for (auto& cb : cbs) {
        try {
          if (cb) cb(r);
        } catch (...) {
        }
      }
    } else {
      result<message_id> r(message_id{*c.topic, c.batch->partition, 0});
      for (size_t i = 0; i < cbs.size(); ++i) {
        r->offset = c.base_offset + static_cast<int64_t>(i);
        try {
          if (cbs[i]) cbs[i](r);
        } catch (...) {
        }
      }
    }
    cbs.clear();
  }
  if (n > 0) {
    std::lock_guard lk(mu_);
    outstanding_ -= n;
    cv_.notify_all();
  }
}

void producer_impl::request_metadata(topic_state& t) {
  // metadata_in_flight was set by whoever posted this.
  runner_->request(
      [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
        auto name = fbb.CreateString(t.name);
        auto topics = fbb.CreateVector(&name, 1);
        return make_request(fbb, id, w::CreateMetadataRequest(fbb, topics));
      },
      ms(0), [this, tp = &t](const result<const w::Response*>& r) { on_metadata(*tp, r); });
}

void producer_impl::on_metadata(topic_state& t, result<const w::Response*> r) {
  std::optional<error> err;
  int32_t count = 0;
  if (!r) {
    err = r.error();
  } else if ((*r)->error() != w::ErrorCode::Ok) {
    err = fail(w::from_wire((*r)->error()), (*r)->error_message() ? (*r)->error_message()->str() : "metadata failed");
  } else if (const auto* md = (*r)->body_as_MetadataResponse(); md == nullptr || md->topics() == nullptr) {
    err = fail(errc::malformed_frame, "broker answered a metadata request with another response type");
  } else {
    bool found = false;
    for (const auto* tm : *md->topics()) {
      if (tm->name() == nullptr || tm->name()->string_view() != t.name) continue;
      found = true;
      if (tm->error() != w::ErrorCode::Ok) {
        err = fail(w::from_wire(tm->error()),
                   tm->error_message() ? tm->error_message()->str() : "topic '" + t.name + "' failed");
      } else {
        count = tm->partitions() ? static_cast<int32_t>(tm->partitions()->size()) : 0;
        if (count == 0) err = fail(errc::unknown_topic, "topic '" + t.name + "' has no partitions");
      }
    }
    if (!found) err = fail(errc::unknown_topic, "topic '" + t.name + "' does not exist");
  }
  std::vector<waiting_message> failed;
  std::optional<error> fail_with;
  {
    std::lock_guard lk(mu_);
    t.metadata_in_flight = false;
    if (!err) {
      if (count > t.partitions) {
        for (int32_t p = t.partitions; p < count; ++p) t.parts.push_back(std::make_unique<partition_state>());
        if (t.partitions == 0) t.sticky = static_cast<int32_t>(rng_() % static_cast<uint32_t>(count));
        t.partitions = count;
      }
      while (!t.waiting.empty()) {
        auto wm = std::move(t.waiting.front());
        t.waiting.pop_front();
        buffer_used_ -= wm.accounted;
        append_locked(t, std::move(wm.m), std::move(wm.cb));
      }
      cv_.notify_all();
    } else if (!t.waiting.empty()) {
      // Retriable trouble (connection): try again after the backoff, until the oldest waiting
      // message runs out of delivery time. Anything else fails the waiting messages.
      auto now = steady::now();
      bool retry =
          errc_retriable(err->code) && now + opts_.retry_backoff < t.waiting.front().since + opts_.delivery_timeout;
      if (retry) {
        t.metadata_in_flight = true;
        auto timer = std::make_shared<asio::steady_timer>(runner_->io(), opts_.retry_backoff);
        timer->async_wait([this, timer, tp = &t](const boost::system::error_code& ec) {
          if (!ec) request_metadata(*tp);
        });
      } else {
        for (auto& wm : t.waiting) {
          buffer_used_ -= wm.accounted;
          failed.push_back(std::move(wm));
        }
        t.waiting.clear();
        fail_with = fail(err->code, "metadata for topic '" + t.name + "': " + err->message);
        cv_.notify_all();
      }
    }
  }
  for (auto& wm : failed) {
    try {
      if (wm.cb) wm.cb(result<message_id>(*fail_with));
    } catch (...) {
    }
  }
  if (!failed.empty()) {
    std::lock_guard lk(mu_);
    outstanding_ -= static_cast<int64_t>(failed.size());
    cv_.notify_all();
  }
}

}  // namespace

result<std::unique_ptr<producer>> producer::create(producer_options opts) {
  if (auto hp = detail::split_host_port(opts.bootstrap); !hp) return hp.error();
  if (opts.batch_bytes == 0 || opts.buffer_bytes == 0)
    return fail(errc::invalid_argument, "batch_bytes and buffer_bytes must be above zero");
  return std::unique_ptr<producer>(new producer_impl(std::move(opts)));
}

}  // namespace ferry::client
