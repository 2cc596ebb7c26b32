#pragma once
// Helpers shared by the fuzz targets (tests/fuzz/README.md): the libFuzzer entry point's
// declaration, a reader that takes a target's small header fields off the front of an input, and
// a sink that makes the compiler (and AddressSanitizer) read every byte handed to it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace ferry::fuzz {

// Takes little-endian fields off the front of the input; past the end every field is 0 and the
// rest is empty, so every input is valid.
class input {
 public:
  input(const uint8_t* data, size_t size) : p_(data), left_(size) {}

  uint8_t u8() { return static_cast<uint8_t>(take(1)); }
  uint16_t u16() { return static_cast<uint16_t>(take(2)); }
  uint32_t u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t u64() { return take(8); }
  // The next `n` bytes (fewer if the input ends first).
  std::span<const std::byte> bytes(size_t n) {
    n = n < left_ ? n : left_;
    std::span<const std::byte> s(reinterpret_cast<const std::byte*>(p_), n);
    p_ += n;
    left_ -= n;
    return s;
  }
  std::span<const std::byte> rest() { return bytes(left_); }
  size_t left() const { return left_; }

 private:
  uint64_t take(size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n && left_ > 0; ++i, ++p_, --left_) v |= static_cast<uint64_t>(*p_) << (8 * i);
    return v;
  }
  const uint8_t* p_;
  size_t left_;
};

// Reads every byte of `s` into a checksum the optimizer cannot drop: a view that points outside
// its buffer is an AddressSanitizer report here, not a silent wrong answer.
inline uint64_t touch(std::string_view s) {
  uint64_t h = s.size();
  for (char c : s) h = h * 131 + static_cast<uint8_t>(c);
  volatile uint64_t sink = h;
  return sink;
}
inline uint64_t touch(std::span<const std::byte> s) {
  return touch(std::string_view(reinterpret_cast<const char*>(s.data()), s.size()));
}

}  // namespace ferry::fuzz
