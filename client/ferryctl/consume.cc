// ferryctl consume: a member of a subscription that prints what it is given and acks, nacks or
// leaves each message, until --count messages or --wait without one.
#include <cstdio>
#include <mutex>

#include "client/ferryctl/commands.h"
#include "client/ferryctl/format.h"

namespace ferry::ctl {
namespace {

void print_delivery(const globals& g, const fc::delivery& d) {
  if (g.json()) {
    json j = message_json(d);
    j["delivery_count"] = d.delivery_count;
    if (d.deliver_at_ms) j["deliver_at"] = *d.deliver_at_ms;
    print_json(j);
    return;
  }
  std::string extra;
  if (d.deliver_at_ms) extra += "  deliver_at=" + format_rfc3339_ms(*d.deliver_at_ms);
  std::string headers = headers_text(d.headers);
  if (!headers.empty()) extra += "  headers=" + headers;
  std::printf("%-22s  %-8d  %-24s  %-12s  %s%s\n", d.id().c_str(), d.delivery_count,
              format_rfc3339_ms(d.timestamp_ms).c_str(), cell(d.key).c_str(), cell(d.value).c_str(), extra.c_str());
}

}  // namespace

int consume(const globals& g, const consume_args& a) {
  auto wait = parse_duration_ms(a.wait);
  if (!wait) return usage_error("--wait: invalid duration '" + a.wait + "' (examples: 500ms, 30s, 15m, 2h, 7d)");
  std::optional<std::chrono::milliseconds> nack_delay;
  if (!a.nack_delay.empty()) {
    auto ms = parse_duration_ms(a.nack_delay);
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

}  // namespace ferry::ctl
