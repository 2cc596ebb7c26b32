#pragma once
// raft_store: the durable state of ONE consensus group (the metadata group) in its own RocksDB
// instance, e.g. under <data-dir>/cluster: the hard state (term, vote), the log entries after the
// latest snapshot, and that snapshot (its index, term, membership and the state machine's bytes).
// It is what a group::ready asks the host to persist (broker/consensus/types.h, "ready"), and what
// load() gives back to construct the group after a restart (consensus::durable_state).
//
// Writes and what is durable when
//   save_hard_state()  one synced write: durable when it returns.
//   append()           truncation and new entries in one WriteBatch, NOT synced: it reaches the
//                      operating system (it survives a crash of the process) but not the disk.
//   sync()             makes every write before it durable (it syncs RocksDB's write-ahead log)
//                      and says which log position that covers: the host passes it to
//                      group::synced(). One sync covers any number of appends before it.
//   save_snapshot()    the snapshot and the removal of the entries it replaces, one synced write.
//
// Crash semantics. Every write is one atomic RocksDB WriteBatch, and RocksDB recovers its
// write-ahead log up to the first damaged or missing record (point-in-time recovery). So after a
// crash the store holds every synced write and, of the unsynced appends after the last sync, some
// prefix in the order they were made (all of them after a process crash, possibly none after a
// power loss) - never a part of one append, never an append without an earlier one, never a
// truncation without the entries that followed it in the same append. A log that keeps more
// than was fsynced is one the group could have had had the fsync completed before the crash, so
// it is safe to restore (load()): the group assumes only the fsynced part survives, and anything
// more is a prefix of what it wrote.
//
// Errors. A RocksDB failure is storage_error (disk_full for no space), and afterwards the store
// refuses every write with storage_error until it is reopened: after a failed write or sync what
// is on disk is unknown (STYLE.md), and a sync retried on the same handle could report success for
// writes the operating system already dropped. A value that fails its checksum or does not parse,
// or a log with a hole, is storage_error from load() (the message names the key), never a crash.
//
// Threading: blocking; call it from the disk thread pool, never from a shard (asserted). Not
// thread-safe: one owner calls it, in the order of the group's readys.
//
// Format (every value ends with the CRC-32C of the bytes before it; integers little-endian):
//   "hard_state"        u8 format = 1, u64 term, i32 vote
//   "snapshot"          u8 format = 1, u64 index, u64 term, u32 n, n bytes of the membership
//                       (consensus::encode_membership), then the snapshot's bytes
//   "log/" + u64 index  big-endian index (keys sort in log order); u8 format = 1, u64 term,
//                       u8 kind (consensus::entry_kind), then the entry's data
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/consensus/group.h"
#include "broker/consensus/types.h"
#include "schema/result.h"

namespace ferry::cluster {

// A position in the log: an index and the term of the entry there (0, 0: the empty log).
struct log_position {
  consensus::index_t index = 0;
  consensus::term_t term = 0;
  friend bool operator==(const log_position&, const log_position&) = default;
};

// What survived: the group's durable state and the snapshot's bytes (empty without a snapshot).
struct raft_store_state {
  consensus::durable_state durable;
  std::string snapshot_data;
};

// What a snapshot does to the log after it. keep_tail: the host compacted its own log (every
// entry after the snapshot stays). drop_log: a follower installs a leader's snapshot, which
// replaces its whole log (entries after it may be divergent; group.h "Log start").
enum class snapshot_log : uint8_t { keep_tail, drop_log };

class raft_store {
 public:
  // Opens the store in `dir`, creating it (and `dir`) if missing, and reads where the log ends.
  // storage_error if RocksDB cannot open it or the log's last entry or snapshot does not parse.
  [[nodiscard]] static result<std::unique_ptr<raft_store>> open(const std::filesystem::path& dir);
  ~raft_store();
  raft_store(const raft_store&) = delete;
  raft_store& operator=(const raft_store&) = delete;

  // Everything that is in the store: what the group is constructed from after a restart. Entries
  // at or below the snapshot never appear. storage_error for a damaged value or a hole in the log.
  [[nodiscard]] result<raft_store_state> load() const;

  [[nodiscard]] result<void> save_hard_state(const consensus::hard_state& h);

  // Drops every entry at or after `truncate_from` (if set), then writes `entries`, atomically and
  // without a sync. Preconditions (asserted): entries have consecutive indexes; the first one is
  // `truncate_from` if set, else last().index + 1; truncate_from is after the snapshot and at
  // most last().index + 1.
  [[nodiscard]] result<void> append(std::optional<consensus::index_t> truncate_from,
                                    const std::vector<consensus::entry>& entries);

  // Makes every write so far durable; returns the log's last position that covers (the
  // snapshot's with an empty log, (0, 0) with neither).
  [[nodiscard]] result<log_position> sync();

  // Stores the snapshot `ref` with the state machine's `data` and deletes the entries it
  // replaces (at or below ref.index; with drop_log, every entry), in one synced write.
  // Precondition: ref.index > the stored snapshot's index.
  [[nodiscard]] result<void> save_snapshot(const consensus::snapshot_ref& ref, std::string_view data, snapshot_log log);

  // The log's last position (see sync()) and the stored snapshot's index, as written so far.
  [[nodiscard]] log_position last() const { return last_; }
  [[nodiscard]] consensus::index_t snapshot_index() const { return snapshot_.index; }

 private:
  struct impl;
  explicit raft_store(std::unique_ptr<impl> i);

  std::unique_ptr<impl> impl_;  // the RocksDB handle, and whether a write failed
  log_position last_;
  log_position snapshot_;
};

}  // namespace ferry::cluster
