// ferryctl read: the raw log of a topic (every partition, or one), from an offset, the beginning
// or the end; up to the end as of the start, or following it.
#include <cstdio>
#include <thread>

#include "client/ferryctl/commands.h"
#include "client/ferryctl/format.h"

namespace ferry::ctl {
namespace {

void print_message(const globals& g, const fc::received_message& m) {
  if (g.json()) {
    json j = message_json(m);
    if (m.deliver_at_ms) j["deliver_at"] = *m.deliver_at_ms;
    print_json(j);
    return;
  }
  std::string headers = headers_text(m.headers);
  std::string extra;
  if (m.deliver_at_ms) extra += "  deliver_at=" + format_rfc3339_ms(*m.deliver_at_ms);
  if (!headers.empty()) extra += "  headers=" + headers;
  std::printf("%-22s  %-24s  %-12s  %s%s\n", m.id().c_str(), format_rfc3339_ms(m.timestamp_ms).c_str(),
              cell(m.key).c_str(), cell(m.value).c_str(), extra.c_str());
}

}  // namespace

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

}  // namespace ferry::ctl
