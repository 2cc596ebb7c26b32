#include "broker/protocol/subscriptions.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>
#include <mutex>
#include <unordered_map>

#include "broker/protocol/delayed.h"
#include "broker/runtime/logger.h"
#include "broker/runtime/runtime.h"
#include "broker/subscription/dispatcher.h"

namespace ferry::protocol {

using asio::as_tuple;
using asio::use_awaitable;
namespace sub = ferry::subscription;

namespace {

runtime::subsystem_logger logger{"protocol"};

constexpr int64_t max_lease_ms = 24LL * 3600 * 1000;
// Bounds on what one request may ask (schema/wire.md "Consumers").
constexpr size_t max_settle_items = 10'000;  // acks + nacks + extends in one AckRequest
constexpr size_t max_members_per_connection = 100;
constexpr size_t max_members = 10'000;  // on this broker

// ---- configuration on the wire -------------------------------------------------------------------

// Request values of -1 take the broker's defaults (schema/ferry.fbs, SubscriptionConfig).
meta::subscription_config read_sub_config(const w::SubscriptionConfig* in, const meta::subscription_config& d) {
  meta::subscription_config c = d;
  c.dead_letter_topic.clear();
  if (in == nullptr) return c;
  c.start = in->start() == w::StartPosition::Earliest ? meta::start_position::earliest : meta::start_position::latest;
  if (in->ack_timeout_ms() != -1) c.ack_timeout_ms = in->ack_timeout_ms();
  if (in->max_deliveries() != -1) c.max_deliveries = in->max_deliveries();
  c.ordered = in->ordered();
  c.backoff = in->backoff() == w::BackoffKind::Fixed ? meta::backoff_kind::fixed : meta::backoff_kind::exponential;
  if (in->backoff_initial_ms() != -1) c.backoff_initial_ms = in->backoff_initial_ms();
  if (in->backoff_max_ms() != -1)
    c.backoff_max_ms = in->backoff_max_ms();
  else if (c.backoff_max_ms < c.backoff_initial_ms)
    c.backoff_max_ms = c.backoff_initial_ms;
  if (in->dead_letter_topic()) c.dead_letter_topic = in->dead_letter_topic()->str();
  return c;
}

fb_offset<w::SubscriptionConfig> write_sub_config(fbb_t& fbb, const meta::subscription_config& c) {
  auto dlq = fbb.CreateString(c.dead_letter_topic);
  return w::CreateSubscriptionConfig(
      fbb, c.start == meta::start_position::earliest ? w::StartPosition::Earliest : w::StartPosition::Latest,
      c.ack_timeout_ms, c.max_deliveries, c.ordered,
      c.backoff == meta::backoff_kind::fixed ? w::BackoffKind::Fixed : w::BackoffKind::Exponential,
      c.backoff_initial_ms, c.backoff_max_ms, dlq);
}

body_result no_subscription(const std::string& topic, const std::string& name) {
  if (auto v = meta::validate_subscription_name(name); !v) return failed(v.error());
  return failed(errc::unknown_subscription, "subscription '" + name + "' on topic '" + topic + "' does not exist");
}

// ---- members -------------------------------------------------------------------------------------

class consumer_member final : public sub::member_link {
 public:
  consumer_member(uint64_t id, std::string name, std::string peer, int64_t ack_timeout_ms, uint64_t session_id,
                  std::weak_ptr<net::session_channel> channel, std::shared_ptr<const topics::topic> topic,
                  topics::subscription_ptr subscription, const topics::topic_manager* topics)
      : member_link(id, std::move(name), std::move(peer), ack_timeout_ms),
        session_id_(session_id),
        channel_(std::move(channel)),
        topic_(std::move(topic)),
        sub_(std::move(subscription)),
        topics_(topics) {}

