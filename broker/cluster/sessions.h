#pragma once
// session_tracker: the controller's view of which brokers are alive (DESIGN.md "A cluster":
// "brokers keep a session with the controller by heartbeat; one that misses it for the session
// timeout is fenced until it registers again"). A pure state machine: time is passed in, and what
// it decides (fence these brokers) goes back to the caller, which proposes BrokerFenced records.
// Sessions live in the controller's memory only; the metadata log holds the outcome (fenced or
// not), not the heartbeats.
//
// Timing. Brokers heartbeat every 100 ms; the session lasts default_session_timeout = 6 s:
//   - 60 heartbeats may be lost or late before a broker is fenced, so a busy or briefly stalled
//     broker (a long fsync, a scheduling hiccup, a lost TCP segment) is not fenced by accident;
//   - it is well above what a controller failover costs a broker's heartbeats: an election
//     timeout of 1-2 s, plus the new controller's first commit, plus the broker finding it (a
//     metadata refresh), about 3 s in the worst case. A shorter session would fence brokers that
//     were only looking for the new controller;
//   - it is the time a crashed broker's partitions stay routed to it before clients are told it is
//     down; 6 s keeps that short next to the cost of a needless fence (clients rerouting, and the
//     broker registering again).
//
// Threading: none inside; the controller's owner calls everything.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "broker/cluster/metadata_image.h"
#include "broker/consensus/types.h"
#include "schema/types.h"

namespace ferry::cluster {

using time_point = consensus::time_point;  // the host's monotonic clock
using duration = consensus::duration;

inline constexpr duration default_heartbeat_interval = std::chrono::milliseconds(100);
inline constexpr duration default_session_timeout = std::chrono::seconds(6);

enum class session_status : uint8_t {
  ok,                 // the session is renewed (heartbeat) or open (registration)
  unknown_broker,     // no session: the broker must register
  stale_incarnation,  // from an older process of this node than the registered one: refused
  newer_incarnation,  // from a process not registered yet: it must register
  fenced,             // its session expired: it must register again to be unfenced
};
const char* session_status_name(session_status s) noexcept;

struct expired_session {
  node_id node{0};
  uint64_t incarnation = 0;
  friend bool operator==(const expired_session&, const expired_session&) = default;
};

class session_tracker {
 public:
  explicit session_tracker(duration timeout = default_session_timeout) : timeout_(timeout) {}

  // Brings the tracker up to what the image knows: a broker it does not track, or that the image
  // knows at a newer incarnation, gets a session from `now` if the image says it is alive, and is
  // tracked as fenced otherwise. For the incarnation it tracks, it follows the image only when
  // the image's state changed since the last sync: a fence or unfence committed since (an earlier
  // controller's, which this one never saw coming, or its own). A state the image has held all
  // along does not undo what this tracker decided and proposed but the log has not applied yet.
  //
  // A new controller calls this first, with its image and the time it became controller, so every
  // alive broker gets a full session timeout from the start of this controller. It cannot do
  // better: when brokers last heartbeated is in the old controller's memory only (heartbeats are
  // not in the log), and the brokers were heartbeating the old controller until they learned of
  // the new one, which takes them an election and a metadata refresh. Fencing on anything
  // shorter would fence the whole cluster at every controller change. It calls it again after
  // applying entries, for registrations an earlier controller proposed that commit only now.
  void sync(const metadata_image& image, time_point now);

  // The controller accepted a registration (it proposes BrokerRegistration, or BrokerUnfenced for
  // the same incarnation): the session is open from `now`. stale_incarnation (and nothing changes)
  // when `incarnation` is older than the one tracked.
  session_status registered(node_id node, uint64_t incarnation, time_point now);

  // A heartbeat: ok renews the session until now + timeout. Otherwise nothing changes and the
  // status says why it was refused.
  session_status heartbeat(node_id node, uint64_t incarnation, time_point now);

  // The sessions that have run out by `now` (no heartbeat for `timeout`), by node id. Each is
  // reported once and is fenced from then on; the controller proposes a BrokerFenced for each.
  std::vector<expired_session> tick(time_point now);

  // When the next session runs out if no heartbeat comes (nullopt: none alive): one timer.
  [[nodiscard]] std::optional<time_point> next_expiry() const;
  [[nodiscard]] bool alive(node_id node) const;
  [[nodiscard]] duration timeout() const { return timeout_; }

 private:
  struct session {
    uint64_t incarnation = 0;
    broker_state state = broker_state::alive;
    time_point last_heard{};
    // What the image said of this node at the last sync (incarnation 0: nothing yet).
    uint64_t image_incarnation = 0;
    broker_state image_state = broker_state::alive;
  };

  duration timeout_;
  std::map<node_id, session> sessions_;
};

}  // namespace ferry::cluster
