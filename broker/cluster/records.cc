// Encoding of the metadata log's records. Topic and subscription configuration tables are built
// and read by broker/meta (record_tables.h: one place knows their fields and enums); this file adds
// the assignments of a topic and the records only the log holds.
#include "broker/cluster/records.h"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "broker/cluster/record_tables.h"
#include "broker/meta/record_tables.h"
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

std::string encode(const topic_entry& t) {
  flatbuffers::FlatBufferBuilder b(256);
  return finish(b, fb::Body::Topic, build_topic(b, t).Union());
}

std::string encode(const meta::subscription_record& s) { return meta::encode_subscription_record(s); }

std::string encode(const broker_registration& r) {
  flatbuffers::FlatBufferBuilder b(128);
  return finish(b, fb::Body::BrokerRegistration, build_registration(b, r).Union());
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

}  // namespace

flatbuffers::Offset<fb::Topic> build_topic(flatbuffers::FlatBufferBuilder& b, const topic_entry& t) {
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
  auto config = meta::build_topic_config(b, t.topic.config);
  fb::TopicBuilder tb(b);
  tb.add_name(name);
  tb.add_id(t.topic.id);
  tb.add_config(config);
  tb.add_assignments(assignments);
  return tb.Finish();
}

result<topic_entry> read_topic(const fb::Topic& t) {
  auto config = meta::read_topic_config(*t.config());
  if (!config) return config.error();
  topic_entry e{meta::topic_record{t.name()->str(), t.id(), *config}, {}};
  if (e.topic.name.empty()) return fail(errc::storage_error, "metadata record without a topic name");
  if (const auto* as = t.assignments()) {
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

flatbuffers::Offset<fb::BrokerRegistration> build_registration(flatbuffers::FlatBufferBuilder& b,
                                                               const broker_registration& r) {
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
  return rb.Finish();
}

broker_registration read_registration(const fb::BrokerRegistration& r) {
  auto str = [](const flatbuffers::String* s) { return s ? s->str() : std::string(); };
  return broker_registration{node_id{r.node_id()},  r.incarnation(),       str(r.client_address()),
                             str(r.peer_address()), str(r.http_address()), str(r.rack())};
}

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
    case fb::Body::Topic: {
      auto t = read_topic(*r->body_as_Topic());
      if (!t) return t.error();
      return metadata_record{std::move(*t)};
    }
    case fb::Body::Subscription: {
      auto s = meta::read_subscription(*r->body_as_Subscription());
      if (!s) return s.error();
      return metadata_record{std::move(*s)};
    }
    case fb::Body::BrokerRegistration:
      return metadata_record{read_registration(*r->body_as_BrokerRegistration())};
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
      return metadata_record{topic_deleted{b->name()->str(), b->id()}};
    }
    case fb::Body::SubscriptionDeleted: {
      const auto* b = r->body_as_SubscriptionDeleted();
      return metadata_record{subscription_deleted{b->topic()->str(), b->name()->str(), b->id()}};
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
