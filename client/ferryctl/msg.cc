// ferryctl msg cancel: cancel one delayed message by id before it is due.
#include <cstdio>

#include "client/ferryctl/commands.h"
#include "client/ferryctl/format.h"

namespace ferry::ctl {
namespace {

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

}  // namespace

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
    json j;
    j["id"] = json_text(id->to_string());
    j["outcome"] = outcome_name(r->outcome);
    j["message"] = json_text(why);
    print_json(j);
  } else if (r->outcome == fc::cancel_outcome::cancelled) {
    std::printf("cancelled %s\n", id->to_string().c_str());
  } else {
    std::printf("%s: %s\n", r->outcome == fc::cancel_outcome::too_late ? "too late" : "unknown",
                printable(why).c_str());
  }
  // Not a broker error, but not done either: scripts tell the outcomes apart by the exit status
  // (0 cancelled, 1 otherwise) or by "outcome" in JSON.
  return r->outcome == fc::cancel_outcome::cancelled ? exit_ok : exit_broker;
}

}  // namespace ferry::ctl
