// ferryctl topic create | list | describe | delete.
#include <cstdio>

#include "client/ferryctl/commands.h"
#include "client/ferryctl/format.h"

namespace ferry::ctl {
namespace {

json config_json(const fc::topic_config& c) {
  json j;
  j["partitions"] = c.partitions;
  j["replication"] = c.replication;
  j["retention_ms"] = c.retention_ms;
  j["retention_bytes"] = c.retention_bytes;
  j["segment_bytes"] = c.segment_bytes;
  j["segment_ms"] = c.segment_ms;
  j["max_batch_bytes"] = c.max_batch_bytes;
  j["fsync"] = c.fsync_interval ? "interval" : "always";
  j["fsync_interval_ms"] = c.fsync_interval_ms;
  j["max_delay_ms"] = c.max_delay_ms;
  return j;
}

std::string config_table(const fc::topic_config& c) {
  table t({"SETTING", "VALUE"});
  t.add({"partitions", std::to_string(c.partitions)});
  t.add({"replication", std::to_string(c.replication)});
  t.add({"retention", c.retention_ms <= 0 && c.retention_ms != -1 ? "unlimited" : duration_text(c.retention_ms)});
  t.add({"retention.bytes", c.retention_bytes < 0 ? "unlimited" : std::to_string(c.retention_bytes)});
  t.add({"segment.bytes", c.segment_bytes <= 0 ? "default" : std::to_string(c.segment_bytes)});
  t.add({"segment.ms", c.segment_ms <= 0 ? "default" : duration_text(c.segment_ms)});
  t.add({"max.batch.bytes", c.max_batch_bytes <= 0 ? "default" : std::to_string(c.max_batch_bytes)});
  t.add({"fsync", c.fsync_interval ? "interval " + duration_text(c.fsync_interval_ms) : "always"});
  t.add({"max.delay", c.max_delay_ms <= 0 ? "default" : duration_text(c.max_delay_ms)});
  return t.str();
}

}  // namespace

int topic_create(const globals& g, const topic_create_args& a) {
  fc::topic_config cfg;
  cfg.partitions = a.partitions;
  cfg.replication = a.replication;
  cfg.retention_bytes = a.retention_bytes;
  cfg.segment_bytes = a.segment_bytes;
  if (!a.retention.empty()) {
    auto ms = parse_duration_ms(a.retention);
    if (!ms)
      return usage_error("--retention: invalid duration '" + a.retention + "' (examples: 500ms, 30s, 15m, 2h, 7d)");
    cfg.retention_ms = *ms;
  }
  if (!a.max_delay.empty()) {
    auto ms = parse_duration_ms(a.max_delay);
    if (!ms) return usage_error("--max-delay: invalid duration '" + a.max_delay + "' (examples: 15m, 2h, 30d, 365d)");
    // 0 on the wire is "the broker's default": refuse it rather than silently mean something else.
    if (*ms == 0) return usage_error("--max-delay must be more than 0 (leave it out for the broker's default, 365d)");
    cfg.max_delay_ms = *ms;
  }
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->create_topic(a.topic, cfg);
  if (!r) return broker_error(r.error());
  if (g.json()) {
    json j;
    j["name"] = json_text(a.topic);
    j["config"] = config_json(*r);
    print_json(j);
  } else {
    std::printf("created topic %s\n%s", a.topic.c_str(), config_table(*r).c_str());
  }
  return exit_ok;
}

int topic_list(const globals& g) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->list_topics();
  if (!r) return broker_error(r.error());
  if (g.json()) {
    json topics = json::array();
    for (const auto& t : *r) {
      json e;
      e["name"] = json_text(t.name);
      e["partitions"] = t.partitions;
      e["replication"] = t.replication;
      topics.push_back(std::move(e));
    }
    json j;
    j["topics"] = std::move(topics);
    print_json(j);
  } else {
    table t({"TOPIC", "PARTITIONS", "REPLICATION"});
    for (const auto& x : *r) t.add({x.name, std::to_string(x.partitions), std::to_string(x.replication)});
    std::printf("%s", t.str().c_str());
  }
  return exit_ok;
}

int topic_describe(const globals& g, const std::string& topic) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->describe_topic(topic);
  if (!r) return broker_error(r.error());
  if (g.json()) {
    json parts = json::array();
    for (const auto& p : r->partitions) {
      json e;
      e["partition"] = p.partition;
      e["leader"] = p.leader;
      e["log_start_offset"] = p.log_start_offset;
      e["high_watermark"] = p.high_watermark;
      e["log_end_offset"] = p.log_end_offset;
      e["size_bytes"] = p.size_bytes;
      e["segments"] = p.segments;
      e["delayed_pending"] = p.delayed_pending;
      e["next_due_time"] = p.next_due_time_ms;
      e["status"] = json_text(p.status);
      e["status_detail"] = json_text(p.status_detail);
      parts.push_back(std::move(e));
    }
    json j;
    j["name"] = json_text(r->name);
    j["config"] = config_json(r->config);
    j["partitions"] = std::move(parts);
    print_json(j);
    return exit_ok;
  }
  std::printf("topic %s\n%s\n", r->name.c_str(), config_table(r->config).c_str());
  table t(
      {"PARTITION", "LEADER", "STATUS", "START", "HIGH-WATERMARK", "END", "BYTES", "SEGMENTS", "DELAYED", "NEXT-DUE"});
  for (const auto& p : r->partitions)
    t.add({std::to_string(p.partition), std::to_string(p.leader), p.status, std::to_string(p.log_start_offset),
           std::to_string(p.high_watermark), std::to_string(p.log_end_offset), std::to_string(p.size_bytes),
           std::to_string(p.segments), std::to_string(p.delayed_pending),
           p.next_due_time_ms < 0 ? "-" : format_rfc3339_ms(p.next_due_time_ms)});
  std::printf("%s", t.str().c_str());
  for (const auto& p : r->partitions)
    if (!p.status_detail.empty()) std::printf("partition %d: %s\n", p.partition, p.status_detail.c_str());
  return exit_ok;
}

int topic_delete(const globals& g, const std::string& topic) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->delete_topic(topic);
  if (!r) return broker_error(r.error());
  if (g.json()) {
    json j;
    j["deleted"] = json_text(topic);
    print_json(j);
  } else {
    std::printf("deleted topic %s\n", topic.c_str());
  }
  return exit_ok;
}

}  // namespace ferry::ctl
