#include "broker/subscription/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>

#include "broker/base/assert.h"
#include "broker/runtime/logger.h"
#include "broker/scheduler/wheel_driver.h"
#include "broker/subscription/probe.h"
#include "schema/varint.h"

namespace ferry::subscription {

namespace {

runtime::subsystem_logger logger{"subscription"};

constexpr size_t entries_per_pool = 1024;
constexpr int64_t dead_letter_retry_ms = 1000;
constexpr int64_t credit_cap = int64_t{1} << 40;

}  // namespace

// ---- member_link ---------------------------------------------------------------------------------

void member_link::add_credit(int64_t messages, int64_t bytes) {
  if (messages > 0) {
    int64_t v = credit_messages_.fetch_add(messages, std::memory_order_acq_rel) + messages;
    if (v > credit_cap) credit_messages_.store(credit_cap, std::memory_order_relaxed);
  }
  if (bytes > 0) {
    int64_t v = credit_bytes_.fetch_add(bytes, std::memory_order_acq_rel) + bytes;
    if (v > credit_cap) credit_bytes_.store(credit_cap, std::memory_order_relaxed);
  }
}

bool member_link::try_take(size_t bytes) {
  int64_t m = credit_messages_.load(std::memory_order_acquire);
  do {
    if (m <= 0) return false;
  } while (!credit_messages_.compare_exchange_weak(m, m - 1, std::memory_order_acq_rel));
  if (bytes_limited_.load(std::memory_order_relaxed)) {
    auto need = static_cast<int64_t>(bytes);
    int64_t b = credit_bytes_.load(std::memory_order_acquire);
    do {
      if (b < need) {
        credit_messages_.fetch_add(1, std::memory_order_acq_rel);  // give the message back
        return false;
      }
    } while (!credit_bytes_.compare_exchange_weak(b, b - need, std::memory_order_acq_rel));
  }
  return true;
}

// ---- entries -------------------------------------------------------------------------------------

struct dispatcher::entry final : timed_entry {
  dispatcher* owner = nullptr;
  int64_t offset = 0;
  uint64_t key_hash = 0;
  bool keyed = false;
  state st = state::free;
  uint32_t gen = 0;  // bumped on every state change: queue slots of an older one are stale
  int32_t deliveries = 0;
  uint64_t member = 0;  // lease holder while in flight
  int64_t first_timestamp = 0;
  int64_t append_time = 0;
  int64_t due = INT64_MIN;  // deliver_at, if the record has one
  uint16_t attrs = 0;
  std::shared_ptr<const chunk> data;
  uint32_t pos = 0;
  uint32_t len = 0;
  std::string reason;  // why it is being dead-lettered

  void on_fire() override { owner->on_timer(*this); }
};

dispatcher::entry* dispatcher::alloc_entry() {
  if (free_.empty()) {
    pools_.push_back(std::make_unique<entry[]>(entries_per_pool));
    auto* block = pools_.back().get();
    for (size_t i = entries_per_pool; i-- > 0;) free_.push_back(&block[i]);
  }
  entry* e = free_.back();
  free_.pop_back();
  e->owner = this;
  return e;
}

void dispatcher::free_entry(entry* e) {
  port_.timers().cancel(*e);
  e->st = state::free;
  ++e->gen;
  e->data.reset();
  e->reason.clear();
  e->deliveries = 0;
  e->member = 0;
  free_.push_back(e);
}

// ---- construction --------------------------------------------------------------------------------

namespace {
std::string state_name(const partition_port& port, const meta::subscription_record& rec) {
  return rec.name + " on " + port.topic() + "/" + std::to_string(port.partition_number());
}
}  // namespace

dispatcher::dispatcher(partition_port& port, meta::subscription_record rec, int64_t start, window_limits limits)
    : port_(port), rec_(std::move(rec)), limits_(limits), read_pos_(start), alive_(std::make_shared<bool>(true)) {
  own_state_ = std::make_unique<subscription_state>(rec_.id, state_name(port_, rec_), start, rec_.topic, rec_.name);
  state_ = own_state_.get();
  state_->set_listener(this);
}

dispatcher::dispatcher(partition_port& port, meta::subscription_record rec, subscription_state& state,
                       window_limits limits)
    : port_(port),
      rec_(std::move(rec)),
      limits_(limits),
      state_(&state),
      read_pos_(state.cursor()),
      alive_(std::make_shared<bool>(true)) {
  state_->set_listener(this);
}

dispatcher::~dispatcher() { shutdown(); }

void dispatcher::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  *alive_ = false;
  drop_all();
  members_.clear();
  if (state_->listener() == this) state_->set_listener(nullptr);
}

