// Resource-exhaustion attacks on a real ferryd's client port (issue 8, item 8): many held
// connections, length prefixes that announce 16 MiB and send nothing more, and a client that never
// reads its responses. In each, the broker's resident memory stays under a stated bound, a normal
// producer and reader on another connection keep working during the attack, and the data stored
// before it is unchanged. RSS bounds are skipped (with a message) under AddressSanitizer.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "schema/frame.h"
#include "schema/record_batch.h"
#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/observe.h"

namespace ferry::test {
namespace {

std::string name_of(errc e) { return std::string(errc_name(e)); }

// Raises this process's soft descriptor limit to at least `want` (up to the hard limit).
void raise_fd_limit(rlim_t want) {
  rlimit r{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &r), 0);
  if (r.rlim_cur >= want) return;
  ASSERT_GE(r.rlim_max, want) << "the hard descriptor limit is too low for this test";
  r.rlim_cur = want;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &r), 0);
}

void expect_rss_below(const broker_process& b, long bound_mib, long measured_kib, const char* what) {
  std::cout << "[ measured ] ferryd VmRSS " << what << ": " << measured_kib / 1024 << " MiB (bound " << bound_mib
            << " MiB)\n";
  if (built_with_asan()) {
    GTEST_LOG_(INFO) << "AddressSanitizer build: RSS bound not checked (" << measured_kib / 1024 << " MiB)";
    return;
  }
  EXPECT_LT(measured_kib, bound_mib * 1024) << what << " (pid " << b.pid() << ")";
}

// The largest VmRSS seen over `window`, sampled every 20 ms.
long max_rss_over(int pid, std::chrono::milliseconds window) {
  long peak = 0;
  auto end = clock_type::now() + window;
  do {
    peak = std::max(peak, resident_kib(pid));
    std::this_thread::sleep_for(20ms);
  } while (clock_type::now() < end);
  return peak;
}

TEST(connection_exhaustion, five_thousand_held_connections) {
  constexpr int connections = 5000;
  raise_fd_limit(connections + 500);
  broker_process b;
  ASSERT_TRUE(b.start());
  seeded_topic seed;
  ASSERT_TRUE(seed.write(b.client_port()));
  std::cout << "[ measured ] ferryd VmRSS before: " << resident_kib(b.pid()) / 1024 << " MiB\n";

  std::vector<raw_connection> held;
  held.reserve(connections);
  for (int i = 0; i < connections; ++i) {
    auto c = raw_connection::connect(b.client_port());
    ASSERT_TRUE(c) << "connection " << i << ": " << c.error().to_string();
    held.push_back(std::move(*c));
  }
  ASSERT_TRUE(
      wait_until([&] { return broker_metric(b, "ferry_connections_open").value_or(0) >= connections; }, 60s, 50ms))
      << "ferry_connections_open: " << broker_metric(b, "ferry_connections_open").value_or(-1);

  // Serving while all of them are held: a producer and reader on another connection, and some of
  // the held connections themselves.
  EXPECT_TRUE(serves_producer_and_reader(b.client_port(), "during"));
  for (int i = 0; i < connections; i += 499) {
    auto r = held[static_cast<size_t>(i)].roundtrip(list_topics_frame(static_cast<uint64_t>(i) + 1));
    ASSERT_TRUE(r) << "held connection " << i << ": " << r.error().to_string();
    EXPECT_EQ(name_of(wire::from_wire(r->resp->error())), name_of(errc::ok));
  }
  expect_rss_below(b, 100, max_rss_over(b.pid(), 500ms), "with 5,000 connections held");
  EXPECT_TRUE(seed.unchanged(b.client_port()));

  held.clear();
  EXPECT_TRUE(wait_until([&] { return broker_metric(b, "ferry_connections_open").value_or(-1) == 0; }, 30s, 50ms));
  EXPECT_TRUE(serves_producer_and_reader(b.client_port(), "after"));
}

