#pragma once
// Little-endian loads and stores. Every byte format Ferry writes (record batches, frames, segment
// indexes, delay index entries) is little-endian; this is the one place that says how to read and
// write one. The host is little-endian too (checked below), so each is one memcpy.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ferry::wire {

static_assert(std::endian::native == std::endian::little, "Ferry's byte formats assume a little-endian host");

template <class T>
T load_le(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <class T>
void store_le(std::byte* p, T v) noexcept {
  std::memcpy(p, &v, sizeof(T));
}

inline void put_le32(std::byte* p, uint32_t v) noexcept { store_le(p, v); }
inline uint32_t get_le32(const std::byte* p) noexcept { return load_le<uint32_t>(p); }
inline void put_le64(std::byte* p, uint64_t v) noexcept { store_le(p, v); }
inline uint64_t get_le64(const std::byte* p) noexcept { return load_le<uint64_t>(p); }

}  // namespace ferry::wire
