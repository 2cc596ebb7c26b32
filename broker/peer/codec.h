#pragma once
// broker/peer codec: consensus messages to and from peer frames (schema/peer.fbs, prose in
// schema/peer.md). Pure functions: no sockets, no state, any thread.
//
// Encoding takes every message one broker has for one other broker (from one drain of the groups
// it hosts) and makes as few frames as it can:
//   - heartbeats with one send time go into ONE Heartbeats frame (24 bytes per group), and
//     heartbeat replies echoing one send time into one HeartbeatReplies frame (32 bytes per group):
//     heartbeats are coalesced per broker pair (DESIGN.md "A cluster");
//   - everything else into GroupMessages frames, each message tagged with its group id and
//     carrying only the fields its type uses; a frame is closed once it holds about
//     `target_frame_bytes` of entries and snapshots so no single frame grows without bound.
// Each frame is tagged with its lane: `control` (heartbeats, votes, replies, timeout_now: small,
// latency-critical) or `bulk` (appends and install_snapshot), so the transport writes control
// frames first and heartbeats never wait behind bulk data.
//
// A message's `from` and `to` are not on the wire: one connection joins two brokers, whose node
// ids the Hello exchange established; decoding takes them as arguments.
//
// Decoding verifies the frame (FlatBuffers verifier, file identifier, 8-byte alignment of 64-bit
// struct vectors, enum ranges) before reading it; anything wrong is errc::malformed_frame.
#include <flatbuffers/flatbuffers.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "broker/consensus/types.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::peer {

// The group a message belongs to: the metadata group, a partition's group. Chosen by the host.
using group_id = uint64_t;

inline constexpr uint32_t protocol_version = 1;
inline constexpr size_t frame_prefix_bytes = 4;
inline constexpr uint32_t default_max_frame_bytes = 32u << 20;

struct addressed_message {
  group_id group = 0;
  consensus::message msg;
};

enum class lane : uint8_t {
  control,  // heartbeats, votes, replies, timeout_now, hello
  bulk,     // append, install_snapshot
};

// The lane a message of type `t` travels in.
lane lane_of(consensus::msg_type t) noexcept;

// One encoded frame: the 4-byte length prefix and the FlatBuffer, owned.
class frame {
 public:
  frame() = default;
  frame(enum lane l, flatbuffers::DetachedBuffer buf, size_t messages)
      : lane_(l), buf_(std::move(buf)), messages_(messages) {}
  [[nodiscard]] std::span<const std::byte> bytes() const {
    return {reinterpret_cast<const std::byte*>(buf_.data()), buf_.size()};
  }
  [[nodiscard]] size_t size() const { return buf_.size(); }
  [[nodiscard]] enum lane lane() const { return lane_; }
  [[nodiscard]] size_t messages() const { return messages_; }  // consensus messages inside

 private:
  enum lane lane_ = lane::control;
  flatbuffers::DetachedBuffer buf_;
  size_t messages_ = 0;
};

struct hello {
  std::string cluster_id;
  node_id node;
  uint64_t incarnation = 0;
  uint32_t version = protocol_version;
};

struct encode_options {
  // A GroupMessages frame is closed once its entries' and snapshots' bytes reach this.
  size_t target_frame_bytes = size_t{1} << 20;
};

// Frames for `batch`, all addressed to one broker (their `to` is ignored). Control frames come
// first. Messages keep their relative order within each lane.
[[nodiscard]] std::vector<frame> encode_messages(std::span<const addressed_message> batch, encode_options opt = {});
[[nodiscard]] frame encode_hello(const hello& h);
[[nodiscard]] frame encode_reject(std::string_view reason);
// A frame that says only "this connection is alive": a Heartbeats frame with no groups.
[[nodiscard]] frame encode_keepalive();

struct decoded_frame {
  enum class kind : uint8_t { hello, reject, messages } type = kind::messages;
  struct hello hello;                       // kind::hello
  std::string reason;                       // kind::reject
  std::vector<addressed_message> messages;  // kind::messages: from `from` to `to`
};

// Decodes one whole frame (length prefix included) received from broker `from` by broker `to`.
// `frame` must start at an 8-byte aligned address. errc::malformed_frame on anything wrong.
[[nodiscard]] result<decoded_frame> decode_frame(std::span<const std::byte> frame, node_id from, node_id to);

}  // namespace ferry::peer
