// dispatcher against an in-memory partition (fake_port): a log of real record batches, control
// batches applied as the partition would, a timing wheel on a manual clock. No threads, no sleeps:
// the test runs the posted work and moves the clock by hand.
#include "broker/subscription/dispatcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <deque>
#include <map>
#include <set>

#include "broker/scheduler/wheel_driver.h"

namespace ferry::subscription {
namespace {

struct msg {
  std::optional<std::string> key;
  std::string value;
  std::optional<int64_t> deliver_at = std::nullopt;
};

class recording_member final : public member_link {
 public:
  recording_member(uint64_t id, int64_t credit, int64_t ack_timeout_ms = -1)
      : member_link(id, "m" + std::to_string(id), "test", ack_timeout_ms) {
    add_credit(credit, 0);
    set_byte_limit(false);
  }
  void deliver(int32_t partition, std::vector<delivered_message> batch) override {
    if (journal != nullptr) {
      // Every delivery is in the newest journal record by the time it is sent.
      std::set<int64_t> in_last;
      ASSERT_FALSE(journal->empty()) << "deliveries sent before they were journaled";
      ASSERT_TRUE(decode_delivery_record(journal->back(), [&](int64_t o) { in_last.insert(o); }));
      for (auto& d : batch) EXPECT_TRUE(in_last.contains(d.offset)) << d.offset << " sent but not journaled";
    }
    for (auto& d : batch) got.push_back(d);
  }
  std::vector<int64_t> offsets() const {
    std::vector<int64_t> v;
    for (auto& d : got) v.push_back(d.offset);
    return v;
  }
  std::vector<delivered_message> got;
  const std::vector<std::string>* journal = nullptr;  // if set: checks deliveries were journaled first
};

class fake_port final : public partition_port {
 public:
  fake_port()
      : driver_(io_.get_executor(), clock_, [](scheduler::timer_entry& e) { static_cast<timed_entry&>(e).on_fire(); }) {
  }

  // ---- partition_port ----
  const std::string& topic() const override { return topic_; }
  int32_t partition_number() const override { return 0; }
  int64_t high_watermark() const override { return next_; }
  int64_t log_start() const override { return log_start_; }
  result<void> read(int64_t from, size_t max_bytes, std::vector<std::byte>& out) override {
    if (from < log_start_ || from > next_) return fail(errc::offset_out_of_range, "out of range");
    size_t got = 0;
    for (auto& [base, b] : log_) {
      auto h = wire::parse_batch_header(b);
      if (h->next_offset() <= from || base < log_start_) continue;
      if (got > 0 && got + b.size() > max_bytes) break;
      out.insert(out.end(), b.begin(), b.end());
      got += b.size();
    }
    return {};
  }
  void append_control(std::vector<control_op> ops, std::function<void(result<void>)> done) override {
    if (fail_control) {
      post([done] { done(fail(errc::storage_error, "injected")); });
      return;
    }
    auto b = encode_control_batch(ops, 1);
    int64_t base = append(std::move(b));
    int64_t last = next_ - 1;
    ++control_batches;
    post([this, base, last, ops = std::move(ops), done] {
      for (auto* d : dispatchers) d->apply_control(base, last, ops);
      done({});
    });
  }
  void dead_letter(dead_letter_request r, std::function<void(result<void>)> done) override {
    dead_letters.push_back(std::move(r));
    post([done] { done({}); });
  }
  scheduler::wheel_driver& timers() override { return driver_; }
  const ferry::clock& clock() const override { return clock_; }
  void post(std::function<void()> fn) override { posted_.push_back(std::move(fn)); }
  void record_deliveries(uint64_t sub_id, std::span<const int64_t> offsets, std::function<void()> journaled) override {
    EXPECT_EQ(sub_id, 11u);
    journal.push_back(encode_delivery_record(offsets));
    post(std::move(journaled));
  }
  std::vector<std::string> journal;

