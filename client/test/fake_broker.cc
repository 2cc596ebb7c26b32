// The fake broker (fake_broker.h): sockets and threads, then one handler per request type.
#include "client/test/fake_broker.h"

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <span>
#include <thread>

#include "schema/frame.h"
#include "schema/record_batch.h"

namespace ferry::client::testing {

namespace asio = boost::asio;
namespace w = ferry::wire;
using tcp = asio::ip::tcp;

struct fake_broker::connection {
  explicit connection(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  std::mutex write_mu;  // a push from another connection's thread and this one's answers
};

struct fake_broker::io {
  asio::io_context ctx;
  tcp::acceptor acceptor{ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  uint16_t port = acceptor.local_endpoint().port();
  std::atomic<bool> stopping{false};
  std::thread accept_thread;
  std::vector<std::thread> conn_threads;  // added by the accept thread only; joined after it
  std::vector<connection*> open;          // under fake_broker::mu
};

struct fake_broker::exchange {
  const w::Request& req;
  flatbuffers::FlatBufferBuilder& fbb;
  connection& conn;
  bool drop = false;  // close the connection instead of answering

  uint64_t id() const { return req.correlation_id(); }
  void answer(w::ResponseBody type, flatbuffers::Offset<void> body) {
    w::finish_response(fbb, w::CreateResponse(fbb, id(), w::ErrorCode::Ok, 0, 1, type, body));
  }
  void refuse(w::ErrorCode err, const std::string& message) {
    auto m = fbb.CreateString(message);
    w::finish_response(fbb, w::CreateResponse(fbb, id(), err, m, 1, w::ResponseBody::NONE, 0));
  }
};

namespace {

// The record at `offset` of a partition: its bytes (length prefix included) and its batch header.
bool find_record(fake_broker::partition& part, int64_t offset, std::span<const std::byte>& rec, w::batch_header& hdr) {
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

flatbuffers::Offset<w::SubscriptionConfig> config_of(flatbuffers::FlatBufferBuilder& fbb,
                                                     const fake_broker::subscription& sub) {
  return w::CreateSubscriptionConfigDirect(fbb, sub.earliest ? w::StartPosition::Earliest : w::StartPosition::Latest,
                                           sub.ack_timeout_ms, sub.max_deliveries, sub.ordered,
                                           sub.fixed_backoff ? w::BackoffKind::Fixed : w::BackoffKind::Exponential,
                                           sub.backoff_initial_ms, sub.backoff_max_ms, sub.dead_letter_topic.c_str());
}

}  // namespace

// ---- set-up, connections ----------------------------------------------------------------------

fake_broker::fake_broker() : io_(std::make_unique<io>()) {
  io_->accept_thread = std::thread([this] {
    while (!io_->stopping) {
      tcp::socket s(io_->ctx);
      boost::system::error_code ec;
      io_->acceptor.accept(s, ec);
      if (ec) return;
      ++connections_accepted;
      s.set_option(tcp::no_delay(true), ec);  // an answer and a push often go out back to back
      auto c = std::make_shared<connection>(std::move(s));
      {
        // Known before its thread starts, so the destructor's drop_all_connections() reaches it.
        std::lock_guard lk(mu);
        io_->open.push_back(c.get());
      }
      io_->conn_threads.emplace_back([this, c] { serve(*c); });
    }
  });
}

fake_broker::~fake_broker() {
  io_->stopping = true;
  ::shutdown(io_->acceptor.native_handle(), SHUT_RDWR);  // wakes the blocking accept()
  io_->accept_thread.join();                             // no connection comes after this
  drop_all_connections();
  for (auto& t : io_->conn_threads) t.join();
}

std::string fake_broker::address() const { return "127.0.0.1:" + std::to_string(io_->port); }

void fake_broker::drop_all_connections() {
  std::lock_guard lk(mu);
  boost::system::error_code ec;
  for (auto* c : io_->open) c->socket.shutdown(tcp::socket::shutdown_both, ec);
}

// Reads a request, answers it, hands out what members may now have, until the connection ends.
void fake_broker::serve(connection& c) {
  std::vector<uint64_t> buf;  // 8-byte aligned for the FlatBuffer
  flatbuffers::FlatBufferBuilder fbb;
  for (;;) {
    std::byte len[4];
    boost::system::error_code ec;
    asio::read(c.socket, asio::buffer(len), ec);
    if (ec) break;
    uint32_t n = w::get_le32(len);
    buf.resize((n + 4 + 7) / 8);
    std::memcpy(buf.data(), len, 4);
    asio::read(c.socket, asio::buffer(reinterpret_cast<std::byte*>(buf.data()) + 4, n), ec);
    if (ec) break;
    auto req = w::decode_request(std::span(reinterpret_cast<const std::byte*>(buf.data()), n + 4));
    if (!req) break;
    fbb.Clear();
    exchange x{**req, fbb, c};
    {
      std::lock_guard lk(mu);
      handle(x);
    }
    if (x.drop) break;
    {
      std::lock_guard wl(c.write_mu);
      asio::write(c.socket, asio::buffer(fbb.GetBufferPointer(), fbb.GetSize()), ec);
    }
    if (ec) break;
    push_now();
  }
  std::lock_guard lk(mu);
  disconnected_locked(c);
}

void fake_broker::disconnected_locked(connection& c) {
  // Its members are gone: what they held goes back to their subscriptions.
  for (auto it = members.begin(); it != members.end();) {
    if (it->second.conn != &c) {
      ++it;
      continue;
    }
    release_locked(it->second);
    it = members.erase(it);
  }
  std::erase(io_->open, &c);
  std::lock_guard wl(c.write_mu);
  boost::system::error_code ec;
  c.socket.close(ec);
}

// ---- test controls ----------------------------------------------------------------------------

void fake_broker::add_topic(const std::string& name, int partitions, int64_t max_delay_ms) {
  std::lock_guard lk(mu);
  topics[name].resize(partitions);
  max_delay[name] = max_delay_ms;
}

void fake_broker::release_delayed(const std::string& topic, int p, int64_t offset) {
  std::lock_guard lk(mu);
  if (delayed[topic].erase({p, offset})) released[topic].insert({p, offset});
}

size_t fake_broker::delayed_pending(const std::string& topic) {
  std::lock_guard lk(mu);
  return delayed[topic].size();
}

int64_t fake_broker::records(const std::string& topic, int p) {
  std::lock_guard lk(mu);
  return topics[topic][p].next;
}

void fake_broker::add_subscription(const std::string& topic, const std::string& name, bool earliest) {
  std::lock_guard lk(mu);
  auto& sub = subs[{topic, name}];
  sub.earliest = earliest;
  sub.dead_letter_topic = topic + "." + name + ".dlq";
  for (auto& p : topics.at(topic)) sub.next.push_back(earliest ? 0 : p.next);
}

int64_t fake_broker::append_batch(const std::string& topic, int p, std::vector<std::byte> bytes, int64_t append_time) {
  std::lock_guard lk(mu);
  auto& part = topics.at(topic).at(p);
  auto h = w::parse_batch_header(bytes);
  int64_t base = part.next;
  w::stamp_batch(bytes, base, 0, append_time);
  part.next += h->record_count;
  part.batches.push_back(stored{base, std::move(bytes)});
  return base;
}

void fake_broker::push_now() {
  std::lock_guard lk(mu);
  pump_all_locked();
}

size_t fake_broker::member_count() {
  std::lock_guard lk(mu);
  return members.size();
}

std::vector<uint64_t> fake_broker::member_ids() {
  std::lock_guard lk(mu);
  std::vector<uint64_t> out;
  for (auto& [id, m] : members) out.push_back(id);
  return out;
}

size_t fake_broker::leased(const std::string& topic, const std::string& sub) {
  std::lock_guard lk(mu);
  return subs[{topic, sub}].leased.size();
}

// ---- subscriptions: leases and pushes ---------------------------------------------------------

void fake_broker::release_locked(const member& m) {
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

void fake_broker::pump_all_locked() {
  for (auto& [id, m] : members) pump_locked(m);
}

// Pushes one Delivery frame with what `m` has credit for: redeliveries first, then each
// partition's next messages in offset order.
void fake_broker::pump_locked(member& m) {
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
  asio::write(m.conn->socket, asio::buffer(fbb.GetBufferPointer(), fbb.GetSize()), ec);
}

// Every message below is acked or leased-and-acked: the first one not handed out, leased or due
// for redelivery.
int64_t fake_broker::cursor_locked(const subscription& sub, int32_t p) const {
  int64_t c = sub.next[p];
  for (auto& [k, l] : sub.leased)
    if (k.first == p) c = std::min(c, k.second);
  for (auto& k : sub.redeliver)
    if (k.first == p) c = std::min(c, k.second);
  return c;
}

// ---- requests ---------------------------------------------------------------------------------

void fake_broker::handle(exchange& x) {
  switch (x.req.body_type()) {
    case w::RequestBody::MetadataRequest:
      return on_metadata(x);
    case w::RequestBody::CreateTopicRequest:
      return on_create_topic(x);
    case w::RequestBody::ListTopicsRequest:
      return on_list_topics(x);
    case w::RequestBody::DescribeTopicRequest:
      return on_describe_topic(x);
    case w::RequestBody::DeleteTopicRequest:
      return on_delete_topic(x);
    case w::RequestBody::ProduceRequest:
      return on_produce(x);
    case w::RequestBody::FetchRequest:
      return on_fetch(x);
    case w::RequestBody::CreateSubscriptionRequest:
      return on_create_subscription(x);
    case w::RequestBody::DeleteSubscriptionRequest:
      return on_delete_subscription(x);
    case w::RequestBody::ListSubscriptionsRequest:
      return on_list_subscriptions(x);
    case w::RequestBody::DescribeSubscriptionRequest:
      return on_describe_subscription(x);
    case w::RequestBody::SeekSubscriptionRequest:
      return on_seek_subscription(x);
    case w::RequestBody::JoinRequest:
      return on_join(x);
    case w::RequestBody::LeaveRequest:
      return on_leave(x);
    case w::RequestBody::AckRequest:
      return on_ack(x);
    case w::RequestBody::CancelRequest:
      return on_cancel(x);
    case w::RequestBody::ListDelayedRequest:
      return on_list_delayed(x);
    default:
      return x.refuse(w::ErrorCode::UnsupportedApi, "unsupported");
  }
}

void fake_broker::on_metadata(exchange& x) {
  auto& fbb = x.fbb;
  std::vector<flatbuffers::Offset<w::TopicMetadata>> tms;
  for (const auto* name : *x.req.body_as_MetadataRequest()->topics()) {
    auto it = topics.find(name->str());
    if (it == topics.end()) {
      tms.push_back(w::CreateTopicMetadataDirect(fbb, name->c_str(), w::ErrorCode::UnknownTopic, "no such topic"));
      continue;
    }
    std::vector<flatbuffers::Offset<w::PartitionInfo>> ps;
    for (size_t p = 0; p < it->second.size(); ++p) ps.push_back(w::CreatePartitionInfo(fbb, int(p), 1));
    tms.push_back(w::CreateTopicMetadataDirect(fbb, name->c_str(), w::ErrorCode::Ok, nullptr, &ps));
  }
  auto body = w::CreateMetadataResponseDirect(fbb, nullptr, &tms, 1);
  x.answer(w::ResponseBody::MetadataResponse, body.Union());
}

void fake_broker::on_create_topic(exchange& x) {
  auto& fbb = x.fbb;
  auto* c = x.req.body_as_CreateTopicRequest();
  if (topics.count(c->name()->str())) return x.refuse(w::ErrorCode::TopicExists, "topic exists");
  topics[c->name()->str()].resize(c->config()->partitions());
  int64_t md = c->config()->max_delay_ms() != 0 ? c->config()->max_delay_ms() : default_max_delay_ms;
  max_delay[c->name()->str()] = md;
  auto cfg = w::CreateTopicConfig(fbb, c->config()->partitions(), c->config()->replication(),
                                  c->config()->retention_ms(), -1, 0, 0, 0, w::FsyncPolicy::Always, 0, md);
  auto body = w::CreateCreateTopicResponse(fbb, fbb.CreateString(c->name()->str()), cfg);
  x.answer(w::ResponseBody::CreateTopicResponse, body.Union());
}

void fake_broker::on_list_topics(exchange& x) {
  auto& fbb = x.fbb;
  std::vector<flatbuffers::Offset<w::TopicSummary>> ts;
  for (auto& [n, ps] : topics) ts.push_back(w::CreateTopicSummaryDirect(fbb, n.c_str(), int(ps.size()), 1));
  auto body = w::CreateListTopicsResponseDirect(fbb, &ts);
  x.answer(w::ResponseBody::ListTopicsResponse, body.Union());
}

void fake_broker::on_describe_topic(exchange& x) {
  auto& fbb = x.fbb;
  auto name = x.req.body_as_DescribeTopicRequest()->name()->str();
  auto it = topics.find(name);
  if (it == topics.end()) return x.refuse(w::ErrorCode::UnknownTopic, "topic '" + name + "' does not exist");
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
  x.answer(w::ResponseBody::DescribeTopicResponse, body.Union());
}

void fake_broker::on_delete_topic(exchange& x) {
  auto name = x.req.body_as_DeleteTopicRequest()->name()->str();
  if (!topics.erase(name)) return x.refuse(w::ErrorCode::UnknownTopic, "no such topic");
  auto body = w::CreateDeleteTopicResponseDirect(x.fbb, name.c_str());
  x.answer(w::ResponseBody::DeleteTopicResponse, body.Union());
}

void fake_broker::on_produce(exchange& x) {
  auto& fbb = x.fbb;
  int n = ++produce_requests;
  auto* pr = x.req.body_as_ProduceRequest();
  auto it = topics.find(pr->topic()->str());
  if (it == topics.end()) return x.refuse(w::ErrorCode::UnknownTopic, "no such topic");
  if (int(pr->partitions()->size()) > max_partitions_per_request)
    max_partitions_per_request = int(pr->partitions()->size());
  std::vector<flatbuffers::Offset<w::ProducePartitionResult>> res;
  for (const auto* pp : *pr->partitions()) {
    if (n == not_leader_on_produce) {
      res.push_back(w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::NotLeader, "not leader"));
      continue;
    }
    auto& part = it->second.at(pp->partition());
    std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(pp->records()->data()), pp->records()->size());
    auto h = w::verify_batch(bytes);
    if (!h) {
      res.push_back(w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::CorruptBatch,
                                                          h.error().message.c_str()));
      continue;
    }
    auto ls = part.last_seq.find(h->producer_id);
    if (ls != part.last_seq.end() && h->base_sequence != ls->second.first) {
      // Like ferryd: a batch seen before is a duplicate (answered with its first offset); one
      // beyond the next expected sequence is a gap.
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
    // Like ferryd: a delay beyond the topic's maximum (or a negative relative one) refuses the
    // whole batch, stored nowhere, the producer's sequence not advanced.
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
    res.push_back(
        w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::Ok, nullptr, part.next, clock_ms));
    part.next += h->record_count;
    part.batches.push_back(std::move(st));
  }
  if (n == drop_before_answer_on_produce) {
    x.drop = true;
    return;
  }
  auto body = w::CreateProduceResponseDirect(fbb, pr->topic()->c_str(), &res);
  x.answer(w::ResponseBody::ProduceResponse, body.Union());
}

void fake_broker::on_fetch(exchange& x) {
  auto& fbb = x.fbb;
  auto* fr = x.req.body_as_FetchRequest();
  auto it = topics.find(fr->topic()->str());
  if (it == topics.end()) return x.refuse(w::ErrorCode::UnknownTopic, "no such topic");
  std::vector<flatbuffers::Offset<w::FetchPartitionResult>> res;
  for (const auto* fp : *fr->partitions()) {
    auto& part = it->second.at(fp->partition());
    if (fp->offset() > part.next) {
      res.push_back(
          w::CreateFetchPartitionResultDirect(fbb, fp->partition(), w::ErrorCode::OffsetOutOfRange, "out of range"));
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
  x.answer(w::ResponseBody::FetchResponse, body.Union());
}

void fake_broker::on_create_subscription(exchange& x) {
  auto* c = x.req.body_as_CreateSubscriptionRequest();
  std::string topic = c->topic()->str(), name = c->name()->str();
  auto tit = topics.find(topic);
  if (tit == topics.end()) return x.refuse(w::ErrorCode::UnknownTopic, "no such topic");
  if (subs.count({topic, name})) return x.refuse(w::ErrorCode::SubscriptionExists, "subscription exists");
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
  auto cfg = config_of(x.fbb, stored_sub);
  auto body = w::CreateCreateSubscriptionResponseDirect(x.fbb, topic.c_str(), name.c_str(), cfg);
  x.answer(w::ResponseBody::CreateSubscriptionResponse, body.Union());
}

void fake_broker::on_delete_subscription(exchange& x) {
  auto* d = x.req.body_as_DeleteSubscriptionRequest();
  std::string topic = d->topic()->str(), name = d->name()->str();
  if (!subs.erase({topic, name}))
    return x.refuse(w::ErrorCode::UnknownSubscription, "subscription '" + name + "' does not exist");
  auto body = w::CreateDeleteSubscriptionResponseDirect(x.fbb, topic.c_str(), name.c_str());
  x.answer(w::ResponseBody::DeleteSubscriptionResponse, body.Union());
}

void fake_broker::on_list_subscriptions(exchange& x) {
  auto& fbb = x.fbb;
  auto* l = x.req.body_as_ListSubscriptionsRequest();
  std::string topic = l->topic() ? l->topic()->str() : "";
  std::vector<flatbuffers::Offset<w::SubscriptionSummary>> out;
  for (auto& [k, sub] : subs) {
    if (!topic.empty() && k.first != topic) continue;
    int32_t n = 0;
    for (auto& [mid, m] : members) n += (m.topic == k.first && m.sub == k.second);
    int64_t backlog = 0;
    for (size_t p = 0; p < sub.next.size(); ++p) backlog += topics[k.first][p].next - cursor_locked(sub, int32_t(p));
    out.push_back(w::CreateSubscriptionSummaryDirect(fbb, k.first.c_str(), k.second.c_str(), n, backlog,
                                                     int64_t(sub.leased.size())));
  }
  auto body = w::CreateListSubscriptionsResponseDirect(fbb, &out);
  x.answer(w::ResponseBody::ListSubscriptionsResponse, body.Union());
}

void fake_broker::on_describe_subscription(exchange& x) {
  auto& fbb = x.fbb;
  auto* d = x.req.body_as_DescribeSubscriptionRequest();
  std::string topic = d->topic()->str(), name = d->name()->str();
  auto sit = subs.find({topic, name});
  if (sit == subs.end())
    return x.refuse(w::ErrorCode::UnknownSubscription, "subscription '" + name + "' does not exist");
  auto& sub = sit->second;
  std::vector<flatbuffers::Offset<w::SubscriptionPartitionState>> ps;
  for (size_t p = 0; p < sub.next.size(); ++p) {
    int64_t hwm = topics[topic][p].next;
    int64_t cur = cursor_locked(sub, int32_t(p));
    int64_t in_flight = 0, acked_above = 0;
    for (auto& [k, l] : sub.leased) in_flight += k.first == int32_t(p);
    for (auto& k : sub.acked) acked_above += k.first == int32_t(p) && k.second >= cur;
    ps.push_back(w::CreateSubscriptionPartitionState(fbb, int32_t(p), cur, 0, hwm, hwm - cur - acked_above, in_flight,
                                                     acked_above, 0, 0, 0, cur < hwm ? 1000 : -1, 0, -1));
  }
  std::vector<flatbuffers::Offset<w::MemberInfo>> ms;
  for (auto& [mid, m] : members) {
    if (m.topic != topic || m.sub != name) continue;
    int64_t in_flight = 0;
    for (auto& [k, l] : sub.leased) in_flight += l.member == mid;
    ms.push_back(w::CreateMemberInfoDirect(fbb, mid, m.name.c_str(), "127.0.0.1", in_flight, m.credit_messages));
  }
  auto cfg = config_of(fbb, sub);
  auto body = w::CreateDescribeSubscriptionResponseDirect(fbb, topic.c_str(), name.c_str(), cfg, &ps, &ms);
  x.answer(w::ResponseBody::DescribeSubscriptionResponse, body.Union());
}

void fake_broker::on_seek_subscription(exchange& x) {
  auto& fbb = x.fbb;
  auto* q = x.req.body_as_SeekSubscriptionRequest();
  std::string topic = q->topic()->str(), name = q->name()->str();
  auto sit = subs.find({topic, name});
  if (sit == subs.end()) return x.refuse(w::ErrorCode::UnknownSubscription, "no such subscription");
  auto& sub = sit->second;
  std::vector<flatbuffers::Offset<w::SeekPartitionResult>> res;
  auto& parts = topics[topic];
  if (q->partition() >= int32_t(parts.size()))
    res.push_back(
        w::CreateSeekPartitionResultDirect(fbb, q->partition(), w::ErrorCode::UnknownPartition, "no such partition"));
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
  x.answer(w::ResponseBody::SeekSubscriptionResponse, body.Union());
}

void fake_broker::on_join(exchange& x) {
  ++join_requests;
  auto* j = x.req.body_as_JoinRequest();
  std::string topic = j->topic()->str(), name = j->subscription()->str();
  if (!topics.count(topic)) return x.refuse(w::ErrorCode::UnknownTopic, "topic '" + topic + "' does not exist");
  auto sit = subs.find({topic, name});
  if (sit == subs.end())
    return x.refuse(w::ErrorCode::UnknownSubscription, "subscription '" + name + "' does not exist");
  join_names.push_back(j->member_name() ? j->member_name()->str() : "");
  join_ack_timeouts.push_back(j->ack_timeout_ms());
  join_credits.emplace_back(j->credit_messages(), j->credit_bytes());
  uint64_t mid = next_member_id++;
  members[mid] = member{mid,
                        topic,
                        name,
                        j->member_name() ? j->member_name()->str() : "",
                        &x.conn,
                        j->credit_messages(),
                        j->credit_bytes(),
                        j->ack_timeout_ms() >= 0 ? j->ack_timeout_ms() : sit->second.ack_timeout_ms};
  if (push_before_join_answer) pump_locked(members[mid]);
  auto cfg = config_of(x.fbb, sit->second);
  auto body = w::CreateJoinResponse(x.fbb, mid, int32_t(topics[topic].size()), members[mid].ack_timeout_ms, cfg);
  x.answer(w::ResponseBody::JoinResponse, body.Union());
}

void fake_broker::on_leave(exchange& x) {
  ++leave_requests;
  uint64_t mid = x.req.body_as_LeaveRequest()->member_id();
  auto mit = members.find(mid);
  if (mit == members.end()) return x.refuse(w::ErrorCode::UnknownMember, "unknown member");
  release_locked(mit->second);
  members.erase(mit);
  auto body = w::CreateLeaveResponse(x.fbb, mid);
  x.answer(w::ResponseBody::LeaveResponse, body.Union());
}

void fake_broker::on_ack(exchange& x) {
  auto& fbb = x.fbb;
  int n = ++ack_requests;
  auto* a = x.req.body_as_AckRequest();
  size_t items = 0;
  if (a->acks())
    for (const auto* po : *a->acks()) items += po->offsets() ? po->offsets()->size() : 0;
  items += a->nacks() ? a->nacks()->size() : 0;
  items += a->extends() ? a->extends()->size() : 0;
  ack_request_items.push_back(items);
  ack_request_members.push_back(a->member_id());
  if (n == drop_on_ack_request) {
    x.drop = true;
    return;
  }
  auto mit = members.find(a->member_id());
  if (mit == members.end()) return x.refuse(w::ErrorCode::UnknownMember, "unknown member");
  if (n == fail_ack_request) return x.refuse(w::to_wire(fail_ack_request_code), "ack request refused");
  member& m = mit->second;
  auto& sub = subs[{m.topic, m.sub}];
  std::vector<flatbuffers::Offset<w::AckFailure>> failures;
  int32_t acked = 0, nacked = 0, extended = 0;
  // Checks one item; true if it may be applied.
  auto check = [&](int32_t p, int64_t off) {
    msg_key k{p, off};
    if (auto f = fail_item.find(k); f != fail_item.end()) {
      failures.push_back(w::CreateAckFailure(fbb, p, off, w::to_wire(f->second)));
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
  x.answer(w::ResponseBody::AckResponse, body.Union());
}

void fake_broker::on_cancel(exchange& x) {
  ++delayed_requests;
  auto* c = x.req.body_as_CancelRequest();
  std::string topic = c->topic() ? c->topic()->str() : "";
  auto tit = topics.find(topic);
  if (tit == topics.end()) return x.refuse(w::ErrorCode::UnknownTopic, "topic '" + topic + "' does not exist");
  if (c->partition() < 0 || c->partition() >= int32_t(tit->second.size()))
    return x.refuse(w::ErrorCode::UnknownPartition, "no such partition");
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
  auto body = w::CreateCancelResponseDirect(x.fbb, topic.c_str(), c->partition(), c->offset(), outcome, why);
  x.answer(w::ResponseBody::CancelResponse, body.Union());
}

void fake_broker::on_list_delayed(exchange& x) {
  auto& fbb = x.fbb;
  ++delayed_requests;
  auto* l = x.req.body_as_ListDelayedRequest();
  list_delayed_seen.emplace_back(l->partition(), l->before_time(), l->limit());
  std::string topic = l->topic() ? l->topic()->str() : "";
  auto tit = topics.find(topic);
  if (tit == topics.end()) return x.refuse(w::ErrorCode::UnknownTopic, "topic '" + topic + "' does not exist");
  if (l->limit() < 1 || l->limit() > 10000) return x.refuse(w::ErrorCode::InvalidArgument, "limit outside 1..10000");
  if (l->partition() < -1 || l->partition() >= int32_t(tit->second.size()))
    return x.refuse(w::ErrorCode::UnknownPartition, "no such partition");
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
    out.push_back(w::CreateDelayedMessage(fbb, k.first, k.second, e->due_time, e->append_time, key, e->value_bytes));
  }
  auto body = w::CreateListDelayedResponseDirect(fbb, topic.c_str(), &out, pending);
  x.answer(w::ResponseBody::ListDelayedResponse, body.Union());
}

}  // namespace ferry::client::testing
