#pragma once
// Varint writing and reading for the broker's own byte formats (control records, checkpoints,
// the delay index): LEB128 unsigned varints and zigzag signed ones, as in schema/record_batch.md.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

namespace ferry {

inline uint64_t zigzag_encode(int64_t v) noexcept {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t zigzag_decode(uint64_t u) noexcept {
  return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
}

// `out = a + delta` for a gap or length read from bytes; false (out unchanged) if the sum does not
// fit an int64, so that a decoder refuses a damaged record instead of overflowing.
inline bool add_delta(int64_t a, uint64_t delta, int64_t& out) noexcept {
  int64_t sum = 0;
  if (delta > static_cast<uint64_t>(INT64_MAX) || __builtin_add_overflow(a, static_cast<int64_t>(delta), &sum))
    return false;
  out = sum;
  return true;
}

// Appends `v` as a LEB128 varint to a container of bytes (std::string, std::vector<std::byte>).
template <class Out>
void append_uvarint(Out& out, uint64_t v) {
  using byte_type = typename Out::value_type;
  while (v >= 0x80) {
    out.push_back(static_cast<byte_type>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<byte_type>(v));
}

// Decodes one LEB128 varint from [p, end) and advances p past it. Past the end, or longer than
// ten bytes: `ok` becomes false and the result is 0.
template <class Byte>
uint64_t read_uvarint(const Byte*& p, const Byte* end, bool& ok) noexcept {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p >= end) {
      ok = false;
      return 0;
    }
    auto b = static_cast<uint8_t>(*p++);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return v;
  }
  ok = false;
  return 0;
}

class byte_writer {
 public:
  void u8(uint8_t v) { s_.push_back(static_cast<char>(v)); }
  void uvarint(uint64_t v) { append_uvarint(s_, v); }
  void varint(int64_t v) { uvarint(zigzag_encode(v)); }
  void str(std::string_view v) {
    uvarint(v.size());
    s_.append(v);
  }
  std::string str() && { return std::move(s_); }

 private:
  std::string s_;
};

// Reads from `s`; after any read past the end `ok` is false and every value is 0.
struct byte_reader {
  std::string_view s;
  size_t pos = 0;
  bool ok = true;

  uint8_t u8() {
    if (pos >= s.size()) {
      ok = false;
      return 0;
    }
    return static_cast<uint8_t>(s[pos++]);
  }
  uint64_t uvarint() {
    const char* p = s.data() + std::min(pos, s.size());
    uint64_t v = read_uvarint(p, s.data() + s.size(), ok);
    pos = static_cast<size_t>(p - s.data());
    return v;
  }
  int64_t varint() { return zigzag_decode(uvarint()); }
  std::string str() {
    uint64_t n = uvarint();
    if (!ok || n > s.size() - pos) {
      ok = false;
      return {};
    }
    std::string out(s.substr(pos, n));
    pos += n;
    return out;
  }
};

}  // namespace ferry
