// ferry-client-bench: the client producer's own throughput, against the in-process fake broker
// (client/test/fake_broker.h), with no ferryd, disk or fsync in the way. It sends --messages
// values of --size bytes to one partition and prints messages/s from the first send until the
// last acknowledgement, and checks every message was acknowledged in order (offsets 0..N-1).
//
// Not a measure of Ferry (the fake serves one connection on one blocking thread); a way to see a
// client-side slowdown (batching, encoding, callbacks) on its own. Not run by ctest: it was the
// unit test producer.throughput_smoke, whose only assertion was "all acknowledged".
//
//   ferry-client-bench [--messages 1000000] [--size 100]
//
// Exit status: 0 success, 1 a message failed or came back out of order, 2 a usage error.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "client/test/fake_broker.h"
#include "ferry/client/client.h"
#include "schema/main_guard.h"

namespace fc = ferry::client;

int checked_main(int argc, char** argv) {
  int64_t messages = 1'000'000;
  size_t size = 100;
  CLI::App app{"ferry-client-bench: the client producer's throughput against an in-process fake broker"};
  app.add_option("--messages", messages, "messages to send")->capture_default_str()->check(CLI::Range(1, 1 << 30));
  app.add_option("--size", size, "value size in bytes")->capture_default_str()->check(CLI::Range(0, 1 << 20));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  fc::testing::fake_broker broker;
  broker.add_topic("perf", 1);
  fc::producer_options o;
  o.bootstrap = broker.address();
  auto p = fc::producer::create(o);
  if (!p) return std::fprintf(stderr, "error: %s\n", p.error().to_string().c_str()), 1;
  const std::string payload(size, 'p');
  std::atomic<int64_t> acked{0};
  std::atomic<int64_t> out_of_order{0};
  std::atomic<int64_t> failed{0};
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < messages; ++i) {
    fc::message m;
    m.value = payload;
    (*p)->send("perf", std::move(m), [&, i](const ferry::result<fc::message_id>& r) {
      if (!r) {
        failed.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (r->offset != i) out_of_order.fetch_add(1, std::memory_order_relaxed);
      acked.fetch_add(1, std::memory_order_relaxed);
    });
  }
  auto fl = (*p)->flush();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  (*p)->close();
  std::printf("producer to fake broker: %" PRId64 " messages of %zu bytes in %.3f s: %.0f msg/s\n", acked.load(), size,
              secs, static_cast<double>(acked.load()) / secs);
  if (!fl || failed.load() > 0 || out_of_order.load() > 0 || acked.load() != messages) {
    std::fprintf(stderr, "error: %" PRId64 " acknowledged, %" PRId64 " failed, %" PRId64 " out of order%s\n",
                 acked.load(), failed.load(), out_of_order.load(),
                 fl ? "" : (", flush: " + fl.error().to_string()).c_str());
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) { return ferry::guarded_main("ferry-client-bench", checked_main, argc, argv); }
