// Bad input to the subscription APIs of a real ferryd, with hand-built frames (the client library
// never sends these): each gets its typed error code and a readable message, and nothing changes
// (the cursor, backlog and leases stay as they were).
#include <gtest/gtest.h>

#include "schema/frame.h"
#include "schema/record_batch.h"
#include "tests/support/broker_process.h"
#include "tests/support/frames.h"

namespace ferry::test {
namespace {

std::string name_of(errc e) { return std::string(errc_name(e)); }
errc err_of(const response_frame& r) { return wire::from_wire(r.resp->error()); }
std::string msg_of(const response_frame& r) {
  return r.resp->error_message() ? r.resp->error_message()->str() : std::string();
}

#define EXPECT_ERRC(actual, expected) EXPECT_EQ(name_of(actual), name_of(expected))

class subscription_bad_input : public ::testing::Test {
 protected:
  static constexpr const char* topic = "orders";
  static constexpr const char* sub = "billing";

  void SetUp() override {
    ASSERT_TRUE(broker_.start());
    auto c = raw_client::connect(broker_.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    admin_ = std::make_unique<raw_client>(std::move(*c));
    auto [e, m] = admin_->create_topic(topic, 1);
    ASSERT_EQ(name_of(e), name_of(errc::ok)) << m;
    for (int i = 0; i < 3; ++i) {
      auto out = admin_->produce(topic, 0, make_value_batch({"m" + std::to_string(i)}));
      ASSERT_EQ(name_of(out.error), name_of(errc::ok)) << out.message;
    }
    sub_options o;
    o.max_deliveries = 0;
    auto r = admin_->call(create_subscription_frame(admin_->next_cid(), topic, sub, o));
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_EQ(name_of(err_of(*r)), name_of(errc::ok)) << msg_of(*r);
  }

  // (cursor, backlog, in flight) of partition 0.
  std::tuple<int64_t, int64_t, int64_t> state() {
    auto r = admin_->call(describe_subscription_frame(admin_->next_cid(), topic, sub));
    EXPECT_TRUE(r);
    if (!r) return {-1, -1, -1};
    auto* d = r->resp->body_as_DescribeSubscriptionResponse();
    EXPECT_NE(d, nullptr) << msg_of(*r);
    if (d == nullptr || d->partitions() == nullptr || d->partitions()->size() != 1) return {-1, -1, -1};
    auto* p = d->partitions()->Get(0);
    return {p->cursor(), p->backlog(), p->in_flight()};
  }

  struct joined {
    raw_client client;
    uint64_t member = 0;
  };
  joined join(int32_t credit) {
    auto c = raw_client::connect(broker_.client_port());
    EXPECT_TRUE(c);
    joined j{std::move(*c), 0};
    auto r = j.client.call_keeping_pushes(join_frame(j.client.next_cid(), topic, sub, credit));
    EXPECT_TRUE(r);
    if (r && r->resp->body_as_JoinResponse()) j.member = r->resp->body_as_JoinResponse()->member_id();
    return j;
  }

  broker_process broker_;
  std::unique_ptr<raw_client> admin_;
};

TEST_F(subscription_bad_input, creating_and_finding_subscriptions_fails_with_typed_errors) {
  struct tc {
    std::string topic, name;
    sub_options o;
    errc want;
  };
  sub_options zero_timeout;
  zero_timeout.ack_timeout_ms = 0;
  sub_options too_many;
  too_many.max_deliveries = 5000;
  sub_options negative_backoff;
  negative_backoff.backoff_initial_ms = -7;
  std::vector<tc> cases = {
      {"nope", "s", {}, errc::unknown_topic},
      {"bad/topic", "s", {}, errc::invalid_topic_name},
      {topic, "", {}, errc::invalid_subscription_name},
      {topic, "has space", {}, errc::invalid_subscription_name},
      {topic, std::string(201, 'x'), {}, errc::invalid_subscription_name},
      {topic, sub, {}, errc::subscription_exists},
      {topic, "t1", zero_timeout, errc::invalid_argument},
      {topic, "t2", too_many, errc::invalid_argument},
      {topic, "t3", negative_backoff, errc::invalid_argument},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.topic + " / " + c.name.substr(0, 20));
    auto r = admin_->call(create_subscription_frame(admin_->next_cid(), c.topic, c.name, c.o));
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_ERRC(err_of(*r), c.want);
    EXPECT_FALSE(msg_of(*r).empty());
  }
  auto r = admin_->call(describe_subscription_frame(admin_->next_cid(), topic, "missing"));
  ASSERT_TRUE(r);
  EXPECT_ERRC(err_of(*r), errc::unknown_subscription);
  auto j = admin_->call(join_frame(admin_->next_cid(), topic, "missing", 10));
  ASSERT_TRUE(j);
  EXPECT_ERRC(err_of(*j), errc::unknown_subscription);
  auto neg = admin_->call(join_frame(admin_->next_cid(), topic, sub, -5));
  ASSERT_TRUE(neg);
  EXPECT_ERRC(err_of(*neg), errc::invalid_argument);
  EXPECT_EQ(state(), std::make_tuple(int64_t{0}, int64_t{3}, int64_t{0})) << "nothing was created or joined";
}

TEST_F(subscription_bad_input, bad_acks_get_typed_failures_and_change_nothing) {
  auto a = join(2);
  ASSERT_NE(a.member, 0u);
  auto push = a.client.next_push(5s);
  ASSERT_TRUE(push) << push.error().to_string();
  auto msgs = decode_delivery(*push);
  while (msgs.size() < 2) {
    auto more = a.client.next_push(5s);
    ASSERT_TRUE(more) << more.error().to_string();
    auto m2 = decode_delivery(*more);
    msgs.insert(msgs.end(), m2.begin(), m2.end());
  }
  ASSERT_EQ(msgs.size(), 2u) << "credit 2: two messages";
  EXPECT_EQ(msgs[0].offset, 0);
  EXPECT_EQ(msgs[0].value, std::optional<std::string>("m0"));
  EXPECT_EQ(msgs[0].delivery_count, 1);
  auto b = join(0);  // a second member on its own connection, with no credit
  ASSERT_NE(b.member, 0u);
  EXPECT_EQ(state(), std::make_tuple(int64_t{0}, int64_t{3}, int64_t{2}));

  auto failures_of = [](const response_frame& r) {
    std::vector<std::pair<int64_t, errc>> v;
    auto* ar = r.resp->body_as_AckResponse();
    if (ar && ar->failures())
      for (auto f : *ar->failures()) v.emplace_back(f->offset(), wire::from_wire(f->error()));
    return v;
  };
  // Unknown offsets, another member's lease, a partition that does not exist.
  auto r = b.client.call_keeping_pushes(ack_frame(b.client.next_cid(), b.member, 0, {0, 2, 99}));
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(name_of(err_of(*r)), name_of(errc::ok)) << msg_of(*r);
  auto f = failures_of(*r);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_ERRC(f[0].second, errc::lease_not_held) << "offset 0 is leased to member a";
  EXPECT_ERRC(f[1].second, errc::unknown_message) << "offset 2 was not delivered";
  EXPECT_ERRC(f[2].second, errc::unknown_message) << "offset 99 is beyond the log";
  EXPECT_EQ(r->resp->body_as_AckResponse()->acked(), 0);
  EXPECT_FALSE(r->resp->body_as_AckResponse()->error_message()->str().empty());
  auto p = b.client.call_keeping_pushes(ack_frame(b.client.next_cid(), b.member, 7, {0}));
  ASSERT_TRUE(p);
  ASSERT_EQ(failures_of(*p).size(), 1u);
  EXPECT_ERRC(failures_of(*p)[0].second, errc::unknown_partition);
  // Member a's id used on b's connection is not b's member.
  auto stolen = b.client.call_keeping_pushes(ack_frame(b.client.next_cid(), a.member, 0, {0}));
  ASSERT_TRUE(stolen);
  EXPECT_ERRC(err_of(*stolen), errc::unknown_member);
  // Negative nack delay and extension, negative credit.
  auto neg = a.client.call_keeping_pushes(ack_frame(a.client.next_cid(), a.member, 0, {}, {{0, 0, -5}}, {{0, 1, -9}}));
  ASSERT_TRUE(neg);
  auto nf = failures_of(*neg);
  ASSERT_EQ(nf.size(), 2u);
  EXPECT_ERRC(nf[0].second, errc::invalid_argument);
  EXPECT_ERRC(nf[1].second, errc::invalid_argument);
  // A nack delay or a lease extension beyond a day: refused the same way (they would pin the
  // message for as long as the client asked).
  constexpr int64_t over_a_day = int64_t{24} * 3600 * 1000 + 1;
  auto longer = a.client.call_keeping_pushes(
      ack_frame(a.client.next_cid(), a.member, 0, {}, {{0, 0, over_a_day}}, {{0, 1, over_a_day}}));
  ASSERT_TRUE(longer);
  auto lf = failures_of(*longer);
  ASSERT_EQ(lf.size(), 2u);
  EXPECT_ERRC(lf[0].second, errc::invalid_argument);
  EXPECT_ERRC(lf[1].second, errc::invalid_argument);
  auto credit = a.client.call_keeping_pushes(ack_frame(a.client.next_cid(), a.member, 0, {}, {}, {}, -1, 0));
  ASSERT_TRUE(credit);
  EXPECT_ERRC(err_of(*credit), errc::invalid_argument);
  EXPECT_EQ(state(), std::make_tuple(int64_t{0}, int64_t{3}, int64_t{2})) << "no bad request changed anything";

  // A good ack works; acking it again is unknown_message.
  auto ok = a.client.call_keeping_pushes(ack_frame(a.client.next_cid(), a.member, 0, {0}));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->resp->body_as_AckResponse()->acked(), 1);
  auto again = a.client.call_keeping_pushes(ack_frame(a.client.next_cid(), a.member, 0, {0}));
  ASSERT_TRUE(again);
  ASSERT_EQ(failures_of(*again).size(), 1u);
  EXPECT_ERRC(failures_of(*again)[0].second, errc::unknown_message);
  auto [cursor, backlog, in_flight] = state();
  EXPECT_EQ(cursor, 1);
  EXPECT_EQ(backlog, 2);
  EXPECT_EQ(in_flight, 1);
  // Leaving twice: the second is unknown_member.
  auto l1 = a.client.call_keeping_pushes(leave_frame(a.client.next_cid(), a.member));
  ASSERT_TRUE(l1);
  EXPECT_ERRC(err_of(*l1), errc::ok);
  auto l2 = a.client.call_keeping_pushes(leave_frame(a.client.next_cid(), a.member));
  ASSERT_TRUE(l2);
  EXPECT_ERRC(err_of(*l2), errc::unknown_member);
  ASSERT_TRUE(wait_until([&] { return std::get<2>(state()) == 0; }, 5s)) << "leaving releases the lease";
}

TEST_F(subscription_bad_input, produced_control_batches_are_refused) {
  // A client must not forge acks: a batch with the control attribute is refused.
  wire::batch_builder b;
  b.set_control(true);
  b.add(std::nullopt, std::string_view("x"), {}, 1);
  auto span = b.finish(-1, 0, -1);
  auto out = admin_->produce(topic, 0, std::vector<std::byte>(span.begin(), span.end()));
  EXPECT_ERRC(out.error, errc::invalid_argument);
  EXPECT_NE(out.message.find("control"), std::string::npos) << out.message;
  EXPECT_EQ(state(), std::make_tuple(int64_t{0}, int64_t{3}, int64_t{0}));
}

}  // namespace
}  // namespace ferry::test
