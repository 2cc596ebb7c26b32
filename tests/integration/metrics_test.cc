// /metrics of a real ferryd: the partition layer's series carry {topic, partition} and the
// subscriptions' carry {topic, subscription}; they count what happened, the exposition parses as
// the Prometheus text format, and a deleted subscription's or topic's series leave /metrics (topics
// created and deleted do not grow it) while other topics' stay.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ferry/client/client.h"
#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/observe.h"

namespace ferry::test {
namespace {

namespace fc = ferry::client;
using namespace std::chrono_literals;

std::string metrics_text(const broker_process& b) {
  auto r = http_get(b.http_port(), "/metrics");
  return r && r->status == 200 ? r->body : std::string();
}

// Every line is a comment (# HELP / # TYPE) or `name{labels} value` with a number for a value;
// returns the metric names of the samples, or adds a failure naming the first bad line.
std::set<std::string> parse_exposition(const std::string& text) {
  std::set<std::string> names;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    if (sp == std::string::npos) {
      ADD_FAILURE() << "no value: " << line;
      break;
    }
    std::string value = line.substr(sp + 1);
    char* end = nullptr;
    std::strtod(value.c_str(), &end);
    bool number = end != value.c_str() && *end == '\0';
    if (!number && value != "+Inf" && value != "-Inf" && value != "NaN" && value != "Nan") {
      ADD_FAILURE() << "not a number: " << line;
      break;
    }
    std::string series = line.substr(0, sp);
    auto brace = series.find('{');
    if (brace != std::string::npos && series.back() != '}') {
      ADD_FAILURE() << "unclosed labels: " << line;
      break;
    }
    names.insert(series.substr(0, brace));
  }
  return names;
}

TEST(metrics, partition_and_subscription_series_are_labelled_and_leave_with_their_topic) {
  broker_process b;
  ASSERT_TRUE(b.start());
  fc::client_options o;
  o.bootstrap = b.bootstrap();
  auto admin = fc::admin::create(o);
  ASSERT_TRUE(admin) << admin.error().to_string();
  fc::topic_config tc;
  tc.partitions = 2;
  ASSERT_TRUE((*admin)->create_topic("orders", tc));
  ASSERT_TRUE((*admin)->create_topic("keep", fc::topic_config{}));
  fc::subscription_config sc;
  sc.start = fc::start_position::earliest;
  ASSERT_TRUE((*admin)->create_subscription("orders", "billing", sc));
  ASSERT_TRUE((*admin)->create_subscription("keep", "audit", sc));

  // Ten records into partition 1 of "orders" and seven into "keep", read back once.
  auto c = raw_client::connect(b.client_port());
  ASSERT_TRUE(c) << c.error().to_string();
  std::vector<test_record> recs(10);
  for (size_t i = 0; i < recs.size(); ++i) recs[i].value = "v" + std::to_string(i);
  auto out = c->produce("orders", 1, make_batch(recs));
  ASSERT_EQ(out.error, errc::ok) << out.message;
  auto read = c->read_all("orders", 1);
  ASSERT_TRUE(read) << read.error().to_string();
  ASSERT_EQ(read->size(), 10u);
  std::vector<test_record> seven(recs.begin(), recs.begin() + 7);
  ASSERT_EQ(c->produce("keep", 0, make_batch(seven)).error, errc::ok);

  const std::string p1 = R"({topic="orders",partition="1"})";
  const std::string keep0 = R"({topic="keep",partition="0"})";
  std::string text = metrics_text(b);
  std::set<std::string> names = parse_exposition(text);
  EXPECT_EQ(metric_value(text, "ferry_appended_batches_total" + p1), 1.0) << text;
  EXPECT_EQ(metric_value(text, "ferry_appended_records_total" + p1), 10.0) << text;
  EXPECT_GT(metric_value(text, "ferry_appended_bytes_total" + p1).value_or(0), 10.0) << text;
  EXPECT_EQ(metric_value(text, R"(ferry_appended_records_total{topic="orders",partition="0"})"), 0.0) << text;
  EXPECT_GT(metric_value(text, "ferry_fetched_bytes_total" + p1).value_or(0), 10.0) << text;
  EXPECT_EQ(metric_value(text, "ferry_appended_records_total" + keep0), 7.0) << text;
  EXPECT_EQ(metric_value(text, "ferry_fetched_bytes_total" + keep0), 0.0) << text;
  // Process-wide series keep their names and have no topic label.
  EXPECT_EQ(metric_value(text, "ferry_partition_produce_seconds_count"), 2.0) << text;
  EXPECT_TRUE(metric_value(text, R"(ferry_requests_total{api="ProduceRequest"})").has_value()) << text;
  for (const char* n : {"ferry_connections_open", "ferry_fsyncs_total", "ferry_http_requests_total",
                        "ferry_sent_bytes_total", "ferry_frames_received_total"})
    EXPECT_TRUE(names.contains(n)) << n << "\n" << text;

  // A member takes the ten, nacks the first once (a redelivery), acknowledges every delivery.
  fc::consumer_options co;
  co.bootstrap = b.bootstrap();
  co.member_name = "m";
  auto cons = fc::consumer::create(co, "orders", "billing");
  ASSERT_TRUE(cons) << cons.error().to_string();
  size_t acked = 0;
  bool nacked = false;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (acked < 10 && std::chrono::steady_clock::now() < deadline) {
    auto got = (*cons)->poll(200ms);
    ASSERT_TRUE(got) << got.error().to_string();
    for (auto& d : *got) {
      if (!nacked) {
        nacked = true;
        (*cons)->nack(d, 0ms);
        continue;
      }
      ++acked;
      (*cons)->ack(d);
    }
  }
  ASSERT_EQ(acked, 10u);
  ASSERT_TRUE((*cons)->flush());
  const std::string sub = R"({topic="orders",subscription="billing"})";
  EXPECT_TRUE(wait_until([&] { return broker_metric(b, "ferry_acks_total" + sub) == 10.0; }, 10s, 20ms))
      << metrics_text(b);
  text = metrics_text(b);
  parse_exposition(text);
  EXPECT_EQ(metric_value(text, "ferry_deliveries_total" + sub), 11.0) << text;
  EXPECT_EQ(metric_value(text, "ferry_redeliveries_total" + sub), 1.0) << text;
  EXPECT_EQ(metric_value(text, "ferry_nacks_total" + sub), 1.0) << text;
  EXPECT_EQ(metric_value(text, "ferry_lease_expiries_total" + sub), 0.0) << text;
  EXPECT_EQ(metric_value(text, "ferry_dead_lettered_total" + sub), 0.0) << text;
  EXPECT_EQ(metric_value(text, "ferry_subscription_expired_total" + sub), 0.0) << text;
  EXPECT_EQ(metric_value(text, R"(ferry_acks_total{topic="keep",subscription="audit"})"), 0.0) << text;
  (*cons)->close();

  // The subscription's series go with it; the topic's with the topic; other topics' stay.
  ASSERT_TRUE((*admin)->delete_subscription("orders", "billing"));
  EXPECT_TRUE(wait_until([&] { return !broker_metric(b, "ferry_acks_total" + sub).has_value(); }, 10s, 20ms))
      << metrics_text(b);
  ASSERT_TRUE((*admin)->delete_topic("orders"));
  EXPECT_TRUE(wait_until(
      [&] {
        std::string t = metrics_text(b);
        return !t.empty() && t.find(R"(topic="orders")") == std::string::npos;
      },
      10s, 20ms))
      << metrics_text(b);
  text = metrics_text(b);
  parse_exposition(text);
  EXPECT_EQ(metric_value(text, "ferry_appended_records_total" + keep0), 7.0) << text;
  EXPECT_EQ(metric_value(text, R"(ferry_deliveries_total{topic="keep",subscription="audit"})"), 0.0) << text;

  // A topic of the same name made again starts from zero.
  ASSERT_TRUE((*admin)->create_topic("orders", tc));
  ASSERT_EQ(c->produce("orders", 1, make_batch(seven)).error, errc::ok);
  EXPECT_EQ(broker_metric(b, "ferry_appended_records_total" + p1), 7.0) << metrics_text(b);
}

}  // namespace
}  // namespace ferry::test
