#pragma once
// partition_log: the segmented, append-only log of one partition (DESIGN.md, "Segmented log";
// byte formats in schema/segment.md).
//
// Threading: one owner thread (the partition's shard) calls every member function, except
// run_sync(), which is static and runs on a disk thread. Nothing here blocks on fsync except
// run_sync(). Reads and appends use pread/pwrite on the page cache.
//
// Durability: append() writes into the page cache and returns at once. To make appends durable,
// the owner calls begin_sync() (owner thread), run_sync() (disk thread), end_sync() (owner thread):
// one fdatasync covers every batch appended before begin_sync() (group commit). durable_offset()
// is the offset below which everything is synced. After a failed write or fsync the log refuses
// further appends with errc::storage_error until it is reopened (recovery); it never retries an
// fsync and pretends it worked. A failure to open a file (a new segment on roll, EMFILE included)
// fails only that append, with errc::storage_error; the next append tries again.
//
// Damage: open() truncates only a torn tail (damage with no valid batch anywhere after it). Any
// other damage, and damage a read finds later, puts the log in the corrupt state (corruption()):
// nothing is truncated, deleted or skipped; writes are refused and reads stop before the damage
// until truncate_suffix() cuts it away (replication repairs from a peer that way).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "broker/base/clock.h"
#include "broker/log/file.h"
#include "schema/record_batch.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::log {

struct log_config {
  std::filesystem::path dir;                    // this partition's folder; created if missing
  uint64_t segment_bytes = 128ull << 20;        // roll before a batch would make the segment bigger
  int64_t segment_ms = 7LL * 24 * 3600 * 1000;  // roll when the active segment's first batch is older
  uint32_t index_interval_bytes = 4096;         // one sparse offset/time index entry per this many bytes
  bool preallocate = true;                      // fallocate each new segment to segment_bytes
  int64_t retention_ms = -1;                    // <= 0: no time limit
  int64_t retention_bytes = -1;                 // <= 0: no size limit (whole partition)
  const clock* clk = nullptr;                   // nullptr: the system clock. Must outlive the log.
  file_factory* files = nullptr;                // nullptr: real POSIX files. Must outlive the log.
};

struct append_info {
  offset base;          // offset of the batch's first record
  offset last;          // offset of its last record
  int64_t append_time;  // broker clock (ms) stamped into the batch
};

// What one fdatasync will cover; made by begin_sync(), consumed by run_sync() and end_sync().
struct pending_sync {
  std::vector<std::shared_ptr<file>> files;  // keeps the files open even if retention drops them
  offset upto{0};                            // every batch below this is durable after the sync
  // Set when a segment was created since the last sync: its directory entry must be made durable
  // too (sync_dir through `fs`, which outlives the log's files by log_config's contract).
  std::filesystem::path dir;
  file_factory* fs = nullptr;
  bool empty() const { return files.empty() && dir.empty(); }
};

// Where the log is damaged; see partition_log::corruption().
struct corruption_info {
  offset at;          // first offset not readable: the expected base offset of the batch at the damage
  std::string where;  // "segment <data file path> position <byte position>"
  std::string why;    // what is wrong there ("batch CRC32C mismatch", "gap in the log: ...")
};

// Segments retention took out of the log whose files are not deleted yet (detach_for_retention).
// Deleting a big file (the unlink, and the last close that frees its blocks) takes tens of ms on
// ext4, so it runs on a disk thread, never on the shard: remove_retired(). Until then the files
// stay on disk; a restart before that finds them and retention deletes them again.
struct retired_segments {
  std::vector<std::filesystem::path> data_paths;  // oldest first
  std::vector<std::shared_ptr<file>> handles;     // closed by remove_retired, after the unlinks
  file_factory* fs = nullptr;                     // outlives the files by log_config's contract
  std::filesystem::path dir;                      // their folder, fsynced after the unlinks
  bool empty() const { return data_paths.empty(); }
};

struct retention_result {
  int segments_deleted = 0;
  uint64_t bytes_deleted = 0;
  offset new_start{0};
  retired_segments retired;  // detach_for_retention only: the files still to delete
};

struct segment_info {
  offset base;
  uint64_t size_bytes;
  int64_t max_timestamp;
};

class partition_log {
 public:
  // Opens (creating if needed, with every folder it creates fsynced into its parent) and recovers
  // the log in cfg.dir (schema/segment.md, "Recovery"): verifies the tail of the last segment;
  // truncates a torn tail, i.e. damage with no whole valid batch anywhere after it in any segment
  // (found by scanning forward byte by byte, trusting no length field); rebuilds missing or
  // damaged indexes. Damage followed by valid data (or a gap between segments) is not an error:
  // the log opens in the corrupt state (corruption()) and nothing at or after the damage is
  // truncated or deleted. Everything recovered is fdatasynced before open() returns, so
  // durable_offset() == next_offset() afterwards. Errors: storage_error (I/O), invalid_argument
  // (config). Blocks on I/O: call it at start-up, off the network shards if possible.
  [[nodiscard]] static result<std::unique_ptr<partition_log>> open(log_config cfg);
  ~partition_log();
  partition_log(const partition_log&) = delete;
  partition_log& operator=(const partition_log&) = delete;

