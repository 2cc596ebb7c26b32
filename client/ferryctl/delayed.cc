// ferryctl delayed list: a topic's delayed messages not yet due, earliest first.
#include <cinttypes>
#include <cstdio>

#include "client/ferryctl/commands.h"
#include "client/ferryctl/format.h"

namespace ferry::ctl {

int delayed_list(const globals& g, const delayed_list_args& a) {
  std::optional<int64_t> before;
  if (!a.before.empty()) {
    auto ms = parse_rfc3339_ms(a.before);
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
      json j;
      j["id"] = json_text(m.id(a.topic));
      j["topic"] = json_text(a.topic);
      j["partition"] = m.partition;
      j["offset"] = m.offset;
      j["key"] = json_text_or_null(m.key);
      j["due_time"] = format_rfc3339_ms(m.due_time_ms);
      j["due_time_ms"] = m.due_time_ms;
      j["append_time_ms"] = m.append_time_ms;
      j["value_bytes"] = m.value_bytes;
      print_json(j);
    }
    return exit_ok;
  }
  const int64_t now = now_ms();
  if (!r->messages.empty()) {
    table t({"ID", "KEY", "DUE", "IN", "APPENDED", "VALUE-BYTES"});
    for (const auto& m : r->messages)
      t.add({m.id(a.topic), cell(m.key), format_rfc3339_ms(m.due_time_ms), format_time_left_ms(m.due_time_ms - now),
             format_rfc3339_ms(m.append_time_ms), std::to_string(m.value_bytes)});
    std::printf("%s", t.str().c_str());
  }
  std::string where = a.partition ? a.topic + "/" + std::to_string(*a.partition) : "topic " + a.topic;
  std::string shown;
  if (static_cast<int64_t>(r->messages.size()) < r->pending)
    shown = " (" + std::to_string(r->messages.size()) + " shown" +
            (before ? std::string(" due before ") + format_rfc3339_ms(*before) : std::string()) + ")";
  std::printf("%" PRId64 " delayed message%s pending in %s%s\n", r->pending, r->pending == 1 ? "" : "s", where.c_str(),
              shown.c_str());
  return exit_ok;
}

}  // namespace ferry::ctl
