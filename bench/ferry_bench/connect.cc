#include "bench/ferry_bench/connect.h"

#include <chrono>
#include <cstdio>
#include <thread>

namespace ferry::bench {

result<std::unique_ptr<fc::admin>> connect_admin(const settings& s) {
  fc::client_options o;
  o.bootstrap = s.bootstrap;
  return fc::admin::create(o);
}

result<topic_info> describe(fc::admin& admin, const std::string& topic) {
  auto d = admin.describe_topic(topic);
  if (!d) return d.error();
  topic_info info;
  info.config = d->config;
  info.states = d->partitions;
  info.partitions = d->partitions.empty() ? d->config.partitions : static_cast<int32_t>(d->partitions.size());
  return info;
}

result<topic_info> ensure_topic(fc::admin& admin, const settings& s, mode m) {
  auto info = describe(admin, s.topic);
  if (info) {
    if (s.create_topic) {
      std::fprintf(stderr, "note: topic '%s' exists (%d partitions); using it as it is\n", s.topic.c_str(),
                   info->partitions);
    }
    if (info->partitions != s.partitions && s.partitions != 1) {
      std::fprintf(stderr, "warning: --partitions %d, but topic '%s' has %d partitions\n", s.partitions,
                   s.topic.c_str(), info->partitions);
    }
    return info;
  }
  if (info.error().code != errc::unknown_topic) return info.error();
  if (m == mode::consume || m == mode::subscribe) return info.error();  // nothing to read: creating it would not help
  fc::topic_config cfg;
  cfg.partitions = s.partitions;
  auto created = admin.create_topic(s.topic, cfg);
  if (!created && created.error().code != errc::topic_exists) return created.error();
  if (created) std::fprintf(stderr, "created topic '%s' with %d partitions\n", s.topic.c_str(), s.partitions);
  // The partitions may still be electing/recovering; describe until every one has a state.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    info = describe(admin, s.topic);
    if (info && info->partitions >= s.partitions) return info;
    if (std::chrono::steady_clock::now() > deadline) {
      if (!info) return info.error();
      return fail(errc::timeout, "topic '" + s.topic + "' was created but does not describe its partitions");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string fsync_text(const fc::topic_config& c) {
  if (!c.fsync_interval) return "every-ack";
  return "interval-" + std::to_string(c.fsync_interval_ms) + "ms";
}

}  // namespace ferry::bench
