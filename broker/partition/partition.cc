#include "broker/partition/partition.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
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
std::shared_ptr<spdlog::logger> logger() {
  static auto l = runtime::named_logger("partition");
  return l;
}
}  // namespace

partition::partition(std::string topic, partition_id id, partition_config cfg, runtime::shard_set& rt, shard_id owner,
                     std::unique_ptr<log::partition_log> log)
    : topic_(std::move(topic)),
      id_(id),
      cfg_(std::move(cfg)),
      rt_(rt),
      owner_(owner),
      log_(std::move(log)),
      producers_(cfg_.producers) {
  hwm_.store(log_->durable_offset().value, std::memory_order_release);
  // One timing wheel per partition, shared by its subscriptions (leases, backoffs).
  timers_ = std::make_unique<scheduler::wheel_driver>(rt_.executor(owner_), clock_, [](scheduler::timer_entry& e) {
    static_cast<subscription::timed_entry&>(e).on_fire();
  });
}

partition::~partition() {
  // Dispatchers hold timer entries on timers_: they go first.
  for (auto& [id, s] : subs_) s.d->shutdown();
  subs_.clear();
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
  logger()->info("opened {}/{}: offsets [{}, {}), {} segments, {} producers", p->topic_, id.value,
                 p->log_->start_offset().value, p->log_->next_offset().value, p->log_->segment_count(),
                 p->producers_.size());
  if (p->cfg_.delays != nullptr) {
    std::string prefix = p->topic_ + "/" + std::to_string(id.value) + "/";
    partition* raw = p.get();
    p->delays_ = std::make_unique<delay_scheduler>(
        *p->cfg_.delays, delay::partition_key{p->cfg_.topic_id, id.value}, prefix, rt, owner, broker_clock(),
        p->cfg_.delay, [raw](std::vector<std::byte> batch, std::vector<delay_key> released) {
          return raw->append_release(std::move(batch), std::move(released));
        });
    p->delays_->set_drained_callback([raw] { raw->open_gate(); });
    p->delays_->set_release_barrier([raw] {
      int64_t oldest = INT64_MAX;  // (the minimum, not the first: the clock may have stepped back)
      for (auto& ev : raw->delay_events_)
        if (!ev.inserts.empty()) oldest = std::min(oldest, ev.append_time);
      return oldest;
    });
    auto applied = p->delays_->open();
    if (!applied) return applied.error();
    if (auto r = p->replay_delays(offset{*applied}); !r) return r.error();
    if (auto r = p->delays_->finish_replay(p->log_->next_offset().value); !r) return r.error();
    if (p->delays_->pending() > 0)
      logger()->info("{}/{}: {} delayed messages pending", p->topic_, id.value, p->delays_->pending());
  }
  if (p->cfg_.fsync == fsync_policy::interval) p->start_interval_sync();
  if (p->cfg_.store != nullptr) p->start_checkpoints();
  return p;
}

