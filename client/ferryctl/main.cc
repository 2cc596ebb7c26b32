// ferryctl: Ferry's admin and scripting CLI (DESIGN.md, "Command lines").
//
//   ferryctl [--bootstrap host:port] [--output table|json] [--config FILE] NOUN VERB ARGS...
//     topic create TOPIC [--partitions N] [--replication R] [--retention 7d] [--retention-bytes B] [--segment-bytes B]
//                  [--max-delay 365d]
//     topic list | topic describe TOPIC | topic delete TOPIC
//     produce TOPIC [--key K] [--header k=v]... [--partition P] [--delay 15m | --at RFC3339] [--value V]
//     read TOPIC [--partition P] [--offset O | --from-beginning] [--count N] [--follow]
//     sub create TOPIC SUB [--from earliest|latest] [--ack-timeout 30s] [--max-deliveries N] [--ordered true|false]
//                [--backoff exponential|fixed] [--backoff-initial 1s] [--backoff-max 60s] [--dead-letter-topic T]
//     sub list [TOPIC] | sub describe TOPIC SUB | sub delete TOPIC SUB
//     sub seek TOPIC SUB --to earliest|latest|RFC3339|OFFSET [--partition P] [--dry-run]
//     consume TOPIC --sub SUB [--count N] [--nack [--nack-delay D] | --no-ack] [--wait 5s] [--member NAME]
//     dlq list TOPIC SUB [--count N]
//     dlq replay TOPIC SUB (--offset DLQ-PARTITION/OFFSET... | --original-id TOPIC/P/O... | --all) [--dry-run]
//     msg cancel TOPIC/PARTITION/OFFSET
//     delayed list TOPIC [--before RFC3339] [--limit N] [--partition P]
//
// Exit status: 0 success, 1 broker or connection error ("error: <code>: <message>" on stderr),
// 2 usage error. --output json prints one JSON document per command, or JSON lines for streams
// (produce acknowledgements, read and consume messages, dead letters, replays). Without --offset
// or --from-beginning, read starts at the end (the high-water mark), as Kafka's console consumer
// does; without --follow it stops at the end as of its start. read never shows control batches
// (the broker's own subscription records).
//
// consume joins the subscription as a member (name: --member, else host and pid), prints what it
// is given and acks each message (default), nacks it (--nack, redelivered after --nack-delay or the
// subscription's backoff) or leaves it (--no-ack: the leases end when ferryctl leaves, and the
// broker redelivers them). It stops after --count messages or when none came for --wait, flushes
// its acks and leaves; a failed ack makes the exit status 1. Each delivery counts towards the
// subscription's max_deliveries, also with --no-ack.
//
// Delayed messages: `produce --delay D` makes each message due D after the broker stores it (the
// broker's clock at append, never this machine's); `--at T` makes it due at the absolute time T
// (a time already past is due at once). No subscription sees a delayed message before it is due;
// `read` shows delayed records as stored, with their deliver_at. `delayed list` shows the ones not
// yet due, earliest first (its IN column is the time left by this machine's clock; DUE is the
// broker's due time); `msg cancel` cancels one by id. The exit status of `msg cancel` is 0
// only if the message was cancelled; 1 if it was too late (already due, or not delayed) or unknown,
// so scripts can tell. `topic create --max-delay` bounds the delays a topic accepts (longer ones are
// refused with delay_out_of_range).
//
// Dead letters: `dlq list` reads the subscription's dead-letter topic (shown by `sub describe`)
// from the beginning; `dlq replay` publishes chosen dead letters again to their original topic,
// with their key, value and headers minus the broker's ferry-dlq-* headers.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "broker/base/main_guard.h"
#include "client/ferryctl/format.h"
#include "ferry/client/client.h"
#include "schema/record_batch.h"

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

std::string duration_text(int64_t ms) { return ferry::ctl::format_duration_ms(ms); }

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string error_json(const ferry::error& e) {
  return "{\"code\":" + json_string(ferry::errc_name(e.code)) + ",\"message\":" + json_string(e.message) + "}";
}

std::string optional_json(const std::optional<std::string>& s) { return s ? json_string(*s) : "null"; }

std::string headers_json(const std::vector<fc::header>& hs) {
  std::string s = "{";
  for (size_t i = 0; i < hs.size(); ++i) {
    if (i > 0) s += ",";
    s += json_string(hs[i].key) + ":" + optional_json(hs[i].value);
  }
  return s + "}";
}

std::string cell(const std::optional<std::string>& s) { return s ? ferry::ctl::printable(*s) : "-"; }

std::string config_json(const fc::topic_config& c) {
  std::string s =
      "{\"partitions\":" + std::to_string(c.partitions) + ",\"replication\":" + std::to_string(c.replication) +
      ",\"retention_ms\":" + std::to_string(c.retention_ms) +
      ",\"retention_bytes\":" + std::to_string(c.retention_bytes) +
      ",\"segment_bytes\":" + std::to_string(c.segment_bytes) + ",\"segment_ms\":" + std::to_string(c.segment_ms) +
      ",\"max_batch_bytes\":" + std::to_string(c.max_batch_bytes) +
      ",\"fsync\":" + json_string(c.fsync_interval ? "interval" : "always") +
      ",\"fsync_interval_ms\":" + std::to_string(c.fsync_interval_ms) +
      ",\"max_delay_ms\":" + std::to_string(c.max_delay_ms) + "}";
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
  t.add({"max.delay", c.max_delay_ms <= 0 ? "default" : duration_text(c.max_delay_ms)});
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
  std::string max_delay;
};

