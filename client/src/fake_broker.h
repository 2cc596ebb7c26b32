#pragma once
// Test-only: a small in-process broker speaking the wire protocol over loopback TCP, with fault
// injection, so producer/reader/admin/consumer logic can be tested without ferryd. Blocking
// sockets, one thread per connection; state under one mutex. Not a model of ferryd's internals.
//
// Subscriptions, minimally: a subscription hands each partition's messages out in offset order
// (nacked and released ones first), leases them to a member until acked, nacked or the member
// leaves or disconnects, and pushes Delivery frames (correlation id 0) to members with credit,
// never beyond the credit granted (messages, and bytes of the record). No ack timeouts, no
// ordered keys, no dead letters. Writes to a connection are serialised by its write mutex, so a
// push may come from any connection's thread (after each answer every member with credit gets
// what is available).
//
// Delayed messages, minimally: the fake's clock stands still at 1000 ms (every batch's append
// time), so a produced record with a deliver_at after that is pending, any other is released at
// once. A topic's max_delay_ms (default 365 days) is checked on produce (the whole batch is refused
// with DelayOutOfRange, nothing stored). Cancel and ListDelayed work on the pending set;
// release_delayed() makes one fall due. Subscriptions do not hold delayed messages back.
#include <sys/socket.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include "schema/frame.h"
#include "schema/record_batch.h"

namespace ferry::client::testing {

namespace asio = boost::asio;
namespace w = ferry::wire;
using tcp = asio::ip::tcp;

class fake_broker {
 public:
  struct stored {
    int64_t base_offset;
    std::vector<std::byte> bytes;
  };
  struct partition {
    std::vector<stored> batches;
    int64_t next = 0;
    std::map<int64_t, std::pair<int32_t, int64_t>> last_seq;  // producer -> (next seq, last base offset)
    std::map<std::pair<int64_t, int32_t>, int64_t> seen;      // (producer, base sequence) -> base offset
  };

  using msg_key = std::pair<int32_t, int64_t>;  // (partition, offset)
  struct delayed_entry {
    int64_t due_time;
    int64_t append_time;
    std::optional<std::string> key;
    int32_t value_bytes;
  };
  static constexpr int64_t clock_ms = 1000;  // the fake's "now" and every batch's append time
  static constexpr int64_t default_max_delay_ms = 365LL * 86'400'000;
  struct lease {
    uint64_t member;
    int32_t delivery_count;
  };
  struct subscription {
    int64_t ack_timeout_ms = 30000;
    int32_t max_deliveries = 10;
    bool ordered = true;
    bool fixed_backoff = false;
    int64_t backoff_initial_ms = 1000;
    int64_t backoff_max_ms = 60000;
    bool earliest = false;
    std::string dead_letter_topic;
    std::vector<int64_t> next;      // per partition: the first offset never handed out
    std::deque<msg_key> redeliver;  // nacked or released, handed out first
    std::map<msg_key, lease> leased;
    std::map<msg_key, int32_t> deliveries;
    std::set<msg_key> acked;
  };
  struct connection_state;
  struct member {
    uint64_t id;
    std::string topic, sub, name;
    connection_state* conn;
    int64_t credit_messages;
    int64_t credit_bytes;
    int64_t ack_timeout_ms;
  };
  struct connection_state {
    tcp::socket* socket;
    std::mutex write_mu;
  };

  // Fault injection (set before traffic, or under mu).
  std::atomic<int> drop_before_answer_on_produce{
      -1};                                     // Nth produce request (1-based): store it, then drop the connection
  std::atomic<int> not_leader_on_produce{-1};  // Nth produce request: answer not_leader without storing
  std::atomic<int> produce_requests{0};
  std::atomic<int> max_partitions_per_request{0};
  std::atomic<int> drop_on_ack_request{
      -1};  // Nth ack request (1-based): drop the connection without answering or applying it
  std::atomic<int> fail_ack_request{-1};  // Nth ack request: request-level fail_ack_request_code, nothing applied
  w::ErrorCode fail_ack_request_code = w::ErrorCode::NotReady;
  std::map<msg_key, w::ErrorCode> fail_item;         // ack/nack/extend of this message fails with this code (once)
  std::atomic<bool> push_before_join_answer{false};  // a new member's first Delivery goes out before its JoinResponse
  std::optional<msg_key> truncate_record;            // deliver this message's record one byte short, once
  std::optional<int> cancel_outcome_wire;            // answer every cancel with this raw CancelOutcome value

  // Observations (under mu unless atomic).
  std::atomic<int> ack_requests{0};
  std::atomic<int> join_requests{0};
  std::atomic<int> leave_requests{0};
  std::vector<size_t> ack_request_items;                  // acks + nacks + extends per AckRequest
  std::vector<uint64_t> ack_request_members;              // member id of each AckRequest
  std::vector<std::pair<msg_key, int64_t>> nacks_seen;    // (message, delay_ms)
  std::vector<std::pair<msg_key, int64_t>> extends_seen;  // (message, extend_ms)
  int64_t acked_total = 0;
  int64_t delivered_total = 0;
  int64_t credit_returned_messages = 0;
  int64_t credit_returned_bytes = 0;
  std::map<msg_key, size_t> record_bytes;  // size of each delivered record (its credit in bytes)
  std::vector<std::string> join_names;
  std::vector<int64_t> join_ack_timeouts;
  std::vector<std::pair<int32_t, int32_t>> join_credits;                 // (messages, bytes)
  std::atomic<int> delayed_requests{0};                                  // Cancel and ListDelayed requests
  std::vector<std::tuple<int32_t, int64_t, int32_t>> list_delayed_seen;  // (partition, before_time, limit)

