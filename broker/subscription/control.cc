#include "broker/subscription/control.h"

#include <algorithm>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/varint.h"

namespace ferry::subscription {
namespace {

constexpr uint8_t control_version = 1;

std::string encode_op(const control_op& op) {
  byte_writer w;
  w.u8(control_version);
  w.u8(static_cast<uint8_t>(op.type));
  w.uvarint(op.sub_id);
  switch (op.type) {
    case control_type::ack: {
      w.uvarint(op.ranges.size());
      int64_t prev_end = 0;
      bool first = true;
      for (auto [from, to] : op.ranges) {
        if (first)
          w.varint(from);
        else
          w.uvarint(static_cast<uint64_t>(from - prev_end));
        w.uvarint(static_cast<uint64_t>(to - from));
        prev_end = to;
        first = false;
      }
      break;
    }
    case control_type::dead_letter:
      w.varint(op.offset);
      w.uvarint(static_cast<uint64_t>(op.delivery_count));
      w.str(op.reason);
      break;
    case control_type::seek:
      w.varint(op.offset);
      break;
    case control_type::cancel:
      w.varint(op.offset);
      w.varint(op.due);
      break;
  }
  return std::move(w).str();
}

result<control_op> decode_op(std::string_view value) {
  byte_reader r{value};
  control_op op;
  if (r.u8() != control_version) return fail(errc::corrupt_batch, "control record of an unknown version");
  auto type = r.u8();
  op.sub_id = r.uvarint();
  switch (type) {
    case static_cast<uint8_t>(control_type::ack): {
      op.type = control_type::ack;
      uint64_t n = r.uvarint();
      if (n > value.size()) return fail(errc::corrupt_batch, "control ack record: range count out of bounds");
      int64_t prev_end = 0;
      for (uint64_t i = 0; i < n && r.ok; ++i) {
        int64_t from = 0, to = 0;
        if (i == 0)
          from = r.varint();
        else if (!add_delta(prev_end, r.uvarint(), from))
          return fail(errc::corrupt_batch, "control ack record: offset out of range");
        if (!add_delta(from, r.uvarint(), to))
          return fail(errc::corrupt_batch, "control ack record: offset out of range");
        if (to <= from || (i > 0 && from <= prev_end))
          return fail(errc::corrupt_batch, "control ack record: ranges not sorted and disjoint");
        op.ranges.emplace_back(from, to);
        prev_end = to;
      }
      break;
    }
    case static_cast<uint8_t>(control_type::dead_letter):
      op.type = control_type::dead_letter;
      op.offset = r.varint();
      op.delivery_count = static_cast<int32_t>(r.uvarint());
      op.reason = r.str();
      break;
    case static_cast<uint8_t>(control_type::seek):
      op.type = control_type::seek;
      op.offset = r.varint();
      break;
    case static_cast<uint8_t>(control_type::cancel):
      op.type = control_type::cancel;
      op.offset = r.varint();
      op.due = r.varint();
      break;
    default:
      return fail(errc::corrupt_batch, "control record of unknown type " + std::to_string(type));
  }
  if (!r.ok || r.pos != value.size()) return fail(errc::corrupt_batch, "control record does not parse");
  return op;
}

}  // namespace

std::vector<std::byte> encode_control_batch(std::span<const control_op> ops, int64_t timestamp) {
  wire::batch_builder b;
  b.set_control(true);
  std::string v;
  for (const auto& op : ops) {
    v = encode_op(op);
    b.add(std::nullopt, std::string_view(v), {}, timestamp);
  }
  auto span = b.finish(-1, 0, -1);
  return std::vector<std::byte>(span.begin(), span.end());
}

result<void> decode_control_batch(std::span<const std::byte> batch, const std::function<void(const control_op&)>& fn) {
  error bad{};
  bool failed = false;
  auto r = wire::for_each_record(batch, [&](const wire::record_view& rec) {
    if (failed) return;
    if (!rec.value) {
      failed = true;
      bad = error{errc::corrupt_batch, "control record without a value"};
      return;
    }
    auto op = decode_op(*rec.value);
    if (!op) {
      failed = true;
      bad = op.error();
      return;
    }
    fn(*op);
  });
  if (!r) return r.error();
  if (failed) return bad;
  return {};
}

namespace {
constexpr uint8_t delivery_record_version = 1;
}  // namespace

std::string encode_delivery_record(std::span<const int64_t> offsets) {
  std::vector<int64_t> sorted(offsets.begin(), offsets.end());
  std::sort(sorted.begin(), sorted.end());
  // Runs of consecutive offsets: (gap from the previous run's end, length).
  std::vector<std::pair<int64_t, uint64_t>> runs;
  for (int64_t o : sorted) {
    if (!runs.empty() && runs.back().first + static_cast<int64_t>(runs.back().second) == o)
      ++runs.back().second;
    else
      runs.emplace_back(o, 1);
  }
  byte_writer w;
  w.u8(delivery_record_version);
  w.uvarint(runs.size());
  int64_t prev_end = 0;
  for (auto [start, len] : runs) {
    w.varint(start - prev_end);
    w.uvarint(len);
    prev_end = start + static_cast<int64_t>(len);
  }
  return std::move(w).str();
}

result<void> decode_delivery_record(std::string_view rec, const std::function<void(int64_t)>& fn) {
  byte_reader r{rec};
  if (r.u8() != delivery_record_version) return fail(errc::corrupt_batch, "delivery record: unknown version");
  uint64_t n = r.uvarint();
  if (!r.ok || n > rec.size()) return fail(errc::corrupt_batch, "delivery record: truncated");
  std::vector<std::pair<int64_t, uint64_t>> runs;
  runs.reserve(n);
  int64_t prev_end = 0;
  uint64_t total = 0;
  for (uint64_t i = 0; i < n && r.ok; ++i) {
    int64_t gap = r.varint();
    uint64_t len = r.uvarint();
    // Runs ascend (the encoder sorts distinct offsets), and one round of deliveries is at most one
    // dispatcher window: a record claiming more is damaged, and must not make start-up loop over
    // (and count) billions of offsets.
    int64_t start = 0, end = 0;
    if (gap < 0 || !add_delta(prev_end, static_cast<uint64_t>(gap), start) || !add_delta(start, len, end))
      return fail(errc::corrupt_batch, "delivery record: runs out of order or out of range");
    if (len == 0 || len > max_delivery_record_offsets - total)
      return fail(errc::corrupt_batch, "delivery record: bad run");
    total += len;
    runs.emplace_back(start, len);
    prev_end = end;
  }
  if (!r.ok || r.pos != rec.size()) return fail(errc::corrupt_batch, "delivery record: does not parse");
  for (auto [start, len] : runs)
    for (uint64_t k = 0; k < len; ++k) fn(start + static_cast<int64_t>(k));
  return {};
}

}  // namespace ferry::subscription