int topic_create(const globals& g, const topic_create_args& a) {
  fc::topic_config cfg;
  cfg.partitions = a.partitions;
  cfg.replication = a.replication;
  cfg.retention_bytes = a.retention_bytes;
  cfg.segment_bytes = a.segment_bytes;
  if (!a.retention.empty()) {
    auto ms = ferry::ctl::parse_duration_ms(a.retention);
    if (!ms)
      return usage_error("--retention: invalid duration '" + a.retention + "' (examples: 500ms, 30s, 15m, 2h, 7d)");
    cfg.retention_ms = *ms;
  }
  if (!a.max_delay.empty()) {
    auto ms = ferry::ctl::parse_duration_ms(a.max_delay);
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
           ",\"log_start_offset\":" + std::to_string(p.log_start_offset) +
           ",\"high_watermark\":" + std::to_string(p.high_watermark) +
           ",\"log_end_offset\":" + std::to_string(p.log_end_offset) +
           ",\"size_bytes\":" + std::to_string(p.size_bytes) + ",\"segments\":" + std::to_string(p.segments) +
           ",\"delayed_pending\":" + std::to_string(p.delayed_pending) +
           ",\"next_due_time\":" + std::to_string(p.next_due_time_ms) + "}";
    }
    s += "]}";
    std::printf("%s\n", s.c_str());
  } else {
    std::printf("topic %s\n%s\n", r->name.c_str(), config_table(r->config).c_str());
    ferry::ctl::table t(
        {"PARTITION", "LEADER", "START", "HIGH-WATERMARK", "END", "BYTES", "SEGMENTS", "DELAYED", "NEXT-DUE"});
    for (const auto& p : r->partitions)
      t.add({std::to_string(p.partition), std::to_string(p.leader), std::to_string(p.log_start_offset),
             std::to_string(p.high_watermark), std::to_string(p.log_end_offset), std::to_string(p.size_bytes),
             std::to_string(p.segments), std::to_string(p.delayed_pending),
             p.next_due_time_ms < 0 ? "-" : ferry::ctl::format_rfc3339_ms(p.next_due_time_ms)});
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
    if (*ms < 0) return usage_error("--at: '" + a.at + "' is before 1970-01-01T00:00:00Z");
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
  // What an acknowledgement can say about a delayed message: its due time if absolute; a relative
  // delay becomes a due time only on the broker's clock, so only the delay is known here.
  std::string delay_json, delay_text;
  if (proto.deliver_at_ms) {
    delay_json = ",\"deliver_at\":" + std::to_string(*proto.deliver_at_ms);
    delay_text = " (deliver at " + ferry::ctl::format_rfc3339_ms(*proto.deliver_at_ms) + ")";
  } else if (proto.delay_ms) {
    delay_json = ",\"delay_ms\":" + std::to_string(*proto.delay_ms);
    delay_text = *proto.delay_ms == 0 ? std::string(" (due when stored)")
                                      : " (deliver " + duration_text(*proto.delay_ms) + " after it was stored)";
  }
  auto on_ack = [&, json = g.json()](const ferry::result<fc::message_id>& r) {
    if (!r) {
      std::lock_guard lk(mu);
      if (!first_error) first_error = r.error();
      ++failed;
      return;
    }
    if (json)
      std::printf("{\"topic\":%s,\"partition\":%d,\"offset\":%" PRId64 ",\"id\":%s%s}\n", json_string(r->topic).c_str(),
                  r->partition, r->offset, json_string(r->to_string()).c_str(), delay_json.c_str());
    else
      std::printf("produced %s%s\n", r->to_string().c_str(), delay_text.c_str());
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
              m.key ? ferry::ctl::printable(*m.key).c_str() : "-",
              m.value ? ferry::ctl::printable(*m.value).c_str() : "-", extra.c_str());
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
    return broker_error(ferry::fail(ferry::errc::unknown_partition, "topic '" + a.topic + "' has no partition " +
                                                                        std::to_string(a.partition.value_or(0))));
  if (!g.json()) std::printf("%-22s  %-24s  %-12s  %s\n", "ID", "TIMESTAMP", "KEY", "VALUE");
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
        int64_t before = s.reader->position();
        auto msgs = s.reader->poll(std::chrono::milliseconds(idle > 0 ? 500 : 0));
        if (!msgs) return broker_error(msgs.error());
        // Nothing new and no progress: the end we saw is no longer readable (retention). A poll
        // that moved past control batches only returns nothing but is progress.
        if (s.reader->position() > before)
          idle = 0;
        else if (msgs->empty() && ++idle > 4)
          break;
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

// ---- subscriptions -------------------------------------------------------------------------

std::string dlq_topic_of(const std::string& topic, const std::string& sub, const fc::subscription_config& c) {
  return c.dead_letter_topic.empty() ? topic + "." + sub + ".dlq" : c.dead_letter_topic;
}

int64_t ms_or(const std::optional<std::chrono::milliseconds>& v) { return v ? v->count() : -1; }

std::string sub_config_json(const std::string& topic, const std::string& sub, const fc::subscription_config& c) {
  auto num = [](const auto& opt) { return opt ? std::to_string(*opt) : std::string("null"); };
  auto dur = [](const std::optional<std::chrono::milliseconds>& d) {
    return d ? std::to_string(d->count()) : std::string("null");
  };
  return "{\"start\":" + json_string(c.start == fc::start_position::earliest ? "earliest" : "latest") +
         ",\"ack_timeout_ms\":" + dur(c.ack_timeout) + ",\"max_deliveries\":" + num(c.max_deliveries) +
         ",\"ordered\":" + (c.ordered ? "true" : "false") +
         ",\"backoff\":" + json_string(c.backoff == fc::backoff_kind::fixed ? "fixed" : "exponential") +
         ",\"backoff_initial_ms\":" + dur(c.backoff_initial) + ",\"backoff_max_ms\":" + dur(c.backoff_max) +
         ",\"dead_letter_topic\":" + json_string(dlq_topic_of(topic, sub, c)) + "}";
}

std::string sub_config_table(const std::string& topic, const std::string& sub, const fc::subscription_config& c) {
  ferry::ctl::table t({"SETTING", "VALUE"});
  t.add({"start", c.start == fc::start_position::earliest ? "earliest" : "latest"});
  t.add({"ack.timeout", duration_text(ms_or(c.ack_timeout))});
  t.add({"max.deliveries", !c.max_deliveries        ? "default"
                           : *c.max_deliveries == 0 ? "0 (never dead-letter)"
                                                    : std::to_string(*c.max_deliveries)});
  t.add({"ordered", c.ordered ? "true (ordered keys)" : "false"});
  t.add({"backoff", c.backoff == fc::backoff_kind::fixed ? "fixed" : "exponential"});
  t.add({"backoff.initial", duration_text(ms_or(c.backoff_initial))});
  t.add({"backoff.max", duration_text(ms_or(c.backoff_max))});
  t.add({"dead.letter.topic", dlq_topic_of(topic, sub, c)});
  return t.str();
}

struct sub_create_args {
  std::string topic;
  std::string sub;
  std::string from;
  std::string ack_timeout;
  std::optional<int32_t> max_deliveries;
  std::string ordered;
  std::string backoff;
  std::string backoff_initial;
  std::string backoff_max;
  std::string dead_letter_topic;
};

int sub_create(const globals& g, const sub_create_args& a) {
  fc::subscription_config cfg;
  cfg.start = a.from == "earliest" ? fc::start_position::earliest : fc::start_position::latest;
  auto duration = [](const std::string& flag, const std::string& text,
                     std::optional<std::chrono::milliseconds>& out) -> std::optional<int> {
    if (text.empty()) return std::nullopt;
    auto ms = ferry::ctl::parse_duration_ms(text);
    if (!ms) return usage_error(flag + ": invalid duration '" + text + "' (examples: 500ms, 30s, 15m, 2h, 7d)");
    out = std::chrono::milliseconds(*ms);
    return std::nullopt;
  };
  if (auto rc = duration("--ack-timeout", a.ack_timeout, cfg.ack_timeout)) return *rc;
  if (auto rc = duration("--backoff-initial", a.backoff_initial, cfg.backoff_initial)) return *rc;
  if (auto rc = duration("--backoff-max", a.backoff_max, cfg.backoff_max)) return *rc;
  cfg.max_deliveries = a.max_deliveries;
  if (!a.ordered.empty()) cfg.ordered = a.ordered == "true";
  if (!a.backoff.empty()) cfg.backoff = a.backoff == "fixed" ? fc::backoff_kind::fixed : fc::backoff_kind::exponential;
  cfg.dead_letter_topic = a.dead_letter_topic;
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->create_subscription(a.topic, a.sub, cfg);
  if (!r) return broker_error(r.error());
  if (g.json())
    std::printf("{\"topic\":%s,\"name\":%s,\"config\":%s}\n", json_string(a.topic).c_str(), json_string(a.sub).c_str(),
                sub_config_json(a.topic, a.sub, *r).c_str());
  else
    std::printf("created subscription %s on topic %s\n%s", a.sub.c_str(), a.topic.c_str(),
                sub_config_table(a.topic, a.sub, *r).c_str());
  return exit_ok;
}

int sub_list(const globals& g, const std::string& topic) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->list_subscriptions(topic);
  if (!r) return broker_error(r.error());
  if (g.json()) {
    std::string s = "{\"subscriptions\":[";
    for (size_t i = 0; i < r->size(); ++i) {
      const auto& x = (*r)[i];
      if (i > 0) s += ",";
      s += "{\"topic\":" + json_string(x.topic) + ",\"name\":" + json_string(x.name) +
           ",\"members\":" + std::to_string(x.members) + ",\"backlog\":" + std::to_string(x.backlog) +
           ",\"in_flight\":" + std::to_string(x.in_flight) + "}";
    }
    std::printf("%s]}\n", s.c_str());
  } else {
    ferry::ctl::table t({"TOPIC", "SUBSCRIPTION", "MEMBERS", "LAG", "IN-FLIGHT"});
    for (const auto& x : *r)
      t.add({x.topic, x.name, std::to_string(x.members), std::to_string(x.backlog), std::to_string(x.in_flight)});
    std::printf("%s", t.str().c_str());
  }
  return exit_ok;
}

