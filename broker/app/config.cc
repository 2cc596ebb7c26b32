#include "broker/app/config.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <stdexcept>
#include <thread>

namespace ferry::app {

void add_flags(CLI::App& app, broker_config& c) {
  app.set_config("--config", "", "Read flags from a TOML/INI file (same names as the flags)");
  app.add_option("--data-dir", c.data_dir, "Data folder (created if missing)")->capture_default_str();
  app.add_option("--listen", c.listen, "Client listener host:port (port 0: any free port)")->capture_default_str();
  app.add_option("--http", c.http, "HTTP listener for /health and /metrics (empty: off)")->capture_default_str();
  app.add_option("--ready-file", c.ready_file, "Write {pid, client_port, http_port} JSON here once listening");
  app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--node-id", c.node_id, "This broker's node id")->capture_default_str();
  app.add_option("--shards", c.shards, "Shard threads (0: one per core)")->capture_default_str();
  app.add_option("--disk-threads", c.disk_threads, "Threads for fsync and metadata I/O")->capture_default_str();
  app.add_option("--max-frame-bytes", c.max_frame_bytes, "Largest request frame accepted")->capture_default_str();
  app.add_option("--retention", c.retention, "Default topic retention (e.g. 7d, 12h; 0: forever)")
      ->capture_default_str();
  app.add_option("--segment-bytes", c.segment_bytes, "Default segment size in bytes")->capture_default_str();
  app.add_option("--segment-age", c.segment_age, "Default segment age before rolling")->capture_default_str();
  app.add_option("--max-batch-bytes", c.max_batch_bytes, "Default largest record batch")->capture_default_str();
  app.add_flag("--preallocate,!--no-preallocate", c.preallocate, "Preallocate segment files")->capture_default_str();
  app.add_option("--retention-check-ms", c.retention_check_ms, "How often retention runs")->capture_default_str();
  app.add_option("--checkpoint-interval-ms", c.checkpoint_interval_ms, "How often subscription state is saved")
      ->capture_default_str();
  app.add_option("--ack-timeout", c.ack_timeout, "Default ack timeout of new subscriptions")->capture_default_str();
  app.add_option("--delay-horizon", c.delay_horizon, "Delayed messages due within this are held in memory")
      ->capture_default_str();
  app.add_option("--delay-max-loaded", c.delay_max_loaded, "At most this many delayed messages in memory per partition")
      ->capture_default_str();
  app.add_option("--delay-release-rate", c.delay_release_rate,
                 "Due delayed messages released per second per partition at most (catch-up after downtime)")
      ->capture_default_str();
  app.add_option("--delay-max-loaded-bytes", c.delay_max_loaded_bytes,
                 "At most this many bytes of delayed messages in memory per partition")
      ->capture_default_str();
  app.add_option("--producer-expiry", c.producer_expiry,
                 "Forget an idempotent producer id after this long without a batch (its retries are then new)")
      ->capture_default_str();
  app.add_option("--max-producers", c.max_producers,
                 "Producer ids remembered per partition at most (the least recently active are forgotten first)")
      ->capture_default_str();
  app.add_option("--max-deliveries", c.max_deliveries,
                 "Default deliveries before the dead-letter topic for new subscriptions (0: never)")
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", c.idle_timeout_ms,
                 "Close a connection with no bytes read or written this long (pending requests or not)")
      ->capture_default_str();
  app.add_option("--max-connections", c.max_connections,
                 "Client connections open at once; beyond: one resource_exhausted frame, then close")
      ->capture_default_str();
  app.add_option("--write-timeout-ms", c.write_timeout_ms,
                 "Close a client connection whose pending write made no progress this long (it stopped reading)")
      ->capture_default_str();
  app.add_option("--http-max-connections", c.http_max_connections, "HTTP connections open at once")
      ->capture_default_str();
  app.add_option("--http-timeout-ms", c.http_timeout_ms,
                 "Deadline for an HTTP request to arrive, and again for its response to be taken")
      ->capture_default_str();
}

