// ferryctl: Ferry's admin and scripting CLI (DESIGN.md, "Command lines").
//
//   ferryctl [--bootstrap host:port] [--output table|json] [--config FILE] NOUN VERB ARGS...
//     topic create TOPIC [--partitions N] [--replication R] [--retention 7d] [--retention-bytes B] [--segment-bytes B]
//     topic list | topic describe TOPIC | topic delete TOPIC
//     produce TOPIC [--key K] [--header k=v]... [--partition P] [--delay 15m | --at RFC3339] [--value V]
//     read TOPIC [--partition P] [--offset O | --from-beginning] [--count N] [--follow]
//
// Exit status: 0 success, 1 broker or connection error ("error: <code>: <message>" on stderr),
// 2 usage error. --output json prints one JSON document per command, or JSON lines for streams
// (produce acknowledgements, read messages). Without --offset or --from-beginning, read starts at
// the end (the high-water mark), as Kafka's console consumer does; without --follow it stops at
// the end as of its start.
#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include "client/ferryctl/format.h"
#include "ferry/client/client.h"

namespace fc = ferry::client;
using ferry::ctl::json_string;

namespace {

constexpr int exit_ok = 0;
constexpr int exit_broker = 1;
constexpr int exit_usage = 2;

struct globals {
  std::string bootstrap;
  std::string output = "table";
  bool json() const { return output == "json"; }
  fc::client_options client() const {
    fc::client_options o;
    o.bootstrap = bootstrap;
    return o;
  }
};

int broker_error(const ferry::error& e) {
  std::fprintf(stderr, "error: %s: %s\n", std::string(ferry::errc_name(e.code)).c_str(), e.message.c_str());
  return exit_broker;
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "error: %s\nRun with --help for usage.\n", msg.c_str());
  return exit_usage;
}

