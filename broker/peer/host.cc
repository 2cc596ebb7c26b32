#include "broker/peer/host.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <unordered_map>
#include <utility>

#include "broker/base/assert.h"
#include "broker/peer/transport.h"

namespace ferry::peer {

namespace asio = boost::asio;

struct host::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor e, transport& tr, storage& st, apply_fn ap, host_config c)
      : ex(std::move(e)), t(tr), s(st), apply(std::move(ap)), cfg(std::move(c)), timer(ex) {
    if (!cfg.clock) cfg.clock = monotonic_raw_now;
  }

  struct slot {
    std::unique_ptr<consensus::group> g;
    bool dirty = false;  // in `dirty`, waiting for the next drain
  };

  asio::any_io_executor ex;
  transport& t;
  storage& s;
  apply_fn apply;
  host_config cfg;
  asio::steady_timer timer;
  std::unordered_map<group_id, slot> groups;
  std::vector<group_id> dirty;
  bool running = false;
  bool drain_posted = false;
  uint64_t ticks = 0;
  uint64_t dropped = 0;

  void mark(group_id id, slot& sl) {
    if (sl.dirty || !sl.g->has_ready()) return;
    sl.dirty = true;
    dirty.push_back(id);
    if (drain_posted) return;
    drain_posted = true;
    asio::post(ex, [w = weak_from_this()] {
      if (auto self = w.lock()) self->drain();
    });
  }

  // Every marked group's ready, each handled completely and in order before the next is taken
  // (types.h `ready`). All messages of one drain reach the transport before it flushes, so each
  // peer gets them coalesced.
  void drain() {
    drain_posted = false;
    std::vector<group_id> now_dirty;
    now_dirty.swap(dirty);
    for (group_id id : now_dirty) {
      auto it = groups.find(id);
      if (it == groups.end()) continue;
      slot& sl = it->second;
      sl.dirty = false;
      while (sl.g->has_ready()) {
        consensus::ready r = sl.g->take_ready();
        s.persist(id, r);  // 0-2: snapshot, entries, then the hard state durable
        for (auto& m : r.messages) {
          const node_id to = m.to;
          t.send(to, id, std::move(m));  // 3: only after the hard state is durable
        }
        if (!r.committed.empty() && apply) apply(id, r.committed);  // 4
      }
    }
  }

  void arm() {
    timer.expires_after(cfg.tick_interval);
    timer.async_wait([w = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = w.lock()) self->on_tick();
    });
  }

  // One timer for every group: a tick reads the clock once and ticks them all, so a tick's
  // heartbeats are drained together and leave as one frame per peer.
  void on_tick() {
    if (!running) return;
    ++ticks;
    const consensus::time_point now = cfg.clock();
    for (auto& [id, sl] : groups) {
      sl.g->tick(now);
      mark(id, sl);
    }
    arm();
  }
};

host::host(asio::any_io_executor ex, transport& t, storage& s, apply_fn apply, host_config cfg)
    : impl_(std::make_shared<impl>(std::move(ex), t, s, std::move(apply), std::move(cfg))) {}

host::~host() {
  impl_->running = false;  // a tick already queued does nothing
  try {
    impl_->timer.cancel();
  } catch (...) {
    // The timer's own destructor cancels it too; nothing else to do in a destructor.
  }
}

void host::add_group(group_id g, const consensus::config& cfg, consensus::durable_state restored) {
  FERRY_ASSERT(!impl_->groups.contains(g), "a group is added to a host twice");
  auto& sl = impl_->groups[g];
  sl.g = std::make_unique<consensus::group>(cfg, std::move(restored), impl_->cfg.clock());
  impl_->mark(g, sl);
}

void host::start() {
  if (impl_->running) return;
  impl_->running = true;
  impl_->arm();
}

void host::stop() {
  impl_->running = false;
  impl_->timer.cancel();
}

void host::deliver(group_id g, const consensus::message& m, consensus::time_point received) {
  auto it = impl_->groups.find(g);
  if (it == impl_->groups.end()) {
    ++impl_->dropped;
    return;
  }
  it->second.g->step(m, received);
  impl_->mark(g, it->second);
}

void host::synced(group_id g, consensus::index_t index, consensus::term_t term) {
  auto it = impl_->groups.find(g);
  if (it == impl_->groups.end()) return;
  it->second.g->synced(index, term);
  impl_->mark(g, it->second);
}

consensus::propose_result host::propose(group_id g, std::string data) {
  auto it = impl_->groups.find(g);
  if (it == impl_->groups.end()) return {};
  auto r = it->second.g->propose(std::move(data), impl_->cfg.clock());
  impl_->mark(g, it->second);
  return r;
}

const consensus::group* host::find(group_id g) const {
  auto it = impl_->groups.find(g);
  return it == impl_->groups.end() ? nullptr : it->second.g.get();
}

size_t host::size() const { return impl_->groups.size(); }
uint64_t host::ticks() const { return impl_->ticks; }
uint64_t host::dropped_unknown_group() const { return impl_->dropped; }

// --- memory_storage ------------------------------------------------------------------------------

struct memory_storage::impl {
  explicit impl(asio::any_io_executor e) : ex(std::move(e)) {}
  asio::any_io_executor ex;
  host* h = nullptr;
  std::unordered_map<group_id, group_state> groups;
};

memory_storage::memory_storage(asio::any_io_executor ex) : impl_(std::make_shared<impl>(std::move(ex))) {}
memory_storage::~memory_storage() { impl_->h = nullptr; }

void memory_storage::attach(host& h) { impl_->h = &h; }

void memory_storage::persist(group_id g, const consensus::ready& r) {
  group_state& st = impl_->groups[g];
  if (r.snapshot) {
    st.snapshot = *r.snapshot;
    st.log.clear();
  }
  if (r.truncate_from) std::erase_if(st.log, [&](const consensus::entry& e) { return e.index >= *r.truncate_from; });
  st.log.insert(st.log.end(), r.entries.begin(), r.entries.end());
  if (r.hard) st.hard = *r.hard;
  if (r.entries.empty()) return;
  // The "fsync" completes on a later turn, as a real one would (never re-entrantly).
  const consensus::index_t index = r.entries.back().index;
  const consensus::term_t term = r.entries.back().term;
  asio::post(impl_->ex, [w = std::weak_ptr<impl>(impl_), g, index, term] {
    auto self = w.lock();
    if (self && self->h != nullptr) self->h->synced(g, index, term);
  });
}

const memory_storage::group_state* memory_storage::state(group_id g) const {
  auto it = impl_->groups.find(g);
  return it == impl_->groups.end() ? nullptr : &it->second;
}

}  // namespace ferry::peer
