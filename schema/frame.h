#pragma once
// Frames: a 4-byte little-endian length, then a FlatBuffer (`Request` or `Response`, schema/ferry.fbs).
// Decoding verifies the FlatBuffer before anything reads it; failures are errc::malformed_frame.
#include <cstddef>
#include <cstdint>
#include <span>

#include "schema/ferry_generated.h"
#include "schema/result.h"

namespace ferry::wire {

inline constexpr size_t frame_prefix_bytes = 4;
inline constexpr uint32_t default_max_frame_bytes = 16u << 20;

// The API ids (union member numbers of RequestBody / ResponseBody).
inline constexpr uint8_t api_max = static_cast<uint8_t>(RequestBody::MAX);
// Highest version of each API this build speaks; every API is at version 1 today.
inline constexpr uint16_t api_version_max = 1;

constexpr ErrorCode to_wire(errc e) noexcept { return static_cast<ErrorCode>(static_cast<uint16_t>(e)); }
constexpr errc from_wire(ErrorCode e) noexcept { return static_cast<errc>(static_cast<uint16_t>(e)); }

// Verifies and returns the request in `frame`: the whole frame, length prefix included, in a
// buffer aligned to 8 bytes (the verifier checks field alignment relative to the frame start).
[[nodiscard]] result<const Request*> decode_request(std::span<const std::byte> frame);
[[nodiscard]] result<const Response*> decode_response(std::span<const std::byte> frame);

// The broker stamps offsets into each produced batch in place, in the request frame, on the
// partition's shard, while the connection's shard goes on reading the request. That is safe only if
// no two partition entries share batch bytes and no batch overlaps the request's own tables,
// vtables, strings and vector headers: the FlatBuffers verifier allows both. Call on a request that
// decode_request verified; errc::invalid_argument names the entry that breaks the rule.
[[nodiscard]] result<void> check_produce_layout(const Request* r, const ProduceRequest* req,
                                                std::span<const std::byte> frame);

// Finishes `fbb` with a size prefix; the frame is fbb.GetBufferSpan() afterwards.
void finish_request(flatbuffers::FlatBufferBuilder& fbb, flatbuffers::Offset<Request> root);
void finish_response(flatbuffers::FlatBufferBuilder& fbb, flatbuffers::Offset<Response> root);

// Name of an API id for logs ("produce"), "unknown" if out of range.
const char* api_name(uint8_t api) noexcept;

}  // namespace ferry::wire
