#pragma once
// Private to broker/log: the state behind partition_log, shared by its four files, each a chapter:
//   segment.cc   one segment file: names, per-batch bookkeeping, header and CRC checks, scan, roll
//   index.cc     the sparse offset and time indexes (in memory and their cache files), lookups
//   recovery.cc  open(): what a log folder holds, torn tail versus damage followed by data
//   log.cc       the operations: append, read, sync, retention, truncation, close
// Format and the crash-safety argument: schema/segment.md.
#include <array>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/log/log.h"

namespace spdlog {
class logger;
}

namespace ferry::log::detail {

std::shared_ptr<spdlog::logger> logger();  // the "log" subsystem's logger (log.cc)

inline constexpr size_t oentry_size = 8;   // {u32 relative offset, u32 position}
inline constexpr size_t tentry_size = 12;  // {i64 max timestamp before the entry, u32 relative offset}
inline constexpr size_t hsize = wire::batch_header_size;
// Written by close() once everything is synced, removed by open(): its presence means no segment
// holds unsynced bytes (schema/segment.md, "Files").
inline constexpr const char* clean_marker = "clean_shutdown";

struct oentry {
  uint32_t rel;
  uint32_t pos;
};
struct tentry {
  int64_t ts;
  uint32_t rel;
};

std::string base_name(int64_t base);  // 20 digits, zero-padded

// The largest offset a log holds: offset sums (next + record_count, base + deltas) never overflow.
inline constexpr int64_t max_log_offset = int64_t{1} << 62;

// One segment: its data file and, in memory, its sparse indexes (the files are caches of these).
struct segment {
  int64_t base = 0;
  int64_t next = 0;   // offset after the last batch
  uint64_t size = 0;  // logical bytes of data (the file may be longer: preallocation, or damage)
  std::filesystem::path data_path;
  std::shared_ptr<file> data;
  std::shared_ptr<file> oidx;  // open only for the active segment
  std::shared_ptr<file> tidx;
  std::vector<oentry> oi;
  std::vector<tentry> ti;      // ti[i] pairs with oi[i] (same relative offset)
  size_t oi_written = 0;       // entries already in the index files
  uint64_t since_entry = 0;    // data bytes since the last index point
  int64_t max_ts = INT64_MIN;  // max batch max_timestamp
  int64_t last_append = INT64_MIN;
  int64_t first_append = INT64_MIN;

  std::filesystem::path path(const char* ext) const {
    auto p = data_path;
    p.replace_extension(ext);
    return p;
  }
};

std::string where(const std::filesystem::path& data_path, uint64_t pos);

// Indexes first, data file last: a crash in between leaves a data file without indexes, which
// open() rebuilds (or a leftover index without data, which open() deletes).
result<void> delete_segment_files(file_factory& fs, const std::filesystem::path& data_path);

void note_batch(segment& s, uint64_t pos, const wire::batch_header& h, uint32_t interval, bool indexed);

struct scan_end {
  bool clean = true;     // reached the end of the file exactly at a batch boundary
  uint64_t bad_pos = 0;  // else: the first bad batch
  std::string why;
  std::array<std::byte, hsize> raw{};
  size_t raw_n = 0;
};

// What a search past a damaged place found (impl::search_after).
struct search_result {
  bool any = false;         // a whole valid batch lies after the damage
  int64_t end = INT64_MIN;  // largest next offset of those batches (plausible ones only)
  std::string first;        // where the first one is, for the log line
};

}  // namespace ferry::log::detail

namespace ferry::log {

struct partition_log::impl {
  using segment = detail::segment;

  log_config cfg;
  const clock* clk = nullptr;
  system_clock_source sys_clock;
  file_factory* fs = nullptr;
  std::vector<segment> segs;  // the readable log, oldest first; the last is the active segment
  int64_t durable = 0;
  bool failed = false;
  bool closed = false;
  // Group commit.
  std::vector<std::shared_ptr<file>> rolled;  // data files of segments rolled since the last begin_sync
  bool dir_dirty = false;
  int64_t last_begin_upto = -1;
  std::deque<int64_t> inflight;    // `upto` of begun syncs; lowered by truncate_suffix
  std::vector<std::byte> scratch;  // reused read buffer
  std::vector<std::byte> ibuf;     // reused index encode buffer
  bool index_write_warned = false;
  bool clean_start = false;  // open() found the clean-shutdown marker

  // Damage (partition_log::corruption()). Set by open() or by a read that finds it; lowered when
  // damage is found below it; cleared by truncate_suffix(). `damage_pos` is the byte position of
  // the damage in the segment holding offset corrupt->at (find_segment).
  std::optional<corruption_info> corrupt;
  uint64_t damage_pos = 0;
  // Set by open() when valid data follows the damage: the log end past it (next_offset()), and
  // the data files of the segments after the damaged one, oldest first. Those are not in `segs`:
  // nothing reads, indexes, retains or truncates them until truncate_suffix() removes them.
  int64_t end_beyond = -1;
  std::vector<std::filesystem::path> beyond;

