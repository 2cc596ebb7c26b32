#pragma once
// metadata_group: one broker's member of the metadata quorum, joining the consensus core
// (consensus::group), its durable state (raft_store) and the state machine the log builds
// (metadata_image). It drains every ready the core produces and does what types.h ("ready")
// asks, in that order:
//   0. a snapshot from the leader: restore the image from its bytes, store it replacing the whole
//      log (raft_store, drop_log, synced);
//   1. truncate the log and append the new entries (one unsynced write);
//   2. the hard state, synced;
//   3. make the appended entries durable (raft_store::sync()) and report it (group::synced());
//   4. hand the messages to `send` - only now, so (term, vote) and the entries they announce are
//      on disk before anyone hears of them;
//   5. apply the committed entries to the image in order: a normal entry is a metadata record
//      (metadata_image::apply), a noop or membership entry only advances the version.
// Step 3 runs inline: this wrapper is for one thread that may block on the disk (the simulation
// tests, or a host that runs the metadata group on its disk thread). A shard host would overlap
// the fsync with sending, as group.h allows.
//
// Snapshots. compact() snapshots the image at its version and drops the log up to there. A
// follower that needs entries the leader compacted gets an install_snapshot message; `send` is
// given the snapshot's bytes with it, and the receiver's host passes them to step() with it.
//
// Errors. A failed store write or sync, or a leader's snapshot that does not restore, is
// returned (storage_error) and leaves the member failed: every later call returns the same error
// and the host must drop it and open a new one from the store (after a failed fsync the state on
// disk is unknown; the core has moved on).
//
// Threading: none inside; one owner calls everything, and may block on the disk.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "broker/cluster/metadata_image.h"
#include "broker/cluster/raft_store.h"
#include "broker/consensus/group.h"
#include "broker/consensus/types.h"
#include "schema/result.h"

namespace ferry::cluster {

class metadata_group {
 public:
  // Called for every message to a peer, in order. `snapshot` holds the snapshot's bytes for an
  // install_snapshot message and is empty otherwise; both are valid only during the call.
  using send_fn = std::function<void(const consensus::message& m, std::string_view snapshot)>;

  // A member constructed from what `store` holds (its hard state, snapshot and log; the image
  // restored from the snapshot), as after a restart. `now` is the host's monotonic clock.
  // storage_error when the store does not load or its snapshot does not restore.
  [[nodiscard]] static result<std::unique_ptr<metadata_group>> open(const consensus::config& cfg,
                                                                    std::unique_ptr<raft_store> store,
                                                                    consensus::time_point now, send_fn send);
  metadata_group(const metadata_group&) = delete;
  metadata_group& operator=(const metadata_group&) = delete;
  ~metadata_group();

  // A message from a peer (with the snapshot's bytes for install_snapshot), then every ready.
  [[nodiscard]] result<void> step(const consensus::message& m, std::string_view snapshot, consensus::time_point now);
  [[nodiscard]] result<void> tick(consensus::time_point now);
  // Proposes the record's bytes (records.h, encode_metadata_record) as a normal entry.
  [[nodiscard]] result<consensus::propose_result> propose(std::string record, consensus::time_point now);
  // Snapshots the image at its version, stores it (synced) and drops the log up to there. Does
  // nothing when the image is not past the stored snapshot.
  [[nodiscard]] result<void> compact();

  [[nodiscard]] const metadata_image& image() const { return image_; }
  [[nodiscard]] const consensus::group& core() const { return *group_; }

 private:
  metadata_group(std::unique_ptr<raft_store> store, metadata_image image, std::string snapshot, send_fn send);
  result<void> drain();
  result<void> handle(consensus::ready rd);
  result<void> failed(error e);

  std::unique_ptr<raft_store> store_;
  std::unique_ptr<consensus::group> group_;
  metadata_image image_;
  std::string snapshot_;  // the stored snapshot's bytes (sent with install_snapshot)
  send_fn send_;
  // The snapshot that came with the last install_snapshot message, until the core installs it.
  struct incoming_snapshot {
    consensus::index_t index = 0;
    consensus::term_t term = 0;
    std::string bytes;
  };
  std::optional<incoming_snapshot> incoming_;
  std::optional<error> failed_;
};

}  // namespace ferry::cluster