int sub_delete(const globals& g, const std::string& topic, const std::string& sub) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->delete_subscription(topic, sub);
  if (!r) return broker_error(r.error());
  if (g.json())
    std::printf("{\"deleted\":{\"topic\":%s,\"name\":%s}}\n", json_string(topic).c_str(), json_string(sub).c_str());
  else
    std::printf("deleted subscription %s of topic %s\n", sub.c_str(), topic.c_str());
  return exit_ok;
}

int sub_describe(const globals& g, const std::string& topic, const std::string& sub) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->describe_subscription(topic, sub);
  if (!r) return broker_error(r.error());
  const int64_t now = now_ms();
  // Totals: sums of the counts; the oldest unacked message and the next due time over all partitions.
  fc::subscription_partition_state total;
  total.oldest_unacked_time_ms = -1;
  total.next_due_time_ms = -1;
  auto earliest = [](int64_t a, int64_t b) { return a < 0 ? b : b < 0 ? a : std::min(a, b); };
  for (const auto& p : r->partitions) {
    total.backlog += p.backlog;
    total.in_flight += p.in_flight;
    total.acked_above_cursor += p.acked_above_cursor;
    total.redeliveries += p.redeliveries;
    total.dead_lettered += p.dead_lettered;
    total.expired += p.expired;
    total.delayed_pending += p.delayed_pending;
    total.oldest_unacked_time_ms = earliest(total.oldest_unacked_time_ms, p.oldest_unacked_time_ms);
    total.next_due_time_ms = earliest(total.next_due_time_ms, p.next_due_time_ms);
  }
  if (g.json()) {
    auto age = [&](int64_t t) { return t < 0 ? std::string("null") : std::to_string(std::max<int64_t>(now - t, 0)); };
    auto counts = [&](const fc::subscription_partition_state& p) {
      return "\"backlog\":" + std::to_string(p.backlog) + ",\"in_flight\":" + std::to_string(p.in_flight) +
             ",\"acked_above_cursor\":" + std::to_string(p.acked_above_cursor) +
             ",\"redeliveries\":" + std::to_string(p.redeliveries) +
             ",\"dead_lettered\":" + std::to_string(p.dead_lettered) + ",\"expired\":" + std::to_string(p.expired) +
             ",\"oldest_unacked_time\":" + std::to_string(p.oldest_unacked_time_ms) +
             ",\"oldest_unacked_age_ms\":" + age(p.oldest_unacked_time_ms) +
             ",\"delayed_pending\":" + std::to_string(p.delayed_pending) +
             ",\"next_due_time\":" + std::to_string(p.next_due_time_ms);
    };
    std::string s = "{\"topic\":" + json_string(r->topic) + ",\"name\":" + json_string(r->name) +
                    ",\"config\":" + sub_config_json(r->topic, r->name, r->config) + ",\"partitions\":[";
    for (size_t i = 0; i < r->partitions.size(); ++i) {
      const auto& p = r->partitions[i];
      if (i > 0) s += ",";
      s += "{\"partition\":" + std::to_string(p.partition) + ",\"cursor\":" + std::to_string(p.cursor) +
           ",\"log_start_offset\":" + std::to_string(p.log_start_offset) +
           ",\"high_watermark\":" + std::to_string(p.high_watermark) + "," + counts(p) + "}";
    }
    s += "],\"total\":{" + counts(total) + "},\"members\":[";
    for (size_t i = 0; i < r->members.size(); ++i) {
      const auto& m = r->members[i];
      if (i > 0) s += ",";
      s += "{\"member_id\":" + std::to_string(m.member_id) + ",\"name\":" + json_string(m.name) +
           ",\"peer\":" + json_string(m.peer) + ",\"in_flight\":" + std::to_string(m.in_flight) +
           ",\"credit_messages\":" + std::to_string(m.credit_messages) + "}";
    }
    std::printf("%s]}\n", s.c_str());
    return exit_ok;
  }
  std::printf("subscription %s of topic %s\n%s\n", r->name.c_str(), r->topic.c_str(),
              sub_config_table(r->topic, r->name, r->config).c_str());
  auto oldest = [&](int64_t t) { return t < 0 ? std::string("-") : ferry::ctl::format_age_ms(now - t); };
  auto due = [](int64_t t) { return t < 0 ? std::string("-") : ferry::ctl::format_rfc3339_ms(t); };
  auto row = [&](std::string part, std::string cursor, std::string end, const fc::subscription_partition_state& p) {
    return std::vector<std::string>{std::move(part),
                                    std::move(cursor),
                                    std::move(end),
                                    std::to_string(p.backlog),
                                    std::to_string(p.in_flight),
                                    std::to_string(p.acked_above_cursor),
                                    std::to_string(p.redeliveries),
                                    std::to_string(p.dead_lettered),
                                    std::to_string(p.expired),
                                    oldest(p.oldest_unacked_time_ms),
                                    std::to_string(p.delayed_pending),
                                    due(p.next_due_time_ms)};
  };
  ferry::ctl::table t({"PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "IN-FLIGHT", "ACKED-AHEAD",
                       "REDELIVERED", "DEAD-LETTERED", "EXPIRED", "OLDEST-UNACKED", "DELAYED", "NEXT-DUE"});
  for (const auto& p : r->partitions)
    t.add(row(std::to_string(p.partition), std::to_string(p.cursor), std::to_string(p.high_watermark), p));
  t.add(row("TOTAL", "-", "-", total));
  std::printf("%s\n", t.str().c_str());
  if (r->members.empty()) {
    std::printf("no members\n");
  } else {
    ferry::ctl::table m({"MEMBER-ID", "NAME", "HOST", "IN-FLIGHT", "CREDIT"});
    for (const auto& x : r->members)
      m.add({std::to_string(x.member_id), ferry::ctl::printable(x.name), ferry::ctl::printable(x.peer),
             std::to_string(x.in_flight), std::to_string(x.credit_messages)});
    std::printf("%s", m.str().c_str());
  }
  return exit_ok;
}