  segment& active() { return segs.back(); }
  // Offset after the last readable batch; appends go here.
  int64_t next() const { return segs.back().next; }
  // next_offset(): also counts what lies past a damage found at open.
  int64_t end() const { return end_beyond >= 0 ? end_beyond : segs.back().next; }
  // Reads stop before this offset.
  int64_t readable_end() const { return corrupt ? corrupt->at.value : INT64_MAX; }
  std::string dir() const { return cfg.dir.string(); }

  // ---- damage (log.cc) ----
  void note_damage(int64_t at, const std::filesystem::path& data_path, uint64_t pos, std::string why);
  error damage_error() const;

  // ---- reading helpers (segment.cc) ----
  result<wire::batch_header> read_header(const segment& s, uint64_t pos, int64_t expected);
  // CRC32C of the batch with header `h` at `pos`: false on a mismatch or a short read.
  result<bool> crc_ok(const segment& s, uint64_t pos, const wire::batch_header& h);
  result<detail::scan_end> scan(segment& s, uint64_t pos, int64_t expected, uint64_t file_size, bool crc_all,
                                bool resume);

  // ---- index files (index.cc) ----
  bool load_index(segment& s, uint64_t file_size);
  bool index_tail_matches(segment& s, uint64_t file_size);
  void encode_entries(const segment& s, size_t from, bool time);
  void warn_index(const error& e);
  void flush_index(segment& s);
  void write_index_files(segment& s);
  result<void> open_index_handles(segment& s);
  void rebuild_index(segment& s);

  // ---- segments (segment.cc) ----
  result<void> remove_segment_files(const std::filesystem::path& data_path) {
    return detail::delete_segment_files(*fs, data_path);
  }
  // Opens (creating) the files of a new, empty segment at `base` without adding it to the log.
  // An open failure (EMFILE included) is returned and changes nothing; a failed truncate marks the
  // log failed.
  result<segment> make_segment(int64_t base);
  result<void> create_segment(int64_t base);
  result<void> roll();

  // ---- lookups (index.cc) ----
  size_t find_segment(int64_t off) const;
  struct cursor {
    size_t si = 0;
    uint64_t pos = 0;
    int64_t expected = 0;
  };
  cursor index_start(size_t si, int64_t off) const;

  // ---- the read cursor (log.cc) ----
  result<cursor> locate(int64_t off);
  result<std::optional<wire::batch_header>> header_at(cursor& c);
  // A header that does not chain at `c`: the damage is there, or in the previous batch `prev` (at
  // prev_c) if that one's CRC fails (its length field sent us to the wrong place). Notes it.
  void blame(const cursor& c, const std::optional<std::pair<cursor, wire::batch_header>>& prev, const error& e);

  // ---- recovery (recovery.cc) ----
  result<void> recover();
  result<void> make_dirs();
  // Looks for whole valid batches in [from, size) of `f`: a header that parses, a length that
  // fits, a plausible base offset (>= min_base, and <= anchor_base + bytes since anchor_pos: an
  // offset takes at least a byte), and a matching CRC32C. Byte by byte, trusting no length field
  // of the damaged data; after a valid batch it tries the position right after it first.
  // `stop_at_first`: return at the first one found (the torn-tail decision); else go on to the end
  // (out.end: the log end past a damage).
  result<void> search_after(file& f, const std::filesystem::path& name, uint64_t from, uint64_t size, int64_t min_base,
                            int64_t anchor_base, uint64_t anchor_pos, bool stop_at_first, detail::search_result& out);
  // The batch at `pos` whose header chains (base offset `expected`) but whose length field is
  // wrong: its header with the true length, read from its records' own length prefixes, if the
  // CRC32C matches over that length (the batch is whole: bit rot, not a torn write).
  result<std::optional<wire::batch_header>> whole_batch_with_bad_length(file& f, uint64_t pos, uint64_t size,
                                                                        int64_t expected);
  // Recovery found damage in segs.back() at `bad_pos` (its size and next already end there; the
  // file is `dfile_size` bytes; `tail` is the scan's view of the bad header, if any). Decides: a
  // whole valid batch anywhere after it (in this file or the segment files `later`, base offsets
  // in order) puts the log in the corrupt state and keeps every byte; otherwise it is a torn tail:
  // the file is cut at bad_pos and the later files are deleted. Files it opened go to later_files.
  result<void> on_damage(uint64_t dfile_size, uint64_t bad_pos, std::string why, const detail::scan_end* tail,
                         const std::vector<int64_t>& later, std::vector<std::shared_ptr<file>>& later_files);
};

}  // namespace ferry::log
