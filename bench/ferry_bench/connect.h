#pragma once
// ferry-bench's connection helpers: the admin client, and the topic a run uses (created when
// missing, described for its partitions and fsync policy).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/ferry_bench/options.h"
#include "ferry/client/client.h"

namespace ferry::bench {

namespace fc = ferry::client;

struct topic_info {
  int32_t partitions = 0;
  fc::topic_config config;
  std::vector<fc::partition_state> states;
};

[[nodiscard]] result<std::unique_ptr<fc::admin>> connect_admin(const settings& s);
[[nodiscard]] result<topic_info> describe(fc::admin& admin, const std::string& topic);
// Creates the topic if --create-topic says so or if it does not exist (not for the modes that
// only read it); returns its description once every partition has a state.
[[nodiscard]] result<topic_info> ensure_topic(fc::admin& admin, const settings& s, mode m);
// "every-ack" or "interval-<N>ms".
std::string fsync_text(const fc::topic_config& c);

}  // namespace ferry::bench
