// The consumer, the admin subscription calls and the reader's control-batch skipping against the
// in-process fake broker (client/test/fake_broker.h). No sleeps for timing: every wait is for a
// condition, with a deadline.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "client/test/fake_broker.h"
#include "ferry/client/client.h"
#include "schema/record_batch.h"

namespace fc = ferry::client;
namespace w = ferry::wire;
using ferry::client::testing::fake_broker;
using namespace std::chrono_literals;

namespace {

// Waits for `pred` (checked every millisecond) for at most `limit`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

template <class F>
auto locked(fake_broker& b, F f) {
  std::lock_guard lk(b.mu);
  return f();
}

fc::consumer_options copts(const fake_broker& b) {
  fc::consumer_options o;
  o.bootstrap = b.address();
  o.reconnect_backoff = 10ms;
  o.reconnect_backoff_max = 50ms;
  return o;
}

void produce(fake_broker& b, const std::string& topic, int n, int32_t partition = 0) {
  fc::producer_options o;
  o.bootstrap = b.address();
  auto p = fc::producer::create(o);
  ASSERT_TRUE(p);
  for (int i = 0; i < n; ++i) {
    fc::message m;
    m.partition = partition;
    m.value = "m" + std::to_string(i);
    (*p)->send(topic, std::move(m), nullptr);
  }
  ASSERT_TRUE((*p)->flush());
  (*p)->close();
}

// Polls until `n` deliveries arrived (or the deadline passed).
std::vector<fc::delivery> poll_n(fc::consumer& c, size_t n, std::chrono::milliseconds limit = 10s) {
  std::vector<fc::delivery> out;
  auto end = std::chrono::steady_clock::now() + limit;
  while (out.size() < n && std::chrono::steady_clock::now() < end) {
    auto r = c.poll(100ms, n - out.size());
    EXPECT_TRUE(r) << r.error().to_string();
    if (!r) break;
    for (auto& d : *r) out.push_back(std::move(d));
  }
  return out;
}

// Collects settle results by message offset.
struct outcomes {
  std::mutex mu;
  std::map<int64_t, ferry::result<void>> by_offset;
  fc::settle_callback cb(int64_t offset) {
    return [this, offset](const ferry::result<void>& r) {
      std::lock_guard lk(mu);
      by_offset.emplace(offset, r);
    };
  }
  size_t size() {
    std::lock_guard lk(mu);
    return by_offset.size();
  }
  std::optional<ferry::errc> code(int64_t offset) {
    std::lock_guard lk(mu);
    auto it = by_offset.find(offset);
    if (it == by_offset.end()) return std::nullopt;
    return it->second ? ferry::errc::ok : it->second.error().code;
  }
};

TEST(consumer, deliveries_are_decoded_byte_for_byte) {
  fake_broker b;
  b.add_topic("t", 1);
  // One batch built by hand, for what the producer API cannot express (null values, null header
  // values), then ordinary produced messages with relative and absolute delays.
  w::batch_builder bb;
  std::vector<w::header_view> hs{
      {"trace", std::string_view("abc")}, {"empty", std::string_view("")}, {"null", std::nullopt}};
  bb.add(std::string_view("k1"), std::string_view(std::string("v\0\xff", 3)), hs, 5'000);
  bb.add(std::nullopt, std::nullopt, {}, 5'007, 9'999'999);
  auto bytes = bb.finish(-1, 0, -1);
  b.append_batch("t", 0, std::vector<std::byte>(bytes.begin(), bytes.end()), 4'242);
  {
    fc::producer_options po;
    po.bootstrap = b.address();
    auto p = fc::producer::create(po);
    ASSERT_TRUE(p);
    fc::message rel;
    rel.key = "rel";
    rel.value = "due later";
    rel.delay_ms = 60'000;
    rel.timestamp_ms = 77;
    ASSERT_TRUE((*p)->send("t", rel).get());
  }
  b.add_subscription("t", "s");
  auto c = fc::consumer::create(copts(b), "t", "s");
  ASSERT_TRUE(c) << c.error().to_string();
  auto got = poll_n(**c, 3);
  ASSERT_EQ(got.size(), 3u);

  EXPECT_EQ(got[0].topic, "t");
  EXPECT_EQ(got[0].partition, 0);
  EXPECT_EQ(got[0].offset, 0);
  EXPECT_EQ(got[0].id(), "t/0/0");
  EXPECT_EQ(got[0].key, "k1");
  EXPECT_EQ(got[0].value, std::string("v\0\xff", 3));
  EXPECT_EQ(got[0].timestamp_ms, 5'000);
  EXPECT_EQ(got[0].append_time_ms, 4'242);
  ASSERT_EQ(got[0].headers.size(), 3u);
  EXPECT_EQ(got[0].headers[0].key, "trace");
  EXPECT_EQ(got[0].headers[0].value, "abc");
  EXPECT_EQ(got[0].headers[1].value, "");
  EXPECT_EQ(got[0].headers[2].key, "null");
  EXPECT_FALSE(got[0].headers[2].value);
  EXPECT_FALSE(got[0].deliver_at_ms);
  EXPECT_EQ(got[0].delivery_count, 1);
  EXPECT_EQ(got[0].member_id, (*c)->member_id());

  EXPECT_EQ(got[1].offset, 1);
  EXPECT_FALSE(got[1].key);
  EXPECT_FALSE(got[1].value);
  EXPECT_TRUE(got[1].headers.empty());
  EXPECT_EQ(got[1].timestamp_ms, 5'007);
  EXPECT_EQ(got[1].deliver_at_ms, 9'999'999);

  EXPECT_EQ(got[2].offset, 2);  // the delivered offset, not the record's delta in its batch
  EXPECT_EQ(got[2].key, "rel");
  EXPECT_EQ(got[2].value, "due later");
  EXPECT_EQ(got[2].timestamp_ms, 77);
  EXPECT_EQ(got[2].deliver_at_ms, 1000 + 60'000);  // relative to the append time (the fake stamps 1000)

  // A nacked message comes back with its delivery count raised.
  outcomes o;
  (*c)->nack(got[1], 250ms, o.cb(1));
  auto again = poll_n(**c, 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].offset, 1);
  EXPECT_EQ(again[0].delivery_count, 2);
  EXPECT_EQ(again[0].deliver_at_ms, 9'999'999);
  ASSERT_TRUE((*c)->flush());
  EXPECT_EQ(o.code(1), ferry::errc::ok);
  auto nacks = locked(b, [&] { return b.nacks_seen; });
  ASSERT_EQ(nacks.size(), 1u);
  EXPECT_EQ(nacks[0].second, 250);
}

TEST(consumer, credit_is_never_exceeded_and_returned_on_poll) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 50);
  b.add_subscription("t", "s");
  auto o = copts(b);
  o.credit_messages = 5;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c) << c.error().to_string();
  auto credits = locked(b, [&] { return b.join_credits; });
  ASSERT_EQ(credits.size(), 1u);
  EXPECT_EQ(credits[0].first, 5);
  EXPECT_EQ(credits[0].second, o.credit_bytes);
  ASSERT_TRUE(eventually([&] { return locked(b, [&] { return b.delivered_total; }) == 5; }));
  // Nothing was taken: the broker has no credit, the buffer holds exactly the window.
  ASSERT_TRUE((*c)->flush());
  EXPECT_EQ(locked(b, [&] { return b.delivered_total; }), 5);
  EXPECT_EQ(locked(b, [&] { return b.credit_returned_messages; }), 0);

  auto two = (*c)->poll(1s, 2);
  ASSERT_TRUE(two);
  ASSERT_EQ(two->size(), 2u);
  // The two taken come back as credit (messages, and the bytes of their records), so two more come.
  ASSERT_TRUE(eventually([&] { return locked(b, [&] { return b.delivered_total; }) == 7; }));
  EXPECT_EQ(locked(b, [&] { return b.credit_returned_messages; }), 2);
  int64_t record_bytes = 0;
  for (auto& d : *two) record_bytes += int64_t(locked(b, [&] { return b.record_bytes.at({d.partition, d.offset}); }));
  EXPECT_EQ(locked(b, [&] { return b.credit_returned_bytes; }), record_bytes);
  // Take the five buffered ones: exactly the five taken go back, and the broker, which never
  // sends beyond its credit, has used all of it again.
  auto next = poll_n(**c, 5);
  ASSERT_EQ(next.size(), 5u);
  EXPECT_EQ(next.front().offset, 2);
  EXPECT_EQ(next.back().offset, 6);
  ASSERT_TRUE((*c)->flush());
  EXPECT_EQ(locked(b, [&] { return b.credit_returned_messages; }), 7);
  ASSERT_TRUE(eventually([&] { return locked(b, [&] { return b.delivered_total; }) == 12; }));
  EXPECT_EQ(locked(b, [&] { return b.members.begin()->second.credit_messages; }), 0);
}

TEST(consumer, byte_credit_bounds_the_buffer) {
  fake_broker b;
  b.add_topic("t", 1);
  {
    fc::producer_options po;
    po.bootstrap = b.address();
    auto p = fc::producer::create(po);
    ASSERT_TRUE(p);
    for (int i = 0; i < 10; ++i) {
      fc::message m;
      m.value = std::string(1000, 'x');
      (*p)->send("t", std::move(m), nullptr);
    }
    ASSERT_TRUE((*p)->flush());
  }
  b.add_subscription("t", "s");
  auto o = copts(b);
  o.credit_bytes = 3500;  // three records of ~1010 bytes
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  ASSERT_TRUE(eventually([&] { return locked(b, [&] { return b.delivered_total; }) == 3; }));
  ASSERT_TRUE((*c)->flush());
  EXPECT_EQ(locked(b, [&] { return b.delivered_total; }), 3);
  auto one = (*c)->poll(1s, 1);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  ASSERT_TRUE(eventually([&] { return locked(b, [&] { return b.delivered_total; }) == 4; }));
  ASSERT_TRUE((*c)->flush());
  int64_t bytes = locked(b, [&] { return b.credit_returned_bytes; });
  EXPECT_GT(bytes, 1000);  // the record: value plus framing
  EXPECT_LT(bytes, 1100);
  EXPECT_EQ(locked(b, [&] { return b.members.begin()->second.credit_bytes; }), 3500 - 3 * bytes);
}

// Acks queued within the linger travel together. The linger here never runs out during the test
// and the batch limit is above the count, so what the fake sees depends on no timing: nothing
// before flush(), then all 500 in one request.
TEST(consumer, acks_are_batched) {
  fake_broker b;
  b.add_topic("t", 2);
  produce(b, "t", 300, 0);
  produce(b, "t", 200, 1);
  b.add_subscription("t", "s");
  auto o = copts(b);
  o.ack_linger = std::chrono::minutes(10);
  o.ack_batch = 1024;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  auto got = poll_n(**c, 500);
  ASSERT_EQ(got.size(), 500u);
  std::atomic<int> ok{0};
  for (auto& d : got) (*c)->ack(d, [&](const ferry::result<void>& r) { ok += r ? 1 : 0; });
  auto items_sent = [&] {
    size_t n = 0;
    for (auto k : locked(b, [&] { return b.ack_request_items; })) n += k;
    return n;
  };
  EXPECT_EQ(items_sent(), 0u) << "acks went out before the linger ran out or the batch was full";
  ASSERT_TRUE((*c)->flush());
  EXPECT_EQ(ok, 500);
  EXPECT_EQ(locked(b, [&] { return b.acked_total; }), 500);
  std::vector<size_t> with_items;
  for (auto n : locked(b, [&] { return b.ack_request_items; }))
    if (n > 0) with_items.push_back(n);
  EXPECT_EQ(with_items, std::vector<size_t>{500}) << "500 acks queued together travel in one request";
}

TEST(consumer, ack_linger_sends_without_a_flush) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 3);
  b.add_subscription("t", "s");
  auto o = copts(b);
  o.ack_linger = 5ms;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  auto got = poll_n(**c, 3);
  ASSERT_EQ(got.size(), 3u);
  outcomes out;
  for (auto& d : got) (*c)->ack(d, out.cb(d.offset));
  // No flush(), no full batch: the linger alone sends them.
  ASSERT_TRUE(eventually([&] { return locked(b, [&] { return b.acked_total; }) == 3; }));
  ASSERT_TRUE(eventually([&] { return out.size() == 3; }));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out.code(i), ferry::errc::ok);
}

TEST(consumer, ack_batch_sends_without_waiting_for_the_linger) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 150);
  b.add_subscription("t", "s");
  auto o = copts(b);
  o.ack_linger = std::chrono::minutes(10);
  o.ack_batch = 100;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  auto got = poll_n(**c, 150);
  ASSERT_EQ(got.size(), 150u);
  // A full batch goes at once, long before the ten-minute linger.
  for (int i = 0; i < 100; ++i) (*c)->ack(got[i]);
  ASSERT_TRUE(eventually([&] { return locked(b, [&] { return b.acked_total; }) == 100; }));
  for (int i = 100; i < 150; ++i) (*c)->ack(got[i]);
  ASSERT_TRUE((*c)->flush());  // the rest would wait for the linger
  EXPECT_EQ(locked(b, [&] { return b.acked_total; }), 150);
  auto sizes = locked(b, [&] { return b.ack_request_items; });
  size_t total = 0;
  for (auto n : sizes) {
    EXPECT_LE(n, 100u);
    total += n;
  }
  EXPECT_EQ(total, 150u);
}

