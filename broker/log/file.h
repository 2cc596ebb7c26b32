#pragma once
// The small file interface the log writes through (STYLE.md: "Storage code talks to a small file
// interface so a test file can fail on demand and drop unsynced bytes"). posix_files() is the real
// one; tests use a fault-injecting factory (broker/log/faulty_file.h).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "schema/result.h"

namespace ferry::log {

class file {
 public:
  virtual ~file() = default;
  // Writes all of `data` at `pos` (retrying short writes). ENOSPC is errc::disk_full.
  [[nodiscard]] virtual result<void> pwrite_all(std::span<const std::byte> data, uint64_t pos) = 0;
  // Reads up to out.size() bytes at pos; returns bytes read (short at end of file).
  [[nodiscard]] virtual result<size_t> pread(std::span<std::byte> out, uint64_t pos) = 0;
  [[nodiscard]] virtual result<void> datasync() = 0;  // fdatasync
  [[nodiscard]] virtual result<void> truncate(uint64_t size) = 0;
  [[nodiscard]] virtual result<void> preallocate(uint64_t size) = 0;  // may be a no-op
  [[nodiscard]] virtual result<uint64_t> size() = 0;
  // The first position at or after `pos` that may hold data (lseek SEEK_DATA): everything in
  // [pos, result) reads as zeros (a hole, or preallocated space never written). Returns the file
  // size when no data follows, and `pos` itself when the file system cannot tell. Lets recovery
  // skip the zero tail of a preallocated segment without reading it.
  [[nodiscard]] virtual result<uint64_t> next_data(uint64_t pos) = 0;
};

enum class open_mode { existing, create };

class file_factory {
 public:
  virtual ~file_factory() = default;
  // Opens for read and write; open_mode::create creates a missing file. Creating a file changes
  // its directory: the new name is durable only after sync_dir() of that directory. Any failure
  // (EMFILE and ENFILE included) is errc::storage_error; nothing is created then.
  [[nodiscard]] virtual result<std::shared_ptr<file>> open(const std::filesystem::path& p, open_mode mode) = 0;
  // Unlinks a file; a missing file counts as removed. Durable only after sync_dir() of its folder.
  [[nodiscard]] virtual result<void> remove(const std::filesystem::path& p) = 0;
  [[nodiscard]] virtual result<void> rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
  // Creates one directory (its parent must exist). True if it was created, false if it existed
  // already. Durable only after sync_dir() of the parent.
  [[nodiscard]] virtual result<bool> create_dir(const std::filesystem::path& dir) = 0;
  // fsync of a directory: makes the creations, renames and removals of names in it durable.
  [[nodiscard]] virtual result<void> sync_dir(const std::filesystem::path& dir) = 0;
};

// The process-wide POSIX implementation.
file_factory& posix_files();

}  // namespace ferry::log
