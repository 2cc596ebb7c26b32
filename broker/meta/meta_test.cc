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
  for (const std::string& bad : std::vector<std::string>{"", ".", "..", "a/b", "spaces here", "caf\xc3\xa9", std::string(201, 'a'), std::string("nul\0x", 5)}) {
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
    ASSERT_TRUE((*s)->delete_topic("gone"));
  }
  auto s = meta_store::open(dir);
  ASSERT_TRUE(s);
  auto topics = (*s)->list_topics().value();
  ASSERT_EQ(topics.size(), 1u);
  EXPECT_EQ(topics[0].name, "orders");
  EXPECT_EQ(topics[0].config.partitions, 8);
  EXPECT_EQ(topics[0].config.fsync, fsync_mode::interval);
  EXPECT_GT((*s)->next_id().value(), first_id);
  s->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::meta
