#pragma once
// Varint writing and reading for the broker's own byte formats (control records, checkpoints,
// the delay index): LEB128 unsigned varints and zigzag signed ones, as in schema/record_batch.md.
#include <cstdint>
#include <string>
#include <string_view>

namespace ferry {

class byte_writer {
 public:
  void u8(uint8_t v) { s_.push_back(static_cast<char>(v)); }
  void uvarint(uint64_t v) {
    while (v >= 0x80) {
      s_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    s_.push_back(static_cast<char>(v));
  }
  void varint(int64_t v) { uvarint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
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
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= s.size()) {
        ok = false;
        return 0;
      }
      auto b = static_cast<uint8_t>(s[pos++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok = false;
    return 0;
  }
  int64_t varint() {
    uint64_t u = uvarint();
    return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
  }
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