std::string duration_text(int64_t ms) {
  if (ms < 0) return "default";
  if (ms == 0) return "0";
  struct unit {
    int64_t ms;
    const char* name;
  };
  for (auto u : {unit{86'400'000, "d"}, unit{3'600'000, "h"}, unit{60'000, "m"}, unit{1000, "s"}})
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.name;
  return std::to_string(ms) + "ms";
}

std::string config_json(const fc::topic_config& c) {
  std::string s = "{\"partitions\":" + std::to_string(c.partitions) + ",\"replication\":" + std::to_string(c.replication) +
                  ",\"retention_ms\":" + std::to_string(c.retention_ms) + ",\"retention_bytes\":" +
                  std::to_string(c.retention_bytes) + ",\"segment_bytes\":" + std::to_string(c.segment_bytes) +
                  ",\"segment_ms\":" + std::to_string(c.segment_ms) + ",\"max_batch_bytes\":" +
                  std::to_string(c.max_batch_bytes) + ",\"fsync\":" + json_string(c.fsync_interval ? "interval" : "always") +
                  ",\"fsync_interval_ms\":" + std::to_string(c.fsync_interval_ms) + "}";
  return s;
}

std::string config_table(const fc::topic_config& c) {
  ferry::ctl::table t({"SETTING", "VALUE"});
  t.add({"partitions", std::to_string(c.partitions)});
  t.add({"replication", std::to_string(c.replication)});
  t.add({"retention", c.retention_ms <= 0 && c.retention_ms != -1 ? "unlimited" : duration_text(c.retention_ms)});
  t.add({"retention.bytes", c.retention_bytes < 0 ? "unlimited" : std::to_string(c.retention_bytes)});
  t.add({"segment.bytes", c.segment_bytes <= 0 ? "default" : std::to_string(c.segment_bytes)});
  t.add({"segment.ms", c.segment_ms <= 0 ? "default" : duration_text(c.segment_ms)});
  t.add({"max.batch.bytes", c.max_batch_bytes <= 0 ? "default" : std::to_string(c.max_batch_bytes)});
  t.add({"fsync", c.fsync_interval ? "interval " + duration_text(c.fsync_interval_ms) : "always"});
  return t.str();
}

// ---- topic ---------------------------------------------------------------------------------

struct topic_create_args {
  std::string topic;
  int32_t partitions = 1;
  int16_t replication = 1;
  std::string retention;
  int64_t retention_bytes = -1;
  int64_t segment_bytes = 0;
};

int topic_create(const globals& g, const topic_create_args& a) {
  fc::topic_config cfg;
  cfg.partitions = a.partitions;
  cfg.replication = a.replication;
  cfg.retention_bytes = a.retention_bytes;
  cfg.segment_bytes = a.segment_bytes;
  if (!a.retention.empty()) {
    auto ms = ferry::ctl::parse_duration_ms(a.retention);
    if (!ms) return usage_error("--retention: invalid duration '" + a.retention + "' (examples: 500ms, 30s, 15m, 2h, 7d)");
    cfg.retention_ms = *ms;
  }
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->create_topic(a.topic, cfg);
  if (!r) return broker_error(r.error());
  if (g.json()) {
    std::printf("{\"name\":%s,\"config\":%s}\n", json_string(a.topic).c_str(), config_json(*r).c_str());
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
    std::string s = "{\"topics\":[";
    for (size_t i = 0; i < r->size(); ++i) {
      const auto& t = (*r)[i];
      if (i > 0) s += ",";
      s += "{\"name\":" + json_string(t.name) + ",\"partitions\":" + std::to_string(t.partitions) +
           ",\"replication\":" + std::to_string(t.replication) + "}";
    }
    s += "]}";
    std::printf("%s\n", s.c_str());
  } else {
    ferry::ctl::table t({"TOPIC", "PARTITIONS", "REPLICATION"});
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
    std::string s = "{\"name\":" + json_string(r->name) + ",\"config\":" + config_json(r->config) + ",\"partitions\":[";
    for (size_t i = 0; i < r->partitions.size(); ++i) {
      const auto& p = r->partitions[i];
      if (i > 0) s += ",";
      s += "{\"partition\":" + std::to_string(p.partition) + ",\"leader\":" + std::to_string(p.leader) +
           ",\"log_start_offset\":" + std::to_string(p.log_start_offset) + ",\"high_watermark\":" +
           std::to_string(p.high_watermark) + ",\"log_end_offset\":" + std::to_string(p.log_end_offset) +
           ",\"size_bytes\":" + std::to_string(p.size_bytes) + ",\"segments\":" + std::to_string(p.segments) + "}";
    }
    s += "]}";
    std::printf("%s\n", s.c_str());
  } else {
    std::printf("topic %s\n%s\n", r->name.c_str(), config_table(r->config).c_str());
    ferry::ctl::table t({"PARTITION", "LEADER", "START", "HIGH-WATERMARK", "END", "BYTES", "SEGMENTS"});
    for (const auto& p : r->partitions)
      t.add({std::to_string(p.partition), std::to_string(p.leader), std::to_string(p.log_start_offset),
             std::to_string(p.high_watermark), std::to_string(p.log_end_offset), std::to_string(p.size_bytes),
             std::to_string(p.segments)});
    std::printf("%s", t.str().c_str());
  }
  return exit_ok;
}

int topic_delete(const globals& g, const std::string& topic) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->delete_topic(topic);
  if (!r) return broker_error(r.error());
  if (g.json())
    std::printf("{\"deleted\":%s}\n", json_string(topic).c_str());
  else
    std::printf("deleted topic %s\n", topic.c_str());
  return exit_ok;
}

// ---- produce -------------------------------------------------------------------------------

struct produce_args {
  std::string topic;
  std::optional<std::string> key;
  std::vector<std::string> headers;
  std::optional<int32_t> partition;
  std::string delay;
  std::string at;
  std::optional<std::string> value;
};

int produce(const globals& g, const produce_args& a) {
  fc::message proto;
  proto.key = a.key;
  proto.partition = a.partition;
  for (const auto& h : a.headers) {
    auto kv = ferry::ctl::parse_header(h);
    if (!kv) return usage_error("--header: expected key=value, got '" + h + "'");
    proto.headers.push_back(std::move(*kv));
  }
  if (!a.delay.empty() && !a.at.empty()) return usage_error("--delay and --at cannot be used together");
  if (!a.delay.empty()) {
    auto ms = ferry::ctl::parse_duration_ms(a.delay);
    if (!ms) return usage_error("--delay: invalid duration '" + a.delay + "' (examples: 500ms, 30s, 15m, 2h, 7d)");
    proto.delay_ms = *ms;
  }
  if (!a.at.empty()) {
    auto ms = ferry::ctl::parse_rfc3339_ms(a.at);
    if (!ms) return usage_error("--at: invalid RFC 3339 time '" + a.at + "' (example: 2024-05-01T12:00:00Z)");
    proto.deliver_at_ms = *ms;
  }

  fc::producer_options o;
  o.bootstrap = g.bootstrap;
  o.linger = std::chrono::milliseconds(5);
  o.delivery_timeout = std::chrono::seconds(15);  // a CLI should not hang for minutes on a dead broker
  auto prod = fc::producer::create(o);
  if (!prod) return broker_error(prod.error());

  // Callbacks run on the producer's I/O thread, one at a time: they alone write stdout.
  std::mutex mu;
  std::optional<ferry::error> first_error;
  int64_t failed = 0;
  auto on_ack = [&, json = g.json()](const ferry::result<fc::message_id>& r) {
    if (!r) {
      std::lock_guard lk(mu);
      if (!first_error) first_error = r.error();
      ++failed;
      return;
    }
    if (json)
      std::printf("{\"topic\":%s,\"partition\":%d,\"offset\":%" PRId64 ",\"id\":%s}\n", json_string(r->topic).c_str(),
                  r->partition, r->offset, json_string(r->to_string()).c_str());
    else
      std::printf("produced %s\n", r->to_string().c_str());
  };
  auto send = [&](std::string value) {
    fc::message m = proto;
    m.value = std::move(value);
    (*prod)->send(a.topic, std::move(m), on_ack);
  };
  if (a.value) {
    send(*a.value);
  } else {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      send(std::move(line));
    }
  }
  auto fl = (*prod)->flush(o.delivery_timeout + o.request_timeout);
  (*prod)->close();
  std::fflush(stdout);
  if (first_error) {
    auto e = *first_error;
    if (failed > 1) e.message += " (" + std::to_string(failed) + " messages failed)";
    return broker_error(e);
  }
  if (!fl) return broker_error(fl.error());
  return exit_ok;
}

// ---- read ----------------------------------------------------------------------------------

struct read_args {
  std::string topic;
  std::optional<int32_t> partition;
  std::optional<int64_t> offset;
  bool from_beginning = false;
  std::optional<int64_t> count;
  bool follow = false;
};

void print_message(const globals& g, const fc::received_message& m) {
  if (g.json()) {
    std::string s = "{\"topic\":" + json_string(m.topic) + ",\"partition\":" + std::to_string(m.partition) +
                    ",\"offset\":" + std::to_string(m.offset) + ",\"id\":" + json_string(m.id()) +
                    ",\"key\":" + (m.key ? json_string(*m.key) : "null") +
                    ",\"value\":" + (m.value ? json_string(*m.value) : "null") + ",\"headers\":{";
    for (size_t i = 0; i < m.headers.size(); ++i) {
      if (i > 0) s += ",";
      s += json_string(m.headers[i].key) + ":" + (m.headers[i].value ? json_string(*m.headers[i].value) : "null");
    }
    s += "},\"timestamp\":" + std::to_string(m.timestamp_ms) + ",\"append_time\":" + std::to_string(m.append_time_ms);
    if (m.deliver_at_ms) s += ",\"deliver_at\":" + std::to_string(*m.deliver_at_ms);
    s += "}\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
    return;
  }
  std::string headers;
  for (const auto& h : m.headers) {
    if (!headers.empty()) headers += ",";
    headers += ferry::ctl::printable(h.key) + "=" + (h.value ? ferry::ctl::printable(*h.value) : "");
  }
  std::string extra;
  if (m.deliver_at_ms) extra += "  deliver_at=" + ferry::ctl::format_rfc3339_ms(*m.deliver_at_ms);
  if (!headers.empty()) extra += "  headers=" + headers;
  std::printf("%-22s  %-24s  %-12s  %s%s\n", m.id().c_str(), ferry::ctl::format_rfc3339_ms(m.timestamp_ms).c_str(),
              m.key ? ferry::ctl::printable(*m.key).c_str() : "-", m.value ? ferry::ctl::printable(*m.value).c_str() : "-",
              extra.c_str());
}

int read_topic(const globals& g, const read_args& a) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto d = (*adm)->describe_topic(a.topic);
  if (!d) return broker_error(d.error());
  struct source {
    std::unique_ptr<fc::reader> reader;
    int64_t end;  // stop here unless following
  };
  std::vector<source> sources;
  for (const auto& p : d->partitions) {
    if (a.partition && p.partition != *a.partition) continue;
    int64_t start = a.from_beginning ? fc::reader::earliest : a.offset ? *a.offset : fc::reader::latest;
    auto r = fc::reader::create(g.client(), a.topic, p.partition, start);
    if (!r) return broker_error(r.error());
    sources.push_back(source{std::move(*r), p.high_watermark});
  }
  if (sources.empty())
    return broker_error(ferry::fail(ferry::errc::unknown_partition,
                                    "topic '" + a.topic + "' has no partition " + std::to_string(a.partition.value_or(0))));
  if (!g.json())
    std::printf("%-22s  %-24s  %-12s  %s\n", "ID", "TIMESTAMP", "KEY", "VALUE");
  int64_t printed = 0;
  auto want_more = [&] { return !a.count || printed < *a.count; };
  auto print_all = [&](const std::vector<fc::received_message>& msgs) {
    for (const auto& m : msgs) {
      if (!want_more()) break;
      print_message(g, m);
      ++printed;
    }
    std::fflush(stdout);
  };
  if (!a.follow) {
    for (auto& s : sources) {
      int idle = 0;
      while (want_more() && s.reader->position() < s.end) {
        auto msgs = s.reader->poll(std::chrono::milliseconds(idle > 0 ? 500 : 0));
        if (!msgs) return broker_error(msgs.error());
        if (msgs->empty() && ++idle > 4) break;  // the end we saw is no longer readable (retention)
        // Only what was there when we started.
        std::vector<fc::received_message> keep;
        for (auto& m : *msgs)
          if (m.offset < s.end) keep.push_back(std::move(m));
        print_all(keep);
      }
    }
    return exit_ok;
  }
  // Follow: one partition long-polls; several are polled in turn without waiting, and an empty
  // round sleeps briefly.
  while (want_more()) {
    bool any = false;
    for (auto& s : sources) {
      auto wait = std::chrono::milliseconds(sources.size() == 1 ? 1000 : 0);
      auto msgs = s.reader->poll(wait);
      if (!msgs) return broker_error(msgs.error());
      any = any || !msgs->empty();
      print_all(*msgs);
      if (!want_more()) break;
    }
    if (!any && sources.size() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferryctl: administer and script a Ferry broker"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the noun and verb
  app.set_config("--config", "", "read flags from this file (CLI11 TOML/INI)");
  globals g;
  g.bootstrap = fc::default_bootstrap();
  app.add_option("--bootstrap", g.bootstrap, "broker host:port (default: $FERRY_BOOTSTRAP, else 127.0.0.1:7070)")
      ->capture_default_str();
  app.add_option("--output", g.output, "table (for people) or json (for scripts)")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  auto* topic = app.add_subcommand("topic", "create, list, describe and delete topics");
  topic->require_subcommand(1);
  topic_create_args tc;
  auto* tcreate = topic->add_subcommand("create", "create a topic");
  tcreate->add_option("TOPIC", tc.topic, "topic name")->required();
  tcreate->add_option("--partitions", tc.partitions, "number of partitions")->capture_default_str()->check(CLI::PositiveNumber);
  tcreate->add_option("--replication", tc.replication, "replication factor")->capture_default_str()->check(CLI::PositiveNumber);
  tcreate->add_option("--retention", tc.retention, "keep messages this long (500ms, 30s, 15m, 2h, 7d; default: broker's)");
  tcreate->add_option("--retention-bytes", tc.retention_bytes, "keep at most this many bytes per partition (-1: no limit)");
  tcreate->add_option("--segment-bytes", tc.segment_bytes, "roll segments at this size (0: broker default)");
  auto* tlist = topic->add_subcommand("list", "list topics");
  std::string topic_name;
  auto* tdescribe = topic->add_subcommand("describe", "show a topic's configuration and partitions");
  tdescribe->add_option("TOPIC", topic_name, "topic name")->required();
  auto* tdelete = topic->add_subcommand("delete", "delete a topic and its data");
  tdelete->add_option("TOPIC", topic_name, "topic name")->required();

  produce_args pa;
  auto* prod = app.add_subcommand("produce", "publish messages: --value, or one message per stdin line");
  prod->add_option("TOPIC", pa.topic, "topic name")->required();
  prod->add_option("--key", pa.key, "message key (sets the partition by hash)");
  prod->add_option("--header", pa.headers, "header key=value (repeatable)")->allow_extra_args(false);
  prod->add_option("--partition", pa.partition, "explicit partition")->check(CLI::NonNegativeNumber);
  auto* delay = prod->add_option("--delay", pa.delay, "deliver after this delay (broker clock): 500ms, 30s, 15m, 2h, 7d");
  auto* at = prod->add_option("--at", pa.at, "deliver at this RFC 3339 time, e.g. 2024-05-01T12:00:00Z");
  delay->excludes(at);
  prod->add_option("--value", pa.value, "the message value (else: one message per stdin line)");

  read_args ra;
  auto* rd = app.add_subcommand("read", "read the raw log (no acknowledgements)");
  rd->add_option("TOPIC", ra.topic, "topic name")->required();
  rd->add_option("--partition", ra.partition, "only this partition (default: every partition)")->check(CLI::NonNegativeNumber);
  auto* off = rd->add_option("--offset", ra.offset, "start at this offset")->check(CLI::NonNegativeNumber);
  auto* beg = rd->add_flag("--from-beginning", ra.from_beginning, "start at the earliest retained offset");
  off->excludes(beg);
  rd->add_option("--count", ra.count, "stop after this many messages")->check(CLI::NonNegativeNumber);
  rd->add_flag("--follow", ra.follow, "keep waiting for new messages (default: stop at the current end)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_usage;
  }
  if (g.bootstrap.empty()) return usage_error("--bootstrap is empty");

  if (tcreate->parsed()) return topic_create(g, tc);
  if (tlist->parsed()) return topic_list(g);
  if (tdescribe->parsed()) return topic_describe(g, topic_name);
  if (tdelete->parsed()) return topic_delete(g, topic_name);
  if (prod->parsed()) return produce(g, pa);
  if (rd->parsed()) return read_topic(g, ra);
  return usage_error("nothing to do");
}
