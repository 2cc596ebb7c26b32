#include "broker/partition/subscription_host.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <cstdlib>

#include "broker/meta/meta_store.h"
#include "broker/partition/probe.h"
#include "broker/runtime/logger.h"
#include "broker/runtime/runtime.h"

namespace ferry::partition {

namespace {

runtime::subsystem_logger logger{"partition"};

std::string journal_seq(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(seq));
  return buf;
}

}  // namespace

// Replays the control batches after a subscription's checkpoint into its state alone.
struct subscription_host::one_state final : log::state_machine {
  explicit one_state(subscription::subscription_state& s) : state(s) {}
  bool wants(const wire::batch_header& h, log::batch_hint) const override { return subscription::is_control(h); }
  void apply(const wire::batch_header& h, std::span<const std::byte> batch) override {
    std::vector<subscription::control_op> ops;
    auto dec =
        subscription::decode_control_batch(batch, [&](const subscription::control_op& op) { ops.push_back(op); });
    if (!dec) {
      logger()->error("{}: control batch at {} does not decode, skipped: {}", state.what(), h.base_offset,
                      dec.error().to_string());
      return;
    }
    state.apply_control(h.base_offset, h.last_offset(), ops);
    ++applied;
  }
  subscription::subscription_state& state;
  size_t applied = 0;
};

subscription_host::subscription_host(subscription::partition_port& port, uint64_t topic_id, meta::meta_store* store,
                                     subscription::window_limits window, boost::asio::any_io_executor state,
                                     boost::asio::any_io_executor shard)
    : port_(port),
      topic_id_(topic_id),
      store_(store),
      window_(window),
      state_ex_(std::move(state)),
      shard_ex_(std::move(shard)) {}

subscription_host::~subscription_host() { stop_delivery(); }

std::string subscription_host::checkpoint_prefix(uint64_t topic_id) { return "ckpt/" + std::to_string(topic_id) + "/"; }

std::string subscription_host::checkpoint_key(uint64_t sub_id) const {
  return checkpoint_prefix(topic_id_) + std::to_string(port_.partition_number()) + "/" + std::to_string(sub_id);
}

bool subscription_host::wants(const wire::batch_header& h, log::batch_hint) const {
  return subscription::is_control(h) && !subs_.empty();
}

void subscription_host::apply(const wire::batch_header& h, std::span<const std::byte> batch) {
  std::vector<subscription::control_op> ops;
  auto dec = subscription::decode_control_batch(batch, [&](const subscription::control_op& op) { ops.push_back(op); });
  if (!dec) {
    // The broker wrote it and its CRC held: a bug, not damage. Its offsets still count as handled.
    logger()->error("{}/{}: control batch at {} does not decode: {}", port_.topic(), port_.partition_number(),
                    h.base_offset, dec.error().to_string());
    ops.clear();
  }
  for (auto& [id, s] : subs_) s.state->apply_control(h.base_offset, h.last_offset(), ops);
}

result<std::optional<offset>> subscription_host::add(const meta::subscription_record& rec, int64_t start,
                                                     saved_subscription saved, offset log_end) {
  if (subs_.contains(rec.id)) return std::optional<offset>{};
  std::string what = rec.name + " on " + port_.topic() + "/" + std::to_string(port_.partition_number());
  slot s{rec,     std::make_unique<subscription::subscription_state>(rec.id, what, start, port_.topic(), rec.name),
         nullptr, offset{start},
         0,       journal_prefix(rec.id)};
  offset replay_from{start};
  if (saved.checkpoint) {
    auto a = s.state->restore(*saved.checkpoint);
    if (!a) return a.error();
    replay_from = offset{*a};
    s.saved_applied = replay_from;
  }
  // Deliveries after the checkpoint: their counts (the journal is newer than the checkpoint, and
  // older than every control batch replayed after it, which only removes counts).
  const std::string& jp = s.journal_key;
  for (auto& [k, v] : saved.journal) {
    if (auto r = s.state->restore_deliveries(v); !r) return r.error();
    if (k.size() > jp.size() && k.compare(0, jp.size(), jp) == 0)
      s.journal_next = std::max<uint64_t>(s.journal_next, std::strtoull(k.c_str() + jp.size(), nullptr, 10) + 1);
  }
  if (!saved.journal.empty())
    logger()->info("{}: {} delivery journal records after its checkpoint", what, saved.journal.size());
  // A log shorter than the saved state (its tail was lost) must not hide the new messages that
  // will take those offsets again.
  if (s.state->clamp_to_log_end(log_end.value)) s.saved_applied = std::min(s.saved_applied, log_end);
  replay_from = std::min(replay_from, log_end);
  auto [it, inserted] = subs_.emplace(rec.id, std::move(s));
  replayers_[rec.id] = std::make_unique<one_state>(*it->second.state);
  if (delivering_) start_engine(it->second);
  return std::optional<offset>{replay_from};
}