TEST(consumer, failures_reach_the_right_callbacks) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 10);
  b.add_subscription("t", "s");
  {
    std::lock_guard lk(b.mu);
    b.fail_item[{0, 3}] = ferry::errc::lease_not_held;
    b.fail_item[{0, 5}] = ferry::errc::unknown_message;
  }
  auto o = copts(b);
  o.ack_linger = 20ms;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  auto got = poll_n(**c, 10);
  ASSERT_EQ(got.size(), 10u);
  outcomes out;
  for (int i = 0; i < 8; ++i) (*c)->ack(got[i], out.cb(i));
  (*c)->nack(got[8], std::nullopt, out.cb(8));
  (*c)->extend(got[9], 5s, out.cb(9));
  auto fl = (*c)->flush();
  ASSERT_FALSE(fl);  // the first error since the last flush
  EXPECT_TRUE(fl.error().code == ferry::errc::lease_not_held || fl.error().code == ferry::errc::unknown_message);
  ASSERT_EQ(out.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    auto want = i == 3 ? ferry::errc::lease_not_held : i == 5 ? ferry::errc::unknown_message : ferry::errc::ok;
    EXPECT_EQ(out.code(i), want) << "offset " << i;
  }
  {
    std::lock_guard lk(out.mu);
    EXPECT_NE(out.by_offset.at(3).error().message.find("t/0/3"), std::string::npos)
        << out.by_offset.at(3).error().message;
  }
  auto [nacks, extends] = locked(b, [&] { return std::pair{b.nacks_seen, b.extends_seen}; });
  ASSERT_EQ(nacks.size(), 1u);
  EXPECT_EQ(nacks[0].second, -1);  // the subscription's backoff
  ASSERT_EQ(extends.size(), 1u);
  EXPECT_EQ(extends[0].second, 5000);
  EXPECT_TRUE((*c)->flush());  // the error was reported once

  // Extend then ack of the same message: two requests (a failure names no kind), both fine.
  auto re = poll_n(**c, 1);
  ASSERT_EQ(re.size(), 1u);
  EXPECT_EQ(re[0].offset, 8);
  size_t before = locked(b, [&] { return b.ack_request_items.size(); });
  outcomes two;
  (*c)->extend(re[0], std::nullopt, two.cb(1));
  (*c)->ack(re[0], two.cb(2));
  ASSERT_TRUE((*c)->flush());
  EXPECT_EQ(two.code(1), ferry::errc::ok);
  EXPECT_EQ(two.code(2), ferry::errc::ok);
  auto sizes = locked(b, [&] { return b.ack_request_items; });
  std::vector<size_t> later;
  for (size_t i = before; i < sizes.size(); ++i)
    if (sizes[i] > 0) later.push_back(sizes[i]);
  EXPECT_EQ(later, (std::vector<size_t>{1, 1}));
  EXPECT_EQ(locked(b, [&] { return b.extends_seen.back().second; }), -1);  // the member's ack timeout
}

