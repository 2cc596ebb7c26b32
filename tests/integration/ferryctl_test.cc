// ferryctl against a real ferryd: topic create/list/describe/delete, produce (--value and stdin
// lines), read with --output json, FERRY_BOOTSTRAP, and exit codes (0 ok, 1 broker error,
// 2 usage error).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <sstream>

#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/process.h"

namespace ferry::test {
namespace {

std::string ferryctl_path() {
  if (const char* v = std::getenv("FERRYCTL"); v && *v) return v;
  return FERRYCTL_PATH;
}

// Runs ferryctl with `args`, feeding `in` on stdin; `env` entries are added to (or replace) the
// test's environment, and FERRY_BOOTSTRAP is removed unless given there.
run_result run_ctl(const std::vector<std::string>& args, const std::string& in = "",
                   const std::vector<std::pair<std::string, std::string>>& env = {},
                   std::chrono::milliseconds timeout = 20s) {
  std::vector<std::string> argv = {ferryctl_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, in, env, timeout);
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// The raw JSON value of `"key":` in a one-line object: a string's unescaped contents (simple
// escapes only), or the literal text of a number/object/array/true/false/null. nullopt if absent.
std::optional<std::string> json_field(const std::string& line, const std::string& key) {
  auto pos = line.find("\"" + key + "\"");
  while (pos != std::string::npos) {
    size_t p = pos + key.size() + 2;
    while (p < line.size() && line[p] == ' ') ++p;
    if (p < line.size() && line[p] == ':') {
      ++p;
      while (p < line.size() && line[p] == ' ') ++p;
      if (p >= line.size()) return std::nullopt;
      if (line[p] == '"') {
        std::string v;
        for (++p; p < line.size() && line[p] != '"'; ++p) {
          if (line[p] == '\\' && p + 1 < line.size()) {
            ++p;
            switch (line[p]) {
              case 'n':
                v += '\n';
                break;
              case 't':
                v += '\t';
                break;
              default:
                v += line[p];
            }
          } else {
            v += line[p];
          }
        }
        return v;
      }
      int depth = 0;
      size_t start = p;
      for (; p < line.size(); ++p) {
        char c = line[p];
        if (c == '{' || c == '[') ++depth;
        if (c == '}' || c == ']') {
          if (depth == 0) break;
          --depth;
        }
        if (c == ',' && depth == 0) break;
      }
      auto v = line.substr(start, p - start);
      while (!v.empty() && v.back() == ' ') v.pop_back();
      return v;
    }
    pos = line.find("\"" + key + "\"", pos + 1);  // the key text appeared as a value
  }
  return std::nullopt;
}

class ferryctl : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(ferryctl_path())) << ferryctl_path();
    ASSERT_TRUE(broker_.start());
  }
  run_result ctl(std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--bootstrap", broker_.bootstrap()});
    return run_ctl(args, in);
  }

  broker_process broker_;
};