struct sub_seek_args {
  std::string topic;
  std::string sub;
  std::string to;
  std::optional<int32_t> partition;
  bool dry_run = false;
};

int sub_seek(const globals& g, const sub_seek_args& a) {
  auto to = ferry::ctl::parse_seek_to(a.to);
  if (!to)
    return usage_error("--to: expected earliest, latest, an RFC 3339 time (2024-05-01T12:00:00Z) or an offset, got '" +
                       a.to + "'");
  fc::seek_target target = fc::seek_target::earliest;
  switch (to->what) {
    case ferry::ctl::seek_to::kind::earliest:
      target = fc::seek_target::earliest;
      break;
    case ferry::ctl::seek_to::kind::latest:
      target = fc::seek_target::latest;
      break;
    case ferry::ctl::seek_to::kind::time:
      target = fc::seek_target::time;
      break;
    case ferry::ctl::seek_to::kind::offset:
      target = fc::seek_target::offset;
      break;
  }
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->seek_subscription(a.topic, a.sub, target, to->value, a.partition, a.dry_run);
  if (!r) return broker_error(r.error());
  std::optional<ferry::error> first_error;
  if (g.json()) {
    std::string s = "{\"topic\":" + json_string(a.topic) + ",\"name\":" + json_string(a.sub) +
                    ",\"dry_run\":" + (a.dry_run ? "true" : "false") + ",\"partitions\":[";
    for (size_t i = 0; i < r->size(); ++i) {
      const auto& p = (*r)[i];
      if (i > 0) s += ",";
      s += "{\"partition\":" + std::to_string(p.partition) + ",\"old_cursor\":" + std::to_string(p.old_cursor) +
           ",\"new_cursor\":" + std::to_string(p.new_cursor) + ",\"old_backlog\":" + std::to_string(p.old_backlog) +
           ",\"new_backlog\":" + std::to_string(p.new_backlog) +
           ",\"error\":" + (p.error ? error_json(*p.error) : "null") + "}";
      if (p.error && !first_error) first_error = *p.error;
    }
    std::printf("%s]}\n", s.c_str());
  } else {
    for (const auto& p : *r) {
      if (p.error) {
        if (!first_error) first_error = *p.error;
        continue;
      }
      int64_t delta = p.new_backlog - p.old_backlog;
      std::printf("%s/%d: %s cursor %" PRId64 " -> %" PRId64 ", backlog %" PRId64 " -> %" PRId64 " (%s%" PRId64 ")\n",
                  a.topic.c_str(), p.partition, a.dry_run ? "would move" : "moved", p.old_cursor, p.new_cursor,
                  p.old_backlog, p.new_backlog, delta >= 0 ? "+" : "", delta);
    }
    if (a.dry_run) std::printf("dry run: nothing changed\n");
  }
  std::fflush(stdout);
  for (const auto& p : *r)
    if (p.error)
      std::fprintf(stderr, "error: %s: %s/%d: %s\n", std::string(ferry::errc_name(p.error->code)).c_str(),
                   a.topic.c_str(), p.partition, p.error->message.c_str());
  return first_error ? exit_broker : exit_ok;
}

// ---- consume -------------------------------------------------------------------------------

struct consume_args {
  std::string topic;
  std::string sub;
  std::optional<int64_t> count;
  bool nack = false;
  std::string nack_delay;
  bool no_ack = false;
  std::string wait = "5s";
  std::string member;
};

void print_delivery(const globals& g, const fc::delivery& d) {
  if (g.json()) {
    std::string s = "{\"topic\":" + json_string(d.topic) + ",\"partition\":" + std::to_string(d.partition) +
                    ",\"offset\":" + std::to_string(d.offset) + ",\"id\":" + json_string(d.id()) +
                    ",\"key\":" + optional_json(d.key) + ",\"value\":" + optional_json(d.value) +
                    ",\"headers\":" + headers_json(d.headers) + ",\"timestamp\":" + std::to_string(d.timestamp_ms) +
                    ",\"append_time\":" + std::to_string(d.append_time_ms) +
                    ",\"delivery_count\":" + std::to_string(d.delivery_count);
    if (d.deliver_at_ms) s += ",\"deliver_at\":" + std::to_string(*d.deliver_at_ms);
    s += "}\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
    return;
  }
  std::string extra;
  if (d.deliver_at_ms) extra += "  deliver_at=" + ferry::ctl::format_rfc3339_ms(*d.deliver_at_ms);
  std::string headers;
  for (const auto& h : d.headers) {
    if (!headers.empty()) headers += ",";
    headers += ferry::ctl::printable(h.key) + "=" + (h.value ? ferry::ctl::printable(*h.value) : "");
  }
  if (!headers.empty()) extra += "  headers=" + headers;
  std::printf("%-22s  %-8d  %-24s  %-12s  %s%s\n", d.id().c_str(), d.delivery_count,
              ferry::ctl::format_rfc3339_ms(d.timestamp_ms).c_str(), cell(d.key).c_str(), cell(d.value).c_str(),
              extra.c_str());
}