TEST(consumer, request_level_error_fails_every_item_of_the_request) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 4);
  b.add_subscription("t", "s");
  auto o = copts(b);
  o.ack_linger = 20ms;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  auto got = poll_n(**c, 4);
  ASSERT_EQ(got.size(), 4u);
  ASSERT_TRUE((*c)->flush());  // the credit for the four goes out first
  b.fail_ack_request = b.ack_requests + 1;
  outcomes out;
  for (auto& d : got) (*c)->ack(d, out.cb(d.offset));
  auto fl = (*c)->flush();
  ASSERT_FALSE(fl);
  EXPECT_EQ(fl.error().code, ferry::errc::not_ready);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out.code(i), ferry::errc::not_ready);
}

TEST(consumer, reconnect_rejoins_and_old_acks_fail_locally) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 5);
  b.add_subscription("t", "s");
  auto c = fc::consumer::create(copts(b), "t", "s");
  ASSERT_TRUE(c);
  uint64_t first = (*c)->member_id();
  ASSERT_NE(first, 0u);
  auto got = poll_n(**c, 5);
  ASSERT_EQ(got.size(), 5u);
  ASSERT_TRUE((*c)->flush());
  size_t requests_before = locked(b, [&] { return b.ack_request_members.size(); });

  b.drop_all_connections();
  ASSERT_TRUE(eventually([&] {
    auto m = (*c)->member_id();
    return m != 0 && m != first;
  }));
  EXPECT_EQ(locked(b, [&] { return b.join_requests.load(); }), 2);

  // Acks for the old member's deliveries: answered here, never sent.
  outcomes old;
  for (auto& d : got) (*c)->ack(d, old.cb(d.offset));
  auto fl = (*c)->flush();
  ASSERT_FALSE(fl);
  EXPECT_EQ(fl.error().code, ferry::errc::lease_not_held);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(old.code(i), ferry::errc::lease_not_held);

  // The broker redelivers them to the new member; poll() kept working across the reconnect.
  auto again = poll_n(**c, 5);
  ASSERT_EQ(again.size(), 5u);
  for (auto& d : again) {
    EXPECT_EQ(d.delivery_count, 2);
    EXPECT_EQ(d.member_id, (*c)->member_id());
  }
  outcomes now;
  for (auto& d : again) (*c)->ack(d, now.cb(d.offset));
  ASSERT_TRUE((*c)->flush());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(now.code(i), ferry::errc::ok);
  auto members = locked(b, [&] { return b.ack_request_members; });
  for (size_t i = requests_before; i < members.size(); ++i) EXPECT_NE(members[i], first) << "request " << i;
}

