#include "broker/subscription/control.h"

#include <gtest/gtest.h>

namespace ferry::subscription {
namespace {

TEST(control, batch_round_trips_every_operation) {
  std::vector<control_op> ops(3);
  ops[0].type = control_type::ack;
  ops[0].sub_id = 7;
  ops[0].ranges = {{-1, 0}, {5, 9}, {100, 101}};
  ops[1].type = control_type::dead_letter;
  ops[1].sub_id = 8;
  ops[1].offset = 42;
  ops[1].delivery_count = 10;
  ops[1].reason = "ack timeout expired after 10 deliveries";
  ops[2].type = control_type::seek;
  ops[2].sub_id = 9;
  ops[2].offset = 1234567;
  auto batch = encode_control_batch(ops, 1'700'000'000'000);
  auto h = wire::verify_batch(batch);
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_TRUE(is_control(*h));
  EXPECT_EQ(h->record_count, 3);
  std::vector<control_op> out;
  ASSERT_TRUE(decode_control_batch(batch, [&](const control_op& op) { out.push_back(op); }));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].type, control_type::ack);
  EXPECT_EQ(out[0].sub_id, 7u);
  EXPECT_EQ(out[0].ranges, ops[0].ranges);
  EXPECT_EQ(out[1].type, control_type::dead_letter);
  EXPECT_EQ(out[1].offset, 42);
  EXPECT_EQ(out[1].delivery_count, 10);
  EXPECT_EQ(out[1].reason, ops[1].reason);
  EXPECT_EQ(out[2].type, control_type::seek);
  EXPECT_EQ(out[2].offset, 1234567);
}

TEST(control, data_batches_are_not_control_and_unknown_types_are_refused) {
  wire::batch_builder b;
  b.add(std::nullopt, std::string_view("\x01\x63\x07", 3), {}, 1);  // version 1, type 99, sub 7
  auto span = b.finish(-1, 0, -1);
  std::vector<std::byte> batch(span.begin(), span.end());
  auto h = wire::verify_batch(batch);
  ASSERT_TRUE(h);
  EXPECT_FALSE(is_control(*h));
  auto r = decode_control_batch(batch, [](const control_op&) { FAIL() << "must not apply an unknown operation"; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::corrupt_batch);
}

}  // namespace
}  // namespace ferry::subscription
