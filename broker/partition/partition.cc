#include "broker/partition/partition.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

#include "broker/base/assert.h"
#include "broker/partition/probe.h"
#include "broker/runtime/runtime.h"

namespace ferry::partition {

namespace {
// How many recent batches per producer are remembered for duplicate detection. Must be at least
// the client's max_in_flight (5) so any retried in-flight batch is recognised.
constexpr size_t producer_window = 16;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = [] {
    auto existing = spdlog::get("partition");
    return existing ? existing : spdlog::default_logger()->clone("partition");
  }();
  return l;
}
}  // namespace

partition::partition(std::string topic, partition_id id, partition_config cfg, runtime::shard_set& rt, shard_id owner,
                     std::unique_ptr<log::partition_log> log)
    : topic_(std::move(topic)), id_(id), cfg_(std::move(cfg)), rt_(rt), owner_(owner), log_(std::move(log)) {
  hwm_.store(log_->durable_offset().value, std::memory_order_release);
}

partition::~partition() = default;

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
                                             [&](const wire::batch_header& h) { p->remember_batch(h); });
  if (!scan) return scan.error();
  logger()->info("opened {}/{}: offsets [{}, {}), {} segments, {} producers", p->topic_, id.value,
                 p->log_->start_offset().value, p->log_->next_offset().value, p->log_->segment_count(),
                 p->producers_.size());
  if (p->cfg_.fsync == fsync_policy::interval) p->start_interval_sync();
  return p;
}

void partition::remember_batch(const wire::batch_header& h) {
  if (h.producer_id < 0) return;
  auto& e = producers_[h.producer_id];
  e.recent.push_back(producer_batch{h.base_sequence, h.last_sequence(), h.base_offset, h.append_time});
  if (e.recent.size() > producer_window) e.recent.pop_front();
}

asio::awaitable<result<produce_result>> partition::produce(std::span<std::byte> batch, wire::batch_header h,
                                                           ack_level acks) {
  auto& pr = probe::get();
  auto start = std::chrono::steady_clock::now();
  if (closing_) co_return fail(errc::shutting_down, "partition " + topic_ + "/" + std::to_string(id_.value) + " is closing");
  if (h.producer_id >= 0) {
    auto it = producers_.find(h.producer_id);
    if (it != producers_.end() && !it->second.recent.empty()) {
      const auto& recent = it->second.recent;
      int32_t expected = recent.back().last_seq + 1;
      if (h.base_sequence != expected) {
        for (const auto& b : recent) {
          if (b.first_seq == h.base_sequence && b.last_seq == h.last_sequence()) {
            pr.duplicates.inc();
            offset end{b.base_offset + (b.last_seq - b.first_seq) + 1};
            // The original may still be waiting for its fsync: answer only once it is durable.
            if (acks == ack_level::durable && cfg_.fsync == fsync_policy::always && log_->durable_offset() < end) {
              errc e = co_await wait_durable(end);
              if (e != errc::ok) co_return fail(e, "fsync failed on " + topic_ + "/" + std::to_string(id_.value));
            }
            co_return produce_result{offset{b.base_offset}, b.append_time, true};
          }
        }
        if (h.base_sequence < expected)
          co_return fail(errc::duplicate_sequence, "batch sequence " + std::to_string(h.base_sequence) + " of producer " +
                                                       std::to_string(h.producer_id) +
                                                       " is older than the batches this partition remembers");
        pr.out_of_order.inc();
        co_return fail(errc::out_of_order_sequence, "producer " + std::to_string(h.producer_id) + " sent sequence " +
                                                        std::to_string(h.base_sequence) + ", expected " +
                                                        std::to_string(expected));
      }
    }
  }
  auto info = log_->append(batch, epoch{0});
  if (!info) {
    pr.append_errors.inc();
    logger()->error("append to {}/{} failed: {}", topic_, id_.value, info.error().to_string());
    co_return info.error();
  }
  h.base_offset = info->base.value;
  h.append_time = info->append_time;
  remember_batch(h);
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
      if (e != errc::ok) co_return fail(e, "fsync failed on " + topic_ + "/" + std::to_string(id_.value) + ": the log refuses writes until restart");
    }
  }
  pr.produce_latency.observe_us(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count()));
  co_return res;
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
               [self, ps = std::move(ps), r = std::move(r)]() mutable { self->sync_done(std::move(ps), std::move(r)); });
  });
}

void partition::sync_done(log::pending_sync s, result<void> r) {
  sync_running_ = false;
  log_->end_sync(s, r);
  probe::get().fsyncs.inc();
  if (!r) {
    logger()->error("fsync of {}/{} failed, refusing further writes until restart: {}", topic_, id_.value,
                    r.error().to_string());
  }
  offset durable = log_->durable_offset();
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
  if (data_waiters_.empty()) return;
  std::vector<std::pair<offset, std::function<void()>>> keep;
  for (auto& [from, wake] : data_waiters_) {
    if (from < to)
      wake();
    else
      keep.emplace_back(from, std::move(wake));
  }
  data_waiters_.swap(keep);
}

void partition::on_data(offset from, std::function<void()> wake) {
  if (from < high_watermark() || closing_) {
    wake();
    return;
  }
  data_waiters_.emplace_back(from, std::move(wake));
}

result<void> partition::read(offset from, size_t max_bytes, std::vector<std::byte>& out) {
  return log_->read(from, max_bytes, high_watermark(), out);
}

result<offset> partition::offset_for_timestamp(int64_t ts) { return log_->offset_for_timestamp(ts); }

result<log::retention_result> partition::apply_retention(offset low_water_mark) {
  return log_->apply_retention(low_water_mark);
}

partition_stats partition::stats() const {
  return partition_stats{log_->start_offset(), high_watermark(), log_->next_offset(), log_->size_bytes(),
                         log_->segment_count()};
}

void partition::start_interval_sync() {
  interval_timer_ = std::make_unique<asio::steady_timer>(rt_.executor(owner_));
  auto self = shared_from_this();
  auto loop = [](std::shared_ptr<partition> p) -> asio::awaitable<void> {
    while (!p->closing_) {
      p->interval_timer_->expires_after(std::chrono::milliseconds(p->cfg_.fsync_interval_ms));
      auto [ec] = co_await p->interval_timer_->async_wait(boost::asio::as_tuple(asio::use_awaitable));
      if (p->closing_) break;
      p->maybe_start_sync();
    }
  };
  runtime::spawn_logged(rt_.executor(owner_), loop(self), "interval fsync of " + topic_);
}

asio::awaitable<void> partition::close() {
  closing_ = true;
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
  auto r = log_->close();
  if (!r) logger()->error("closing {}/{}: {}", topic_, id_.value, r.error().to_string());
  for (auto& [from, wake] : data_waiters_) wake();
  data_waiters_.clear();
}

}  // namespace ferry::partition
