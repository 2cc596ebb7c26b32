#include "schema/frame.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "schema/record_batch.h"

namespace ferry::wire {

// ErrorCode and errc must agree (see schema/errc.h).
static_assert(static_cast<uint16_t>(ErrorCode::ConnectionClosed) == static_cast<uint16_t>(errc::connection_closed));
static_assert(static_cast<uint16_t>(ErrorCode::UnknownTopic) == static_cast<uint16_t>(errc::unknown_topic));
static_assert(static_cast<uint16_t>(ErrorCode::NotReady) == static_cast<uint16_t>(errc::not_ready));
static_assert(static_cast<uint16_t>(ErrorCode::UnknownMessage) == static_cast<uint16_t>(errc::unknown_message));
static_assert(static_cast<uint16_t>(ErrorCode::MAX) == static_cast<uint16_t>(errc::last_));

namespace {
// Depth and table limits for the verifier: generous for our schema, small enough that a hostile
// frame cannot make verification expensive.
constexpr flatbuffers::uoffset_t max_depth = 32;
constexpr flatbuffers::uoffset_t max_tables = 1'000'000;

// FlatBuffers 2.0's verifier checks a vector's length field for 4-byte alignment, not its elements:
// a hostile frame can place a [long] vector at 4 mod 8, and reading it is then a misaligned 8-byte
// load (undefined behaviour; code vectorized on the assumption of alignment can fault). Requests
// have one such vector, AckRequest.acks[].offsets; a new one in ferry.fbs needs the same check.
bool longs_aligned(const flatbuffers::Vector<int64_t>* v, const uint8_t* frame) {
  return v == nullptr || (reinterpret_cast<uintptr_t>(v->data()) - reinterpret_cast<uintptr_t>(frame)) % 8 == 0;
}

bool vectors_aligned(const Request* r, const uint8_t* frame) {
  const auto* ack = r->body_as_AckRequest();
  if (ack == nullptr || ack->acks() == nullptr) return true;
  for (const auto* po : *ack->acks())
    if (!longs_aligned(po->offsets(), frame)) return false;
  return true;
}
}  // namespace

result<const Request*> decode_request(std::span<const std::byte> frame) {
  auto p = reinterpret_cast<const uint8_t*>(frame.data());
  if (frame.size() < frame_prefix_bytes + 2 * sizeof(flatbuffers::uoffset_t))
    return fail(errc::malformed_frame, "frame too short to hold a request");
  if (get_le32(frame.data()) != frame.size() - frame_prefix_bytes)
    return fail(errc::malformed_frame, "frame length prefix does not match the frame");
  flatbuffers::Verifier v(p, frame.size(), max_depth, max_tables);
  if (!v.VerifySizePrefixedBuffer<Request>(nullptr))
    return fail(errc::malformed_frame, "request failed FlatBuffers verification");
  const auto* r = flatbuffers::GetSizePrefixedRoot<Request>(p);
  if (!vectors_aligned(r, p))
    return fail(errc::malformed_frame, "request has a vector of 64-bit values not aligned to 8 bytes");
  return r;
}

result<const Response*> decode_response(std::span<const std::byte> frame) {
  auto p = reinterpret_cast<const uint8_t*>(frame.data());
  if (frame.size() < frame_prefix_bytes + 2 * sizeof(flatbuffers::uoffset_t))
    return fail(errc::malformed_frame, "frame too short to hold a response");
  if (get_le32(frame.data()) != frame.size() - frame_prefix_bytes)
    return fail(errc::malformed_frame, "frame length prefix does not match the frame");
  flatbuffers::Verifier v(p, frame.size(), max_depth, max_tables);
  if (!v.VerifySizePrefixedBuffer<Response>(nullptr))
    return fail(errc::malformed_frame, "response failed FlatBuffers verification");
  return flatbuffers::GetSizePrefixedRoot<Response>(p);
}

namespace {
struct byte_range {
  const uint8_t* begin;
  const uint8_t* end;
};

// The bytes of a table: its vtable and its object. The verifier checked the vtable's declared
// size and every field the schema knows, not the object size the vtable declares (a 2-byte vtable
// has none) nor where fields lie relative to it: the object reaches to the end of its last field,
// counted as `widest` bytes (the table's widest scalar or offset; never past a following vector's
// elements for a frame a FlatBufferBuilder wrote, since its length field comes first). Ranges are
// clamped to the frame. Generated tables derive privately from flatbuffers::Table, at the same
// address.
template <class T>
void add_table(std::vector<byte_range>& out, const T* table, size_t widest, const uint8_t* frame_end) {
  if (table == nullptr) return;
  using flatbuffers::voffset_t;
  auto* p = reinterpret_cast<const uint8_t*>(table);
  const uint8_t* vt = reinterpret_cast<const flatbuffers::Table*>(p)->GetVTable();
  auto clamp = [&](const uint8_t* from, size_t n) {
    return byte_range{from, from + std::min<size_t>(n, static_cast<size_t>(frame_end - from))};
  };
  size_t vt_size = flatbuffers::ReadScalar<voffset_t>(vt);
  out.push_back(clamp(vt, std::max(vt_size, sizeof(voffset_t))));
  size_t end = sizeof(flatbuffers::soffset_t);
  if (vt_size >= 2 * sizeof(voffset_t))
    end = std::max<size_t>(end, flatbuffers::ReadScalar<voffset_t>(vt + sizeof(voffset_t)));
  for (size_t i = 2 * sizeof(voffset_t); i + sizeof(voffset_t) <= vt_size; i += sizeof(voffset_t)) {
    size_t field = flatbuffers::ReadScalar<voffset_t>(vt + i);
    if (field != 0) end = std::max(end, field + widest);
  }
  out.push_back(clamp(p, end));
}

}  // namespace

result<void> check_produce_layout(const Request* r, const ProduceRequest* req, std::span<const std::byte> frame) {
  std::vector<byte_range> structure;
  std::vector<std::pair<byte_range, int32_t>> batches;
  auto* base = reinterpret_cast<const uint8_t*>(frame.data());
  structure.push_back({base, base + std::min<size_t>(frame.size(), 8)});  // length prefix and root offset
  const uint8_t* end = base + frame.size();
  add_table(structure, r, sizeof(uint64_t), end);  // correlation_id
  add_table(structure, req, sizeof(flatbuffers::uoffset_t), end);
  // A String* or Vector* points at its length field; the elements follow it.
  if (auto* t = req->topic()) {
    auto* p = reinterpret_cast<const uint8_t*>(t);
    structure.push_back({p, p + sizeof(flatbuffers::uoffset_t) + t->size() + 1});
  }
  auto* parts = req->partitions();
  if (parts != nullptr) {
    auto* p = reinterpret_cast<const uint8_t*>(parts);
    structure.push_back({p, p + sizeof(flatbuffers::uoffset_t) * (1 + parts->size())});
    batches.reserve(parts->size());
    for (auto* pp : *parts) {
      add_table(structure, pp, sizeof(flatbuffers::uoffset_t), end);
      if (auto* rec = pp->records(); rec != nullptr && rec->size() > 0) {
        const uint8_t* d = rec->data();
        structure.push_back({d - sizeof(flatbuffers::uoffset_t), d});
        batches.push_back({{d, d + rec->size()}, pp->partition()});
      }
    }
  }
  std::sort(batches.begin(), batches.end(), [](auto& a, auto& b) { return a.first.begin < b.first.begin; });
  for (size_t i = 1; i < batches.size(); ++i) {
    if (batches[i].first.begin < batches[i - 1].first.end)
      return fail(errc::invalid_argument, "the record batches of partition entries " +
                                              std::to_string(batches[i - 1].second) + " and " +
                                              std::to_string(batches[i].second) +
                                              " share bytes in the request frame; each entry needs its own batch");
  }
  for (auto& s : structure) {
    // The first batch ending after s.begin is the only one that can start before s.end.
    auto it = std::upper_bound(batches.begin(), batches.end(), s.begin,
                               [](const uint8_t* v, const auto& b) { return v < b.first.end; });
    if (it != batches.end() && it->first.begin < s.end)
      return fail(errc::invalid_argument, "the record batch of partition entry " + std::to_string(it->second) +
                                              " overlaps the request's own tables in the frame");
  }
  return {};
}

void finish_request(flatbuffers::FlatBufferBuilder& fbb, flatbuffers::Offset<Request> root) {
  fbb.FinishSizePrefixed(root);
}
void finish_response(flatbuffers::FlatBufferBuilder& fbb, flatbuffers::Offset<Response> root) {
  fbb.FinishSizePrefixed(root);
}

const char* api_name(uint8_t api) noexcept {
  if (api == 0 || api > api_max) return "unknown";
  return EnumNamesRequestBody()[api];
}

}  // namespace ferry::wire