  // On a partition's shard: the push frame is built here, from the log bytes the dispatcher read,
  // and handed to the member's connection (which posts it to its own shard).
  void deliver(int32_t partition, std::vector<sub::delivered_message> batch) override {
    auto ch = channel_.lock();
    if (!ch || ch->closed()) return;  // the session's close releases these leases
    size_t bytes = 256;
    for (auto& d : batch) bytes += d.record_len + 64;
    auto fbb = std::make_unique<fbb_t>(bytes);
    std::vector<fb_offset<w::DeliveredMessage>> msgs;
    msgs.reserve(batch.size());
    for (auto& d : batch) {
      auto rec = d.record();
      auto rv = fbb->CreateVector(reinterpret_cast<const uint8_t*>(rec.data()), rec.size());
      msgs.push_back(w::CreateDeliveredMessage(*fbb, partition, d.offset, d.delivery_count, d.first_timestamp,
                                               d.append_time, d.batch_attributes, rv));
    }
    auto tn = fbb->CreateString(topic_->name);
    auto sn = fbb->CreateString(sub_->name);
    auto mv = fbb->CreateVector(msgs);
    auto body = w::CreateDelivery(*fbb, id(), tn, sn, mv);
    auto resp =
        w::CreateResponse(*fbb, 0, w::ErrorCode::Ok, 0, topics_->version(), w::ResponseBody::Delivery, body.Union());
    w::finish_response(*fbb, resp);
    ch->push(std::make_unique<builder_frame>(std::move(fbb)));
  }

  uint64_t session_id() const { return session_id_; }
  const std::shared_ptr<const topics::topic>& topic() const { return topic_; }
  const topics::subscription_ptr& subscription() const { return sub_; }

 private:
  uint64_t session_id_;
  std::weak_ptr<net::session_channel> channel_;
  std::shared_ptr<const topics::topic> topic_;
  topics::subscription_ptr sub_;
  const topics::topic_manager* topics_;
};

// Runs dispatcher::settle on the partition's shard; resumes the caller with the outcome once the
// acks in it are durable.
auto settle_on(runtime::shard_set* rt, std::shared_ptr<partition::partition> p, uint64_t sub_id, uint64_t member,
               std::vector<int64_t> acks, std::vector<sub::nack_item> nacks, std::vector<sub::extend_item> extends) {
  auto ex = rt->executor(p->owner());
  auto start = [p = std::move(p), sub_id, member, acks = std::move(acks), nacks = std::move(nacks),
                extends = std::move(extends)](std::function<void(sub::settle_outcome)> done) {
    auto* d = p->find_subscription(sub_id);
    if (d == nullptr) {
      sub::settle_outcome out;
      auto add = [&](int64_t o) {
        out.failures.push_back(
            sub::settle_failure{p->id().value, o, errc::unknown_subscription, "the subscription was deleted"});
      };
      for (auto o : acks) add(o);
      for (auto& n : nacks) add(n.offset);
      for (auto& x : extends) add(x.offset);
      return done(std::move(out));
    }
    d->settle(member, acks, nacks, extends, std::move(done));
  };
  return runtime::start_on<sub::settle_outcome>(ex, std::move(start));
}

// Appends the seek control record on the partition's shard; resumes the caller once it is applied.
auto seek_partition(runtime::shard_set* rt, std::shared_ptr<partition::partition> p, uint64_t sub_id, int64_t to) {
  auto ex = rt->executor(p->owner());
  auto start = [p = std::move(p), sub_id, to](std::function<void(result<void>)> done) {
    p->seek_subscription(sub_id, to, std::move(done));
  };
  return runtime::start_on<result<void>>(ex, std::move(start));
}

struct partition_view {
  int32_t partition = 0;
  std::shared_ptr<partition::partition> replica;  // the local replica it was read from
  sub::dispatcher_stats stats;
  std::vector<std::pair<uint64_t, int64_t>> members;
  bool found = false;
};

}  // namespace

struct subscriptions::impl {
  runtime::shard_set& rt;
  topics::topic_manager& topics;
  const topics::router& routes;
  std::mutex mu;
  std::unordered_map<uint64_t, std::shared_ptr<consumer_member>> members;
  std::unordered_map<uint64_t, size_t> per_session;  // members joined per connection (session id)
  std::atomic<uint64_t> next_member{static_cast<uint64_t>(wall_now_ms()) * 1000};

  impl(runtime::shard_set& r, topics::topic_manager& t, const topics::router& ro) : rt(r), topics(t), routes(ro) {}

  std::shared_ptr<consumer_member> member_of(uint64_t id, const net::session_info& s) {
    std::lock_guard lk(mu);
    auto it = members.find(id);
    if (it == members.end() || it->second->session_id() != s.id) return nullptr;
    return it->second;
  }

