#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "broker/meta/meta_store.h"
#include "broker/meta/topic_config.h"
#include "schema/meta_generated.h"

namespace ferry::meta {
namespace {

TEST(topic_name, accepts_the_documented_alphabet_and_rejects_the_rest) {
  EXPECT_TRUE(validate_topic_name("orders.v2_eu-west"));
  EXPECT_TRUE(validate_topic_name(std::string(200, 'a')));
  for (const std::string& bad : std::vector<std::string>{"", ".", "..", "a/b", "spaces here", "caf\xc3\xa9",
                                                         std::string(201, 'a'), std::string("nul\0x", 5)}) {
    auto r = validate_topic_name(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, errc::invalid_topic_name);
    EXPECT_FALSE(r.error().message.empty());
  }
}

TEST(topic_config, out_of_range_values_are_invalid_argument) {
  topic_config c;
  EXPECT_TRUE(validate_topic_config(c, 1));
  c.partitions = 0;
  EXPECT_EQ(validate_topic_config(c, 1).error().code, errc::invalid_argument);
  c.partitions = -3;
  EXPECT_FALSE(validate_topic_config(c, 1));
  c = {};
  c.replication = 3;
  EXPECT_FALSE(validate_topic_config(c, 1));
}

TEST(meta_store, topics_and_ids_survive_reopen) {
  auto dir = std::filesystem::temp_directory_path() / ("ferry-meta-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  uint64_t first_id = 0;
  {
    auto s = meta_store::open(dir);
    ASSERT_TRUE(s) << s.error().to_string();
    first_id = (*s)->next_id().value();
    topic_record r{"orders", first_id, {}};
    r.config.partitions = 8;
    r.config.fsync = fsync_mode::interval;
    ASSERT_TRUE((*s)->put_topic(r));
    ASSERT_TRUE((*s)->put_topic(topic_record{"gone", 99, {}}));
    ASSERT_TRUE((*s)->delete_topic("gone", "99-gone"));
  }
  auto s = meta_store::open(dir, meta_store::open_mode::must_exist);
  ASSERT_TRUE(s);
  auto topics = (*s)->list_topics().value();
  ASSERT_EQ(topics.size(), 1u);
  EXPECT_EQ(topics[0].name, "orders");
  EXPECT_EQ(topics[0].config.partitions, 8);
  EXPECT_EQ(topics[0].config.fsync, fsync_mode::interval);
  EXPECT_GT((*s)->next_id().value(), first_id);
  // The deleted topic's folder is recorded until forgotten.
  EXPECT_EQ((*s)->list_deleted_folders().value(), std::vector<std::string>{"99-gone"});
  ASSERT_TRUE((*s)->forget_deleted_folder("99-gone"));
  EXPECT_TRUE((*s)->list_deleted_folders().value().empty());
  s->reset();
  std::filesystem::remove_all(dir);
}

TEST(meta_store, must_exist_refuses_a_missing_store_instead_of_creating_an_empty_one) {
  auto dir = std::filesystem::temp_directory_path() / ("ferry-meta-missing-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto s = meta_store::open(dir, meta_store::open_mode::must_exist);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::storage_error);
  EXPECT_FALSE(std::filesystem::exists(dir / "CURRENT"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::meta

namespace ferry::meta {
namespace {

TEST(meta_store, checkpoints_and_delivery_journals_are_written_erased_and_deleted_per_subscription) {
  auto dir = std::filesystem::temp_directory_path() / ("ferry-meta-journal-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    auto s = meta_store::open(dir);
    ASSERT_TRUE(s) << s.error().to_string();
    auto& m = **s;
    ASSERT_TRUE(m.put_journal("ckpt/1/0/1/d/00000000000000000000", "a"));
    ASSERT_TRUE(m.put_journal("ckpt/1/0/1/d/00000000000000000001", "b"));
    ASSERT_TRUE(m.put_journal("ckpt/1/0/1/d/00000000000000000002", "c"));
    ASSERT_TRUE(m.put_journal("ckpt/1/0/12/d/00000000000000000000", "other"));
    // A checkpoint that covers records 0 and 1 erases them in the same write.
    ASSERT_TRUE(m.put_checkpoints({{"ckpt/1/0/1", "state1"}, {"ckpt/1/0/12", "state12"}},
                                  {{"ckpt/1/0/1/d/", "ckpt/1/0/1/d/00000000000000000002"}}));
    auto j = m.list_journal("ckpt/1/0/1/d/");
    ASSERT_TRUE(j);
    ASSERT_EQ(j->size(), 1u);
    EXPECT_EQ((*j)[0].first, "ckpt/1/0/1/d/00000000000000000002");
    EXPECT_EQ((*j)[0].second, "c");
  }
  auto s = meta_store::open(dir);  // unsynced writes are in the WAL: they survive a reopen
  ASSERT_TRUE(s) << s.error().to_string();
  auto& m = **s;
  ASSERT_EQ(m.list_journal("ckpt/1/0/1/d/")->size(), 1u);
  // Deleting subscription 1 takes its checkpoint and journal, not those of subscription 12.
  ASSERT_TRUE(m.delete_checkpoint("ckpt/1/0/1"));
  EXPECT_FALSE(m.get_checkpoint("ckpt/1/0/1")->has_value());
  EXPECT_TRUE(m.list_journal("ckpt/1/0/1/d/")->empty());
  EXPECT_EQ(m.get_checkpoint("ckpt/1/0/12")->value_or(""), "state12");
  EXPECT_EQ(m.list_journal("ckpt/1/0/12/d/")->size(), 1u);
  s->reset();
  std::filesystem::remove_all(dir);
}

TEST(subscription_config, exponential_backoff_doubles_up_to_the_cap_and_fixed_stays) {
  subscription_config c;
  c.backoff_initial_ms = 100;
  c.backoff_max_ms = 1000;
  EXPECT_EQ(c.backoff_for(1), 100);
  EXPECT_EQ(c.backoff_for(2), 200);
  EXPECT_EQ(c.backoff_for(4), 800);
  EXPECT_EQ(c.backoff_for(5), 1000);
  EXPECT_EQ(c.backoff_for(1000), 1000) << "no overflow for many deliveries";
  c.backoff = backoff_kind::fixed;
  EXPECT_EQ(c.backoff_for(7), 100);
}

TEST(subscription_config, out_of_range_values_are_invalid_argument) {
  subscription_config c;
  EXPECT_TRUE(validate_subscription_config(c));
  c.ack_timeout_ms = 0;
  EXPECT_EQ(validate_subscription_config(c).error().code, errc::invalid_argument);
  c = {};
  c.max_deliveries = -1;
  EXPECT_FALSE(validate_subscription_config(c));
  c = {};
  c.backoff_initial_ms = 5000;
  c.backoff_max_ms = 10;
  EXPECT_FALSE(validate_subscription_config(c));
  c = {};
  c.dead_letter_topic = "bad name";
  EXPECT_FALSE(validate_subscription_config(c));
  EXPECT_FALSE(validate_subscription_name("a/b"));
  EXPECT_EQ(validate_subscription_name("").error().code, errc::invalid_subscription_name);
}

TEST(subscription_record, round_trips_through_its_stored_encoding) {
  subscription_record r;
  r.topic = "orders";
  r.topic_id = 7;
  r.name = "billing";
  r.id = 42;
  r.config.start = start_position::earliest;
  r.config.ordered = false;
  r.config.backoff = backoff_kind::fixed;
  r.config.max_deliveries = 3;
  r.config.dead_letter_topic = "orders.billing.dlq";
  r.start_offsets = {0, 15, 99};
  r.created_ms = 1700000000000;
  auto d = decode_subscription_record(encode_subscription_record(r));
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->topic, r.topic);
  EXPECT_EQ(d->id, 42u);
  EXPECT_EQ(d->config.start, start_position::earliest);
  EXPECT_FALSE(d->config.ordered);
  EXPECT_EQ(d->config.backoff, backoff_kind::fixed);
  EXPECT_EQ(d->config.max_deliveries, 3);
  EXPECT_EQ(d->config.dead_letter_topic, r.config.dead_letter_topic);
  EXPECT_EQ(d->start_offsets, r.start_offsets);
  EXPECT_FALSE(decode_subscription_record("topic=x\n"));
}

}  // namespace
}  // namespace ferry::meta

namespace ferry::meta {
namespace {

// Exactly what brokers before schema/meta.fbs wrote (their encoders, every field off its default).
constexpr const char* old_topic_text =
    "format=1\nname=orders\nid=7\npartitions=8\nreplication=1\nretention_ms=86400000\n"
    "retention_bytes=1073741824\nsegment_bytes=16777216\nsegment_ms=3600000\nmax_batch_bytes=1048576\n"
    "fsync=interval\nfsync_interval_ms=250\nmax_delay_ms=604800000\n";
constexpr const char* old_subscription_text =
    "format=1\ntopic=orders\ntopic_id=7\nname=billing\nid=42\nstart=earliest\nack_timeout_ms=5000\n"
    "max_deliveries=3\nordered=false\nbackoff=fixed\nbackoff_initial_ms=250\nbackoff_max_ms=9000\n"
    "dead_letter_topic=orders.billing.dlq\ncreated_ms=1700000000000\nstart_offsets=0,15,99\n";

void expect_old_topic(const topic_record& r) {
  EXPECT_EQ(r.name, "orders");
  EXPECT_EQ(r.id, 7u);
  EXPECT_EQ(r.config.partitions, 8);
  EXPECT_EQ(r.config.replication, 1);
  EXPECT_EQ(r.config.retention_ms, 86400000);
  EXPECT_EQ(r.config.retention_bytes, 1LL << 30);
  EXPECT_EQ(r.config.segment_bytes, 16 << 20);
  EXPECT_EQ(r.config.segment_ms, 3600000);
  EXPECT_EQ(r.config.max_batch_bytes, 1 << 20);
  EXPECT_EQ(r.config.fsync, fsync_mode::interval);
  EXPECT_EQ(r.config.fsync_interval_ms, 250);
  EXPECT_EQ(r.config.max_delay_ms, 604800000);
}

void expect_old_subscription(const subscription_record& r) {
  EXPECT_EQ(r.topic, "orders");
  EXPECT_EQ(r.topic_id, 7u);
  EXPECT_EQ(r.name, "billing");
  EXPECT_EQ(r.id, 42u);
  EXPECT_EQ(r.config.start, start_position::earliest);
  EXPECT_EQ(r.config.ack_timeout_ms, 5000);
  EXPECT_EQ(r.config.max_deliveries, 3);
  EXPECT_FALSE(r.config.ordered);
  EXPECT_EQ(r.config.backoff, backoff_kind::fixed);
  EXPECT_EQ(r.config.backoff_initial_ms, 250);
  EXPECT_EQ(r.config.backoff_max_ms, 9000);
  EXPECT_EQ(r.config.dead_letter_topic, "orders.billing.dlq");
  EXPECT_EQ(r.created_ms, 1700000000000);
  EXPECT_EQ(r.start_offsets, (std::vector<int64_t>{0, 15, 99}));
}

bool is_flatbuffer_record(const std::string& s) { return s.size() >= 8 && fb::RecordBufferHasIdentifier(s.data()); }

TEST(topic_record, is_written_as_a_versioned_flatbuffers_record_and_round_trips) {
  auto old = decode_topic_record(old_topic_text);
  ASSERT_TRUE(old) << old.error().to_string();
  std::string bytes = encode_topic_record(*old);
  ASSERT_TRUE(is_flatbuffer_record(bytes));
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ASSERT_TRUE(fb::VerifyRecordBuffer(v));
  EXPECT_EQ(fb::GetRecord(bytes.data())->version(), 1);
  EXPECT_EQ(fb::GetRecord(bytes.data())->body_type(), fb::Body::Topic);
  auto back = decode_topic_record(bytes);
  ASSERT_TRUE(back) << back.error().to_string();
  expect_old_topic(*back);
  // Defaults (zeros and C++ defaults alike) survive too.
  auto d = decode_topic_record(encode_topic_record(topic_record{"t", 1, {}}));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->config.retention_ms, topic_config{}.retention_ms);
  EXPECT_EQ(d->config.retention_bytes, -1);
  EXPECT_EQ(d->config.fsync, fsync_mode::always);
}

TEST(topic_record, old_text_format_still_decodes) {
  auto r = decode_topic_record(old_topic_text);
  ASSERT_TRUE(r) << r.error().to_string();
  expect_old_topic(*r);
  EXPECT_FALSE(decode_topic_record("format=1\nname=x\npartitions=eight\n"));
  EXPECT_FALSE(decode_topic_record("format=1\nid=3\n")) << "no name";
}

TEST(subscription_record, old_text_format_still_decodes_and_is_rewritten_as_flatbuffers) {
  auto r = decode_subscription_record(old_subscription_text);
  ASSERT_TRUE(r) << r.error().to_string();
  expect_old_subscription(*r);
  std::string bytes = encode_subscription_record(*r);
  ASSERT_TRUE(is_flatbuffer_record(bytes));
  auto back = decode_subscription_record(bytes);
  ASSERT_TRUE(back) << back.error().to_string();
  expect_old_subscription(*back);
}

TEST(meta_record, unknown_version_wrong_kind_and_damage_are_storage_errors) {
  // A record from a broker with a newer meaning (version 2) is refused, not guessed at.
  flatbuffers::FlatBufferBuilder b;
  auto name = b.CreateString("orders");
  auto cfg = fb::CreateTopicConfig(b);
  auto topic = fb::CreateTopic(b, name, 7, cfg);
  fb::FinishRecordBuffer(b, fb::CreateRecord(b, 2, fb::Body::Topic, topic.Union()));
  std::string v2(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  auto r = decode_topic_record(v2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::storage_error);
  EXPECT_NE(r.error().message.find("version 2"), std::string::npos) << r.error().message;

  // A topic record read where a subscription is expected.
  auto t = encode_topic_record(topic_record{"orders", 7, {}});
  auto s = decode_subscription_record(t);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::storage_error);

  // Damage behind an intact identifier: the verifier catches it. (The last bytes of a record may
  // be alignment padding, so only cuts into its first half are sure to cut a field.)
  for (size_t n = 8; n <= t.size() / 2; ++n) {
    auto cut = decode_topic_record(std::string_view(t).substr(0, n));
    ASSERT_FALSE(cut) << "a record cut at " << n << " of " << t.size() << " bytes decoded";
    EXPECT_EQ(cut.error().code, errc::storage_error);
  }
  std::string bad_root = t;
  bad_root[0] = bad_root[1] = static_cast<char>(0x7f);
  auto r2 = decode_topic_record(bad_root);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, errc::storage_error);
}

TEST(meta_store, a_data_folder_with_records_in_the_old_text_format_opens_and_rewrites_them) {
  auto dir = std::filesystem::temp_directory_path() / ("ferry-meta-old-format-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    // The store as an older broker left it: the old text under the same keys.
    rocksdb::Options opts;
    opts.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(opts, dir.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "topic/orders", old_topic_text).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "sub/orders/billing", old_subscription_text).ok());
  }
  {
    auto s = meta_store::open(dir, meta_store::open_mode::must_exist);
    ASSERT_TRUE(s) << s.error().to_string();
    auto topics = (*s)->list_topics();
    ASSERT_TRUE(topics) << topics.error().to_string();
    ASSERT_EQ(topics->size(), 1u);
    expect_old_topic((*topics)[0]);
    auto subs = (*s)->list_subscriptions();
    ASSERT_TRUE(subs) << subs.error().to_string();
    ASSERT_EQ(subs->size(), 1u);
    expect_old_subscription((*subs)[0]);
    // Writing a record back stores the new format.
    ASSERT_TRUE((*s)->put_topic((*topics)[0]));
    ASSERT_TRUE((*s)->put_subscription((*subs)[0]));
  }
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string t, sub;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "topic/orders", &t).ok());
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "sub/orders/billing", &sub).ok());
    EXPECT_TRUE(is_flatbuffer_record(t));
    EXPECT_TRUE(is_flatbuffer_record(sub));
  }
  auto s = meta_store::open(dir, meta_store::open_mode::must_exist);
  ASSERT_TRUE(s);
  expect_old_topic((*s)->list_topics()->at(0));
  expect_old_subscription((*s)->list_subscriptions()->at(0));
  s->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::meta