int64_t dispatcher::now_ms() const { return port_.timers().now(); }

// ---- the state machine: subscription_state; what its changes mean for deliveries -------------------

void dispatcher::apply_control(int64_t base, int64_t last, std::span<const control_op> ops) {
  state_->apply_control(base, last, ops);
}
int64_t dispatcher::expire_below(int64_t log_start) { return state_->expire_below(log_start); }
bool dispatcher::clamp_to_log_end(int64_t log_end) { return state_->clamp_to_log_end(log_end); }
result<int64_t> dispatcher::restore(std::string_view blob) { return state_->restore(blob); }
result<void> dispatcher::restore_deliveries(std::string_view record) { return state_->restore_deliveries(record); }

std::string dispatcher::checkpoint(int64_t applied_upto) const {
  return state_->checkpoint(applied_upto, delivery_counts());
}

std::vector<std::pair<int64_t, int32_t>> dispatcher::delivery_counts() const {
  std::vector<std::pair<int64_t, int32_t>> counts;
  for (auto& [o, e] : entries_)
    if (e->deliveries > 0 && e->st != state::acking) counts.emplace_back(o, e->deliveries);
  return counts;
}

void dispatcher::on_settled(int64_t from, int64_t to) {
  if (entries_.empty()) return;
  if (to - from > static_cast<int64_t>(entries_.size())) {
    // A wide range: walk the window instead of the range.
    std::vector<entry*> done;
    for (auto& [o, e] : entries_)
      if (o >= from && o < to) done.push_back(e);
    std::sort(done.begin(), done.end(), [](entry* a, entry* b) { return a->offset < b->offset; });
    for (auto* e : done) finish(*e);
    return;
  }
  for (int64_t o = from; o < to; ++o)
    if (auto it = entries_.find(o); it != entries_.end()) finish(*it->second);
}

void dispatcher::on_seek(int64_t cursor) {
  drop_all();
  read_pos_ = cursor;
}

void dispatcher::on_expired_below(int64_t log_start) {
  std::vector<entry*> gone;
  for (auto& [o, e] : entries_)
    if (o < log_start) gone.push_back(e);
  std::sort(gone.begin(), gone.end(), [](entry* a, entry* b) { return a->offset < b->offset; });
  for (auto* e : gone) finish(*e);
  if (read_pos_ < log_start) read_pos_ = log_start;
}

void dispatcher::on_changed() { schedule_pass(); }

// ---- members -------------------------------------------------------------------------------------

void dispatcher::add_member(std::shared_ptr<member_link> m) {
  if (shut_down_ || find_member(m->id()) != nullptr) return;
  members_.push_back(member_slot{std::move(m), 0});
  schedule_pass();
}

void dispatcher::remove_member(uint64_t member_id) {
  auto it =
      std::find_if(members_.begin(), members_.end(), [&](const member_slot& s) { return s.link->id() == member_id; });
  if (it == members_.end()) return;
  members_.erase(it);
  if (rr_ >= members_.size()) rr_ = 0;
  // Its leases end now: what it held goes to the other members, in offset order.
  std::vector<entry*> held;
  for (auto& [o, e] : entries_)
    if (e->st == state::in_flight && e->member == member_id) held.push_back(e);
  std::sort(held.begin(), held.end(), [](entry* a, entry* b) { return a->offset < b->offset; });
  for (auto* e : held) {
    port_.timers().cancel(*e);
    rehome(*e);
    make_ready(*e);
  }
  if (!held.empty())
    logger()->debug("{}/{} subscription {}: member {} left, {} leases released", port_.topic(),
                    port_.partition_number(), rec_.name, member_id, held.size());
  schedule_pass();
}

dispatcher::member_slot* dispatcher::find_member(uint64_t id) {
  for (auto& m : members_)
    if (m.link->id() == id) return &m;
  return nullptr;
}