int64_t parse_duration_ms(const std::string& s) {
  if (s.empty()) return -1;
  int64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc{} || n < 0) return -1;
  std::string unit(p, s.data() + s.size());
  if (unit.empty() || unit == "ms") return n;
  if (unit == "s") return n * 1000;
  if (unit == "m") return n * 60'000;
  if (unit == "h") return n * 3'600'000;
  if (unit == "d") return n * 86'400'000;
  return -1;
}

namespace {
void split_host_port(const std::string& flag, const std::string& v, std::string& host, uint16_t& port) {
  auto colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0)
    throw std::invalid_argument(flag + " must be host:port, got '" + v + "'");
  host = v.substr(0, colon);
  int p = -1;
  auto ps = v.substr(colon + 1);
  auto [ptr, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), p);
  if (ec != std::errc{} || ptr != ps.data() + ps.size() || p < 0 || p > 65535)
    throw std::invalid_argument(flag + " has an invalid port in '" + v + "'");
  port = static_cast<uint16_t>(p);
}
}  // namespace

void finish(broker_config& c) {
  split_host_port("--listen", c.listen, c.listen_host, c.listen_port);
  if (!c.http.empty()) split_host_port("--http", c.http, c.http_host, c.http_port);
  c.retention_ms = parse_duration_ms(c.retention);
  if (c.retention_ms < 0) throw std::invalid_argument("--retention: invalid duration '" + c.retention + "'");
  c.segment_ms = parse_duration_ms(c.segment_age);
  if (c.segment_ms <= 0) throw std::invalid_argument("--segment-age: invalid duration '" + c.segment_age + "'");
  if (c.shards == 0) c.shards = std::max(1u, std::thread::hardware_concurrency());
  if (c.disk_threads == 0) throw std::invalid_argument("--disk-threads must be at least 1");
  if (c.max_frame_bytes < 1024) throw std::invalid_argument("--max-frame-bytes must be at least 1024");
  if (c.node_id < 0) throw std::invalid_argument("--node-id must be >= 0");
  c.ack_timeout_ms = parse_duration_ms(c.ack_timeout);
  if (c.ack_timeout_ms <= 0 || c.ack_timeout_ms > 86'400'000)
    throw std::invalid_argument("--ack-timeout: must be a duration between 1ms and 24h, got '" + c.ack_timeout + "'");
  if (c.max_deliveries < 0 || c.max_deliveries > 1000)
    throw std::invalid_argument("--max-deliveries must be between 0 and 1000");
  if (c.checkpoint_interval_ms < 10) throw std::invalid_argument("--checkpoint-interval-ms must be at least 10");
  c.delay_horizon_ms = parse_duration_ms(c.delay_horizon);
  if (c.delay_horizon_ms < 100) throw std::invalid_argument("--delay-horizon must be a duration of at least 100ms");
  if (c.delay_max_loaded < 100) throw std::invalid_argument("--delay-max-loaded must be at least 100");
  if (!(c.delay_release_rate >= 10)) throw std::invalid_argument("--delay-release-rate must be at least 10");
  if (c.delay_max_loaded_bytes < (1u << 20))
    throw std::invalid_argument("--delay-max-loaded-bytes must be at least 1048576 (1 MiB)");
  c.producer_expiry_ms = parse_duration_ms(c.producer_expiry);
  if (c.producer_expiry_ms < 1000)
    throw std::invalid_argument("--producer-expiry must be a duration of at least 1s, got '" + c.producer_expiry + "'");
  if (c.max_producers < 100) throw std::invalid_argument("--max-producers must be at least 100");
  if (c.idle_timeout_ms < 10) throw std::invalid_argument("--idle-timeout-ms must be at least 10");
  if (c.max_connections < 1) throw std::invalid_argument("--max-connections must be at least 1");
  if (c.write_timeout_ms < 10) throw std::invalid_argument("--write-timeout-ms must be at least 10");
  if (c.http_max_connections < 1) throw std::invalid_argument("--http-max-connections must be at least 1");
  if (c.http_timeout_ms < 10) throw std::invalid_argument("--http-timeout-ms must be at least 10");
}

}  // namespace ferry::app
