// Damaged or missing storage against a real ferryd (issue 8, "Damaged storage is detected and never
// silently cut away"): a missing or damaged metadata store never deletes topic data, a folder the
// store does not know is left alone, and subscription state is clamped to a log that came back
// shorter.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "ferry/client/client.h"
#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/observe.h"

namespace ferry::test {
namespace {

namespace fc = ferry::client;
namespace fs = std::filesystem;

std::string name_of(errc e) { return std::string(errc_name(e)); }
#define ASSERT_ERRC(actual, expected) ASSERT_EQ(name_of(actual), name_of(expected))
#define EXPECT_ERRC(actual, expected) EXPECT_EQ(name_of(actual), name_of(expected))

// The folder of topic `name` under the broker's data folder ("<id>-<name>").
fs::path topic_folder(const broker_process& b, const std::string& name) {
  for (auto& e : fs::directory_iterator(b.data_dir() / "topics"))
    if (e.path().filename().string().ends_with("-" + name)) return e.path();
  return {};
}

std::set<std::string> files_under(const fs::path& dir) {
  std::set<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) out.insert(fs::relative(e.path(), dir).string());
  return out;
}

class storage_safety : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.start());
    connect();
  }
  void connect() {
    auto c = raw_client::connect(broker_.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    client_ = std::make_unique<raw_client>(std::move(*c));
  }
  broker_process broker_;
  std::unique_ptr<raw_client> client_;
};

TEST_F(storage_safety, a_missing_metadata_store_refuses_to_start_and_deletes_nothing) {
  ASSERT_ERRC(client_->create_topic("keep", 2).first, errc::ok);
  ASSERT_ERRC(client_->produce("keep", 0, make_value_batch({"precious"})).error, errc::ok);
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  auto folder = topic_folder(broker_, "keep");
  ASSERT_FALSE(folder.empty());
  auto before = files_under(folder);
  fs::remove_all(broker_.data_dir() / "meta");

  auto started = broker_.restart();
  EXPECT_FALSE(started) << "started on an empty metadata store next to topic data";
  EXPECT_NE(broker_.wait_exit(10s), -1);
  auto log = broker_.log_tail(4096);
  EXPECT_NE(log.find("metadata store"), std::string::npos) << log;
  EXPECT_NE(log.find(folder.filename().string()), std::string::npos) << "the message names the folders: " << log;
  EXPECT_TRUE(fs::exists(folder));
  EXPECT_EQ(files_under(folder), before);
  EXPECT_FALSE(fs::exists(broker_.data_dir() / "meta" / "CURRENT")) << "no empty store was created";
}

TEST_F(storage_safety, a_damaged_metadata_store_refuses_to_start_and_deletes_nothing) {
  ASSERT_ERRC(client_->create_topic("keep2", 1).first, errc::ok);
  ASSERT_ERRC(client_->produce("keep2", 0, make_value_batch({"precious"})).error, errc::ok);
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  auto folder = topic_folder(broker_, "keep2");
  auto before = files_under(folder);
  // CURRENT names a manifest that is not there.
  std::ofstream(broker_.data_dir() / "meta" / "CURRENT", std::ios::trunc) << "MANIFEST-999999\n";
  EXPECT_FALSE(broker_.restart());
  EXPECT_NE(broker_.wait_exit(10s), -1);
  EXPECT_NE(broker_.log_tail(4096).find(folder.filename().string()), std::string::npos) << broker_.log_tail(4096);
  EXPECT_EQ(files_under(folder), before);
}

TEST_F(storage_safety, a_topic_folder_the_store_does_not_know_is_left_alone) {
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  auto stranger = broker_.data_dir() / "topics" / "999-stranger";
  fs::create_directories(stranger / "0");
  std::ofstream(stranger / "0" / "00000000000000000000.log") << "someone's data";
  ASSERT_TRUE(broker_.restart());
  EXPECT_TRUE(fs::exists(stranger / "0" / "00000000000000000000.log"));
  EXPECT_NE(broker_.log_tail().find("999-stranger"), std::string::npos);
}

