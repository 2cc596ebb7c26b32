// The HTTP listener of a real ferryd (health and metrics): GET only, the route decides 200/404;
// a slowloris (many connections trickling a request byte by byte) is cut at the read deadline and
// cannot crowd out a fresh /health; the listener runs on its own thread, not a shard's.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/observe.h"

namespace ferry::test {
namespace {

TEST(http, get_routes_answer_and_other_methods_and_garbage_are_refused) {
  broker_process b;
  ASSERT_TRUE(b.start());

  auto health = http_get(b.http_port(), "/health");
  ASSERT_TRUE(health) << health.error().to_string();
  EXPECT_EQ(health->status, 200) << health->body;
  EXPECT_EQ(health->body.substr(0, 1), "{") << health->body;
  EXPECT_NE(health->head.find("Content-Type: application/json"), std::string::npos) << health->head;
  EXPECT_NE(health->head.find("Connection: close"), std::string::npos) << health->head;

  auto ready = http_get(b.http_port(), "/ready");
  ASSERT_TRUE(ready) << ready.error().to_string();
  EXPECT_EQ(ready->status, 200) << ready->body;

  auto with_query = http_get(b.http_port(), "/health?verbose=1");
  ASSERT_TRUE(with_query) << with_query.error().to_string();
  EXPECT_EQ(with_query->status, 200) << "the query string is not part of the path";

  auto metrics = http_get(b.http_port(), "/metrics");
  ASSERT_TRUE(metrics) << metrics.error().to_string();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_TRUE(metric_value(metrics->body, "ferry_http_connections_open").has_value()) << metrics->body;

  auto unknown = http_get(b.http_port(), "/nope");
  ASSERT_TRUE(unknown) << unknown.error().to_string();
  EXPECT_EQ(unknown->status, 404);

  auto post = http_exchange(b.http_port(), "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
  ASSERT_TRUE(post) << post.error().to_string();
  EXPECT_EQ(post->status, 405);
  EXPECT_NE(post->head.find("Allow: GET"), std::string::npos) << post->head;

  auto garbage = http_exchange(b.http_port(), "HELLO THERE\r\n\r\n");
  ASSERT_TRUE(garbage) << garbage.error().to_string();
  EXPECT_EQ(garbage->status, 400);

  std::string huge_header = "GET /health HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  auto too_big = http_exchange(b.http_port(), huge_header);
  ASSERT_TRUE(too_big) << too_big.error().to_string();
  EXPECT_EQ(too_big->status, 400);
}

TEST(http, the_listener_runs_on_its_own_thread) {
  broker_process b;
  ASSERT_TRUE(b.start());
  auto names = thread_names(b.pid());
  EXPECT_EQ(std::count(names.begin(), names.end(), "ferry-http"), 1) << "threads: " << ::testing::PrintToString(names);
}

TEST(http, a_slowloris_is_cut_at_the_read_deadline_and_health_keeps_answering) {
  constexpr int attackers = 200;  // over --http-max-connections (64 by default)
  constexpr auto read_deadline = 1500ms;
  broker_options o;
  o.extra_args = {"--http-timeout-ms", std::to_string(read_deadline.count())};
  broker_process b(o);
  ASSERT_TRUE(b.start());
  seeded_topic seed;
  ASSERT_TRUE(seed.write(b.client_port()));
  const int64_t rss_before = resident_kib(b.pid());

  // Each attacker starts a request and then sends one header byte at a time, never finishing.
  std::vector<raw_connection> conns;
  for (int i = 0; i < attackers; ++i) {
    auto c = raw_connection::connect(b.http_port());
    ASSERT_TRUE(c) << c.error().to_string();
    ASSERT_TRUE(c->send_bytes("GET /health HTTP/1.1\r\nX-Slow: "));
    conns.push_back(std::move(*c));
  }
  std::vector<bool> closed(attackers, false);
  auto trickle = [&] {
    for (size_t i = 0; i < conns.size(); ++i) {
      if (closed[i]) continue;
      char byte = 'a';
      ssize_t n = ::send(conns[i].fd(), &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      char buf[256];
      ssize_t r = ::recv(conns[i].fd(), buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) closed[i] = true;
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) closed[i] = true;
    }
  };

  // While they trickle: /health on a fresh connection answers quickly, every time, and the
  // client port serves as usual.
  auto started = clock_type::now();
  std::chrono::milliseconds slowest{0};
  int probes = 0;
  while (clock_type::now() - started < read_deadline + 2s) {
    trickle();
    auto t0 = clock_type::now();
    auto r = http_get(b.http_port(), "/health", 2s);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
    ASSERT_TRUE(r) << "probe " << probes << ": " << r.error().to_string();
    EXPECT_EQ(r->status, 200);
    slowest = std::max(slowest, took);
    ++probes;
    std::this_thread::sleep_for(100ms);
  }
  std::cout << "[ measured ] slowest of " << probes << " /health probes during the slowloris: " << slowest.count()
            << " ms\n";
  EXPECT_LT(slowest, 500ms);
  EXPECT_TRUE(serves_producer_and_reader(b.client_port(), "during"));
  const int64_t rss_during = resident_kib(b.pid());
  std::cout << "[ measured ] ferryd VmRSS before the slowloris: " << rss_before / 1024
            << " MiB, during: " << rss_during / 1024 << " MiB\n";
  if (!built_with_asan()) {
    EXPECT_LT(rss_during - rss_before, 16 * 1024) << "KiB added by " << attackers << " slowloris connections";
  }

  // Every attacker has been closed (evicted for a fresh connection, or at its read deadline),
  // although each kept sending.
  ASSERT_TRUE(wait_until(
      [&] {
        trickle();
        return std::count(closed.begin(), closed.end(), false) == 0;
      },
      5s, 100ms))
      << std::count(closed.begin(), closed.end(), false) << " slowloris connections still open after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started).count() << " ms";
  auto timeouts = broker_metric(b, "ferry_http_timeouts_total{phase=\"read\"}");
  auto evicted = broker_metric(b, "ferry_http_connections_evicted_total");
  ASSERT_TRUE(timeouts.has_value());
  ASSERT_TRUE(evicted.has_value());
  std::cout << "[ measured ] read deadlines: " << *timeouts << ", evicted: " << *evicted << "\n";
  EXPECT_GT(*timeouts, 0);
  EXPECT_GE(*evicted, attackers - 64);
  EXPECT_TRUE(wait_until([&] { return broker_metric(b, "ferry_http_connections_open").value_or(-1) <= 1; }, 5s, 20ms));
  EXPECT_TRUE(seed.unchanged(b.client_port()));
}

}  // namespace
}  // namespace ferry::test