int consume(const globals& g, const consume_args& a) {
  auto wait = ferry::ctl::parse_duration_ms(a.wait);
  if (!wait) return usage_error("--wait: invalid duration '" + a.wait + "' (examples: 500ms, 30s, 15m, 2h, 7d)");
  std::optional<std::chrono::milliseconds> nack_delay;
  if (!a.nack_delay.empty()) {
    auto ms = ferry::ctl::parse_duration_ms(a.nack_delay);
    if (!ms) return usage_error("--nack-delay: invalid duration '" + a.nack_delay + "' (examples: 500ms, 30s, 15m)");
    nack_delay = std::chrono::milliseconds(*ms);
  }
  if (a.count && *a.count == 0) return exit_ok;
  fc::consumer_options o;
  o.bootstrap = g.bootstrap;
  o.member_name = a.member;
  o.request_timeout = std::chrono::seconds(15);
  if (a.count) {
    // Take no more than asked for: every delivery counts towards max_deliveries.
    o.credit_messages = static_cast<int32_t>(std::min<int64_t>(*a.count, 1000));
    o.message_limit = *a.count;
  }
  auto c = fc::consumer::create(o, a.topic, a.sub);
  if (!c) return broker_error(c.error());

  // Settle callbacks run on the consumer's I/O thread.
  std::mutex mu;
  std::optional<ferry::error> first_error;
  int64_t failed = 0;
  auto on_settled = [&](const ferry::result<void>& r) {
    if (r) return;
    std::lock_guard lk(mu);
    if (!first_error) first_error = r.error();
    ++failed;
  };
  if (!g.json()) std::printf("%-22s  %-8s  %-24s  %-12s  %s\n", "ID", "DELIVERY", "TIMESTAMP", "KEY", "VALUE");
  std::fflush(stdout);
  int64_t printed = 0;
  auto last = std::chrono::steady_clock::now();
  const auto idle = std::chrono::milliseconds(*wait);
  std::optional<ferry::error> poll_error;
  while (!a.count || printed < *a.count) {
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - last);
    if (waited >= idle) break;
    size_t want = a.count ? static_cast<size_t>(std::min<int64_t>(*a.count - printed, 500)) : 500;
    auto r = (*c)->poll(std::min(idle - waited, std::chrono::milliseconds(500)), want);
    if (!r) {
      poll_error = r.error();
      break;
    }
    if (r->empty()) continue;
    last = std::chrono::steady_clock::now();
    for (const auto& d : *r) {
      print_delivery(g, d);
      ++printed;
      if (a.nack)
        (*c)->nack(d, nack_delay, on_settled);
      else if (!a.no_ack)
        (*c)->ack(d, on_settled);
    }
    std::fflush(stdout);
  }
  auto fl = (*c)->flush(std::chrono::seconds(30));
  (*c)->close();  // leaves: what --no-ack left unacked is redelivered to other members
  std::fflush(stdout);
  if (poll_error) return broker_error(*poll_error);
  {
    std::lock_guard lk(mu);
    if (first_error) {
      auto e = *first_error;
      if (failed > 1) e.message += " (" + std::to_string(failed) + " acks or nacks failed)";
      return broker_error(e);
    }
  }
  if (!fl) return broker_error(fl.error());
  return exit_ok;
}

// ---- dead letters --------------------------------------------------------------------------

// Every message of every partition of `topic`, from the log start to the high-water mark as of
// the call, partition by partition, until `fn` returns false. unknown_topic if there is none.
ferry::result<void> read_all(const globals& g, const std::string& topic,
                             const std::function<bool(fc::received_message&)>& fn) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return adm.error();
  auto d = (*adm)->describe_topic(topic);
  if (!d) return d.error();
  for (const auto& p : d->partitions) {
    if (p.high_watermark <= p.log_start_offset) continue;
    auto r = fc::reader::create(g.client(), topic, p.partition, fc::reader::earliest);
    if (!r) return r.error();
    int idle = 0;
    while ((*r)->position() < p.high_watermark) {
      int64_t before = (*r)->position();
      auto msgs = (*r)->poll(std::chrono::milliseconds(idle > 0 ? 500 : 0));
      if (!msgs) return msgs.error();
      if ((*r)->position() > before)
        idle = 0;
      else if (msgs->empty() && ++idle > 4)
        break;  // deleted by retention meanwhile
      for (auto& m : *msgs) {
        if (m.offset >= p.high_watermark) break;
        if (!fn(m)) return {};
      }
    }
  }
  return {};
}

struct dead_letter {
  fc::received_message m;
  std::string original_id;  // "topic/partition/offset"; empty if the header is missing
  std::string subscription;
  std::optional<int64_t> delivery_count;
  std::string reason;
  std::optional<int64_t> time_ms;
};

dead_letter to_dead_letter(fc::received_message m) {
  dead_letter d;
  for (const auto& h : m.headers) {
    if (!h.value) continue;
    if (h.key == "ferry-dlq-original-id")
      d.original_id = *h.value;
    else if (h.key == "ferry-dlq-subscription")
      d.subscription = *h.value;
    else if (h.key == "ferry-dlq-delivery-count")
      d.delivery_count = ferry::ctl::parse_decimal(*h.value);
    else if (h.key == "ferry-dlq-reason")
      d.reason = *h.value;
    else if (h.key == "ferry-dlq-time")
      d.time_ms = ferry::ctl::parse_decimal(*h.value);
  }
  d.m = std::move(m);
  return d;
}

// A dead-letter topic may be shared (an explicit dead_letter_topic): keep the subscription's own.
bool of_subscription(const dead_letter& d, const std::string& topic, const std::string& sub) {
  return d.subscription.empty() || d.subscription == sub || d.subscription == topic + "/" + sub;
}

// The subscription's dead-letter topic (from describe), or the error to exit with.
ferry::result<std::string> dlq_topic(const globals& g, const std::string& topic, const std::string& sub) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return adm.error();
  auto d = (*adm)->describe_subscription(topic, sub);
  if (!d) return d.error();
  return dlq_topic_of(topic, sub, d->config);
}

struct dlq_list_args {
  std::string topic;
  std::string sub;
  std::optional<int64_t> count;
};

int dlq_list(const globals& g, const dlq_list_args& a) {
  auto dlq = dlq_topic(g, a.topic, a.sub);
  if (!dlq) return broker_error(dlq.error());
  std::vector<dead_letter> found;
  auto r = read_all(g, *dlq, [&](fc::received_message& m) {
    if (a.count && static_cast<int64_t>(found.size()) >= *a.count) return false;
    auto d = to_dead_letter(std::move(m));
    if (of_subscription(d, a.topic, a.sub)) found.push_back(std::move(d));
    return true;
  });
  if (!r && r.error().code != ferry::errc::unknown_topic) return broker_error(r.error());  // no DLQ yet: nothing dead
  if (g.json()) {
    for (const auto& d : found) {
      std::string s =
          "{\"dlq_id\":" + json_string(d.m.id()) + ",\"topic\":" + json_string(d.m.topic) +
          ",\"partition\":" + std::to_string(d.m.partition) + ",\"offset\":" + std::to_string(d.m.offset) +
          ",\"original_id\":" + (d.original_id.empty() ? "null" : json_string(d.original_id)) +
          ",\"subscription\":" + json_string(d.subscription.empty() ? a.sub : d.subscription) +
          ",\"delivery_count\":" + (d.delivery_count ? std::to_string(*d.delivery_count) : "null") +
          ",\"reason\":" + json_string(d.reason) + ",\"time\":" + (d.time_ms ? std::to_string(*d.time_ms) : "null") +
          ",\"key\":" + optional_json(d.m.key) + ",\"value\":" + optional_json(d.m.value) +
          ",\"headers\":" + headers_json(d.m.headers) + ",\"timestamp\":" + std::to_string(d.m.timestamp_ms) + "}\n";
      std::fwrite(s.data(), 1, s.size(), stdout);
    }
    return exit_ok;
  }
  if (found.empty()) return exit_ok;
  ferry::ctl::table t({"DLQ-ID", "ORIGINAL-ID", "DELIVERIES", "REASON", "TIME", "KEY", "VALUE"});
  for (const auto& d : found)
    t.add({d.m.id(), d.original_id.empty() ? "-" : ferry::ctl::printable(d.original_id),
           d.delivery_count ? std::to_string(*d.delivery_count) : "-",
           d.reason.empty() ? "-" : ferry::ctl::printable(d.reason),
           d.time_ms ? ferry::ctl::format_rfc3339_ms(*d.time_ms) : "-", cell(d.m.key), cell(d.m.value)});
  std::printf("%s", t.str().c_str());
  return exit_ok;
}

