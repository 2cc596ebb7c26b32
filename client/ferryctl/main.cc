// ferryctl: Ferry's admin and scripting CLI (DESIGN.md, "Command lines"). This file wires the
// command line (CLI11) to the commands, one file per noun (commands.h).
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
// 2 usage error ("error: <what is wrong>" on stderr: a number outside its range names the range,
// e.g. "--partitions must be between 1 and 10000, got 0"; an unknown or missing verb names the
// verbs there are). --output json prints one JSON document per command, or JSON lines for streams
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
// with their key, value and headers minus the broker's ferry-dlq-* headers (ferry/client/dlq.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <limits>
#include <map>

#include "client/ferryctl/commands.h"
#include "client/ferryctl/format.h"
#include "schema/main_guard.h"

namespace ctl = ferry::ctl;

namespace {

// ---- argument checks --------------------------------------------------------------------------
// CLI11 reports a failed check as "NAME: MESSAGE"; describe_parse_error() turns that into
// "NAME MESSAGE", so these messages continue the option's name ("--partitions must be ...").

// A whole number from `lo` to `hi` for an option of type T (no bound given: T's own).
template <class T>
CLI::Validator whole_number(int64_t lo = std::numeric_limits<T>::min(), int64_t hi = std::numeric_limits<T>::max()) {
  constexpr int64_t type_min = std::numeric_limits<T>::min();
  constexpr int64_t type_max = std::numeric_limits<T>::max();
  std::string desc = lo <= type_min && hi >= type_max ? ""
                     : hi >= type_max                 ? std::to_string(lo) + ".."
                                                      : std::to_string(lo) + ".." + std::to_string(hi);
  return CLI::Validator(
      [lo, hi](std::string& text) { return ctl::whole_number_problem(text, lo, hi, type_min, type_max).value_or(""); },
      desc);
}

CLI::Validator one_of(const std::vector<std::string>& choices) {
  std::string desc = "{" + ctl::one_of_text(choices) + "}";
  return CLI::Validator([choices](std::string& text) { return ctl::choice_problem(text, choices).value_or(""); }, desc);
}

// ---- nouns and verbs --------------------------------------------------------------------------

// "topic create": the names of the selected subcommands, outermost first.
std::string command_path(const CLI::App& app) {
  std::string path;
  for (const CLI::App* a = &app;;) {
    auto selected = a->get_subcommands();
    if (selected.empty()) return path;
    a = selected.front();
    if (!path.empty()) path += " ";
    path += a->get_name();
  }
}

std::vector<std::string> names_of(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) out.push_back(s->get_name());
  return out;
}

std::string list_text(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The noun selected on the command line, or null.
CLI::App* selected_noun(CLI::App& app) {
  auto s = app.get_subcommands();
  return s.empty() ? nullptr : s.front();
}

// A noun that has verbs but none was given or it was not one of them: the error, else nullopt.
std::optional<std::string> verb_problem(CLI::App& noun, const std::vector<std::string>& extras) {
  if (noun.get_subcommands([](const CLI::App*) { return true; }).empty()) return std::nullopt;  // no verbs
  if (!noun.get_subcommands().empty()) return std::nullopt;                                     // one was given
  const std::string verbs = list_text(names_of(noun));
  for (const auto& e : extras)
    if (!e.empty() && e[0] != '-') {
      std::string problem = noun.get_name();
      problem += ": unknown verb '";
      problem += e;
      problem += "'; one of: ";
      problem += verbs;
      return problem;
    }
  return noun.get_name() + ": missing verb; one of: " + verbs;
}

// Everything CLI11 could not place, from every level.
std::vector<std::string> extras_of(const CLI::App& app) { return app.remaining(true); }

// A CLI11 parse error in words (see the file comment).
std::string describe_parse_error(CLI::App& app, const CLI::ParseError& e) {
  std::string what = e.what();
  const std::string path = command_path(app);
  const std::string where = path.empty() ? "" : path + ": ";
  if (dynamic_cast<const CLI::ValidationError*>(&e) != nullptr) {
    // "--partitions: must be between ..." -> "--partitions must be between ..."
    if (auto colon = what.find(": "); colon != std::string::npos) what.replace(colon, 2, " ");
    return what;
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    auto extras = extras_of(app);
    CLI::App* noun = selected_noun(app);
    if (noun == nullptr) {
      for (const auto& x : extras)
        if (!x.empty() && x[0] != '-') return "unknown command '" + x + "'; one of: " + list_text(names_of(app));
    } else if (auto v = verb_problem(*noun, extras)) {
      return *v;
    }
    // "--no-such-flag" is an unknown option; anything else an argument too many.
    std::string options, arguments;
    size_t n_options = 0, n_arguments = 0;
    for (const auto& x : extras) {
      bool option = x.size() > 1 && x[0] == '-';
      std::string& list = option ? options : arguments;
      list += (list.empty() ? "'" : ", '") + x + "'";
      ++(option ? n_options : n_arguments);
    }
    std::string out;
    if (n_options > 0) out = (n_options == 1 ? "unknown option " : "unknown options ") + options;
    if (n_arguments > 0)
      out += (out.empty() ? "" : "; ") +
             std::string(n_arguments == 1 ? "unexpected argument " : "unexpected arguments ") + arguments;
    return where + out;
  }
  if (dynamic_cast<const CLI::ExcludesError*>(&e) != nullptr) {
    // "--delay excludes --at"
    if (auto p = what.find(" excludes "); p != std::string::npos)
      return what.substr(0, p) + " and " + what.substr(p + 10) + " cannot be used together";
    return what;
  }
  if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr || dynamic_cast<const CLI::RequiresError*>(&e) != nullptr)
    return where + what;  // "topic create: TOPIC is required", "consume: --nack-delay requires --nack"
  return where + what;
}

}  // namespace