int64_t dispatcher::lease_ms(const member_slot& m) const {
  int64_t own = m.link->ack_timeout_ms();
  return own > 0 ? own : rec_.config.ack_timeout_ms;
}

// ---- dispatch passes -----------------------------------------------------------------------------

void dispatcher::wake() { schedule_pass(); }

void dispatcher::schedule_pass() {
  if (pass_scheduled_ || shut_down_) return;
  pass_scheduled_ = true;
  auto alive = alive_;
  port_.post([this, alive] {
    if (*alive) pass();
  });
}

void dispatcher::pass() {
  pass_scheduled_ = false;
  if (members_.empty()) return;
  fill_window();
  deliver_ready();
}

void dispatcher::fill_window() {
  int64_t hwm = port_.high_watermark();
  read_pos_ = std::max({read_pos_, state_->cursor(), port_.log_start()});
  const bool ordered = rec_.config.ordered;
  while (read_pos_ < hwm && entries_.size() < limits_.max_messages && window_bytes_ < limits_.max_bytes) {
    auto c = std::make_shared<chunk>();
    if (auto r = port_.read(read_pos_, limits_.read_bytes, c->bytes); !r) {
      if (r.error().code == errc::offset_out_of_range) {
        // Retention removed what we were about to read; the partition calls expire_below().
        read_pos_ = std::max(read_pos_, port_.log_start());
        if (read_pos_ < hwm) continue;
      } else {
        logger()->error("{}/{} subscription {}: reading offset {} failed: {}", port_.topic(), port_.partition_number(),
                        rec_.name, read_pos_, r.error().to_string());
      }
      return;
    }
    if (c->bytes.empty()) return;
    std::span<const std::byte> all(c->bytes);
    size_t pos = 0;
    bool full = false;
    while (!full && pos + wire::batch_header_size <= all.size()) {
      auto h = wire::parse_batch_header(all.subspan(pos));
      if (!h || pos + static_cast<size_t>(h->batch_length) > all.size()) break;
      size_t end = pos + static_cast<size_t>(h->batch_length);
      if (is_control(*h)) {
        // Never delivered: acknowledged for every subscription (also again after a seek below it).
        state_->mark_skipped(h->base_offset, h->next_offset());
      } else if (h->next_offset() > read_pos_) {
        size_t rpos = pos + wire::batch_header_size;
        wire::record_view rv;
        for (int32_t i = 0; i < h->record_count; ++i) {
          auto n = wire::detail::decode_record(all.subspan(rpos, end - rpos), *h, rv);
          if (!n) {
            logger()->error("{}/{} subscription {}: record at offset {} does not decode: {}", port_.topic(),
                            port_.partition_number(), rec_.name, h->base_offset + i, n.error().message);
            break;
          }
          int64_t off = rv.offset;
          if (off >= read_pos_ && rv.deliver_at && *rv.deliver_at > h->append_time &&
              (h->attributes & wire::attr_released) == 0) {
            // A delayed message: the delay index has it and releases a copy when it is due.
            state_->mark_skipped(off, off + 1);
          } else if (off >= read_pos_ && !state_->acks().contains(off) && !entries_.contains(off)) {
            if (entries_.size() >= limits_.max_messages || window_bytes_ >= limits_.max_bytes) {
              read_pos_ = off;  // the rest of this batch waits for room
              full = true;
              break;
            }
            entry* e = alloc_entry();
            e->offset = off;
            e->keyed = ordered && rv.key.has_value();
            e->key_hash = e->keyed ? std::hash<std::string_view>{}(*rv.key) : 0;
            e->first_timestamp = h->first_timestamp;
            e->append_time = h->append_time;
            e->due = rv.deliver_at.value_or(INT64_MIN);
            e->attrs = h->attributes;
            e->data = c;
            e->pos = static_cast<uint32_t>(rpos);
            e->len = static_cast<uint32_t>(*n);
            if (auto rc = state_->take_restored_count(off)) e->deliveries = *rc;
            entries_.emplace(off, e);
            window_bytes_ += e->len;
            if (e->keyed) {
              auto& ks = keys_[e->key_hash];
              if (ks.active != nullptr) {
                e->st = state::blocked;
                ++e->gen;
                ks.waiting.push_back(e);
              } else {
                ks.active = e;
                make_ready(*e);
              }
            } else {
              make_ready(*e);
            }
          }
          rpos += *n;
        }
      }
      if (full) break;
      read_pos_ = std::max(read_pos_, h->next_offset());
      pos = end;
    }
    if (!full && pos == 0) return;  // nothing whole came back: wait for more data
  }
}