struct dlq_replay_args {
  std::string topic;
  std::string sub;
  std::vector<std::string> offsets;
  std::vector<std::string> original_ids;
  bool all = false;
  bool dry_run = false;
};

int dlq_replay(const globals& g, const dlq_replay_args& a) {
  if (!a.all && a.offsets.empty() && a.original_ids.empty())
    return usage_error("dlq replay: choose dead letters with --offset, --original-id or --all");
  if (a.all && (!a.offsets.empty() || !a.original_ids.empty()))
    return usage_error("dlq replay: --all cannot be combined with --offset or --original-id");
  std::map<std::pair<int32_t, int64_t>, std::string> want_positions;  // -> the selector as given
  for (const auto& s : a.offsets) {
    auto po = ferry::ctl::parse_partition_offset(s);
    if (!po)
      return usage_error("--offset: expected DLQ-PARTITION/OFFSET (as in the DLQ-ID of dlq list), got '" + s + "'");
    want_positions.emplace(*po, s);
  }
  std::set<std::string> want_ids;
  for (const auto& s : a.original_ids) {
    auto id = fc::parse_message_id(s);
    if (!id) return usage_error("--original-id: " + id.error().message);
    want_ids.insert(id->to_string());
  }
  auto dlq = dlq_topic(g, a.topic, a.sub);
  if (!dlq) return broker_error(dlq.error());
  std::vector<dead_letter> chosen;
  std::set<std::pair<int32_t, int64_t>> found_positions;
  std::set<std::string> found_ids;
  auto r = read_all(g, *dlq, [&](fc::received_message& m) {
    auto d = to_dead_letter(std::move(m));
    if (!of_subscription(d, a.topic, a.sub)) return true;
    bool by_position = want_positions.count({d.m.partition, d.m.offset}) > 0;
    bool by_id = !d.original_id.empty() && want_ids.count(d.original_id) > 0;
    if (!a.all && !by_position && !by_id) return true;
    if (by_position) found_positions.insert({d.m.partition, d.m.offset});
    if (by_id) found_ids.insert(d.original_id);
    chosen.push_back(std::move(d));
    return true;
  });
  if (!r && r.error().code != ferry::errc::unknown_topic) return broker_error(r.error());
  // Every selector must name something; nothing is replayed otherwise.
  std::optional<ferry::error> missing;
  auto not_found = [&](const std::string& what) {
    auto e = ferry::fail(ferry::errc::unknown_message, "no dead letter " + what + " of subscription '" + a.sub + "'");
    std::fprintf(stderr, "error: %s: %s\n", std::string(ferry::errc_name(e.code)).c_str(), e.message.c_str());
    if (!missing) missing = e;
  };
  for (const auto& [po, text] : want_positions)
    if (!found_positions.count(po)) not_found(*dlq + "/" + std::to_string(po.first) + "/" + std::to_string(po.second));
  for (const auto& id : want_ids)
    if (!found_ids.count(id)) not_found("with original id " + id + " in '" + *dlq + "'");
  if (missing) return exit_broker;
  std::vector<fc::message_id> targets;
  for (const auto& d : chosen) {
    auto id = fc::parse_message_id(d.original_id);
    if (!id)
      return broker_error(ferry::fail(ferry::errc::invalid_argument,
                                      "dead letter " + d.m.id() + " has no usable ferry-dlq-original-id header ('" +
                                          d.original_id + "'): cannot tell where it came from"));
    targets.push_back(*id);
  }
  if (a.dry_run) {
    for (size_t i = 0; i < chosen.size(); ++i) {
      if (g.json())
        std::printf("{\"dlq_id\":%s,\"original_id\":%s,\"topic\":%s,\"dry_run\":true}\n",
                    json_string(chosen[i].m.id()).c_str(), json_string(chosen[i].original_id).c_str(),
                    json_string(targets[i].topic).c_str());
      else
        std::printf("would replay %s (%s) to %s\n", chosen[i].m.id().c_str(), chosen[i].original_id.c_str(),
                    targets[i].topic.c_str());
    }
    if (!g.json()) std::printf("dry run: nothing published\n");
    return exit_ok;
  }
  if (chosen.empty()) return exit_ok;

  fc::producer_options o;
  o.bootstrap = g.bootstrap;
  o.linger = std::chrono::milliseconds(5);
  o.delivery_timeout = std::chrono::seconds(15);
  auto prod = fc::producer::create(o);
  if (!prod) return broker_error(prod.error());
  std::vector<std::future<ferry::result<fc::message_id>>> acks;
  for (size_t i = 0; i < chosen.size(); ++i) {
    const auto& d = chosen[i];
    fc::message m;
    m.key = d.m.key;
    m.value = d.m.value.value_or("");
    // The broker's own headers (ferry-dlq-*, ferry-delayed-id) stay behind: producers may not set
    // them. The replayed message says which dead letter it came from.
    for (const auto& h : d.m.headers)
      if (!ferry::wire::is_reserved_header(h.key)) m.headers.emplace_back(h.key, h.value.value_or(""));
    m.headers.emplace_back("ferry-replayed-from", d.m.id());
    // A keyed message finds its partition by key, as any publish; a keyless one goes back where it was.
    if (!m.key) m.partition = targets[i].partition;
    acks.push_back((*prod)->send(targets[i].topic, std::move(m)));
  }
  auto fl = (*prod)->flush(o.delivery_timeout + o.request_timeout);
  (*prod)->close();
  std::optional<ferry::error> first_error;
  ferry::ctl::table t({"DLQ-ID", "ORIGINAL-ID", "NEW-ID"});
  for (size_t i = 0; i < acks.size(); ++i) {
    auto res = acks[i].get();
    if (!res) {
      std::fprintf(stderr, "error: %s: replaying %s: %s\n", std::string(ferry::errc_name(res.error().code)).c_str(),
                   chosen[i].m.id().c_str(), res.error().message.c_str());
      if (!first_error) first_error = res.error();
      continue;
    }
    if (g.json())
      std::printf("{\"dlq_id\":%s,\"original_id\":%s,\"new_id\":%s}\n", json_string(chosen[i].m.id()).c_str(),
                  json_string(chosen[i].original_id).c_str(), json_string(res->to_string()).c_str());
    else
      t.add({chosen[i].m.id(), chosen[i].original_id, res->to_string()});
  }
  if (!g.json()) std::printf("%s", t.str().c_str());
  std::fflush(stdout);
  if (first_error) return exit_broker;
  if (!fl) return broker_error(fl.error());
  return exit_ok;
}

