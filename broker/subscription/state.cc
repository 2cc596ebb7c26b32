#include "broker/subscription/state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>
#include <vector>

#include "broker/runtime/logger.h"
#include "broker/subscription/probe.h"
#include "schema/varint.h"

namespace ferry::subscription {

namespace {

runtime::subsystem_logger logger{"subscription"};

constexpr uint8_t checkpoint_version = 1;

}  // namespace

subscription_state::subscription_state(uint64_t sub_id, std::string what, int64_t start, const std::string& topic,
                                       const std::string& subscription)
    : sub_id_(sub_id), what_(std::move(what)), acks_(start), series_(topic, subscription) {}

void subscription_state::apply_control(int64_t base, int64_t last, std::span<const control_op> ops) {
  // The control batch's own offsets are never delivered: they count as acknowledged.
  acks_.add(base, last + 1);
  bool moved = false;
  for (const auto& op : ops) {
    if (op.sub_id != sub_id_) continue;
    dirty_ = true;
    moved = true;
    switch (op.type) {
      case control_type::ack:
        for (auto [from, to] : op.ranges) {
          acks_.add(from, to);
          for (int64_t o = from; o < to; ++o) restored_counts_.erase(o);
          if (listener_ != nullptr) listener_->on_settled(from, to);
        }
        break;
      case control_type::dead_letter:
        if (!acks_.contains(op.offset)) {
          acks_.add(op.offset);
          ++dead_lettered_;
          series_.dead_lettered.inc();
        }
        restored_counts_.erase(op.offset);
        if (listener_ != nullptr) listener_->on_settled(op.offset, op.offset + 1);
        break;
      case control_type::seek:
        acks_.reset(op.offset);
        restored_counts_.clear();
        if (listener_ != nullptr) listener_->on_seek(op.offset);
        break;
      case control_type::cancel:
        break;  // the delay index's, not a subscription's
    }
  }
  if (moved && listener_ != nullptr) listener_->on_changed();
}

int64_t subscription_state::expire_below(int64_t log_start) {
  if (acks_.cursor() >= log_start) return 0;
  int64_t lost = acks_.advance_to(log_start);
  if (lost > 0) {
    expired_ += lost;
    series_.expired.inc(static_cast<uint64_t>(lost));
    logger()->warn("{}: retention deleted {} unacknowledged messages below offset {}", what_, lost, log_start);
  }
  for (auto it = restored_counts_.begin(); it != restored_counts_.end();)
    it = it->first < log_start ? restored_counts_.erase(it) : std::next(it);
  dirty_ = true;
  if (listener_ != nullptr) listener_->on_expired_below(log_start);
  return lost;
}

bool subscription_state::clamp_to_log_end(int64_t log_end) {
  const auto& r = acks_.ranges();
  bool beyond = acks_.cursor() > log_end || (!r.empty() && std::prev(r.end())->second > log_end);
  for (auto it = restored_counts_.begin(); it != restored_counts_.end();) {
    if (it->first >= log_end) {
      beyond = true;
      it = restored_counts_.erase(it);
    } else {
      ++it;
    }
  }
  if (!beyond) return false;
  logger()->warn(
      "{}: its saved state reaches offset {} but the log ends at {}; forgetting what lies beyond the log end", what_,
      std::max(acks_.cursor(), log_end), log_end);
  acks_.truncate_from(log_end);
  dirty_ = true;
  if (listener_ != nullptr) listener_->on_seek(acks_.cursor());
  return true;
}

std::string subscription_state::checkpoint(int64_t applied_upto,
                                           std::span<const std::pair<int64_t, int32_t>> engine_counts) const {
  byte_writer w;
  w.u8(checkpoint_version);
  w.varint(applied_upto);
  w.varint(acks_.cursor());
  w.uvarint(acks_.ranges().size());
  int64_t prev = acks_.cursor();
  for (auto [from, to] : acks_.ranges()) {
    w.uvarint(static_cast<uint64_t>(from - prev));
    w.uvarint(static_cast<uint64_t>(to - from));
    prev = to;
  }
  w.varint(dead_lettered_);
  w.varint(expired_);
  std::vector<std::pair<int64_t, int32_t>> counts(engine_counts.begin(), engine_counts.end());
  std::unordered_set<int64_t> held;
  held.reserve(engine_counts.size());
  for (auto& [o, n] : engine_counts) held.insert(o);
  for (auto& [o, n] : restored_counts_)
    if (o >= acks_.cursor() && !held.contains(o)) counts.emplace_back(o, n);
  std::sort(counts.begin(), counts.end());
  w.uvarint(counts.size());
  prev = acks_.cursor();
  for (auto [o, n] : counts) {
    w.uvarint(static_cast<uint64_t>(o - prev));
    w.uvarint(static_cast<uint64_t>(n));
    prev = o;
  }
  return std::move(w).str();
}

result<int64_t> subscription_state::restore(std::string_view blob) {
  byte_reader r{blob};
  auto bad = [&](const char* what) {
    return fail(errc::storage_error, "checkpoint of subscription " + what_ + ": " + what);
  };
  if (r.u8() != checkpoint_version) return bad("unknown version");
  int64_t applied = r.varint();
  int64_t cursor = r.varint();
  uint64_t n = r.uvarint();
  if (!r.ok || n > blob.size()) return bad("truncated");
  if (applied < 0 || cursor < 0) return bad("negative offset");
  ack_set a(cursor);
  int64_t prev = cursor;
  for (uint64_t i = 0; i < n && r.ok; ++i) {
    int64_t from = 0, to = 0;
    if (!add_delta(prev, r.uvarint(), from) || !add_delta(from, r.uvarint(), to)) return bad("offset out of range");
    a.add(from, to);
    prev = to;
  }
  int64_t dl = r.varint();
  int64_t ex = r.varint();
  uint64_t nc = r.uvarint();
  if (!r.ok || nc > blob.size()) return bad("truncated");
  std::unordered_map<int64_t, int32_t> counts;
  prev = cursor;
  for (uint64_t i = 0; i < nc && r.ok; ++i) {
    int64_t o = 0;
    if (!add_delta(prev, r.uvarint(), o)) return bad("offset out of range");
    counts[o] = static_cast<int32_t>(r.uvarint());
    prev = o;
  }
  if (!r.ok || r.pos != blob.size()) return bad("does not parse");
  acks_ = std::move(a);
  dead_lettered_ = dl;
  expired_ = ex;
  restored_counts_ = std::move(counts);
  if (listener_ != nullptr) listener_->on_seek(acks_.cursor());
  return applied;
}

result<void> subscription_state::restore_deliveries(std::string_view record) {
  dirty_ = true;  // the next checkpoint covers (and erases) the journal records
  return decode_delivery_record(record, [this](int64_t o) {
    if (o >= acks_.cursor() && !acks_.contains(o)) ++restored_counts_[o];
  });
}

std::optional<int32_t> subscription_state::take_restored_count(int64_t offset) {
  auto it = restored_counts_.find(offset);
  if (it == restored_counts_.end()) return std::nullopt;
  int32_t n = it->second;
  restored_counts_.erase(it);
  return n;
}

}  // namespace ferry::subscription
