// Connection limits of a real ferryd (raw sockets, no client library): --max-connections refuses
// with one resource_exhausted frame and the count drops as connections close; the idle timeout
// closes a connection with no bytes moving even while a long-poll is pending; running out of file
// descriptors makes the accept loops back off (no spinning) and they serve again afterwards.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "schema/frame.h"
#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/observe.h"

namespace ferry::test {
namespace {

std::string name_of(errc e) { return std::string(errc_name(e)); }

std::string msg_of(const response_frame& r) {
  return r.resp->error_message() ? r.resp->error_message()->str() : std::string();
}

bool list_topics_works(uint16_t port) {
  auto c = raw_client::connect(port);
  if (!c) return false;
  auto r = c->call(list_topics_frame(c->next_cid()));
  return r && wire::from_wire(r->resp->error()) == errc::ok;
}

TEST(connection_limits, connections_beyond_max_connections_get_one_resource_exhausted_frame_and_are_closed) {
  broker_options o;
  o.extra_args = {"--max-connections", "4"};
  broker_process b(o);
  ASSERT_TRUE(b.start());

  std::vector<raw_client> held;
  for (int i = 0; i < 4; ++i) {
    auto c = raw_client::connect(b.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    auto r = c->call(list_topics_frame(c->next_cid()));
    ASSERT_TRUE(r) << "connection " << i << ": " << r.error().to_string();
    held.push_back(std::move(*c));
  }

  // The fifth is accepted, answered once (correlation id 0) and closed.
  auto extra = raw_connection::connect(b.client_port());
  ASSERT_TRUE(extra) << extra.error().to_string();
  auto refused = extra->read_response(5s);
  ASSERT_TRUE(refused) << refused.error().to_string();
  EXPECT_EQ(name_of(wire::from_wire(refused->resp->error())), name_of(errc::resource_exhausted));
  EXPECT_EQ(static_cast<int>(refused->resp->error()), 30);
  EXPECT_EQ(refused->resp->correlation_id(), 0u);
  EXPECT_NE(msg_of(*refused).find("connection limit of 4 reached"), std::string::npos) << msg_of(*refused);
  EXPECT_TRUE(extra->wait_closed(5s)) << "a refused connection must be closed";

  // A client that sends its request before reading gets the same single answer.
  auto eager = raw_connection::connect(b.client_port());
  ASSERT_TRUE(eager) << eager.error().to_string();
  auto eager_answer = eager->roundtrip(list_topics_frame(77));
  ASSERT_TRUE(eager_answer) << eager_answer.error().to_string();
  EXPECT_EQ(name_of(wire::from_wire(eager_answer->resp->error())), name_of(errc::resource_exhausted));
  EXPECT_TRUE(eager->wait_closed(5s));

  // The connections within the limit are unaffected.
  for (auto& c : held) {
    auto r = c.call(list_topics_frame(c.next_cid()));
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(name_of(wire::from_wire(r->resp->error())), name_of(errc::ok));
  }

  // The count drops as connections close: two closed, two new ones are served.
  held.pop_back();
  held.pop_back();
  ASSERT_TRUE(wait_until([&] { return list_topics_works(b.client_port()); }, 5s, 20ms))
      << "a connection is still refused after two of the four closed";
  std::vector<raw_client> again;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(wait_until(
        [&] {
          auto c = raw_client::connect(b.client_port());
          if (!c) return false;
          auto r = c->call(list_topics_frame(c->next_cid()));
          if (!r || wire::from_wire(r->resp->error()) != errc::ok) return false;
          again.push_back(std::move(*c));
          return true;
        },
        5s, 20ms));
  }
  // Four open again: the next one is refused.
  auto over = raw_connection::connect(b.client_port());
  ASSERT_TRUE(over) << over.error().to_string();
  auto over_answer = over->read_response(5s);
  ASSERT_TRUE(over_answer) << over_answer.error().to_string();
  EXPECT_EQ(name_of(wire::from_wire(over_answer->resp->error())), name_of(errc::resource_exhausted));

  auto refused_total = broker_metric(b, "ferry_connections_refused_total");
  ASSERT_TRUE(refused_total.has_value());
  EXPECT_GE(*refused_total, 3);
  // Closed connections leave the gauge once their session has wound down.
  EXPECT_TRUE(wait_until([&] { return broker_metric(b, "ferry_connections_open") == 4.0; }, 5s, 20ms))
      << "ferry_connections_open is " << broker_metric(b, "ferry_connections_open").value_or(-1);
}

TEST(connection_limits, a_pending_long_poll_does_not_keep_a_silent_connection_open_past_the_idle_timeout) {
  broker_options o;
  o.extra_args = {"--idle-timeout-ms", "1000"};
  broker_process b(o);
  ASSERT_TRUE(b.start());
  {
    auto c = raw_client::connect(b.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    auto [e, m] = c->create_topic("quiet", 1);
    ASSERT_EQ(name_of(e), name_of(errc::ok)) << m;
  }

  // A connection whose only request is a long-poll (30 s, the broker's cap) and that sends
  // nothing else: no byte moves, so it is idle.
  auto silent = raw_connection::connect(b.client_port());
  ASSERT_TRUE(silent) << silent.error().to_string();
  // A connection with the same long-poll that keeps sending requests (answered only after the
  // fetch, responses keep request order): bytes are read, so it is not idle.
  auto chatty = raw_connection::connect(b.client_port());
  ASSERT_TRUE(chatty) << chatty.error().to_string();
  auto started = clock_type::now();
  ASSERT_TRUE(silent->send_bytes(fetch_frame(1, "quiet", 0, 0, 30000)));
  ASSERT_TRUE(chatty->send_bytes(fetch_frame(1, "quiet", 0, 0, 30000)));

  bool silent_closed = false;
  uint64_t cid = 10;
  while (clock_type::now() - started < 3s) {
    ASSERT_TRUE(chatty->send_bytes(list_topics_frame(++cid))) << "the chatty connection was closed";
    if (!silent_closed)
      silent_closed = silent->wait_closed(250ms);
    else
      std::this_thread::sleep_for(250ms);
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started);
  EXPECT_TRUE(silent_closed) << "a connection with a pending long-poll and no traffic was still open after "
                             << elapsed.count() << " ms (idle timeout 1000 ms)";
  // The chatty one is still open: its long-poll (answered at 30 s at the latest) is pending.
  EXPECT_FALSE(chatty->wait_closed(10ms));
  auto idle_closed = broker_metric(b, "ferry_connections_idle_closed_total");
  ASSERT_TRUE(idle_closed.has_value());
  EXPECT_EQ(*idle_closed, 1);
}

TEST(connection_limits, accept_loops_back_off_without_spinning_and_serve_again_after_running_out_of_descriptors) {
  broker_options o;
  constexpr uint64_t fd_limit = 160;
  o.max_open_files = fd_limit;
  broker_process b(o);
  ASSERT_TRUE(b.start());
  seeded_topic seed;
  ASSERT_TRUE(seed.write(b.client_port()));
  ASSERT_LT(open_fds(b.pid()), fd_limit - 40) << "ferryd needs more descriptors than the test expects";

  // More connections than ferryd has descriptors for: the kernel completes every handshake (the
  // listen backlog is large), ferryd accepts until accept() fails with EMFILE.
  std::vector<raw_connection> held;
  for (uint64_t i = 0; i < fd_limit + 60; ++i) {
    auto c = raw_connection::connect(b.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    held.push_back(std::move(*c));
  }
  ASSERT_TRUE(wait_until([&] { return open_fds(b.pid()) >= fd_limit - 1; }, 10s, 10ms))
      << "ferryd has " << open_fds(b.pid()) << " descriptors open, limit " << fd_limit;
  ASSERT_TRUE(wait_until([&] { return b.log_tail(1 << 20).find("accept failed") != std::string::npos; }, 10s, 20ms))
      << "the client accept loop should have reported EMFILE";
  // Now the HTTP listener too: its connections wait in its backlog, no descriptor is free.
  for (int i = 0; i < 10; ++i) {
    auto c = raw_connection::connect(b.http_port());
    ASSERT_TRUE(c) << c.error().to_string();
    held.push_back(std::move(*c));
  }
  EXPECT_TRUE(wait_until([&] { return b.log_tail(1 << 20).find("http listener: accept failed") != std::string::npos; },
                         5s, 20ms))
      << "the HTTP accept loop should have reported EMFILE";

  // Saturated, connections waiting in both backlogs: the broker must idle, not retry at once.
  // A loop that retries immediately burns a whole core (~100 ticks a second each).
  auto ticks_before = cpu_ticks(b.pid());
  std::this_thread::sleep_for(2s);  // the measurement window
  auto ticks = cpu_ticks(b.pid()) - ticks_before;
  std::cout << "[ measured ] ferryd CPU while out of descriptors: " << ticks << " ticks in 2 s\n";
  EXPECT_LT(ticks, 40u) << "ferryd used " << ticks << " clock ticks of CPU in 2 s while out of descriptors";
  ASSERT_TRUE(b.alive());

  // Descriptors come back: both listeners serve again.
  held.clear();
  ASSERT_TRUE(
      wait_until([&] { return static_cast<bool>(serves_producer_and_reader(b.client_port(), "after")); }, 10s, 50ms))
      << serves_producer_and_reader(b.client_port(), "after").message();
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = http_get(b.http_port(), "/health", 1s);
        return r && r->status == 200;
      },
      10s, 50ms))
      << "HTTP listener did not serve again";
  EXPECT_TRUE(seed.unchanged(b.client_port()));
  EXPECT_NE(b.log_tail(1 << 20).find("client listener: accept failed"), std::string::npos);
  auto client_errors = broker_metric(b, "ferry_accept_errors_total{listener=\"client\"}");
  auto http_errors = broker_metric(b, "ferry_accept_errors_total{listener=\"http\"}");
  ASSERT_TRUE(client_errors.has_value());
  ASSERT_TRUE(http_errors.has_value());
  EXPECT_GT(*client_errors, 0);
  EXPECT_GT(*http_errors, 0);
}

}  // namespace
}  // namespace ferry::test
