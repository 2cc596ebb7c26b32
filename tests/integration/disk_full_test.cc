// A full disk under a real ferryd: the data folder is a small tmpfs. Produces fail with the typed
// disk_full error once it is full, the broker keeps serving reads, nothing acknowledged is lost or
// altered, writes work again once space is freed, and a kill -9 afterwards recovers everything
// that was acknowledged.
//
// Mounting needs root (CAP_SYS_ADMIN), which the CI machine has; without it the test is skipped
// with the reason, never passed silently.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/observe.h"

namespace ferry::test {
namespace {

std::string name_of(errc e) { return std::string(errc_name(e)); }

class disk_full : public ::testing::Test {
 protected:
  static constexpr const char* topic = "fills";

  void SetUp() override {
    broker_options o;
    o.segment_bytes = 1 << 20;
    o.shards = 1;
    broker_ = std::make_unique<broker_process>(o);
    std::filesystem::create_directories(broker_->data_dir());
    if (::mount("tmpfs", broker_->data_dir().c_str(), "tmpfs", 0, "size=12m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs for the data folder (" << std::strerror(errno) << "); this test needs root";
    }
    mounted_ = true;
    // Ballast that the test deletes later to free space again.
    ballast_ = broker_->data_dir() / "ballast";
    std::ofstream(ballast_) << std::string(3 << 20, 'b');
    ASSERT_TRUE(broker_->start());
  }

  void TearDown() override {
    if (broker_ && broker_->alive()) broker_->kill9();
    if (mounted_) ::umount2(broker_->data_dir().c_str(), MNT_DETACH);
  }

  std::unique_ptr<broker_process> broker_;
  std::filesystem::path ballast_;
  bool mounted_ = false;
};

TEST_F(disk_full, produce_gets_disk_full_reads_keep_working_and_nothing_acknowledged_is_lost) {
  auto c = raw_client::connect(broker_->client_port());
  ASSERT_TRUE(c) << c.error().to_string();
  auto [e, m] = c->create_topic(topic, 1);
  ASSERT_EQ(name_of(e), name_of(errc::ok)) << m;

  // Fill the disk: 32 KiB batches until the broker says disk_full.
  std::vector<std::string> acked;  // acknowledged values, in offset order
  errc last = errc::ok;
  std::string last_message;
  for (int i = 0; i < 2000; ++i) {
    std::string v = "m" + std::to_string(i) + "/" + random_payload(i, 32 << 10, 32 << 10, false);
    auto out = c->produce(topic, 0, make_value_batch({v}));
    if (out.error == errc::ok) {
      ASSERT_EQ(out.base_offset, static_cast<int64_t>(acked.size())) << "offsets must stay dense";
      acked.push_back(v);
      continue;
    }
    last = out.error;
    last_message = out.message;
    break;
  }
  ASSERT_EQ(name_of(last), name_of(errc::disk_full)) << "filling a 12 MiB disk ended with: " << last_message;
  EXPECT_FALSE(last_message.empty());
  ASSERT_GT(acked.size(), 10u);
  std::cerr << acked.size() << " batches acknowledged before the disk was full: " << last_message << "\n";

  // Still full: the next produce fails the same way, the broker is up, reads return everything.
  auto again = c->produce(topic, 0, make_value_batch({std::string(32 << 10, 'x')}));
  EXPECT_EQ(name_of(again.error), name_of(errc::disk_full));
  ASSERT_TRUE(broker_->alive());
  auto check = [&](const std::string& what) {
    SCOPED_TRACE(what);
    auto rc = raw_client::connect(broker_->client_port());
    ASSERT_TRUE(rc) << rc.error().to_string();
    auto all = rc->read_all(topic, 0);
    ASSERT_TRUE(all) << all.error().to_string();
    ASSERT_GE(all->size(), acked.size());
    for (size_t i = 0; i < acked.size(); ++i) {
      ASSERT_EQ((*all)[i].offset, static_cast<int64_t>(i));
      ASSERT_TRUE((*all)[i].value);
      ASSERT_EQ(*(*all)[i].value, acked[i]) << "offset " << i << " changed";
    }
  };
  check("while the disk is full");
  // /health names it (the broker is degraded, not failing: reads work and freeing space heals it).
  auto h = http_get(broker_->http_port(), "/health");
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->status, 200) << h->body;
  EXPECT_NE(h->body.find("\"problem\":\"disk_full\""), std::string::npos) << h->body;

  // Free space: writes work again, at the next offset.
  std::filesystem::remove(ballast_);
  std::string after = "after-free/" + random_payload(7, 1000, 1000, false);
  produce_outcome ok;
  ASSERT_TRUE(wait_until(
      [&] {
        ok = c->produce(topic, 0, make_value_batch({after}));
        return ok.error == errc::ok;
      },
      10s, 50ms))
      << "produce after freeing space: " << ok.message;
  EXPECT_EQ(ok.base_offset, static_cast<int64_t>(acked.size()));
  acked.push_back(after);
  check("after freeing space");
  auto healed = http_get(broker_->http_port(), "/health");
  ASSERT_TRUE(healed);
  EXPECT_EQ(healed->body.find("disk_full"), std::string::npos) << healed->body;

  // A crash now loses nothing acknowledged (the tmpfs outlives the process).
  broker_->kill9();
  ASSERT_TRUE(broker_->restart());
  check("after kill -9 and restart");
}

}  // namespace
}  // namespace ferry::test