  // ---- test controls ----
  // Appends one batch; its append time is 5000 (see append()). `released`: a batch of released
  // delayed messages, as the partition writes them.
  int64_t produce(const std::vector<msg>& msgs, bool released = false) {
    wire::batch_builder bb;
    bb.set_released(released);
    for (auto& m : msgs)
      bb.add(m.key ? std::optional<std::string_view>(*m.key) : std::nullopt, std::string_view(m.value), {}, 1000,
             m.deliver_at);
    auto s = bb.finish(-1, 0, -1);
    return append(std::vector<std::byte>(s.begin(), s.end()));
  }
  // Runs posted work until none is left.
  void drain() {
    for (int guard = 0; guard < 100000 && !posted_.empty(); ++guard) {
      auto fn = std::move(posted_.front());
      posted_.pop_front();
      fn();
    }
  }
  void advance(int64_t ms) {
    clock_.advance_ms(ms);
    driver_.wake();
    drain();
  }
  void set_log_start(int64_t s) { log_start_ = s; }

  std::vector<dispatcher*> dispatchers;
  std::vector<dead_letter_request> dead_letters;
  int control_batches = 0;
  bool fail_control = false;

 private:
  int64_t append(std::vector<std::byte> b) {
    int64_t base = next_;
    auto h = wire::parse_batch_header(b);
    wire::stamp_batch(b, base, 0, 5000);
    next_ = base + h->record_count;
    log_.emplace(base, std::move(b));
    return base;
  }

  std::string topic_ = "orders";
  boost::asio::io_context io_;
  manual_clock clock_{1'700'000'000'000};
  scheduler::wheel_driver driver_;
  std::map<int64_t, std::vector<std::byte>> log_;
  int64_t next_ = 0;
  int64_t log_start_ = 0;
  std::deque<std::function<void()>> posted_;
};

meta::subscription_record sub_record(bool ordered = true, int32_t max_deliveries = 3) {
  meta::subscription_record r;
  r.topic = "orders";
  r.name = "billing";
  r.id = 11;
  r.config.ordered = ordered;
  r.config.max_deliveries = max_deliveries;
  r.config.ack_timeout_ms = 1000;
  r.config.backoff = meta::backoff_kind::fixed;
  r.config.backoff_initial_ms = 0;
  r.config.backoff_max_ms = 0;
  r.config.dead_letter_topic = "orders.billing.dlq";
  return r;
}

class dispatcher_test : public ::testing::Test {
 protected:
  void make(meta::subscription_record rec, window_limits lim = {}) {
    d_ = std::make_unique<dispatcher>(port_, std::move(rec), 0, lim);
    port_.dispatchers = {d_.get()};
  }
  std::shared_ptr<recording_member> join(uint64_t id, int64_t credit, int64_t ack_timeout = -1) {
    auto m = std::make_shared<recording_member>(id, credit, ack_timeout);
    d_->add_member(m);
    port_.drain();
    return m;
  }
  settle_outcome ack(uint64_t member, std::vector<int64_t> offs) {
    settle_outcome got;
    bool done = false;
    d_->settle(member, offs, {}, {}, [&](settle_outcome o) {
      got = std::move(o);
      done = true;
    });
    port_.drain();
    EXPECT_TRUE(done);
    return got;
  }
  settle_outcome nack(uint64_t member, int64_t off, int64_t delay) {
    settle_outcome got;
    std::vector<nack_item> n{{off, delay}};
    d_->settle(member, {}, n, {}, [&](settle_outcome o) { got = std::move(o); });
    port_.drain();
    return got;
  }

