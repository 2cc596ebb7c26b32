#include "broker/peer/codec.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "schema/endian.h"
#include "schema/peer_generated.h"

namespace ferry::peer {

using consensus::msg_type;

static_assert(static_cast<uint8_t>(fb::MsgType::InstallSnapshot) == static_cast<uint8_t>(msg_type::install_snapshot));
static_assert(static_cast<uint8_t>(fb::MsgType::Heartbeat) == static_cast<uint8_t>(msg_type::heartbeat));
static_assert(static_cast<uint8_t>(fb::MsgType::HeartbeatReply) == static_cast<uint8_t>(msg_type::heartbeat_reply));
static_assert(static_cast<uint8_t>(fb::EntryKind::Config) == static_cast<uint8_t>(consensus::entry_kind::config));
static_assert(consensus::no_time.count() == flatbuffers::numeric_limits<int64_t>::min(),
              "peer.fbs encodes 'sent_at not set' as the smallest int64");

namespace {

// Which optional fields a message type uses (schema/peer.md has the same table). `term` is always
// written. One table for both directions, so the encoder and the decoder cannot disagree.
enum field : uint16_t {
  f_last = 1 << 0,        // last_index, last_term
  f_transfer = 1 << 1,    //
  f_granted = 1 << 2,     //
  f_prev_index = 1 << 3,  //
  f_prev_term = 1 << 4,   //
  f_entries = 1 << 5,     //
  f_commit = 1 << 6,      //
  f_sent_at = 1 << 7,     //
  f_match = 1 << 8,       // match, durable
  f_conflict = 1 << 9,    // conflict_term, conflict_index
  f_config = 1 << 10,     //
};

uint16_t fields_of(msg_type t) {
  switch (t) {
    case msg_type::pre_vote:
      return f_last;
    case msg_type::vote:
      return f_last | f_transfer;
    case msg_type::pre_vote_reply:
    case msg_type::vote_reply:
      return f_granted;
    case msg_type::append:
      return f_prev_index | f_prev_term | f_entries | f_commit | f_sent_at;
    case msg_type::append_reply:
      return f_granted | f_prev_index | f_sent_at | f_match | f_conflict;
    case msg_type::heartbeat:
      return f_commit | f_sent_at;
    case msg_type::heartbeat_reply:
      return f_sent_at | f_match;
    case msg_type::timeout_now:
      return 0;
    case msg_type::install_snapshot:
      return f_prev_index | f_prev_term | f_commit | f_sent_at | f_config;
  }
  return 0;
}

constexpr flatbuffers::uoffset_t max_depth = 16;
constexpr flatbuffers::uoffset_t max_tables = 4'000'000;

frame finish(flatbuffers::FlatBufferBuilder& fbb, fb::PeerBody type, flatbuffers::Offset<void> body, lane l,
             size_t messages) {
  fb::PeerFrameBuilder pf(fbb);
  pf.add_body_type(type);
  pf.add_body(body);
  fbb.FinishSizePrefixed(pf.Finish(), fb::PeerFrameIdentifier());
  return frame(l, fbb.Release(), messages);
}

flatbuffers::Offset<flatbuffers::Vector<int32_t>> node_ids(flatbuffers::FlatBufferBuilder& fbb,
                                                           const std::vector<node_id>& ids) {
  std::vector<int32_t> v;
  v.reserve(ids.size());
  for (node_id n : ids) v.push_back(n.value);
  return fbb.CreateVector(v);
}

flatbuffers::Offset<fb::GroupMessage> build_message(flatbuffers::FlatBufferBuilder& fbb, const addressed_message& a) {
  const consensus::message& m = a.msg;
  const uint16_t f = fields_of(m.type);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Entry>>> entries;
  if ((f & f_entries) != 0 && !m.entries.empty()) {
    std::vector<flatbuffers::Offset<fb::Entry>> es;
    es.reserve(m.entries.size());
    for (const auto& e : m.entries) {
      auto data = fbb.CreateVector(reinterpret_cast<const uint8_t*>(e.data.data()), e.data.size());
      es.push_back(fb::CreateEntry(fbb, e.index, e.term, static_cast<fb::EntryKind>(e.kind), data));
    }
    entries = fbb.CreateVector(es);
  }
  flatbuffers::Offset<fb::Membership> config;
  if ((f & f_config) != 0) {
    auto v = node_ids(fbb, m.config.voters);
    auto o = node_ids(fbb, m.config.outgoing);
    auto l = node_ids(fbb, m.config.learners);
    config = fb::CreateMembership(fbb, v, o, l);
  }
  fb::GroupMessageBuilder b(fbb);
  b.add_group(a.group);
  b.add_type(static_cast<fb::MsgType>(m.type));
  b.add_term(m.term);
  if ((f & f_last) != 0) {
    b.add_last_index(m.last_index);
    b.add_last_term(m.last_term);
  }
  if ((f & f_transfer) != 0) b.add_transfer(m.transfer);
  if ((f & f_granted) != 0) b.add_granted(m.granted);
  if ((f & f_prev_index) != 0) b.add_prev_index(m.prev_index);
  if ((f & f_prev_term) != 0) b.add_prev_term(m.prev_term);
  if (!entries.IsNull()) b.add_entries(entries);
  if ((f & f_commit) != 0) b.add_commit(m.commit);
  if ((f & f_sent_at) != 0) b.add_sent_at(m.sent_at.count());
  if ((f & f_match) != 0) {
    b.add_match(m.match);
    b.add_durable(m.durable);
  }
  if ((f & f_conflict) != 0) {
    b.add_conflict_term(m.conflict_term);
    b.add_conflict_index(m.conflict_index);
  }
  if (!config.IsNull()) b.add_config(config);
  return b.Finish();
}

size_t payload_bytes(const consensus::message& m) {
  size_t n = 64;  // the table itself, roughly
  for (const auto& e : m.entries) n += e.data.size() + 32;
  return n;
}

// GroupMessages frames for `msgs` (one lane), each closed at about `target` payload bytes.
void encode_group_messages(const std::vector<const addressed_message*>& msgs, lane l, size_t target,
                           std::vector<frame>& out) {
  size_t i = 0;
  while (i < msgs.size()) {
    flatbuffers::FlatBufferBuilder fbb(1024);
    std::vector<flatbuffers::Offset<fb::GroupMessage>> offs;
    size_t bytes = 0;
    while (i < msgs.size() && (offs.empty() || bytes < target)) {
      bytes += payload_bytes(msgs[i]->msg);
      offs.push_back(build_message(fbb, *msgs[i]));
      ++i;
    }
    auto body = fb::CreateGroupMessages(fbb, fbb.CreateVector(offs));
    out.push_back(finish(fbb, fb::PeerBody::GroupMessages, body.Union(), l, offs.size()));
  }
}

template <class Item>
struct coalesced {
  int64_t sent_at = 0;
  std::vector<Item> items;
};

// Adds `item` to the run with send time `sent_at` (runs keep the order of their first message).
template <class Item>
void add_to_run(std::vector<coalesced<Item>>& runs, int64_t sent_at, const Item& item) {
  auto it = std::find_if(runs.begin(), runs.end(), [&](const auto& r) { return r.sent_at == sent_at; });
  if (it == runs.end()) {
    runs.push_back(coalesced<Item>{sent_at, {}});
    it = runs.end() - 1;
  }
  it->items.push_back(item);
}

bool aligned8(const void* p, const std::byte* frame) {
  return (reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(frame)) % 8 == 0;
}

result<void> read_ids(const flatbuffers::Vector<int32_t>* v, std::vector<node_id>& out) {
  if (v == nullptr) return {};
  out.reserve(v->size());
  for (int32_t id : *v) {
    if (id <= 0) return fail(errc::malformed_frame, "peer frame: membership holds a node id <= 0");
    out.emplace_back(id);
  }
  return {};
}

result<void> read_message(const fb::GroupMessage& g, consensus::message& m) {
  const auto raw = static_cast<uint8_t>(g.type());
  if (raw > static_cast<uint8_t>(msg_type::install_snapshot))
    return fail(errc::malformed_frame, "peer frame: unknown message type " + std::to_string(raw));
  m.type = static_cast<msg_type>(raw);
  if (m.type == msg_type::heartbeat || m.type == msg_type::heartbeat_reply)
    return fail(errc::malformed_frame, "peer frame: heartbeats travel only in coalesced frames");
  const uint16_t f = fields_of(m.type);
  m.term = g.term();
  if ((f & f_last) != 0) {
    m.last_index = g.last_index();
    m.last_term = g.last_term();
  }
  if ((f & f_transfer) != 0) m.transfer = g.transfer();
  if ((f & f_granted) != 0) m.granted = g.granted();
  if ((f & f_prev_index) != 0) m.prev_index = g.prev_index();
  if ((f & f_prev_term) != 0) m.prev_term = g.prev_term();
  if ((f & f_entries) != 0 && g.entries() != nullptr) {
    m.entries.reserve(g.entries()->size());
    for (const fb::Entry* e : *g.entries()) {
      const auto kind = static_cast<uint8_t>(e->kind());
      if (kind > static_cast<uint8_t>(consensus::entry_kind::config))
        return fail(errc::malformed_frame, "peer frame: unknown entry kind " + std::to_string(kind));
      consensus::entry& out = m.entries.emplace_back();
      out.index = e->index();
      out.term = e->term();
      out.kind = static_cast<consensus::entry_kind>(kind);
      if (e->data() != nullptr) out.data.assign(reinterpret_cast<const char*>(e->data()->data()), e->data()->size());
    }
  }
  if ((f & f_commit) != 0) m.commit = g.commit();
  if ((f & f_sent_at) != 0) m.sent_at = consensus::time_point(g.sent_at());
  if ((f & f_match) != 0) {
    m.match = g.match();
    m.durable = g.durable();
  }
  if ((f & f_conflict) != 0) {
    m.conflict_term = g.conflict_term();
    m.conflict_index = g.conflict_index();
  }
  if ((f & f_config) != 0 && g.config() != nullptr) {
    if (auto r = read_ids(g.config()->voters(), m.config.voters); !r) return r;
    if (auto r = read_ids(g.config()->outgoing(), m.config.outgoing); !r) return r;
    if (auto r = read_ids(g.config()->learners(), m.config.learners); !r) return r;
  }
  return {};
}

}  // namespace

lane lane_of(msg_type t) noexcept {
  return t == msg_type::append || t == msg_type::install_snapshot ? lane::bulk : lane::control;
}

std::vector<frame> encode_messages(std::span<const addressed_message> batch, encode_options opt) {
  std::vector<coalesced<fb::HeartbeatItem>> beats;
  std::vector<coalesced<fb::HeartbeatReplyItem>> replies;
  std::vector<const addressed_message*> control;
  std::vector<const addressed_message*> bulk;
  for (const auto& a : batch) {
    const auto& m = a.msg;
    switch (m.type) {
      case msg_type::heartbeat:
        add_to_run(beats, m.sent_at.count(), fb::HeartbeatItem(a.group, m.term, m.commit));
        break;
      case msg_type::heartbeat_reply:
        add_to_run(replies, m.sent_at.count(), fb::HeartbeatReplyItem(a.group, m.term, m.match, m.durable));
        break;
      default:
        (lane_of(m.type) == lane::bulk ? bulk : control).push_back(&a);
        break;
    }
  }
  std::vector<frame> out;
  for (const auto& run : beats) {
    flatbuffers::FlatBufferBuilder fbb(64 + run.items.size() * sizeof(fb::HeartbeatItem));
    auto body = fb::CreateHeartbeats(fbb, run.sent_at, fbb.CreateVectorOfStructs(run.items));
    out.push_back(finish(fbb, fb::PeerBody::Heartbeats, body.Union(), lane::control, run.items.size()));
  }
  for (const auto& run : replies) {
    flatbuffers::FlatBufferBuilder fbb(64 + run.items.size() * sizeof(fb::HeartbeatReplyItem));
    auto body = fb::CreateHeartbeatReplies(fbb, run.sent_at, fbb.CreateVectorOfStructs(run.items));
    out.push_back(finish(fbb, fb::PeerBody::HeartbeatReplies, body.Union(), lane::control, run.items.size()));
  }
  encode_group_messages(control, lane::control, opt.target_frame_bytes, out);
  encode_group_messages(bulk, lane::bulk, opt.target_frame_bytes, out);
  return out;
}

frame encode_hello(const hello& h) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto body = fb::CreateHello(fbb, fbb.CreateString(h.cluster_id), h.node.value, h.incarnation, h.version);
  return finish(fbb, fb::PeerBody::Hello, body.Union(), lane::control, 0);
}

