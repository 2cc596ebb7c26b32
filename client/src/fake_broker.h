#pragma once
// Test-only: a small in-process broker speaking the wire protocol over loopback TCP, with fault
// injection, so producer/reader/admin logic can be tested without ferryd. Blocking sockets, one
// thread per connection; state under one mutex. Not a model of ferryd's internals.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

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
    std::map<std::pair<int64_t, int32_t>, int64_t> seen;        // (producer, base sequence) -> base offset
  };

  // Fault injection (set before traffic, or under mu).
  std::atomic<int> drop_before_answer_on_produce{-1};  // Nth produce request (1-based): store it, then drop the connection
  std::atomic<int> not_leader_on_produce{-1};          // Nth produce request: answer not_leader without storing
  std::atomic<int> produce_requests{0};
  std::atomic<int> max_partitions_per_request{0};

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
  void add_topic(const std::string& name, int partitions) {
    std::lock_guard lk(mu);
    topics[name].resize(partitions);
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

  std::mutex mu;
  std::map<std::string, std::vector<partition>> topics;

 private:
  void accept_loop() {
    while (!stopping_) {
      tcp::socket s(io_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec) return;
      conn_threads_.emplace_back([this, sock = std::move(s)]() mutable { serve(std::move(sock)); });
    }
  }

  void serve(tcp::socket s) {
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
      handle(**req, fbb, drop);
      if (drop) break;
      asio::write(s, asio::buffer(fbb.GetBufferPointer(), fbb.GetSize()), ec);
      if (ec) break;
    }
    boost::system::error_code ec;
    std::lock_guard lk(mu);
    s.close(ec);
    std::erase(sockets_, &s);
  }

  void respond(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, w::ErrorCode err, const char* msg, w::ResponseBody type,
               flatbuffers::Offset<void> body) {
    auto m = msg ? fbb.CreateString(msg) : 0;
    w::finish_response(fbb, w::CreateResponse(fbb, id, err, m, 1, type, body));
  }

  void handle(const w::Request& r, flatbuffers::FlatBufferBuilder& fbb, bool& drop) {
    std::lock_guard lk(mu);
    uint64_t id = r.correlation_id();
    switch (r.body_type()) {
      case w::RequestBody::MetadataRequest: {
        std::vector<flatbuffers::Offset<w::TopicMetadata>> tms;
        for (const auto* name : *r.body_as_MetadataRequest()->topics()) {
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
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::MetadataResponse, body.Union());
      }
      case w::RequestBody::CreateTopicRequest: {
        auto* c = r.body_as_CreateTopicRequest();
        if (topics.count(c->name()->str()))
          return respond(fbb, id, w::ErrorCode::TopicExists, "topic exists", w::ResponseBody::NONE, 0);
        topics[c->name()->str()].resize(c->config()->partitions());
        auto cfg = w::CreateTopicConfig(fbb, c->config()->partitions(), c->config()->replication(), c->config()->retention_ms());
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
          ps.push_back(w::CreatePartitionState(fbb, int(p), 1, start, part.next, part.next, 0, 1));
        }
        auto cfg = w::CreateTopicConfig(fbb, int(it->second.size()));
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
        if (it == topics.end()) return respond(fbb, id, w::ErrorCode::UnknownTopic, "no such topic", w::ResponseBody::NONE, 0);
        if (int(pr->partitions()->size()) > max_partitions_per_request) max_partitions_per_request = int(pr->partitions()->size());
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
            res.push_back(w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::CorruptBatch, h.error().message.c_str()));
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
            res.push_back(w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::OutOfOrderSequence, "gap"));
            continue;
          }
          part.seen[{h->producer_id, h->base_sequence}] = part.next;
          stored st{part.next, std::vector<std::byte>(bytes.begin(), bytes.end())};
          w::stamp_batch(st.bytes, part.next, 0, 1000);
          part.last_seq[h->producer_id] = {h->base_sequence + h->record_count, part.next};
          res.push_back(w::CreateProducePartitionResultDirect(fbb, pp->partition(), w::ErrorCode::Ok, nullptr, part.next, 1000));
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
        if (it == topics.end()) return respond(fbb, id, w::ErrorCode::UnknownTopic, "no such topic", w::ResponseBody::NONE, 0);
        std::vector<flatbuffers::Offset<w::FetchPartitionResult>> res;
        for (const auto* fp : *fr->partitions()) {
          auto& part = it->second.at(fp->partition());
          if (fp->offset() > part.next) {
            res.push_back(w::CreateFetchPartitionResultDirect(fbb, fp->partition(), w::ErrorCode::OffsetOutOfRange, "out of range"));
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
          res.push_back(w::CreateFetchPartitionResultDirect(fbb, fp->partition(), w::ErrorCode::Ok, nullptr, part.next, 0, &out));
        }
        auto body = w::CreateFetchResponseDirect(fbb, fr->topic()->c_str(), &res);
        return respond(fbb, id, w::ErrorCode::Ok, nullptr, w::ResponseBody::FetchResponse, body.Union());
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
