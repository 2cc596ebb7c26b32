// Snapshots of the metadata image (schema/meta.md "Snapshots of the metadata image"). restore()
// checks every invariant the rest of metadata_image relies on (make_route() asserts that assigned
// brokers are registered, apply() that offsets only grow): a snapshot comes from another broker or
// the disk, and a damaged one must be refused as a value, never abort the broker.
#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "broker/cluster/metadata_image.h"
#include "broker/cluster/record_tables.h"
#include "broker/meta/record_tables.h"
#include "schema/crc32c.h"
#include "schema/meta_generated.h"

namespace ferry::cluster {

namespace {

namespace fb = meta::fb;

constexpr uint16_t snapshot_format = 1;
constexpr const char* snapshot_identifier = "FMIS";

error damaged(const std::string& what) { return fail(errc::storage_error, "metadata snapshot: " + what); }

// FlatBuffers reads scalars in place: verify and read 8-byte aligned copies (snapshots come from
// RocksDB or the network at any alignment).
std::vector<uint64_t> aligned_copy(const void* p, size_t n) {
  std::vector<uint64_t> copy((n + 7) / 8, 0);
  if (n != 0) std::memcpy(copy.data(), p, n);
  return copy;
}

}  // namespace

std::string metadata_image::snapshot() const {
  flatbuffers::FlatBufferBuilder b(1024);
  std::vector<flatbuffers::Offset<fb::ImageBroker>> brokers;
  brokers.reserve(brokers_.size());
  for (const auto& [n, info] : brokers_) {
    auto reg = build_registration(b, info.registration);
    brokers.push_back(fb::CreateImageBroker(b, reg, info.state == broker_state::fenced, info.registered_at));
  }
  std::vector<flatbuffers::Offset<fb::ImageTopic>> topics;
  topics.reserve(topics_.size());
  for (const auto& [name, t] : topics_) {
    auto topic = build_topic(b, t.entry);
    topics.push_back(fb::CreateImageTopic(b, topic, t.changed_at, t.assigned_at));
  }
  std::vector<flatbuffers::Offset<fb::Subscription>> subs;
  subs.reserve(subscriptions_.size());
  for (const auto& [key, s] : subscriptions_) subs.push_back(meta::build_subscription(b, s));
  auto bv = b.CreateVector(brokers);
  auto tv = b.CreateVector(topics);
  auto sv = b.CreateVector(subs);
  b.Finish(fb::CreateMetadataImage(b, version_, next_topic_id_, next_subscription_id_, refused_, bv, tv, sv));

  flatbuffers::FlatBufferBuilder outer(b.GetSize() + 64);
  // Aligned as the inner buffer's largest scalar, so a reader could use it in place.
  outer.ForceVectorAlignment(b.GetSize(), sizeof(uint8_t), b.GetBufferMinAlignment());
  auto image = outer.CreateVector(b.GetBufferPointer(), b.GetSize());
  const uint32_t crc = crc32c(b.GetBufferPointer(), b.GetSize());
  outer.Finish(fb::CreateMetadataSnapshot(outer, snapshot_format, crc, image), snapshot_identifier);
  return {reinterpret_cast<const char*>(outer.GetBufferPointer()), outer.GetSize()};
}

result<metadata_image> metadata_image::restore(std::string_view bytes) {
  if (bytes.size() < 8 || !flatbuffers::BufferHasIdentifier(bytes.data(), snapshot_identifier))
    return damaged("no FMIS identifier");
  auto outer_copy = aligned_copy(bytes.data(), bytes.size());
  const auto* outer_p = reinterpret_cast<const uint8_t*>(outer_copy.data());
  flatbuffers::Verifier ov(outer_p, bytes.size());
  if (!ov.VerifyBuffer<fb::MetadataSnapshot>(snapshot_identifier)) return damaged("fails verification");
  const auto* snap = flatbuffers::GetRoot<fb::MetadataSnapshot>(outer_p);
  if (snap->format() != snapshot_format)
    return damaged("format " + std::to_string(snap->format()) + "; this broker reads format " +
                   std::to_string(snapshot_format));
  if (snap->image() == nullptr) return damaged("no image");
  const uint8_t* inner_data = snap->image()->data();
  const size_t inner_size = snap->image()->size();
  if (crc32c(inner_data, inner_size) != snap->crc32c()) return damaged("checksum mismatch (damaged)");
  auto inner_copy = aligned_copy(inner_data, inner_size);
  const auto* inner_p = reinterpret_cast<const uint8_t*>(inner_copy.data());
  flatbuffers::Verifier iv(inner_p, inner_size);
  if (!iv.VerifyBuffer<fb::MetadataImage>(nullptr)) return damaged("image fails verification");
  const auto* fi = flatbuffers::GetRoot<fb::MetadataImage>(inner_p);

  metadata_image img;
  img.version_ = fi->version();
  img.next_topic_id_ = fi->next_topic_id();
  img.next_subscription_id_ = fi->next_subscription_id();
  img.refused_ = fi->refused();
  if (img.next_topic_id_ == 0 || img.next_subscription_id_ == 0) return damaged("an id counter at 0");
  auto after_version = [&](metadata_version v, const std::string& what) -> result<void> {
    if (v > img.version_)
      return damaged(what + " at offset " + std::to_string(v) + ", after the version " + std::to_string(img.version_));
    return {};
  };

  if (const auto* bs = fi->brokers()) {
    for (const fb::ImageBroker* fbk : *bs) {
      broker_info info{read_registration(*fbk->registration()),
                       fbk->fenced() ? broker_state::fenced : broker_state::alive, fbk->registered_at()};
      const broker_registration& r = info.registration;
      std::string what = "broker " + std::to_string(r.node.value);
      if (r.node.value <= 0) return damaged(what + ": node ids start at 1");
      if (r.client_address.empty() || r.peer_address.empty()) return damaged(what + " without client or peer address");
      if (auto ok = after_version(info.registered_at, what + " registered"); !ok) return ok.error();
      if (!img.brokers_.emplace(r.node, std::move(info)).second) return damaged(what + " twice");
    }
  }

  if (const auto* ts = fi->topics()) {
    for (const fb::ImageTopic* ft : *ts) {
      auto entry = read_topic(*ft->topic());
      if (!entry) return damaged(entry.error().message);
      topic_info info{std::move(*entry), ft->changed_at(), ft->assigned_at()};
      const meta::topic_record& rec = info.entry.topic;
      std::string what = "topic '" + rec.name + "'";
      if (auto ok = meta::validate_topic_name(rec.name); !ok) return damaged(ok.error().message);
      if (auto ok = meta::validate_topic_config(rec.config, max_replication_factor); !ok)
        return damaged(what + ": " + ok.error().message);
      if (rec.id == 0 || rec.id >= img.next_topic_id_)
        return damaged(what + " with id " + std::to_string(rec.id) + ", not below the next topic id " +
                       std::to_string(img.next_topic_id_));
      if (auto ok = after_version(info.changed_at, what + " changed"); !ok) return ok.error();
      if (auto ok = after_version(info.assigned_at, what + " assigned"); !ok) return ok.error();
      const auto& as = info.entry.assignments;
      if (as.size() != static_cast<size_t>(rec.config.partitions))
        return damaged(what + " with " + std::to_string(as.size()) + " assignments for " +
                       std::to_string(rec.config.partitions) + " partitions");
      for (size_t p = 0; p < as.size(); ++p) {
        if (as[p].partition != static_cast<int32_t>(p) ||
            as[p].replicas.size() != static_cast<size_t>(rec.config.replication))
          return damaged(what + " partition " + std::to_string(p) + ": assignment out of order or of the wrong size");
        std::set<node_id> seen;
        for (node_id n : as[p].replicas)
          if (!seen.insert(n).second || !img.brokers_.contains(n))
            return damaged(what + " partition " + std::to_string(p) + ": broker " + std::to_string(n.value) +
                           " assigned twice or not registered");
      }
      std::string name = rec.name;
      if (!img.topics_.emplace(std::move(name), std::move(info)).second) return damaged(what + " twice");
    }
  }

  if (const auto* ss = fi->subscriptions()) {
    for (const fb::Subscription* fs : *ss) {
      auto s = meta::read_subscription(*fs);
      if (!s) return damaged(s.error().message);
      std::string what = "subscription '" + s->topic + "/" + s->name + "'";
      const topic_info* t = img.topic(s->topic);
      if (t == nullptr || t->entry.topic.id != s->topic_id)
        return damaged(what + ": no topic of that name with id " + std::to_string(s->topic_id));
      if (auto ok = meta::validate_subscription_name(s->name); !ok) return damaged(ok.error().message);
      if (auto ok = meta::validate_subscription_config(s->config); !ok)
        return damaged(what + ": " + ok.error().message);
      if (s->id >= img.next_subscription_id_)
        return damaged(what + " with id " + std::to_string(s->id) + ", not below the next subscription id " +
                       std::to_string(img.next_subscription_id_));
      subscription_key key{s->topic, s->name};
      if (!img.subscriptions_.emplace(std::move(key), std::move(*s)).second) return damaged(what + " twice");
    }
  }
  return img;
}

}  // namespace ferry::cluster
