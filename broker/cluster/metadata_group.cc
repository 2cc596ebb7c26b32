// The metadata group's host loop: the ready order of consensus/types.h, step by step. The
// crash-consistency of each write is raft_store's (see its header); this file keeps the order.
#include "broker/cluster/metadata_group.h"

#include <utility>
#include <vector>

#include "broker/base/assert.h"

namespace ferry::cluster {

metadata_group::metadata_group(std::unique_ptr<raft_store> store, metadata_image image, std::string snapshot,
                               send_fn send)
    : store_(std::move(store)), image_(std::move(image)), snapshot_(std::move(snapshot)), send_(std::move(send)) {}

metadata_group::~metadata_group() = default;

result<std::unique_ptr<metadata_group>> metadata_group::open(const consensus::config& cfg,
                                                             std::unique_ptr<raft_store> store,
                                                             consensus::time_point now, send_fn send) {
  auto st = store->load();
  if (!st) return st.error();
  metadata_image image;
  if (st->durable.snapshot_index != 0) {
    auto restored = metadata_image::restore(st->snapshot_data);
    if (!restored) return restored.error();
    // The image restarts where the snapshot ends; the core hands out the entries after it again.
    if (restored->version() != st->durable.snapshot_index)
      return fail(errc::storage_error, "metadata snapshot at version " + std::to_string(restored->version()) +
                                           " stored as the snapshot at index " +
                                           std::to_string(st->durable.snapshot_index));
    image = std::move(*restored);
  }
  std::unique_ptr<metadata_group> g(
      new metadata_group(std::move(store), std::move(image), std::move(st->snapshot_data), std::move(send)));
  g->group_ = std::make_unique<consensus::group>(cfg, std::move(st->durable), now);
  if (auto ok = g->drain(); !ok) return ok.error();
  return g;
}

result<void> metadata_group::failed(error e) {
  failed_ = e;
  return e;
}

result<void> metadata_group::step(const consensus::message& m, std::string_view snapshot, consensus::time_point now) {
  if (failed_) return *failed_;
  if (m.type == consensus::msg_type::install_snapshot)
    incoming_ = incoming_snapshot{m.prev_index, m.prev_term, std::string(snapshot)};
  group_->step(m, now);
  return drain();
}

result<void> metadata_group::tick(consensus::time_point now) {
  if (failed_) return *failed_;
  group_->tick(now);
  return drain();
}

result<consensus::propose_result> metadata_group::propose(std::string record, consensus::time_point now) {
  if (failed_) return *failed_;
  auto r = group_->propose(std::move(record), now);
  if (auto ok = drain(); !ok) return ok.error();
  return r;
}

result<void> metadata_group::compact() {
  if (failed_) return *failed_;
  const consensus::index_t upto = image_.version();
  if (upto <= group_->snapshot_index()) return {};
  std::string bytes = image_.snapshot();
  const consensus::term_t term = group_->term_at(upto);
  // The core's membership at `upto` is known only once it has compacted there. If the store
  // then fails, this member is failed (below) and is never used again, so the core never acts on
  // a snapshot that is not durable.
  group_->compact(upto);
  consensus::snapshot_ref ref{upto, term, group_->snapshot_membership()};
  if (auto ok = store_->save_snapshot(ref, bytes, snapshot_log::keep_tail); !ok) return failed(ok.error());
  snapshot_ = std::move(bytes);
  return drain();
}

result<void> metadata_group::drain() {
  while (!failed_ && group_->has_ready()) {
    if (auto ok = handle(group_->take_ready()); !ok) return failed(ok.error());
  }
  if (failed_) return *failed_;
  return {};
}

result<void> metadata_group::handle(consensus::ready rd) {
  // 0. A leader's snapshot replaces the image and the whole log, durably, before anything else.
  if (rd.snapshot) {
    const consensus::snapshot_ref& ref = *rd.snapshot;
    FERRY_ASSERT(incoming_ && incoming_->index == ref.index && incoming_->term == ref.term,
                 "the core installs the snapshot of the install_snapshot message just stepped");
    auto restored = metadata_image::restore(incoming_->bytes);
    if (!restored) return restored.error();
    if (restored->version() != ref.index)
      return fail(errc::storage_error, "leader's metadata snapshot at version " + std::to_string(restored->version()) +
                                           " sent as the snapshot at index " + std::to_string(ref.index));
    if (auto ok = store_->save_snapshot(ref, incoming_->bytes, snapshot_log::drop_log); !ok) return ok.error();
    image_ = std::move(*restored);
    snapshot_ = std::move(incoming_->bytes);
    incoming_.reset();
  }
  // 1. The log: truncation and new entries in one write, not yet synced.
  const bool appended = rd.truncate_from.has_value() || !rd.entries.empty();
  if (appended) {
    if (auto ok = store_->append(rd.truncate_from, rd.entries); !ok) return ok.error();
  }
  // 2. (term, vote) durable before any message of this ready leaves.
  if (rd.hard) {
    if (auto ok = store_->save_hard_state(*rd.hard); !ok) return ok.error();
  }
  // 3. The entries durable too, and the core told (a leader counts its own fsync for commits).
  if (appended) {
    auto pos = store_->sync();
    if (!pos) return pos.error();
    group_->synced(pos->index, pos->term);
  }
  // 4. Messages.
  for (const consensus::message& m : rd.messages) {
    const bool with_snapshot = m.type == consensus::msg_type::install_snapshot;
    FERRY_ASSERT(!with_snapshot || m.prev_index == store_->snapshot_index(),
                 "the core offers the snapshot the store holds");
    send_(m, with_snapshot ? std::string_view(snapshot_) : std::string_view());
  }
  // 5. Committed entries, in order. A refused record still advances the version (metadata_image.h).
  for (const consensus::entry& e : rd.committed) {
    if (e.kind == consensus::entry_kind::normal) {
      (void)image_.apply(e.index, e.data);
    } else {
      image_.advance(e.index);
    }
  }
  return {};
}

}  // namespace ferry::cluster
