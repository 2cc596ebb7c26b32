// Fuzz target: control records (schema/control.md), which the broker reads back from its own log
// on every start-up, and the delivery journal records it reads back from RocksDB.
//
// Input: one mode byte, then:
//   mode % 3 == 0: a whole control batch (length field and CRC32C fixed up, as a batch that passed
//                  the log's CRC check), decoded with decode_control_batch;
//   mode % 3 == 1: operation values, each [u8 length][bytes], wrapped by batch_builder into a
//                  control batch (so mutations go to the operation decoder, not the batch format);
//   mode % 3 == 2: one delivery journal record, decoded with decode_delivery_record.
// Checks: whatever decodes re-encodes (encode_control_batch, encode_delivery_record) to bytes that
// decode to the same operations or offsets.
#include <algorithm>
#include <string>
#include <vector>

#include "broker/base/assert.h"
#include "broker/subscription/control.h"
#include "tests/fuzz/fuzz_input.h"

namespace w = ferry::wire;
namespace sub = ferry::subscription;

namespace {

bool same(const sub::control_op& a, const sub::control_op& b) {
  return a.type == b.type && a.sub_id == b.sub_id && a.ranges == b.ranges && a.offset == b.offset && a.due == b.due &&
         a.delivery_count == b.delivery_count && a.reason == b.reason;
}

void check_control_batch(std::span<const std::byte> batch) {
  std::vector<sub::control_op> ops;
  auto r = sub::decode_control_batch(batch, [&](const sub::control_op& op) {
    ferry::fuzz::touch(op.reason);
    ops.push_back(op);
  });
  if (!r || ops.empty()) return;
  // A decoded ack range is non-empty and ranges are sorted and disjoint.
  for (const auto& op : ops) {
    for (size_t i = 0; i < op.ranges.size(); ++i) {
      FERRY_ASSERT(op.ranges[i].first < op.ranges[i].second, "decoded an empty ack range");
      if (i > 0) FERRY_ASSERT(op.ranges[i - 1].second < op.ranges[i].first, "decoded ack ranges overlap or touch");
    }
  }
  auto again = sub::encode_control_batch(ops, 1234);
  auto h = w::verify_batch(again);
  FERRY_ASSERT(h && sub::is_control(*h), "an encoded control batch does not verify");
  size_t i = 0;
  auto r2 = sub::decode_control_batch(again, [&](const sub::control_op& op) {
    FERRY_ASSERT(i < ops.size() && same(ops[i], op), "control op changed in a round trip");
    ++i;
  });
  FERRY_ASSERT(r2 && i == ops.size(), "re-encoded control batch does not decode");
}

void check_delivery_record(std::string_view rec) {
  std::vector<int64_t> offsets;
  auto r = sub::decode_delivery_record(rec, [&](int64_t o) { offsets.push_back(o); });
  if (!r) return;
  auto again = sub::encode_delivery_record(offsets);
  std::vector<int64_t> back;
  auto r2 = sub::decode_delivery_record(again, [&](int64_t o) { back.push_back(o); });
  FERRY_ASSERT(r2, "re-encoded delivery record does not decode");
  std::sort(offsets.begin(), offsets.end());
  std::sort(back.begin(), back.end());
  FERRY_ASSERT(offsets == back, "delivery record offsets changed in a round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::fuzz::input in(data, size);
  uint8_t mode = in.u8() % 3;
  if (mode == 0) {
    auto rest = in.rest();
    std::vector<std::byte> batch(rest.begin(), rest.end());
    if (batch.size() >= w::batch_header_size) {
      w::put_le32(batch.data() + w::hdr::batch_length, static_cast<uint32_t>(batch.size()));
      w::put_le32(batch.data() + w::hdr::crc, w::compute_batch_crc(batch));
    }
    check_control_batch(batch);
  } else if (mode == 1) {
    w::batch_builder b;
    b.set_control(true);
    while (in.left() > 0) {
      auto v = in.bytes(in.u8());
      b.add(std::nullopt, std::string_view(reinterpret_cast<const char*>(v.data()), v.size()), {}, 1000);
    }
    if (b.record_count() == 0) return 0;
    auto batch = b.finish(-1, 0, -1);
    check_control_batch(std::vector<std::byte>(batch.begin(), batch.end()));
  } else {
    auto rest = in.rest();
    check_delivery_record(std::string(reinterpret_cast<const char*>(rest.data()), rest.size()));
  }
  return 0;
}
