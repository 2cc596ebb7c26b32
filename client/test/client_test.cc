// Unit tests of the client library's pure parts (partitioning, ids, dead-letter headers and
// replayed messages) and of ferryctl's helpers (parsing, formatting, JSON text, argument errors).
// The producer, reader, admin and consumer against a broker: client/test/producer_test.cc,
// consumer_test.cc, delayed_test.cc, shared_test.cc (fake and real broker) and tests/integration.
#include <gtest/gtest.h>

#include <limits>

#include "client/ferryctl/format.h"
#include "client/ferryctl/json.h"
#include "ferry/client/client.h"
#include "ferry/client/dlq.h"

namespace fc = ferry::client;
namespace ctl = ferry::ctl;

namespace {

TEST(murmur2, matches_kafka_reference_values) {
  // From Kafka's UtilsTest.testMurmur2.
  EXPECT_EQ(static_cast<int32_t>(fc::murmur2("21")), -973932308);
  EXPECT_EQ(static_cast<int32_t>(fc::murmur2("foobar")), -790332482);
  EXPECT_EQ(static_cast<int32_t>(fc::murmur2("a-little-bit-long-string")), -985981536);
  EXPECT_EQ(static_cast<int32_t>(fc::murmur2("a-little-bit-longer-string")), -1486304829);
  EXPECT_EQ(static_cast<int32_t>(fc::murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")), -58897971);
  EXPECT_EQ(static_cast<int32_t>(fc::murmur2("abc")), 479470107);
}

TEST(partition_for_key, is_positive_murmur2_modulo_partitions) {
  // murmur2("21") = -973932308 = 0xC5F2F1EC; & 0x7fffffff = 1173551340.
  EXPECT_EQ(fc::partition_for_key("21", 10), 1173551340 % 10);
  EXPECT_EQ(fc::partition_for_key("abc", 7), 479470107 % 7);
  EXPECT_EQ(fc::partition_for_key("anything", 1), 0);
  for (int n = 1; n < 50; ++n) {
    int32_t p = fc::partition_for_key("order-42", n);
    EXPECT_GE(p, 0);
    EXPECT_LT(p, n);
  }
}

TEST(partition_for_key, empty_key_is_hashed_like_any_key) {
  // An empty key is a key (not "keyless"): murmur2 of zero bytes is the seed mixed alone,
  // 0x9747b28c -> 275646681 (Kafka's Utils.murmur2(new byte[0])), and the partition follows.
  EXPECT_EQ(fc::murmur2(""), 275646681u);
  EXPECT_EQ(fc::partition_for_key("", 7), 275646681 % 7);    // 2
  EXPECT_EQ(fc::partition_for_key("", 10), 275646681 % 10);  // 1
  EXPECT_EQ(fc::partition_for_key("", 1), 0);
}

TEST(message_id, prints_and_parses) {
  fc::message_id id{"orders", 3, 42};
  EXPECT_EQ(id.to_string(), "orders/3/42");
  auto p = fc::parse_message_id("orders/3/42");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->topic, "orders");
  EXPECT_EQ(p->partition, 3);
  EXPECT_EQ(p->offset, 42);
  auto big = fc::parse_message_id("a.b-c_d/0/9223372036854775807");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->offset, INT64_MAX);
}

TEST(message_id, rejects_malformed_ids) {
  for (const char* bad : {"", "orders", "orders/1", "/1/2", "orders//2", "orders/1/", "orders/x/2", "orders/1/2x",
                          "orders/-1/2", "orders/1/-2", "a/b/1/2", "orders/1/99999999999999999999"}) {
    auto p = fc::parse_message_id(bad);
    EXPECT_FALSE(p) << bad;
    if (!p) {
      EXPECT_EQ(p.error().code, ferry::errc::invalid_argument);
    }
  }
}

TEST(received_message, id_is_topic_partition_offset) {
  fc::received_message m;
  m.topic = "t";
  m.partition = 2;
  m.offset = 7;
  EXPECT_EQ(m.id(), "t/2/7");
}

TEST(default_bootstrap, reads_environment) {
  ::unsetenv("FERRY_BOOTSTRAP");
  EXPECT_EQ(fc::default_bootstrap(), "127.0.0.1:7070");
  ::setenv("FERRY_BOOTSTRAP", "10.0.0.1:9000", 1);
  EXPECT_EQ(fc::default_bootstrap(), "10.0.0.1:9000");
  ::unsetenv("FERRY_BOOTSTRAP");
}

TEST(duration, parses_every_unit) {
  EXPECT_EQ(ctl::parse_duration_ms("500ms"), 500);
  EXPECT_EQ(ctl::parse_duration_ms("30s"), 30'000);
  EXPECT_EQ(ctl::parse_duration_ms("15m"), 900'000);
  EXPECT_EQ(ctl::parse_duration_ms("2h"), 7'200'000);
  EXPECT_EQ(ctl::parse_duration_ms("7d"), 604'800'000);
  EXPECT_EQ(ctl::parse_duration_ms("0"), 0);
  EXPECT_EQ(ctl::parse_duration_ms("0s"), 0);
}

TEST(duration, rejects_malformed) {
  for (const char* bad :
       {"", "15", "m", "-5s", "1.5h", "5 s", "5sec", "5S", "10w", "99999999999999999999d", "9223372036854775807d"})
    EXPECT_FALSE(ctl::parse_duration_ms(bad)) << bad;
}

TEST(rfc3339, parses_utc_offsets_and_fractions) {
  EXPECT_EQ(ctl::parse_rfc3339_ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ctl::parse_rfc3339_ms("2024-05-01T12:00:00Z"), 1714564800000);
  EXPECT_EQ(ctl::parse_rfc3339_ms("2024-05-01T12:00:00.250Z"), 1714564800250);
  EXPECT_EQ(ctl::parse_rfc3339_ms("2024-05-01T14:00:00+02:00"), 1714564800000);
  EXPECT_EQ(ctl::parse_rfc3339_ms("2024-05-01T07:30:00-04:30"), 1714564800000);
  EXPECT_EQ(ctl::parse_rfc3339_ms("2024-02-29t12:00:00.5z"), 1709208000500);
}

TEST(rfc3339, rejects_malformed) {
  for (const char* bad :
       {"", "2024-05-01", "2024-05-01T12:00:00", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-05-01T24:00:00Z",
        "2024-05-01T12:00:00+0200", "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00Zx"})
    EXPECT_FALSE(ctl::parse_rfc3339_ms(bad)) << bad;
}

TEST(rfc3339, formats_utc_milliseconds) {
  EXPECT_EQ(ctl::format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(ctl::format_rfc3339_ms(1714564800250), "2024-05-01T12:00:00.250Z");
  EXPECT_EQ(ctl::parse_rfc3339_ms(ctl::format_rfc3339_ms(1709208000500)), 1709208000500);
}

TEST(header_flag, splits_at_first_equals) {
  auto h = ctl::parse_header("trace=a=b");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->first, "trace");
  EXPECT_EQ(h->second, "a=b");
  auto empty = ctl::parse_header("k=");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->second, "");
  EXPECT_FALSE(ctl::parse_header("novalue"));
  EXPECT_FALSE(ctl::parse_header("=v"));
}

std::string json_of(std::string_view s) { return ctl::json_line(ctl::json_text(s)); }

TEST(json_text, escapes_quotes_backslashes_and_controls) {
  EXPECT_EQ(json_of(""), "\"\"");
  EXPECT_EQ(json_of("plain"), "\"plain\"");
  EXPECT_EQ(json_of("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_of("l1\nl2\r\t\b\f"), "\"l1\\nl2\\r\\t\\b\\f\"");
  EXPECT_EQ(json_of(std::string("\x01\x1f", 2)), "\"\\u0001\\u001f\"");
  EXPECT_EQ(json_of(std::string("a\0b", 3)), "\"a\\u0000b\"");
  EXPECT_EQ(json_of("/<>'"), "\"/<>'\"");
}

TEST(json_text, keeps_valid_utf8_and_reads_invalid_bytes_as_latin1) {
  EXPECT_EQ(json_of("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(json_of("\xff"), "\"\xc3\xbf\"");                          // U+00FF
  EXPECT_EQ(json_of("\xc3"), "\"\xc3\x83\"");                          // truncated sequence: U+00C3
  EXPECT_EQ(json_of("\xc0\xaf"), "\"\xc3\x80\xc2\xaf\"");              // overlong '/'
  EXPECT_EQ(json_of("\xed\xa0\x80"), "\"\xc3\xad\xc2\xa0\xc2\x80\"");  // surrogate
  // What a JSON parser reads back: the bytes as code points.
  EXPECT_EQ(ctl::json::parse(json_of("x\xffy")).get<std::string>(), "x\u00ffy");
  EXPECT_EQ(ctl::utf8_or_latin1("ok \xc3\xa9"), "ok \xc3\xa9");
}

TEST(json_text, documents_keep_field_order_and_types) {
  ctl::json j;
  j["topic"] = ctl::json_text("t");
  j["partition"] = 3;
  j["offset"] = int64_t{9'000'000'000};
  j["key"] = ctl::json_text_or_null(std::nullopt);
  j["value"] = ctl::json_text_or_null(std::string("v"));
  j["dry_run"] = true;
  j["ratio"] = 0.5;
  EXPECT_EQ(ctl::json_line(j),
            "{\"topic\":\"t\",\"partition\":3,\"offset\":9000000000,\"key\":null,\"value\":\"v\",\"dry_run\":true,"
            "\"ratio\":0.5}");
}

TEST(table, pads_columns_to_widest_cell) {
  ctl::table t({"A", "LONGER"});
  t.add({"xxxx", "1"});
  EXPECT_EQ(t.str(), "A     LONGER\nxxxx  1\n");
}

TEST(duration_text, uses_the_largest_exact_unit) {
  EXPECT_EQ(ctl::format_duration_ms(-1), "default");
  EXPECT_EQ(ctl::format_duration_ms(0), "0");
  EXPECT_EQ(ctl::format_duration_ms(1500), "1500ms");
  EXPECT_EQ(ctl::format_duration_ms(30'000), "30s");
  EXPECT_EQ(ctl::format_duration_ms(60'000), "1m");
  EXPECT_EQ(ctl::format_duration_ms(90'000), "90s");
  EXPECT_EQ(ctl::format_duration_ms(7'200'000), "2h");
  EXPECT_EQ(ctl::format_duration_ms(604'800'000), "7d");
  EXPECT_EQ(ctl::parse_duration_ms(ctl::format_duration_ms(900'000)), 900'000);
}

TEST(age, truncates_to_one_unit) {
  EXPECT_EQ(ctl::format_age_ms(-5), "0s");
  EXPECT_EQ(ctl::format_age_ms(0), "0ms");
  EXPECT_EQ(ctl::format_age_ms(850), "850ms");
  EXPECT_EQ(ctl::format_age_ms(3'999), "3s");
  EXPECT_EQ(ctl::format_age_ms(59'999), "59s");
  EXPECT_EQ(ctl::format_age_ms(125'000), "2m");
  EXPECT_EQ(ctl::format_age_ms(5 * 3'600'000 + 1), "5h");
  EXPECT_EQ(ctl::format_age_ms(4 * 86'400'000LL + 7), "4d");
}

TEST(time_left, two_largest_units_truncated_or_due) {
  EXPECT_EQ(ctl::format_time_left_ms(0), "due");
  EXPECT_EQ(ctl::format_time_left_ms(-90'000), "due");
  EXPECT_EQ(ctl::format_time_left_ms(1), "1ms");
  EXPECT_EQ(ctl::format_time_left_ms(850), "850ms");
  EXPECT_EQ(ctl::format_time_left_ms(1'000), "1s");
  EXPECT_EQ(ctl::format_time_left_ms(45'999), "45s");
  EXPECT_EQ(ctl::format_time_left_ms(60'000), "1m");
  EXPECT_EQ(ctl::format_time_left_ms(899'500), "14m59s");  // a 15-minute delay, just after publishing
  EXPECT_EQ(ctl::format_time_left_ms(900'000), "15m");
  EXPECT_EQ(ctl::format_time_left_ms(3'600'000), "1h");
  EXPECT_EQ(ctl::format_time_left_ms(2LL * 3'600'000 + 5LL * 60'000 + 59'999), "2h5m");
  EXPECT_EQ(ctl::format_time_left_ms(3 * 86'400'000LL + 4LL * 3'600'000 + 1), "3d4h");
  EXPECT_EQ(ctl::format_time_left_ms(365 * 86'400'000LL), "365d");
  EXPECT_EQ(ctl::format_time_left_ms(86'400'000LL + 59LL * 60'000), "1d") << "the second unit is hours";
}

TEST(delayed_message, id_names_the_topic_given) {
  fc::delayed_message d;
  d.partition = 0;
  d.offset = 9'000'000'000;
  EXPECT_EQ(d.id("orders.eu"), "orders.eu/0/9000000000");
  EXPECT_TRUE(fc::parse_message_id(d.id("orders.eu")));
}

TEST(decimal, accepts_only_plain_non_negative_integers) {
  EXPECT_EQ(ctl::parse_decimal("0"), 0);
  EXPECT_EQ(ctl::parse_decimal("1714564800000"), 1714564800000);
  EXPECT_EQ(ctl::parse_decimal("9223372036854775807"), INT64_MAX);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1x", "0x10", "9223372036854775808"})
    EXPECT_FALSE(ctl::parse_decimal(bad)) << bad;
}

TEST(seek_to, parses_every_target) {
  auto e = ctl::parse_seek_to("earliest");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->what, ctl::seek_to::kind::earliest);
  auto l = ctl::parse_seek_to("latest");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->what, ctl::seek_to::kind::latest);
  auto o = ctl::parse_seek_to("42");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->what, ctl::seek_to::kind::offset);
  EXPECT_EQ(o->value, 42);
  auto t = ctl::parse_seek_to("2024-05-01T12:00:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->what, ctl::seek_to::kind::time);
  EXPECT_EQ(t->value, 1714564800000);
  for (const char* bad : {"", "Earliest", "-1", "yesterday", "2024-05-01", "12:00", "4 2"})
    EXPECT_FALSE(ctl::parse_seek_to(bad)) << bad;
}

TEST(partition_offset, parses_dlq_positions) {
  auto p = ctl::parse_partition_offset("3/1200");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first, 3);
  EXPECT_EQ(p->second, 1200);
  for (const char* bad : {"", "3", "3/", "/4", "a/1", "1/b", "-1/2", "1/2/3", "4294967296/0"})
    EXPECT_FALSE(ctl::parse_partition_offset(bad)) << bad;
}

TEST(dlq_header, recognises_the_broker_headers) {
  for (const char* k : {"ferry-dlq-original-id", "ferry-dlq-subscription", "ferry-dlq-delivery-count",
                        "ferry-dlq-reason", "ferry-dlq-time"})
    EXPECT_TRUE(fc::is_dlq_header(k)) << k;
  for (const char* k : {"trace", "ferry-dlq", "Ferry-dlq-reason", "x-ferry-dlq-reason", ""})
    EXPECT_FALSE(fc::is_dlq_header(k)) << k;
}

fc::received_message dead_letter_message() {
  fc::received_message m;
  m.topic = "orders.billing.dlq";
  m.partition = 1;
  m.offset = 7;
  m.key = "k";
  m.value = "v";
  m.headers = {{"trace", "abc"},
               {"ferry-dlq-original-id", "orders/2/40"},
               {"ferry-dlq-subscription", "billing"},
               {"ferry-dlq-delivery-count", "3"},
               {"ferry-dlq-reason", "nacked"},
               {"ferry-dlq-time", "1714564800000"},
               {"ferry-delayed-id", "orders/2/11"},
               {"empty", std::nullopt}};
  return m;
}

TEST(dead_letter, reads_the_broker_headers) {
  auto d = fc::to_dead_letter(dead_letter_message());
  EXPECT_EQ(d.original_id, "orders/2/40");
  EXPECT_EQ(d.subscription, "billing");
  EXPECT_EQ(d.delivery_count, 3);
  EXPECT_EQ(d.reason, "nacked");
  EXPECT_EQ(d.time_ms, 1714564800000);
  EXPECT_EQ(d.message.id(), "orders.billing.dlq/1/7");
  EXPECT_EQ(d.message.headers.size(), 8u) << "the message keeps every header";

  fc::received_message odd;
  odd.headers = {{"ferry-dlq-delivery-count", "x3"}, {"ferry-dlq-time", "-5"}, {"ferry-dlq-original-id", std::nullopt}};
  auto o = fc::to_dead_letter(odd);
  EXPECT_FALSE(o.delivery_count);
  EXPECT_FALSE(o.time_ms);
  EXPECT_EQ(o.original_id, "");
}

TEST(dead_letter, of_subscription_by_name_or_topic_and_name) {
  fc::dead_letter d;
  EXPECT_TRUE(fc::of_subscription(d, "orders", "billing")) << "no subscription header: an older broker's";
  d.subscription = "billing";
  EXPECT_TRUE(fc::of_subscription(d, "orders", "billing"));
  d.subscription = "orders/billing";
  EXPECT_TRUE(fc::of_subscription(d, "orders", "billing"));
  for (const char* other : {"audit", "orders/audit", "other/billing", "orders/billing2", "ordersbilling"}) {
    d.subscription = other;
    EXPECT_FALSE(fc::of_subscription(d, "orders", "billing")) << other;
  }
}

TEST(dead_letter, topic_of_a_subscription) {
  fc::subscription_config c;
  EXPECT_EQ(fc::dead_letter_topic_of("orders", "billing", c), "orders.billing.dlq");
  c.dead_letter_topic = "shared-dlq";
  EXPECT_EQ(fc::dead_letter_topic_of("orders", "billing", c), "shared-dlq");
}

TEST(dead_letter, replay_message_drops_reserved_headers_and_names_its_source) {
  auto d = fc::to_dead_letter(dead_letter_message());
  auto m = fc::replay_message(d, fc::message_id{"orders", 2, 40});
  EXPECT_EQ(m.key, "k");
  EXPECT_EQ(m.value, "v");
  EXPECT_FALSE(m.partition) << "a keyed message finds its partition by key";
  using kv = std::pair<std::string, std::string>;
  EXPECT_EQ(m.headers,
            (std::vector<kv>{{"trace", "abc"}, {"empty", ""}, {"ferry-replayed-from", "orders.billing.dlq/1/7"}}));

  auto keyless = d;
  keyless.message.key.reset();
  keyless.message.value.reset();
  auto k = fc::replay_message(keyless, fc::message_id{"orders", 2, 40});
  EXPECT_EQ(k.partition, 2) << "a keyless message goes back to its partition";
  EXPECT_EQ(k.value, "");
}

TEST(argument_errors, whole_numbers_name_their_bounds) {
  constexpr int64_t i32_min = std::numeric_limits<int32_t>::min(), i32_max = std::numeric_limits<int32_t>::max();
  constexpr int64_t i64_min = std::numeric_limits<int64_t>::min(), i64_max = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(ctl::whole_number_problem("5", 1, 10000, i32_min, i32_max), std::nullopt);
  EXPECT_EQ(ctl::whole_number_problem("0", 1, 10000, i32_min, i32_max), "must be between 1 and 10000, got 0");
  EXPECT_EQ(ctl::whole_number_problem("10001", 1, 10000, i32_min, i32_max), "must be between 1 and 10000, got 10001");
  EXPECT_EQ(ctl::whole_number_problem("99999999999999999999", 1, 10000, i32_min, i32_max),
            "must be between 1 and 10000, got 99999999999999999999");
  EXPECT_EQ(ctl::whole_number_problem("abc", 1, 10000, i32_min, i32_max),
            "must be a whole number between 1 and 10000, got 'abc'");
  EXPECT_EQ(ctl::whole_number_problem("1.5", 1, 10000, i32_min, i32_max),
            "must be a whole number between 1 and 10000, got '1.5'");
  EXPECT_EQ(ctl::whole_number_problem("", 1, 10000, i32_min, i32_max),
            "must be a whole number between 1 and 10000, got ''");
  EXPECT_EQ(ctl::whole_number_problem("-1", 0, i32_max, i32_min, i32_max), "must be 0 or more, got -1");
  EXPECT_EQ(ctl::whole_number_problem("3000000000", 0, i32_max, i32_min, i32_max),
            "must be at most 2147483647, got 3000000000");
  EXPECT_EQ(ctl::whole_number_problem("2147483647", 0, i32_max, i32_min, i32_max), std::nullopt);
  EXPECT_EQ(ctl::whole_number_problem("-1", i64_min, i64_max, i64_min, i64_max), std::nullopt);
  EXPECT_EQ(ctl::whole_number_problem("x", i64_min, i64_max, i64_min, i64_max), "must be a whole number, got 'x'");
  EXPECT_EQ(ctl::whole_number_problem("-99999999999999999999", i64_min, i64_max, i64_min, i64_max),
            "must be at least -9223372036854775808, got -99999999999999999999");
}

TEST(argument_errors, choices_are_listed) {
  EXPECT_EQ(ctl::one_of_text({"a"}), "a");
  EXPECT_EQ(ctl::one_of_text({"table", "json"}), "table or json");
  EXPECT_EQ(ctl::one_of_text({"a", "b", "c"}), "a, b or c");
  EXPECT_EQ(ctl::choice_problem("json", {"table", "json"}), std::nullopt);
  EXPECT_EQ(ctl::choice_problem("yaml", {"table", "json"}), "must be table or json, got 'yaml'");
  EXPECT_EQ(ctl::choice_problem("JSON", {"table", "json"}), "must be table or json, got 'JSON'");
}

TEST(printable, escapes_controls_for_table_cells) {
  EXPECT_EQ(ctl::printable("a\nb"), "a\\x0ab");
  EXPECT_EQ(ctl::printable("\xc3\xa9"), "\xc3\xa9");
  EXPECT_EQ(ctl::printable("\xff"), "\\xff");
}

}  // namespace
