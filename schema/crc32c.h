#pragma once
// CRC32C (Castagnoli), as used by the record batch header. Uses the SSE4.2 crc32 instruction
// when the CPU has it, else a portable table; both are checked against the RFC 3720 vectors.
#include <cstddef>
#include <cstdint>

namespace ferry {

// Extends `crc` (0 for a fresh checksum) with `n` bytes at `data`.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n) noexcept;
inline uint32_t crc32c(const void* data, size_t n) noexcept { return crc32c_extend(0, data, n); }

// The portable implementation, exposed so tests can compare it with the hardware one.
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t n) noexcept;

}  // namespace ferry
