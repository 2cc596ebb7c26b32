#include "broker/partition/partition.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

#include "broker/base/assert.h"
#include "broker/meta/meta_store.h"
#include "broker/partition/probe.h"
#include "broker/runtime/logger.h"
#include "broker/runtime/runtime.h"
#include "broker/scheduler/wheel_driver.h"
#include "broker/subscription/control.h"

namespace ferry::partition {

namespace {
runtime::subsystem_logger logger{"partition"};
}  // namespace

partition::partition(std::string topic, partition_id id, partition_config cfg, runtime::shard_set& rt, shard_id owner,
                     std::unique_ptr<log::partition_log> log)
    : topic_(std::move(topic)),
      id_(id),
      series_(topic_, id_.value),
      cfg_(std::move(cfg)),
      rt_(rt),
      owner_(owner),
      log_(std::move(log)),
      producers_(cfg_.producers),
      pipeline_(log_->durable_offset(),
                cfg_.fsync == fsync_policy::interval ? visibility::appended : visibility::committed,
                [this](offset o) { on_high_watermark(o); }),
      subs_(*this, cfg_.topic_id, cfg_.store, cfg_.window, rt_.state().get_executor(), rt_.executor(owner_)),
      services_(subs_, nullptr) {
  hwm_.store(log_->durable_offset().value, std::memory_order_release);
  // One timing wheel per partition, shared by its subscriptions (leases, backoffs).
  timers_ = std::make_unique<scheduler::wheel_driver>(rt_.executor(owner_), clock_, scheduler::fire_timed_entry);
  pipeline_.add(subs_);
}

partition::~partition() {
  // Delivery engines hold timer entries on timers_: they go first.
  services_.stop();
  if (timers_) timers_->stop();
}

result<std::shared_ptr<partition>> partition::open(std::string topic, partition_id id, partition_config cfg,
                                                   runtime::shard_set& rt, shard_id owner) {
  auto lg = log::partition_log::open(cfg.log);
  if (!lg) {
    auto e = lg.error();
    e.message = topic + "/" + std::to_string(id.value) + ": " + e.message;
    return e;
  }
  std::shared_ptr<partition> p(new partition(std::move(topic), id, std::move(cfg), rt, owner, std::move(*lg)));
  // Producer state is rebuilt from the batch headers still in the log, so deduplication survives
  // a restart (kill -9 included): only batches that are in the log can be duplicates.
  auto scan = p->log_->for_each_batch_header(p->log_->start_offset(),
                                             [&](const wire::batch_header& h) { p->producers_.remember(h); });
  if (!scan) return scan.error();
  p->producers_.expire(broker_clock().now_ms());
  // The header walk above is what finds a broken chain in an older segment: check after it.
  if (auto c = p->log_->corruption()) {
    logger()->error(
        "{}/{} is corrupt and fenced: offsets from {} are unreadable ({}: {}); it refuses writes and "
        "reads across the damage until repaired, the rest of the broker serves on",
        p->topic_, id.value, c->at.value, c->where, c->why);
  }
  logger()->info("opened {}/{}: offsets [{}, {}), {} segments, {} producers", p->topic_, id.value,
                 p->log_->start_offset().value, p->log_->next_offset().value, p->log_->segment_count(),
                 p->producers_.size());
  if (p->cfg_.delays != nullptr) {
    if (auto r = p->open_delays(); !r) return r.error();
  }
  if (p->cfg_.fsync == fsync_policy::interval) p->start_interval_sync();
  if (p->cfg_.store != nullptr) p->start_checkpoints();
  p->refresh_health();
  // This broker leads every partition it hosts (until replication): the leader services run now.
  p->services_.start();
  return p;
}

result<void> partition::open_delays() {
  std::string prefix = topic_ + "/" + std::to_string(id_.value) + "/";
  delays_ = std::make_unique<delay::delay_scheduler>(
      *cfg_.delays, delay::partition_key{cfg_.topic_id, id_.value}, prefix, rt_.executor(owner_),
      rt_.state().get_executor(), broker_clock(), cfg_.delay,
      [this](std::vector<std::byte> batch, const std::vector<delay::delay_key>&) {
        return append_release(std::move(batch));
      });
  delays_->set_drained_callback([this] { open_gate(); });
  // A message due at or before the append time of the oldest batch that may hold delayed messages
  // and is not applied yet may be released; a later one waits (due order per key).
  delays_->set_release_barrier([this] {
    int64_t oldest = INT64_MAX;  // (the minimum, not the first: the clock may have stepped back)
    pipeline_.for_each_pending([&](const wire::batch_header& h, batch_hint hint) {
      if (hint == batch_hint::maybe_delays) oldest = std::min(oldest, h.append_time);
    });
    return oldest;
  });
  delay_machine_ = std::make_unique<delay::delay_machine>(*delays_, rt_.executor(owner_), rt_.disk().get_executor());
  auto applied = delays_->open();
  if (!applied) return applied.error();
  // The delay index catches up with the log through the pipeline's apply path, then follows it.
  if (auto r = pipeline_.replay(*log_, *delay_machine_, offset{*applied}, readable_end()); !r) return r.error();
  auto& n = delay_machine_->applied_counts();
  if (n.inserted + n.released + n.cancelled > 0)
    logger()->info("{}/{}: delay index caught up from offset {}: {} delayed, {} released, {} cancelled", topic_,
                   id_.value, *applied, n.inserted, n.released, n.cancelled);
  if (auto r = delays_->finish_replay(readable_end().value); !r) return r.error();
  pipeline_.add(*delay_machine_);
  services_.set_delays(delays_.get());
  if (delays_->pending() > 0)
    logger()->info("{}/{}: {} delayed messages pending", topic_, id_.value, delays_->pending());
  return {};
}

size_t partition::expire_producers() {
  size_t n = producers_.expire(clock_.now_ms());
  probe::get().producers_expired.inc(n);
  if (n > 0) logger()->info("{}/{}: forgot {} idle producers ({} remembered)", topic_, id_.value, n, producers_.size());
  return n;
}

// ---- produce ---------------------------------------------------------------------------------------

asio::awaitable<result<produce_result>> partition::produce(std::span<std::byte> batch, wire::batch_header h,
                                                           ack_level acks, batch_delays delays) {
  auto& pr = probe::get();
  auto start = std::chrono::steady_clock::now();
  if (closing_)
    co_return fail(errc::shutting_down, "partition " + topic_ + "/" + std::to_string(id_.value) + " is closing");
  if ((h.attributes & wire::attr_control) != 0)
    co_return fail(errc::invalid_argument, "control batches are written by the broker only (attribute bit 4 is set)");
  if ((h.attributes & wire::attr_released) != 0)
    co_return fail(errc::invalid_argument,
                   "released-delay batches are written by the broker only (attribute bit 5 is set)");
  if (delays_ && delays_->index_failed()) co_return delay_index_failed();
  if (delays_ && (delays_->backlogged() || !gate_.empty())) {
    // Backpressure: the delay index's writes are too far behind; wait (in order) rather than
    // queue without bound in memory.
    pr.backpressure_waits.inc();
    co_await wait_gate();
    if (closing_)
      co_return fail(errc::shutting_down, "partition " + topic_ + "/" + std::to_string(id_.value) + " is closing");
    if (delays_->index_failed()) co_return delay_index_failed();
  }
  auto seen = producers_.check(h);
  switch (seen.v) {
    case producer_state::verdict::accept:
      break;
    case producer_state::verdict::duplicate: {
      pr.duplicates.inc();
      // A copy (`seen`), not a reference into the producer state: expiry may change it while
      // this waits. The original may still be waiting for its commit: answer once it is committed.
      offset end{seen.original.next_offset()};
      if (acks == ack_level::durable && cfg_.fsync == fsync_policy::always && pipeline_.committed() < end) {
        errc e = co_await wait_committed(end);
        if (e != errc::ok) co_return fail(e, "fsync failed on " + topic_ + "/" + std::to_string(id_.value));
      }
      co_return produce_result{offset{seen.original.base_offset}, seen.original.append_time, true};
    }
    case producer_state::verdict::too_old:
      co_return fail(errc::duplicate_sequence, "batch sequence " + std::to_string(h.base_sequence) + " of producer " +
                                                   std::to_string(h.producer_id) +
                                                   " is older than the batches this partition remembers");
    case producer_state::verdict::out_of_order:
      pr.out_of_order.inc();
      co_return fail(errc::out_of_order_sequence, "producer " + std::to_string(h.producer_id) + " sent sequence " +
                                                      std::to_string(h.base_sequence) + ", expected " +
                                                      std::to_string(seen.expected));
  }
  auto info = log_->append(batch, epoch{0});
  if (!info) {
    pr.append_errors.inc();
    logger()->error("append to {}/{} failed: {}", topic_, id_.value, info.error().to_string());
    note_append_error(info.error());
    co_return info.error();
  }
  if (disk_full_) {
    disk_full_ = false;
    refresh_health();
  }
  h.base_offset = info->base.value;
  h.append_time = info->append_time;
  producers_.remember(h);
  // Only batches a state machine needs are kept by the pipeline (a plain batch costs two checks).
  pipeline_.appended(h, std::span<const std::byte>(batch),
                     delays == batch_delays::some ? batch_hint::maybe_delays : batch_hint::none);
  series_.appended_batches.inc();
  series_.appended_records.inc(static_cast<uint64_t>(h.record_count));
  series_.appended_bytes.inc(batch.size());
  produce_result res{info->base, info->append_time, false};
  if (cfg_.fsync == fsync_policy::always) {
    maybe_start_sync();
    if (acks == ack_level::durable) {
      offset end{info->last.value + 1};
      errc e = co_await wait_committed(end);
      if (e != errc::ok)
        co_return fail(e, "fsync failed on " + topic_ + "/" + std::to_string(id_.value) +
                              ": the log refuses writes until restart");
    }
  }
  pr.produce_latency.observe_us(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count()));
  co_return res;
}