TEST_F(storage_safety, deleted_topics_folders_go_and_a_restart_finishes_an_interrupted_delete) {
  ASSERT_ERRC(client_->create_topic("gone", 1).first, errc::ok);
  auto folder = topic_folder(broker_, "gone");
  ASSERT_ERRC(client_->delete_topic("gone").first, errc::ok);
  EXPECT_FALSE(fs::exists(folder));
  // The same name again, deleted by a broker that crashes right after the record went (the
  // failpoint), before its folder is removed: the next start-up removes the folder.
  ASSERT_ERRC(client_->create_topic("gone", 1).first, errc::ok);
  auto folder2 = topic_folder(broker_, "gone");
  ASSERT_NE(folder2, folder);
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  broker_.options().env.emplace_back("FERRY_FAILPOINTS", "topics.delete_after_record=crash");
  ASSERT_TRUE(broker_.restart());
  connect();
  (void)client_->delete_topic("gone");
  EXPECT_NE(broker_.wait_exit(10s), -1) << "the failpoint ends the broker";
  ASSERT_TRUE(fs::exists(folder2));
  broker_.options().env.clear();
  ASSERT_TRUE(broker_.restart());
  EXPECT_FALSE(fs::exists(folder2)) << "start-up removes the folder of a topic recorded as deleted";
}

// The log came back shorter than the subscription's saved state (its tail was lost: here the
// segment is cut back by hand after a clean stop). New messages take those offsets again and
// must be delivered, not hidden behind a cursor beyond the log end.
TEST_F(storage_safety, subscription_state_beyond_a_shorter_log_is_clamped_and_new_messages_arrive) {
  ASSERT_ERRC(client_->create_topic("short", 1).first, errc::ok);
  ASSERT_ERRC(client_->produce("short", 0, make_value_batch({"first"})).error, errc::ok);
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  auto segment = topic_folder(broker_, "short") / "0" / "00000000000000000000.log";
  auto first_size = fs::file_size(segment);  // a clean stop trims preallocation: one batch
  ASSERT_TRUE(broker_.restart());
  connect();
  for (int i = 0; i < 20; ++i)
    ASSERT_ERRC(client_->produce("short", 0, make_value_batch({"old-" + std::to_string(i)})).error, errc::ok);
  fc::client_options co;
  co.bootstrap = broker_.bootstrap();
  {
    auto admin = fc::admin::create(co);
    ASSERT_TRUE(admin);
    fc::subscription_config sc;
    sc.start = fc::start_position::earliest;
    ASSERT_TRUE((*admin)->create_subscription("short", "s", sc));
    fc::consumer_options cons;
    cons.bootstrap = broker_.bootstrap();
    auto c = fc::consumer::create(cons, "short", "s");
    ASSERT_TRUE(c);
    size_t got = 0;
    auto deadline = clock_type::now() + 20s;
    while (got < 21 && clock_type::now() < deadline) {
      auto batch = (*c)->poll(100ms);
      ASSERT_TRUE(batch);
      for (auto& d : *batch) (*c)->ack(d), ++got;
    }
    ASSERT_EQ(got, 21u);
    ASSERT_TRUE((*c)->flush());
    (*c)->close();
  }
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);  // saves the checkpoint: cursor past offset 21
  fs::resize_file(segment, first_size);
  ASSERT_TRUE(broker_.restart());
  connect();
  auto d = client_->describe_topic("short");
  ASSERT_EQ(d.high_watermarks, std::vector<int64_t>{1});
  ASSERT_ERRC(client_->produce("short", 0, make_value_batch({"new-1", "new-2"})).error, errc::ok);
  fc::consumer_options cons;
  cons.bootstrap = broker_.bootstrap();
  auto c = fc::consumer::create(cons, "short", "s");
  ASSERT_TRUE(c);
  std::vector<std::string> values;
  auto deadline = clock_type::now() + 10s;
  while (values.size() < 2 && clock_type::now() < deadline) {
    auto batch = (*c)->poll(100ms);
    ASSERT_TRUE(batch);
    for (auto& m : *batch) {
      values.push_back(m.value.value_or("<null>"));
      (*c)->ack(m);
    }
  }
  EXPECT_EQ(values, (std::vector<std::string>{"new-1", "new-2"}));
}

