#include "broker/delay/delay_scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

#include "broker/base/assert.h"
#include "broker/base/failpoint.h"
#include "broker/delay/probe.h"
#include "broker/delay/release.h"
#include "broker/runtime/logger.h"
#include "broker/runtime/runtime.h"
#include "broker/scheduler/wheel_driver.h"
#include "schema/record_batch.h"

namespace ferry::delay {

namespace asio = boost::asio;

namespace {
runtime::subsystem_logger logger{"partition"};
constexpr size_t max_load_bytes = 32u << 20;
constexpr size_t max_write_ops = 4'000;
}  // namespace

struct delay_scheduler::entry final : scheduler::timed_entry {
  delay_scheduler* owner = nullptr;
  pending_message m;
  state st = state::waiting;
  uint64_t insert_seq = 0;  // the index write that holds it (0: loaded from the index)
  delay_key key() const { return {m.due, m.offset}; }
  void on_fire() override { owner->on_fire(*this); }
};

struct delay_scheduler::timed final : scheduler::timed_entry {
  explicit timed(std::function<void()> f) : fire(std::move(f)) {}
  std::function<void()> fire;
  void on_fire() override { fire(); }
};

struct delay_scheduler::idle_signal {
  explicit idle_signal(const asio::any_io_executor& ex) : timer(ex, std::chrono::steady_clock::time_point::max()) {}
  asio::steady_timer timer;
};

delay_scheduler::delay_scheduler(delay_index& index, partition_key pk, std::string id_prefix,
                                 asio::any_io_executor owner, asio::any_io_executor state, const ferry::clock& clk,
                                 delay_limits limits, release_fn release)
    : index_(index),
      pk_(pk),
      id_prefix_(std::move(id_prefix)),
      owner_(std::move(owner)),
      state_ex_(std::move(state)),
      clk_(clk),
      lim_(limits),
      release_(std::move(release)),
      tokens_(static_cast<double>(limits.release_burst)),
      tokens_at_mono_ms_(0) {
  // Due times are wall-clock times: the wheel runs on the broker's wall clock (never firing before
  // a due time even if the clock steps back; tick() re-reads it for steps forward).
  timers_ =
      std::make_unique<scheduler::wheel_driver>(owner_, clk_, scheduler::fire_timed_entry, scheduler::timebase::wall);
  ticks_ = std::make_unique<scheduler::wheel_driver>(owner_, clk_, scheduler::fire_timed_entry);
  tick_entry_ = std::make_unique<timed>([this] { tick(); });
  release_entry_ = std::make_unique<timed>([this] { schedule_release_pass(); });
  idle_ = std::make_unique<idle_signal>(owner_);
  tokens_at_mono_ms_ = mono_ms();
}

delay_scheduler::~delay_scheduler() {
  *alive_ = false;
  for (auto& [o, e] : mem_) timers_->cancel(*e);
  mem_.clear();
  mem_bytes_ = 0;
  timers_->stop();
  ticks_->cancel(*tick_entry_);
  ticks_->cancel(*release_entry_);
  ticks_->stop();
}

void delay_scheduler::set_releasing(bool on) {
  releasing_ = on;
  if (on && !due_.empty()) schedule_release_pass();
}

void delay_scheduler::wake() {
  timers_->wake();
  ticks_->wake();
}

void delay_scheduler::note_done() {
  if (closed_ && !busy()) idle_->timer.cancel();
}

int64_t delay_scheduler::mono_ms() const { return clk_.monotonic_ns() / 1'000'000; }

// ---- start-up --------------------------------------------------------------------------------------

result<int64_t> delay_scheduler::open() {
  auto st = index_.state(pk_);
  if (!st) return st.error();
  applied_ = written_applied_ = synced_upto_ = posted_applied_ = st->applied_upto;
  pending_ = posted_pending_ = st->pending;
  return st->applied_upto;
}

result<void> delay_scheduler::finish_replay(int64_t log_end) {
  applied_ = std::max(applied_, log_end);
  // The replayed changes are written like any others, on the state thread in order (never a
  // RocksDB write or sync on a shard): changes applied after them queue behind them, the loader
  // never passes a replayed message not yet written (unwritten_far_), and until the index is
  // synced past them synced_upto() keeps the log they came from (the low-water mark).
  flush_writes();
  tick();
  return {};
}

uint64_t delay_scheduler::queue_op(index_op op, int64_t event_begin, int delta, bool far) {
  queued_ops_.push_back(queued_op{std::move(op), event_begin, delta, far});
  return ++ops_queued_;
}

// ---- durable changes -------------------------------------------------------------------------------

void delay_scheduler::on_inserted(int64_t base, std::vector<pending_message> msgs) {
  // Straight into memory only what is due very soon (the loader could not bring it in time);
  // the rest reaches memory through the loader, in due order, which keeps memory bounded without
  // churning it.
  int64_t direct_end = clk_.now_ms() + std::min(lim_.horizon_ms, lim_.direct_window_ms);
  for (auto& m : msgs) {
    ++pending_;
    delay_key k{m.due, m.offset};
    bool memory = k <= loaded_upto_ || (m.due < direct_end && fill() < 1.0);
    index_op op;
    op.what = index_op::kind::insert;
    op.message = m;
    uint64_t pos = queue_op(std::move(op), base, +1, !memory);
    if (memory) {
      add_to_memory(std::move(m), false);
      mem_[k.second]->insert_seq = pos;
    } else {
      // It waits in the index, and the loader must not pass it before it is written there.
      unwritten_far_.insert(k);
      unwritten_far_due_[k.second] = k.first;
      if (loading_) far_since_load_.insert(k);  // the load in flight may not see it
    }
  }
  evict_if_over();
}

void delay_scheduler::on_released(int64_t base, const std::vector<delay_key>& released) {
  for (auto [due, off] : released) {
    if (auto it = mem_.find(off); it != mem_.end()) {
      forget(*it->second);
      erase_from_memory(it);
    }
    cancel_pending_.erase(off);
    index_op op;
    op.what = index_op::kind::remove;
    op.message.due = due;
    op.message.offset = off;
    uint64_t pos = queue_op(std::move(op), base, -1, false);
    removed_[off] = removed_mark{pos, false, mono_ms()};
    removed_order_.emplace_back(mono_ms(), off);
    --pending_;
  }
  probe::get().delayed_released.inc(released.size());
}

// The cancel protocol. begin_cancel (request time) refuses a message already in a release batch
// and marks the others so that no release batch takes them until the cancel record is applied.
// on_cancelled (the record is durable, in log order) then removes the message: from memory if it
// is there, else from the index (where begin_cancel's caller found it pending). A message removed
// recently (released or cancelled) is remembered in removed_ for removed_memory_ms, longer than a
// cancel takes from its check to its apply, so the answer is right either way.
delay_scheduler::precheck delay_scheduler::begin_cancel(int64_t offset) {
  precheck p;
  if (auto it = mem_.find(offset); it != mem_.end()) {
    if (it->second->st == state::releasing) {
      p.answer = cancel_outcome::too_late;
      return p;
    }
    p.due = it->second->m.due;
  } else if (auto r = removed_.find(offset); r != removed_.end()) {
    p.answer = r->second.cancelled ? cancel_outcome::cancelled : cancel_outcome::too_late;
    return p;
  } else if (auto f = unwritten_far_due_.find(offset); f != unwritten_far_due_.end()) {
    // Pending, but its index write has not completed: the index cannot answer yet, memory can.
    p.due = f->second;
  }
  cancel_pending_.insert(offset);
  return p;
}

void delay_scheduler::end_cancel(int64_t offset) { cancel_pending_.erase(offset); }

cancel_outcome delay_scheduler::on_cancelled(int64_t base, int64_t offset, int64_t due) {
  cancel_pending_.erase(offset);
  if (auto r = removed_.find(offset); r != removed_.end())
    return r->second.cancelled ? cancel_outcome::cancelled : cancel_outcome::too_late;
  if (auto it = mem_.find(offset); it != mem_.end()) {
    if (it->second->st == state::releasing) return cancel_outcome::too_late;
    due = it->second->m.due;
    forget(*it->second);
    erase_from_memory(it);
  }
  index_op op;
  op.what = index_op::kind::remove;
  op.message.due = due;
  op.message.offset = offset;
  op.cancelled = true;
  uint64_t pos = queue_op(std::move(op), base, -1, false);
  removed_[offset] = removed_mark{pos, true, mono_ms()};
  removed_order_.emplace_back(mono_ms(), offset);
  --pending_;
  probe::get().delayed_cancelled.inc();
  return cancel_outcome::cancelled;
}

void delay_scheduler::set_applied(int64_t durable) {
  applied_ = std::max(applied_, durable);
  if (waiting_barrier_ && !due_.empty()) schedule_release_pass();
  if (!queued_ops_.empty() && !closed_) flush_writes();
}

// ---- memory ------------------------------------------------------------------------------------

void delay_scheduler::add_to_memory(pending_message m, bool written) {
  if (mem_.contains(m.offset)) return;
  auto e = std::make_unique<entry>();
  e->owner = this;
  e->insert_seq = written ? 0 : ops_queued_;
  e->m = std::move(m);
  mem_bytes_ += e->m.bytes();
  if (e->m.due <= clk_.now_ms()) {
    // Due already (a short delay, or loaded late): straight to the release queue, in key order
    // with the others.
    e->st = state::due;
    due_.insert(e->key());
    schedule_release_pass();
  } else {
    waiting_.insert(e->key());
    timers_->schedule(*e, e->m.due);
  }
  mem_.emplace(e->m.offset, std::move(e));
}

void delay_scheduler::forget(entry& e) {
  timers_->cancel(e);
  waiting_.erase(e.key());
  due_.erase(e.key());
}

void delay_scheduler::erase_from_memory(std::unordered_map<int64_t, std::unique_ptr<entry>>::iterator it) {
  mem_bytes_ -= std::min(mem_bytes_, it->second->m.bytes());
  mem_.erase(it);
}

double delay_scheduler::fill() const {
  return std::max(static_cast<double>(mem_.size()) / static_cast<double>(std::max<size_t>(lim_.max_loaded, 1)),
                  static_cast<double>(mem_bytes_) / static_cast<double>(std::max<size_t>(lim_.max_loaded_bytes, 1)));
}

void delay_scheduler::evict_if_over() {
  // Keep memory bounded (in messages and in bytes): drop the furthest waiting messages that are in
  // the index already; the loader brings them back when the horizon reaches them.
  // Not while a load is running: it would raise loaded_upto_ past what is evicted here.
  if (fill() <= 1.0 || loading_) return;
  size_t evicted = 0;
  for (auto it = waiting_.end(); it != waiting_.begin() && fill() > 0.9;) {
    --it;
    auto m = mem_.find(it->second);
    if (m == mem_.end() || (m->second->insert_seq != 0 && m->second->insert_seq > ops_written_)) continue;
    delay_key k = *it;
    timers_->cancel(*m->second);
    erase_from_memory(m);
    it = waiting_.erase(it);
    if (k <= loaded_upto_) loaded_upto_ = {k.first, k.second - 1};
    ++evicted;
  }
  if (evicted) probe::get().delayed_evicted.inc(evicted);
}

void delay_scheduler::on_fire(entry& e) {
  if (e.st != state::waiting) return;
  e.st = state::due;
  waiting_.erase(e.key());
  due_.insert(e.key());
  schedule_release_pass();
}

int64_t delay_scheduler::next_due_in_memory() const {
  int64_t d = -1;
  if (!due_.empty()) d = due_.begin()->first;
  if (!waiting_.empty() && (d < 0 || waiting_.begin()->first < d)) d = waiting_.begin()->first;
  return d;
}

// ---- releases ------------------------------------------------------------------------------------

void delay_scheduler::schedule_release_pass() {
  if (pass_scheduled_ || closed_) return;
  pass_scheduled_ = true;
  auto alive = alive_;
  asio::post(owner_, [this, alive] {
    if (!*alive) return;
    pass_scheduled_ = false;
    release_pass();
  });
}

void delay_scheduler::release_pass() {
  if (closed_ || !releasing_) return;
  // Everything due by now goes to due_ first, so a release batch is cut from all of it, in order
  // (not only from what the wheel has fired so far).
  timers_->wake();
  if (due_.empty()) return;
  int64_t now_mono = mono_ms();
  tokens_ = std::min<double>(static_cast<double>(lim_.release_burst),
                             tokens_ + lim_.release_rate * static_cast<double>(now_mono - tokens_at_mono_ms_) / 1000.0);
  tokens_at_mono_ms_ = now_mono;
  size_t n = std::min({static_cast<size_t>(tokens_), due_.size(), lim_.max_release_batch});
  if (n == 0) {
    // Out of tokens: come back when one is there.
    ticks_->reschedule(*release_entry_,
                       ticks_->now() + std::max<int64_t>(1, static_cast<int64_t>(1000.0 / lim_.release_rate)));
    return;
  }
  const int64_t now = clk_.now_ms();
  const int64_t barrier = barrier_ ? barrier_() : INT64_MAX;
  waiting_barrier_ = false;
  wire::batch_builder b;
  b.set_released(true);
  std::vector<delay_key> keys;
  std::vector<entry*> taken;
  for (auto it = due_.begin(); it != due_.end() && keys.size() < n;) {
    auto m = mem_.find(it->second);
    if (m == mem_.end()) {
      it = due_.erase(it);
      continue;
    }
    entry& e = *m->second;
    if (e.m.due > barrier) {
      waiting_barrier_ = true;  // set_applied() comes back once the older batches are applied
      break;
    }
    if (e.key() > loaded_upto_) {
      // The index may hold an earlier one the loader has not brought in yet: load first.
      blocked_by_load_ = true;
      maybe_load();
      break;
    }
    if (cancel_pending_.contains(e.m.offset)) {
      ++it;  // a cancel is in flight: its record decides
      continue;
    }
    if (e.m.due > now) {
      // The clock stepped back after it fired: never release before the due time.
      it = due_.erase(it);
      e.st = state::waiting;
      waiting_.insert(e.key());
      timers_->schedule(e, e.m.due);
      continue;
    }
    add_release_record(b, e.m, id_prefix_);
    keys.push_back(e.key());
    taken.push_back(&e);
    it = due_.erase(it);
  }
  if (keys.empty()) return;
  auto span = b.finish(-1, 0, -1);
  std::vector<std::byte> bytes(span.begin(), span.end());
  for (auto* e : taken) e->st = state::releasing;
  if (auto r = release_(std::move(bytes), keys); !r) {
    logger()->error("{}: releasing {} delayed messages failed, retrying: {}", id_prefix_, keys.size(),
                    r.error().to_string());
    for (auto* e : taken) {
      e->st = state::due;
      due_.insert(e->key());
    }
    ticks_->reschedule(*release_entry_, ticks_->now() + 100);
    return;
  }
  tokens_ -= static_cast<double>(keys.size());
  int64_t late = now - keys.front().first;
  probe::get().delayed_release_lateness.observe_us(static_cast<uint64_t>(std::max<int64_t>(0, late)) * 1000);
  if (!due_.empty()) schedule_release_pass();
}

// ---- loading, writing, syncing ---------------------------------------------------------------------

void delay_scheduler::tick() {
  if (closed_) return;
  // A step of the wall clock forward: fire what is due now (a step back fires nothing early).
  timers_->wake();
  // Entries over the memory limit that eviction had to keep (their index write was still
  // running) go once written.
  evict_if_over();
  maybe_load();
  // The applied offset alone (no changes) is written at most once per sync interval.
  if (!queued_ops_.empty() || (posted_applied_ < applied_ && now_for_state_write())) flush_writes();
  maybe_sync();
  // Forget old removals (their index writes are done and no cancel can still be in flight).
  int64_t now = mono_ms();
  while (!removed_order_.empty() && now - removed_order_.front().first > lim_.removed_memory_ms) {
    auto off = removed_order_.front().second;
    removed_order_.pop_front();
    auto it = removed_.find(off);
    if (it != removed_.end() && it->second.write_pos <= ops_written_ &&
        now - it->second.at_mono_ms > lim_.removed_memory_ms)
      removed_.erase(it);
  }
  ticks_->reschedule(*tick_entry_, ticks_->now() + lim_.tick_ms);
}

void delay_scheduler::maybe_load() {
  if (loading_ || closed_) return;
  // Memory full: load only if releases wait for the loader to pass them, or if the earliest
  // message in memory lies beyond what is loaded (a message inserted straight into memory): the
  // index may hold earlier ones, which no timer would fire. Eviction keeps memory bounded.
  const bool gap = !waiting_.empty() && *waiting_.begin() > loaded_upto_;
  if (fill() >= 0.75 && !blocked_by_load_ && !gap) return;
  int64_t upper = clk_.now_ms() + lim_.horizon_ms;
  // Not past a message that is not in the index yet (its write is queued or running).
  if (!unwritten_far_.empty()) upper = std::min(upper, unwritten_far_.begin()->first);
  if (upper <= loaded_upto_.first) return;
  if (pending_ <= static_cast<int64_t>(mem_.size()) && unwritten_far_.empty()) {
    // Everything pending is in memory already.
    loaded_upto_ = {std::max(loaded_upto_.first, upper - 1), INT64_MAX};
    return;
  }
  // Small chunks: each is added to memory in one go on the shard, so a big one would stall it.
  // When releases wait for the loader, a chunk comes in even over the memory limit (eviction then
  // drops the farthest messages that are safely in the index).
  size_t free_slots = fill() < 1.0 && mem_.size() < lim_.max_loaded ? lim_.max_loaded - mem_.size() : 0;
  size_t room = blocked_by_load_ || gap ? size_t{2048} : std::min<size_t>(free_slots, 2048);
  if (room == 0) return;
  size_t free_bytes = lim_.max_loaded_bytes > mem_bytes_ ? lim_.max_loaded_bytes - mem_bytes_ : 0;
  size_t load_bytes = std::clamp<size_t>(free_bytes, 64u << 10, max_load_bytes);
  loading_ = true;
  far_since_load_.clear();
  auto after = loaded_upto_;
  auto* index = &index_;
  auto pk = pk_;
  auto load = [index, pk, after, upper, room, load_bytes] {
    return index->load(pk, after.first, after.second, upper, room, load_bytes);
  };
  auto alive = alive_;
  // The load runs on the disk pool; its result comes back to this shard.
  auto ex = owner_;
  asio::post(state_ex_, [load, alive, ex, this, upper, room, load_bytes]() mutable {
    auto got = load();
    asio::post(ex, [got = std::move(got), alive, this, upper, room, load_bytes]() mutable {
      if (!*alive) return;
      loading_ = false;
      note_done();
      if (!got) {
        logger()->error("{}: loading delayed messages failed: {}", id_prefix_, got.error().to_string());
        return;
      }
      size_t bytes = 0;
      for (auto& m : *got) bytes += m.bytes();
      const delay_key last = got->empty() ? delay_key{} : delay_key{got->back().due, got->back().offset};
      // Cut by the count or the byte limit: loaded up to the last one; else everything before
      // `upper` is here.
      bool more = got->size() >= room || bytes >= load_bytes;
      delay_key reached = more && !got->empty() ? last : delay_key{upper - 1, INT64_MAX};
      // Not past a message inserted while the load ran: its index write may have come too late
      // for the scan.
      if (!far_since_load_.empty() && reached >= *far_since_load_.begin())
        reached = {far_since_load_.begin()->first, far_since_load_.begin()->second - 1};
      far_since_load_.clear();
      // Only what lies within `reached` goes to memory: memory then holds every index key up to
      // loaded_upto_ and nothing loaded beyond it, so no message is skipped by the loader while a
      // later one waits in memory (the next load brings the rest).
      size_t added = 0;
      for (auto& m : *got) {
        if (delay_key{m.due, m.offset} > reached) break;
        if (removed_.contains(m.offset) || mem_.contains(m.offset)) continue;
        add_to_memory(std::move(m), true);
        ++added;
      }
      loaded_upto_ = std::max(loaded_upto_, reached);
      if (blocked_by_load_) {
        blocked_by_load_ = false;
        schedule_release_pass();
      }
      evict_if_over();
      if (more && fill() < 0.75) maybe_load();  // the next chunk now, not at the next tick
      if (added) probe::get().delayed_loaded.inc(added);
    });
  });
}

bool delay_scheduler::now_for_state_write() {
  int64_t now = mono_ms();
  if (now - last_state_write_mono_ < lim_.sync_interval_ms) return false;
  last_state_write_mono_ = now;
  return true;
}

void delay_scheduler::flush_writes() {
  if (closed_ || index_failed_) return;
  constexpr int max_inflight_writes = 4;
  while (inflight_writes_ < max_inflight_writes && (!queued_ops_.empty() || posted_applied_ < applied_)) {
    size_t n = std::min(queued_ops_.size(), max_write_ops);
    auto chunk = std::make_shared<std::vector<index_op>>();
    chunk->reserve(n);
    std::vector<delay_key> far;
    for (size_t i = 0; i < n; ++i) {
      auto& q = queued_ops_.front();
      posted_pending_ += q.delta;
      if (q.far) far.emplace_back(q.op.message.due, q.op.message.offset);
      chunk->push_back(std::move(q.op));
      queued_ops_.pop_front();
    }
    // Every batch below the next queued op's batch is in this write or an earlier one.
    int64_t upto = queued_ops_.empty() ? applied_ : queued_ops_.front().event_begin;
    posted_applied_ = std::max(posted_applied_, upto);
    index_state after{posted_applied_, posted_pending_};
    ++inflight_writes_;
    inflight_ops_ += n;
    auto* index = &index_;
    auto pk = pk_;
    auto alive = alive_;
    auto ex = owner_;
    int64_t written_upto = posted_applied_;
    // The state thread runs writes in the order they are posted; completions come back in order.
    asio::post(state_ex_, [index, pk, chunk, after, alive, ex, this, n, written_upto, far = std::move(far)]() mutable {
      auto r = FERRY_FAILPOINT("delay.index_write")
                   ? result<void>(fail(errc::storage_error, "failpoint delay.index_write"))
                   : index->apply(pk, *chunk, after);
      chunk.reset();
      asio::post(ex, [r = std::move(r), alive, this, n, written_upto, far = std::move(far)]() mutable {
        if (!*alive) return;
        --inflight_writes_;
        inflight_ops_ -= n;
        note_done();
        if (!r) {
          // The index stays at its last good state; a restart applies the log again from there.
          index_failed_ = true;
          logger()->error(
              "{}: writing the delay index failed; it is not written again until restart (the log "
              "keeps everything): {}",
              id_prefix_, r.error().to_string());
          probe::get().delay_index_failures.inc();
          if (drained_) drained_();
          return;
        }
        ops_written_ += n;
        written_applied_ = std::max(written_applied_, written_upto);
        for (auto& k : far) {
          unwritten_far_.erase(k);
          unwritten_far_due_.erase(k.second);
        }
        if (!queued_ops_.empty()) flush_writes();
        if (drained_ && queued_ops_.size() + inflight_ops_ <= max_backlog_ops / 2) drained_();
      });
    });
  }
}

void delay_scheduler::maybe_sync() {
  if (syncing_ || closed_ || written_applied_ <= synced_upto_) return;
  int64_t now = mono_ms();
  if (now - last_sync_mono_ < lim_.sync_interval_ms) return;
  last_sync_mono_ = now;
  syncing_ = true;
  int64_t upto = written_applied_;
  auto* index = &index_;
  auto alive = alive_;
  auto ex = owner_;
  asio::post(state_ex_, [index, alive, ex, this, upto] {
    auto r = index->sync();
    asio::post(ex, [r = std::move(r), alive, this, upto] {
      if (!*alive) return;
      syncing_ = false;
      note_done();
      if (r)
        synced_upto_ = std::max(synced_upto_, upto);
      else
        logger()->error("{}: syncing the delay index failed: {}", id_prefix_, r.error().to_string());
    });
  });
}

asio::awaitable<void> delay_scheduler::close() {
  closed_ = true;
  ticks_->cancel(*tick_entry_);
  ticks_->cancel(*release_entry_);
  ticks_->stop();
  timers_->stop();
  // Wait for the write, load and sync in flight (each completion calls note_done()), then write
  // and sync what is left.
  while (busy()) {
    idle_->timer.expires_at(std::chrono::steady_clock::time_point::max());
    co_await idle_->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  auto* index = &index_;
  auto pk = pk_;
  std::vector<index_op> ops;
  for (auto& q : queued_ops_) ops.push_back(std::move(q.op));
  queued_ops_.clear();
  index_state after{applied_, pending_};
  if (index_failed_) co_return;
  auto final_write = [index, pk, ops = std::move(ops), after] {
    if (auto r = index->apply(pk, ops, after); !r) return r;
    return index->sync();
  };
  auto r = co_await runtime::run_on(state_ex_, std::move(final_write));
  if (!r)
    logger()->error("{}: final delay index write failed: {}", id_prefix_, r.error().to_string());
  else
    synced_upto_ = applied_;
}

}  // namespace ferry::delay
