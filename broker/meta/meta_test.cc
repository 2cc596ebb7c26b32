#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "broker/meta/meta_store.h"
#include "broker/meta/topic_config.h"

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

TEST(subscription_record, round_trips_through_its_text_encoding) {
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