TEST(consumer, buffered_deliveries_are_dropped_on_reconnect_and_pending_acks_fail) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 6);
  b.add_subscription("t", "s");
  auto o = copts(b);
  o.ack_linger = 20ms;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  uint64_t first = (*c)->member_id();
  ASSERT_TRUE(eventually([&] { return locked(b, [&] { return b.delivered_total; }) == 6; }));
  auto one = (*c)->poll(1s, 1);  // take one; five stay buffered
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  ASSERT_TRUE((*c)->flush());
  // The next AckRequest is dropped with the connection, unanswered.
  b.drop_on_ack_request = b.ack_requests + 1;
  outcomes out;
  (*c)->ack(one->front(), out.cb(0));
  auto fl = (*c)->flush();
  ASSERT_FALSE(fl);
  EXPECT_EQ(fl.error().code, ferry::errc::connection_closed);
  EXPECT_EQ(out.code(0), ferry::errc::connection_closed);
  ASSERT_TRUE(eventually([&] {
    auto m = (*c)->member_id();
    return m != 0 && m != first;
  }));
  // What was still buffered is gone; all six come again, as redeliveries.
  auto again = poll_n(**c, 6);
  ASSERT_EQ(again.size(), 6u);
  for (auto& d : again) EXPECT_EQ(d.delivery_count, 2) << d.id();
  auto extra = (*c)->poll(0ms, 10);
  ASSERT_TRUE(extra);
  EXPECT_TRUE(extra->empty());
}