asio::awaitable<void> partition::wait_gate() {
  auto enqueue = [this](auto handler) { gate_.emplace_back(std::move(handler)); };
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(std::move(enqueue),
                                                                                  asio::use_awaitable);
}

error partition::delay_index_failed() const {
  return fail(errc::storage_error, topic_ + "/" + std::to_string(id_.value) +
                                       ": the delay index failed a write; this partition refuses produces until the "
                                       "broker restarts (the log keeps everything)");
}

// Resumes held produces in arrival order, inline (this runs on the owner shard), so each appends
// before the next: a producer's batches keep their sequence order. After a delay index failure
// every held produce resumes (and fails) at once.
void partition::open_gate() {
  if (delays_ && delays_->index_failed() && (health() & partition_health::delay_index_failed) == 0) refresh_health();
  while (!gate_.empty() && (closing_ || !delays_ || !delays_->backlogged() || delays_->index_failed())) {
    auto h = std::move(gate_.front());
    gate_.pop_front();
    std::move(h)();
  }
}

// ---- health ----------------------------------------------------------------------------------------

void partition::note_append_error(const error& e) {
  if (e.code == errc::disk_full) disk_full_ = true;
  refresh_health();
}

void partition::note_read_error(const error& e) {
  // Damage found at run time (bit rot) fences the partition from now on: show it.
  if (e.code == errc::corrupt_batch && (health() & partition_health::corrupt) == 0 && log_->corruption())
    refresh_health();
}

