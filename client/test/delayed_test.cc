// Delayed messages from the client's side, against the fake broker (client/test/fake_broker.h):
// admin::cancel and admin::list_delayed mapped to their wire tables, request errors, local
// validation, a topic's max_delay_ms and describe's delayed counts, and the producer's handling of
// delay_out_of_range. The broker's own behaviour (due times, releases, races): tests/integration.
#include <gtest/gtest.h>

#include "client/test/fake_broker.h"
#include "ferry/client/client.h"

namespace fc = ferry::client;
using ferry::client::testing::fake_broker;

namespace {

constexpr int64_t now = fake_broker::clock_ms;  // the fake's clock, and every append time

fc::producer_options popts(const fake_broker& b) {
  fc::producer_options o;
  o.bootstrap = b.address();
  o.retry_backoff = std::chrono::milliseconds(10);
  o.delivery_timeout = std::chrono::seconds(5);
  return o;
}

std::unique_ptr<fc::admin> make_admin(const fake_broker& b) {
  auto a = fc::admin::create(fc::client_options{b.address()});
  EXPECT_TRUE(a);
  return a ? std::move(*a) : nullptr;
}

// Publishes one message and waits for its id.
fc::message_id publish(fc::producer& p, const std::string& topic, fc::message m) {
  auto r = p.send(topic, std::move(m)).get();
  EXPECT_TRUE(r) << r.error().to_string();
  return r ? *r : fc::message_id{};
}

fc::message delayed(std::optional<std::string> key, std::string value, int64_t delay_ms, int32_t partition = 0) {
  fc::message m;
  m.key = std::move(key);
  m.value = std::move(value);
  m.delay_ms = delay_ms;
  m.partition = partition;
  return m;
}

TEST(admin_delayed, max_delay_travels_on_create_and_comes_back_from_describe) {
  fake_broker b;
  auto a = make_admin(b);
  fc::topic_config cfg;
  cfg.partitions = 2;
  cfg.max_delay_ms = 7 * 86'400'000LL;
  auto c = a->create_topic("week", cfg);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->max_delay_ms, 7 * 86'400'000LL);
  auto d = a->describe_topic("week");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->config.max_delay_ms, 7 * 86'400'000LL);

  // 0 asks for the broker's default, which the response fills in.
  auto dflt = a->create_topic("dflt", fc::topic_config{});
  ASSERT_TRUE(dflt);
  EXPECT_EQ(dflt->max_delay_ms, fake_broker::default_max_delay_ms);
}