TEST(consumer, deliveries_pushed_before_the_join_answer_are_kept) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 5);
  b.add_subscription("t", "s");
  b.push_before_join_answer = true;
  auto c = fc::consumer::create(copts(b), "t", "s");
  ASSERT_TRUE(c);
  auto got = poll_n(**c, 5);
  ASSERT_EQ(got.size(), 5u);
  outcomes out;
  for (auto& d : got) {
    EXPECT_EQ(d.member_id, (*c)->member_id());
    (*c)->ack(d, out.cb(d.offset));
  }
  ASSERT_TRUE((*c)->flush());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out.code(i), ferry::errc::ok);
}

TEST(consumer, undecodable_record_is_nacked_and_its_credit_returned) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 3);
  b.add_subscription("t", "s");
  {
    std::lock_guard lk(b.mu);
    b.truncate_record = std::pair<int32_t, int64_t>{0, 1};
  }
  auto o = copts(b);
  o.credit_messages = 3;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  // Offset 1 arrives unreadable: the consumer nacks it itself, and its redelivery is fine.
  auto got = poll_n(**c, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].offset, 0);
  EXPECT_EQ(got[1].offset, 2);
  EXPECT_EQ(got[2].offset, 1);
  EXPECT_EQ(got[2].delivery_count, 2);
  ASSERT_TRUE((*c)->flush());
  auto [nacks, returned] = locked(b, [&] { return std::pair{b.nacks_seen, b.credit_returned_messages}; });
  ASSERT_EQ(nacks.size(), 1u);
  EXPECT_EQ(nacks[0].first, (std::pair<int32_t, int64_t>{0, 1}));
  EXPECT_EQ(nacks[0].second, -1);
  EXPECT_EQ(returned, 4);  // three taken by poll, one given back for the unreadable record
}

