// ferryctl sub create | list | describe | delete | seek.
#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "client/ferryctl/commands.h"
#include "client/ferryctl/format.h"
#include "ferry/client/dlq.h"

namespace ferry::ctl {
namespace {

int64_t ms_or(const std::optional<std::chrono::milliseconds>& v) { return v ? v->count() : -1; }

json sub_config_json(const std::string& topic, const std::string& sub, const fc::subscription_config& c) {
  auto dur = [](const std::optional<std::chrono::milliseconds>& d) { return d ? json(d->count()) : json(nullptr); };
  json j;
  j["start"] = c.start == fc::start_position::earliest ? "earliest" : "latest";
  j["ack_timeout_ms"] = dur(c.ack_timeout);
  j["max_deliveries"] = c.max_deliveries ? json(*c.max_deliveries) : json(nullptr);
  j["ordered"] = c.ordered;
  j["backoff"] = c.backoff == fc::backoff_kind::fixed ? "fixed" : "exponential";
  j["backoff_initial_ms"] = dur(c.backoff_initial);
  j["backoff_max_ms"] = dur(c.backoff_max);
  j["dead_letter_topic"] = json_text(fc::dead_letter_topic_of(topic, sub, c));
  return j;
}

std::string sub_config_table(const std::string& topic, const std::string& sub, const fc::subscription_config& c) {
  table t({"SETTING", "VALUE"});
  t.add({"start", c.start == fc::start_position::earliest ? "earliest" : "latest"});
  t.add({"ack.timeout", duration_text(ms_or(c.ack_timeout))});
  t.add({"max.deliveries", !c.max_deliveries        ? "default"
                           : *c.max_deliveries == 0 ? "0 (never dead-letter)"
                                                    : std::to_string(*c.max_deliveries)});
  t.add({"ordered", c.ordered ? "true (ordered keys)" : "false"});
  t.add({"backoff", c.backoff == fc::backoff_kind::fixed ? "fixed" : "exponential"});
  t.add({"backoff.initial", duration_text(ms_or(c.backoff_initial))});
  t.add({"backoff.max", duration_text(ms_or(c.backoff_max))});
  t.add({"dead.letter.topic", fc::dead_letter_topic_of(topic, sub, c)});
  return t.str();
}

}  // namespace

int sub_create(const globals& g, const sub_create_args& a) {
  fc::subscription_config cfg;
  cfg.start = a.from == "earliest" ? fc::start_position::earliest : fc::start_position::latest;
  auto duration = [](const std::string& flag, const std::string& text,
                     std::optional<std::chrono::milliseconds>& out) -> std::optional<int> {
    if (text.empty()) return std::nullopt;
    auto ms = parse_duration_ms(text);
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
  if (g.json()) {
    json j;
    j["topic"] = json_text(a.topic);
    j["name"] = json_text(a.sub);
    j["config"] = sub_config_json(a.topic, a.sub, *r);
    print_json(j);
  } else {
    std::printf("created subscription %s on topic %s\n%s", a.sub.c_str(), a.topic.c_str(),
                sub_config_table(a.topic, a.sub, *r).c_str());
  }
  return exit_ok;
}

int sub_list(const globals& g, const std::string& topic) {
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->list_subscriptions(topic);
  if (!r) return broker_error(r.error());
  if (g.json()) {
    json subs = json::array();
    for (const auto& x : *r) {
      json e;
      e["topic"] = json_text(x.topic);
      e["name"] = json_text(x.name);
      e["members"] = x.members;
      e["backlog"] = x.backlog;
      e["in_flight"] = x.in_flight;
      subs.push_back(std::move(e));
    }
    json j;
    j["subscriptions"] = std::move(subs);
    print_json(j);
  } else {
    table t({"TOPIC", "SUBSCRIPTION", "MEMBERS", "LAG", "IN-FLIGHT"});
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
  if (g.json()) {
    json deleted;
    deleted["topic"] = json_text(topic);
    deleted["name"] = json_text(sub);
    json j;
    j["deleted"] = std::move(deleted);
    print_json(j);
  } else {
    std::printf("deleted subscription %s of topic %s\n", sub.c_str(), topic.c_str());
  }
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
    auto age = [&](int64_t t) { return t < 0 ? json(nullptr) : json(std::max<int64_t>(now - t, 0)); };
    auto add_counts = [&](json& j, const fc::subscription_partition_state& p) {
      j["backlog"] = p.backlog;
      j["in_flight"] = p.in_flight;
      j["acked_above_cursor"] = p.acked_above_cursor;
      j["redeliveries"] = p.redeliveries;
      j["dead_lettered"] = p.dead_lettered;
      j["expired"] = p.expired;
      j["oldest_unacked_time"] = p.oldest_unacked_time_ms;
      j["oldest_unacked_age_ms"] = age(p.oldest_unacked_time_ms);
      j["delayed_pending"] = p.delayed_pending;
      j["next_due_time"] = p.next_due_time_ms;
    };
    json parts = json::array();
    for (const auto& p : r->partitions) {
      json e;
      e["partition"] = p.partition;
      e["cursor"] = p.cursor;
      e["log_start_offset"] = p.log_start_offset;
      e["high_watermark"] = p.high_watermark;
      add_counts(e, p);
      parts.push_back(std::move(e));
    }
    json totals = json::object();
    add_counts(totals, total);
    json members = json::array();
    for (const auto& m : r->members) {
      json e;
      e["member_id"] = m.member_id;
      e["name"] = json_text(m.name);
      e["peer"] = json_text(m.peer);
      e["in_flight"] = m.in_flight;
      e["credit_messages"] = m.credit_messages;
      members.push_back(std::move(e));
    }
    json j;
    j["topic"] = json_text(r->topic);
    j["name"] = json_text(r->name);
    j["config"] = sub_config_json(r->topic, r->name, r->config);
    j["partitions"] = std::move(parts);
    j["total"] = std::move(totals);
    j["members"] = std::move(members);
    print_json(j);
    return exit_ok;
  }
  std::printf("subscription %s of topic %s\n%s\n", r->name.c_str(), r->topic.c_str(),
              sub_config_table(r->topic, r->name, r->config).c_str());
  auto oldest = [&](int64_t t) { return t < 0 ? std::string("-") : format_age_ms(now - t); };
  auto due = [](int64_t t) { return t < 0 ? std::string("-") : format_rfc3339_ms(t); };
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
  table t({"PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "IN-FLIGHT", "ACKED-AHEAD", "REDELIVERED",
           "DEAD-LETTERED", "EXPIRED", "OLDEST-UNACKED", "DELAYED", "NEXT-DUE"});
  for (const auto& p : r->partitions)
    t.add(row(std::to_string(p.partition), std::to_string(p.cursor), std::to_string(p.high_watermark), p));
  t.add(row("TOTAL", "-", "-", total));
  std::printf("%s\n", t.str().c_str());
  if (r->members.empty()) {
    std::printf("no members\n");
  } else {
    table m({"MEMBER-ID", "NAME", "HOST", "IN-FLIGHT", "CREDIT"});
    for (const auto& x : r->members)
      m.add({std::to_string(x.member_id), printable(x.name), printable(x.peer), std::to_string(x.in_flight),
             std::to_string(x.credit_messages)});
    std::printf("%s", m.str().c_str());
  }
  return exit_ok;
}

int sub_seek(const globals& g, const sub_seek_args& a) {
  auto to = parse_seek_to(a.to);
  if (!to)
    return usage_error("--to: expected earliest, latest, an RFC 3339 time (2024-05-01T12:00:00Z) or an offset, got '" +
                       a.to + "'");
  fc::seek_target target = fc::seek_target::earliest;
  switch (to->what) {
    case seek_to::kind::earliest:
      target = fc::seek_target::earliest;
      break;
    case seek_to::kind::latest:
      target = fc::seek_target::latest;
      break;
    case seek_to::kind::time:
      target = fc::seek_target::time;
      break;
    case seek_to::kind::offset:
      target = fc::seek_target::offset;
      break;
  }
  auto adm = fc::admin::create(g.client());
  if (!adm) return broker_error(adm.error());
  auto r = (*adm)->seek_subscription(a.topic, a.sub, target, to->value, a.partition, a.dry_run);
  if (!r) return broker_error(r.error());
  std::optional<ferry::error> first_error;
  for (const auto& p : *r)
    if (p.error && !first_error) first_error = *p.error;
  if (g.json()) {
    json parts = json::array();
    for (const auto& p : *r) {
      json e;
      e["partition"] = p.partition;
      e["old_cursor"] = p.old_cursor;
      e["new_cursor"] = p.new_cursor;
      e["old_backlog"] = p.old_backlog;
      e["new_backlog"] = p.new_backlog;
      e["error"] = p.error ? error_json(*p.error) : json(nullptr);
      parts.push_back(std::move(e));
    }
    json j;
    j["topic"] = json_text(a.topic);
    j["name"] = json_text(a.sub);
    j["dry_run"] = a.dry_run;
    j["partitions"] = std::move(parts);
    print_json(j);
  } else {
    for (const auto& p : *r) {
      if (p.error) continue;
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

}  // namespace ferry::ctl
