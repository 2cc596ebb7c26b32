// ferryctl dlq list | replay: a subscription's dead letters, through the client library's
// dead-letter functions (ferry/client/dlq.h).
#include <cstdio>

#include "client/ferryctl/commands.h"
#include "client/ferryctl/format.h"
#include "ferry/client/dlq.h"

namespace ferry::ctl {

int dlq_list(const globals& g, const dlq_list_args& a) {
  std::optional<size_t> limit;
  if (a.count) limit = static_cast<size_t>(*a.count);
  auto found = fc::list_dead_letters(g.client(), a.topic, a.sub, limit);
  if (!found) return broker_error(found.error());
  if (g.json()) {
    for (const auto& d : *found) {
      json j;
      j["dlq_id"] = json_text(d.message.id());
      j["topic"] = json_text(d.message.topic);
      j["partition"] = d.message.partition;
      j["offset"] = d.message.offset;
      j["original_id"] = d.original_id.empty() ? json(nullptr) : json_text(d.original_id);
      j["subscription"] = json_text(d.subscription.empty() ? a.sub : d.subscription);
      j["delivery_count"] = d.delivery_count ? json(*d.delivery_count) : json(nullptr);
      j["reason"] = json_text(d.reason);
      j["time"] = d.time_ms ? json(*d.time_ms) : json(nullptr);
      j["key"] = json_text_or_null(d.message.key);
      j["value"] = json_text_or_null(d.message.value);
      j["headers"] = headers_json(d.message.headers);
      j["timestamp"] = d.message.timestamp_ms;
      print_json(j);
    }
    return exit_ok;
  }
  if (found->empty()) return exit_ok;
  table t({"DLQ-ID", "ORIGINAL-ID", "DELIVERIES", "REASON", "TIME", "KEY", "VALUE"});
  for (const auto& d : *found)
    t.add({d.message.id(), d.original_id.empty() ? "-" : printable(d.original_id),
           d.delivery_count ? std::to_string(*d.delivery_count) : "-", d.reason.empty() ? "-" : printable(d.reason),
           d.time_ms ? format_rfc3339_ms(*d.time_ms) : "-", cell(d.message.key), cell(d.message.value)});
  std::printf("%s", t.str().c_str());
  return exit_ok;
}

int dlq_replay(const globals& g, const dlq_replay_args& a) {
  if (!a.all && a.offsets.empty() && a.original_ids.empty())
    return usage_error("dlq replay: choose dead letters with --offset, --original-id or --all");
  if (a.all && (!a.offsets.empty() || !a.original_ids.empty()))
    return usage_error("dlq replay: --all cannot be combined with --offset or --original-id");
  fc::replay_selection sel;
  sel.all = a.all;
  for (const auto& s : a.offsets) {
    auto po = parse_partition_offset(s);
    if (!po)
      return usage_error("--offset: expected DLQ-PARTITION/OFFSET (as in the DLQ-ID of dlq list), got '" + s + "'");
    sel.positions.push_back(*po);
  }
  for (const auto& s : a.original_ids) {
    auto id = fc::parse_message_id(s);
    if (!id) return usage_error("--original-id: " + id.error().message);
    sel.original_ids.push_back(*id);
  }
  auto plan = fc::plan_replay(g.client(), a.topic, a.sub, sel);
  if (!plan) return broker_error(plan.error());
  if (!plan->not_found.empty()) {
    for (const auto& e : plan->not_found) broker_error(e);
    return exit_broker;
  }
  const auto& letters = plan->letters;
  if (a.dry_run) {
    for (size_t i = 0; i < letters.size(); ++i) {
      if (g.json()) {
        json j;
        j["dlq_id"] = json_text(letters[i].message.id());
        j["original_id"] = json_text(letters[i].original_id);
        j["topic"] = json_text(plan->targets[i].topic);
        j["dry_run"] = true;
        print_json(j);
      } else {
        std::printf("would replay %s (%s) to %s\n", letters[i].message.id().c_str(), letters[i].original_id.c_str(),
                    plan->targets[i].topic.c_str());
      }
    }
    if (!g.json()) std::printf("dry run: nothing published\n");
    return exit_ok;
  }
  if (letters.empty()) return exit_ok;

  fc::producer_options o;
  o.bootstrap = g.bootstrap;
  o.linger = std::chrono::milliseconds(5);
  o.delivery_timeout = std::chrono::seconds(15);
  auto prod = fc::producer::create(o);
  if (!prod) return broker_error(prod.error());
  auto ids = fc::replay(**prod, *plan, o.delivery_timeout + o.request_timeout);
  (*prod)->close();
  bool failed = false;
  table t({"DLQ-ID", "ORIGINAL-ID", "NEW-ID"});
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& res = ids[i];
    if (!res) {
      std::fprintf(stderr, "error: %s: replaying %s: %s\n", std::string(ferry::errc_name(res.error().code)).c_str(),
                   letters[i].message.id().c_str(), res.error().message.c_str());
      failed = true;
      continue;
    }
    if (g.json()) {
      json j;
      j["dlq_id"] = json_text(letters[i].message.id());
      j["original_id"] = json_text(letters[i].original_id);
      j["new_id"] = json_text(res->to_string());
      print_json(j);
    } else {
      t.add({letters[i].message.id(), letters[i].original_id, res->to_string()});
    }
  }
  if (!g.json()) std::printf("%s", t.str().c_str());
  std::fflush(stdout);
  return failed ? exit_broker : exit_ok;
}

}  // namespace ferry::ctl