TEST(consumer, join_errors_are_returned_from_create) {
  fake_broker b;
  b.add_topic("t", 1);
  auto no_sub = fc::consumer::create(copts(b), "t", "missing");
  ASSERT_FALSE(no_sub);
  EXPECT_EQ(no_sub.error().code, ferry::errc::unknown_subscription);
  EXPECT_NE(no_sub.error().message.find("missing"), std::string::npos);
  auto no_topic = fc::consumer::create(copts(b), "nope", "s");
  ASSERT_FALSE(no_topic);
  EXPECT_EQ(no_topic.error().code, ferry::errc::unknown_topic);
  auto o = copts(b);
  o.bootstrap = "127.0.0.1:1";
  auto down = fc::consumer::create(o, "t", "s");
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, ferry::errc::connection_closed);
  auto bad = copts(b);
  bad.credit_messages = 0;
  EXPECT_EQ(fc::consumer::create(bad, "t", "s").error().code, ferry::errc::invalid_argument);
}

TEST(consumer, join_sends_name_ack_timeout_and_credit) {
  fake_broker b;
  b.add_topic("t", 1);
  b.add_subscription("t", "s");
  {
    auto c = fc::consumer::create(copts(b), "t", "s");
    ASSERT_TRUE(c);
  }
  auto o = copts(b);
  o.member_name = "worker-7";
  o.ack_timeout = 12s;
  o.credit_messages = 42;
  o.credit_bytes = 4242;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  auto [names, timeouts, credits] = locked(b, [&] {
    return std::tuple{b.join_names, b.join_ack_timeouts, b.join_credits};
  });
  ASSERT_EQ(names.size(), 2u);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(names[0], std::string(host) + "-" + std::to_string(::getpid()));
  EXPECT_EQ(timeouts[0], -1);
  EXPECT_EQ(names[1], "worker-7");
  EXPECT_EQ(timeouts[1], 12000);
  EXPECT_EQ(credits[1], (std::pair<int32_t, int32_t>{42, 4242}));
}

TEST(consumer, close_leaves_and_later_calls_fail) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 3);
  b.add_subscription("t", "s");
  auto c = fc::consumer::create(copts(b), "t", "s");
  ASSERT_TRUE(c);
  auto got = poll_n(**c, 3);
  ASSERT_EQ(got.size(), 3u);
  outcomes out;
  (*c)->ack(got[0], out.cb(0));
  (*c)->close();  // flushes the ack, then leaves
  EXPECT_EQ(out.code(0), ferry::errc::ok);
  EXPECT_EQ(b.leave_requests.load(), 1);
  EXPECT_TRUE(eventually([&] { return b.member_count() == 0; }));
  EXPECT_EQ(b.leased("t", "s"), 0u);  // what it held goes back
  auto p = (*c)->poll(0ms, 10);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ferry::errc::shutting_down);
  (*c)->ack(got[1], out.cb(1));  // answered at once, on this thread
  EXPECT_EQ(out.code(1), ferry::errc::shutting_down);
  (*c)->close();  // idempotent
}

TEST(consumer, message_limit_caps_the_credit) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 10);
  b.add_subscription("t", "s");
  auto o = copts(b);
  o.credit_messages = 10;
  o.message_limit = 3;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  auto got = poll_n(**c, 3);
  ASSERT_EQ(got.size(), 3u);
  ASSERT_TRUE((*c)->flush());
  EXPECT_EQ(locked(b, [&] { return b.join_credits[0].first; }), 3);
  EXPECT_EQ(locked(b, [&] { return b.credit_returned_messages; }), 0);
  EXPECT_EQ(locked(b, [&] { return b.delivered_total; }), 3);
}

TEST(consumer, many_messages_flow_through_a_small_window) {
  fake_broker b;
  b.add_topic("t", 3);
  for (int p = 0; p < 3; ++p) produce(b, "t", 400, p);
  b.add_subscription("t", "s");
  auto o = copts(b);
  o.credit_messages = 16;
  auto c = fc::consumer::create(o, "t", "s");
  ASSERT_TRUE(c);
  std::set<std::pair<int32_t, int64_t>> seen;
  auto end = std::chrono::steady_clock::now() + 20s;
  while (seen.size() < 1200 && std::chrono::steady_clock::now() < end) {
    auto r = (*c)->poll(100ms, 7);
    ASSERT_TRUE(r);
    EXPECT_LE(r->size(), 7u);
    for (auto& d : *r) {
      EXPECT_TRUE(seen.insert({d.partition, d.offset}).second) << d.id();
      (*c)->ack(d);
    }
  }
  EXPECT_EQ(seen.size(), 1200u);
  ASSERT_TRUE((*c)->flush());
  EXPECT_EQ(locked(b, [&] { return b.acked_total; }), 1200);
}

