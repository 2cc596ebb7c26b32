// ferryctl produce: one message (--value) or one per stdin line, each acknowledged on stdout.
#include <cstdio>
#include <iostream>
#include <mutex>

#include "client/ferryctl/commands.h"
#include "client/ferryctl/format.h"

namespace ferry::ctl {

int produce(const globals& g, const produce_args& a) {
  fc::message proto;
  proto.key = a.key;
  proto.partition = a.partition;
  for (const auto& h : a.headers) {
    auto kv = parse_header(h);
    if (!kv) return usage_error("--header: expected key=value, got '" + h + "'");
    proto.headers.push_back(std::move(*kv));
  }
  if (!a.delay.empty() && !a.at.empty()) return usage_error("--delay and --at cannot be used together");
  if (!a.delay.empty()) {
    auto ms = parse_duration_ms(a.delay);
    if (!ms) return usage_error("--delay: invalid duration '" + a.delay + "' (examples: 500ms, 30s, 15m, 2h, 7d)");
    proto.delay_ms = *ms;
  }
  if (!a.at.empty()) {
    auto ms = parse_rfc3339_ms(a.at);
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
  std::string delay_text;
  if (proto.deliver_at_ms) {
    delay_text = " (deliver at " + format_rfc3339_ms(*proto.deliver_at_ms) + ")";
  } else if (proto.delay_ms) {
    delay_text = *proto.delay_ms == 0 ? std::string(" (due when stored)")
                                      : " (deliver " + duration_text(*proto.delay_ms) + " after it was stored)";
  }
  auto on_ack = [&, json_out = g.json()](const ferry::result<fc::message_id>& r) {
    if (!r) {
      std::lock_guard lk(mu);
      if (!first_error) first_error = r.error();
      ++failed;
      return;
    }
    if (json_out) {
      json j;
      j["topic"] = json_text(r->topic);
      j["partition"] = r->partition;
      j["offset"] = r->offset;
      j["id"] = json_text(r->to_string());
      if (proto.deliver_at_ms)
        j["deliver_at"] = *proto.deliver_at_ms;
      else if (proto.delay_ms)
        j["delay_ms"] = *proto.delay_ms;
      print_json(j);
    } else {
      std::printf("produced %s%s\n", r->to_string().c_str(), delay_text.c_str());
    }
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

}  // namespace ferry::ctl
