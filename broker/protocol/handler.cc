#include "broker/protocol/handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <mutex>
#include <unordered_map>

#include "broker/protocol/delayed.h"
#include "broker/protocol/response.h"
#include "broker/protocol/subscriptions.h"
#include "broker/runtime/logger.h"
#include "broker/runtime/runtime.h"
#include "broker/topics/router.h"
#include "schema/frame.h"
#include "schema/record_batch.h"

namespace ferry::protocol {

namespace w = ferry::wire;
using asio::as_tuple;
using asio::use_awaitable;

namespace {

runtime::subsystem_logger logger{"protocol"};

struct probe {
  std::array<metrics::counter*, w::api_max + 1> requests{};
  std::array<metrics::histogram*, w::api_max + 1> latency{};
  std::array<metrics::counter*, static_cast<size_t>(errc::last_) + 1> errors{};
  probe() {
    for (uint8_t a = 1; a <= w::api_max; ++a) {
      metrics::labels api{{"api", w::api_name(a)}};
      requests[a] = &metrics::get_counter("ferry_requests_total", "Requests handled, by API", api);
      latency[a] = &metrics::get_histogram("ferry_request_seconds", "Request handling time, by API", api);
    }
    for (size_t e = 0; e < errors.size(); ++e)
      errors[e] = &metrics::get_counter("ferry_errors_total", "Errors returned to clients, by code",
                                        {{"code", std::string(errc_name(static_cast<errc>(e)))}});
  }
  void error(errc e) {
    auto i = static_cast<size_t>(e);
    if (i < errors.size()) errors[i]->inc();
  }
  static probe& get() {
    static probe p;
    return p;
  }
};

fb_offset<w::TopicConfig> write_config(fbb_t& fbb, const meta::topic_config& c) {
  return w::CreateTopicConfig(fbb, c.partitions, c.replication, c.retention_ms, c.retention_bytes, c.segment_bytes,
                              c.segment_ms, c.max_batch_bytes,
                              c.fsync == meta::fsync_mode::interval ? w::FsyncPolicy::Interval : w::FsyncPolicy::Always,
                              c.fsync_interval_ms, c.max_delay_ms);
}

// Request values of -1 / 0 take the broker's defaults (schema/ferry.fbs, TopicConfig).
meta::topic_config read_config(const w::TopicConfig* in, const meta::topic_config& d) {
  meta::topic_config c = d;
  if (in == nullptr) return c;
  c.partitions = in->partitions();
  c.replication = in->replication();
  if (in->retention_ms() != -1) c.retention_ms = in->retention_ms();
  c.retention_bytes = in->retention_bytes();
  if (in->segment_bytes() != 0) c.segment_bytes = in->segment_bytes();
  if (in->segment_ms() != 0) c.segment_ms = in->segment_ms();
  if (in->max_batch_bytes() != 0) c.max_batch_bytes = in->max_batch_bytes();
  c.fsync = in->fsync() == w::FsyncPolicy::Interval ? meta::fsync_mode::interval : meta::fsync_mode::always;
  if (in->fsync_interval_ms() != 0) c.fsync_interval_ms = in->fsync_interval_ms();
  if (in->max_delay_ms() != 0) c.max_delay_ms = in->max_delay_ms();
  return c;
}

std::string pname(const std::string& topic, int32_t p) { return topic + "/" + std::to_string(p); }

// ---- produce ---------------------------------------------------------------------------------

// Delivery delays must lie in [0, max_delay]: a relative delay as given, an absolute due time
// against the broker's clock now (a time in the past is fine: it delivers at once).
result<void> check_delays(const w::batch_header& h, const w::batch_delays& d, int64_t max_delay_ms) {
  auto days = [](int64_t ms) { return std::to_string(ms / 86'400'000) + " days (" + std::to_string(ms) + " ms)"; };
  if (h.attributes & w::attr_delay_relative) {
    if (d.min < 0) return fail(errc::delay_out_of_range, "delivery delay " + std::to_string(d.min) + " ms is negative");
    if (d.max > max_delay_ms)
      return fail(errc::delay_out_of_range, "delivery delay of " + std::to_string(d.max) +
                                                " ms is beyond the topic's maximum of " + days(max_delay_ms));
    return {};
  }
  if (d.min < 0) return fail(errc::delay_out_of_range, "deliver_at " + std::to_string(d.min) + " is before the epoch");
  int64_t latest = broker_clock().now_ms() + max_delay_ms;
  if (d.max > latest)
    return fail(errc::delay_out_of_range, "deliver_at " + std::to_string(d.max) +
                                              " is more than the topic's maximum of " + days(max_delay_ms) +
                                              " from now");
  return {};
}

struct produce_slot {
  int32_t partition = 0;
  int32_t leader_hint = topics::unknown_leader;  // with not_leader
  result<partition::produce_result> res = fail(errc::unknown, "not run");
};

// Joins partition appends running on several shards: each completion is posted back to the
// session's executor, the last one wakes the waiting request.
struct produce_join {
  explicit produce_join(const asio::any_io_executor& ex) : timer(ex, std::chrono::steady_clock::time_point::max()) {}
  asio::steady_timer timer;
  size_t remaining = 0;
};

asio::awaitable<body_result> do_produce(runtime::shard_set* rt, topics::topic_manager* topics,
                                        const topics::router* routes, bool shutting_down, fbb_t* fbb,
                                        const w::Request* envelope, const w::ProduceRequest* req,
                                        std::shared_ptr<net::in_frame> f) {
  auto name = str(req->topic());
  if (shutting_down) co_return failed(errc::shutting_down, "broker is shutting down");
  auto t = topics->find(name);
  if (!t) co_return no_topic(name);
  if (req->partitions() == nullptr || req->partitions()->size() == 0)
    co_return failed(errc::invalid_argument, "produce request without partitions");
  if (req->partitions()->size() > t->partitions.size())
    co_return failed(errc::invalid_argument, "produce lists " + std::to_string(req->partitions()->size()) +
                                                 " partition entries but topic '" + name + "' has " +
                                                 std::to_string(t->partitions.size()) +
                                                 " partitions (each may be listed once)");
  if (auto layout = w::check_produce_layout(envelope, req, f->view()); !layout) co_return failed(layout.error());
  {
    std::vector<bool> seen(t->partitions.size(), false);
    for (auto* pp : *req->partitions()) {
      auto i = pp->partition();
      if (i < 0 || static_cast<size_t>(i) >= seen.size()) continue;  // unknown_partition below
      if (seen[static_cast<size_t>(i)])
        co_return failed(errc::invalid_argument,
                         "produce lists " + pname(name, i) + " more than once (one batch per partition per request)");
      seen[static_cast<size_t>(i)] = true;
    }
  }
  auto acks = req->acks() == w::Acks::Leader ? partition::ack_level::leader : partition::ack_level::durable;
  auto ex = co_await asio::this_coro::executor;
  size_t n = req->partitions()->size();
  std::vector<produce_slot> slots(n);
  auto join = std::make_shared<produce_join>(ex);
  auto* slots_ptr = &slots;
  for (size_t i = 0; i < n; ++i) {
    auto* pp = req->partitions()->Get(static_cast<flatbuffers::uoffset_t>(i));
    auto& slot = slots[i];
    slot.partition = pp->partition();
    auto routed = routes->route(*t, pp->partition(), &slot.leader_hint);
    if (!routed) {
      slot.res = routed.error();
      continue;
    }
    if (pp->records() == nullptr || pp->records()->size() == 0) {
      slot.res = fail(errc::invalid_argument, "no record batch for " + pname(name, pp->partition()));
      continue;
    }
    if (pp->records()->size() > static_cast<size_t>(t->config.max_batch_bytes)) {
      slot.res =
          fail(errc::request_too_large, "batch of " + std::to_string(pp->records()->size()) + " bytes for " +
                                            pname(name, pp->partition()) + " is over the topic's max_batch_bytes " +
                                            std::to_string(t->config.max_batch_bytes));
      continue;
    }
    // The frame buffer is ours (net::in_frame, kept alive by `f` until this request completes);
    // the broker stamps offsets into the batch in place, so the const from FlatBuffers goes.
    auto* data = const_cast<std::byte*>(reinterpret_cast<const std::byte*>(pp->records()->data()));
    std::span<std::byte> batch(data, pp->records()->size());
    // Check the batch here, on the connection's shard, to spread CRC work away from the partition.
    w::batch_delays delays;
    auto h = w::verify_produced_batch(batch, &delays);
    if (!h) {
      slot.res = fail(h.error().code, pname(name, pp->partition()) + ": " + h.error().message);
      continue;
    }
    if (delays.count > 0) {
      if (auto d = check_delays(*h, delays, t->config.max_delay_ms); !d) {
        slot.res = fail(d.error().code, pname(name, pp->partition()) + ": " + d.error().message);
        continue;
      }
    }
    auto p = *std::move(routed);
    ++join->remaining;
    auto has_delays = delays.count > 0 ? partition::batch_delays::some : partition::batch_delays::none;
    asio::co_spawn(rt->executor(p->owner()), p->produce(batch, *h, acks, has_delays),
                   [join, slots_ptr, i, ex](const std::exception_ptr& e, result<partition::produce_result> r) {
                     asio::post(ex, [join, slots_ptr, i, e, r = std::move(r)]() mutable {
                       (*slots_ptr)[i].res =
                           e ? result<partition::produce_result>(fail(errc::unknown, "append threw")) : std::move(r);
                       if (--join->remaining == 0) join->timer.cancel();
                     });
                   });
  }
  if (join->remaining > 0) co_await join->timer.async_wait(as_tuple(use_awaitable));
  (void)f;
  std::vector<fb_offset<w::ProducePartitionResult>> results;
  results.reserve(n);
  for (auto& slot : slots) {
    if (slot.res) {
      results.push_back(w::CreateProducePartitionResult(*fbb, slot.partition, w::ErrorCode::Ok, 0, slot.res->base.value,
                                                        slot.res->append_time, slot.res->duplicate));
    } else {
      probe::get().error(slot.res.error().code);
      auto msg = fbb->CreateString(slot.res.error().message);
      results.push_back(w::CreateProducePartitionResult(*fbb, slot.partition, w::to_wire(slot.res.error().code), msg,
                                                        -1, -1, false, slot.leader_hint));
    }
  }
  auto tn = fbb->CreateString(name);
  auto rv = fbb->CreateVector(results);
  co_return body_result{w::ResponseBody::ProduceResponse, w::CreateProduceResponse(*fbb, tn, rv).Union(), errc::ok, {}};
}

// ---- fetch -----------------------------------------------------------------------------------

struct fetch_slot {
  int32_t partition = 0;
  int64_t offset = 0;
  size_t max_bytes = 0;
  std::shared_ptr<partition::partition> p;
  errc code = errc::ok;
  std::string message;
  std::vector<std::byte> bytes;
  int64_t hwm = -1;
  int64_t log_start = -1;
  uint64_t waiter = 0;                           // long-poll waiter id on the partition (0: none)
  int32_t leader_hint = topics::unknown_leader;  // with not_leader
};

struct fetch_read {
  result<void> r;
  std::vector<std::byte> bytes;
  int64_t hwm;
  int64_t log_start;
};

// Woken by a partition (posted to the request's executor) when new data is visible.
struct fetch_wait {
  explicit fetch_wait(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  bool woken = false;
};

// Reads every slot that has no data yet, in request order, within one budget for the whole
// response: `budget` bytes of batches in all (the request's max_bytes, already capped by the
// frame limit). Only the first batch of the whole response may exceed the request's max_bytes (so
// a reader always makes progress), and never `hard_limit` (what fits in a response frame).
asio::awaitable<size_t> read_all(runtime::shard_set* rt, std::vector<fetch_slot>* slots, size_t budget,
                                 size_t hard_limit) {
  size_t total = 0;
  for (auto& s : *slots) total += s.bytes.size();
  for (auto& s : *slots) {
    if (!s.p || s.code != errc::ok || !s.bytes.empty()) continue;
    if (total > 0 && total >= budget) break;
    // The first batch of the response may be larger than max_bytes (log::read returns at least
    // one); every later read stays inside what is left of the budget.
    size_t left = budget > total ? budget - total : 0;
    size_t limit = std::min(s.max_bytes, std::max<size_t>(left, 1));
    auto p = s.p;
    int64_t from = s.offset;
    bool first = total == 0;
    auto read_fn = [p, from, limit] {
      fetch_read out{result<void>{}, {}, p->hwm().value, p->stats().log_start.value};
      out.r = p->read(offset{from}, limit, out.bytes);
      return out;
    };
    auto rd = co_await runtime::run_on(rt->executor(p->owner()), std::move(read_fn));
    s.hwm = rd.hwm;
    s.log_start = rd.log_start;
    if (!rd.r) {
      s.code = rd.r.error().code;
      s.message = pname(p->topic(), s.partition) + ": " + rd.r.error().message;
      continue;
    }
    if (!first && total + rd.bytes.size() > budget) continue;  // (log::read keeps to `limit`; defensive)
    if (rd.bytes.size() > hard_limit) {
      s.code = errc::request_too_large;
      s.message = pname(p->topic(), s.partition) + ": the batch at offset " + std::to_string(from) + " (" +
                  std::to_string(rd.bytes.size()) + " bytes) does not fit in a response frame of at most " +
                  std::to_string(hard_limit) + " bytes";
      continue;
    }
    s.bytes = std::move(rd.bytes);
    total += s.bytes.size();
  }
  co_return total;
}

// Long-poll fetches waiting per connection (a connection also has at most 256 requests in flight).
class long_polls {
 public:
  static constexpr int per_connection = 64;
  bool enter(uint64_t session) {
    std::lock_guard lk(mu_);
    int& n = count_[session];
    if (n >= per_connection) return false;
    ++n;
    return true;
  }
  void leave(uint64_t session) {
    std::lock_guard lk(mu_);
    auto it = count_.find(session);
    if (it != count_.end() && --it->second <= 0) count_.erase(it);
  }