// ---- admin ---------------------------------------------------------------------------------

TEST(admin_subscriptions, create_fills_defaults_and_maps_every_field) {
  fake_broker b;
  b.add_topic("orders", 2);
  auto a = fc::admin::create(fc::client_options{b.address()});
  ASSERT_TRUE(a);
  auto d = (*a)->create_subscription("orders", "billing", fc::subscription_config{});
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->start, fc::start_position::latest);
  EXPECT_EQ(d->ack_timeout, 30s);
  EXPECT_EQ(d->max_deliveries, 10);
  EXPECT_TRUE(d->ordered);
  EXPECT_EQ(d->backoff, fc::backoff_kind::exponential);
  EXPECT_EQ(d->backoff_initial, 1s);
  EXPECT_EQ(d->backoff_max, 60s);
  EXPECT_EQ(d->dead_letter_topic, "orders.billing.dlq");

  fc::subscription_config cfg;
  cfg.start = fc::start_position::earliest;
  cfg.ack_timeout = 5s;
  cfg.max_deliveries = 0;
  cfg.ordered = false;
  cfg.backoff = fc::backoff_kind::fixed;
  cfg.backoff_initial = 250ms;
  cfg.backoff_max = 2s;
  cfg.dead_letter_topic = "dead";
  auto c = (*a)->create_subscription("orders", "shipping", cfg);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->start, fc::start_position::earliest);
  EXPECT_EQ(c->ack_timeout, 5s);
  EXPECT_EQ(c->max_deliveries, 0);
  EXPECT_FALSE(c->ordered);
  EXPECT_EQ(c->backoff, fc::backoff_kind::fixed);
  EXPECT_EQ(c->backoff_initial, 250ms);
  EXPECT_EQ(c->backoff_max, 2s);
  EXPECT_EQ(c->dead_letter_topic, "dead");

  auto again = (*a)->create_subscription("orders", "shipping", cfg);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ferry::errc::subscription_exists);
  auto no_topic = (*a)->create_subscription("nope", "x", cfg);
  ASSERT_FALSE(no_topic);
  EXPECT_EQ(no_topic.error().code, ferry::errc::unknown_topic);
}

TEST(admin_subscriptions, list_describe_seek_delete) {
  fake_broker b;
  b.add_topic("orders", 2);
  b.add_topic("other", 1);
  produce(b, "orders", 10, 0);
  produce(b, "orders", 4, 1);
  auto a = fc::admin::create(fc::client_options{b.address()});
  ASSERT_TRUE(a);
  fc::subscription_config earliest;
  earliest.start = fc::start_position::earliest;
  ASSERT_TRUE((*a)->create_subscription("orders", "billing", earliest));
  ASSERT_TRUE((*a)->create_subscription("other", "audit", earliest));

  auto all = (*a)->list_subscriptions("");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 2u);
  auto some = (*a)->list_subscriptions("orders");
  ASSERT_TRUE(some);
  ASSERT_EQ(some->size(), 1u);
  EXPECT_EQ((*some)[0].topic, "orders");
  EXPECT_EQ((*some)[0].name, "billing");
  EXPECT_EQ((*some)[0].backlog, 14);

  auto o = copts(b);
  o.member_name = "w1";
  o.credit_messages = 3;
  auto c = fc::consumer::create(o, "orders", "billing");
  ASSERT_TRUE(c);
  ASSERT_TRUE(eventually([&] { return b.leased("orders", "billing") == 3; }));
  auto d = (*a)->describe_subscription("orders", "billing");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->topic, "orders");
  EXPECT_EQ(d->name, "billing");
  EXPECT_EQ(d->config.dead_letter_topic, "orders.billing.dlq");
  ASSERT_EQ(d->partitions.size(), 2u);
  EXPECT_EQ(d->partitions[0].partition, 0);
  EXPECT_EQ(d->partitions[0].cursor, 0);
  EXPECT_EQ(d->partitions[0].high_watermark, 10);
  EXPECT_EQ(d->partitions[0].backlog, 10);
  EXPECT_EQ(d->partitions[0].in_flight, 3);
  EXPECT_EQ(d->partitions[0].oldest_unacked_time_ms, 1000);
  EXPECT_EQ(d->partitions[0].next_due_time_ms, -1);
  EXPECT_EQ(d->partitions[1].high_watermark, 4);
  ASSERT_EQ(d->members.size(), 1u);
  EXPECT_EQ(d->members[0].member_id, (*c)->member_id());
  EXPECT_EQ(d->members[0].name, "w1");
  EXPECT_EQ(d->members[0].peer, "127.0.0.1");
  EXPECT_EQ(d->members[0].in_flight, 3);
  (*c)->close();

  auto dry = (*a)->seek_subscription("orders", "billing", fc::seek_target::latest, 0, std::nullopt, true);
  ASSERT_TRUE(dry) << dry.error().to_string();
  ASSERT_EQ(dry->size(), 2u);
  EXPECT_EQ((*dry)[0].old_cursor, 0);
  EXPECT_EQ((*dry)[0].new_cursor, 10);
  EXPECT_EQ((*dry)[0].old_backlog, 10);
  EXPECT_EQ((*dry)[0].new_backlog, 0);
  EXPECT_FALSE((*dry)[0].error);
  EXPECT_EQ((*a)->describe_subscription("orders", "billing")->partitions[0].cursor, 0);  // dry run: nothing moved

  auto moved = (*a)->seek_subscription("orders", "billing", fc::seek_target::offset, 7, 0, false);
  ASSERT_TRUE(moved);
  ASSERT_EQ(moved->size(), 1u);
  EXPECT_EQ((*moved)[0].partition, 0);
  EXPECT_EQ((*moved)[0].new_cursor, 7);
  EXPECT_EQ((*a)->describe_subscription("orders", "billing")->partitions[0].cursor, 7);

  auto bad = (*a)->seek_subscription("orders", "billing", fc::seek_target::earliest, 0, 9, false);
  ASSERT_TRUE(bad);
  ASSERT_EQ(bad->size(), 1u);
  ASSERT_TRUE((*bad)[0].error);
  EXPECT_EQ((*bad)[0].error->code, ferry::errc::unknown_partition);

  ASSERT_TRUE((*a)->delete_subscription("orders", "billing"));
  auto gone = (*a)->describe_subscription("orders", "billing");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ferry::errc::unknown_subscription);
  auto twice = (*a)->delete_subscription("orders", "billing");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ferry::errc::unknown_subscription);
}

