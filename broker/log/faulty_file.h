#pragma once
// faulty_files: a test file_factory over real files that (a) fails operations on demand with
// ENOSPC (errc::disk_full), EIO or EMFILE (errc::storage_error), and (b) simulates a machine
// crash the way disks and kernels can leave things.
//
// Crash model. Data: per path it tracks `synced_end` (the highest byte written and covered by a
// datasync) and `synced_size` (the file size at that datasync, preallocated space included).
// Bytes below synced_end survive. Of the unsynced bytes, crash(torn) keeps a prefix of `torn`
// bytes; crash_sectors(seed) keeps a random subset of the 512-byte sectors and turns each other
// one back into what it held at the last datasync (old contents) or into zeros. The file size
// goes back to max(end of what was kept, synced_size): an unsynced ftruncate is undone, unsynced
// preallocation is dropped. Bytes overwritten below synced_end are not restored (the log never
// does that outside recovery).
// Directory entries: a name created (a file opened with open_mode::create that did not exist, a
// directory made by create_dir, the target of a rename) in a folder whose sync_dir() has not run
// since is gone after a crash (a created folder with everything in it; a rename is undone), and
// a file removed (or replaced by a rename) without a later sync_dir() of its folder comes back
// with the contents it had on disk. crash() undoes every such change; crash_sectors(seed) undoes
// each one or not, by the seed (a disk may persist some directory changes and not others). Only
// names that went through this factory are tracked.
//
// Files must be closed (the log destroyed) before crash(). Not thread-safe except that datasync
// may run on another thread than the other calls (it takes the lock).
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "broker/log/file.h"

namespace ferry::log {

class faulty_files final : public file_factory {
 public:
  enum class op { write, sync, truncate, open, remove, sync_dir };
  enum class fault { disk_full, io_error, too_many_files };  // ENOSPC, EIO, EMFILE
  enum class repeat { once, always };

  // `real` must outlive this object.
  explicit faulty_files(file_factory& real = posix_files());

  // Arms a fault for the next (repeat::once) or every (repeat::always) call of `o` on a path that
  // ends with `suffix` ("" = every path; for sync_dir the folder's path), after letting `skip`
  // matching calls succeed. A failed write first writes half its bytes (a short write the kernel
  // could have done) so the caller's clean-up is exercised; a failed open creates nothing.
  void fail(op o, fault f, repeat r = repeat::once, std::string suffix = ".log", int skip = 0);
  void heal();  // disarms every fault

  // Simulated power loss, see the file comment. `torn_bytes`: how many unsynced bytes of each
  // file survive, as a prefix of the unsynced range.
  [[nodiscard]] result<void> crash(uint64_t torn_bytes = 0);
  // Simulated power loss where the unsynced range of each file is torn sector by sector, not as
  // a prefix: each 512-byte sector survives, goes back to its old contents, or reads as zeros,
  // chosen by `seed`; each unsynced directory change is undone or kept, also by `seed`.
  [[nodiscard]] result<void> crash_sectors(uint64_t seed);

  int datasyncs() const;  // successful datasync calls so far
  int dir_syncs() const;  // successful sync_dir calls so far

  result<std::shared_ptr<file>> open(const std::filesystem::path& p, open_mode mode) override;
  result<void> remove(const std::filesystem::path& p) override;
  result<void> rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
  result<bool> create_dir(const std::filesystem::path& dir) override;
  result<void> sync_dir(const std::filesystem::path& dir) override;

  static constexpr uint64_t sector = 512;

  struct state {
    uint64_t written_end = 0;  // highest byte written (or kept by a truncate) so far
    uint64_t synced_end = 0;
    uint64_t synced_size = 0;
    // Sectors written since the last datasync that existed then: their contents at that datasync
    // (what a lost sector goes back to). Keyed by sector number.
    std::map<uint64_t, std::vector<std::byte>> old_sectors;
  };
  struct armed {
    bool on = false;
    fault f = fault::io_error;
    repeat r = repeat::once;
    std::string suffix;
    int skip = 0;
  };

  // Used by the file objects.
  std::mutex mu_;
  std::map<std::string, state> states_;
  armed faults_[6];
  int datasyncs_ = 0;
  int dir_syncs_ = 0;
  bool take_fault(op o, const std::filesystem::path& p, fault& f);

 private:
  // A change to a directory entry not yet made durable by sync_dir() of `dir`.
  struct entry_change {
    enum kind { created_file, created_dir, renamed, removed } k;
    std::string dir;   // the folder whose sync makes it durable
    std::string path;  // the name created or removed, or the rename target
    std::string from;  // renamed: the old name
    // removed: what the file held on disk (bytes up to its synced size) and its crash state.
    std::vector<std::byte> bytes;
    std::optional<state> st;
  };
  result<void> crash_impl(uint64_t torn_bytes, std::optional<uint64_t> seed);
  result<void> undo_entries(std::mt19937_64* rng);
  result<entry_change> stash_removal(const std::filesystem::path& p);

  file_factory& real_;
  std::vector<entry_change> changes_;  // oldest first
};

// Damage helpers for tests, on a closed file: XOR the byte at `pos` with `mask` (bit rot), and
// overwrite [pos, pos + len) with zeros (a lost or zeroed page).
[[nodiscard]] result<void> flip_bits(const std::filesystem::path& p, uint64_t pos, uint8_t mask);
[[nodiscard]] result<void> zero_range(const std::filesystem::path& p, uint64_t pos, uint64_t len);

}  // namespace ferry::log
