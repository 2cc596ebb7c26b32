// ferryd: the Ferry broker daemon. Start-up and shutdown order live here (STYLE.md, broker/app):
//   start:    config -> logging -> data folder lock -> metadata store -> shards -> topics (recovery)
//             -> client listener -> HTTP listener -> ready file
//   shutdown: (SIGTERM/SIGINT) refuse new produces -> stop accepting and close sessions -> close
//             every partition (wait for in-flight syncs, fsync, close logs) -> stop shards -> close
//             the metadata store -> exit 0
#include <fcntl.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <vector>

#include "broker/app/config.h"
#include "broker/app/health.h"
#include "broker/base/failpoint.h"
#include "broker/delay/delay_index.h"
#include "broker/meta/meta_store.h"
#include "broker/net/http_server.h"
#include "broker/net/server.h"
#include "broker/protocol/handler.h"
#include "broker/runtime/metrics.h"
#include "broker/runtime/runtime.h"
#include "broker/topics/topic_manager.h"
#include "schema/main_guard.h"

namespace asio = boost::asio;
using namespace ferry;

namespace {

void setup_logging(const app::broker_config& c) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto level = spdlog::level::from_str(c.log_level);
  std::string pattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] node=" + std::to_string(c.node_id) + " %v";
  for (const char* name : {"app", "net", "protocol", "topics", "partition", "subscription", "log", "meta"}) {
    auto l = std::make_shared<spdlog::logger>(name, sink);
    l->set_level(level);
    l->set_pattern(pattern);
    spdlog::register_logger(l);
  }
  auto def = std::make_shared<spdlog::logger>("ferryd", sink);
  def->set_level(level);
  def->set_pattern(pattern);
  spdlog::set_default_logger(def);
}

// One broker per data folder: a second ferryd on the same folder would corrupt it.
result<int> lock_data_dir(const std::filesystem::path& dir) {
  auto path = dir / "LOCK";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return fail(errc::storage_error, "cannot open " + path.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return fail(errc::storage_error,
                "data folder " + dir.string() + " is in use by another ferryd (lock " + path.string() + ")");
  }
  return fd;
}

