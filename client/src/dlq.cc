// Dead letters: reading a subscription's dead-letter topic and replaying chosen ones (dlq.h).
// Built on the public admin, reader and producer only.
#include "ferry/client/dlq.h"

#include <charconv>
#include <map>
#include <set>

#include "schema/record_batch.h"

namespace ferry::client {
namespace {

// A non-negative decimal integer and nothing else around it.
std::optional<int64_t> decimal(std::string_view s) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return std::nullopt;
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// Every message of every partition of `topic`, from the log start to the high-water mark as of
// the call, partition by partition, until `fn` returns false. unknown_topic if there is none.
template <class Fn>
result<void> read_all(const client_options& opts, const std::string& topic, Fn&& fn) {
  auto adm = admin::create(opts);
  if (!adm) return adm.error();
  auto d = (*adm)->describe_topic(topic);
  if (!d) return d.error();
  for (const auto& p : d->partitions) {
    if (p.high_watermark <= p.log_start_offset) continue;
    auto r = reader::create(opts, topic, p.partition, reader::earliest);
    if (!r) return r.error();
    int idle = 0;
    while ((*r)->position() < p.high_watermark) {
      int64_t before = (*r)->position();
      auto msgs = (*r)->poll(std::chrono::milliseconds(idle > 0 ? 500 : 0));
      if (!msgs) return msgs.error();
      // Nothing new and no progress: what was there is no longer readable (deleted by retention
      // meanwhile). A poll that only moved past control batches returns nothing but is progress.
      if ((*r)->position() > before)
        idle = 0;
      else if (msgs->empty() && ++idle > 4)
        break;
      for (auto& m : *msgs) {
        if (m.offset >= p.high_watermark) break;
        if (!fn(m)) return {};
      }
    }
  }
  return {};
}

}  // namespace

bool is_dlq_header(std::string_view key) noexcept { return key.starts_with(dlq_header_prefix); }

dead_letter to_dead_letter(received_message m) {
  dead_letter d;
  for (const auto& h : m.headers) {
    if (!h.value) continue;
    if (h.key == dlq_original_id_header)
      d.original_id = *h.value;
    else if (h.key == dlq_subscription_header)
      d.subscription = *h.value;
    else if (h.key == dlq_delivery_count_header)
      d.delivery_count = decimal(*h.value);
    else if (h.key == dlq_reason_header)
      d.reason = *h.value;
    else if (h.key == dlq_time_header)
      d.time_ms = decimal(*h.value);
  }
  d.message = std::move(m);
  return d;
}

bool of_subscription(const dead_letter& d, std::string_view topic, std::string_view sub) {
  return d.subscription.empty() || d.subscription == sub ||
         d.subscription == std::string(topic) + "/" + std::string(sub);
}

std::string dead_letter_topic_of(const std::string& topic, const std::string& sub, const subscription_config& c) {
  return c.dead_letter_topic.empty() ? topic + "." + sub + ".dlq" : c.dead_letter_topic;
}

result<std::string> find_dead_letter_topic(admin& a, const std::string& topic, const std::string& sub) {
  auto d = a.describe_subscription(topic, sub);
  if (!d) return d.error();
  return dead_letter_topic_of(topic, sub, d->config);
}

result<std::vector<dead_letter>> list_dead_letters(const client_options& opts, const std::string& topic,
                                                   const std::string& sub, std::optional<size_t> limit) {
  auto adm = admin::create(opts);
  if (!adm) return adm.error();
  auto dlq = find_dead_letter_topic(**adm, topic, sub);
  if (!dlq) return dlq.error();
  std::vector<dead_letter> found;
  auto r = read_all(opts, *dlq, [&](received_message& m) {
    if (limit && found.size() >= *limit) return false;
    auto d = to_dead_letter(std::move(m));
    if (of_subscription(d, topic, sub)) found.push_back(std::move(d));
    return true;
  });
  // No dead-letter topic yet: nothing was ever dead-lettered.
  if (!r && r.error().code != errc::unknown_topic) return r.error();
  return found;
}

result<replay_plan> plan_replay(const client_options& opts, const std::string& topic, const std::string& sub,
                                const replay_selection& sel) {
  if (!sel.all && sel.positions.empty() && sel.original_ids.empty())
    return fail(errc::invalid_argument, "choose dead letters by position, by original id or all");
  if (sel.all && (!sel.positions.empty() || !sel.original_ids.empty()))
    return fail(errc::invalid_argument, "all dead letters cannot be combined with positions or original ids");
  const std::set<std::pair<int32_t, int64_t>> want_positions(sel.positions.begin(), sel.positions.end());
  std::set<std::string> want_ids;
  for (const auto& id : sel.original_ids) want_ids.insert(id.to_string());

  auto adm = admin::create(opts);
  if (!adm) return adm.error();
  replay_plan plan;
  auto dlq = find_dead_letter_topic(**adm, topic, sub);
  if (!dlq) return dlq.error();
  plan.dead_letter_topic = *dlq;
  std::set<std::pair<int32_t, int64_t>> found_positions;
  std::set<std::string> found_ids;
  auto r = read_all(opts, *dlq, [&](received_message& m) {
    auto d = to_dead_letter(std::move(m));
    if (!of_subscription(d, topic, sub)) return true;
    bool by_position = want_positions.count({d.message.partition, d.message.offset}) > 0;
    bool by_id = !d.original_id.empty() && want_ids.count(d.original_id) > 0;
    if (!sel.all && !by_position && !by_id) return true;
    if (by_position) found_positions.insert({d.message.partition, d.message.offset});
    if (by_id) found_ids.insert(d.original_id);
    plan.letters.push_back(std::move(d));
    return true;
  });
  if (!r && r.error().code != errc::unknown_topic) return r.error();

  // Every selector must name something; nothing is replayed otherwise.
  auto not_found = [&](const std::string& what) {
    plan.not_found.push_back(fail(errc::unknown_message, "no dead letter " + what + " of subscription '" + sub + "'"));
  };
  for (const auto& [p, o] : want_positions)
    if (!found_positions.count({p, o})) not_found(*dlq + "/" + std::to_string(p) + "/" + std::to_string(o));
  for (const auto& id : want_ids)
    if (!found_ids.count(id)) not_found("with original id " + id + " in '" + *dlq + "'");
  if (!plan.not_found.empty()) {
    plan.letters.clear();
    return plan;
  }
  for (const auto& d : plan.letters) {
    auto id = parse_message_id(d.original_id);
    if (!id)
      return fail(errc::invalid_argument, "dead letter " + d.message.id() +
                                              " has no usable ferry-dlq-original-id header ('" + d.original_id +
                                              "'): cannot tell where it came from");
    plan.targets.push_back(std::move(*id));
  }
  return plan;
}

message replay_message(const dead_letter& d, const message_id& target) {
  message m;
  m.key = d.message.key;
  m.value = d.message.value.value_or("");
  // The broker's own headers (ferry-dlq-*, ferry-delayed-id) stay behind: producers may not set
  // them. The replayed message says which dead letter it came from.
  for (const auto& h : d.message.headers)
    if (!wire::is_reserved_header(h.key)) m.headers.emplace_back(h.key, h.value.value_or(""));
  m.headers.emplace_back(std::string(replayed_from_header), d.message.id());
  // A keyed message finds its partition by key, as any publish; a keyless one goes back where it was.
  if (!m.key) m.partition = target.partition;
  return m;
}

std::vector<result<message_id>> replay(producer& p, const replay_plan& plan, std::chrono::milliseconds timeout) {
  std::vector<result<message_id>> out;
  if (!plan.not_found.empty() || plan.targets.size() != plan.letters.size()) {
    for (size_t i = 0; i < plan.letters.size(); ++i)
      out.emplace_back(fail(errc::invalid_argument, "the replay plan is incomplete: nothing was published"));
    return out;
  }
  std::vector<std::future<result<message_id>>> acks;
  acks.reserve(plan.letters.size());
  for (size_t i = 0; i < plan.letters.size(); ++i)
    acks.push_back(p.send(plan.targets[i].topic, replay_message(plan.letters[i], plan.targets[i])));
  auto fl = p.flush(timeout);
  for (auto& f : acks) {
    if (f.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
      out.push_back(f.get());
    else
      out.emplace_back(fl ? fail(errc::timeout, "not acknowledged in time") : result<message_id>(fl.error()));
  }
  return out;
}

}  // namespace ferry::client