log::state_machine* subscription_host::replay_machine(uint64_t sub_id) {
  auto it = replayers_.find(sub_id);
  return it == replayers_.end() ? nullptr : it->second.get();
}

void subscription_host::remove(uint64_t sub_id) {
  auto it = subs_.find(sub_id);
  if (it == subs_.end()) return;
  if (it->second.engine) it->second.engine->shutdown();
  replayers_.erase(sub_id);
  subs_.erase(it);
}

void subscription_host::start_engine(slot& s) {
  if (s.engine) return;
  s.engine = std::make_unique<subscription::dispatcher>(port_, s.rec, *s.state, window_);
}

void subscription_host::start_delivery() {
  delivering_ = true;
  for (auto& [id, s] : subs_) start_engine(s);
}

void subscription_host::stop_delivery() {
  delivering_ = false;
  // Engines hold timer entries on the partition's wheel and leases of members: they end here.
  for (auto& [id, s] : subs_) {
    if (!s.engine) continue;
    s.engine->shutdown();
    s.engine.reset();
  }
}

subscription::dispatcher* subscription_host::engine(uint64_t sub_id) {
  auto it = subs_.find(sub_id);
  return it == subs_.end() ? nullptr : it->second.engine.get();
}

void subscription_host::wake() {
  for (auto& [id, s] : subs_)
    if (s.engine) s.engine->wake();
}

int64_t subscription_host::low_water_mark() const {
  int64_t lwm = INT64_MAX;
  for (auto& [id, s] : subs_) lwm = std::min({lwm, s.state->cursor(), s.saved_applied.value});
  return lwm;
}

int64_t subscription_host::keep_from() const {
  int64_t keep = INT64_MAX;
  for (auto& [id, s] : subs_) keep = std::min(keep, s.saved_applied.value);
  return keep;
}

void subscription_host::expire_below(int64_t log_start) {
  for (auto& [id, s] : subs_)
    if (s.state->cursor() < log_start) s.state->expire_below(log_start);
}

void subscription_host::record_deliveries(uint64_t sub_id, std::span<const int64_t> offsets,
                                          std::function<void()> journaled) {
  auto it = subs_.find(sub_id);
  if (store_ == nullptr || offsets.empty() || it == subs_.end()) {
    boost::asio::post(shard_ex_, std::move(journaled));
    return;
  }
  // Unsynced (a kill -9 keeps it; a machine crash may not), on the state executor (never a RocksDB
  // write on the shard): it runs before any later checkpoint write of this partition (the same
  // FIFO thread), so a checkpoint erases only journal records already written. The round is sent
  // once the write is done (`journaled`, back on the shard, in the order the rounds were made).
  auto key = it->second.journal_key + journal_seq(it->second.journal_next);
  ++it->second.journal_next;
  auto record = subscription::encode_delivery_record(offsets);
  auto write = [store = store_, key = std::move(key), record = std::move(record), topic = port_.topic(),
                p = port_.partition_number(), shard = shard_ex_, journaled = std::move(journaled)]() mutable {
    auto r = store->put_journal(key, record);
    if (!r) {
      probe::get().journal_errors.inc();
      logger()->warn("{}/{}: delivery journal write failed (delivery counts may be low after a crash): {}", topic, p,
                     r.error().to_string());
    } else {
      probe::get().journal_records.inc();
    }
    boost::asio::post(shard, std::move(journaled));
  };
  boost::asio::post(state_ex_, std::move(write));
}

boost::asio::awaitable<void> subscription_host::save_checkpoints(bool all, offset applied) {
  if (store_ == nullptr || subs_.empty() || saving_) co_return;
  std::vector<std::pair<std::string, std::string>> kvs;
  std::vector<std::pair<std::string, std::string>> erase;  // journal records the checkpoints cover
  std::vector<uint64_t> ids;
  for (auto& [id, s] : subs_) {
    if (!s.state->dirty() && !(all && s.saved_applied < applied)) continue;
    std::vector<std::pair<int64_t, int32_t>> counts;
    if (s.engine) counts = s.engine->delivery_counts();
    kvs.emplace_back(checkpoint_key(id), s.state->checkpoint(applied.value, counts));
    if (s.journal_next > 0) erase.emplace_back(s.journal_key, s.journal_key + journal_seq(s.journal_next));
    s.state->clear_dirty();
    ids.push_back(id);
  }
  if (kvs.empty()) co_return;
  saving_ = true;
  auto* store = store_;
  auto write = [store, kvs = std::move(kvs), erase = std::move(erase)] { return store->put_checkpoints(kvs, erase); };
  auto r = co_await runtime::run_on(state_ex_, std::move(write));
  saving_ = false;
  if (!r) {
    logger()->warn("saving subscription checkpoints of {}/{} failed (the log still has everything): {}", port_.topic(),
                   port_.partition_number(), r.error().to_string());
    co_return;
  }
  probe::get().checkpoints.inc(ids.size());
  for (auto id : ids)
    if (auto it = subs_.find(id); it != subs_.end()) it->second.saved_applied = applied;
}

}  // namespace ferry::partition
