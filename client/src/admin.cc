// admin: topic management, one blocking request at a time over the admin object's connection.
#include "client/src/connection.h"
#include "client/src/topic_config.h"

namespace ferry::client {
namespace detail {

namespace w = ferry::wire;

flatbuffers::Offset<w::TopicConfig> to_wire(flatbuffers::FlatBufferBuilder& fbb, const topic_config& c) {
  return w::CreateTopicConfig(fbb, c.partitions, c.replication, c.retention_ms, c.retention_bytes, c.segment_bytes,
                              c.segment_ms, c.max_batch_bytes, c.fsync_interval ? w::FsyncPolicy::Interval : w::FsyncPolicy::Always,
                              c.fsync_interval_ms);
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

}  // namespace detail

namespace {

namespace w = ferry::wire;
using detail::io_runner;
using detail::make_request;

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

 private:
  io_runner io_;
};

}  // namespace

result<std::unique_ptr<admin>> admin::create(client_options opts) {
  if (auto hp = detail::split_host_port(opts.bootstrap); !hp) return hp.error();
  return std::unique_ptr<admin>(new admin_impl(std::move(opts)));
}

}  // namespace ferry::client
