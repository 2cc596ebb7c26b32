#pragma once
// ferryd's configuration: every flag also works from the config file (--config FILE, CLI11's
// TOML/INI format: `listen = "127.0.0.1:7070"`).
#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace ferry::app {

struct broker_config {
  std::string data_dir = "./ferry-data";
  std::string listen = "127.0.0.1:7070";
  std::string http = "127.0.0.1:7072";  // empty: no HTTP listener
  std::string ready_file;
  std::string log_level = "info";
  int32_t node_id = 1;
  size_t shards = 0;  // 0: one per core
  size_t disk_threads = 2;
  uint32_t max_frame_bytes = 16u << 20;
  std::string retention = "7d";         // default topic retention
  int64_t segment_bytes = 128LL << 20;  // default topic segment size
  std::string segment_age = "7d";
  int32_t max_batch_bytes = 8 << 20;
  bool preallocate = true;
  int64_t retention_check_ms = 30000;
  int64_t checkpoint_interval_ms = 1000;      // how often subscription state is saved
  std::string ack_timeout = "30s";            // default subscription ack timeout
  int32_t max_deliveries = 10;                // default subscription max deliveries (0: never dead-letter)
  std::string delay_horizon = "60s";          // delayed messages due within this are held in memory
  size_t delay_max_loaded = 100'000;          // at most this many per partition
  double delay_release_rate = 50'000;         // releases of due delayed messages per second per partition
  size_t delay_max_loaded_bytes = 64u << 20;  // and at most this many bytes of them per partition
  std::string producer_expiry = "1d";         // forget an idempotent producer idle this long
  size_t max_producers = 200'000;             // producer ids remembered per partition at most
  int64_t idle_timeout_ms = int64_t{10} * 60 * 1000;
  size_t max_connections = 10'000;    // client connections open at once, broker-wide
  int64_t write_timeout_ms = 30'000;  // close a connection whose writes made no progress this long
  size_t http_max_connections = 64;
  int64_t http_timeout_ms = 5000;  // deadline for an HTTP request to arrive, and for its response to be taken

  // Derived by finish():
  std::string listen_host;
  uint16_t listen_port = 0;
  std::string http_host;
  uint16_t http_port = 0;
  int64_t retention_ms = 0;
  int64_t segment_ms = 0;
  int64_t ack_timeout_ms = 0;
  int64_t delay_horizon_ms = 0;
  int64_t producer_expiry_ms = 0;
};

void add_flags(CLI::App& app, broker_config& c);
// Validates and derives fields; throws std::invalid_argument naming the bad flag.
void finish(broker_config& c);
// "500ms", "30s", "15m", "2h", "7d", or a plain number of milliseconds; -1 on error.
int64_t parse_duration_ms(const std::string& s);

}  // namespace ferry::app