void partition::refresh_health() {
  uint32_t h = 0;
  std::string why;
  auto add = [&](partition_health bit, const std::string& text) {
    h |= static_cast<uint32_t>(bit);
    if (!why.empty()) why += "; ";
    why += text;
  };
  if (log_->failed()) add(partition_health::log_failed, "a write or fsync failed: writes refused until restart");
  if (auto c = log_->corruption())
    add(partition_health::corrupt, "damaged data from offset " + std::to_string(c->at.value) + " (" + c->where + ": " +
                                       c->why + "): writes and reads across it refused");
  if (disk_full_) add(partition_health::disk_full, "the disk is full");
  if (delays_ && delays_->index_failed())
    add(partition_health::delay_index_failed, "the delay index failed a write: produces refused until restart");
  uint32_t before = health_.exchange(h, std::memory_order_acq_rel);
  {
    std::lock_guard lk(health_mu_);
    health_detail_ = std::move(why);
  }
  if (before != h) series_.set_health(h);
}

std::string partition::health_names(uint32_t h) {
  static constexpr std::pair<partition_health, const char*> names[] = {
      {partition_health::corrupt, "corrupt"},
      {partition_health::log_failed, "log_failed"},
      {partition_health::disk_full, "disk_full"},
      {partition_health::delay_index_failed, "delay_index_failed"}};
  std::string out;
  for (auto [bit, name] : names)
    if ((h & bit) != 0) out += (out.empty() ? "" : ",") + std::string(name);
  return out.empty() ? "ok" : out;
}