// ---- delayed messages ----------------------------------------------------------------------

const char* outcome_name(fc::cancel_outcome o) {
  switch (o) {
    case fc::cancel_outcome::cancelled:
      return "cancelled";
    case fc::cancel_outcome::too_late:
      return "too_late";
    case fc::cancel_outcome::unknown:
      return "unknown";
  }
  return "unknown";
}

int msg_cancel(const globals& g, const std::string& id_text) {
  auto id = fc::parse_message_id(id_text);
  if (!id) return usage_error(id.error().message + " (expected TOPIC/PARTITION/OFFSET, e.g. orders/0/42)");
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->cancel(*id);
  if (!r) return broker_error(r.error());
  std::string why = r->message;
  if (why.empty() && r->outcome == fc::cancel_outcome::too_late)
    why = id->to_string() + " is already due or was not a delayed message";
  if (why.empty() && r->outcome == fc::cancel_outcome::unknown) why = "no message " + id->to_string();
  if (g.json()) {
    std::printf("{\"id\":%s,\"outcome\":%s,\"message\":%s}\n", json_string(id->to_string()).c_str(),
                json_string(outcome_name(r->outcome)).c_str(), json_string(why).c_str());
  } else if (r->outcome == fc::cancel_outcome::cancelled) {
    std::printf("cancelled %s\n", id->to_string().c_str());
  } else {
    std::printf("%s: %s\n", r->outcome == fc::cancel_outcome::too_late ? "too late" : "unknown",
                ferry::ctl::printable(why).c_str());
  }
  // Not a broker error, but not done either: scripts tell the outcomes apart by the exit status
  // (0 cancelled, 1 otherwise) or by "outcome" in JSON.
  return r->outcome == fc::cancel_outcome::cancelled ? exit_ok : exit_broker;
}

struct delayed_list_args {
  std::string topic;
  std::string before;
  int64_t limit = 100;
  std::optional<int32_t> partition;
};

int delayed_list(const globals& g, const delayed_list_args& a) {
  std::optional<int64_t> before;
  if (!a.before.empty()) {
    auto ms = ferry::ctl::parse_rfc3339_ms(a.before);
    if (!ms) return usage_error("--before: invalid RFC 3339 time '" + a.before + "' (example: 2024-05-01T12:00:00Z)");
    if (*ms < 0) return usage_error("--before: '" + a.before + "' is before 1970-01-01T00:00:00Z");
    before = *ms;
  }
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->list_delayed(a.topic, before, static_cast<size_t>(a.limit), a.partition);
  if (!r) return broker_error(r.error());
  if (g.json()) {
    for (const auto& m : r->messages) {
      std::string s = "{\"id\":" + json_string(m.id(a.topic)) + ",\"topic\":" + json_string(a.topic) +
                      ",\"partition\":" + std::to_string(m.partition) + ",\"offset\":" + std::to_string(m.offset) +
                      ",\"key\":" + optional_json(m.key) +
                      ",\"due_time\":" + json_string(ferry::ctl::format_rfc3339_ms(m.due_time_ms)) +
                      ",\"due_time_ms\":" + std::to_string(m.due_time_ms) +
                      ",\"append_time_ms\":" + std::to_string(m.append_time_ms) +
                      ",\"value_bytes\":" + std::to_string(m.value_bytes) + "}\n";
      std::fwrite(s.data(), 1, s.size(), stdout);
    }
    return exit_ok;
  }
  const int64_t now = now_ms();
  if (!r->messages.empty()) {
    ferry::ctl::table t({"ID", "KEY", "DUE", "IN", "APPENDED", "VALUE-BYTES"});
    for (const auto& m : r->messages)
      t.add({m.id(a.topic), cell(m.key), ferry::ctl::format_rfc3339_ms(m.due_time_ms),
             ferry::ctl::format_time_left_ms(m.due_time_ms - now), ferry::ctl::format_rfc3339_ms(m.append_time_ms),
             std::to_string(m.value_bytes)});
    std::printf("%s", t.str().c_str());
  }
  std::string where = a.partition ? a.topic + "/" + std::to_string(*a.partition) : "topic " + a.topic;
  std::string shown;
  if (static_cast<int64_t>(r->messages.size()) < r->pending)
    shown = " (" + std::to_string(r->messages.size()) + " shown" +
            (before ? std::string(" due before ") + ferry::ctl::format_rfc3339_ms(*before) : std::string()) + ")";
  std::printf("%" PRId64 " delayed message%s pending in %s%s\n", r->pending, r->pending == 1 ? "" : "s", where.c_str(),
              shown.c_str());
  return exit_ok;
}

}  // namespace