int checked_main(int argc, char** argv) {
  using namespace ferry::ctl;
  CLI::App app{"ferryctl: administer and script a Ferry broker"};
  app.require_subcommand(0, 1);  // none: a usage error in words below
  app.fallthrough();             // global flags may follow the noun and verb
  app.set_config("--config", "", "read flags from this file (CLI11 TOML/INI)");
  globals g;
  g.bootstrap = fc::default_bootstrap();
  app.add_option("--bootstrap", g.bootstrap, "broker host:port (default: $FERRY_BOOTSTRAP, else 127.0.0.1:7070)")
      ->capture_default_str();
  app.add_option("--output", g.output, "table (for people) or json (for scripts)")
      ->check(one_of({"table", "json"}))
      ->capture_default_str();

  auto* topic = app.add_subcommand("topic", "create, list, describe and delete topics");
  topic->require_subcommand(0, 1);
  topic_create_args tc;
  auto* tcreate = topic->add_subcommand("create", "create a topic");
  tcreate->add_option("TOPIC", tc.topic, "topic name")->required();
  tcreate->add_option("--partitions", tc.partitions, "number of partitions")
      ->capture_default_str()
      ->check(whole_number<int32_t>(1, 10000));
  tcreate->add_option("--replication", tc.replication, "replication factor")
      ->capture_default_str()
      ->check(whole_number<int16_t>(1));
  tcreate->add_option("--retention", tc.retention,
                      "keep messages this long (500ms, 30s, 15m, 2h, 7d; default: broker's)");
  tcreate
      ->add_option("--retention-bytes", tc.retention_bytes, "keep at most this many bytes per partition (-1: no limit)")
      ->check(whole_number<int64_t>());
  tcreate->add_option("--segment-bytes", tc.segment_bytes, "roll segments at this size (0: broker default)")
      ->check(whole_number<int64_t>());
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
  prod->add_option("--partition", pa.partition, "explicit partition")->check(whole_number<int32_t>(0));
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
      ->check(whole_number<int32_t>(0));
  auto* off = rd->add_option("--offset", ra.offset, "start at this offset")->check(whole_number<int64_t>(0));
  auto* beg = rd->add_flag("--from-beginning", ra.from_beginning, "start at the earliest retained offset");
  off->excludes(beg);
  rd->add_option("--count", ra.count, "stop after this many messages")->check(whole_number<int64_t>(0));
  rd->add_flag("--follow", ra.follow, "keep waiting for new messages (default: stop at the current end)");

  auto* sub =
      app.add_subcommand("sub", "subscriptions: create, list, describe (lag, in flight, members), seek, delete");
  sub->require_subcommand(0, 1);
  sub_create_args sc;
  auto* screate = sub->add_subcommand("create", "create a subscription (a durable consumer group) on a topic");
  screate->add_option("TOPIC", sc.topic, "topic name")->required();
  screate->add_option("SUB", sc.sub, "subscription name")->required();
  screate->add_option("--from", sc.from, "where the subscription starts: earliest retained message or latest (default)")
      ->check(one_of({"earliest", "latest"}));
  screate->add_option("--ack-timeout", sc.ack_timeout, "lease of a delivery before it is redelivered (default: 30s)");
  screate
      ->add_option("--max-deliveries", sc.max_deliveries,
                   "deliveries before a message goes to the dead-letter topic (default: 10; 0: never)")
      ->check(whole_number<int32_t>(0, 1000));
  screate
      ->add_option("--ordered", sc.ordered,
                   "ordered keys: a key's next message waits for the ack of the previous (default: true)")
      ->check(one_of({"true", "false"}));
  screate->add_option("--backoff", sc.backoff, "redelivery delay after a failure: exponential (default) or fixed")
      ->check(one_of({"exponential", "fixed"}));
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
      ->check(whole_number<int32_t>(0));
  sseek->add_flag("--dry-run", ss.dry_run, "show what would move; change nothing");

  consume_args ca;
  auto* cons = app.add_subcommand("consume", "receive messages as a member of a subscription and ack them");
  cons->add_option("TOPIC", ca.topic, "topic name")->required();
  cons->add_option("--sub", ca.sub, "subscription name")->required();
  cons->add_option("--count", ca.count, "stop after this many messages")->check(whole_number<int64_t>(0));
  auto* nack = cons->add_flag("--nack", ca.nack, "nack each message instead: it is redelivered after the backoff");
  cons->add_option("--nack-delay", ca.nack_delay,
                   "with --nack: redeliver after this delay (default: the subscription's backoff)")
      ->needs(nack);
  cons->add_flag("--no-ack", ca.no_ack, "neither ack nor nack: only look (the leases end when ferryctl leaves)")
      ->excludes(nack);
  cons->add_option("--wait", ca.wait, "exit when no message arrived for this long")->capture_default_str();
  cons->add_option("--member", ca.member, "member name shown by sub describe (default: host and pid)");

  auto* dlq = app.add_subcommand("dlq", "dead letters of a subscription: list, replay");
  dlq->require_subcommand(0, 1);
  dlq_list_args dl;
  auto* dlist =
      dlq->add_subcommand("list", "list the dead letters of a subscription (its dead-letter topic, from the start)");
  dlist->add_option("TOPIC", dl.topic, "topic name")->required();
  dlist->add_option("SUB", dl.sub, "subscription name")->required();
  dlist->add_option("--count", dl.count, "at most this many")->check(whole_number<int64_t>(0));
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
  msg->require_subcommand(0, 1);
  std::string msg_id;
  auto* mcancel = msg->add_subcommand(
      "cancel", "cancel a delayed message before it is due (exit status 0 only if it was cancelled)");
  mcancel->add_option("ID", msg_id, "the message's id TOPIC/PARTITION/OFFSET, as produce printed it")->required();

  auto* delayed = app.add_subcommand("delayed", "delayed messages not yet due: list");
  delayed->require_subcommand(0, 1);
  delayed_list_args dll;
  auto* dllist = delayed->add_subcommand("list", "list a topic's delayed messages not yet due, earliest first");
  dllist->add_option("TOPIC", dll.topic, "topic name")->required();
  dllist->add_option("--before", dll.before, "only those due before this RFC 3339 time, e.g. 2024-05-01T12:00:00Z");
  dllist->add_option("--limit", dll.limit, "at most this many")
      ->capture_default_str()
      ->check(whole_number<int64_t>(1, 10000));
  dllist->add_option("--partition", dll.partition, "only this partition (default: every partition)")
      ->check(whole_number<int32_t>(0));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(describe_parse_error(app, e));
  }
  CLI::App* noun = selected_noun(app);
  if (noun == nullptr) return usage_error("missing command; one of: " + list_text(names_of(app)));
  if (auto v = verb_problem(*noun, extras_of(app))) return usage_error(*v);
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