 private:
  std::mutex mu_;
  std::unordered_map<uint64_t, int> count_;
};

long_polls& polls() {
  static long_polls p;
  return p;
}

asio::awaitable<body_result> do_fetch(runtime::shard_set* rt, topics::topic_manager* topics,
                                      const topics::router* routes, const handler_config* cfg, fbb_t* fbb,
                                      const w::FetchRequest* req, std::shared_ptr<net::in_frame> f,
                                      net::session_info session) {
  (void)f;
  auto name = str(req->topic());
  auto t = topics->find(name);
  if (!t) co_return no_topic(name);
  if (req->partitions() == nullptr || req->partitions()->size() == 0)
    co_return failed(errc::invalid_argument, "fetch request without partitions");
  if (req->max_wait_ms() < 0 || req->max_bytes() <= 0)
    co_return failed(errc::invalid_argument, "fetch max_wait_ms must be >= 0 and max_bytes > 0");
  // Each partition at most once: a request names at most as many entries as the topic has
  // partitions, so its work and its response are bounded by the topic, not by the request.
  const size_t entries = req->partitions()->size();
  if (entries > t->partitions.size())
    co_return failed(errc::invalid_argument,
                     "fetch lists " + std::to_string(entries) + " partition entries but topic '" + name + "' has " +
                         std::to_string(t->partitions.size()) + " partitions (each may be listed once)");
  std::vector<fetch_slot> slots(entries);
  std::vector<bool> seen(t->partitions.size(), false);
  for (size_t i = 0; i < slots.size(); ++i) {
    auto* fp = req->partitions()->Get(static_cast<flatbuffers::uoffset_t>(i));
    auto& s = slots[i];
    s.partition = fp->partition();
    s.offset = fp->offset();
    s.max_bytes = static_cast<size_t>(std::max(fp->max_bytes(), 1));
    auto routed = routes->route(*t, fp->partition(), &s.leader_hint);
    if (!routed && routed.error().code == errc::unknown_partition) {
      s.code = routed.error().code;
      s.message = std::move(routed.error().message);
      continue;
    }
    if (seen[static_cast<size_t>(fp->partition())])
      co_return failed(errc::invalid_argument, "fetch lists " + pname(name, fp->partition()) +
                                                   " more than once (each partition may be listed once)");
    seen[static_cast<size_t>(fp->partition())] = true;
    if (!routed) {
      s.code = routed.error().code;
      s.message = std::move(routed.error().message);
    } else if (fp->max_bytes() <= 0) {
      s.code = errc::invalid_argument;
      s.message = "fetch max_bytes must be > 0";
    } else {
      s.p = *std::move(routed);
    }
  }
  const size_t hard_limit = cfg->max_response_bytes;
  const size_t budget = std::min(static_cast<size_t>(req->max_bytes()), hard_limit);
  size_t got = co_await read_all(rt, &slots, budget, hard_limit);
  bool any_error = std::any_of(slots.begin(), slots.end(), [](const fetch_slot& s) { return s.code != errc::ok; });
  int32_t wait_ms = std::min(req->max_wait_ms(), cfg->max_fetch_wait_ms);
  if (got == 0 && !any_error && wait_ms > 0) {
    if (!polls().enter(session.id))
      co_return failed(errc::resource_exhausted, "too many long-poll fetches wait on this connection (limit " +
                                                     std::to_string(long_polls::per_connection) + ")");
    auto ex = co_await asio::this_coro::executor;
    auto waiter = std::make_shared<fetch_wait>(ex);
    waiter->timer.expires_after(std::chrono::milliseconds(wait_ms));
    std::weak_ptr<fetch_wait> weak = waiter;
    for (auto& s : slots) {
      auto p = s.p;
      int64_t from = s.offset;
      auto register_fn = [p, from, weak, ex] {
        return p->on_data(offset{from}, [weak, ex] {
          asio::post(ex, [weak] {
            if (auto w = weak.lock()) {
              w->woken = true;
              w->timer.cancel();
            }
          });
        });
      };
      auto id = co_await runtime::run_on(rt->executor(p->owner()), std::move(register_fn));
      if (!id) {
        s.code = id.error().code;
        s.message = id.error().message;
        waiter->woken = true;  // answer now (with the error) instead of waiting
        break;
      }
      s.waiter = *id;
    }
    if (!waiter->woken) co_await waiter->timer.async_wait(as_tuple(use_awaitable));
    // Waiters still registered (the wait timed out, or another partition woke it) go now: a
    // timed-out long poll leaves nothing behind on the partitions.
    for (auto& s : slots) {
      if (s.waiter == 0) continue;
      auto p = s.p;
      auto id = s.waiter;
      auto cancel_fn = [p, id] { p->cancel_wait(id); };
      co_await runtime::run_on(rt->executor(p->owner()), std::move(cancel_fn));
      s.waiter = 0;
    }
    polls().leave(session.id);
    if (waiter->woken) co_await read_all(rt, &slots, budget, hard_limit);
  }
  std::vector<fb_offset<w::FetchPartitionResult>> results;
  results.reserve(slots.size());
  for (auto& s : slots) {
    auto msg = s.message.empty() ? fb_offset<flatbuffers::String>{} : fbb->CreateString(s.message);
    if (s.code != errc::ok) probe::get().error(s.code);
    if (s.p) s.p->series().fetched_bytes.inc(s.bytes.size());
    auto recs = fbb->CreateVector(reinterpret_cast<const uint8_t*>(s.bytes.data()), s.bytes.size());
    results.push_back(w::CreateFetchPartitionResult(*fbb, s.partition, w::to_wire(s.code), msg, s.hwm, s.log_start,
                                                    recs, s.leader_hint));
  }
  auto tn = fbb->CreateString(name);
  auto rv = fbb->CreateVector(results);
  co_return body_result{w::ResponseBody::FetchResponse, w::CreateFetchResponse(*fbb, tn, rv).Union(), errc::ok, {}};
}

}  // namespace

handler::handler(runtime::shard_set& rt, topics::topic_manager& topics, const topics::router& routes,
                 handler_config cfg)
    : rt_(rt),
      topics_(topics),
      routes_(routes),
      cfg_(std::move(cfg)),
      subs_(std::make_unique<subscriptions>(rt, topics, routes)) {}
handler::~handler() = default;

void handler::on_session_closed(const net::session_info& s) { subs_->session_closed(s); }

net::out_frame_ptr handler::error_frame(errc code, std::string message) {
  probe::get().error(code);
  auto fbb = std::make_unique<fbb_t>(256);
  auto msg = fbb->CreateString(message);
  auto resp = w::CreateResponse(*fbb, 0, w::to_wire(code), msg, topics_.version());
  w::finish_response(*fbb, resp);
  return std::make_unique<builder_frame>(std::move(fbb));
}

asio::awaitable<net::out_frame_ptr> handler::handle(std::shared_ptr<net::in_frame> f, net::session_info s) {
  auto started = std::chrono::steady_clock::now();
  auto& pr = probe::get();
  auto req = w::decode_request(f->view());
  if (!req) {
    logger()->debug("conn {} from {}: {}", s.id, s.peer, req.error().to_string());
    co_return error_frame(req.error().code, req.error().message);
  }
  const w::Request* r = *req;
  auto api = static_cast<uint8_t>(r->body_type());
  auto fbb = std::make_unique<fbb_t>(1024);
  body_result out;
  if (api == 0 || api > w::api_max || r->body() == nullptr) {
    out =
        failed(errc::unsupported_api, "API id " + std::to_string(api) + " is not supported by this broker (known: 1.." +
                                          std::to_string(w::api_max) + ")");
  } else if (r->version() == 0 || r->version() > w::api_version_max) {
    out = failed(errc::unsupported_version, std::string("version ") + std::to_string(r->version()) + " of API " +
                                                w::api_name(api) + " is not supported (this broker speaks 1.." +
                                                std::to_string(w::api_version_max) + ")");
  } else {
    pr.requests[api]->inc();
    switch (r->body_type()) {
      case w::RequestBody::MetadataRequest: {
        auto* m = r->body_as_MetadataRequest();
        std::vector<fb_offset<w::TopicMetadata>> tms;
        std::vector<std::shared_ptr<const topics::topic>> ts;
        std::vector<std::string> missing;
        if (m->topics() == nullptr || m->topics()->size() == 0) {
          ts = topics_.list();
        } else {
          for (auto name : *m->topics()) {
            auto t = topics_.find(name->string_view());
            if (t)
              ts.push_back(t);
            else
              missing.push_back(name->str());
          }
        }
        for (auto& t : ts) {
          std::vector<fb_offset<w::PartitionInfo>> ps;
          for (size_t i = 0; i < t->partitions.size(); ++i) {
            auto id = static_cast<int32_t>(i);
            auto leader = routes_.leader_of(*t, id);
            std::vector<int32_t> replicas{cfg_.node_id};  // every replica is here until replication lands
            ps.push_back(w::CreatePartitionInfoDirect(*fbb, id, leader.node, &replicas, leader.epoch));
          }
          tms.push_back(w::CreateTopicMetadataDirect(*fbb, t->name.c_str(), w::ErrorCode::Ok, nullptr, &ps));
        }
        for (auto& name : missing) {
          std::string msg = "topic '" + name + "' does not exist";
          tms.push_back(w::CreateTopicMetadataDirect(*fbb, name.c_str(), w::ErrorCode::UnknownTopic, msg.c_str()));
        }
        std::vector<fb_offset<w::BrokerInfo>> brokers{
            w::CreateBrokerInfoDirect(*fbb, cfg_.node_id, cfg_.advertised_host.c_str(), cfg_.advertised_port)};
        out.type = w::ResponseBody::MetadataResponse;
        out.body = w::CreateMetadataResponseDirect(*fbb, &brokers, &tms, cfg_.node_id).Union();
        break;
      }
      case w::RequestBody::CreateTopicRequest: {
        auto* c = r->body_as_CreateTopicRequest();
        auto name = str(c->name());
        auto cfg = read_config(c->config(), topics_.defaults().topic);
        auto created = co_await topics_.create_topic(name, cfg);
        if (!created) {
          out = failed(created.error());
          break;
        }
        out.type = w::ResponseBody::CreateTopicResponse;
        auto n = fbb->CreateString(name);
        out.body = w::CreateCreateTopicResponse(*fbb, n, write_config(*fbb, *created)).Union();
        break;
      }
      case w::RequestBody::ListTopicsRequest: {
        std::vector<fb_offset<w::TopicSummary>> v;
        for (auto& t : topics_.list())
          v.push_back(w::CreateTopicSummaryDirect(*fbb, t->name.c_str(), t->config.partitions, t->config.replication));
        out.type = w::ResponseBody::ListTopicsResponse;
        out.body = w::CreateListTopicsResponseDirect(*fbb, &v).Union();
        break;
      }
      case w::RequestBody::DescribeTopicRequest: {
        auto name = str(r->body_as_DescribeTopicRequest()->name());
        auto t = topics_.find(name);
        if (!t) {
          out = failed(errc::unknown_topic, "topic '" + name + "' does not exist");
          break;
        }
        std::vector<fb_offset<w::PartitionState>> ps;
        for (auto& p : t->partitions) {
          auto stats_fn = [p] { return p->stats(); };
          auto st = co_await runtime::run_on(rt_.executor(p->owner()), std::move(stats_fn));
          auto dl = co_await delayed_summary_of(&rt_, p);
          uint32_t h = p->health();
          auto status = fbb->CreateString(partition::partition::health_names(h));
          auto detail = h == 0 ? fb_offset<flatbuffers::String>{} : fbb->CreateString(p->health_detail());
          ps.push_back(w::CreatePartitionState(*fbb, p->id().value, routes_.leader_of(*t, p->id().value).node,
                                               st.log_start.value, st.high_watermark.value, st.log_end.value,
                                               static_cast<int64_t>(st.size_bytes), static_cast<int32_t>(st.segments),
                                               dl.pending, dl.next_due, status, detail));
        }
        auto n = fbb->CreateString(name);
        auto cfgo = write_config(*fbb, t->config);
        auto pv = fbb->CreateVector(ps);
        out.type = w::ResponseBody::DescribeTopicResponse;
        out.body = w::CreateDescribeTopicResponse(*fbb, n, cfgo, pv).Union();
        break;
      }
      case w::RequestBody::DeleteTopicRequest: {
        auto name = str(r->body_as_DeleteTopicRequest()->name());
        if (auto v = meta::validate_topic_name(name); !v) {
          out = failed(v.error());
          break;
        }
        auto d = co_await topics_.delete_topic(name);
        if (!d) {
          out = failed(d.error());
          break;
        }
        out.type = w::ResponseBody::DeleteTopicResponse;
        out.body = w::CreateDeleteTopicResponseDirect(*fbb, name.c_str()).Union();
        break;
      }
      case w::RequestBody::ProduceRequest:
        out = co_await do_produce(&rt_, &topics_, &routes_, shutting_down_.load(), fbb.get(), r,
                                  r->body_as_ProduceRequest(), f);
        break;
      case w::RequestBody::FetchRequest: {
        // Room for the answer in the connection's byte budget first (net::response_budget): a
        // client that pipelines fetches and reads nothing must not make the broker build them all.
        auto asked = static_cast<size_t>(std::max(r->body_as_FetchRequest()->max_bytes(), 0));
        bool room = !s.budget || co_await s.budget->reserve(std::min(asked, cfg_.max_response_bytes));
        if (!room) {
          out = failed(errc::connection_closed, "connection closed before the fetch could be answered");
          break;
        }
        out = co_await do_fetch(&rt_, &topics_, &routes_, &cfg_, fbb.get(), r->body_as_FetchRequest(), f, s);
        break;
      }
      case w::RequestBody::CreateSubscriptionRequest:
        out = co_await subs_->create(fbb.get(), r->body_as_CreateSubscriptionRequest());
        break;
      case w::RequestBody::DeleteSubscriptionRequest:
        out = co_await subs_->remove(fbb.get(), r->body_as_DeleteSubscriptionRequest());
        break;
      case w::RequestBody::ListSubscriptionsRequest:
        out = co_await subs_->list(fbb.get(), r->body_as_ListSubscriptionsRequest());
        break;
      case w::RequestBody::DescribeSubscriptionRequest:
        out = co_await subs_->describe(fbb.get(), r->body_as_DescribeSubscriptionRequest());
        break;
      case w::RequestBody::SeekSubscriptionRequest:
        out = co_await subs_->seek(fbb.get(), r->body_as_SeekSubscriptionRequest());
        break;
      case w::RequestBody::JoinRequest:
        if (shutting_down_.load()) {
          out = failed(errc::shutting_down, "broker is shutting down");
          break;
        }
        out = co_await subs_->join(fbb.get(), r->body_as_JoinRequest(), s);
        break;
      case w::RequestBody::LeaveRequest:
        out = co_await subs_->leave(fbb.get(), r->body_as_LeaveRequest(), s);
        break;
      case w::RequestBody::AckRequest:
        out = co_await subs_->ack(fbb.get(), r->body_as_AckRequest(), s);
        break;
      case w::RequestBody::CancelRequest:
        out = co_await do_cancel(&rt_, &topics_, &routes_, fbb.get(), r->body_as_CancelRequest());
        break;
      case w::RequestBody::ListDelayedRequest:
        out = co_await do_list_delayed(&rt_, &topics_, fbb.get(), r->body_as_ListDelayedRequest());
        break;
      case w::RequestBody::DeliveryPlaceholder:
        out = failed(errc::unsupported_api, "API id 16 (Delivery) is sent by the broker only");
        break;
      default:
        out = failed(errc::unsupported_api, "API id " + std::to_string(api) + " is not supported");
    }
    pr.latency[api]->observe_us(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count()));
  }
  if (out.code != errc::ok) pr.error(out.code);
  auto msg = out.message.empty() ? fb_offset<flatbuffers::String>{} : fbb->CreateString(out.message);
  auto resp =
      w::CreateResponse(*fbb, r->correlation_id(), w::to_wire(out.code), msg, topics_.version(), out.type, out.body);
  w::finish_response(*fbb, resp);
  co_return std::make_unique<builder_frame>(std::move(fbb));
}

}  // namespace ferry::protocol
