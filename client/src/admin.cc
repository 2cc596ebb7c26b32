// admin: topic, subscription and delayed-message management, one blocking request at a time over
// the admin object's connection.
#include "client/src/connection.h"
#include "client/src/topic_config.h"

namespace ferry::client {
namespace detail {

namespace w = ferry::wire;

flatbuffers::Offset<w::TopicConfig> to_wire(flatbuffers::FlatBufferBuilder& fbb, const topic_config& c) {
  return w::CreateTopicConfig(fbb, c.partitions, c.replication, c.retention_ms, c.retention_bytes, c.segment_bytes,
                              c.segment_ms, c.max_batch_bytes,
                              c.fsync_interval ? w::FsyncPolicy::Interval : w::FsyncPolicy::Always, c.fsync_interval_ms,
                              c.max_delay_ms);
}

topic_config from_wire(const w::TopicConfig* c) {
  topic_config out;
  if (c == nullptr) return out;
  out.partitions = c->partitions();
  out.replication = c->replication();
  out.retention_ms = c->retention_ms();
  out.retention_bytes = c->retention_bytes();
  out.segment_bytes = c->segment_bytes();
  out.segment_ms = c->segment_ms();
  out.max_batch_bytes = c->max_batch_bytes();
  out.fsync_interval = c->fsync() == w::FsyncPolicy::Interval;
  out.fsync_interval_ms = c->fsync_interval_ms();
  out.max_delay_ms = c->max_delay_ms();
  return out;
}

std::vector<partition_state> partitions_from_wire(const w::DescribeTopicResponse& d) {
  std::vector<partition_state> out;
  if (d.partitions() == nullptr) return out;
  for (const auto* p : *d.partitions()) {
    partition_state s;
    s.partition = p->partition();
    s.leader = p->leader();
    s.log_start_offset = p->log_start_offset();
    s.high_watermark = p->high_watermark();
    s.log_end_offset = p->log_end_offset();
    s.size_bytes = p->size_bytes();
    s.segments = p->segments();
    s.delayed_pending = p->delayed_pending();
    s.next_due_time_ms = p->next_due_time();
    if (p->status() && p->status()->size() > 0) s.status = p->status()->str();
    if (p->status_detail()) s.status_detail = p->status_detail()->str();
    out.push_back(s);
  }
  return out;
}

result<topic_description> describe(io_runner& io, const std::string& name) {
  return io.call<topic_description>(
      w::ResponseBody::DescribeTopicResponse,
      [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
        auto n = fbb.CreateString(name);
        return make_request(fbb, id, w::CreateDescribeTopicRequest(fbb, n));
      },
      [&](const w::Response& r) -> result<topic_description> {
        const auto* d = r.body_as_DescribeTopicResponse();
        topic_description out;
        out.name = d->name() ? d->name()->str() : name;
        out.config = from_wire(d->config());
        out.partitions = partitions_from_wire(*d);
        return out;
      });
}

namespace {

std::optional<std::chrono::milliseconds> ms_or_default(int64_t v) {
  if (v < 0) return std::nullopt;
  return std::chrono::milliseconds(v);
}

int64_t ms_or_minus_one(const std::optional<std::chrono::milliseconds>& v) { return v ? v->count() : -1; }

}  // namespace

flatbuffers::Offset<w::SubscriptionConfig> to_wire(flatbuffers::FlatBufferBuilder& fbb, const subscription_config& c) {
  auto dlq = c.dead_letter_topic.empty() ? 0 : fbb.CreateString(c.dead_letter_topic);
  return w::CreateSubscriptionConfig(
      fbb, c.start == start_position::earliest ? w::StartPosition::Earliest : w::StartPosition::Latest,
      ms_or_minus_one(c.ack_timeout), c.max_deliveries.value_or(-1), c.ordered,
      c.backoff == backoff_kind::fixed ? w::BackoffKind::Fixed : w::BackoffKind::Exponential,
      ms_or_minus_one(c.backoff_initial), ms_or_minus_one(c.backoff_max), dlq);
}

// A response's config has every value filled in; a -1 that still comes back stays unset.
subscription_config from_wire(const w::SubscriptionConfig* c) {
  subscription_config out;
  if (c == nullptr) return out;
  out.start = c->start() == w::StartPosition::Earliest ? start_position::earliest : start_position::latest;
  out.ack_timeout = ms_or_default(c->ack_timeout_ms());
  if (c->max_deliveries() >= 0) out.max_deliveries = c->max_deliveries();
  out.ordered = c->ordered();
  out.backoff = c->backoff() == w::BackoffKind::Fixed ? backoff_kind::fixed : backoff_kind::exponential;
  out.backoff_initial = ms_or_default(c->backoff_initial_ms());
  out.backoff_max = ms_or_default(c->backoff_max_ms());
  if (c->dead_letter_topic() != nullptr) out.dead_letter_topic = c->dead_letter_topic()->str();
  return out;
}

w::SeekTarget to_wire(seek_target t) {
  switch (t) {
    case seek_target::earliest:
      return w::SeekTarget::Earliest;
    case seek_target::latest:
      return w::SeekTarget::Latest;
    case seek_target::time:
      return w::SeekTarget::Time;
    case seek_target::offset:
      return w::SeekTarget::Offset;
  }
  return w::SeekTarget::Earliest;
}

std::string str(const flatbuffers::String* s) { return s != nullptr ? s->str() : std::string(); }

result<cancel_outcome> from_wire(w::CancelOutcome o) {
  switch (o) {
    case w::CancelOutcome::Cancelled:
      return cancel_outcome::cancelled;
    case w::CancelOutcome::TooLate:
      return cancel_outcome::too_late;
    case w::CancelOutcome::Unknown:
      return cancel_outcome::unknown;
  }
  // A newer broker's outcome this client cannot name: guessing one could mislead a caller that
  // acts on it (e.g. retries a cancel it believes never happened).
  return fail(errc::malformed_frame, "unknown cancel outcome " + std::to_string(static_cast<int>(o)));
}

}  // namespace detail

namespace {

namespace w = ferry::wire;
using detail::io_runner;
using detail::make_request;

// The broker refuses larger listings (ListDelayedRequest.limit, schema/ferry.fbs).
constexpr size_t max_list_delayed = 10000;

class admin_impl final : public admin {
 public:
  explicit admin_impl(client_options opts) : io_(std::move(opts)) {}