  // Appends one complete batch (verified by the caller with wire::verify_batch): assigns offsets
  // from next_offset(), stamps base_offset, leader epoch and append time (the log's clock) into
  // `batch` in place, writes it, rolls the segment first if needed. Not durable until a sync.
  // Errors: storage_error / disk_full (nothing partial stays in the file; only a failed write,
  // truncate or fsync makes the log failed(), a failed open of a new segment does not),
  // corrupt_batch if the header does not parse or if the log is corrupt (the message names the
  // damage).
  [[nodiscard]] result<append_info> append(std::span<std::byte> batch, epoch leader_epoch);

  // Reads whole batches, the first being the batch that contains `from`, until max_bytes would be
  // exceeded (at least one whole batch is returned even if it is larger), never returning a batch
  // whose last offset is >= `upto` (the high-water mark). Appends bytes to `out`. Each batch is
  // CRC-checked: a corrupt one is errc::corrupt_batch, never served, and puts the log in the
  // corrupt state (or lowers corruption()->at), whatever was appended to `out` before it being
  // whole good batches. `from` below start_offset() or above next_offset() is
  // errc::offset_out_of_range; from == next_offset() returns nothing. Corrupt state: reads stop
  // before corruption()->at (success with the batches below it), and `from` >= at (up to
  // next_offset()) is errc::corrupt_batch.
  [[nodiscard]] result<void> read(offset from, size_t max_bytes, offset upto, std::vector<std::byte>& out);

  // Calls fn(header) for every batch from the one containing `from` to the end (headers only,
  // no CRC check of bodies). Used to rebuild producer state on start-up. A header that does not
  // chain is damage: it puts the log in the corrupt state. Corrupt state: visits only the batches
  // below corruption()->at and then returns success (`from` >= at visits nothing); check
  // corruption() afterwards. Errors: offset_out_of_range, storage_error (I/O).
  [[nodiscard]] result<void> for_each_batch_header(offset from,
                                                   const std::function<void(const wire::batch_header&)>& fn);

  // First offset whose batch has max_timestamp >= ts, or next_offset() if none. Corrupt state:
  // never beyond corruption()->at (the damage is not skipped).
  [[nodiscard]] result<offset> offset_for_timestamp(int64_t ts);

  // Group commit, see the file comment.
  pending_sync begin_sync();
  [[nodiscard]] static result<void> run_sync(pending_sync& s);
  void end_sync(const pending_sync& s, const result<void>& outcome);

  // Deletes whole non-active segments, oldest first, while the oldest lies entirely below
  // `low_water_mark`, or its newest append time (broker clock) is older than now - retention_ms,
  // or the partition is over retention_bytes; stops at the first segment it keeps. Never deletes
  // the active segment, nor a segment holding offsets at or above `keep_from` (what the broker's
  // own state machines have not absorbed yet), nor, in the corrupt state, a segment holding
  // offsets at or above corruption()->at, whatever the limits say. Crash-safe: a segment's index
  // files go first, its data file last, then the folder is fsynced (schema/segment.md,
  // "Retention and truncation").
  [[nodiscard]] result<retention_result> apply_retention(offset low_water_mark, offset keep_from = offset{INT64_MAX});
  // The same choice of segments, but only takes them out of the log (no file I/O): their files
  // are in the result's `retired`, for remove_retired() on a disk thread (any thread). Reads see
  // the new start at once. The broker's retention uses this pair so the shard never blocks on an
  // unlink.
  [[nodiscard]] retention_result detach_for_retention(offset low_water_mark, offset keep_from = offset{INT64_MAX});
  [[nodiscard]] static result<void> remove_retired(retired_segments& r);

  // Removes every batch at or above `from` (replication: divergent tail). `from` must be a batch
  // boundary (else errc::invalid_argument) in [start_offset(), next_offset()] (else
  // offset_out_of_range). durable_offset() drops to at most `from`, and so does the `upto` of a
  // sync already begun. Blocks on one fdatasync and directory fsyncs (rare; the truncation must
  // not come back after a crash). Corrupt state: `from` <= corruption()->at removes the damage and
  // every segment file after it, clears the corrupt state and makes the log writable again (the
  // repair path); `from` > at is errc::corrupt_batch. Errors leave the log failed().
  [[nodiscard]] result<void> truncate_suffix(offset from);

  // Syncs and closes the active segment (clean shutdown: the next open has nothing to recover,
  // and, unless the log is corrupt, a marker file tells it so).
  [[nodiscard]] result<void> close();

  offset start_offset() const;  // first offset still stored
  // Offset the next appended record gets (log end). Corrupt state: the end of the last valid
  // batch found after the damage at open, or of the last segment file's base offset, whichever is
  // larger (so offsets are never reused), else corruption()->at.
  offset next_offset() const;
  offset durable_offset() const;  // every batch below this has been fsynced
  // The readable segments (in the corrupt state after open(): up to the damaged one, whose size
  // ends at the damage; the segment files after it are not counted).
  uint64_t size_bytes() const;
  size_t segment_count() const;
  std::vector<segment_info> segments() const;
  bool failed() const;  // a write or fsync failed; appends are refused
  // Set while the log is corrupt: from open() (damage followed by valid data, or a gap between
  // segment files) or from a read that found a bad batch at run time (bit rot); lowered if damage
  // is found below it; cleared only by truncate_suffix(from <= at). Owner thread.
  std::optional<corruption_info> corruption() const;

 private:
  struct impl;
  explicit partition_log(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace ferry::log