  fake_port port_;
  std::unique_ptr<dispatcher> d_;
};

TEST_F(dispatcher_test, delivers_each_message_once_within_the_credit) {
  make(sub_record(false));
  port_.produce({{std::nullopt, "a"}, {std::nullopt, "b"}, {std::nullopt, "c"}, {std::nullopt, "d"}});
  auto m = join(1, 3);
  EXPECT_EQ(m->offsets(), (std::vector<int64_t>{0, 1, 2})) << "never more than the credit";
  m->add_credit(10, 0);
  d_->wake();
  port_.drain();
  EXPECT_EQ(m->offsets(), (std::vector<int64_t>{0, 1, 2, 3}));
  for (auto& g : m->got) EXPECT_EQ(g.delivery_count, 1);
  EXPECT_EQ(d_->stats().in_flight, 4);
}

TEST_F(dispatcher_test, byte_credit_is_never_exceeded) {
  make(sub_record(false));
  port_.produce({{std::nullopt, std::string(100, 'x')}, {std::nullopt, std::string(100, 'y')}});
  auto m = std::make_shared<recording_member>(1, 100);
  m->set_byte_limit(true);
  m->add_credit(0, 150);
  d_->add_member(m);
  port_.drain();
  ASSERT_EQ(m->got.size(), 1u);
  EXPECT_LE(static_cast<int64_t>(m->got[0].record_len), 150);
  EXPECT_GE(m->credit_bytes(), 0);
}

TEST_F(dispatcher_test, durable_ack_moves_the_cursor_through_a_control_record) {
  make(sub_record(false));
  port_.produce({{std::nullopt, "a"}, {std::nullopt, "b"}, {std::nullopt, "c"}});
  auto m = join(1, 10);
  auto out = ack(1, {1, 0});
  EXPECT_EQ(out.acked, 2);
  EXPECT_TRUE(out.failures.empty());
  EXPECT_EQ(port_.control_batches, 1) << "one control batch for the whole ack request";
  EXPECT_EQ(d_->cursor(), 2);
  auto st = d_->stats();
  EXPECT_EQ(st.in_flight, 1);
  EXPECT_EQ(st.backlog, 1);
  ack(1, {2});
  // The control batches' own offsets count as acknowledged: nothing is left.
  EXPECT_EQ(d_->stats().backlog, 0);
  EXPECT_EQ(d_->cursor(), port_.high_watermark());
}

TEST_F(dispatcher_test, ack_from_member_without_lease_is_rejected_and_changes_nothing) {
  make(sub_record(false));
  port_.produce({{std::nullopt, "a"}, {std::nullopt, "b"}});
  auto m1 = join(1, 1);
  auto m2 = join(2, 1);
  ASSERT_EQ(m1->offsets(), (std::vector<int64_t>{0}));
  ASSERT_EQ(m2->offsets(), (std::vector<int64_t>{1}));
  auto out = ack(2, {0, 7, 99});
  EXPECT_EQ(out.acked, 0);
  ASSERT_EQ(out.failures.size(), 3u);
  EXPECT_EQ(out.failures[0].code, errc::lease_not_held);
  EXPECT_EQ(out.failures[1].code, errc::unknown_message);
  EXPECT_EQ(out.failures[2].code, errc::unknown_message);
  EXPECT_FALSE(out.failures[2].message.empty());
  EXPECT_EQ(port_.control_batches, 0);
  EXPECT_EQ(d_->cursor(), 0);
  auto unknown = ack(77, {0});
  ASSERT_EQ(unknown.failures.size(), 1u);
  EXPECT_EQ(unknown.failures[0].code, errc::unknown_member);
  ack(1, {0});
  auto twice = ack(1, {0});
  ASSERT_EQ(twice.failures.size(), 1u);
  EXPECT_EQ(twice.failures[0].code, errc::unknown_message) << "already acknowledged";
}

TEST_F(dispatcher_test, expired_lease_redelivers_with_the_next_delivery_count) {
  make(sub_record(false, 0));
  port_.produce({{std::nullopt, "a"}});
  auto m = join(1, 10);
  ASSERT_EQ(m->got.size(), 1u);
  port_.advance(999);
  EXPECT_EQ(m->got.size(), 1u) << "not before the ack timeout";
  port_.advance(1);
  ASSERT_EQ(m->got.size(), 2u);
  EXPECT_EQ(m->got[1].offset, 0);
  EXPECT_EQ(m->got[1].delivery_count, 2);
  EXPECT_EQ(d_->stats().redeliveries, 1);
  // The first lease is gone: acking the old delivery is still fine, it is the same member's lease.
  EXPECT_EQ(ack(1, {0}).acked, 1);
}

TEST_F(dispatcher_test, nack_with_delay_redelivers_no_earlier_than_the_delay) {
  make(sub_record(false, 0));
  port_.produce({{std::nullopt, "a"}});
  auto m = join(1, 10);
  EXPECT_EQ(nack(1, 0, 500).nacked, 1);
  port_.advance(499);
  EXPECT_EQ(m->got.size(), 1u);
  port_.advance(1);
  ASSERT_EQ(m->got.size(), 2u);
  EXPECT_EQ(m->got[1].delivery_count, 2);
  auto bad = nack(1, 0, -5);
  ASSERT_EQ(bad.failures.size(), 1u);
  EXPECT_EQ(bad.failures[0].code, errc::invalid_argument);
}

TEST_F(dispatcher_test, max_deliveries_moves_the_message_to_the_dead_letter_topic) {
  make(sub_record(false, 2));
  port_.produce({{std::string("k"), "poison"}, {std::nullopt, "fine"}});
  auto m = join(1, 10);
  nack(1, 0, 0);
  ASSERT_EQ(m->got.size(), 3u);  // 0, 1, 0 again
  EXPECT_EQ(m->got[2].delivery_count, 2);
  nack(1, 0, 0);
  ASSERT_EQ(port_.dead_letters.size(), 1u);
  auto& dl = port_.dead_letters[0];
  EXPECT_EQ(dl.offset, 0);
  EXPECT_EQ(dl.delivery_count, 2);
  EXPECT_EQ(dl.dead_letter_topic, "orders.billing.dlq");
  EXPECT_EQ(dl.key, std::optional<std::string>("k"));
  EXPECT_EQ(dl.value, std::optional<std::string>("poison"));
  EXPECT_NE(dl.reason.find("nacked"), std::string::npos) << dl.reason;
  EXPECT_NE(dl.reason.find("2 deliveries"), std::string::npos) << dl.reason;
  auto st = d_->stats();
  EXPECT_EQ(st.dead_lettered, 1);
  EXPECT_EQ(m->got.size(), 3u) << "a dead letter is not delivered again";
  ack(1, {1});
  EXPECT_EQ(d_->stats().backlog, 0) << "a dead-lettered message counts as acknowledged";
}

TEST_F(dispatcher_test, ordered_keys_hold_the_next_message_of_a_key_until_the_previous_is_acked) {
  make(sub_record(true, 0));
  port_.produce({{std::string("k1"), "a"},
                 {std::string("k1"), "b"},
                 {std::string("k2"), "c"},
                 {std::nullopt, "d"},
                 {std::nullopt, "e"}});
  auto m1 = join(1, 10);
  auto m2 = join(2, 10);
  std::set<int64_t> out;
  for (auto* m : {m1.get(), m2.get()})
    for (auto o : m->offsets()) out.insert(o);
  EXPECT_EQ(out, (std::set<int64_t>{0, 2, 3, 4})) << "offset 1 (k1) waits for offset 0";
  uint64_t holder = std::find(m1->offsets().begin(), m1->offsets().end(), 0) != m1->offsets().end() ? 1 : 2;
  // A redelivery of 0 keeps 1 blocked.
  nack(holder, 0, 0);
  out.clear();
  for (auto* m : {m1.get(), m2.get()})
    for (auto o : m->offsets()) out.insert(o);
  EXPECT_FALSE(out.contains(1));
  uint64_t holder2 = 0;
  for (auto* m : {m1.get(), m2.get()})
    for (auto& g : m->got)
      if (g.offset == 0 && g.delivery_count == 2) holder2 = m->id();
  ASSERT_NE(holder2, 0u);
  ack(holder2, {0});
  bool got1 = false;
  for (auto* m : {m1.get(), m2.get()})
    for (auto o : m->offsets()) got1 |= o == 1;
  EXPECT_TRUE(got1) << "acking 0 releases 1";
}

TEST_F(dispatcher_test, ordered_keys_hold_across_a_member_leaving) {
  make(sub_record(true, 0));
  port_.produce({{std::string("k"), "a"}, {std::string("k"), "b"}});
  auto m1 = join(1, 10);
  ASSERT_EQ(m1->offsets(), (std::vector<int64_t>{0}));
  auto m2 = join(2, 10);
  d_->remove_member(1);
  port_.drain();
  ASSERT_EQ(m2->offsets(), (std::vector<int64_t>{0})) << "0 goes to the other member, 1 still waits";
  EXPECT_EQ(m2->got[0].delivery_count, 2);
  ack(2, {0});
  EXPECT_EQ(m2->offsets(), (std::vector<int64_t>{0, 1}));
}

TEST_F(dispatcher_test, unordered_subscription_delivers_one_key_in_parallel) {
  make(sub_record(false, 0));
  port_.produce({{std::string("k"), "a"}, {std::string("k"), "b"}, {std::string("k"), "c"}});
  auto m = join(1, 10);
  EXPECT_EQ(m->offsets(), (std::vector<int64_t>{0, 1, 2}));
}

TEST_F(dispatcher_test, extend_renews_the_lease) {
  make(sub_record(false, 0));
  port_.produce({{std::nullopt, "a"}});
  auto m = join(1, 10);
  port_.advance(800);
  std::vector<extend_item> x{{0, 1000}};
  settle_outcome got;
  d_->settle(1, {}, {}, x, [&](const settle_outcome& o) { got = o; });
  port_.drain();
  EXPECT_EQ(got.extended, 1);
  port_.advance(900);
  EXPECT_EQ(m->got.size(), 1u) << "the extension moved the deadline";
  port_.advance(100);
  EXPECT_EQ(m->got.size(), 2u);
}

TEST_F(dispatcher_test, checkpoint_restores_cursor_holes_and_delivery_counts) {
  make(sub_record(false, 0));
  port_.produce({{std::nullopt, "a"}, {std::nullopt, "b"}, {std::nullopt, "c"}, {std::nullopt, "d"}});
  auto m = join(1, 10);
  ack(1, {1, 3});
  nack(1, 2, 0);  // 2 goes out again: delivery count 2
  auto blob = d_->checkpoint(port_.high_watermark());
  // A new dispatcher from the checkpoint: what a restart does.
  auto d2 = std::make_unique<dispatcher>(port_, sub_record(false, 0), 0);
  auto applied = d2->restore(blob);
  ASSERT_TRUE(applied) << applied.error().to_string();
  EXPECT_EQ(*applied, port_.high_watermark());
  d_.reset();
  port_.dispatchers = {d2.get()};
  EXPECT_EQ(d2->cursor(), 0);
  auto m2 = std::make_shared<recording_member>(5, 10);
  d2->add_member(m2);
  port_.drain();
  ASSERT_EQ(m2->offsets(), (std::vector<int64_t>{0, 2})) << "acked 1 and 3 are not delivered again";
  EXPECT_EQ(m2->got[0].delivery_count, 2) << "0 was delivered once before the restart";
  EXPECT_EQ(m2->got[1].delivery_count, 3) << "2 was delivered twice before the restart";
  auto bad = d2->restore("garbage");
  EXPECT_FALSE(bad);
}

TEST_F(dispatcher_test, deliveries_journaled_after_the_checkpoint_count_after_a_restart) {
  make(sub_record(false, 0));
  port_.produce({{std::nullopt, "a"}, {std::nullopt, "b"}, {std::nullopt, "c"}, {std::nullopt, "d"}});
  auto m = std::make_shared<recording_member>(1, 2);
  m->journal = &port_.journal;
  d_->add_member(m);
  port_.drain();
  ASSERT_EQ(m->offsets(), (std::vector<int64_t>{0, 1}));
  auto blob = d_->checkpoint(port_.high_watermark());
  size_t after_checkpoint = port_.journal.size();
  m->add_credit(2, 0);
  d_->wake();
  port_.drain();
  m->add_credit(1, 0);
  nack(1, 0, 0);  // 0 goes out again: its second delivery, after the checkpoint
  ASSERT_EQ(m->offsets(), (std::vector<int64_t>{0, 1, 2, 3, 0}));
  ASSERT_GT(port_.journal.size(), after_checkpoint);
  // A crash now: the checkpoint knows one delivery each of 0 and 1; the journal has the rest.
  auto d2 = std::make_unique<dispatcher>(port_, sub_record(false, 0), 0);
  ASSERT_TRUE(d2->restore(blob));
  for (size_t i = after_checkpoint; i < port_.journal.size(); ++i)
    ASSERT_TRUE(d2->restore_deliveries(port_.journal[i]));
  EXPECT_FALSE(d2->restore_deliveries("\x07junk")) << "a record that does not parse is an error";
  d_.reset();
  port_.dispatchers = {d2.get()};
  auto m2 = std::make_shared<recording_member>(5, 10);
  d2->add_member(m2);
  port_.drain();
  ASSERT_EQ(m2->offsets(), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(m2->got[0].delivery_count, 3) << "0 went out twice before the crash";
  EXPECT_EQ(m2->got[1].delivery_count, 2);
  EXPECT_EQ(m2->got[2].delivery_count, 2) << "2 went out once, after the checkpoint";
  EXPECT_EQ(m2->got[3].delivery_count, 2);
}

TEST(delivery_record, round_trips_runs_of_offsets_in_any_order) {
  std::vector<int64_t> offs = {9, 3, 4, 5, 100, 101, 7, 1'000'000'000'000};
  auto rec = encode_delivery_record(offs);
  std::vector<int64_t> back;
  ASSERT_TRUE(decode_delivery_record(rec, [&](int64_t o) { back.push_back(o); }));
  std::sort(offs.begin(), offs.end());
  EXPECT_EQ(back, offs);
  EXPECT_LT(rec.size(), 20u) << "runs keep a round of consecutive offsets small";
  for (size_t cut = 0; cut < rec.size(); ++cut)
    EXPECT_FALSE(decode_delivery_record(rec.substr(0, cut), [](int64_t) {})) << "truncated at " << cut;
}

TEST_F(dispatcher_test, seek_control_record_resets_the_state) {
  make(sub_record(false, 0));
  port_.produce({{std::nullopt, "a"}, {std::nullopt, "b"}, {std::nullopt, "c"}});
  auto m = join(1, 10);
  auto preview = d_->preview_seek(2);
  EXPECT_EQ(preview.old_cursor, 0);
  EXPECT_EQ(preview.new_backlog, 1);
  control_op op;
  op.type = control_type::seek;
  op.sub_id = 11;
  op.offset = 2;
  bool done = false;
  port_.append_control({op}, [&](const result<void>&) { done = true; });
  port_.drain();
  ASSERT_TRUE(done);
  EXPECT_EQ(d_->cursor(), 2);
  EXPECT_EQ(d_->stats().in_flight, 1) << "only offset 2 went out again";
  EXPECT_EQ(m->got.back().offset, 2);
}

TEST_F(dispatcher_test, control_offsets_stay_acknowledged_across_a_seek_below_them) {
  make(sub_record(false, 0));
  port_.produce({{std::nullopt, "a"}, {std::nullopt, "b"}, {std::nullopt, "c"}});
  auto m = join(1, 100);
  ack(1, {0, 1, 2});  // control batch at offset 3
  port_.produce({{std::nullopt, "d"}, {std::nullopt, "e"}});
  d_->wake();
  port_.drain();
  ASSERT_EQ(ack(1, {4, 5}).acked, 2);  // control batch at offset 6
  control_op op;
  op.type = control_type::seek;
  op.sub_id = 11;
  op.offset = 0;
  port_.append_control({op}, [](const result<void>&) {});  // control batch at offset 7
  port_.drain();
  std::vector<int64_t> again;
  for (size_t i = 5; i < m->got.size(); ++i) again.push_back(m->got[i].offset);
  ASSERT_EQ(m->offsets(), (std::vector<int64_t>{0, 1, 2, 4, 5, 0, 1, 2, 4, 5}));
  EXPECT_EQ(again, (std::vector<int64_t>{0, 1, 2, 4, 5})) << "control offsets are never delivered";
  ack(1, again);
  EXPECT_EQ(d_->cursor(), port_.high_watermark()) << "control offsets do not hold the cursor back";
  EXPECT_EQ(d_->stats().backlog, 0);
}

TEST_F(dispatcher_test, delayed_originals_are_skipped_and_released_copies_wait_for_their_due_time) {
  make(sub_record(false, 0));
  // Appended at 5000: a record due at 9000 is the delay index's; one due at 4000 is due at once.
  port_.produce({{std::nullopt, "later", 9000}, {std::nullopt, "now", 4000}, {std::nullopt, "plain"}});
  auto m = join(1, 10);
  EXPECT_EQ(m->offsets(), (std::vector<int64_t>{1, 2})) << "the delayed original is not delivered from the log";
  ack(1, {1, 2});
  EXPECT_EQ(d_->stats().backlog, 0) << "the delayed original counts as acknowledged";
  // The released copy (due at 9000), while the broker's clock is before that (a step back):
  // it waits, and goes out once the clock passes its due time.
  const int64_t wall = port_.clock().now_ms();
  port_.produce({{std::nullopt, "later", wall + 800}}, true);
  d_->wake();
  port_.drain();
  EXPECT_EQ(m->got.size(), 2u) << "never before its due time";
  port_.advance(799);
  EXPECT_EQ(m->got.size(), 2u);
  port_.advance(1);
  ASSERT_EQ(m->got.size(), 3u);
  EXPECT_EQ(m->got[2].delivery_count, 1);
}

TEST_F(dispatcher_test, retention_expiry_is_counted) {
  make(sub_record(false, 0));
  port_.produce({{std::nullopt, "a"}, {std::nullopt, "b"}, {std::nullopt, "c"}});
  auto m = join(1, 10);
  ack(1, {1});
  port_.set_log_start(2);
  d_->expire_below(2);
  auto st = d_->stats();
  EXPECT_EQ(st.expired, 1) << "offset 0 was never acknowledged";
  EXPECT_EQ(st.cursor, 2);
  EXPECT_EQ(st.in_flight, 1);
}

TEST_F(dispatcher_test, window_limits_what_is_held_in_memory) {
  window_limits lim;
  lim.max_messages = 3;
  make(sub_record(false, 0), lim);
  std::vector<msg> many;
  many.reserve(10);
  for (int i = 0; i < 10; ++i) many.push_back({std::nullopt, "v" + std::to_string(i)});
  port_.produce(many);
  auto m = join(1, 100);
  EXPECT_EQ(m->got.size(), 3u);
  ack(1, {0, 1, 2});
  EXPECT_EQ(m->got.size(), 6u);
}

TEST_F(dispatcher_test, failed_ack_write_redelivers_instead_of_losing_the_message) {
  make(sub_record(false, 0));
  port_.produce({{std::nullopt, "a"}});
  auto m = join(1, 10);
  port_.fail_control = true;
  auto out = ack(1, {0});
  EXPECT_EQ(out.acked, 0);
  ASSERT_EQ(out.failures.size(), 1u);
  EXPECT_EQ(out.failures[0].code, errc::storage_error);
  EXPECT_EQ(m->got.size(), 2u) << "not durably acked: delivered again";
}

}  // namespace
}  // namespace ferry::subscription