std::string partition::health_detail() const {
  std::lock_guard lk(health_mu_);
  return health_detail_;
}

offset partition::readable_end() const {
  auto c = log_->corruption();
  return c ? std::min(c->at, log_->next_offset()) : log_->next_offset();
}

// ---- group commit and the commit index --------------------------------------------------------------

void partition::maybe_start_sync() {
  if (sync_running_ || log_->failed() || log_->durable_offset() >= log_->next_offset()) return;
  sync_running_ = true;
  auto ps = log_->begin_sync();
  auto self = shared_from_this();
  // fdatasync runs on the disk pool; one sync covers every batch appended before begin_sync().
  asio::post(rt_.disk(), [self, ps = std::move(ps)]() mutable {
    auto t0 = std::chrono::steady_clock::now();
    auto r = log::partition_log::run_sync(ps);
    probe::get().fsync_latency.observe_us(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()));
    asio::post(self->rt_.executor(self->owner_),
               [self, ps = std::move(ps), r = std::move(r)] { self->sync_done(ps, r); });
  });
}

void partition::sync_done(const log::pending_sync& s, const result<void>& r) {
  sync_running_ = false;
  log_->end_sync(s, r);
  probe::get().fsyncs.inc();
  if (!r) {
    logger()->error("fsync of {}/{} failed, refusing further writes until restart: {}", topic_, id_.value,
                    r.error().to_string());
    refresh_health();
  }
  // Without replication the commit index is what is durable here: the one place it moves.
  offset durable = log_->durable_offset();
  if (log_->failed()) {
    // Not durable and never will be (the log refuses writes after a failed fsync): these batches
    // are not in the log a restart recovers, so no state machine may take them.
    pipeline_.discard_from(durable);
  }
  pipeline_.commit(durable);
  run_commit_waiters(false);
  maybe_start_sync();
}