void dispatcher::make_ready(entry& e) {
  e.st = state::ready;
  ++e.gen;
  if (e.deliveries == 0)
    fresh_.emplace_back(&e, e.gen);
  else
    redeliver_.emplace_back(&e, e.gen);
}

dispatcher::entry* dispatcher::next_ready() {
  for (auto* q : {&redeliver_, &fresh_}) {
    while (!q->empty()) {
      auto [e, gen] = q->front();
      if (e->gen == gen && e->st == state::ready) return e;
      q->pop_front();  // stale: the entry moved on since it was queued
    }
  }
  return nullptr;
}

dispatcher::member_slot* dispatcher::pick_member(size_t bytes) {
  size_t n = members_.size();
  for (size_t i = 0; i < n; ++i) {
    size_t k = (rr_ + i) % n;
    auto& m = members_[k];
    if (m.link->closed()) continue;
    if (m.link->try_take(bytes)) {
      rr_ = (k + 1) % n;
      return &m;
    }
  }
  return nullptr;
}

void dispatcher::deliver_ready() {
  std::vector<std::pair<member_slot*, std::vector<delivered_message>>> out;
  int64_t now = now_ms();
  const int64_t wall = port_.clock().now_ms();
  while (entry* e = next_ready()) {
    auto& q = (!redeliver_.empty() && redeliver_.front().first == e) ? redeliver_ : fresh_;
    if (e->due > wall) {
      // Never before its due time, whatever happened to the clock: wait, keeping its key's place.
      q.pop_front();
      e->st = state::not_due;
      ++e->gen;
      port_.timers().reschedule(*e, now + std::min<int64_t>(e->due - wall, 60'000));
      continue;
    }
    member_slot* m = pick_member(e->len);
    if (m == nullptr) break;  // no credit anywhere: the next grant wakes us
    // Pop it: it is the front of one of the queues.
    q.pop_front();
    e->st = state::in_flight;
    ++e->gen;
    e->member = m->link->id();
    ++e->deliveries;
    if (e->deliveries > 1) {
      ++redeliveries_;
      state_->series().redeliveries.inc();
    }
    state_->mark_dirty();  // delivery counts are part of the checkpoint
    port_.timers().reschedule(*e, now + lease_ms(*m));
    ++m->in_flight;
    auto slot = std::find_if(out.begin(), out.end(), [&](auto& p) { return p.first == m; });
    if (slot == out.end()) {
      out.emplace_back(m, std::vector<delivered_message>{});
      slot = std::prev(out.end());
    }
    slot->second.push_back(delivered_message{e->offset, e->deliveries, e->first_timestamp, e->append_time, e->attrs,
                                             e->data, e->pos, e->len});
  }
  if (out.empty()) return;
  journal_offsets_.clear();
  for (auto& [m, batch] : out)
    for (auto& d : batch) journal_offsets_.push_back(d.offset);
  // The round goes out once its journal record is written: a kill -9 after a member saw a
  // delivery never loses its count. A member that left meanwhile had these entries taken back.
  std::vector<std::pair<uint64_t, std::vector<delivered_message>>> round;
  round.reserve(out.size());
  for (auto& [m, batch] : out) round.emplace_back(m->link->id(), std::move(batch));
  auto send = [this, alive = alive_, round = std::move(round)]() mutable {
    if (!*alive) return;
    auto& series = state_->series();
    for (auto& [id, batch] : round) {
      auto* m = find_member(id);
      if (m == nullptr) continue;
      series.delivered.inc(batch.size());
      probe::get().delivery_batches.inc();
      m->link->deliver(port_.partition_number(), std::move(batch));
    }
  };
  port_.record_deliveries(rec_.id, journal_offsets_, std::move(send));
}

// ---- timers, failures, dead letters --------------------------------------------------------------

void dispatcher::on_timer(entry& e) {
  switch (e.st) {
    case state::in_flight: {
      if (auto* m = find_member(e.member)) --m->in_flight;
      state_->series().lease_expiries.inc();
      failed_delivery(e, "ack timeout expired", -1);
      break;
    }
    case state::backoff:
    case state::not_due:
      make_ready(e);
      schedule_pass();
      break;
    default:
      break;
  }
}

void dispatcher::failed_delivery(entry& e, std::string reason, int64_t delay_ms) {
  int32_t max = rec_.config.max_deliveries;
  if (max > 0 && e.deliveries >= max) {
    start_dead_letter(e, std::move(reason) + " after " + std::to_string(e.deliveries) + " deliveries");
    return;
  }
  int64_t d = delay_ms >= 0 ? delay_ms : rec_.config.backoff_for(e.deliveries);
  rehome(e);
  if (d <= 0) {
    port_.timers().cancel(e);
    make_ready(e);
    schedule_pass();
    return;
  }
  e.st = state::backoff;
  ++e.gen;
  port_.timers().reschedule(e, now_ms() + d);
}

void dispatcher::start_dead_letter(entry& e, std::string reason) {
  port_.timers().cancel(e);
  e.st = state::dead_lettering;
  ++e.gen;
  e.reason = std::move(reason);
  dead_letter_request req;
  req.topic = port_.topic();
  req.partition = port_.partition_number();
  req.offset = e.offset;
  req.subscription = rec_.name;
  req.dead_letter_topic = rec_.config.dead_letter_topic;
  req.delivery_count = e.deliveries;
  req.reason = e.reason;
  wire::batch_header h;
  h.first_timestamp = e.first_timestamp;
  h.append_time = e.append_time;
  h.attributes = e.attrs;
  wire::record_view rv;
  if (auto n = wire::detail::decode_record(std::span(e.data->bytes).subspan(e.pos, e.len), h, rv); n) {
    req.timestamp = rv.timestamp;
    if (rv.key) req.key = std::string(*rv.key);
    if (rv.value) req.value = std::string(*rv.value);
    for (auto& hv : rv.headers)
      req.headers.emplace_back(std::string(hv.key), hv.value ? std::optional<std::string>(*hv.value) : std::nullopt);
  }
  logger()->info("{}/{}/{} subscription {}: moving to dead-letter topic {}: {}", port_.topic(),
                 port_.partition_number(), e.offset, rec_.name, rec_.config.dead_letter_topic, e.reason);
  auto alive = alive_;
  int64_t off = e.offset;
  uint32_t gen = e.gen;
  port_.dead_letter(std::move(req), [this, alive, off, gen](const result<void>& r) {
    if (!*alive) return;
    auto it = entries_.find(off);
    if (it == entries_.end() || it->second->gen != gen) return;  // seek or retention dropped it
    entry& en = *it->second;
    if (!r) {
      logger()->error("{}/{}/{} subscription {}: writing the dead letter failed, retrying in {} ms: {}", port_.topic(),
                      port_.partition_number(), off, rec_.name, dead_letter_retry_ms, r.error().to_string());
      en.st = state::backoff;
      ++en.gen;
      port_.timers().reschedule(en, now_ms() + dead_letter_retry_ms);
      return;
    }
    control_op op;
    op.type = control_type::dead_letter;
    op.sub_id = rec_.id;
    op.offset = off;
    op.delivery_count = en.deliveries;
    op.reason = en.reason;
    std::vector<control_op> ops{std::move(op)};
    port_.append_control(std::move(ops), [this, alive, off](const result<void>& r2) {
      if (!*alive || r2) return;  // success: apply_control finished the entry
      logger()->error("{}/{}/{} subscription {}: recording the dead-letter move failed: {}", port_.topic(),
                      port_.partition_number(), off, rec_.name, r2.error().to_string());
      if (auto it2 = entries_.find(off); it2 != entries_.end() && it2->second->st == state::dead_lettering) {
        it2->second->st = state::backoff;
        ++it2->second->gen;
        port_.timers().reschedule(*it2->second, now_ms() + dead_letter_retry_ms);
      }
    });
  });
}

void dispatcher::finish(entry& e) {
  port_.timers().cancel(e);
  if (e.st == state::in_flight)
    if (auto* m = find_member(e.member)) --m->in_flight;
  entries_.erase(e.offset);
  window_bytes_ -= e.len;
  if (e.keyed) {
    auto it = keys_.find(e.key_hash);
    if (it != keys_.end()) {
      auto& ks = it->second;
      if (ks.active == &e) {
        if (ks.waiting.empty()) {
          keys_.erase(it);
        } else {
          entry* next = ks.waiting.front();
          ks.waiting.pop_front();
          ks.active = next;
          make_ready(*next);
        }
      } else {
        std::erase(ks.waiting, &e);
      }
    }
  }
  free_entry(&e);
  schedule_pass();
}

void dispatcher::drop_all() {
  for (auto& [o, e] : entries_) free_entry(e);
  entries_.clear();
  keys_.clear();
  redeliver_.clear();
  fresh_.clear();
  window_bytes_ = 0;
  for (auto& m : members_) m.in_flight = 0;
}

void dispatcher::rehome(entry& e) {
  if (!e.data || (e.pos == 0 && e.data->bytes.size() == e.len)) return;
  auto own = std::make_shared<chunk>();
  auto rec = std::span(e.data->bytes).subspan(e.pos, e.len);
  own->bytes.assign(rec.begin(), rec.end());
  e.data = std::move(own);
  e.pos = 0;
}

// ---- settle --------------------------------------------------------------------------------------

errc dispatcher::check_lease(uint64_t member_id, int64_t offset, entry*& out, std::string& why) {
  auto it = entries_.find(offset);
  if (it != entries_.end() && it->second->st == state::in_flight && it->second->member == member_id) {
    out = it->second;
    return errc::ok;
  }
  auto name = port_.topic() + "/" + std::to_string(port_.partition_number()) + "/" + std::to_string(offset);
  if (it == entries_.end()) {
    if (offset < 0 || offset >= port_.high_watermark()) {
      why = name + " is beyond the log end (" + std::to_string(port_.high_watermark()) + ")";
    } else if (state_->acks().contains(offset)) {
      why = name + " is already acknowledged in subscription " + rec_.name;
    } else {
      why = name + " was not delivered in subscription " + rec_.name;
    }
    return errc::unknown_message;
  }
  entry* e = it->second;
  switch (e->st) {
    case state::in_flight:
      why = name + " is leased to another member of subscription " + rec_.name;
      return errc::lease_not_held;
    case state::acking:
      why = name + " is already being acknowledged in subscription " + rec_.name;
      return errc::unknown_message;
    case state::dead_lettering:
      why = name + " is being moved to the dead-letter topic";
      return errc::lease_not_held;
    default:
      if (e->deliveries == 0) {
        why = name + " was not delivered in subscription " + rec_.name + " yet";
        return errc::unknown_message;
      }
      why = name + " is not leased to this member (its lease ended; it waits for redelivery)";
      return errc::lease_not_held;
  }
}

void dispatcher::settle(uint64_t member_id, std::span<const int64_t> acks, std::span<const nack_item> nacks,
                        std::span<const extend_item> extends, std::function<void(settle_outcome)> done) {
  settle_outcome out;
  const int32_t part = port_.partition_number();
  auto failed = [&](int64_t off, errc c, std::string why) {
    out.failures.push_back(settle_failure{part, off, c, std::move(why)});
  };
  member_slot* m = find_member(member_id);
  if (m == nullptr) {
    std::string why =
        "member " + std::to_string(member_id) + " is not a member of subscription " + rec_.name + " on this partition";
    for (auto o : acks) failed(o, errc::unknown_member, why);
    for (auto& n : nacks) failed(n.offset, errc::unknown_member, why);
    for (auto& x : extends) failed(x.offset, errc::unknown_member, why);
    done(std::move(out));
    return;
  }
  std::vector<int64_t> to_ack;
  to_ack.reserve(acks.size());
  std::string why;
  for (int64_t off : acks) {
    entry* e = nullptr;
    if (errc c = check_lease(member_id, off, e, why); c != errc::ok) {
      failed(off, c, why);
      continue;
    }
    port_.timers().cancel(*e);
    e->st = state::acking;
    ++e->gen;
    --m->in_flight;
    to_ack.push_back(off);
  }
  bool requeued = false;
  for (const auto& n : nacks) {
    entry* e = nullptr;
    if (n.delay_ms < -1 || n.delay_ms > max_settle_ms) {
      failed(n.offset, errc::invalid_argument,
             "nack delay must be 0.." + std::to_string(max_settle_ms) + " ms (or -1 for the backoff), got " +
                 std::to_string(n.delay_ms));
      continue;
    }
    if (errc c = check_lease(member_id, n.offset, e, why); c != errc::ok) {
      failed(n.offset, c, why);
      continue;
    }
    --m->in_flight;
    state_->series().nacks.inc();
    failed_delivery(*e, "nacked by member " + m->link->name(), n.delay_ms);
    ++out.nacked;
    requeued = true;
  }
  for (const auto& x : extends) {
    entry* e = nullptr;
    if (x.extend_ms < -1 || x.extend_ms == 0 || x.extend_ms > max_settle_ms) {
      failed(x.offset, errc::invalid_argument,
             "lease extension must be 1.." + std::to_string(max_settle_ms) + " ms (or -1 for the ack timeout), got " +
                 std::to_string(x.extend_ms));
      continue;
    }
    if (errc c = check_lease(member_id, x.offset, e, why); c != errc::ok) {
      failed(x.offset, c, why);
      continue;
    }
    int64_t by = x.extend_ms > 0 ? x.extend_ms : lease_ms(*m);
    port_.timers().reschedule(*e, now_ms() + by);
    ++out.extended;
  }
  if (requeued) schedule_pass();
  if (to_ack.empty()) {
    done(std::move(out));
    return;
  }
  std::sort(to_ack.begin(), to_ack.end());
  control_op op;
  op.type = control_type::ack;
  op.sub_id = rec_.id;
  for (int64_t o : to_ack) {
    if (!op.ranges.empty() && op.ranges.back().second == o)
      ++op.ranges.back().second;
    else
      op.ranges.emplace_back(o, o + 1);
  }
  std::vector<control_op> ops{std::move(op)};
  auto alive = alive_;
  port_.append_control(std::move(ops), [this, alive, to_ack = std::move(to_ack), out = std::move(out),
                                        done = std::move(done), part](const result<void>& r) mutable {
    if (r) {
      out.acked = static_cast<int32_t>(to_ack.size());
      if (*alive) state_->series().acks.inc(to_ack.size());  // else its series may be gone
    } else {
      for (int64_t o : to_ack) out.failures.push_back(settle_failure{part, o, r.error().code, r.error().message});
      if (*alive) {
        // Not durable: the messages go out again.
        for (int64_t o : to_ack)
          if (auto it = entries_.find(o); it != entries_.end() && it->second->st == state::acking)
            make_ready(*it->second);
        schedule_pass();
      }
    }
    done(std::move(out));
  });
}

// ---- inspection ----------------------------------------------------------------------------------

dispatcher::seek_preview dispatcher::preview_seek(int64_t new_cursor) const {
  auto st = stats();
  return seek_preview{st.cursor, new_cursor, st.backlog, std::max<int64_t>(0, st.high_watermark - new_cursor)};
}

dispatcher_stats dispatcher::stats() const {
  dispatcher_stats s;
  const ack_set& acks = state_->acks();
  s.cursor = acks.cursor();
  s.log_start = port_.log_start();
  s.high_watermark = port_.high_watermark();
  int64_t hwm = std::max(s.high_watermark, s.cursor);
  s.acked_above_cursor = acks.acked_above_cursor();
  s.backlog = std::max<int64_t>(0, (hwm - s.cursor) - acks.acked_in(s.cursor, hwm));
  for (auto& m : members_) s.in_flight += m.in_flight;
  s.redeliveries = redeliveries_;
  s.dead_lettered = state_->dead_lettered();
  s.expired = state_->expired();
  if (s.backlog > 0) {
    int64_t first = acks.next_unacked(s.cursor);
    if (auto it = entries_.find(first); it != entries_.end()) s.oldest_unacked_time = it->second->append_time;
  }
  s.window = entries_.size();
  s.members = members_.size();
  return s;
}

std::vector<std::pair<uint64_t, int64_t>> dispatcher::member_in_flight() const {
  std::vector<std::pair<uint64_t, int64_t>> v;
  for (auto& m : members_) v.emplace_back(m.link->id(), m.in_flight);
  return v;
}

}  // namespace ferry::subscription