TEST(connection_exhaustion, length_prefixes_announcing_16_mib_without_the_bytes) {
  constexpr int connections = 300;
  constexpr uint32_t announced = 16u << 20;  // exactly the default --max-frame-bytes: accepted
  broker_process b;
  ASSERT_TRUE(b.start());
  seeded_topic seed;
  ASSERT_TRUE(seed.write(b.client_port()));
  std::cout << "[ measured ] ferryd VmRSS before: " << resident_kib(b.pid()) / 1024 << " MiB\n";

  bytes prefix(4);
  wire::put_le32(prefix.data(), announced);
  bytes some_body(100, std::byte{0x5a});
  std::vector<raw_connection> held;
  for (int i = 0; i < connections; ++i) {
    auto c = raw_connection::connect(b.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    ASSERT_TRUE(c->send_bytes(prefix));
    if (i % 2 == 0) {
      ASSERT_TRUE(c->send_bytes(some_body));  // half send a few body bytes too
    }
    held.push_back(std::move(*c));
  }
  EXPECT_TRUE(
      wait_until([&] { return broker_metric(b, "ferry_connections_open").value_or(0) >= connections; }, 30s, 20ms))
      << "ferry_connections_open: " << broker_metric(b, "ferry_connections_open").value_or(-1);
  // Every prefix has been read: its frame's buffer exists (64 KiB each, not 16 MiB).
  auto reading = [&] { return broker_metric(b, "ferry_frame_bytes_reading").value_or(0); };
  bool all_reading = wait_until([&] { return reading() >= connections * double(64 << 10); }, 10s, 20ms);
  auto peak = max_rss_over(b.pid(), 1s);
  expect_rss_below(b, 100, peak, "with 300 connections each announcing a 16 MiB frame");
  ASSERT_TRUE(all_reading) << "ferry_frame_bytes_reading: " << reading();
  std::cout << "[ measured ] ferry_frame_bytes_reading: " << reading() / (1 << 20) << " MiB\n";
  EXPECT_LE(reading(), connections * double((64 << 10) + 4));

  EXPECT_TRUE(serves_producer_and_reader(b.client_port(), "during"));
  EXPECT_TRUE(seed.unchanged(b.client_port()));

  // The attackers are still waited for (they may yet send their frames); when they leave, their
  // buffers go.
  held.clear();
  EXPECT_TRUE(wait_until([&] { return reading() == 0; }, 10s, 20ms)) << reading();
  EXPECT_TRUE(serves_producer_and_reader(b.client_port(), "after"));
}

TEST(connection_exhaustion, a_client_that_never_reads_its_responses_is_stopped_and_closed_at_the_write_deadline) {
  constexpr int write_timeout_ms = 3000;
  broker_options o;
  o.extra_args = {"--write-timeout-ms", std::to_string(write_timeout_ms)};
  broker_process b(o);
  ASSERT_TRUE(b.start());
  seeded_topic seed;
  ASSERT_TRUE(seed.write(b.client_port()));

  // A partition holding 4 MiB: four batches of one 1 MiB record.
  {
    auto c = raw_client::connect(b.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    auto [e, m] = c->create_topic("big", 1);
    ASSERT_EQ(name_of(e), name_of(errc::ok)) << m;
    for (int i = 0; i < 4; ++i) {
      auto out = c->produce("big", 0, make_value_batch({random_payload(static_cast<uint64_t>(i), 1 << 20, 1 << 20)}));
      ASSERT_EQ(name_of(out.error), name_of(errc::ok)) << out.message;
    }
  }
  auto rss_before = resident_kib(b.pid());
  std::cout << "[ measured ] ferryd VmRSS before: " << rss_before / 1024 << " MiB\n";

  // The attacker pipelines 500 fetches of the whole partition (4 MiB answers: 2 GB in all) and
  // reads nothing. The broker must stop reading its requests once its budget is queued.
  auto frames_before = broker_metric(b, "ferry_frames_received_total").value_or(0);
  auto attacker = raw_connection::connect(b.client_port());
  ASSERT_TRUE(attacker) << attacker.error().to_string();
  attacker->set_timeout(2s);
  int sent = 0;
  auto started = clock_type::now();
  for (; sent < 500; ++sent) {
    if (!attacker->send_bytes(fetch_frame(static_cast<uint64_t>(sent) + 1, "big", 0, 0, 0, 4 << 20))) break;
  }
  std::cout << "[ measured ] fetches sent before the socket buffers filled: " << sent << " of 500\n";

  // During the attack: others are served, memory stays bounded, and the attacker is closed after
  // the write deadline.
  EXPECT_TRUE(serves_producer_and_reader(b.client_port(), "during"));
  long peak = 0;
  double queued_peak = 0;
  bool closed = wait_until(
      [&] {
        peak = std::max(peak, resident_kib(b.pid()));
        queued_peak = std::max(queued_peak, broker_metric(b, "ferry_connection_queued_bytes").value_or(0));
        return broker_metric(b, "ferry_connections_write_timeouts_total").value_or(0) >= 1;
      },
      std::chrono::milliseconds(write_timeout_ms * 4 + 10000), 20ms);
  auto closed_after = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started);
  ASSERT_TRUE(closed) << "the non-reading client was not closed after " << closed_after.count() << " ms";
  std::cout << "[ measured ] closed after " << closed_after.count() << " ms; peak queued bytes "
            << queued_peak / (1 << 20) << " MiB\n";
  EXPECT_GE(closed_after.count(), write_timeout_ms);
  // It stopped reading: far fewer of the fetches were read than sent.
  EXPECT_GT(broker_metric(b, "ferry_backpressure_waits_total").value_or(0), 0);
  auto frames_read = broker_metric(b, "ferry_frames_received_total").value_or(0) - frames_before;
  std::cout << "[ measured ] frames the broker read meanwhile (the attacker's and the check's): " << frames_read
            << "\n";
  EXPECT_LT(frames_read, 60);  // 64 MiB of room holds 15 answers of 4 MiB; the check sends a few more
  // Per connection: the 64 MiB budget, plus the responses being built when it was crossed.
  EXPECT_LT(queued_peak, double(96 << 20));
  expect_rss_below(b, rss_before / 1024 + 160, peak, "while a client did not read its responses");
  EXPECT_TRUE(attacker->wait_closed(5s)) << "the broker's side of the attacker's connection is still open";
  EXPECT_TRUE(
      wait_until([&] { return broker_metric(b, "ferry_connection_queued_bytes").value_or(-1) == 0; }, 10s, 20ms))
      << "queued bytes not released: " << broker_metric(b, "ferry_connection_queued_bytes").value_or(-1);

  EXPECT_TRUE(serves_producer_and_reader(b.client_port(), "after"));
  EXPECT_TRUE(seed.unchanged(b.client_port()));
}

}  // namespace
}  // namespace ferry::test