size_t partition::expire_producers() {
  size_t n = producers_.expire(clock_.now_ms());
  probe::get().producers_expired.inc(n);
  if (n > 0) logger()->info("{}/{}: forgot {} idle producers ({} remembered)", topic_, id_.value, n, producers_.size());
  return n;
}

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
      // this waits. The original may still be waiting for its fsync: answer once it is durable.
      offset end{seen.original.next_offset()};
      if (acks == ack_level::durable && cfg_.fsync == fsync_policy::always && log_->durable_offset() < end) {
        errc e = co_await wait_durable(end);
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
  if (delays == batch_delays::some && delays_) {
    // The due times are known now (a relative delay counts from the append time just stamped);
    // the delay index takes them once the batch is durable.
    auto msgs = delayed_records(batch);
    if (!msgs.empty()) {
      pr.delayed_scheduled.inc(msgs.size());
      delay_events_.push_back(delay_event{info->base, info->last, info->append_time, std::move(msgs), {}});
    }
  }
  pr.appended_batches.inc();
  pr.appended_records.inc(static_cast<uint64_t>(h.record_count));
  pr.appended_bytes.inc(batch.size());
  produce_result res{info->base, info->append_time, false};
  if (cfg_.fsync == fsync_policy::interval) {
    advance_hwm(log_->next_offset());
  } else {
    maybe_start_sync();
    if (acks == ack_level::durable) {
      offset end{info->last.value + 1};
      errc e = co_await wait_durable(end);
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
void partition::note_append_error(const error& e) {
  if (e.code == errc::disk_full) disk_full_ = true;
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
  if (disk_full_) add(partition_health::disk_full, "the disk is full");
  if (delays_ && delays_->index_failed())
    add(partition_health::delay_index_failed, "the delay index failed a write: produces refused until restart");
  uint32_t before = health_.exchange(h, std::memory_order_acq_rel);
  {
    std::lock_guard lk(health_mu_);
    health_detail_ = std::move(why);
  }
  if (before != h) probe::get().set_health(topic_, id_.value, h);
}

std::string partition::health_detail() const {
  std::lock_guard lk(health_mu_);
  return health_detail_;
}

void partition::open_gate() {
  if (delays_ && delays_->index_failed() && (health() & partition_health::delay_index_failed) == 0) refresh_health();
  while (!gate_.empty() && (closing_ || !delays_ || !delays_->backlogged() || delays_->index_failed())) {
    auto h = std::move(gate_.front());
    gate_.pop_front();
    std::move(h)();
  }
}

asio::awaitable<errc> partition::wait_durable(offset upto) {
  if (log_->durable_offset() >= upto) co_return errc::ok;
  if (log_->failed()) co_return errc::storage_error;
  auto enqueue = [this, upto](auto handler) {
    durability_waiters_.push_back(durability_waiter{upto, std::move(handler)});
  };
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(errc)>(std::move(enqueue),
                                                                                      asio::use_awaitable);
}

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
  offset durable = log_->durable_offset();
  apply_pending_controls(durable, log_->failed());
  if (delays_) delays_->set_applied(durable.value);
  auto ex = rt_.executor(owner_);
  while (!durability_waiters_.empty() && (durability_waiters_.front().upto <= durable || log_->failed())) {
    auto w = std::move(durability_waiters_.front());
    durability_waiters_.pop_front();
    errc e = w.upto <= durable ? errc::ok : errc::storage_error;
    // Waiters are produce() coroutines, which run on this shard: resume them from the queue, not
    // from inside this loop.
    asio::post(ex, [h = std::move(w.handler), e]() mutable { std::move(h)(e); });
  }
  if (cfg_.fsync == fsync_policy::always) advance_hwm(durable);
  maybe_start_sync();
}

void partition::advance_hwm(offset to) {
  if (to.value <= hwm_.load(std::memory_order_relaxed)) return;
  hwm_.store(to.value, std::memory_order_release);
  for (auto& [id, sub] : subs_) sub.d->wake();
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
  return log_->read(from, max_bytes, hwm(), out);
}

result<offset> partition::offset_for_timestamp(int64_t ts) { return log_->offset_for_timestamp(ts); }

partition_stats partition::stats() const {
  return partition_stats{log_->start_offset(), hwm(), log_->next_offset(), log_->size_bytes(), log_->segment_count()};
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

asio::awaitable<void> partition::close() {
  closing_ = true;
  open_gate();
  if (interval_timer_) interval_timer_->cancel();
  // Let the sync chain finish: it covers everything appended so far.
  if (!log_->failed() && log_->durable_offset() < log_->next_offset()) {
    maybe_start_sync();
    (void)co_await wait_durable(log_->next_offset());
  }
  while (sync_running_) {
    // A sync can still be running after a failure; wait for its completion to be processed.
    asio::steady_timer t(rt_.executor(owner_), std::chrono::milliseconds(1));
    co_await t.async_wait(asio::use_awaitable);
  }
  // Every control batch is durable and applied now: the checkpoints cover all of it.
  if (checkpoint_timer_) checkpoint_timer_->cancel();
  while (checkpoint_running_) {
    asio::steady_timer t(rt_.executor(owner_), std::chrono::milliseconds(1));
    co_await t.async_wait(asio::use_awaitable);
  }
  co_await save_checkpoints(true);
  if (delays_) co_await delays_->close();
  for (auto& [id, sub] : subs_) sub.d->shutdown();
  apply_pending_controls(log_->durable_offset(), true);
  timers_->stop();
  auto r = log_->close();
  if (!r) logger()->error("closing {}/{}: {}", topic_, id_.value, r.error().to_string());
  auto waiters = std::move(data_waiters_);
  data_waiters_.clear();
  for (auto& [id, w] : waiters) w.wake();
}

// ---- subscriptions -------------------------------------------------------------------------------

int64_t partition::log_start() const { return log_->start_offset().value; }

result<void> partition::read(int64_t from, size_t max_bytes, std::vector<std::byte>& out) {
  return log_->read(offset{from}, max_bytes, hwm(), out);
}

void partition::post(std::function<void()> fn) { asio::post(rt_.executor(owner_), std::move(fn)); }

namespace {
std::string journal_seq(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(seq));
  return buf;
}
}  // namespace

void partition::record_deliveries(uint64_t sub_id, std::span<const int64_t> offsets) {
  if (cfg_.store == nullptr || offsets.empty()) return;
  auto it = subs_.find(sub_id);
  if (it == subs_.end()) return;
  // Unsynced, on the state thread (never a RocksDB write on the shard): it runs before any later
  // checkpoint write of this partition (the same FIFO thread), so a checkpoint erases only journal
  // records already written. The deliveries go out meanwhile: a kill -9 within the microseconds
  // before the write lands can undercount this round by one (documented in schema/control.md).
  auto key = it->second.journal_key + journal_seq(it->second.journal_next);
  ++it->second.journal_next;
  auto record = subscription::encode_delivery_record(offsets);
  auto* store = cfg_.store;
  auto write = [store, key = std::move(key), record = std::move(record), topic = topic_, id = id_.value] {
    auto r = store->put_journal(key, record);
    if (!r) {
      probe::get().journal_errors.inc();
      logger()->warn("{}/{}: delivery journal write failed (delivery counts may be low after a crash): {}", topic, id,
                     r.error().to_string());
      return;
    }
    probe::get().journal_records.inc();
  };
  asio::post(rt_.state(), std::move(write));
}

void partition::append_control(std::vector<subscription::control_op> ops, std::function<void(result<void>)> done) {
  if (closing_) {
    post([done = std::move(done)] { done(fail(errc::shutting_down, "the partition is closing")); });
    return;
  }
  auto batch = subscription::encode_control_batch(ops, clock_.now_ms());
  auto info = log_->append(batch, epoch{0});
  if (!info) {
    logger()->error("appending a control batch to {}/{} failed: {}", topic_, id_.value, info.error().to_string());
    note_append_error(info.error());
    post([done = std::move(done), e = info.error()] { done(e); });
    return;
  }
  probe::get().control_batches.inc();
  pending_controls_.push_back(pending_control{info->base, info->last, std::move(ops), std::move(done)});
  if (cfg_.fsync == fsync_policy::interval) advance_hwm(log_->next_offset());
  // Acks are answered once durable, whatever the topic's fsync policy.
  maybe_start_sync();
}

// Durable control batches and delay events, merged in log order: a cancel must meet the insert
// it cancels already applied, and a release after it.
void partition::apply_pending_controls(offset durable, bool failed) {
  for (;;) {
    bool ctl = !pending_controls_.empty() && pending_controls_.front().last < durable;
    bool dly = !delay_events_.empty() && delay_events_.front().last < durable;
    if (dly && (!ctl || delay_events_.front().base < pending_controls_.front().base)) {
      auto ev = std::move(delay_events_.front());
      delay_events_.pop_front();
      apply_delay_event(ev);
      continue;
    }
    if (!ctl) break;
    auto& pc = pending_controls_.front();
    for (auto& [id, sub] : subs_) sub.d->apply_control(pc.base.value, pc.last.value, pc.ops);
    for (auto& op : pc.ops)
      if (op.type == subscription::control_type::cancel && delays_)
        cancel_outcomes_[op.offset] = delays_->on_cancelled(pc.base.value, op.offset, op.due);
    auto done = std::move(pc.done);
    pending_controls_.pop_front();
    done({});
  }
  if (failed || closing_) {
    // Not durable and never will be (the log refuses writes after a failed fsync): these batches
    // are not in the log a restart recovers, so the delay index must not take them either.
    if (failed) delay_events_.clear();
  }
  while (!pending_controls_.empty()) {
    auto& pc = pending_controls_.front();
    if (failed || closing_) {
      auto done = std::move(pc.done);
      pending_controls_.pop_front();
      done(fail(failed ? errc::storage_error : errc::shutting_down,
                "control batch on " + topic_ + "/" + std::to_string(id_.value) + " is not durable"));
    } else {
      break;
    }
  }
}

offset partition::applied_upto() const { return pending_controls_.empty() ? hwm() : pending_controls_.front().base; }

result<void> partition::replay_controls(sub_slot& s, offset from) {
  std::vector<std::pair<offset, offset>> controls;
  if (from < log_->start_offset()) from = log_->start_offset();
  if (from >= log_->next_offset()) return {};
  auto scan = log_->for_each_batch_header(from, [&](const wire::batch_header& h) {
    if (subscription::is_control(h) && h.base_offset >= from.value)
      controls.emplace_back(offset{h.base_offset}, offset{h.last_offset()});
  });
  if (!scan) return scan.error();
  std::vector<std::byte> buf;
  for (auto [base, last] : controls) {
    buf.clear();
    if (auto r = log_->read(base, 1, log_->next_offset(), buf); !r) return r.error();
    auto h = wire::parse_batch_header(buf);
    if (!h) return h.error();
    std::vector<subscription::control_op> ops;
    auto bytes = std::span<const std::byte>(buf).first(static_cast<size_t>(h->batch_length));
    auto dec =
        subscription::decode_control_batch(bytes, [&](const subscription::control_op& op) { ops.push_back(op); });
    if (!dec)
      return fail(dec.error().code, topic_ + "/" + std::to_string(id_.value) + " control batch at " +
                                        std::to_string(base.value) + ": " + dec.error().message);
    s.d->apply_control(base.value, last.value, ops);
  }
  if (!controls.empty())
    logger()->info("{}/{} subscription {}: applied {} control batches from offset {}", topic_, id_.value,
                   s.d->record().name, controls.size(), from.value);
  return {};
}

result<void> partition::add_subscription(const meta::subscription_record& rec, saved_subscription saved,
                                         subscription_origin origin) {
  auto& checkpoint = saved.checkpoint;
  if (subs_.contains(rec.id)) return {};
  int64_t start = static_cast<size_t>(id_.value) < rec.start_offsets.size() ? rec.start_offsets[id_.value] : 0;
  start = std::clamp(start, log_->start_offset().value, log_->next_offset().value);
  subscription::partition_port& port = *this;
  auto d = std::make_unique<subscription::dispatcher>(port, rec, start, cfg_.window);
  offset replay_from{start};
  bool restored = false;
  if (checkpoint) {
    auto a = d->restore(*checkpoint);
    if (!a) return a.error();
    replay_from = offset{*a};
    restored = true;
  }
  sub_slot slot{std::move(d), replay_from, 0, journal_prefix(rec.id)};
  // Deliveries after the checkpoint: their counts (the journal is newer than the checkpoint, and
  // older than every control batch replayed below, which only removes counts).
  const std::string& jp = slot.journal_key;
  for (auto& [k, v] : saved.journal) {
    if (auto r = slot.d->restore_deliveries(v); !r) return r.error();
    if (k.size() > jp.size() && k.compare(0, jp.size(), jp) == 0)
      slot.journal_next = std::max<uint64_t>(slot.journal_next, std::strtoull(k.c_str() + jp.size(), nullptr, 10) + 1);
  }
  if (!saved.journal.empty())
    logger()->info("{}/{} subscription {}: {} delivery journal records after its checkpoint", topic_, id_.value,
                   rec.name, saved.journal.size());
  // A new subscription has no control records of its own yet; an existing one applies what came
  // after its checkpoint (acks that were durable but not yet saved), or after its start offset if
  // no checkpoint was saved before a crash.
  if (origin == subscription_origin::existing) {
    if (auto r = replay_controls(slot, replay_from); !r) return r.error();
  }
  // A log shorter than the saved state (its tail was lost) must not hide the new messages that
  // will take those offsets again.
  if (slot.d->clamp_to_log_end(log_->next_offset().value))
    slot.saved_applied = std::min(slot.saved_applied, log_->next_offset());
  slot.d->expire_below(log_->start_offset().value);
  logger()->info("{}/{} subscription {}: cursor {} ({})", topic_, id_.value, rec.name, slot.d->cursor(),
                 restored ? "from its checkpoint" : "new");
  subs_.emplace(rec.id, std::move(slot));
  return {};
}

void partition::remove_subscription(uint64_t sub_id) {
  auto it = subs_.find(sub_id);
  if (it == subs_.end()) return;
  it->second.d->shutdown();
  subs_.erase(it);
}

subscription::dispatcher* partition::find_subscription(uint64_t sub_id) {
  auto it = subs_.find(sub_id);
  return it == subs_.end() ? nullptr : it->second.d.get();
}

void partition::seek_subscription(uint64_t sub_id, int64_t new_cursor, std::function<void(result<void>)> done) {
  subscription::control_op op;
  op.type = subscription::control_type::seek;
  op.sub_id = sub_id;
  op.offset = new_cursor;
  std::vector<subscription::control_op> ops{std::move(op)};
  append_control(std::move(ops), std::move(done));
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
  if (subs_.empty()) return log_->start_offset();
  int64_t lwm = INT64_MAX;
  for (auto& [id, s] : subs_) lwm = std::min({lwm, s.d->cursor(), s.saved_applied.value});
  if (delays_) lwm = std::min(lwm, delays_->synced_upto());
  return offset{std::max(lwm, log_->start_offset().value)};
}

result<log::retention_result> partition::apply_retention_with_subscriptions() {
  // Whatever the time and size limits say, keep what a restart must read again: the log after the
  // subscriptions' saved checkpoints and after the delay index's synced state.
  int64_t keep = INT64_MAX;
  for (auto& [id, s] : subs_) keep = std::min(keep, s.saved_applied.value);
  if (delays_) keep = std::min(keep, delays_->synced_upto());
  result<log::retention_result> r = log_->detach_for_retention(low_water_mark(), offset{keep});
  int64_t start = log_->start_offset().value;
  for (auto& [id, s] : subs_)
    if (s.d->cursor() < start) s.d->expire_below(start);
  return r;
}

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

// ---- delayed messages ------------------------------------------------------------------------------

std::vector<delay::pending_message> partition::delayed_records(std::span<const std::byte> batch) {
  std::vector<delay::pending_message> out;
  auto h = wire::parse_batch_header(batch);
  if (!h || (h->attributes & (wire::attr_control | wire::attr_released)) != 0) return out;
  int64_t append_time = h->append_time;
  (void)wire::for_each_record(batch, [&](const wire::record_view& rv) {
    if (!rv.deliver_at || *rv.deliver_at <= append_time) return;  // due at once: an ordinary message
    delay::pending_message m;
    m.due = *rv.deliver_at;
    m.offset = rv.offset;
    m.append_time = append_time;
    m.timestamp = rv.timestamp;
    if (rv.key) m.key = std::string(*rv.key);
    if (rv.value) m.value = std::string(*rv.value);
    for (auto& hv : rv.headers)
      m.headers.emplace_back(std::string(hv.key), hv.value ? std::optional<std::string>(*hv.value) : std::nullopt);
    out.push_back(std::move(m));
  });
  return out;
}

void partition::apply_delay_event(delay_event& ev) {
  if (!delays_) return;
  if (!ev.inserts.empty()) delays_->on_inserted(ev.base.value, std::move(ev.inserts));
  if (!ev.released.empty()) delays_->on_released(ev.base.value, ev.released);
}

result<void> partition::append_release(std::vector<std::byte> batch, std::vector<delay_key> released) {
  if (closing_) return fail(errc::shutting_down, "partition is closing");
  auto info = log_->append(batch, epoch{0});
  if (!info) return info.error();
  delay_events_.push_back(delay_event{info->base, info->last, info->append_time, {}, std::move(released)});
  if (cfg_.fsync == fsync_policy::interval) advance_hwm(log_->next_offset());
  maybe_start_sync();
  return {};
}

result<void> partition::replay_delays(offset from) {
  if (from < log_->start_offset()) from = log_->start_offset();
  offset end = log_->next_offset();
  size_t inserted = 0, released = 0, cancels = 0;
  std::vector<std::byte> buf;
  offset pos = from;
  while (pos < end) {
    buf.clear();
    if (auto r = log_->read(pos, 1u << 20, end, buf); !r) return r.error();
    if (buf.empty()) break;
    size_t at = 0;
    offset next = pos;
    while (at + wire::batch_header_size <= buf.size()) {
      auto h = wire::parse_batch_header(std::span<const std::byte>(buf).subspan(at));
      if (!h || at + static_cast<size_t>(h->batch_length) > buf.size()) break;
      auto bytes = std::span<const std::byte>(buf).subspan(at, static_cast<size_t>(h->batch_length));
      at += static_cast<size_t>(h->batch_length);
      next = offset{h->next_offset()};
      if (h->base_offset < from.value) continue;
      if (subscription::is_control(*h)) {
        auto dec = subscription::decode_control_batch(bytes, [&](const subscription::control_op& op) {
          if (op.type != subscription::control_type::cancel) return;
          delays_->on_cancelled(h->base_offset, op.offset, op.due);
          ++cancels;
        });
        if (!dec) return dec.error();
      } else if (h->attributes & wire::attr_released) {
        std::vector<delay_key> keys;
        (void)wire::for_each_record(bytes, [&](const wire::record_view& rv) {
          for (auto& hv : rv.headers) {
            if (hv.key != "ferry-delayed-id" || !hv.value) continue;
            auto slash = hv.value->rfind('/');
            int64_t off = -1;
            auto digits = hv.value->substr(slash + 1);
            std::from_chars(digits.data(), digits.data() + digits.size(), off);
            if (off >= 0) keys.emplace_back(rv.deliver_at.value_or(0), off);
          }
        });
        released += keys.size();
        delays_->on_released(h->base_offset, keys);
      } else {
        auto msgs = delayed_records(bytes);
        inserted += msgs.size();
        if (!msgs.empty()) delays_->on_inserted(h->base_offset, std::move(msgs));
      }
    }
    if (next <= pos) break;
    pos = next;
  }
  if (inserted + released + cancels > 0)
    logger()->info("{}/{}: delay index caught up from offset {}: {} delayed, {} released, {} cancelled", topic_,
                   id_.value, from.value, inserted, released, cancels);
  return {};
}

void partition::cancel(int64_t off, std::function<void(result<cancel_result>)> done) {
  auto answer = [&](cancel_outcome o, std::string why) {
    post([done, o, why = std::move(why)] { done(cancel_result{o, why}); });
  };
  std::string id = topic_ + "/" + std::to_string(id_.value) + "/" + std::to_string(off);
  if (!delays_) return answer(cancel_outcome::unknown, "delayed delivery is not enabled on this broker");
  if (off < 0 || off >= hwm().value) return answer(cancel_outcome::unknown, id + " is beyond the log end");
  auto pc = delays_->begin_cancel(off);
  if (pc.answer) {
    return answer(*pc.answer, *pc.answer == cancel_outcome::cancelled ? id + " was cancelled already"
                                                                      : id + " is already due (released)");
  }
  if (pc.due) return finish_cancel(off, pc.due, false, std::move(done));
  // Not in memory: the index knows whether it is pending (RocksDB, on the disk pool).
  auto* index = &delays_->index();
  auto pk = delays_->key();
  auto self = shared_from_this();
  asio::post(rt_.disk(), [self, index, pk, off, done = std::move(done)]() mutable {
    auto due = index->due_of(pk, off);
    auto was = index->cancelled(pk, off);
    asio::post(self->rt_.executor(self->owner_),
               [self, off, due = std::move(due), was = std::move(was), done = std::move(done)]() mutable {
                 if (!due || !was) {
                   self->delays_->end_cancel(off);
                   return done(!due ? due.error() : was.error());
                 }
                 self->finish_cancel(off, *due, *was, std::move(done));
               });
  });
}

void partition::finish_cancel(int64_t off, std::optional<int64_t> due, bool cancelled_before,
                              std::function<void(result<cancel_result>)> done) {
  std::string id = topic_ + "/" + std::to_string(id_.value) + "/" + std::to_string(off);
  if (!due) {
    delays_->end_cancel(off);
    if (cancelled_before) return done(cancel_result{cancel_outcome::cancelled, id + " was cancelled already"});
    // Not pending: was it a delayed message at all? The log says, if it still has it.
    std::vector<std::byte> buf;
    if (off < log_->start_offset().value || !log_->read(offset{off}, 1, hwm(), buf))
      return done(
          cancel_result{cancel_outcome::too_late, id + " is no longer in the log (delivered and retained no more)"});
    auto h = wire::parse_batch_header(buf);
    std::optional<cancel_result> res;
    if (h && subscription::is_control(*h)) {
      res = cancel_result{cancel_outcome::unknown, id + " is not a message (a control record)"};
    } else if (h) {
      auto bytes = std::span<const std::byte>(buf).first(static_cast<size_t>(h->batch_length));
      (void)wire::for_each_record(bytes, [&](const wire::record_view& rv) {
        if (rv.offset != off) return;
        if (h->attributes & wire::attr_released)
          res = cancel_result{cancel_outcome::too_late, id + " is a delayed message released when it fell due"};
        else if (rv.deliver_at && *rv.deliver_at > h->append_time)
          res = cancel_result{cancel_outcome::too_late, id + " is already due (released)"};
        else
          res = cancel_result{cancel_outcome::unknown, id + " is not a delayed message"};
      });
    }
    return done(res.value_or(cancel_result{cancel_outcome::unknown, id + " was not found"}));
  }
  subscription::control_op op;
  op.type = subscription::control_type::cancel;
  op.offset = off;
  op.due = *due;
  std::vector<subscription::control_op> ops{std::move(op)};
  append_control(std::move(ops), [this, off, id, done = std::move(done)](const result<void>& r) {
    if (!r) {
      if (delays_) delays_->end_cancel(off);
      return done(r.error());
    }
    auto it = cancel_outcomes_.find(off);
    cancel_outcome o = it == cancel_outcomes_.end() ? cancel_outcome::too_late : it->second;
    if (it != cancel_outcomes_.end()) cancel_outcomes_.erase(it);
    done(cancel_result{o, o == cancel_outcome::cancelled ? "" : id + " fell due before the cancel was recorded"});
  });
}

std::string partition::checkpoint_prefix(uint64_t topic_id) { return "ckpt/" + std::to_string(topic_id) + "/"; }

std::string partition::checkpoint_key(uint64_t sub_id) const {
  return checkpoint_prefix(cfg_.topic_id) + std::to_string(id_.value) + "/" + std::to_string(sub_id);
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
  if (cfg_.store == nullptr || subs_.empty() || checkpoint_running_) co_return;
  offset applied = applied_upto();
  std::vector<std::pair<std::string, std::string>> kvs;
  std::vector<std::pair<std::string, std::string>> erase;  // journal records the checkpoints cover
  std::vector<uint64_t> ids;
  for (auto& [id, s] : subs_) {
    if (!s.d->dirty() && !(all && s.saved_applied < applied)) continue;
    kvs.emplace_back(checkpoint_key(id), s.d->checkpoint(applied.value));
    if (s.journal_next > 0) erase.emplace_back(s.journal_key, s.journal_key + journal_seq(s.journal_next));
    s.d->clear_dirty();
    ids.push_back(id);
  }
  if (kvs.empty()) co_return;
  checkpoint_running_ = true;
  auto* store = cfg_.store;
  auto write = [store, kvs = std::move(kvs), erase = std::move(erase)] { return store->put_checkpoints(kvs, erase); };
  auto r = co_await runtime::on_disk(rt_.state(), std::move(write));
  checkpoint_running_ = false;
  if (!r) {
    logger()->warn("saving subscription checkpoints of {}/{} failed (the log still has everything): {}", topic_,
                   id_.value, r.error().to_string());
    co_return;
  }
  probe::get().checkpoints.inc(ids.size());
  for (auto id : ids)
    if (auto it = subs_.find(id); it != subs_.end()) it->second.saved_applied = applied;
}

}  // namespace ferry::partition