int checked_main(int argc, char** argv) {
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
  tcreate->add_option("--partitions", tc.partitions, "number of partitions")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  tcreate->add_option("--replication", tc.replication, "replication factor")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  tcreate->add_option("--retention", tc.retention,
                      "keep messages this long (500ms, 30s, 15m, 2h, 7d; default: broker's)");
  tcreate->add_option("--retention-bytes", tc.retention_bytes,
                      "keep at most this many bytes per partition (-1: no limit)");
  tcreate->add_option("--segment-bytes", tc.segment_bytes, "roll segments at this size (0: broker default)");
  tcreate->add_option("--max-delay", tc.max_delay,
                      "longest delivery delay the topic accepts (15m, 2h, 30d; default: broker's, 365d)");
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
  auto* delay = prod->add_option("--delay", pa.delay,
                                 "deliver after this delay (500ms, 30s, 15m, 2h, 7d), measured by the broker's clock "
                                 "from when it stores the message");
  auto* at = prod->add_option("--at", pa.at,
                              "deliver at this RFC 3339 time, e.g. 2024-05-01T12:00:00Z (a past time: at once)");
  delay->excludes(at);
  prod->add_option("--value", pa.value, "the message value (else: one message per stdin line)");

  read_args ra;
  auto* rd = app.add_subcommand("read", "read the raw log (no acknowledgements)");
  rd->add_option("TOPIC", ra.topic, "topic name")->required();
  rd->add_option("--partition", ra.partition, "only this partition (default: every partition)")
      ->check(CLI::NonNegativeNumber);
  auto* off = rd->add_option("--offset", ra.offset, "start at this offset")->check(CLI::NonNegativeNumber);
  auto* beg = rd->add_flag("--from-beginning", ra.from_beginning, "start at the earliest retained offset");
  off->excludes(beg);
  rd->add_option("--count", ra.count, "stop after this many messages")->check(CLI::NonNegativeNumber);
  rd->add_flag("--follow", ra.follow, "keep waiting for new messages (default: stop at the current end)");

  auto* sub =
      app.add_subcommand("sub", "subscriptions: create, list, describe (lag, in flight, members), seek, delete");
  sub->require_subcommand(1);
  sub_create_args sc;
  auto* screate = sub->add_subcommand("create", "create a subscription (a durable consumer group) on a topic");
  screate->add_option("TOPIC", sc.topic, "topic name")->required();
  screate->add_option("SUB", sc.sub, "subscription name")->required();
  screate->add_option("--from", sc.from, "where the subscription starts: earliest retained message or latest (default)")
      ->check(CLI::IsMember({"earliest", "latest"}));
  screate->add_option("--ack-timeout", sc.ack_timeout, "lease of a delivery before it is redelivered (default: 30s)");
  screate
      ->add_option("--max-deliveries", sc.max_deliveries,
                   "deliveries before a message goes to the dead-letter topic (default: 10; 0: never)")
      ->check(CLI::NonNegativeNumber);
  screate
      ->add_option("--ordered", sc.ordered,
                   "ordered keys: a key's next message waits for the ack of the previous (default: true)")
      ->check(CLI::IsMember({"true", "false"}));
  screate->add_option("--backoff", sc.backoff, "redelivery delay after a failure: exponential (default) or fixed")
      ->check(CLI::IsMember({"exponential", "fixed"}));
  screate->add_option("--backoff-initial", sc.backoff_initial, "delay after the first failed delivery (default: 1s)");
  screate->add_option("--backoff-max", sc.backoff_max, "cap of the exponential backoff (default: 60s)");
  screate->add_option("--dead-letter-topic", sc.dead_letter_topic, "dead-letter topic (default: TOPIC.SUB.dlq)");
  std::string sub_topic, sub_name;
  auto* slist = sub->add_subcommand("list", "list subscriptions with members, lag and messages in flight");
  slist->add_option("TOPIC", sub_topic, "only this topic's (default: every topic's)");
  auto* sdescribe =
      sub->add_subcommand("describe", "configuration, per-partition progress and members of a subscription");
  sdescribe->add_option("TOPIC", sub_topic, "topic name")->required();
  sdescribe->add_option("SUB", sub_name, "subscription name")->required();
  auto* sdelete = sub->add_subcommand("delete", "delete a subscription and its progress");
  sdelete->add_option("TOPIC", sub_topic, "topic name")->required();
  sdelete->add_option("SUB", sub_name, "subscription name")->required();
  sub_seek_args ss;
  auto* sseek = sub->add_subcommand("seek", "move a subscription's cursor: below it counts as acked, above it as not");
  sseek->add_option("TOPIC", ss.topic, "topic name")->required();
  sseek->add_option("SUB", ss.sub, "subscription name")->required();
  sseek->add_option("--to", ss.to, "earliest, latest, an RFC 3339 time (first message at or after it) or an offset")
      ->required();
  sseek->add_option("--partition", ss.partition, "only this partition (default: every partition)")
      ->check(CLI::NonNegativeNumber);
  sseek->add_flag("--dry-run", ss.dry_run, "show what would move; change nothing");

  consume_args ca;
  auto* cons = app.add_subcommand("consume", "receive messages as a member of a subscription and ack them");
  cons->add_option("TOPIC", ca.topic, "topic name")->required();
  cons->add_option("--sub", ca.sub, "subscription name")->required();
  cons->add_option("--count", ca.count, "stop after this many messages")->check(CLI::NonNegativeNumber);
  auto* nack = cons->add_flag("--nack", ca.nack, "nack each message instead: it is redelivered after the backoff");
  cons->add_option("--nack-delay", ca.nack_delay,
                   "with --nack: redeliver after this delay (default: the subscription's backoff)")
      ->needs(nack);
  cons->add_flag("--no-ack", ca.no_ack, "neither ack nor nack: only look (the leases end when ferryctl leaves)")
      ->excludes(nack);
  cons->add_option("--wait", ca.wait, "exit when no message arrived for this long")->capture_default_str();
  cons->add_option("--member", ca.member, "member name shown by sub describe (default: host and pid)");

  auto* dlq = app.add_subcommand("dlq", "dead letters of a subscription: list, replay");
  dlq->require_subcommand(1);
  dlq_list_args dl;
  auto* dlist =
      dlq->add_subcommand("list", "list the dead letters of a subscription (its dead-letter topic, from the start)");
  dlist->add_option("TOPIC", dl.topic, "topic name")->required();
  dlist->add_option("SUB", dl.sub, "subscription name")->required();
  dlist->add_option("--count", dl.count, "at most this many")->check(CLI::NonNegativeNumber);
  dlq_replay_args dr;
  auto* dreplay =
      dlq->add_subcommand("replay", "publish dead letters again to their original topic (without ferry-dlq-* headers)");
  dreplay->add_option("TOPIC", dr.topic, "topic name")->required();
  dreplay->add_option("SUB", dr.sub, "subscription name")->required();
  dreplay->add_option("--offset", dr.offsets, "a dead letter by its DLQ-PARTITION/OFFSET (repeatable)")
      ->allow_extra_args(false);
  dreplay
      ->add_option("--original-id", dr.original_ids,
                   "a dead letter by its original id TOPIC/PARTITION/OFFSET (repeatable)")
      ->allow_extra_args(false);
  dreplay->add_flag("--all", dr.all, "every dead letter of the subscription");
  dreplay->add_flag("--dry-run", dr.dry_run, "show what would be replayed; publish nothing");

  auto* msg = app.add_subcommand("msg", "single messages by id: cancel a delayed message");
  msg->require_subcommand(1);
  std::string msg_id;
  auto* mcancel = msg->add_subcommand(
      "cancel", "cancel a delayed message before it is due (exit status 0 only if it was cancelled)");
  mcancel->add_option("ID", msg_id, "the message's id TOPIC/PARTITION/OFFSET, as produce printed it")->required();

  auto* delayed = app.add_subcommand("delayed", "delayed messages not yet due: list");
  delayed->require_subcommand(1);
  delayed_list_args dll;
  auto* dllist = delayed->add_subcommand("list", "list a topic's delayed messages not yet due, earliest first");
  dllist->add_option("TOPIC", dll.topic, "topic name")->required();
  dllist->add_option("--before", dll.before, "only those due before this RFC 3339 time, e.g. 2024-05-01T12:00:00Z");
  dllist->add_option("--limit", dll.limit, "at most this many (1..10000)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{10000}));
  dllist->add_option("--partition", dll.partition, "only this partition (default: every partition)")
      ->check(CLI::NonNegativeNumber);

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
  if (screate->parsed()) return sub_create(g, sc);
  if (slist->parsed()) return sub_list(g, sub_topic);
  if (sdescribe->parsed()) return sub_describe(g, sub_topic, sub_name);
  if (sdelete->parsed()) return sub_delete(g, sub_topic, sub_name);
  if (sseek->parsed()) return sub_seek(g, ss);
  if (cons->parsed()) return consume(g, ca);
  if (dlist->parsed()) return dlq_list(g, dl);
  if (dreplay->parsed()) return dlq_replay(g, dr);
  if (mcancel->parsed()) return msg_cancel(g, msg_id);
  if (dllist->parsed()) return delayed_list(g, dll);
  return usage_error("nothing to do");
}

int main(int argc, char** argv) { return ferry::guarded_main("ferryctl", checked_main, argc, argv); }
