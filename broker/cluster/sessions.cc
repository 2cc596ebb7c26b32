#include "broker/cluster/sessions.h"

#include <optional>

namespace ferry::cluster {

const char* session_status_name(session_status s) noexcept {
  switch (s) {
    case session_status::ok:
      return "ok";
    case session_status::unknown_broker:
      return "unknown_broker";
    case session_status::stale_incarnation:
      return "stale_incarnation";
    case session_status::newer_incarnation:
      return "newer_incarnation";
    case session_status::fenced:
      return "fenced";
  }
  return "?";
}

void session_tracker::sync(const metadata_image& image, time_point now) {
  for (const auto& [n, b] : image.brokers()) {
    const uint64_t inc = b.registration.incarnation;
    auto it = sessions_.find(n);
    if (it == sessions_.end() || it->second.incarnation < inc) {
      sessions_[n] = session{inc, b.state, now, inc, b.state};
      continue;
    }
    session& s = it->second;
    const bool image_changed = s.image_incarnation != inc || s.image_state != b.state;
    // Only news from the log overrides the tracker: a fence committed since the last sync (an
    // earlier controller's, proposed before this one took over) must reach the broker, which
    // otherwise heartbeats on and never registers again; an unfence committed since starts a
    // fresh session. The tracker being at a newer incarnation means the image is behind it.
    if (image_changed && s.incarnation == inc && s.state != b.state) {
      s.state = b.state;
      if (b.state == broker_state::alive) s.last_heard = now;
    }
    s.image_incarnation = inc;
    s.image_state = b.state;
  }
}

session_status session_tracker::registered(node_id node, uint64_t incarnation, time_point now) {
  auto it = sessions_.find(node);
  if (it != sessions_.end() && incarnation < it->second.incarnation) return session_status::stale_incarnation;
  session& s = sessions_[node];
  s.incarnation = incarnation;
  s.state = broker_state::alive;
  s.last_heard = now;
  return session_status::ok;
}

session_status session_tracker::heartbeat(node_id node, uint64_t incarnation, time_point now) {
  auto it = sessions_.find(node);
  if (it == sessions_.end()) return session_status::unknown_broker;
  session& s = it->second;
  if (incarnation < s.incarnation) return session_status::stale_incarnation;
  if (incarnation > s.incarnation) return session_status::newer_incarnation;
  if (s.state == broker_state::fenced) return session_status::fenced;
  // Heartbeats may arrive out of order (two connections, a retry): the session never shrinks.
  if (now > s.last_heard) s.last_heard = now;
  return session_status::ok;
}

std::vector<expired_session> session_tracker::tick(time_point now) {
  std::vector<expired_session> out;
  for (auto& [n, s] : sessions_) {
    if (s.state != broker_state::alive || now - s.last_heard < timeout_) continue;
    s.state = broker_state::fenced;
    out.push_back(expired_session{n, s.incarnation});
  }
  return out;
}

std::optional<time_point> session_tracker::next_expiry() const {
  std::optional<time_point> out;
  for (const auto& [n, s] : sessions_)
    if (s.state == broker_state::alive && (!out || s.last_heard + timeout_ < *out)) out = s.last_heard + timeout_;
  return out;
}

bool session_tracker::alive(node_id node) const {
  auto it = sessions_.find(node);
  return it != sessions_.end() && it->second.state == broker_state::alive;
}

}  // namespace ferry::cluster
