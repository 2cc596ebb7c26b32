#pragma once
// The broker's health for its HTTP listener (README.md "Health"): /health (liveness: should this
// process be restarted?) and /ready (readiness: can it serve?), each a JSON body naming every
// problem and an HTTP status a Kubernetes probe can use.
//
//   /health  503 when a shard's event loop has not run for 10 s, when a partition's log failed a
//            write or fsync, or when a delay index failed a write (a restart is what recovers
//            those); else 200.
//   /ready   503 while starting or stopping, when /health fails, or when a shard has not run for
//            1 s; else 200.
//   Both list every problem, also those that do not change the status: corrupt partitions
//   (fenced until repaired; the rest keeps serving) and a full disk ("status": "degraded").
//
// Any thread (the HTTP listener's): it reads atomics of the shards and partitions.
#include <atomic>
#include <cstdint>
#include <string>

namespace ferry::runtime {
class shard_set;
}
namespace ferry::topics {
class topic_manager;
}

namespace ferry::app {

enum class serving_state : uint8_t { starting, serving, stopping };

struct health_report {
  int status = 200;  // HTTP status
  std::string body;  // JSON
};

class health_model {
 public:
  static constexpr int64_t live_stall_ms = 10'000;
  static constexpr int64_t ready_stall_ms = 1'000;

  // `rt` and `topics` must outlive this object.
  health_model(runtime::shard_set& rt, topics::topic_manager& topics) : rt_(rt), topics_(topics) {}
  void set_state(serving_state s) { state_.store(s, std::memory_order_release); }
  health_report liveness() const;
  health_report readiness() const;

 private:
  health_report report(bool readiness) const;
  runtime::shard_set& rt_;
  topics::topic_manager& topics_;
  std::atomic<serving_state> state_{serving_state::starting};
};

}  // namespace ferry::app