// Damage in the middle of a partition's log (a flipped length field, valid data after it): the
// broker starts, fences that partition (writes and reads across the damage refused with
// corrupt_batch, shown in topic describe), deletes nothing, and serves every other partition.
TEST_F(storage_safety, a_damaged_partition_is_fenced_and_the_broker_serves_the_rest) {
  ASSERT_ERRC(client_->create_topic("dmg", 2).first, errc::ok);
  for (int i = 0; i < 40; ++i) {
    ASSERT_ERRC(client_->produce("dmg", 0, make_value_batch({"p0-" + std::to_string(i)})).error, errc::ok);
    ASSERT_ERRC(client_->produce("dmg", 1, make_value_batch({"p1-" + std::to_string(i)})).error, errc::ok);
  }
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  auto segment = topic_folder(broker_, "dmg") / "0" / "00000000000000000000.log";
  std::string bytes;
  {
    std::ifstream f(segment, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  // The 20th batch's length field (little-endian u32 at byte 8 of its header).
  size_t pos = 0;
  for (int i = 0; i < 20; ++i) {
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + pos + 8, 4);
    pos += len;
  }
  bytes[pos + 9] = static_cast<char>(bytes[pos + 9] ^ 0x10);
  {
    std::ofstream f(segment, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  ASSERT_TRUE(broker_.restart()) << "one damaged partition must not keep the broker down";
  connect();
  // The healthy partition is served as before.
  auto p1 = client_->read_all("dmg", 1, 0);
  ASSERT_TRUE(p1) << p1.error().to_string();
  EXPECT_EQ(p1->size(), 40u);
  ASSERT_ERRC(client_->produce("dmg", 1, make_value_batch({"p1-new"})).error, errc::ok);
  // The damaged one: the batches before the damage are readable, nothing across it, no writes.
  auto fetch0 = client_->call(fetch_frame(client_->next_cid(), "dmg", 0, 0, 0, 64 << 10));
  ASSERT_TRUE(fetch0);
  auto* fr = fetch0->resp->body_as_FetchResponse();
  ASSERT_NE(fr, nullptr);
  auto before =
      decode_batches(std::span(reinterpret_cast<const std::byte*>(fr->partitions()->Get(0)->records()->data()),
                               fr->partitions()->Get(0)->records()->size()),
                     0);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->size(), 20u);
  auto across = client_->read_all("dmg", 0, 20);
  ASSERT_FALSE(across);
  EXPECT_EQ(across.error().code, errc::corrupt_batch) << across.error().to_string();
  auto w = client_->produce("dmg", 0, make_value_batch({"p0-new"}));
  EXPECT_ERRC(w.error, errc::corrupt_batch) << w.message;
  // Shown as such.
  fc::client_options co;
  co.bootstrap = broker_.bootstrap();
  auto admin = fc::admin::create(co);
  ASSERT_TRUE(admin);
  auto d = (*admin)->describe_topic("dmg");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->partitions[0].status, "corrupt");
  EXPECT_NE(d->partitions[0].status_detail.find("offset 20"), std::string::npos) << d->partitions[0].status_detail;
  EXPECT_EQ(d->partitions[1].status, "ok");
  // /health and /ready name it, and still pass: the rest of the broker serves (a restart would not
  // repair it).
  for (const char* path : {"/health", "/ready"}) {
    auto h = http_get(broker_.http_port(), path);
    ASSERT_TRUE(h) << h.error().to_string();
    EXPECT_EQ(h->status, 200) << path << ": " << h->body;
    EXPECT_NE(h->body.find("\"status\":\"degraded\""), std::string::npos) << h->body;
    EXPECT_NE(h->body.find("\"problem\":\"corrupt\""), std::string::npos) << h->body;
    EXPECT_NE(h->body.find("\"topic\":\"dmg\""), std::string::npos) << h->body;
  }
  EXPECT_EQ(broker_metric(broker_, "ferry_partition_problem{topic=\"dmg\",partition=\"0\",problem=\"corrupt\"}"), 1.0);
  EXPECT_EQ(broker_metric(broker_, "ferry_partition_problem{topic=\"dmg\",partition=\"1\",problem=\"corrupt\"}"),
            std::nullopt);
  // Nothing was cut away: the file holds every byte it had (the damaged byte included).
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  std::string after;
  {
    std::ifstream f(segment, std::ios::binary);
    after.assign(std::istreambuf_iterator<char>(f), {});
  }
  EXPECT_EQ(after.size(), bytes.size());
  EXPECT_TRUE(after == bytes) << "the damaged segment was changed";
}

}  // namespace
}  // namespace ferry::test