TEST(admin_delayed, describe_topic_reports_pending_and_next_due_per_partition) {
  fake_broker b;
  b.add_topic("t", 3);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  publish(**p, "t", delayed(std::nullopt, "a", 60'000, 0));
  publish(**p, "t", delayed(std::nullopt, "b", 5'000, 0));
  publish(**p, "t", delayed(std::nullopt, "c", 9'000, 1));
  fc::message plain;
  plain.value = "plain";
  plain.partition = 2;
  publish(**p, "t", plain);
  auto d = make_admin(b)->describe_topic("t");
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_EQ(d->partitions.size(), 3u);
  EXPECT_EQ(d->partitions[0].delayed_pending, 2);
  EXPECT_EQ(d->partitions[0].next_due_time_ms, now + 5'000);
  EXPECT_EQ(d->partitions[1].delayed_pending, 1);
  EXPECT_EQ(d->partitions[1].next_due_time_ms, now + 9'000);
  EXPECT_EQ(d->partitions[2].delayed_pending, 0);
  EXPECT_EQ(d->partitions[2].next_due_time_ms, -1);
}

TEST(admin_delayed, list_is_earliest_first_with_absent_and_empty_keys_apart) {
  fake_broker b;
  b.add_topic("t", 2);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  auto keyed = publish(**p, "t", delayed("order-42", "cancel order 42", 900'000, 0));
  auto empty = publish(**p, "t", delayed("", "xy", 60'000, 1));
  auto keyless = publish(**p, "t", delayed(std::nullopt, "", 120'000, 0));
  auto l = make_admin(b)->list_delayed("t", std::nullopt, 100, std::nullopt);
  ASSERT_TRUE(l) << l.error().to_string();
  EXPECT_EQ(l->pending, 3);
  ASSERT_EQ(l->messages.size(), 3u);
  const auto& m0 = l->messages[0];
  EXPECT_EQ(m0.id("t"), empty.to_string());
  EXPECT_EQ(m0.partition, 1);
  ASSERT_TRUE(m0.key.has_value()) << "an empty key is a key";
  EXPECT_EQ(*m0.key, "");
  EXPECT_EQ(m0.due_time_ms, now + 60'000);
  EXPECT_EQ(m0.append_time_ms, now);
  EXPECT_EQ(m0.value_bytes, 2);
  const auto& m1 = l->messages[1];
  EXPECT_EQ(m1.id("t"), keyless.to_string());
  EXPECT_FALSE(m1.key.has_value()) << "no key is not the empty key";
  EXPECT_EQ(m1.value_bytes, 0);
  const auto& m2 = l->messages[2];
  EXPECT_EQ(m2.offset, keyed.offset);
  EXPECT_EQ(m2.key, "order-42");
  EXPECT_EQ(m2.due_time_ms, now + 900'000);
  EXPECT_EQ(m2.value_bytes, 15);
  // Unset filters travel as the wire's "none".
  std::lock_guard lk(b.mu);
  ASSERT_EQ(b.list_delayed_seen.size(), 1u);
  EXPECT_EQ(b.list_delayed_seen[0], std::make_tuple(-1, int64_t{-1}, 100));
}

TEST(admin_delayed, list_filters_by_partition_and_due_time_and_limit) {
  fake_broker b;
  b.add_topic("t", 2);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  for (int i = 1; i <= 5; ++i) publish(**p, "t", delayed(std::nullopt, "p0", int64_t{i} * 1000, 0));
  for (int i = 1; i <= 3; ++i) publish(**p, "t", delayed(std::nullopt, "p1", int64_t{i} * 1500, 1));
  auto a = make_admin(b);

  auto one = a->list_delayed("t", std::nullopt, 100, 1);
  ASSERT_TRUE(one) << one.error().to_string();
  EXPECT_EQ(one->pending, 3) << "pending counts the partition asked for";
  ASSERT_EQ(one->messages.size(), 3u);
  for (const auto& m : one->messages) EXPECT_EQ(m.partition, 1);

  auto before = a->list_delayed("t", now + 3000, 100, std::nullopt);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->pending, 8) << "pending is not narrowed by the due-time bound";
  ASSERT_EQ(before->messages.size(), 3u);  // p0 at +1000, p1 at +1500, p0 at +2000
  for (const auto& m : before->messages) EXPECT_LT(m.due_time_ms, now + 3000);

  auto limited = a->list_delayed("t", std::nullopt, 2, std::nullopt);
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->pending, 8);
  ASSERT_EQ(limited->messages.size(), 2u);
  EXPECT_EQ(limited->messages[0].due_time_ms, now + 1000);
  EXPECT_EQ(limited->messages[1].due_time_ms, now + 1500);

  std::lock_guard lk(b.mu);
  ASSERT_EQ(b.list_delayed_seen.size(), 3u);
  EXPECT_EQ(b.list_delayed_seen[0], std::make_tuple(1, int64_t{-1}, 100));
  EXPECT_EQ(b.list_delayed_seen[1], std::make_tuple(-1, now + 3000, 100));
  EXPECT_EQ(b.list_delayed_seen[2], std::make_tuple(-1, int64_t{-1}, 2));
}

TEST(admin_delayed, list_bounds_are_checked_before_sending) {
  fake_broker b;
  b.add_topic("t", 1);
  auto a = make_admin(b);
  for (size_t limit : {size_t{0}, size_t{10001}, size_t{1} << 40}) {
    auto r = a->list_delayed("t", std::nullopt, limit, std::nullopt);
    ASSERT_FALSE(r) << limit;
    EXPECT_EQ(r.error().code, ferry::errc::invalid_argument) << limit;
    EXPECT_NE(r.error().message.find("limit"), std::string::npos) << r.error().message;
  }
  auto neg_part = a->list_delayed("t", std::nullopt, 10, -1);
  ASSERT_FALSE(neg_part);
  EXPECT_EQ(neg_part.error().code, ferry::errc::invalid_argument);
  auto neg_before = a->list_delayed("t", -5, 10, std::nullopt);
  ASSERT_FALSE(neg_before);
  EXPECT_EQ(neg_before.error().code, ferry::errc::invalid_argument);
  EXPECT_EQ(b.delayed_requests.load(), 0) << "nothing invalid reaches the broker";

  // Both ends of the range are fine.
  EXPECT_TRUE(a->list_delayed("t", std::nullopt, 1, std::nullopt));
  EXPECT_TRUE(a->list_delayed("t", std::nullopt, 10000, std::nullopt));
  EXPECT_EQ(b.delayed_requests.load(), 2);
}

TEST(admin_delayed, list_request_errors_are_returned) {
  fake_broker b;
  b.add_topic("t", 2);
  auto a = make_admin(b);
  auto no_topic = a->list_delayed("missing", std::nullopt, 10, std::nullopt);
  ASSERT_FALSE(no_topic);
  EXPECT_EQ(no_topic.error().code, ferry::errc::unknown_topic);
  EXPECT_NE(no_topic.error().message.find("missing"), std::string::npos);
  auto no_part = a->list_delayed("t", std::nullopt, 10, 7);
  ASSERT_FALSE(no_part);
  EXPECT_EQ(no_part.error().code, ferry::errc::unknown_partition);
}

TEST(admin_delayed, cancel_maps_every_outcome) {
  fake_broker b;
  b.add_topic("orders", 1);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  auto pending = publish(**p, "orders", delayed("42", "cancel order 42", 900'000));
  auto due = publish(**p, "orders", delayed("43", "cancel order 43", 900'000));
  fc::message plain;
  plain.value = "not delayed";
  auto undelayed = publish(**p, "orders", plain);
  b.release_delayed("orders", 0, due.offset);
  auto a = make_admin(b);

  auto c = a->cancel(pending);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->outcome, fc::cancel_outcome::cancelled);
  EXPECT_EQ(b.delayed_pending("orders"), 0u);
  auto l = a->list_delayed("orders", std::nullopt, 10, std::nullopt);
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->messages.empty());
  EXPECT_EQ(l->pending, 0);

  auto late = a->cancel(due);
  ASSERT_TRUE(late);
  EXPECT_EQ(late->outcome, fc::cancel_outcome::too_late);
  EXPECT_EQ(late->message, "already due and released");
  auto not_delayed = a->cancel(undelayed);
  ASSERT_TRUE(not_delayed);
  EXPECT_EQ(not_delayed->outcome, fc::cancel_outcome::too_late);
  EXPECT_EQ(not_delayed->message, "not a delayed message");
  auto unknown = a->cancel(fc::message_id{"orders", 0, 1'000'000});
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->outcome, fc::cancel_outcome::unknown);
  EXPECT_EQ(unknown->message, "no message at this offset");
}

TEST(admin_delayed, cancel_request_errors_and_local_checks) {
  fake_broker b;
  b.add_topic("t", 2);
  auto a = make_admin(b);
  auto no_topic = a->cancel(fc::message_id{"missing", 0, 0});
  ASSERT_FALSE(no_topic);
  EXPECT_EQ(no_topic.error().code, ferry::errc::unknown_topic);
  EXPECT_NE(no_topic.error().message.find("missing"), std::string::npos);
  auto no_part = a->cancel(fc::message_id{"t", 5, 0});
  ASSERT_FALSE(no_part);
  EXPECT_EQ(no_part.error().code, ferry::errc::unknown_partition);
  int sent = b.delayed_requests.load();
  auto neg_part = a->cancel(fc::message_id{"t", -1, 0});
  ASSERT_FALSE(neg_part);
  EXPECT_EQ(neg_part.error().code, ferry::errc::invalid_argument);
  auto neg_off = a->cancel(fc::message_id{"t", 0, -3});
  ASSERT_FALSE(neg_off);
  EXPECT_EQ(neg_off.error().code, ferry::errc::invalid_argument);
  EXPECT_EQ(b.delayed_requests.load(), sent);
}

TEST(admin_delayed, cancel_outcome_this_client_cannot_name_is_malformed_frame) {
  fake_broker b;
  b.add_topic("t", 1);
  b.cancel_outcome_wire = 9;
  auto r = make_admin(b)->cancel(fc::message_id{"t", 0, 0});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ferry::errc::malformed_frame);
}

TEST(producer_delayed, negative_delay_fails_locally) {
  fake_broker b;
  b.add_topic("t", 1);
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  auto r = (*p)->send("t", delayed(std::nullopt, "v", -1)).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ferry::errc::delay_out_of_range);
  EXPECT_EQ(b.produce_requests.load(), 0);
}

TEST(producer_delayed, delay_beyond_topic_maximum_fails_and_later_messages_still_go_through) {
  fake_broker b;
  b.add_topic("t", 1, 3'600'000);  // at most 1 h
  auto p = fc::producer::create(popts(b));
  ASSERT_TRUE(p);
  auto first = publish(**p, "t", delayed(std::nullopt, "ok", 60'000));
  EXPECT_EQ(first.offset, 0);
  auto far = (*p)->send("t", delayed(std::nullopt, "too far", 7'200'000)).get();
  ASSERT_FALSE(far);
  EXPECT_EQ(far.error().code, ferry::errc::delay_out_of_range);
  // Refused, not stored: the producer closes its sequence gap, so what follows is not stuck
  // behind out_of_order_sequence until the delivery timeout.
  auto next = (*p)->send("t", delayed(std::nullopt, "ok again", 60'000)).get();
  ASSERT_TRUE(next) << next.error().to_string();
  EXPECT_EQ(next->offset, 1);
  fc::message abs;
  abs.value = "absolute, too far";
  abs.deliver_at_ms = now + 3'600'001;
  auto far_abs = (*p)->send("t", abs).get();
  ASSERT_FALSE(far_abs);
  EXPECT_EQ(far_abs.error().code, ferry::errc::delay_out_of_range);
  EXPECT_EQ(b.records("t", 0), 2);
}

}  // namespace