  fake_broker() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~fake_broker() {
    stopping_ = true;
    boost::system::error_code ec;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocking accept()
    {
      std::lock_guard lk(mu);
      for (auto* s : sockets_) s->shutdown(tcp::socket::shutdown_both, ec);
    }
    thread_.join();
    for (auto& t : conn_threads_) t.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void add_topic(const std::string& name, int partitions, int64_t max_delay_ms = default_max_delay_ms) {
    std::lock_guard lk(mu);
    topics[name].resize(partitions);
    max_delay[name] = max_delay_ms;
  }
  // The pending delayed message at (p, offset) falls due: it is released, no longer cancellable.
  void release_delayed(const std::string& topic, int p, int64_t offset) {
    std::lock_guard lk(mu);
    if (delayed[topic].erase({p, offset})) released[topic].insert({p, offset});
  }
  size_t delayed_pending(const std::string& topic) {
    std::lock_guard lk(mu);
    return delayed[topic].size();
  }
  int64_t records(const std::string& topic, int p) {
    std::lock_guard lk(mu);
    return topics[topic][p].next;
  }
  void drop_all_connections() {
    std::lock_guard lk(mu);
    boost::system::error_code ec;
    for (auto* s : sockets_) s->shutdown(tcp::socket::shutdown_both, ec);
  }
  void add_subscription(const std::string& topic, const std::string& name, bool earliest = true) {
    std::lock_guard lk(mu);
    auto& sub = subs[{topic, name}];
    sub.earliest = earliest;
    sub.dead_letter_topic = topic + "." + name + ".dlq";
    for (auto& p : topics.at(topic)) sub.next.push_back(earliest ? 0 : p.next);
  }
  // Appends a batch as the broker stores it (offsets and append time stamped), e.g. a control batch.
  int64_t append_batch(const std::string& topic, int p, std::vector<std::byte> bytes, int64_t append_time = 1000) {
    std::lock_guard lk(mu);
    auto& part = topics.at(topic).at(p);
    auto h = w::parse_batch_header(bytes);
    int64_t base = part.next;
    w::stamp_batch(bytes, base, 0, append_time);
    part.next += h->record_count;
    part.batches.push_back(stored{base, std::move(bytes)});
    return base;
  }
  // Hands out what members have credit for (also done after every answer).
  void push_now() {
    std::lock_guard lk(mu);
    pump_all_locked();
  }
  size_t member_count() {
    std::lock_guard lk(mu);
    return members.size();
  }
  std::vector<uint64_t> member_ids() {
    std::lock_guard lk(mu);
    std::vector<uint64_t> out;
    for (auto& [id, m] : members) out.push_back(id);
    return out;
  }
  size_t leased(const std::string& topic, const std::string& sub) {
    std::lock_guard lk(mu);
    return subs[{topic, sub}].leased.size();
  }

  std::mutex mu;
  std::map<std::string, std::vector<partition>> topics;
  std::map<std::pair<std::string, std::string>, subscription> subs;
  std::map<uint64_t, member> members;
  uint64_t next_member_id = 1000;
  std::map<std::string, int64_t> max_delay;                         // per topic
  std::map<std::string, std::map<msg_key, delayed_entry>> delayed;  // per topic: pending, not yet due
  std::map<std::string, std::set<msg_key>> released;                // per topic: fell due
  std::map<std::string, std::set<msg_key>> cancelled;               // per topic

 private:
  void accept_loop() {
    while (!stopping_) {
      tcp::socket s(io_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec) return;
      s.set_option(tcp::no_delay(true), ec);  // an answer and a push often go out back to back
      conn_threads_.emplace_back([this, sock = std::move(s)]() mutable { serve(std::move(sock)); });
    }
  }

  void serve(tcp::socket s) {
    connection_state cs{&s, {}};
    {
      std::lock_guard lk(mu);
      sockets_.push_back(&s);
    }
    std::vector<uint64_t> buf;
    flatbuffers::FlatBufferBuilder fbb;
    for (;;) {
      std::byte len[4];
      boost::system::error_code ec;
      asio::read(s, asio::buffer(len), ec);
      if (ec) break;
      uint32_t n = w::get_le32(len);
      buf.resize((n + 4 + 7) / 8);
      std::memcpy(buf.data(), len, 4);
      asio::read(s, asio::buffer(reinterpret_cast<std::byte*>(buf.data()) + 4, n), ec);
      if (ec) break;
      auto req = w::decode_request(std::span(reinterpret_cast<const std::byte*>(buf.data()), n + 4));
      if (!req) break;
      fbb.Clear();
      bool drop = false;
      handle(**req, fbb, drop, cs);
      if (drop) break;
      {
        std::lock_guard wl(cs.write_mu);
        asio::write(s, asio::buffer(fbb.GetBufferPointer(), fbb.GetSize()), ec);
      }
      if (ec) break;
      push_now();
    }
    boost::system::error_code ec;
    std::lock_guard lk(mu);
    // Its members are gone: what they held goes back to their subscriptions.
    for (auto it = members.begin(); it != members.end();) {
      if (it->second.conn != &cs) {
        ++it;
        continue;
      }
      release_locked(it->second);
      it = members.erase(it);
    }
    {
      std::lock_guard wl(cs.write_mu);
      s.close(ec);
    }
    std::erase(sockets_, &s);
  }

  void release_locked(const member& m) {
    auto& sub = subs[{m.topic, m.sub}];
    for (auto it = sub.leased.begin(); it != sub.leased.end();) {
      if (it->second.member != m.id) {
        ++it;
        continue;
      }
      sub.redeliver.push_back(it->first);
      it = sub.leased.erase(it);
    }
  }

  // The record at `offset` of a partition: its bytes (length prefix included) and its batch header.
  bool find_record(partition& part, int64_t offset, std::span<const std::byte>& rec, w::batch_header& hdr) {
    for (auto& b : part.batches) {
      auto h = w::parse_batch_header(b.bytes);
      if (offset < h->base_offset || offset >= h->next_offset()) continue;
      if (h->attributes & w::attr_control) return false;
      size_t pos = w::batch_header_size;
      w::record_view rv;
      for (int32_t i = 0; i < h->record_count; ++i) {
        auto n = w::detail::decode_record(std::span<const std::byte>(b.bytes).subspan(pos), *h, rv);
        if (!n) return false;
        if (h->base_offset + i == offset) {
          rec = std::span<const std::byte>(b.bytes).subspan(pos, *n);
          hdr = *h;
          return true;
        }
        pos += *n;
      }
    }
    return false;
  }

  void pump_all_locked() {
    for (auto& [id, m] : members) pump_locked(m);
  }

  void pump_locked(member& m) {
    auto sit = subs.find({m.topic, m.sub});
    auto tit = topics.find(m.topic);
    if (sit == subs.end() || tit == topics.end()) return;
    auto& sub = sit->second;
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<w::DeliveredMessage>> out;
    while (m.credit_messages > 0) {
      std::optional<msg_key> pick;
      bool from_redeliver = false;
      if (!sub.redeliver.empty()) {
        pick = sub.redeliver.front();
        from_redeliver = true;
      } else {
        for (size_t p = 0; p < tit->second.size() && !pick; ++p) {
          while (sub.next[p] < tit->second[p].next) {
            std::span<const std::byte> rec;
            w::batch_header h;
            if (find_record(tit->second[p], sub.next[p], rec, h)) {
              pick = msg_key{int32_t(p), sub.next[p]};
              break;
            }
            ++sub.next[p];  // a control batch's offsets are not messages
          }
        }
      }
      if (!pick) break;
      std::span<const std::byte> rec;
      w::batch_header h;
      if (!find_record(tit->second[pick->first], pick->second, rec, h)) {
        if (from_redeliver) sub.redeliver.pop_front();
        continue;
      }
      if (int64_t(rec.size()) > m.credit_bytes) break;
      if (from_redeliver)
        sub.redeliver.pop_front();
      else
        ++sub.next[pick->first];
      m.credit_messages -= 1;
      m.credit_bytes -= int64_t(rec.size());
      int32_t count = ++sub.deliveries[*pick];
      sub.leased[*pick] = lease{m.id, count};
      ++delivered_total;
      record_bytes[*pick] = rec.size();
      size_t n = rec.size();
      if (truncate_record == *pick) {
        --n;
        truncate_record.reset();
      }
      auto bytes = fbb.CreateVector(reinterpret_cast<const uint8_t*>(rec.data()), n);
      out.push_back(w::CreateDeliveredMessage(fbb, pick->first, pick->second, count, h.first_timestamp, h.append_time,
                                              h.attributes, bytes));
    }
    if (out.empty()) return;
    auto body = w::CreateDeliveryDirect(fbb, m.id, m.topic.c_str(), m.sub.c_str(), &out);
    w::finish_response(fbb, w::CreateResponse(fbb, 0, w::ErrorCode::Ok, 0, 1, w::ResponseBody::Delivery, body.Union()));
    std::lock_guard wl(m.conn->write_mu);
    boost::system::error_code ec;
    asio::write(*m.conn->socket, asio::buffer(fbb.GetBufferPointer(), fbb.GetSize()), ec);
  }

  int64_t cursor_locked(const subscription& sub, int32_t p) {
    int64_t c = sub.next[p];
    for (auto& [k, l] : sub.leased)
      if (k.first == p) c = std::min(c, k.second);
    for (auto& k : sub.redeliver)
      if (k.first == p) c = std::min(c, k.second);
    return c;
  }

  flatbuffers::Offset<w::SubscriptionConfig> config_locked(flatbuffers::FlatBufferBuilder& fbb,
                                                           const subscription& sub) {
    return w::CreateSubscriptionConfigDirect(fbb, sub.earliest ? w::StartPosition::Earliest : w::StartPosition::Latest,
                                             sub.ack_timeout_ms, sub.max_deliveries, sub.ordered,
                                             sub.fixed_backoff ? w::BackoffKind::Fixed : w::BackoffKind::Exponential,
                                             sub.backoff_initial_ms, sub.backoff_max_ms, sub.dead_letter_topic.c_str());
  }

  void respond(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, w::ErrorCode err, const char* msg,
               w::ResponseBody type, flatbuffers::Offset<void> body) {
    auto m = msg ? fbb.CreateString(msg) : 0;
    w::finish_response(fbb, w::CreateResponse(fbb, id, err, m, 1, type, body));
  }

  void handle(const w::Request& r, flatbuffers::FlatBufferBuilder& fbb, bool& drop, connection_state& cs) {
    std::lock_guard lk(mu);
    uint64_t id = r.correlation_id();
    switch (r.body_type()) {
      case w::RequestBody::MetadataRequest: {
        std::vector<flatbuffers::Offset<w::TopicMetadata>> tms;
        for (const auto* name : *r.body_as_MetadataRequest()->topics()) {
          auto it = topics.find(name->str());
          if (it == topics.end()) {
            tms.push_back(
                w::CreateTopicMetadataDirect(fbb, name->c_str(), w::ErrorCode::UnknownTopic, "no such topic"));
            continue;
          }
          std::vector<flatbuffers::Offset<w::PartitionInfo>> ps;
          for (size_t p = 0; p < it->second.size(); ++p) ps.push_back(w::CreatePartitionInfo(fbb, int(p), 1));
          tms.push_back(w::CreateTopicMetadataDirect(fbb, name->c_str(), w::ErrorCode::Ok, nullptr, &ps));
        }
        auto body = w::CreateMetadataResponseDirect(fbb, nullptr, &tms, 1);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::MetadataResponse, body.Union());
      }
      case w::RequestBody::CreateTopicRequest: {
        auto* c = r.body_as_CreateTopicRequest();
        if (topics.count(c->name()->str()))
          return respond(fbb, id, w::ErrorCode::TopicExists, "topic exists", w::ResponseBody::NONE, 0);
        topics[c->name()->str()].resize(c->config()->partitions());
        int64_t md = c->config()->max_delay_ms() != 0 ? c->config()->max_delay_ms() : default_max_delay_ms;
        max_delay[c->name()->str()] = md;
        auto cfg = w::CreateTopicConfig(fbb, c->config()->partitions(), c->config()->replication(),
                                        c->config()->retention_ms(), -1, 0, 0, 0, w::FsyncPolicy::Always, 0, md);
        auto body = w::CreateCreateTopicResponse(fbb, fbb.CreateString(c->name()->str()), cfg);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::CreateTopicResponse, body.Union());
      }
      case w::RequestBody::ListTopicsRequest: {
        std::vector<flatbuffers::Offset<w::TopicSummary>> ts;
        for (auto& [n, ps] : topics) ts.push_back(w::CreateTopicSummaryDirect(fbb, n.c_str(), int(ps.size()), 1));
        auto body = w::CreateListTopicsResponseDirect(fbb, &ts);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::ListTopicsResponse, body.Union());
      }
      case w::RequestBody::DescribeTopicRequest: {
        auto name = r.body_as_DescribeTopicRequest()->name()->str();
        auto it = topics.find(name);
        if (it == topics.end())
          return respond(fbb, id, w::ErrorCode::UnknownTopic, ("topic '" + name + "' does not exist").c_str(),
                         w::ResponseBody::NONE, 0);
        std::vector<flatbuffers::Offset<w::PartitionState>> ps;
        for (size_t p = 0; p < it->second.size(); ++p) {
          auto& part = it->second[p];
          int64_t start = part.batches.empty() ? part.next : part.batches.front().base_offset;
          int64_t pending = 0, next_due = -1;
          for (auto& [k, e] : delayed[name]) {
            if (k.first != int32_t(p)) continue;
            ++pending;
            if (next_due < 0 || e.due_time < next_due) next_due = e.due_time;
          }
          ps.push_back(w::CreatePartitionState(fbb, int(p), 1, start, part.next, part.next, 0, 1, pending, next_due));
        }
        auto cfg = w::CreateTopicConfig(fbb, int(it->second.size()), 1, -1, -1, 0, 0, 0, w::FsyncPolicy::Always, 0,
                                        max_delay.count(name) ? max_delay[name] : default_max_delay_ms);
        auto body = w::CreateDescribeTopicResponseDirect(fbb, name.c_str(), cfg, &ps);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::DescribeTopicResponse, body.Union());
      }
      case w::RequestBody::DeleteTopicRequest: {
        auto name = r.body_as_DeleteTopicRequest()->name()->str();
        if (!topics.erase(name))
          return respond(fbb, id, w::ErrorCode::UnknownTopic, "no such topic", w::ResponseBody::NONE, 0);
        auto body = w::CreateDeleteTopicResponseDirect(fbb, name.c_str());
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::DeleteTopicResponse, body.Union());
      }
      case w::RequestBody::ProduceRequest: {
        int n = ++produce_requests;
        auto* pr = r.body_as_ProduceRequest();
        auto it = topics.find(pr->topic()->str());
        if (it == topics.end())
          return respond(fbb, id, w::ErrorCode::UnknownTopic, "no such topic", w::ResponseBody::NONE, 0);
        if (int(pr->partitions()->size()) > max_partitions_per_request)
          max_partitions_per_request = int(pr->partitions()->size());
        std::vector<flatbuffers::Offset<w::ProducePartitionResult>> res;
        for (const auto* pp : *pr->partitions()) {
          if (n == not_leader_on_produce) {
            res.push_back(
                w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::NotLeader, "not leader"));
            continue;
          }
          auto& part = it->second.at(pp->partition());
          std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(pp->records()->data()),
                                           pp->records()->size());
          auto h = w::verify_batch(bytes);
          if (!h) {
            res.push_back(w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::CorruptBatch,
                                                                h.error().message.c_str()));
            continue;
          }
          auto ls = part.last_seq.find(h->producer_id);
          if (ls != part.last_seq.end() && h->base_sequence != ls->second.first) {
            // Like ferryd: a batch seen before is a duplicate (answered with its first offset);
            // one beyond the next expected sequence is a gap.
            auto seen = part.seen.find({h->producer_id, h->base_sequence});
            if (seen != part.seen.end()) {
              res.push_back(w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::Ok, nullptr,
                                                                  seen->second, -1, true));
              continue;
            }
            res.push_back(
                w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::OutOfOrderSequence, "gap"));
            continue;
          }
          stored st{part.next, std::vector<std::byte>(bytes.begin(), bytes.end())};
          w::stamp_batch(st.bytes, part.next, 0, clock_ms);
          // Like ferryd: a delay beyond the topic's maximum (or a negative relative one) refuses
          // the whole batch, stored nowhere, the producer's sequence not advanced.
          const std::string topic_name = pr->topic()->str();
          const int64_t md = max_delay.count(topic_name) ? max_delay[topic_name] : default_max_delay_ms;
          const bool relative = (h->attributes & w::attr_delay_relative) != 0;
          bool out_of_range = false;
          std::vector<std::pair<msg_key, delayed_entry>> pending;
          auto rr = w::for_each_record(st.bytes, [&](const w::record_view& rv) {
            if (!rv.deliver_at) return;
            int64_t delay = *rv.deliver_at - clock_ms;
            if (delay > md || (relative && delay < 0)) out_of_range = true;
            std::optional<std::string> key;
            if (rv.key) key = std::string(*rv.key);
            pending.push_back(
                {{pp->partition(), rv.offset},
                 delayed_entry{*rv.deliver_at, clock_ms, std::move(key), rv.value ? int32_t(rv.value->size()) : 0}});
          });
          if (!rr || out_of_range) {
            res.push_back(w::CreateProducePartitionResultDirect(
                fbb, pp->partition(), w::ErrorCode::DelayOutOfRange,
                ("a delay is beyond the topic's maximum of " + std::to_string(md) + " ms, or negative").c_str()));
            continue;
          }
          for (auto& [k, e] : pending) {
            if (e.due_time > clock_ms)
              delayed[topic_name][k] = std::move(e);
            else
              released[topic_name].insert(k);
          }
          part.seen[{h->producer_id, h->base_sequence}] = part.next;
          part.last_seq[h->producer_id] = {w::increment_sequence(h->base_sequence, h->record_count), part.next};
          res.push_back(w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::Ok, nullptr,
                                                              part.next, clock_ms));
          part.next += h->record_count;
          part.batches.push_back(std::move(st));
        }
        if (n == drop_before_answer_on_produce) {
          drop = true;
          return;
        }
        auto body = w::CreateProduceResponseDirect(fbb, pr->topic()->c_str(), &res);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::ProduceResponse, body.Union());
      }
      case w::RequestBody::FetchRequest: {
        auto* fr = r.body_as_FetchRequest();
        auto it = topics.find(fr->topic()->str());
        if (it == topics.end())
          return respond(fbb, id, w::ErrorCode::UnknownTopic, "no such topic", w::ResponseBody::NONE, 0);
        std::vector<flatbuffers::Offset<w::FetchPartitionResult>> res;
        for (const auto* fp : *fr->partitions()) {
          auto& part = it->second.at(fp->partition());
          if (fp->offset() > part.next) {
            res.push_back(w::CreateFetchPartitionResultDirect(fbb, fp->partition(), w::ErrorCode::OffsetOutOfRange,
                                                              "out of range"));
            continue;
          }
          std::vector<uint8_t> out;
          for (auto& b : part.batches) {
            auto h = w::parse_batch_header(b.bytes);
            if (h->next_offset() <= fp->offset()) continue;
            if (!out.empty() && out.size() + b.bytes.size() > size_t(fp->max_bytes())) break;
            auto* p = reinterpret_cast<const uint8_t*>(b.bytes.data());
            out.insert(out.end(), p, p + b.bytes.size());
          }
          res.push_back(
              w::CreateFetchPartitionResultDirect(fbb, fp->partition(), w::ErrorCode::Ok, nullptr, part.next, 0, &out));
        }
        auto body = w::CreateFetchResponseDirect(fbb, fr->topic()->c_str(), &res);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::FetchResponse, body.Union());
      }
      case w::RequestBody::CreateSubscriptionRequest: {
        auto* c = r.body_as_CreateSubscriptionRequest();
        std::string topic = c->topic()->str(), name = c->name()->str();
        auto tit = topics.find(topic);
        if (tit == topics.end())
          return respond(fbb, id, w::ErrorCode::UnknownTopic, "no such topic", w::ResponseBody::NONE, 0);
        if (subs.count({topic, name}))
          return respond(fbb, id, w::ErrorCode::SubscriptionExists, "subscription exists", w::ResponseBody::NONE, 0);
        subscription sub;
        if (const auto* cfg = c->config()) {
          sub.earliest = cfg->start() == w::StartPosition::Earliest;
          if (cfg->ack_timeout_ms() >= 0) sub.ack_timeout_ms = cfg->ack_timeout_ms();
          if (cfg->max_deliveries() >= 0) sub.max_deliveries = cfg->max_deliveries();
          sub.ordered = cfg->ordered();
          sub.fixed_backoff = cfg->backoff() == w::BackoffKind::Fixed;
          if (cfg->backoff_initial_ms() >= 0) sub.backoff_initial_ms = cfg->backoff_initial_ms();
          if (cfg->backoff_max_ms() >= 0) sub.backoff_max_ms = cfg->backoff_max_ms();
          if (cfg->dead_letter_topic() && cfg->dead_letter_topic()->size() > 0)
            sub.dead_letter_topic = cfg->dead_letter_topic()->str();
        }
        if (sub.dead_letter_topic.empty()) sub.dead_letter_topic = topic + "." + name + ".dlq";
        for (auto& p : tit->second) sub.next.push_back(sub.earliest ? 0 : p.next);
        auto& stored_sub = subs[{topic, name}] = std::move(sub);
        auto cfg = config_locked(fbb, stored_sub);
        auto body = w::CreateCreateSubscriptionResponseDirect(fbb, topic.c_str(), name.c_str(), cfg);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::CreateSubscriptionResponse, body.Union());
      }
      case w::RequestBody::DeleteSubscriptionRequest: {
        auto* d = r.body_as_DeleteSubscriptionRequest();
        std::string topic = d->topic()->str(), name = d->name()->str();
        if (!subs.erase({topic, name}))
          return respond(fbb, id, w::ErrorCode::UnknownSubscription,
                         ("subscription '" + name + "' does not exist").c_str(), w::ResponseBody::NONE, 0);
        auto body = w::CreateDeleteSubscriptionResponseDirect(fbb, topic.c_str(), name.c_str());
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::DeleteSubscriptionResponse, body.Union());
      }
      case w::RequestBody::ListSubscriptionsRequest: {
        auto* l = r.body_as_ListSubscriptionsRequest();
        std::string topic = l->topic() ? l->topic()->str() : "";
        std::vector<flatbuffers::Offset<w::SubscriptionSummary>> out;
        for (auto& [k, sub] : subs) {
          if (!topic.empty() && k.first != topic) continue;
          int32_t n = 0;
          for (auto& [mid, m] : members) n += (m.topic == k.first && m.sub == k.second);
          int64_t backlog = 0;
          for (size_t p = 0; p < sub.next.size(); ++p)
            backlog += topics[k.first][p].next - cursor_locked(sub, int32_t(p));
          out.push_back(w::CreateSubscriptionSummaryDirect(fbb, k.first.c_str(), k.second.c_str(), n, backlog,
                                                           int64_t(sub.leased.size())));
        }
        auto body = w::CreateListSubscriptionsResponseDirect(fbb, &out);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::ListSubscriptionsResponse, body.Union());
      }
      case w::RequestBody::DescribeSubscriptionRequest: {
        auto* d = r.body_as_DescribeSubscriptionRequest();
        std::string topic = d->topic()->str(), name = d->name()->str();
        auto sit = subs.find({topic, name});
        if (sit == subs.end())
          return respond(fbb, id, w::ErrorCode::UnknownSubscription,
                         ("subscription '" + name + "' does not exist").c_str(), w::ResponseBody::NONE, 0);
        auto& sub = sit->second;
        std::vector<flatbuffers::Offset<w::SubscriptionPartitionState>> ps;
        for (size_t p = 0; p < sub.next.size(); ++p) {
          int64_t hwm = topics[topic][p].next;
          int64_t cur = cursor_locked(sub, int32_t(p));
          int64_t in_flight = 0, acked_above = 0;
          for (auto& [k, l] : sub.leased) in_flight += k.first == int32_t(p);
          for (auto& k : sub.acked) acked_above += k.first == int32_t(p) && k.second >= cur;
          ps.push_back(w::CreateSubscriptionPartitionState(fbb, int32_t(p), cur, 0, hwm, hwm - cur - acked_above,
                                                           in_flight, acked_above, 0, 0, 0, cur < hwm ? 1000 : -1, 0,
                                                           -1));
        }
        std::vector<flatbuffers::Offset<w::MemberInfo>> ms;
        for (auto& [mid, m] : members) {
          if (m.topic != topic || m.sub != name) continue;
          int64_t in_flight = 0;
          for (auto& [k, l] : sub.leased) in_flight += l.member == mid;
          ms.push_back(w::CreateMemberInfoDirect(fbb, mid, m.name.c_str(), "127.0.0.1", in_flight, m.credit_messages));
        }
        auto cfg = config_locked(fbb, sub);
        auto body = w::CreateDescribeSubscriptionResponseDirect(fbb, topic.c_str(), name.c_str(), cfg, &ps, &ms);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::DescribeSubscriptionResponse, body.Union());
      }
      case w::RequestBody::SeekSubscriptionRequest: {
        auto* q = r.body_as_SeekSubscriptionRequest();
        std::string topic = q->topic()->str(), name = q->name()->str();
        auto sit = subs.find({topic, name});
        if (sit == subs.end())
          return respond(fbb, id, w::ErrorCode::UnknownSubscription, "no such subscription", w::ResponseBody::NONE, 0);
        auto& sub = sit->second;
        std::vector<flatbuffers::Offset<w::SeekPartitionResult>> res;
        auto& parts = topics[topic];
        if (q->partition() >= int32_t(parts.size()))
          res.push_back(w::CreateSeekPartitionResultDirect(fbb, q->partition(), w::ErrorCode::UnknownPartition,
                                                           "no such partition"));
        for (int32_t p = 0; p < int32_t(parts.size()); ++p) {
          if (q->partition() >= 0 && p != q->partition()) continue;
          int64_t hwm = parts[p].next;
          int64_t old_cursor = cursor_locked(sub, p);
          int64_t to = q->target() == w::SeekTarget::Latest   ? hwm
                       : q->target() == w::SeekTarget::Offset ? std::clamp<int64_t>(q->value(), 0, hwm)
                                                              : 0;  // earliest; time is not modelled
          if (!q->dry_run()) {
            sub.next[p] = to;
            std::erase_if(sub.leased, [&](auto& kv) { return kv.first.first == p; });
            std::erase_if(sub.redeliver, [&](auto& k) { return k.first == p; });
            std::erase_if(sub.acked, [&](auto& k) { return k.first == p; });
          }
          res.push_back(w::CreateSeekPartitionResultDirect(fbb, p, w::ErrorCode::Ok, nullptr, old_cursor, to,
                                                           hwm - old_cursor, hwm - to));
        }
        auto body = w::CreateSeekSubscriptionResponseDirect(fbb, topic.c_str(), name.c_str(), q->dry_run(), &res);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::SeekSubscriptionResponse, body.Union());
      }
      case w::RequestBody::JoinRequest: {
        ++join_requests;
        auto* j = r.body_as_JoinRequest();
        std::string topic = j->topic()->str(), name = j->subscription()->str();
        if (!topics.count(topic))
          return respond(fbb, id, w::ErrorCode::UnknownTopic, ("topic '" + topic + "' does not exist").c_str(),
                         w::ResponseBody::NONE, 0);
        auto sit = subs.find({topic, name});
        if (sit == subs.end())
          return respond(fbb, id, w::ErrorCode::UnknownSubscription,
                         ("subscription '" + name + "' does not exist").c_str(), w::ResponseBody::NONE, 0);
        join_names.push_back(j->member_name() ? j->member_name()->str() : "");
        join_ack_timeouts.push_back(j->ack_timeout_ms());
        join_credits.emplace_back(j->credit_messages(), j->credit_bytes());
        uint64_t mid = next_member_id++;
        members[mid] = member{mid,
                              topic,
                              name,
                              j->member_name() ? j->member_name()->str() : "",
                              &cs,
                              j->credit_messages(),
                              j->credit_bytes(),
                              j->ack_timeout_ms() >= 0 ? j->ack_timeout_ms() : sit->second.ack_timeout_ms};
        if (push_before_join_answer) pump_locked(members[mid]);
        auto cfg = config_locked(fbb, sit->second);
        auto body = w::CreateJoinResponse(fbb, mid, int32_t(topics[topic].size()), members[mid].ack_timeout_ms, cfg);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::JoinResponse, body.Union());
      }
      case w::RequestBody::LeaveRequest: {
        ++leave_requests;
        uint64_t mid = r.body_as_LeaveRequest()->member_id();
        auto mit = members.find(mid);
        if (mit == members.end())
          return respond(fbb, id, w::ErrorCode::UnknownMember, "unknown member", w::ResponseBody::NONE, 0);
        release_locked(mit->second);
        members.erase(mit);
        auto body = w::CreateLeaveResponse(fbb, mid);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::LeaveResponse, body.Union());
      }
      case w::RequestBody::AckRequest: {
        int n = ++ack_requests;
        auto* a = r.body_as_AckRequest();
        size_t items = 0;
        if (a->acks())
          for (const auto* po : *a->acks()) items += po->offsets() ? po->offsets()->size() : 0;
        items += a->nacks() ? a->nacks()->size() : 0;
        items += a->extends() ? a->extends()->size() : 0;
        ack_request_items.push_back(items);
        ack_request_members.push_back(a->member_id());
        if (n == drop_on_ack_request) {
          drop = true;
          return;
        }
        auto mit = members.find(a->member_id());
        if (mit == members.end())
          return respond(fbb, id, w::ErrorCode::UnknownMember, "unknown member", w::ResponseBody::NONE, 0);
        if (n == fail_ack_request)
          return respond(fbb, id, fail_ack_request_code, "ack request refused", w::ResponseBody::NONE, 0);
        member& m = mit->second;
        auto& sub = subs[{m.topic, m.sub}];
        std::vector<flatbuffers::Offset<w::AckFailure>> failures;
        int32_t acked = 0, nacked = 0, extended = 0;
        // Checks one item; true if it may be applied.
        auto check = [&](int32_t p, int64_t off) {
          msg_key k{p, off};
          if (auto f = fail_item.find(k); f != fail_item.end()) {
            failures.push_back(w::CreateAckFailure(fbb, p, off, f->second));
            fail_item.erase(f);
            return false;
          }
          auto l = sub.leased.find(k);
          if (l == sub.leased.end() || l->second.member != m.id) {
            failures.push_back(w::CreateAckFailure(
                fbb, p, off, l == sub.leased.end() ? w::ErrorCode::UnknownMessage : w::ErrorCode::LeaseNotHeld));
            return false;
          }
          return true;
        };
        if (a->acks())
          for (const auto* po : *a->acks())
            for (int64_t off : *po->offsets()) {
              if (!check(po->partition(), off)) continue;
              sub.leased.erase({po->partition(), off});
              sub.acked.insert({po->partition(), off});
              ++acked;
              ++acked_total;
            }
        if (a->nacks())
          for (const auto* ni : *a->nacks()) {
            nacks_seen.push_back({{ni->partition(), ni->offset()}, ni->delay_ms()});
            if (!check(ni->partition(), ni->offset())) continue;
            sub.leased.erase({ni->partition(), ni->offset()});
            sub.redeliver.push_back({ni->partition(), ni->offset()});
            ++nacked;
          }
        if (a->extends())
          for (const auto* ei : *a->extends()) {
            extends_seen.push_back({{ei->partition(), ei->offset()}, ei->extend_ms()});
            if (!check(ei->partition(), ei->offset())) continue;
            ++extended;
          }
        m.credit_messages += a->credit_messages();
        m.credit_bytes += a->credit_bytes();
        credit_returned_messages += a->credit_messages();
        credit_returned_bytes += a->credit_bytes();
        auto body = w::CreateAckResponseDirect(fbb, acked, nacked, extended, &failures);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::AckResponse, body.Union());
      }
      case w::RequestBody::CancelRequest: {
        ++delayed_requests;
        auto* c = r.body_as_CancelRequest();
        std::string topic = c->topic() ? c->topic()->str() : "";
        auto tit = topics.find(topic);
        if (tit == topics.end())
          return respond(fbb, id, w::ErrorCode::UnknownTopic, ("topic '" + topic + "' does not exist").c_str(),
                         w::ResponseBody::NONE, 0);
        if (c->partition() < 0 || c->partition() >= int32_t(tit->second.size()))
          return respond(fbb, id, w::ErrorCode::UnknownPartition, "no such partition", w::ResponseBody::NONE, 0);
        msg_key k{c->partition(), c->offset()};
        w::CancelOutcome outcome;
        const char* why = nullptr;
        if (delayed[topic].erase(k)) {
          cancelled[topic].insert(k);
          outcome = w::CancelOutcome::Cancelled;
        } else if (cancelled[topic].count(k)) {
          outcome = w::CancelOutcome::Cancelled;  // idempotent: a retried cancel
          why = "already cancelled";
        } else if (released[topic].count(k)) {
          outcome = w::CancelOutcome::TooLate;
          why = "already due and released";
        } else if (c->offset() < tit->second[c->partition()].next) {
          outcome = w::CancelOutcome::TooLate;
          why = "not a delayed message";
        } else {
          outcome = w::CancelOutcome::Unknown;
          why = "no message at this offset";
        }
        if (cancel_outcome_wire) outcome = static_cast<w::CancelOutcome>(*cancel_outcome_wire);
        auto body = w::CreateCancelResponseDirect(fbb, topic.c_str(), c->partition(), c->offset(), outcome, why);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::CancelResponse, body.Union());
      }
      case w::RequestBody::ListDelayedRequest: {
        ++delayed_requests;
        auto* l = r.body_as_ListDelayedRequest();
        list_delayed_seen.emplace_back(l->partition(), l->before_time(), l->limit());
        std::string topic = l->topic() ? l->topic()->str() : "";
        auto tit = topics.find(topic);
        if (tit == topics.end())
          return respond(fbb, id, w::ErrorCode::UnknownTopic, ("topic '" + topic + "' does not exist").c_str(),
                         w::ResponseBody::NONE, 0);
        if (l->limit() < 1 || l->limit() > 10000)
          return respond(fbb, id, w::ErrorCode::InvalidArgument, "limit outside 1..10000", w::ResponseBody::NONE, 0);
        if (l->partition() < -1 || l->partition() >= int32_t(tit->second.size()))
          return respond(fbb, id, w::ErrorCode::UnknownPartition, "no such partition", w::ResponseBody::NONE, 0);
        std::vector<std::pair<msg_key, const delayed_entry*>> hits;
        int64_t pending = 0;
        for (auto& [k, e] : delayed[topic]) {
          if (l->partition() >= 0 && k.first != l->partition()) continue;
          ++pending;
          if (l->before_time() < 0 || e.due_time < l->before_time()) hits.push_back({k, &e});
        }
        std::sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) {
          return std::tie(a.second->due_time, a.first) < std::tie(b.second->due_time, b.first);
        });
        if (hits.size() > size_t(l->limit())) hits.resize(size_t(l->limit()));
        std::vector<flatbuffers::Offset<w::DelayedMessage>> out;
        for (auto& [k, e] : hits) {
          flatbuffers::Offset<flatbuffers::Vector<uint8_t>> key = 0;
          if (e->key) key = fbb.CreateVector(reinterpret_cast<const uint8_t*>(e->key->data()), e->key->size());
          out.push_back(
              w::CreateDelayedMessage(fbb, k.first, k.second, e->due_time, e->append_time, key, e->value_bytes));
        }
        auto body = w::CreateListDelayedResponseDirect(fbb, topic.c_str(), &out, pending);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::ListDelayedResponse, body.Union());
      }
      default:
        return respond(fbb, id, w::ErrorCode::UnsupportedApi, "unsupported", w::ResponseBody::NONE, 0);
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_;
  std::thread thread_;
  std::vector<std::thread> conn_threads_;
  std::vector<tcp::socket*> sockets_;
  std::atomic<bool> stopping_{false};
};

}  // namespace ferry::client::testing
