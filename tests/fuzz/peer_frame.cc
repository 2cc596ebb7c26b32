// Fuzz target: peer frame decoding (broker/peer/codec.h, schema/peer.md). A broker decodes every
// frame another broker (or anything that reaches its peer port) sends.
//
// Input: a frame body. The target prepends the 4-byte length prefix and copies it into an
// 8-byte aligned buffer of exactly that size, as the transport's read buffers are. Then:
//  - decode_frame; a failure must be malformed_frame;
//  - every decoded message has a type and entry kinds in range, and `from`/`to` are the
//    connection's;
//  - each decoded message, encoded again alone (encode_messages), decodes to the same message
//    (a round trip through the codec loses and invents nothing).
// A FlatBuffers verifier that lets a view point outside the frame is an AddressSanitizer report.
#include <cstring>
#include <string>
#include <vector>

#include "broker/base/assert.h"
#include "broker/peer/codec.h"
#include "schema/endian.h"
#include "tests/fuzz/fuzz_input.h"

namespace p = ferry::peer;
using ferry::node_id;
using ferry::consensus::message;

namespace {

constexpr node_id from{1};
constexpr node_id to{2};

struct aligned {
  std::vector<uint64_t> words;
  size_t n = 0;
  explicit aligned(std::span<const std::byte> b) : words((b.size() + 7) / 8), n(b.size()) {
    if (n > 0) std::memcpy(words.data(), b.data(), n);
  }
  std::span<const std::byte> view() const { return {reinterpret_cast<const std::byte*>(words.data()), n}; }
};

bool same(const message& x, const message& y) {
  return x.type == y.type && x.from == y.from && x.to == y.to && x.term == y.term && x.last_index == y.last_index &&
         x.last_term == y.last_term && x.transfer == y.transfer && x.granted == y.granted &&
         x.prev_index == y.prev_index && x.prev_term == y.prev_term && x.entries == y.entries && x.commit == y.commit &&
         x.sent_at == y.sent_at && x.match == y.match && x.durable == y.durable && x.conflict_term == y.conflict_term &&
         x.conflict_index == y.conflict_index && x.config == y.config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > UINT32_MAX - p::frame_prefix_bytes) return 0;
  std::vector<std::byte> frame(p::frame_prefix_bytes + size);
  ferry::wire::put_le32(frame.data(), static_cast<uint32_t>(size));
  if (size > 0) std::memcpy(frame.data() + p::frame_prefix_bytes, data, size);
  const aligned in(frame);
  auto d = p::decode_frame(in.view(), from, to);
  if (!d) {
    FERRY_ASSERT(d.error().code == ferry::errc::malformed_frame, "decode_frame failed with another code");
    return 0;
  }
  ferry::fuzz::touch(d->hello.cluster_id);
  ferry::fuzz::touch(d->reason);
  for (const auto& a : d->messages) {
    const auto& m = a.msg;
    FERRY_ASSERT(static_cast<int>(m.type) <= static_cast<int>(ferry::consensus::msg_type::install_snapshot),
                 "a message type out of range was decoded");
    FERRY_ASSERT(m.from == from && m.to == to, "from/to are the connection's");
    for (const auto& e : m.entries) {
      FERRY_ASSERT(static_cast<int>(e.kind) <= static_cast<int>(ferry::consensus::entry_kind::config),
                   "an entry kind out of range was decoded");
      ferry::fuzz::touch(e.data);
    }
    const p::addressed_message one[] = {a};
    const auto frames = p::encode_messages(one);
    FERRY_ASSERT(frames.size() == 1, "one message makes one frame");
    const aligned again(frames[0].bytes());
    auto d2 = p::decode_frame(again.view(), from, to);
    FERRY_ASSERT(d2 && d2->messages.size() == 1, "a re-encoded message does not decode");
    FERRY_ASSERT(d2->messages[0].group == a.group && same(d2->messages[0].msg, m),
                 "a re-encoded message decodes to another message");
  }
  return 0;
}