// ---- reader --------------------------------------------------------------------------------

std::vector<std::byte> control_batch(int records) {
  w::batch_builder bb;
  for (int i = 0; i < records; ++i) bb.add(std::nullopt, std::string_view("op"), {}, 1000);
  auto s = bb.finish(-1, 0, -1);
  std::vector<std::byte> bytes(s.begin(), s.end());
  uint16_t attrs = w::attr_control;
  std::memcpy(bytes.data() + w::hdr::attributes, &attrs, sizeof attrs);
  uint32_t crc = w::compute_batch_crc(bytes);
  std::memcpy(bytes.data() + w::hdr::crc, &crc, sizeof crc);
  return bytes;
}

TEST(reader, skips_control_batches) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 3);                                      // 0..2
  EXPECT_EQ(b.append_batch("t", 0, control_batch(2)), 3);  // 3..4: broker-internal
  produce(b, "t", 2);                                      // 5..6
  EXPECT_EQ(b.append_batch("t", 0, control_batch(1)), 7);  // 7: at the end
  auto rd = fc::reader::create(fc::client_options{b.address()}, "t", 0, fc::reader::earliest);
  ASSERT_TRUE(rd);
  std::vector<int64_t> offsets;
  while ((*rd)->position() < 8) {
    auto msgs = (*rd)->poll(100ms);
    ASSERT_TRUE(msgs) << msgs.error().to_string();
    for (auto& m : *msgs) offsets.push_back(m.offset);
  }
  EXPECT_EQ(offsets, (std::vector<int64_t>{0, 1, 2, 5, 6}));
  EXPECT_EQ((*rd)->position(), 8);

  // A fetch that returns only a control batch returns nothing but moves past it.
  auto at3 = fc::reader::create(fc::client_options{b.address()}, "t", 0, 3);
  ASSERT_TRUE(at3);
  auto none = (*at3)->poll(0ms, 100);  // small max_bytes: just the control batch
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  EXPECT_EQ((*at3)->position(), 5);
  auto next = (*at3)->poll(0ms);
  ASSERT_TRUE(next);
  ASSERT_FALSE(next->empty());
  EXPECT_EQ(next->front().offset, 5);
}

TEST(consumer, control_batches_are_not_delivered) {
  fake_broker b;
  b.add_topic("t", 1);
  produce(b, "t", 2);
  b.append_batch("t", 0, control_batch(3));
  produce(b, "t", 1);
  b.add_subscription("t", "s");
  auto c = fc::consumer::create(copts(b), "t", "s");
  ASSERT_TRUE(c);
  auto got = poll_n(**c, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].offset, 5);
}

}  // namespace