// The folders under <data-dir>/topics (topic data), sorted; empty if there are none.
std::vector<std::string> existing_topic_folders(const std::filesystem::path& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(root, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Written after the listeners are bound: tests and scripts wait for it instead of sleeping.
void write_ready_file(const std::string& path, uint16_t client_port, uint16_t http_port) {
  if (path.empty()) return;
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << "{\"pid\":" << ::getpid() << ",\"client_port\":" << client_port << ",\"http_port\":" << http_port << "}\n";
  }
  std::filesystem::rename(tmp, path);
}

int run(const app::broker_config& cfg) {
  auto log = spdlog::get("app");
  std::error_code ec;
  std::filesystem::create_directories(cfg.data_dir, ec);
  if (ec) {
    log->critical("cannot create data folder {}: {}", cfg.data_dir, ec.message());
    return 1;
  }
  auto lock = lock_data_dir(cfg.data_dir);
  if (!lock) {
    log->critical("{}", lock.error().to_string());
    return 1;
  }
  // A data folder that holds topic data must have its metadata store: a new, empty one would not
  // know those topics (and start-up would treat their folders as strangers).
  auto topic_folders = existing_topic_folders(std::filesystem::path(cfg.data_dir) / "topics");
  auto meta_dir = std::filesystem::path(cfg.data_dir) / "meta";
  auto store = meta::meta_store::open(
      meta_dir, topic_folders.empty() ? meta::meta_store::open_mode::create : meta::meta_store::open_mode::must_exist);
  if (!store) {
    if (topic_folders.empty()) {
      log->critical("{}", store.error().to_string());
    } else {
      std::string names;
      for (size_t i = 0; i < topic_folders.size() && i < 20; ++i) names += (i ? ", " : "") + topic_folders[i];
      if (topic_folders.size() > 20) names += ", ... (" + std::to_string(topic_folders.size()) + " in all)";
      log->critical(
          "the metadata store {} is missing or damaged ({}), but {} holds topic data: {}. ferryd will not start: a "
          "new metadata store would not know these topics. Restore {} (e.g. from a backup), or move the topic "
          "folders away to start with no topics.",
          meta_dir.string(), store.error().message, (std::filesystem::path(cfg.data_dir) / "topics").string(), names,
          meta_dir.string());
    }
    return 1;
  }
  auto delays = delay::delay_index::open(std::filesystem::path(cfg.data_dir) / "delay");
  if (!delays) {
    log->critical("{}", delays.error().to_string());
    return 1;
  }

  runtime::shard_set rt(cfg.shards, cfg.disk_threads);
  rt.start();

  topics::broker_defaults defaults;
  defaults.topic.retention_ms = cfg.retention_ms;
  defaults.topic.segment_bytes = cfg.segment_bytes;
  defaults.topic.segment_ms = cfg.segment_ms;
  defaults.topic.max_batch_bytes = cfg.max_batch_bytes;
  defaults.preallocate = cfg.preallocate;
  defaults.retention_check_ms = cfg.retention_check_ms;
  defaults.checkpoint_interval_ms = cfg.checkpoint_interval_ms;
  defaults.subscription.ack_timeout_ms = cfg.ack_timeout_ms;
  defaults.subscription.max_deliveries = cfg.max_deliveries;
  defaults.delays = delays->get();
  defaults.delay.horizon_ms = cfg.delay_horizon_ms;
  defaults.delay.max_loaded = cfg.delay_max_loaded;
  defaults.delay.release_rate = cfg.delay_release_rate;
  defaults.delay.release_burst = std::max<size_t>(1, static_cast<size_t>(cfg.delay_release_rate / 10));
  defaults.delay.max_loaded_bytes = cfg.delay_max_loaded_bytes;
  defaults.producers.expiry_ms = cfg.producer_expiry_ms;
  defaults.producers.max_producers = cfg.max_producers;
  topics::topic_manager topics(rt, **store, cfg.data_dir, defaults);

  auto started = asio::co_spawn(rt.executor(shard_id{0}), topics.start(), asio::use_future).get();
  if (!started) {
    log->critical("start-up failed: {}", started.error().to_string());
    rt.stop_and_join();
    return 1;
  }

  protocol::handler_config hc;
  hc.node_id = cfg.node_id;
  hc.advertised_host = cfg.listen_host;
  // A fetch response's batches leave room for the envelope inside the frame limit.
  hc.max_response_bytes =
      cfg.max_frame_bytes > (128u << 10) ? cfg.max_frame_bytes - (64u << 10) : cfg.max_frame_bytes / 2;
  topics::router routes(cfg.node_id);  // every partition is led here until replication lands
  protocol::handler handler(rt, topics, routes, hc);

  net::server_config sc;
  sc.host = cfg.listen_host;
  sc.port = cfg.listen_port;
  sc.max_frame_bytes = cfg.max_frame_bytes;
  sc.idle_timeout_ms = cfg.idle_timeout_ms;
  sc.max_connections = cfg.max_connections;
  sc.write_timeout_ms = cfg.write_timeout_ms;
  net::server server(rt, handler, sc);
  auto port = server.listen();
  if (!port) {
    log->critical("{}", port.error().to_string());
    asio::co_spawn(rt.executor(shard_id{0}), topics.close_all(), asio::use_future).get();
    rt.stop_and_join();
    return 1;
  }
  handler.set_advertised_port(*port);

  app::health_model health(rt, topics);
  std::unique_ptr<net::http_server> http;
  uint16_t http_port = 0;
  if (!cfg.http.empty()) {
    net::http_config http_cfg;
    http_cfg.host = cfg.http_host;
    http_cfg.port = cfg.http_port;
    http_cfg.max_connections = cfg.http_max_connections;
    http_cfg.read_timeout_ms = cfg.http_timeout_ms;
    http_cfg.write_timeout_ms = cfg.http_timeout_ms;
    // Runs on the HTTP thread, not a shard.
    http = std::make_unique<net::http_server>(
        http_cfg, [&health](std::string_view /*method*/, std::string_view path) -> net::http_response {
          if (path == "/health" || path == "/healthz" || path == "/ready" || path == "/readyz") {
            auto r = path.starts_with("/ready") ? health.readiness() : health.liveness();
            return {r.status, "application/json", std::move(r.body)};
          }
          if (path == "/metrics") return {200, "text/plain; version=0.0.4", metrics::render_prometheus()};
          return {404, "text/plain; charset=utf-8", "not found; try /health, /ready or /metrics\n"};
        });
    auto hp = http->listen();
    if (!hp) {
      log->critical("{}", hp.error().to_string());
      asio::co_spawn(rt.executor(shard_id{0}), topics.close_all(), asio::use_future).get();
      rt.stop_and_join();
      return 1;
    }
    http_port = *hp;
    http->start();
  }
  server.start();

  std::promise<void> stopped;
  asio::signal_set signals(rt.context(shard_id{0}), SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    log->info("signal {}: shutting down", sig);
    health.set_state(app::serving_state::stopping);
    runtime::spawn_logged(
        rt.executor(shard_id{0}),
        [](protocol::handler& h, net::server& s, net::http_server* hs, topics::topic_manager& t,
           std::promise<void>& done) -> asio::awaitable<void> {
          h.begin_shutdown();
          co_await s.stop();
          if (hs) hs->stop();
          co_await t.close_all();
          done.set_value();
        }(handler, server, http.get(), topics, stopped),
        "shutdown");
  });

  health.set_state(app::serving_state::serving);
  write_ready_file(cfg.ready_file, *port, http_port);
  log->info("ferryd ready: data {} client {}:{} http {} shards {}", cfg.data_dir, cfg.listen_host, *port,
            http ? cfg.http_host + ":" + std::to_string(http_port) : std::string("off"), rt.size());

  stopped.get_future().wait();
  rt.stop_and_join();
  store->reset();
  ::close(*lock);
  log->info("ferryd stopped cleanly");
  spdlog::shutdown();
  return 0;
}

}  // namespace

int checked_main(int argc, char** argv) {
  app::broker_config cfg;
  CLI::App cli{"ferryd: the Ferry message broker"};
  app::add_flags(cli, cfg);
  try {
    cli.parse(argc, argv);
    app::finish(cfg);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferryd: %s\n", e.what());
    return 2;
  }
  setup_logging(cfg);
  failpoint::arm_from_env();
  return run(cfg);
}

int main(int argc, char** argv) { return ferry::guarded_main("ferryd", checked_main, argc, argv); }