  // Removes a member from the registry (under mu).
  void erase_locked(std::unordered_map<uint64_t, std::shared_ptr<consumer_member>>::iterator it) {
    auto ps = per_session.find(it->second->session_id());
    if (ps != per_session.end() && --ps->second == 0) per_session.erase(ps);
    members.erase(it);
  }

  // Tells the member's subscription's dispatcher on every partition led here (posted, not
  // awaited): delivery runs on the leader only.
  template <class Fn>
  void for_each_dispatcher(const consumer_member& m, Fn fn) {
    uint64_t sub_id = m.subscription()->id;
    for (auto& p : routes.led_here(*m.topic())) {
      auto work = [p, sub_id, fn] {
        if (auto* d = p->find_subscription(sub_id)) fn(*d);
      };
      asio::post(rt.executor(p->owner()), std::move(work));
    }
  }

  void leave(const std::shared_ptr<consumer_member>& m) {
    m->close();
    uint64_t id = m->id();
    for_each_dispatcher(*m, [id](sub::dispatcher& d) { d.remove_member(id); });
  }

  // Per-partition stats of a subscription, on each partition's shard.
  asio::awaitable<std::vector<partition_view>> views(std::shared_ptr<const topics::topic> t, uint64_t sub_id) {
    std::vector<partition_view> out;
    for (auto& p : t->partitions) {
      auto fn = [p, sub_id] {
        partition_view v;
        v.partition = p->id().value;
        if (auto* d = p->find_subscription(sub_id)) {
          v.found = true;
          v.stats = d->stats();
          if (v.stats.oldest_unacked_time < 0 && v.stats.backlog > 0)
            v.stats.oldest_unacked_time = p->append_time_at(offset{v.stats.cursor});
          v.members = d->member_in_flight();
        }
        return v;
      };
      out.push_back(co_await runtime::run_on(rt.executor(p->owner()), std::move(fn)));
      out.back().replica = p;
    }
    co_return out;
  }
};

subscriptions::subscriptions(runtime::shard_set& rt, topics::topic_manager& topics, const topics::router& routes)
    : impl_(std::make_unique<impl>(rt, topics, routes)) {}
subscriptions::~subscriptions() = default;

// ---- admin ---------------------------------------------------------------------------------------

asio::awaitable<body_result> subscriptions::create(fbb_t* fbb, const w::CreateSubscriptionRequest* req) {
  auto topic = str(req->topic());
  auto name = str(req->name());
  auto cfg = read_sub_config(req->config(), impl_->topics.defaults().subscription);
  auto created = co_await impl_->topics.create_subscription(topic, name, cfg);
  if (!created) co_return failed(created.error());
  auto tn = fbb->CreateString(topic);
  auto nn = fbb->CreateString(name);
  auto co = write_sub_config(*fbb, (*created)->config);
  co_return ok_body(w::ResponseBody::CreateSubscriptionResponse, w::CreateCreateSubscriptionResponse(*fbb, tn, nn, co));
}

asio::awaitable<body_result> subscriptions::remove(fbb_t* fbb, const w::DeleteSubscriptionRequest* req) {
  auto topic = str(req->topic());
  auto name = str(req->name());
  auto sp = impl_->topics.find_subscription(topic, name);
  if (!impl_->topics.find(topic)) co_return no_topic(topic);
  if (!sp) co_return no_subscription(topic, name);
  auto d = co_await impl_->topics.delete_subscription(topic, name);
  if (!d) co_return failed(d.error());
  // Its members get nothing more; their acks now fail with unknown_subscription.
  {
    std::lock_guard lk(impl_->mu);
    for (auto it = impl_->members.begin(); it != impl_->members.end();) {
      if (it->second->subscription()->id == sp->id) {
        it->second->close();
        auto gone = it++;
        impl_->erase_locked(gone);
      } else {
        ++it;
      }
    }
  }
  auto tn = fbb->CreateString(topic);
  auto nn = fbb->CreateString(name);
  co_return ok_body(w::ResponseBody::DeleteSubscriptionResponse, w::CreateDeleteSubscriptionResponse(*fbb, tn, nn));
}

asio::awaitable<body_result> subscriptions::list(fbb_t* fbb, const w::ListSubscriptionsRequest* req) {
  auto topic = str(req->topic());
  if (!topic.empty() && !impl_->topics.find(topic)) co_return no_topic(topic);
  std::vector<fb_offset<w::SubscriptionSummary>> out;
  for (auto& sp : impl_->topics.list_subscriptions(topic)) {
    auto t = impl_->topics.find(sp->topic);
    if (!t) continue;
    auto views = co_await impl_->views(t, sp->id);
    int64_t backlog = 0, in_flight = 0;
    int32_t members = 0;
    for (auto& v : views) {
      backlog += v.stats.backlog;
      in_flight += v.stats.in_flight;
      members = std::max(members, static_cast<int32_t>(v.members.size()));
    }
    out.push_back(
        w::CreateSubscriptionSummaryDirect(*fbb, sp->topic.c_str(), sp->name.c_str(), members, backlog, in_flight));
  }
  auto v = fbb->CreateVector(out);
  co_return ok_body(w::ResponseBody::ListSubscriptionsResponse, w::CreateListSubscriptionsResponse(*fbb, v));
}

asio::awaitable<body_result> subscriptions::describe(fbb_t* fbb, const w::DescribeSubscriptionRequest* req) {
  auto topic = str(req->topic());
  auto name = str(req->name());
  auto t = impl_->topics.find(topic);
  if (!t) co_return no_topic(topic);
  auto sp = impl_->topics.find_subscription(topic, name);
  if (!sp) co_return no_subscription(topic, name);
  auto views = co_await impl_->views(t, sp->id);
  std::vector<fb_offset<w::SubscriptionPartitionState>> parts;
  std::map<uint64_t, int64_t> in_flight_of;
  for (auto& v : views) {
    auto& s = v.stats;
    auto dl = co_await delayed_summary_of(&impl_->rt, v.replica);
    parts.push_back(w::CreateSubscriptionPartitionState(
        *fbb, v.partition, s.cursor, s.log_start, s.high_watermark, s.backlog, s.in_flight, s.acked_above_cursor,
        s.redeliveries, s.dead_lettered, s.expired, s.oldest_unacked_time, dl.pending, dl.next_due));
    for (auto& [id, n] : v.members) in_flight_of[id] += n;
  }
  std::vector<std::shared_ptr<consumer_member>> ms;
  {
    std::lock_guard lk(impl_->mu);
    for (auto& [id, m] : impl_->members)
      if (m->subscription()->id == sp->id) ms.push_back(m);
  }
  std::sort(ms.begin(), ms.end(), [](auto& a, auto& b) { return a->id() < b->id(); });
  std::vector<fb_offset<w::MemberInfo>> mv;
  mv.reserve(ms.size());
  for (auto& m : ms)
    mv.push_back(w::CreateMemberInfoDirect(*fbb, m->id(), m->name().c_str(), m->peer().c_str(), in_flight_of[m->id()],
                                           m->credit_messages()));
  auto tn = fbb->CreateString(topic);
  auto nn = fbb->CreateString(name);
  auto co = write_sub_config(*fbb, sp->config);
  auto pv = fbb->CreateVector(parts);
  auto mvv = fbb->CreateVector(mv);
  co_return ok_body(w::ResponseBody::DescribeSubscriptionResponse,
                    w::CreateDescribeSubscriptionResponse(*fbb, tn, nn, co, pv, mvv));
}

asio::awaitable<body_result> subscriptions::seek(fbb_t* fbb, const w::SeekSubscriptionRequest* req) {
  auto topic = str(req->topic());
  auto name = str(req->name());
  auto t = impl_->topics.find(topic);
  if (!t) co_return no_topic(topic);
  auto sp = impl_->topics.find_subscription(topic, name);
  if (!sp) co_return no_subscription(topic, name);
  int32_t only = req->partition();
  if (only < -1 || only >= static_cast<int32_t>(t->partitions.size()))
    co_return failed(errc::unknown_partition, topics::no_partition_message(topic, only, t->partitions.size()));
  auto target = req->target();
  int64_t value = req->value();
  if (target == w::SeekTarget::Offset && value < 0)
    co_return failed(errc::invalid_argument, "seek offset must be >= 0, got " + std::to_string(value));
  if (target == w::SeekTarget::Time && value < 0)
    co_return failed(errc::invalid_argument, "seek time must be >= 0 ms since the epoch, got " + std::to_string(value));
  if (static_cast<uint8_t>(target) > static_cast<uint8_t>(w::SeekTarget::MAX))
    co_return failed(errc::invalid_argument, "unknown seek target " + std::to_string(static_cast<int>(target)));
  bool dry = req->dry_run();
  std::vector<fb_offset<w::SeekPartitionResult>> out;
  for (auto& p : t->partitions) {
    if (only != -1 && p->id().value != only) continue;
    // A seek moves the cursor, which the partition's leader writes: not_leader elsewhere.
    if (auto routed = impl_->routes.route(*t, p->id().value); !routed) {
      auto msg = fbb->CreateString(routed.error().message);
      out.push_back(w::CreateSeekPartitionResult(*fbb, p->id().value, w::to_wire(routed.error().code), msg));
      continue;
    }
    struct plan {
      errc code = errc::ok;
      std::string message;
      sub::dispatcher::seek_preview preview{};
    };
    uint64_t sub_id = sp->id;
    auto plan_fn = [p, sub_id, target, value] {
      plan pl;
      auto* d = p->find_subscription(sub_id);
      if (d == nullptr) {
        pl.code = errc::unknown_subscription;
        pl.message = "the subscription is not on this partition";
        return pl;
      }
      auto st = p->stats();
      int64_t to = 0;
      switch (target) {
        case w::SeekTarget::Earliest:
          to = st.log_start.value;
          break;
        case w::SeekTarget::Latest:
          to = st.high_watermark.value;
          break;
        case w::SeekTarget::Time: {
          auto o = p->offset_for_timestamp(value);
          if (!o) {
            pl.code = o.error().code;
            pl.message = o.error().message;
            return pl;
          }
          to = o->value;
          break;
        }
        case w::SeekTarget::Offset:
          to = value;
          break;
      }
      to = std::clamp(to, st.log_start.value, st.high_watermark.value);
      pl.preview = d->preview_seek(to);
      pl.preview.new_backlog = p->messages_from(offset{to});
      return pl;
    };
    auto pl = co_await runtime::run_on(impl_->rt.executor(p->owner()), std::move(plan_fn));
    if (pl.code == errc::ok && !dry) {
      int64_t to = pl.preview.new_cursor;
      auto r = co_await seek_partition(&impl_->rt, p, sub_id, to);
      if (!r) {
        pl.code = r.error().code;
        pl.message = r.error().message;
      } else {
        logger()->info("{}/{} subscription {}: seek from {} to {}", topic, p->id().value, name, pl.preview.old_cursor,
                       to);
      }
    }
    auto msg = pl.message.empty() ? fb_offset<flatbuffers::String>{} : fbb->CreateString(pl.message);
    out.push_back(w::CreateSeekPartitionResult(*fbb, p->id().value, w::to_wire(pl.code), msg, pl.preview.old_cursor,
                                               pl.preview.new_cursor, pl.preview.old_backlog, pl.preview.new_backlog));
  }
  auto tn = fbb->CreateString(topic);
  auto nn = fbb->CreateString(name);
  auto ov = fbb->CreateVector(out);
  co_return ok_body(w::ResponseBody::SeekSubscriptionResponse,
                    w::CreateSeekSubscriptionResponse(*fbb, tn, nn, dry, ov));
}

// ---- consumers -----------------------------------------------------------------------------------

asio::awaitable<body_result> subscriptions::join(fbb_t* fbb, const w::JoinRequest* req, net::session_info s) {
  auto topic = str(req->topic());
  auto name = str(req->subscription());
  auto t = impl_->topics.find(topic);
  if (!t) co_return no_topic(topic);
  auto sp = impl_->topics.find_subscription(topic, name);
  if (!sp) co_return no_subscription(topic, name);
  if (req->credit_messages() < 0 || req->credit_bytes() < 0)
    co_return failed(errc::invalid_argument, "credit must be >= 0, got " + std::to_string(req->credit_messages()) +
                                                 " messages and " + std::to_string(req->credit_bytes()) + " bytes");
  int64_t lease = req->ack_timeout_ms();
  if (lease != -1 && (lease < 1 || lease > max_lease_ms))
    co_return failed(errc::invalid_argument,
                     "ack timeout must be between 1 ms and 24 h (or -1 for the subscription's), got " +
                         std::to_string(lease) + " ms");
  std::string member_name = str(req->member_name());
  if (member_name.size() > 256) member_name.resize(256);
  uint64_t id = impl_->next_member.fetch_add(1);
  auto m = std::make_shared<consumer_member>(id, member_name, s.peer, lease, s.id, s.channel, t, sp, &impl_->topics);
  m->set_byte_limit(req->credit_bytes() > 0);
  m->add_credit(req->credit_messages(), req->credit_bytes());
  {
    std::lock_guard lk(impl_->mu);
    if (impl_->members.size() >= max_members)
      co_return failed(errc::resource_exhausted,
                       "this broker has " + std::to_string(max_members) + " members joined already (the limit)");
    size_t on_connection = impl_->per_session[s.id];
    if (on_connection >= max_members_per_connection)
      co_return failed(errc::resource_exhausted, "this connection has " + std::to_string(on_connection) +
                                                     " members joined already (limit " +
                                                     std::to_string(max_members_per_connection) + ")");
    impl_->members.emplace(id, m);
    ++impl_->per_session[s.id];
  }
  std::shared_ptr<sub::member_link> link = m;
  impl_->for_each_dispatcher(*m, [link](sub::dispatcher& d) { d.add_member(link); });
  logger()->info("conn {} from {}: member {} ({}) joined {}/{}, credit {} messages", s.id, s.peer, id, member_name,
                 topic, name, req->credit_messages());
  auto co = write_sub_config(*fbb, sp->config);
  co_return ok_body(w::ResponseBody::JoinResponse,
                    w::CreateJoinResponse(*fbb, id, static_cast<int32_t>(t->partitions.size()),
                                          lease > 0 ? lease : sp->config.ack_timeout_ms, co));
}

asio::awaitable<body_result> subscriptions::leave(fbb_t* fbb, const w::LeaveRequest* req, net::session_info s) {
  auto m = impl_->member_of(req->member_id(), s);
  if (!m)
    co_return failed(errc::unknown_member,
                     "member " + std::to_string(req->member_id()) + " is not joined on this connection");
  {
    std::lock_guard lk(impl_->mu);
    if (auto it = impl_->members.find(m->id()); it != impl_->members.end()) impl_->erase_locked(it);
  }
  impl_->leave(m);
  co_return ok_body(w::ResponseBody::LeaveResponse, w::CreateLeaveResponse(*fbb, m->id()));
}

asio::awaitable<body_result> subscriptions::ack(fbb_t* fbb, const w::AckRequest* req, net::session_info s) {
  auto m = impl_->member_of(req->member_id(), s);
  if (!m)
    co_return failed(errc::unknown_member,
                     "member " + std::to_string(req->member_id()) + " is not joined on this connection");
  if (req->credit_messages() < 0 || req->credit_bytes() < 0)
    co_return failed(errc::invalid_argument, "credit must be >= 0, got " + std::to_string(req->credit_messages()) +
                                                 " messages and " + std::to_string(req->credit_bytes()) + " bytes");
  size_t items = 0;
  if (req->acks())
    for (auto po : *req->acks()) items += po->offsets() ? po->offsets()->size() : 0;
  if (req->nacks()) items += req->nacks()->size();
  if (req->extends()) items += req->extends()->size();
  if (items > max_settle_items)
    co_return failed(errc::invalid_argument, "ack request settles " + std::to_string(items) + " messages; at most " +
                                                 std::to_string(max_settle_items) +
                                                 " per request (nothing was settled)");
  const auto& t = m->topic();
  struct work {
    std::vector<int64_t> acks;
    std::vector<sub::nack_item> nacks;
    std::vector<sub::extend_item> extends;
  };
  // Grouped by partition as asked; the router below refuses partitions that do not exist or are
  // led elsewhere, item by item.
  std::map<int32_t, work> by_partition;
  std::vector<sub::settle_failure> failures;
  if (req->acks()) {
    for (auto po : *req->acks()) {
      if (po->offsets() == nullptr) continue;
      auto& wk = by_partition[po->partition()];
      for (auto o : *po->offsets()) wk.acks.push_back(o);
    }
  }
  if (req->nacks())
    for (auto n : *req->nacks())
      by_partition[n->partition()].nacks.push_back(sub::nack_item{n->offset(), n->delay_ms()});
  if (req->extends())
    for (auto x : *req->extends())
      by_partition[x->partition()].extends.push_back(sub::extend_item{x->offset(), x->extend_ms()});
  if (req->credit_messages() > 0 || req->credit_bytes() > 0) {
    m->add_credit(req->credit_messages(), req->credit_bytes());
    impl_->for_each_dispatcher(*m, [](sub::dispatcher& d) { d.wake(); });
  }
  int32_t acked = 0, nacked = 0, extended = 0;
  auto merge = [&](sub::settle_outcome& o) {
    acked += o.acked;
    nacked += o.nacked;
    extended += o.extended;
    for (auto& f : o.failures) failures.push_back(std::move(f));
  };
  // Settling goes to each partition's leader: work for a partition that does not exist or is led
  // elsewhere fails item by item (unknown_partition, not_leader).
  std::map<int32_t, std::shared_ptr<partition::partition>> replicas;
  for (auto it = by_partition.begin(); it != by_partition.end();) {
    auto routed = impl_->routes.route(*t, it->first);
    if (routed) {
      replicas[it->first] = *std::move(routed);
      ++it;
      continue;
    }
    auto fail_item = [&](int64_t off) {
      failures.push_back(sub::settle_failure{it->first, off, routed.error().code, routed.error().message});
    };
    for (auto o : it->second.acks) fail_item(o);
    for (auto& n : it->second.nacks) fail_item(n.offset);
    for (auto& x : it->second.extends) fail_item(x.offset);
    it = by_partition.erase(it);
  }
  uint64_t sub_id = m->subscription()->id;
  if (by_partition.size() == 1) {
    auto& [part, wk] = *by_partition.begin();
    auto p = replicas.at(part);
    auto o = co_await settle_on(&impl_->rt, p, sub_id, m->id(), std::move(wk.acks), std::move(wk.nacks),
                                std::move(wk.extends));
    merge(o);
  } else if (!by_partition.empty()) {
    // Several partitions: settle them at once (each waits for its own fsync), then answer.
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer all_done(ex, std::chrono::steady_clock::time_point::max());
    size_t remaining = by_partition.size();
    std::vector<sub::settle_outcome> outs(by_partition.size());
    size_t i = 0;
    for (auto& [part, wk] : by_partition) {
      auto p = replicas.at(part);
      auto* slot = &outs[i++];
      auto completion = [slot, &remaining, &all_done](const std::exception_ptr&, sub::settle_outcome o) {
        *slot = std::move(o);
        if (--remaining == 0) all_done.cancel();
      };
      asio::co_spawn(
          ex, settle_on(&impl_->rt, p, sub_id, m->id(), std::move(wk.acks), std::move(wk.nacks), std::move(wk.extends)),
          std::move(completion));
    }
    if (remaining > 0) co_await all_done.async_wait(as_tuple(use_awaitable));
    for (auto& o : outs) merge(o);
  }
  std::vector<fb_offset<w::AckFailure>> fv;
  fv.reserve(failures.size());
  for (auto& f : failures) fv.push_back(w::CreateAckFailure(*fbb, f.partition, f.offset, w::to_wire(f.code)));
  auto fvec = fbb->CreateVector(fv);
  auto msg = failures.empty() ? fb_offset<flatbuffers::String>{} : fbb->CreateString(failures.front().message);
  co_return ok_body(w::ResponseBody::AckResponse, w::CreateAckResponse(*fbb, acked, nacked, extended, fvec, msg));
}

void subscriptions::session_closed(const net::session_info& s) {
  std::vector<std::shared_ptr<consumer_member>> gone;
  {
    std::lock_guard lk(impl_->mu);
    for (auto it = impl_->members.begin(); it != impl_->members.end();) {
      if (it->second->session_id() == s.id) {
        gone.push_back(it->second);
        auto g = it++;
        impl_->erase_locked(g);
      } else {
        ++it;
      }
    }
  }
  for (auto& m : gone) {
    logger()->info("conn {} from {} closed: member {} leaves {}/{}", s.id, s.peer, m->id(), m->topic()->name,
                   m->subscription()->name);
    impl_->leave(m);
  }
}

}  // namespace ferry::protocol