void partition::on_high_watermark(offset to) {
  hwm_.store(to.value, std::memory_order_release);
  subs_.wake();
  if (data_waiters_.empty()) return;
  std::vector<std::function<void()>> woken;
  for (auto it = data_waiters_.begin(); it != data_waiters_.end();) {
    if (it->second.from < to) {
      woken.push_back(std::move(it->second.wake));
      it = data_waiters_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& w : woken) w();
}

void partition::run_commit_waiters(bool closed) {
  offset committed = pipeline_.committed();
  bool failed = log_->failed();
  auto ex = rt_.executor(owner_);
  while (!commit_waiters_.empty() && (commit_waiters_.front().upto <= committed || failed || closed)) {
    auto w = std::move(commit_waiters_.front());
    commit_waiters_.pop_front();
    errc e = w.upto <= committed ? errc::ok : failed ? errc::storage_error : errc::shutting_down;
    // Waiters resume from the queue, not from inside this loop (they may append again).
    asio::post(ex, [h = std::move(w.handler), e]() mutable { std::move(h)(e); });
  }
}

asio::awaitable<errc> partition::wait_committed(offset upto) {
  if (pipeline_.committed() >= upto) co_return errc::ok;
  if (log_->failed()) co_return errc::storage_error;
  auto enqueue = [this, upto](auto handler) { commit_waiters_.push_back(commit_waiter{upto, std::move(handler)}); };
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(errc)>(std::move(enqueue),
                                                                                      asio::use_awaitable);
}

void partition::wait_commit(offset upto, std::function<void(result<void>)> done) {
  auto finish = [this, done = std::move(done)](errc e) {
    if (e == errc::ok) return done({});
    done(fail(e, "control batch on " + topic_ + "/" + std::to_string(id_.value) + " is not durable"));
  };
  if (pipeline_.committed() >= upto) return post([finish] { finish(errc::ok); });
  if (log_->failed()) return post([finish] { finish(errc::storage_error); });
  commit_waiters_.push_back(commit_waiter{upto, asio::any_completion_handler<void(errc)>(std::move(finish))});
}

result<log::append_info> partition::append_own(std::vector<std::byte> batch) {
  auto info = log_->append(batch, epoch{0});
  if (!info) {
    note_append_error(info.error());
    return info.error();
  }
  auto h = wire::parse_batch_header(batch);
  FERRY_ASSERT(h, "a broker-built batch parses after its append");
  pipeline_.appended(*h, std::move(batch), batch_hint::none);
  maybe_start_sync();
  return info;
}

void partition::start_interval_sync() {
  interval_timer_ = std::make_unique<asio::steady_timer>(rt_.executor(owner_));
  auto self = shared_from_this();
  auto loop = [](std::shared_ptr<partition> p) -> asio::awaitable<void> {
    while (!p->closing_) {
      p->interval_timer_->expires_after(std::chrono::milliseconds(p->cfg_.fsync_interval_ms));
      co_await p->interval_timer_->async_wait(boost::asio::as_tuple(asio::use_awaitable));
      if (p->closing_) break;
      p->maybe_start_sync();
    }
  };
  runtime::spawn_logged(rt_.executor(owner_), loop(self), "interval fsync of " + topic_);
}

// ---- reads -----------------------------------------------------------------------------------------

result<uint64_t> partition::on_data(offset from, std::function<void()> wake) {
  if (from < hwm() || closing_) {
    wake();
    return uint64_t{0};
  }
  if (data_waiters_.size() >= max_data_waiters)
    return fail(errc::resource_exhausted, "too many long-poll fetches wait on " + topic_ + "/" +
                                              std::to_string(id_.value) + " (limit " +
                                              std::to_string(max_data_waiters) + ")");
  uint64_t id = next_waiter_++;
  data_waiters_.emplace(id, data_waiter{from, std::move(wake)});
  return id;
}

void partition::cancel_wait(uint64_t id) { data_waiters_.erase(id); }

result<void> partition::read(offset from, size_t max_bytes, std::vector<std::byte>& out) {
  auto r = log_->read(from, max_bytes, hwm(), out);
  if (!r) note_read_error(r.error());
  return r;
}

result<void> partition::read(int64_t from, size_t max_bytes, std::vector<std::byte>& out) {
  return read(offset{from}, max_bytes, out);
}

result<offset> partition::offset_for_timestamp(int64_t ts) { return log_->offset_for_timestamp(ts); }

partition_stats partition::stats() const {
  return partition_stats{log_->start_offset(), hwm(), log_->next_offset(), log_->size_bytes(), log_->segment_count()};
}

int64_t partition::log_start() const { return log_->start_offset().value; }

void partition::post(std::function<void()> fn) { asio::post(rt_.executor(owner_), std::move(fn)); }

int64_t partition::messages_from(offset from) {
  offset end = hwm();
  if (from >= end) return 0;
  int64_t control = 0;
  (void)log_->for_each_batch_header(from, [&](const wire::batch_header& h) {
    if (!subscription::is_control(h) || h.base_offset >= end.value) return;
    control += std::min(h.next_offset(), end.value) - std::max(h.base_offset, from.value);
  });
  return std::max<int64_t>(0, end.value - from.value - control);
}

int64_t partition::append_time_at(offset o) {
  std::vector<std::byte> buf;
  if (o < log_->start_offset() || o >= hwm()) return -1;
  if (!log_->read(o, 1, hwm(), buf)) return -1;
  auto h = wire::parse_batch_header(buf);
  return h ? h->append_time : -1;
}

// ---- close -----------------------------------------------------------------------------------------

asio::awaitable<void> partition::close() {
  closing_ = true;
  open_gate();
  if (interval_timer_) interval_timer_->cancel();
  // Let the sync chain finish: it covers everything appended so far.
  if (!log_->failed() && log_->durable_offset() < log_->next_offset()) {
    maybe_start_sync();
    (void)co_await wait_committed(log_->next_offset());
  }
  while (sync_running_) {
    // A sync can still be running after a failure; wait for its completion to be processed.
    asio::steady_timer t(rt_.executor(owner_), std::chrono::milliseconds(1));
    co_await t.async_wait(asio::use_awaitable);
  }
  // Every control batch is committed and applied now: the checkpoints cover all of it.
  if (checkpoint_timer_) checkpoint_timer_->cancel();
  while (subs_.saving()) {
    asio::steady_timer t(rt_.executor(owner_), std::chrono::milliseconds(1));
    co_await t.async_wait(asio::use_awaitable);
  }
  co_await save_checkpoints(true);
  services_.stop();
  if (delays_) co_await delays_->close();
  run_commit_waiters(true);  // whatever still waits will not commit now
  timers_->stop();
  auto r = log_->close();
  if (!r) logger()->error("closing {}/{}: {}", topic_, id_.value, r.error().to_string());
  auto waiters = std::move(data_waiters_);
  data_waiters_.clear();
  for (auto& [id, w] : waiters) w.wake();
}

// ---- subscriptions ---------------------------------------------------------------------------------

result<void> partition::add_subscription(const meta::subscription_record& rec, saved_subscription saved,
                                         subscription_origin origin) {
  int64_t start = static_cast<size_t>(id_.value) < rec.start_offsets.size() ? rec.start_offsets[id_.value] : 0;
  start = std::clamp(start, log_->start_offset().value, log_->next_offset().value);
  bool restored = saved.checkpoint.has_value();
  auto from = subs_.add(rec, start, std::move(saved), readable_end());
  if (!from) return from.error();
  if (!*from) return {};  // here already
  // A new subscription has no control records of its own yet; an existing one applies what came
  // after its checkpoint (acks that were committed but not yet saved), or after its start offset
  // if no checkpoint was saved before a crash: the pipeline's apply path, from the log.
  if (origin == subscription_origin::existing) {
    auto* m = subs_.replay_machine(rec.id);
    if (auto r = pipeline_.replay(*log_, *m, **from, std::min(pipeline_.committed(), readable_end())); !r)
      return fail(r.error().code, topic_ + "/" + std::to_string(id_.value) + " subscription " + rec.name +
                                      ": replaying control batches from " + std::to_string((*from)->value) + ": " +
                                      r.error().message);
  }
  subs_.expire_below(log_->start_offset().value);
  logger()->info("{}/{} subscription {}: {}", topic_, id_.value, rec.name, restored ? "from its checkpoint" : "new");
  return {};
}

void partition::remove_subscription(uint64_t sub_id) { subs_.remove(sub_id); }

subscription::dispatcher* partition::find_subscription(uint64_t sub_id) { return subs_.engine(sub_id); }

void partition::seek_subscription(uint64_t sub_id, int64_t new_cursor, std::function<void(result<void>)> done) {
  subscription::control_op op;
  op.type = subscription::control_type::seek;
  op.sub_id = sub_id;
  op.offset = new_cursor;
  std::vector<subscription::control_op> ops{std::move(op)};
  append_control(std::move(ops), std::move(done));
}

void partition::record_deliveries(uint64_t sub_id, std::span<const int64_t> offsets, std::function<void()> journaled) {
  subs_.record_deliveries(sub_id, offsets, std::move(journaled));
}

void partition::append_control(std::vector<subscription::control_op> ops, std::function<void(result<void>)> done) {
  if (closing_) {
    post([done = std::move(done)] { done(fail(errc::shutting_down, "the partition is closing")); });
    return;
  }
  auto info = append_own(subscription::encode_control_batch(ops, clock_.now_ms()));
  if (!info) {
    logger()->error("appending a control batch to {}/{} failed: {}", topic_, id_.value, info.error().to_string());
    post([done = std::move(done), e = info.error()] { done(e); });
    return;
  }
  probe::get().control_batches.inc();
  // Answered once committed and applied (acks are answered once durable, whatever the fsync policy).
  wait_commit(offset{info->last.value + 1}, std::move(done));
}

void partition::dead_letter(subscription::dead_letter_request r, std::function<void(result<void>)> done) {
  if (cfg_.dead_letters == nullptr) {
    post([done = std::move(done)] { done(fail(errc::unknown, "no dead-letter sink configured")); });
    return;
  }
  std::weak_ptr<partition> weak = weak_from_this();
  auto ex = rt_.executor(owner_);
  cfg_.dead_letters->write_dead_letter(std::move(r), [weak, ex, done = std::move(done)](result<void> res) mutable {
    asio::post(ex, [weak, done = std::move(done), res = std::move(res)]() mutable {
      if (weak.lock()) done(std::move(res));
    });
  });
}

offset partition::low_water_mark() const {
  if (subs_.size() == 0) return log_->start_offset();
  int64_t lwm = subs_.low_water_mark();
  if (delays_) lwm = std::min(lwm, delays_->synced_upto());
  return offset{std::max(lwm, log_->start_offset().value)};
}

result<log::retention_result> partition::apply_retention_with_subscriptions() {
  // Whatever the time and size limits say, keep what a restart must read again: the log after the
  // subscriptions' saved checkpoints and after the delay index's synced state.
  int64_t keep = subs_.keep_from();
  if (delays_) keep = std::min(keep, delays_->synced_upto());
  result<log::retention_result> r = log_->detach_for_retention(low_water_mark(), offset{keep});
  subs_.expire_below(log_->start_offset().value);
  return r;
}

void partition::start_checkpoints() {
  checkpoint_timer_ = std::make_unique<asio::steady_timer>(rt_.executor(owner_));
  auto loop = [](std::shared_ptr<partition> p) -> asio::awaitable<void> {
    uint64_t round = 0;
    while (!p->closing_) {
      p->checkpoint_timer_->expires_after(std::chrono::milliseconds(p->cfg_.checkpoint_interval_ms));
      co_await p->checkpoint_timer_->async_wait(boost::asio::as_tuple(asio::use_awaitable));
      if (p->closing_) break;
      // Every tenth round also re-saves clean subscriptions whose checkpoint lags the log, so an
      // idle subscription's old checkpoint does not hold back retention.
      co_await p->save_checkpoints(++round % 10 == 0);
    }
  };
  runtime::spawn_logged(rt_.executor(owner_), loop(shared_from_this()), "checkpoints of " + topic_);
}

asio::awaitable<void> partition::save_checkpoints(bool all) {
  // Every control batch below the commit index is applied: that is the checkpoints' offset.
  co_await subs_.save_checkpoints(all, pipeline_.committed());
}

// ---- delayed messages ------------------------------------------------------------------------------

result<void> partition::append_release(std::vector<std::byte> batch) {
  if (closing_) return fail(errc::shutting_down, "partition is closing");
  auto info = append_own(std::move(batch));
  if (!info) return info.error();
  return {};
}

void partition::cancel(int64_t off, std::function<void(result<cancel_result>)> done) {
  if (!delay_machine_) {
    post([done = std::move(done), id = message_id(off)] {
      done(cancel_result{cancel_outcome::unknown, "delayed delivery is not enabled on this broker (" + id + ")"});
    });
    return;
  }
  delay_machine_->cancel(*this, off, std::move(done));
}

std::string partition::message_id(int64_t off) const {
  return topic_ + "/" + std::to_string(id_.value) + "/" + std::to_string(off);
}

result<void> partition::read_batch(int64_t off, std::vector<std::byte>& out) {
  return log_->read(offset{off}, 1, hwm(), out);
}

void partition::append_cancel(int64_t off, int64_t due, std::function<void(result<void>)> done) {
  subscription::control_op op;
  op.type = subscription::control_type::cancel;
  op.offset = off;
  op.due = due;
  std::vector<subscription::control_op> ops{std::move(op)};
  append_control(std::move(ops), std::move(done));
}

}  // namespace ferry::partition
