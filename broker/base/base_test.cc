#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <thread>

#include "broker/base/assert.h"
#include "broker/base/uninit_buffer.h"
#include "schema/crc32c.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry {
namespace {

// RFC 3720 B.4 test vectors.
// The shards mark their threads; a RocksDB write (metadata store, delay index) checks it is not
// on one. The whole integration suite runs with the check on.
TEST(event_loop_thread, blocking_work_on_a_marked_thread_aborts_and_elsewhere_runs) {
  EXPECT_FALSE(on_event_loop_thread());
  FERRY_ASSERT_OFF_EVENT_LOOP("a test write");  // not marked: passes
  bool marked_elsewhere = false;
  std::thread([&] {
    mark_event_loop_thread();
    marked_elsewhere = on_event_loop_thread();
  }).join();
  EXPECT_TRUE(marked_elsewhere);
  EXPECT_FALSE(on_event_loop_thread()) << "the mark is per thread";
  EXPECT_DEATH(
      {
        mark_event_loop_thread();
        FERRY_ASSERT_OFF_EVENT_LOOP("a test write");
      },
      "a test write must not run on a shard's event loop");
}

TEST(crc32c, matches_rfc3720_vectors) {
  unsigned char zeros[32] = {};
  unsigned char ones[32];
  unsigned char inc[32];
  unsigned char dec[32];
  for (int i = 0; i < 32; ++i) {
    ones[i] = 0xFF;
    inc[i] = static_cast<unsigned char>(i);
    dec[i] = static_cast<unsigned char>(31 - i);
  }
  EXPECT_EQ(crc32c(zeros, 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones, 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(inc, 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(dec, 32), 0x113FDB5Cu);
  EXPECT_EQ(crc32c_extend_portable(0, inc, 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
}

TEST(crc32c, hardware_and_portable_agree_on_every_length_and_split) {
  std::string s;
  for (int i = 0; i < 300; ++i) s.push_back(static_cast<char>(i * 7 + 3));
  for (size_t n = 0; n <= s.size(); ++n) {
    uint32_t whole = crc32c(s.data(), n);
    ASSERT_EQ(whole, crc32c_extend_portable(0, s.data(), n)) << n;
    size_t half = n / 3;
    ASSERT_EQ(whole, crc32c_extend(crc32c(s.data(), half), s.data() + half, n - half)) << n;
  }
}

TEST(result, carries_code_and_message) {
  auto f = []() -> result<int> { return fail(errc::unknown_topic, "topic 'x' not found"); };
  auto r = f();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::unknown_topic);
  EXPECT_EQ(r.error().to_string(), "unknown_topic: topic 'x' not found");
  EXPECT_THROW((void)r.value(), error_exception);
}

TEST(strong_types, compare_by_value) {
  EXPECT_LT(offset{1}, offset{2});
  EXPECT_EQ(partition_id{3}, partition_id{3});
}

}  // namespace
}  // namespace ferry

TEST(uninit_buffer, keeps_its_bytes_across_growth_and_fills_what_it_is_told_to) {
  ferry::uninit_buffer b;
  for (size_t i = 0; i < 1000; ++i) {
    b.resize(i + 1);  // grows through many reallocations
    b[i] = static_cast<std::byte>(i * 7);
  }
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], static_cast<std::byte>(i * 7)) << i;
  b.assign(64, std::byte{0x5a});  // construction with a value still fills
  for (auto x : b) EXPECT_EQ(x, std::byte{0x5a});
  b.resize(128, std::byte{1});
  EXPECT_EQ(b[127], std::byte{1});
  EXPECT_EQ(b[63], std::byte{0x5a});
}
