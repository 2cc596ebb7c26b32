#pragma once
// The protocol layer: decodes verified request frames, routes them to the topic manager and the
// partitions (on their shards), and builds the response frames. The only layer that knows both
// the wire schema and the partitions. Every failure becomes a typed error in the response; the
// connection stays up.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "broker/net/server.h"
#include "broker/topics/router.h"

namespace ferry::runtime {
class shard_set;
}

namespace ferry::protocol {

namespace asio = boost::asio;
class subscriptions;

struct handler_config {
  int32_t node_id = 1;
  std::string advertised_host = "127.0.0.1";
  uint16_t advertised_port = 7070;
  int32_t max_fetch_wait_ms = 30000;  // longer waits are clamped
  // A fetch response carries at most this many bytes of batches (keep it below the frame limit
  // clients accept: the envelope and per-partition results need a little room).
  size_t max_response_bytes = (16u << 20) - (64u << 10);
};

class handler final : public net::frame_handler {
 public:
  // `rt`, `topics` and `routes` must outlive the handler.
  handler(runtime::shard_set& rt, topics::topic_manager& topics, const topics::router& routes, handler_config cfg);
  ~handler() override;

  asio::awaitable<net::out_frame_ptr> handle(std::shared_ptr<net::in_frame> f, net::session_info s) override;
  net::out_frame_ptr error_frame(errc code, std::string message) override;
  void on_session_closed(const net::session_info& s) override;

  void set_advertised_port(uint16_t port) { cfg_.advertised_port = port; }
  void begin_shutdown() { shutting_down_ = true; }

 private:
  runtime::shard_set& rt_;
  topics::topic_manager& topics_;
  const topics::router& routes_;
  handler_config cfg_;
  std::unique_ptr<subscriptions> subs_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace ferry::protocol