frame encode_reject(std::string_view reason) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto body = fb::CreateReject(fbb, fbb.CreateString(reason.data(), reason.size()));
  return finish(fbb, fb::PeerBody::Reject, body.Union(), lane::control, 0);
}

frame encode_keepalive() {
  flatbuffers::FlatBufferBuilder fbb(64);
  fb::HeartbeatsBuilder b(fbb);
  auto body = b.Finish();
  return finish(fbb, fb::PeerBody::Heartbeats, body.Union(), lane::control, 0);
}

result<decoded_frame> decode_frame(std::span<const std::byte> frame, node_id from, node_id to) {
  const auto* p = reinterpret_cast<const uint8_t*>(frame.data());
  if (frame.size() < frame_prefix_bytes + 2 * sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength)
    return fail(errc::malformed_frame, "peer frame too short");
  if (wire::get_le32(frame.data()) != frame.size() - frame_prefix_bytes)
    return fail(errc::malformed_frame, "peer frame length prefix does not match the frame");
  flatbuffers::Verifier v(p, frame.size(), max_depth, max_tables);
  if (!v.VerifySizePrefixedBuffer<fb::PeerFrame>(fb::PeerFrameIdentifier()))
    return fail(errc::malformed_frame, "peer frame failed FlatBuffers verification");
  const auto* pf = flatbuffers::GetSizePrefixedRoot<fb::PeerFrame>(p);
  // A union type with no body verifies: every case below may assume a body.
  if (pf->body() == nullptr) return fail(errc::malformed_frame, "peer frame without a body");
  decoded_frame out;
  switch (pf->body_type()) {
    case fb::PeerBody::Hello: {
      const auto* h = pf->body_as_Hello();
      out.type = decoded_frame::kind::hello;
      if (h->cluster_id() != nullptr) out.hello.cluster_id = h->cluster_id()->str();
      out.hello.node = node_id{h->node_id()};
      out.hello.incarnation = h->incarnation();
      out.hello.version = h->protocol_version();
      return out;
    }
    case fb::PeerBody::Reject: {
      const auto* r = pf->body_as_Reject();
      out.type = decoded_frame::kind::reject;
      if (r->reason() != nullptr) out.reason = r->reason()->str();
      return out;
    }
    case fb::PeerBody::GroupMessages: {
      const auto* gm = pf->body_as_GroupMessages();
      if (gm->messages() == nullptr) return out;
      out.messages.reserve(gm->messages()->size());
      for (const fb::GroupMessage* g : *gm->messages()) {
        addressed_message& a = out.messages.emplace_back();
        a.group = g->group();
        a.msg.from = from;
        a.msg.to = to;
        if (auto r = read_message(*g, a.msg); !r) return r.error();
      }
      return out;
    }
    case fb::PeerBody::Heartbeats: {
      const auto* hb = pf->body_as_Heartbeats();
      if (hb->groups() == nullptr) return out;
      if (!aligned8(hb->groups()->data(), frame.data()))
        return fail(errc::malformed_frame, "peer frame: heartbeat items not aligned to 8 bytes");
      out.messages.reserve(hb->groups()->size());
      for (const fb::HeartbeatItem* i : *hb->groups()) {
        addressed_message& a = out.messages.emplace_back();
        a.group = i->group();
        a.msg.type = msg_type::heartbeat;
        a.msg.from = from;
        a.msg.to = to;
        a.msg.term = i->term();
        a.msg.commit = i->commit();
        a.msg.sent_at = consensus::time_point(hb->sent_at());
      }
      return out;
    }
    case fb::PeerBody::HeartbeatReplies: {
      const auto* hr = pf->body_as_HeartbeatReplies();
      if (hr->groups() == nullptr) return out;
      if (!aligned8(hr->groups()->data(), frame.data()))
        return fail(errc::malformed_frame, "peer frame: heartbeat reply items not aligned to 8 bytes");
      out.messages.reserve(hr->groups()->size());
      for (const fb::HeartbeatReplyItem* i : *hr->groups()) {
        addressed_message& a = out.messages.emplace_back();
        a.group = i->group();
        a.msg.type = msg_type::heartbeat_reply;
        a.msg.from = from;
        a.msg.to = to;
        a.msg.term = i->term();
        a.msg.match = i->match();
        a.msg.durable = i->durable();
        a.msg.sent_at = consensus::time_point(hr->sent_at());
      }
      return out;
    }
    default:
      break;
  }
  return fail(errc::malformed_frame,
              "peer frame: unknown body type " + std::to_string(static_cast<unsigned>(pf->body_type())));
}

}  // namespace ferry::peer
