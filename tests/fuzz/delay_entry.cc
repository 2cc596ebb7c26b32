// Fuzz target: the delay index's entries (broker/delay/codec.h, schema/delay.md "Store"), which a
// broker reads back from RocksDB when it loads due messages, looks up a cancel or starts up.
//
// Input: one selector byte, then the bytes of one value or key:
//   selector % 4 == 0: a message value ('D' keys), decode_message;
//                   1: a 'D' key, decode_due_key;
//                   2: an 'O' value (due time), decode_due;
//                   3: an 'A' value (applied_upto, pending), decode_state.
// Checks: whatever decodes encodes back to bytes that decode to the same thing (for the fixed-size
// ones, to the same bytes).
#include <string>

#include "broker/base/assert.h"
#include "broker/delay/codec.h"
#include "tests/fuzz/fuzz_input.h"

namespace d = ferry::delay;

namespace {

bool same(const d::pending_message& a, const d::pending_message& b) {
  return a.append_time == b.append_time && a.timestamp == b.timestamp && a.key == b.key && a.value == b.value &&
         a.headers == b.headers;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::fuzz::input in(data, size);
  uint8_t sel = in.u8() % 4;
  auto rest = in.rest();
  std::string s(reinterpret_cast<const char*>(rest.data()), rest.size());
  switch (sel) {
    case 0: {
      d::pending_message m;
      if (!d::decode_message(s, m)) break;
      ferry::fuzz::touch(m.key.value_or(""));
      ferry::fuzz::touch(m.value.value_or(""));
      FERRY_ASSERT(m.bytes() >= sizeof(m), "pending_message::bytes below its own size");
      std::string again = d::encode_message(m);
      d::pending_message m2;
      FERRY_ASSERT(d::decode_message(again, m2), "an encoded delay index message does not decode");
      FERRY_ASSERT(same(m, m2), "a delay index message changed in a round trip");
      FERRY_ASSERT(d::encode_message(m2) == again, "delay index message encoding is not canonical");
      break;
    }
    case 1: {
      auto k = d::decode_due_key(s);
      if (!k) break;
      // The prefix (kind, topic, partition) is not part of what decodes.
      auto again = d::due_key({0, 0}, k->first, k->second);
      FERRY_ASSERT(again.size() == d::due_key_len && again.substr(d::key_prefix_len) == s.substr(d::key_prefix_len),
                   "a due key changed in a round trip");
      break;
    }
    case 2: {
      auto due = d::decode_due(s);
      if (due) FERRY_ASSERT(d::encode_due(*due) == s, "a due value changed in a round trip");
      break;
    }
    default: {
      auto st = d::decode_state(s);
      if (st) FERRY_ASSERT(d::encode_state(*st) == s, "a state value changed in a round trip");
      break;
    }
  }
  return 0;
}
