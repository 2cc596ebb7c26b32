#pragma once
// Ferry's error codes. One list for the whole codebase: each value is also the wire error code
// (schema/ferry.fbs `ErrorCode` has the same names and numbers; a static_assert in the protocol
// layer checks they agree), so every error maps to exactly one wire code.
#include <cstdint>
#include <string_view>

namespace ferry {

enum class errc : uint16_t {
  ok = 0,
  unknown = 1,              // a bug or an unexpected third-party failure; the message says more
  malformed_frame = 2,      // frame failed FlatBuffers verification or is structurally wrong
  frame_too_large = 3,      // frame length prefix above the configured maximum
  unsupported_api = 4,      // API id not known to this broker
  unsupported_version = 5,  // API known, version not supported
  unknown_topic = 6,
  invalid_topic_name = 7,  // names must match [A-Za-z0-9._-]{1,200}
  invalid_argument = 8,    // e.g. zero partitions, negative max_bytes
  topic_exists = 9,
  unknown_partition = 10,
  offset_out_of_range = 11,    // fetch below the log start or above the log end
  corrupt_batch = 12,          // CRC mismatch or a batch that does not parse
  not_leader = 13,             // retriable: refresh metadata
  timeout = 14,                // retriable
  disk_full = 15,              // ENOSPC while appending; the log refuses writes until recovery
  storage_error = 16,          // I/O failure (e.g. failed fsync): the log refuses writes until restart
  out_of_order_sequence = 17,  // retriable by the producer: an earlier batch of this producer is missing
  duplicate_sequence = 18,     // batch was already stored; not an error for the producer
  request_too_large = 19,      // batch above the topic's maximum batch size
  shutting_down = 20,          // retriable: the broker is stopping
  not_ready = 21,              // retriable: the partition is still recovering
  connection_closed = 22,      // client side: the connection dropped before the answer
  unknown_subscription = 23,
  subscription_exists = 24,
  unknown_member = 25,             // a member id this broker does not know (left, or its connection closed)
  lease_not_held = 26,             // ack/nack/extend by a member that does not hold the message's lease
  unknown_message = 27,            // not in flight in this subscription (never delivered, or already acked)
  invalid_subscription_name = 28,  // same alphabet as topic names
  delay_out_of_range = 29,         // a delivery delay beyond the topic's maximum, or a negative one
  resource_exhausted = 30,         // retriable later: a broker-wide or per-connection limit (connections, waiters)
  last_ = resource_exhausted,
};

// Stable snake_case name of a code, e.g. "unknown_topic". Never empty.
std::string_view errc_name(errc e) noexcept;

// Whether a client may retry the same request unchanged (after a metadata refresh).
bool errc_retriable(errc e) noexcept;

}  // namespace ferry
