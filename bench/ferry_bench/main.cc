// ferry-bench: Ferry's load generator.
//
//   ferry-bench produce   P producers (one thread and one client producer each) publish
//                         --messages values of --size bytes; measures throughput and the
//                         publish-to-ack latency of every message.
//   ferry-bench consume   one reader per partition reads --messages from the earliest offset;
//                         measures throughput.
//   ferry-bench e2e       produces at --rate while reading every partition in the same process;
//                         measures end-to-end latency (send -> read) from a timestamp header.
//   ferry-bench subscribe a new subscription drains the topic with --members consumers acking
//                         every message; throughput of durable acks.
//   ferry-bench delayed   publishes delayed messages due over --spread-ms; scheduling rate, and
//                         with --consume their lateness after the due time; broker memory.
//
// Latency is measured with std::chrono::steady_clock and recorded into a log-linear histogram
// (bench/histogram.h; its precision is printed with every result).
//
// Open-loop pacing: with --rate R each producer thread owns R/P messages per second and message i
// has an intended send time start + i/(R/P). Latency is measured from that intended time, not from
// the moment send() finally ran, so a broker (or client) stall that makes the sender fall behind
// shows up in the latency instead of being hidden by a sender that politely waited
// ("coordinated omission"). Without --rate the producers send as fast as send() accepts
// (closed loop, bounded by the producer's buffer): that measures throughput, and its latency is
// mostly queueing in the client buffer.
//
// Exit status: 0 success, 1 a broker or client error (failed sends, unreachable broker),
// 2 a usage error.
//
// Layout: this file wires the command line; one file per mode (produce.cc, consume.cc, e2e.cc,
// subscribe.cc, delayed.cc) on shared pieces: options.h (settings), connect.h (admin, topic),
// producing.h and reading.h (the producer and reader threads), report.h (summary, progress,
// the --json result through nlohmann-json).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "bench/ferry_bench/options.h"
#include "ferry/client/client.h"
#include "schema/main_guard.h"

namespace ferry::bench {
namespace {

// ---- command line -----------------------------------------------------------------------------

void add_common(CLI::App* cmd, settings& s) {
  cmd->add_option("--bootstrap", s.bootstrap, "broker host:port (default: $FERRY_BOOTSTRAP or 127.0.0.1:7070)");
  cmd->add_option("--topic", s.topic, "topic name")->capture_default_str();
  cmd->add_flag("--create-topic", s.create_topic, "create the topic (it is also created when missing)");
  cmd->add_option("--partitions", s.partitions, "partitions of a created topic")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--json", s.json_file, "also write the result as one JSON object to FILE");
  cmd->add_option("--idle-timeout", s.idle_timeout_s, "readers give up after this many seconds without a message")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
}

void add_producing(CLI::App* cmd, settings& s) {
  cmd->add_option("--size", s.size, "value size in bytes")->capture_default_str()->check(CLI::Range(0, 64 << 20));
  cmd->add_option("--producers", s.producers, "producer objects, one sending thread each")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--batch-bytes", s.batch_bytes, "producer batch size per partition")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--linger-ms", s.linger_ms, "producer linger")->capture_default_str()->check(CLI::Range(0, 60000));
  cmd->add_option("--max-in-flight", s.max_in_flight, "unanswered batches per partition")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--rate", s.rate, "messages/s over all producers, paced open-loop (0 = unlimited)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e12));
  cmd->add_option("--keys", s.keys, "distinct keys, message i has key i mod N (0 = keyless, spread)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
}

}  // namespace
}  // namespace ferry::bench

int checked_main(int argc, char** argv) {
  using namespace ferry::bench;
  settings s;
  CLI::App app{"ferry-bench: Ferry's load generator (produce, consume, end-to-end, subscribe, delayed)"};
  app.require_subcommand(1);

  auto* produce = app.add_subcommand("produce", "publish --messages and measure throughput and publish-to-ack latency");
  add_common(produce, s);
  add_producing(produce, s);
  produce->add_option("--messages", s.messages, "messages to publish, over all producers")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));

  auto* consume = app.add_subcommand("consume", "read --messages from the earliest offset of every partition");
  add_common(consume, s);
  consume->add_option("--messages", s.messages, "messages to read over all partitions (default: all stored)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  consume->add_option("--fetch-bytes", s.fetch_bytes, "max bytes per poll")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));

  auto* e2e = app.add_subcommand("e2e", "publish at --rate while reading, measure end-to-end latency");
  add_common(e2e, s);
  add_producing(e2e, s);
  e2e->add_option("--messages", s.messages, "messages to publish, over all producers")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));

  auto* subscribe = app.add_subcommand(
      "subscribe", "drain the topic with a new subscription: --members consumers acking every message");
  add_common(subscribe, s);
  subscribe->add_option("--messages", s.messages, "messages to ack (default: all stored)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  subscribe->add_option("--members", s.members, "consumer members, one thread each")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  subscribe->add_flag("--ordered", s.ordered, "ordered keys (and check per-key order)");
  subscribe->add_option("--credit", s.credit, "messages each member may have outstanding")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  subscribe->add_option("--subscription", s.subscription, "subscription name (default: bench-<pid>, deleted after)");

  auto* delayed = app.add_subcommand(
      "delayed", "publish delayed messages due over --spread; scheduling rate, lateness (--consume), broker memory");
  add_common(delayed, s);
  add_producing(delayed, s);
  delayed->add_option("--messages", s.messages, "delayed messages to publish")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  delayed->add_option("--delay-min-ms", s.delay_min_ms, "earliest due time, ms after the start")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  delayed->add_option("--spread-ms", s.delay_spread_ms, "due times spread over this many ms")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  delayed->add_flag("--consume", s.consume_delayed, "receive them with a subscription and measure lateness");
  delayed->add_option("--members", s.delay_members, "consumers with --consume")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  delayed->add_option("--broker-pid", s.broker_pid, "sample this process's resident memory (the broker's)");
  delayed->add_option("--settle", s.settle_s, "seconds to keep sampling memory after publishing (without --consume)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (s.bootstrap.empty()) s.bootstrap = ferry::client::default_bootstrap();
  s.messages_given = consume->count("--messages") > 0 || subscribe->count("--messages") > 0;

  try {
    if (produce->parsed()) return run_produce(s);
    if (consume->parsed()) return run_consume(s);
    if (subscribe->parsed()) return run_subscribe(s);
    if (delayed->parsed()) return run_delayed(s);
    return run_e2e(s);
  } catch (const std::exception& e) {
    // The client returns errors as values; anything thrown here is unexpected.
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

int main(int argc, char** argv) { return ferry::guarded_main("ferry-bench", checked_main, argc, argv); }
