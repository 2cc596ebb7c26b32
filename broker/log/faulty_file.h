#pragma once
// faulty_files: a test file_factory over real files that (a) fails writes, fsyncs or truncates
// on demand with ENOSPC (errc::disk_full) or EIO (errc::storage_error), and (b) simulates a
// machine crash: every byte written since a file's last successful datasync is lost.
//
// Crash model (enough for an append-only log): per path it tracks `synced_end` (the highest byte
// written and covered by a datasync) and `synced_size` (the file size at that datasync, which
// includes preallocated space). crash() keeps [0, synced_end) plus an optional torn prefix of the
// unsynced bytes, zero-fills the rest and sets the size back to max(kept, synced_size): an
// unsynced ftruncate is undone, unsynced preallocation is dropped. Files must be closed (the
// log destroyed) before crash(). Bytes overwritten below synced_end are not restored (the log
// never does that outside recovery). Not thread-safe except that datasync may run on another
// thread than the other calls (it takes the lock).
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include "broker/log/file.h"

namespace ferry::log {

class faulty_files final : public file_factory {
 public:
  enum class op { write, sync, truncate };
  enum class fault { disk_full, io_error };  // ENOSPC or EIO
  enum class repeat { once, always };

  // `real` must outlive this object.
  explicit faulty_files(file_factory& real = posix_files());

  // Arms a fault for the next (repeat::once) or every (repeat::always) call of `o` on a file
  // whose path ends with `suffix` ("" = every file). A failed write first writes half its bytes
  // (a short write the kernel could have done) so the caller's clean-up is exercised.
  void fail(op o, fault f, repeat r = repeat::once, std::string suffix = ".log");
  void heal();  // disarms every fault

  // Simulated power loss, see the file comment. `torn_bytes`: how many unsynced bytes of each
  // file survive (a torn write).
  [[nodiscard]] result<void> crash(uint64_t torn_bytes = 0);

  int datasyncs() const;  // successful datasync calls so far

  result<std::shared_ptr<file>> open(const std::filesystem::path& p, open_mode mode) override;
  result<void> remove(const std::filesystem::path& p) override;
  result<void> rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
  result<void> sync_dir(const std::filesystem::path& dir) override;

  struct state {
    uint64_t written_end = 0;  // highest byte written (or kept by a truncate) so far
    uint64_t synced_end = 0;
    uint64_t synced_size = 0;
  };
  struct armed {
    bool on = false;
    fault f = fault::io_error;
    repeat r = repeat::once;
    std::string suffix;
  };

  // Used by the file objects.
  std::mutex mu_;
  std::map<std::string, state> states_;
  armed faults_[3];
  int datasyncs_ = 0;
  bool take_fault(op o, const std::filesystem::path& p, fault& f);

 private:
  file_factory& real_;
};

}  // namespace ferry::log