  result<topic_config> create_topic(const std::string& name, const topic_config& cfg) override {
    return io_.call<topic_config>(
        w::ResponseBody::CreateTopicResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto n = fbb.CreateString(name);
          auto c = detail::to_wire(fbb, cfg);
          return make_request(fbb, id, w::CreateCreateTopicRequest(fbb, n, c));
        },
        [&](const w::Response& r) -> result<topic_config> {
          return detail::from_wire(r.body_as_CreateTopicResponse()->config());
        });
  }

  result<std::vector<topic_summary>> list_topics() override {
    return io_.call<std::vector<topic_summary>>(
        w::ResponseBody::ListTopicsResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          return make_request(fbb, id, w::CreateListTopicsRequest(fbb));
        },
        [&](const w::Response& r) -> result<std::vector<topic_summary>> {
          std::vector<topic_summary> out;
          const auto* l = r.body_as_ListTopicsResponse();
          if (l->topics() != nullptr)
            for (const auto* t : *l->topics())
              out.push_back(topic_summary{t->name() ? t->name()->str() : "", t->partitions(), t->replication()});
          return out;
        });
  }

  result<topic_description> describe_topic(const std::string& name) override { return detail::describe(io_, name); }

  result<void> delete_topic(const std::string& name) override {
    auto r = io_.call<bool>(
        w::ResponseBody::DeleteTopicResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto n = fbb.CreateString(name);
          return make_request(fbb, id, w::CreateDeleteTopicRequest(fbb, n));
        },
        [](const w::Response&) -> result<bool> { return true; });
    if (!r) return r.error();
    return {};
  }

  result<subscription_config> create_subscription(const std::string& topic, const std::string& name,
                                                  const subscription_config& cfg) override {
    return io_.call<subscription_config>(
        w::ResponseBody::CreateSubscriptionResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto t = fbb.CreateString(topic);
          auto n = fbb.CreateString(name);
          auto c = detail::to_wire(fbb, cfg);
          return make_request(fbb, id, w::CreateCreateSubscriptionRequest(fbb, t, n, c));
        },
        [&](const w::Response& r) -> result<subscription_config> {
          return detail::from_wire(r.body_as_CreateSubscriptionResponse()->config());
        });
  }

  result<void> delete_subscription(const std::string& topic, const std::string& name) override {
    auto r = io_.call<bool>(
        w::ResponseBody::DeleteSubscriptionResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto t = fbb.CreateString(topic);
          auto n = fbb.CreateString(name);
          return make_request(fbb, id, w::CreateDeleteSubscriptionRequest(fbb, t, n));
        },
        [](const w::Response&) -> result<bool> { return true; });
    if (!r) return r.error();
    return {};
  }

  result<std::vector<subscription_summary>> list_subscriptions(const std::string& topic) override {
    return io_.call<std::vector<subscription_summary>>(
        w::ResponseBody::ListSubscriptionsResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto t = topic.empty() ? 0 : fbb.CreateString(topic);
          return make_request(fbb, id, w::CreateListSubscriptionsRequest(fbb, t));
        },
        [&](const w::Response& r) -> result<std::vector<subscription_summary>> {
          std::vector<subscription_summary> out;
          const auto* l = r.body_as_ListSubscriptionsResponse();
          if (l->subscriptions() != nullptr)
            for (const auto* s : *l->subscriptions())
              out.push_back(subscription_summary{detail::str(s->topic()), detail::str(s->name()), s->members(),
                                                 s->backlog(), s->in_flight()});
          return out;
        });
  }

  result<subscription_description> describe_subscription(const std::string& topic, const std::string& name) override {
    return io_.call<subscription_description>(
        w::ResponseBody::DescribeSubscriptionResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto t = fbb.CreateString(topic);
          auto n = fbb.CreateString(name);
          return make_request(fbb, id, w::CreateDescribeSubscriptionRequest(fbb, t, n));
        },
        [&](const w::Response& r) -> result<subscription_description> {
          const auto* d = r.body_as_DescribeSubscriptionResponse();
          subscription_description out;
          out.topic = d->topic() ? d->topic()->str() : topic;
          out.name = d->name() ? d->name()->str() : name;
          out.config = detail::from_wire(d->config());
          if (d->partitions() != nullptr) {
            for (const auto* p : *d->partitions()) {
              subscription_partition_state s;
              s.partition = p->partition();
              s.cursor = p->cursor();
              s.log_start_offset = p->log_start_offset();
              s.high_watermark = p->high_watermark();
              s.backlog = p->backlog();
              s.in_flight = p->in_flight();
              s.acked_above_cursor = p->acked_above_cursor();
              s.redeliveries = p->redeliveries();
              s.dead_lettered = p->dead_lettered();
              s.expired = p->expired();
              s.oldest_unacked_time_ms = p->oldest_unacked_time();
              s.delayed_pending = p->delayed_pending();
              s.next_due_time_ms = p->next_due_time();
              out.partitions.push_back(s);
            }
          }
          if (d->members() != nullptr) {
            for (const auto* m : *d->members())
              out.members.push_back(member_info{m->member_id(), detail::str(m->name()), detail::str(m->peer()),
                                                m->in_flight(), m->credit_messages()});
          }
          return out;
        });
  }

  result<cancel_result> cancel(const message_id& target) override {
    if (target.partition < 0)
      return fail(errc::invalid_argument, "partition " + std::to_string(target.partition) + " is negative");
    if (target.offset < 0)
      return fail(errc::invalid_argument, "offset " + std::to_string(target.offset) + " is negative");
    return io_.call<cancel_result>(
        w::ResponseBody::CancelResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto t = fbb.CreateString(target.topic);
          return make_request(fbb, id, w::CreateCancelRequest(fbb, t, target.partition, target.offset));
        },
        [&](const w::Response& r) -> result<cancel_result> {
          const auto* c = r.body_as_CancelResponse();
          auto outcome = detail::from_wire(c->outcome());
          if (!outcome) return outcome.error();
          return cancel_result{*outcome, detail::str(c->message())};
        });
  }

  result<delayed_listing> list_delayed(const std::string& topic, std::optional<int64_t> before_ms, size_t limit,
                                       std::optional<int32_t> partition) override {
    if (limit < 1 || limit > max_list_delayed)
      return fail(errc::invalid_argument,
                  "limit " + std::to_string(limit) + " is outside 1.." + std::to_string(max_list_delayed));
    if (partition && *partition < 0)
      return fail(errc::invalid_argument, "partition " + std::to_string(*partition) + " is negative");
    // On the wire -1 means "no bound": a negative bound of the caller's would silently become none.
    if (before_ms && *before_ms < 0)
      return fail(errc::invalid_argument, "before time " + std::to_string(*before_ms) + " is negative");
    return io_.call<delayed_listing>(
        w::ResponseBody::ListDelayedResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto t = fbb.CreateString(topic);
          return make_request(fbb, id,
                              w::CreateListDelayedRequest(fbb, t, partition.value_or(-1), before_ms.value_or(-1),
                                                          static_cast<int32_t>(limit)));
        },
        [&](const w::Response& r) -> result<delayed_listing> {
          const auto* l = r.body_as_ListDelayedResponse();
          delayed_listing out;
          out.pending = l->pending();
          if (l->messages() != nullptr) {
            out.messages.reserve(l->messages()->size());
            for (const auto* m : *l->messages()) {
              delayed_message d;
              d.partition = m->partition();
              d.offset = m->offset();
              d.due_time_ms = m->due_time();
              d.append_time_ms = m->append_time();
              // Absent is "no key"; present but empty is the empty key.
              if (m->key() != nullptr)
                d.key = std::string(reinterpret_cast<const char*>(m->key()->data()), m->key()->size());
              d.value_bytes = m->value_bytes();
              out.messages.push_back(std::move(d));
            }
          }
          return out;
        });
  }

  result<std::vector<seek_partition_result>> seek_subscription(const std::string& topic, const std::string& name,
                                                               seek_target target, int64_t value,
                                                               std::optional<int32_t> partition,
                                                               bool dry_run) override {
    if (partition && *partition < 0)
      return fail(errc::invalid_argument, "partition " + std::to_string(*partition) + " is negative");
    return io_.call<std::vector<seek_partition_result>>(
        w::ResponseBody::SeekSubscriptionResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto t = fbb.CreateString(topic);
          auto n = fbb.CreateString(name);
          return make_request(fbb, id,
                              w::CreateSeekSubscriptionRequest(fbb, t, n, detail::to_wire(target), value,
                                                               partition.value_or(-1), dry_run));
        },
        [&](const w::Response& r) -> result<std::vector<seek_partition_result>> {
          std::vector<seek_partition_result> out;
          const auto* s = r.body_as_SeekSubscriptionResponse();
          if (s->partitions() != nullptr) {
            for (const auto* p : *s->partitions()) {
              seek_partition_result x;
              x.partition = p->partition();
              if (p->error() != w::ErrorCode::Ok)
                x.error = fail(w::from_wire(p->error()), p->error_message()
                                                             ? p->error_message()->str()
                                                             : std::string(errc_name(w::from_wire(p->error()))));
              x.old_cursor = p->old_cursor();
              x.new_cursor = p->new_cursor();
              x.old_backlog = p->old_backlog();
              x.new_backlog = p->new_backlog();
              out.push_back(std::move(x));
            }
          }
          return out;
        });
  }

 private:
  io_runner io_;
};

}  // namespace

result<std::unique_ptr<admin>> admin::create(client_options opts) {
  if (auto hp = detail::split_host_port(opts.bootstrap); !hp) return hp.error();
  return std::unique_ptr<admin>(new admin_impl(std::move(opts)));
}

}  // namespace ferry::client
