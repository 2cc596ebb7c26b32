#pragma once
// ferry-bench's modes and settings (one struct for every mode; main.cc fills it from the command
// line, each mode reads what applies to it).
#include <cstddef>
#include <cstdint>
#include <string>

namespace ferry::bench {

enum class mode { produce, consume, e2e, subscribe, delayed };

const char* mode_name(mode m);

struct settings {
  std::string bootstrap;
  std::string topic = "ferry-bench";
  bool create_topic = false;
  int partitions = 1;
  int64_t messages = 1'000'000;
  bool messages_given = false;
  size_t size = 100;
  int producers = 1;
  size_t batch_bytes = 256u << 10;
  int linger_ms = 2;
  int max_in_flight = 5;
  double rate = 0;  // messages per second over all producers; 0 = unlimited
  int64_t keys = 0;
  size_t fetch_bytes = 1u << 20;
  int idle_timeout_s = 10;
  std::string json_file;
  // subscribe
  int members = 4;
  bool ordered = false;
  int credit = 2000;
  std::string subscription;
  // delayed
  bool delayed = false;
  int64_t delay_min_ms = 5000;
  int64_t delay_spread_ms = 60'000;
  int64_t delay_base_ms = 0;  // wall-clock ms at the start: due times are base + min + [0, spread)
  bool consume_delayed = false;
  int delay_members = 1;
  int broker_pid = 0;
  int settle_s = 5;
};

// The modes (produce.cc, consume.cc, e2e.cc, subscribe.cc, delayed.cc). Each returns the exit
// status: 0 success, 1 a broker or client error (failed sends, unreachable broker, stalls).
int run_produce(const settings& s);
int run_consume(const settings& s);
int run_e2e(const settings& s);
int run_subscribe(settings s);
int run_delayed(settings s);

}  // namespace ferry::bench