TEST_F(ferryctl, topic_create_list_describe_delete) {
  auto r = ctl({"topic", "create", "cli-topic", "--partitions", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = ctl({"topic", "create", "other.topic", "--partitions", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  r = ctl({"topic", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("cli-topic"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("other.topic"), std::string::npos) << r.describe();

  r = ctl({"--output", "json", "topic", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("\"cli-topic\""), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("\"partitions\""), std::string::npos) << r.describe();

  r = ctl({"topic", "describe", "cli-topic"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("cli-topic"), std::string::npos) << r.describe();

  r = ctl({"--output", "json", "topic", "describe", "cli-topic"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(json_field(r.out, "name"), "cli-topic") << r.describe();
  // Three partition entries.
  size_t n = 0;
  for (auto p = r.out.find("\"high_watermark\""); p != std::string::npos; p = r.out.find("\"high_watermark\"", p + 1))
    ++n;
  EXPECT_EQ(n, 3u) << "describe --output json should list 3 partitions with their high_watermark:\n" << r.out;

  // Creating it again is a broker error.
  r = ctl({"topic", "create", "cli-topic", "--partitions", "3"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("cli-topic"), std::string::npos) << r.describe();

  r = ctl({"topic", "delete", "cli-topic"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = ctl({"topic", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.find("cli-topic"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("other.topic"), std::string::npos) << r.describe();
  r = ctl({"topic", "describe", "cli-topic"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("cli-topic"), std::string::npos) << "stderr should name the topic: " << r.describe();
}

TEST_F(ferryctl, produce_and_read_json) {
  ASSERT_EQ(ctl({"topic", "create", "events", "--partitions", "1"}).exit_code, 0);
  auto r =
      ctl({"produce", "events", "--key", "k1", "--header", "source=test", "--header", "n=1", "--value", "hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = ctl({"--output", "json", "produce", "events"}, "line one\nline two\nline three\n");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto acks = lines_of(r.out);
  ASSERT_EQ(acks.size(), 3u) << "produce --output json: one object per acknowledged message\n" << r.describe();
  for (size_t i = 0; i < acks.size(); ++i) {
    EXPECT_EQ(json_field(acks[i], "topic"), "events") << acks[i];
    EXPECT_EQ(json_field(acks[i], "partition"), "0") << acks[i];
    EXPECT_EQ(json_field(acks[i], "offset"), std::to_string(i + 1)) << acks[i];
    EXPECT_EQ(json_field(acks[i], "id"), "events/0/" + std::to_string(i + 1)) << acks[i];
  }

  r = ctl({"--output", "json", "read", "events", "--from-beginning", "--count", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto got = lines_of(r.out);
  ASSERT_EQ(got.size(), 4u) << r.describe();
  const char* values[] = {"hello world", "line one", "line two", "line three"};
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(got[i]);
    EXPECT_EQ(json_field(got[i], "topic"), "events");
    EXPECT_EQ(json_field(got[i], "partition"), "0");
    EXPECT_EQ(json_field(got[i], "offset"), std::to_string(i));
    EXPECT_EQ(json_field(got[i], "id"), "events/0/" + std::to_string(i));
    EXPECT_EQ(json_field(got[i], "value"), values[i]);
    EXPECT_TRUE(json_field(got[i], "timestamp")) << "no timestamp";
    EXPECT_TRUE(json_field(got[i], "headers")) << "no headers";
    EXPECT_TRUE(json_field(got[i], "key")) << "no key field";
  }
  EXPECT_EQ(json_field(got[0], "key"), "k1");
  EXPECT_EQ(json_field(got[1], "key"), "null") << "a keyless message's key should be null";
  auto headers = json_field(got[0], "headers").value_or("");
  EXPECT_NE(headers.find("source"), std::string::npos) << headers;
  EXPECT_NE(headers.find("test"), std::string::npos) << headers;
  auto ts = std::stoll(json_field(got[0], "timestamp").value_or("0"));
  auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  EXPECT_GT(ts, now_ms - 600'000) << "timestamp is not the produce time in ms";
  EXPECT_LE(ts, now_ms + 60'000);

  // The same data through the raw protocol.
  auto c = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(c);
  auto all = c->read_all("events", 0);
  ASSERT_TRUE(all) << all.error().to_string();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].key, "k1");
  EXPECT_EQ((*all)[0].value, "hello world");
  ASSERT_EQ((*all)[0].headers.size(), 2u);
  EXPECT_EQ((*all)[0].headers[0].first, "source");
  EXPECT_EQ((*all)[0].headers[0].second, "test");
  EXPECT_EQ((*all)[3].value, "line three");

  // From an offset, a limited count; and without --count, everything to the end, then exit.
  r = ctl({"--output", "json", "read", "events", "--partition", "0", "--offset", "2", "--count", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  got = lines_of(r.out);
  ASSERT_EQ(got.size(), 1u) << r.describe();
  EXPECT_EQ(json_field(got[0], "value"), "line two");
  r = ctl({"--output", "json", "read", "events", "--from-beginning"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(lines_of(r.out).size(), 4u) << r.describe();
  // Table output mentions the values too.
  r = ctl({"read", "events", "--from-beginning", "--count", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("line three"), std::string::npos) << r.describe();
}

TEST_F(ferryctl, read_every_partition_with_keys) {
  ASSERT_EQ(ctl({"topic", "create", "multi", "--partitions", "3"}).exit_code, 0);
  std::string in;
  for (int i = 0; i < 12; ++i) in += "v" + std::to_string(i) + "\n";
  auto r = ctl({"produce", "multi", "--key", "same-key"}, in);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = ctl({"--output", "json", "read", "multi", "--from-beginning"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto got = lines_of(r.out);
  ASSERT_EQ(got.size(), 12u) << r.describe();
  // One key: one partition, in order.
  auto part = json_field(got[0], "partition");
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(json_field(got[i], "partition"), part);
    EXPECT_EQ(json_field(got[i], "value"), "v" + std::to_string(i));
    EXPECT_EQ(json_field(got[i], "key"), "same-key");
  }
}

TEST_F(ferryctl, bootstrap_from_environment) {
  auto r =
      run_ctl({"topic", "create", "env-topic", "--partitions", "2"}, "", {{"FERRY_BOOTSTRAP", broker_.bootstrap()}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = run_ctl({"topic", "list"}, "", {{"FERRY_BOOTSTRAP", broker_.bootstrap()}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("env-topic"), std::string::npos) << r.describe();
}

TEST_F(ferryctl, subscriptions_consume_ack_nack_dead_letters_and_replay) {
  ASSERT_EQ(ctl({"topic", "create", "orders", "--partitions", "2"}).exit_code, 0);
  auto r = ctl({"sub", "create", "orders", "billing", "--from", "earliest", "--max-deliveries", "1", "--ack-timeout",
                "10s", "--ordered", "false"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("orders.billing.dlq"), std::string::npos) << "the dead-letter topic is named\n" << r.describe();
  r = ctl({"--output", "json", "sub", "create", "orders", "audit", "--from", "earliest"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = ctl({"sub", "list", "orders"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("billing"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("audit"), std::string::npos) << r.describe();
  ASSERT_EQ(ctl({"produce", "orders"}, "o1\no2\no3\no4\n").exit_code, 0);

  // consume acks by default: JSON lines with delivery_count.
  r = ctl({"--output", "json", "consume", "orders", "--sub", "audit", "--count", "4", "--wait", "5s"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto got = lines_of(r.out);
  ASSERT_EQ(got.size(), 4u) << r.describe();
  std::set<std::string> values;
  for (auto& l : got) {
    EXPECT_EQ(json_field(l, "delivery_count"), "1") << l;
    EXPECT_EQ(json_field(l, "topic"), "orders") << l;
    values.insert(json_field(l, "value").value_or(""));
  }
  EXPECT_EQ(values, (std::set<std::string>{"o1", "o2", "o3", "o4"}));
  r = ctl({"--output", "json", "sub", "describe", "orders", "audit"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("\"backlog\":0"), std::string::npos) << "everything acked:\n" << r.describe();

  // --nack with max-deliveries 1: every message goes to the dead-letter topic.
  r = ctl({"consume", "orders", "--sub", "billing", "--count", "4", "--nack", "--wait", "5s"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::vector<std::string> letters;
  ASSERT_TRUE(wait_until(
      [&] {
        auto l = ctl({"--output", "json", "dlq", "list", "orders", "billing"});
        letters = lines_of(l.out);
        return l.exit_code == 0 && letters.size() == 4;
      },
      10s))
      << letters.size() << " dead letters";
  for (auto& l : letters) {
    EXPECT_NE(l.find("orders/"), std::string::npos) << "original id: " << l;
    EXPECT_NE(l.find("nacked"), std::string::npos) << "reason: " << l;
  }
  r = ctl({"sub", "describe", "orders", "billing"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("CURRENT-OFFSET"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("LAG"), std::string::npos) << r.describe();

  // Replay puts them back on the original topic, without the dead-letter headers.
  r = ctl({"--output", "json", "dlq", "replay", "orders", "billing", "--all"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(lines_of(r.out).size(), 4u) << r.describe();
  r = ctl({"--output", "json", "consume", "orders", "--sub", "audit", "--count", "4", "--wait", "5s"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  got = lines_of(r.out);
  ASSERT_EQ(got.size(), 4u) << "the replayed messages reach every subscription\n" << r.describe();
  for (auto& l : got) EXPECT_EQ(l.find("ferry-dlq-"), std::string::npos) << l;

  // seek: --dry-run changes nothing, then a real seek to earliest gives everything again.
  r = ctl({"sub", "seek", "orders", "audit", "--to", "earliest", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("would"), std::string::npos) << r.describe();
  r = ctl({"--output", "json", "consume", "orders", "--sub", "audit", "--count", "1", "--wait", "1s"});
  EXPECT_EQ(lines_of(r.out).size(), 0u) << "a dry run moved the cursor\n" << r.describe();
  r = ctl({"sub", "seek", "orders", "audit", "--to", "earliest"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = ctl({"--output", "json", "consume", "orders", "--sub", "audit", "--count", "8", "--wait", "5s"});
  EXPECT_EQ(lines_of(r.out).size(), 8u) << r.describe();

  // Errors: unknown subscription (1), malformed --to (2), delete twice (1).
  r = ctl({"sub", "describe", "orders", "nope"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.describe();
  r = ctl({"consume", "orders", "--sub", "nope", "--count", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  r = ctl({"sub", "seek", "orders", "audit", "--to", "yesterday-ish"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = ctl({"sub", "create", "orders", "x", "--max-deliveries", "-3"});
  EXPECT_TRUE(r.exit_code == 1 || r.exit_code == 2) << r.describe();
  EXPECT_EQ(ctl({"sub", "delete", "orders", "billing"}).exit_code, 0);
  r = ctl({"sub", "delete", "orders", "billing"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
}

TEST_F(ferryctl, errors_have_exit_codes_and_messages) {
  // Broker errors: 1, and stderr names the topic.
  auto r = ctl({"produce", "missing-topic", "--value", "x"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("missing-topic"), std::string::npos) << r.describe();
  r = ctl({"read", "missing-topic", "--from-beginning", "--count", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("missing-topic"), std::string::npos) << r.describe();
  r = ctl({"topic", "delete", "missing-topic"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  r = ctl({"topic", "create", "bad name", "--partitions", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  r = ctl({"topic", "create", "zero-parts", "--partitions", "0"});
  EXPECT_TRUE(r.exit_code == 1 || r.exit_code == 2) << r.describe();

  // Usage errors: 2.
  r = ctl({"topic", "list", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_FALSE(r.err.empty());
  r = ctl({"no-such-noun"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = ctl({"topic", "create"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = ctl({"--output", "yaml", "topic", "list"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = ctl({"read", "x", "--partition", "not-a-number"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();

  // Nothing listening: a connection error is a broker error (1), quickly, with a message.
  broker_.kill9();
  auto t0 = clock_type::now();
  r = ctl({"topic", "list"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_FALSE(r.err.empty());
  EXPECT_LT(clock_type::now() - t0, 15s);
}

}  // namespace
}  // namespace ferry::test
