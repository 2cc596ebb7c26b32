#pragma once
// broker/peer host: runs many consensus groups (broker/consensus/group.h) on one executor, ticks
// all of them from ONE timer, feeds them the messages the transport receives, and drains their
// `ready` batches in the order types.h documents, through a storage the caller provides, to the
// transport (so every group's heartbeats to one broker leave as one frame: transport.h).
//
// Drain order for one ready (types.h `ready`): 0. install the snapshot, 1. truncate and append the
// entries, 2. make the hard state durable (all three: storage::persist, which returns once the hard
// state is durable), 3. send the messages, 4. apply the committed entries (the apply callback).
// Entries may still be in the page cache when persist() returns: the storage reports their fsync
// with host::synced() later (group commit), and only fsynced entries count for a commit.
//
// Every input marks its group and schedules one drain on the executor: a frame of 1,000 heartbeats
// is stepped into 1,000 groups first, then their 1,000 replies are drained together and leave as
// one frame.
//
// Threading: everything on the executor the host and the transport share. Ownership: the transport
// and the storage must outlive the host; the host owns its groups.
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/consensus/group.h"
#include "broker/consensus/types.h"
#include "broker/peer/codec.h"

namespace ferry::peer {

class transport;

// Where a host keeps its groups' durable state. Called on the host's executor.
class storage {
 public:
  virtual ~storage() = default;
  // Steps 0-2 of `r` for group `g`: install r.snapshot (if set), truncate from r.truncate_from (if
  // set), append r.entries (page cache is enough), then make r.hard durable (if set) before
  // returning. Report the entries' fsync with host::synced() once it completes, on a later turn
  // of the executor (never from inside persist()).
  virtual void persist(group_id g, const consensus::ready& r) = 0;
};

// Committed entries of group `g`, in index order (step 4).
using apply_fn = std::function<void(group_id g, const std::vector<consensus::entry>& committed)>;

struct host_config {
  // How often the one timer ticks every group: a fraction of the heartbeat interval (group.h asks
  // for heartbeat_interval / 4 or so).
  std::chrono::milliseconds tick_interval{25};
  std::function<consensus::time_point()> clock;  // unset: monotonic_raw_now()
};

class host {
 public:
  // `t` and `s` must outlive the host. The transport's on_message must call deliver().
  host(boost::asio::any_io_executor ex, transport& t, storage& s, apply_fn apply, host_config cfg = {});
  ~host();
  host(const host&) = delete;
  host& operator=(const host&) = delete;

  // Adds a group (its config's `self` is this broker) restored from `restored`.
  // Precondition: no group `g` yet.
  void add_group(group_id g, const consensus::config& cfg, consensus::durable_state restored);
  // Starts the tick timer.
  void start();
  // Stops the tick timer; groups stay (no more ticks, no more drains after the current one).
  void stop();

  // A message from the transport: stepped into its group (unknown groups: dropped and counted).
  void deliver(group_id g, const consensus::message& m, consensus::time_point received);
  // The storage's fsync covers group g's log up to (index, term).
  void synced(group_id g, consensus::index_t index, consensus::term_t term);
  // Proposes `data` to group g (not_leader if it is unknown or not led here).
  [[nodiscard]] consensus::propose_result propose(group_id g, std::string data);

  // The group, or nullptr. For reading its state (role, term, commit); inputs go through the host.
  [[nodiscard]] const consensus::group* find(group_id g) const;
  [[nodiscard]] size_t size() const;
  [[nodiscard]] uint64_t ticks() const;                  // timer rounds so far
  [[nodiscard]] uint64_t dropped_unknown_group() const;  // messages for groups not hosted here

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

// A storage in memory, for tests: keeps every group's hard state and log, and reports each
// append's "fsync" through host::synced() on the next turn of the executor.
class memory_storage final : public storage {
 public:
  explicit memory_storage(boost::asio::any_io_executor ex);
  ~memory_storage() override;
  // The host to report fsyncs to; set before the first persist(). `h` must outlive every turn of
  // the executor that follows a persist() (a pending report calls it).
  void attach(host& h);
  void persist(group_id g, const consensus::ready& r) override;

  struct group_state {
    consensus::hard_state hard;
    std::optional<consensus::snapshot_ref> snapshot;
    std::vector<consensus::entry> log;  // after the snapshot
  };
  [[nodiscard]] const group_state* state(group_id g) const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace ferry::peer
