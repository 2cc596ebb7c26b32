#include "broker/app/health.h"

#include <nlohmann/json.hpp>

#include "broker/runtime/runtime.h"
#include "broker/topics/topic_manager.h"

namespace ferry::app {

namespace {

const char* state_name(serving_state s) {
  switch (s) {
    case serving_state::starting:
      return "starting";
    case serving_state::serving:
      return "serving";
    case serving_state::stopping:
      return "stopping";
  }
  return "unknown";
}

struct bit_name {
  partition::partition_health bit;
  const char* name;
  bool fails_liveness;
};
constexpr bit_name partition_problems[] = {
    {partition::partition_health::log_failed, "log_failed", true},
    {partition::partition_health::delay_index_failed, "delay_index_failed", true},
    {partition::partition_health::corrupt, "corrupt", false},
    {partition::partition_health::disk_full, "disk_full", false},
};

}  // namespace

health_report health_model::liveness() const { return report(false); }
health_report health_model::readiness() const { return report(true); }

health_report health_model::report(bool readiness) const {
  using nlohmann::json;
  bool live = true;
  bool ready = true;
  json problems = json::array();
  json shards = json::array();
  for (uint32_t i = 0; i < rt_.size(); ++i) {
    int64_t stall = rt_.stall_ms(shard_id{i});
    shards.push_back({{"shard", i}, {"stall_ms", stall}});
    if (stall >= ready_stall_ms) {
      problems.push_back({{"problem", "shard_stall"}, {"shard", i}, {"stall_ms", stall}});
      ready = false;
      if (stall >= live_stall_ms) live = false;
    }
  }
  for (const auto& t : topics_.list()) {
    for (const auto& p : t->partitions) {
      uint32_t h = p->health();
      if (h == 0) continue;
      std::string detail = p->health_detail();
      for (const auto& pb : partition_problems) {
        if ((h & pb.bit) == 0) continue;
        problems.push_back(
            {{"problem", pb.name}, {"topic", t->name}, {"partition", p->id().value}, {"detail", detail}});
        if (pb.fails_liveness) live = false;
      }
    }
  }
  serving_state st = state_.load(std::memory_order_acquire);
  if (st != serving_state::serving) ready = false;
  if (!live) ready = false;
  bool ok = readiness ? ready : live;
  json body = {
      {"status", !ok                ? "failing"
                 : problems.empty() ? "ok"
                                    : "degraded"},
      {"live", live},
      {"ready", ready},
      {"state", state_name(st)},
      {"shards", shards},
      {"problems", problems},
  };
  return health_report{ok ? 200 : 503, body.dump() + "\n"};
}

}  // namespace ferry::app
