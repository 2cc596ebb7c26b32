// Encoding of the metadata log's records. Topic and subscription bodies are decoded by
// broker/meta (one place knows their fields and enums); this file adds the assignments of a topic
// and the records only the log holds.
#include "broker/cluster/records.h"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "schema/meta_generated.h"

namespace ferry::cluster {

namespace {

namespace fb = meta::fb;

constexpr uint16_t record_version = 1;

std::string finish(flatbuffers::FlatBufferBuilder& b, fb::Body type, flatbuffers::Offset<void> body) {
  fb::RecordBuilder rb(b);
  rb.add_version(record_version);
  rb.add_body_type(type);
  rb.add_body(body);
  fb::FinishRecordBuffer(b, rb.Finish());
  return {reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()};
}

// The TopicConfig table as broker/meta/record.cc writes it. It is built here again (rather than
// taken from encode_topic_record) because a finished FlatBuffer cannot grow the `assignments`
// field; records.every_topic_config_field_survives_the_round_trip (metadata_image_test.cc) checks
// every field against broker/meta's decoder.
flatbuffers::Offset<fb::TopicConfig> build_config(flatbuffers::FlatBufferBuilder& b, const meta::topic_config& c) {
  fb::TopicConfigBuilder cb(b);
  cb.add_partitions(c.partitions);
  cb.add_replication(c.replication);
  cb.add_retention_ms(c.retention_ms);
  cb.add_retention_bytes(c.retention_bytes);
  cb.add_segment_bytes(c.segment_bytes);
  cb.add_segment_ms(c.segment_ms);
  cb.add_max_batch_bytes(c.max_batch_bytes);
  cb.add_fsync(c.fsync == meta::fsync_mode::interval ? fb::FsyncMode::Interval : fb::FsyncMode::Always);
  cb.add_fsync_interval_ms(c.fsync_interval_ms);
  cb.add_max_delay_ms(c.max_delay_ms);
  return cb.Finish();
}

std::string encode(const topic_entry& t) {
  flatbuffers::FlatBufferBuilder b(256);
  auto name = b.CreateString(t.topic.name);
  std::vector<flatbuffers::Offset<fb::Assignment>> as;
  as.reserve(t.assignments.size());
  for (const auto& a : t.assignments) {
    std::vector<int32_t> ids;
    ids.reserve(a.replicas.size());
    for (node_id n : a.replicas) ids.push_back(n.value);
    as.push_back(fb::CreateAssignment(b, a.partition, b.CreateVector(ids)));
  }
  auto assignments = b.CreateVector(as);
  auto config = build_config(b, t.topic.config);
  fb::TopicBuilder tb(b);
  tb.add_name(name);
  tb.add_id(t.topic.id);
  tb.add_config(config);
  tb.add_assignments(assignments);
  return finish(b, fb::Body::Topic, tb.Finish().Union());
}

std::string encode(const meta::subscription_record& s) { return meta::encode_subscription_record(s); }

std::string encode(const broker_registration& r) {
  flatbuffers::FlatBufferBuilder b(128);
  auto client = b.CreateString(r.client_address);
  auto peer = b.CreateString(r.peer_address);
  auto http = r.http_address.empty() ? 0 : b.CreateString(r.http_address);
  auto rack = r.rack.empty() ? 0 : b.CreateString(r.rack);
  fb::BrokerRegistrationBuilder rb(b);
  rb.add_node_id(r.node.value);
  rb.add_incarnation(r.incarnation);
  rb.add_client_address(client);
  rb.add_peer_address(peer);
  if (!http.IsNull()) rb.add_http_address(http);
  if (!rack.IsNull()) rb.add_rack(rack);
  return finish(b, fb::Body::BrokerRegistration, rb.Finish().Union());
}

std::string encode(const broker_fenced& r) {
  flatbuffers::FlatBufferBuilder b(64);
  return finish(b, fb::Body::BrokerFenced, fb::CreateBrokerFenced(b, r.node.value, r.incarnation).Union());
}

std::string encode(const broker_unfenced& r) {
  flatbuffers::FlatBufferBuilder b(64);
  return finish(b, fb::Body::BrokerUnfenced, fb::CreateBrokerUnfenced(b, r.node.value, r.incarnation).Union());
}

std::string encode(const topic_deleted& r) {
  flatbuffers::FlatBufferBuilder b(64);
  auto name = b.CreateString(r.name);
  return finish(b, fb::Body::TopicDeleted, fb::CreateTopicDeleted(b, name, r.id).Union());
}

std::string encode(const subscription_deleted& r) {
  flatbuffers::FlatBufferBuilder b(64);
  auto topic = b.CreateString(r.topic);
  auto name = b.CreateString(r.name);
  return finish(b, fb::Body::SubscriptionDeleted, fb::CreateSubscriptionDeleted(b, topic, name, r.id).Union());
}

std::string encode(const id_allocation& r) {
  flatbuffers::FlatBufferBuilder b(64);
  return finish(b, fb::Body::IdAllocation, fb::CreateIdAllocation(b, r.next_topic_id, r.next_subscription_id).Union());
}

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

result<metadata_record> decode_topic(std::string_view bytes, const fb::Topic* t) {
  auto rec = meta::decode_topic_record(bytes);
  if (!rec) return rec.error();
  topic_entry e{std::move(*rec), {}};
  if (const auto* as = t->assignments()) {
    e.assignments.reserve(as->size());
    for (const fb::Assignment* a : *as) {
      partition_assignment pa;
      pa.partition = a->partition();
      if (const auto* rs = a->replicas())
        for (int32_t n : *rs) pa.replicas.emplace_back(n);
      e.assignments.push_back(std::move(pa));
    }
  }
  return e;
}

}  // namespace

std::string encode_metadata_record(const metadata_record& r) {
  return std::visit([](const auto& v) { return encode(v); }, r);
}

result<metadata_record> decode_metadata_record(std::string_view bytes) {
  if (bytes.size() < 8 || !fb::RecordBufferHasIdentifier(bytes.data()))
    return fail(errc::storage_error, "metadata log entry without the FMET identifier");
  // FlatBuffers reads scalars in place: verify and read an 8-byte aligned copy (entries come from
  // the log at any alignment).
  std::vector<uint64_t> copy((bytes.size() + 7) / 8, 0);
  std::memcpy(copy.data(), bytes.data(), bytes.size());
  const auto* p = reinterpret_cast<const uint8_t*>(copy.data());
  flatbuffers::Verifier v(p, bytes.size());
  if (!fb::VerifyRecordBuffer(v)) return fail(errc::storage_error, "metadata log entry fails verification (damaged)");
  const fb::Record* r = fb::GetRecord(p);
  if (r->version() != record_version)
    return fail(errc::storage_error, "metadata record of version " + std::to_string(r->version()) +
                                         "; this broker reads version " + std::to_string(record_version));
  switch (r->body_type()) {
    case fb::Body::Topic:
      return decode_topic(bytes, r->body_as_Topic());
    case fb::Body::Subscription: {
      auto s = meta::decode_subscription_record(bytes);
      if (!s) return s.error();
      return metadata_record{std::move(*s)};
    }
    case fb::Body::BrokerRegistration: {
      const auto* b = r->body_as_BrokerRegistration();
      broker_registration out{node_id{b->node_id()},  b->incarnation(),       str(b->client_address()),
                              str(b->peer_address()), str(b->http_address()), str(b->rack())};
      return metadata_record{std::move(out)};
    }
    case fb::Body::BrokerFenced: {
      const auto* b = r->body_as_BrokerFenced();
      return metadata_record{broker_fenced{node_id{b->node_id()}, b->incarnation()}};
    }
    case fb::Body::BrokerUnfenced: {
      const auto* b = r->body_as_BrokerUnfenced();
      return metadata_record{broker_unfenced{node_id{b->node_id()}, b->incarnation()}};
    }
    case fb::Body::TopicDeleted: {
      const auto* b = r->body_as_TopicDeleted();
      return metadata_record{topic_deleted{str(b->name()), b->id()}};
    }
    case fb::Body::SubscriptionDeleted: {
      const auto* b = r->body_as_SubscriptionDeleted();
      return metadata_record{subscription_deleted{str(b->topic()), str(b->name()), b->id()}};
    }
    case fb::Body::IdAllocation: {
      const auto* b = r->body_as_IdAllocation();
      return metadata_record{id_allocation{b->next_topic_id(), b->next_subscription_id()}};
    }
    case fb::Body::NONE:
      break;
  }
  return fail(errc::storage_error, "metadata record with body kind " +
                                       std::to_string(static_cast<int>(r->body_type())) + ", unknown to this broker");
}

const char* record_kind(const metadata_record& r) {
  return std::visit(
      [](const auto& v) -> const char* {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, topic_entry>) return "topic";
        if constexpr (std::is_same_v<T, meta::subscription_record>) return "subscription";
        if constexpr (std::is_same_v<T, broker_registration>) return "broker_registration";
        if constexpr (std::is_same_v<T, broker_fenced>) return "broker_fenced";
        if constexpr (std::is_same_v<T, broker_unfenced>) return "broker_unfenced";
        if constexpr (std::is_same_v<T, topic_deleted>) return "topic_deleted";
        if constexpr (std::is_same_v<T, subscription_deleted>) return "subscription_deleted";
        if constexpr (std::is_same_v<T, id_allocation>) return "id_allocation";
      },
      r);
}

}  // namespace ferry::cluster
