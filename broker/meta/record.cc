// Topic and subscription records as FlatBuffers `Record`s (schema/meta.fbs, schema/meta.md): the
// only encoding written. Decoding also accepts the old "key=value" text (legacy_text.cc), told
// apart by the FlatBuffers file identifier, which no text record carries at bytes 4..7 (they all
// begin with "format=1").
#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "broker/meta/legacy_text.h"
#include "broker/meta/record_tables.h"
#include "broker/meta/subscription_config.h"
#include "broker/meta/topic_config.h"
#include "schema/meta_generated.h"

namespace ferry::meta {

namespace {

constexpr uint16_t record_version = 1;

std::string finish(flatbuffers::FlatBufferBuilder& b, fb::Body type, flatbuffers::Offset<void> body) {
  fb::RecordBuilder rb(b);
  rb.add_version(record_version);
  rb.add_body_type(type);
  rb.add_body(body);
  fb::FinishRecordBuffer(b, rb.Finish());
  return {reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()};
}

bool is_flatbuffer(std::string_view s) { return s.size() >= 8 && fb::RecordBufferHasIdentifier(s.data()); }

// A verified record of kind `want`, read from `copy` (an 8-byte aligned copy of `s`: values come
// from RocksDB at any alignment, and FlatBuffers reads its scalars in place).
result<const fb::Record*> open_record(std::string_view s, fb::Body want, std::vector<uint64_t>& copy) {
  copy.assign((s.size() + 7) / 8, 0);
  std::memcpy(copy.data(), s.data(), s.size());
  auto* p = reinterpret_cast<const uint8_t*>(copy.data());
  std::string kind = fb::EnumNameBody(want);
  flatbuffers::Verifier v(p, s.size());
  if (!fb::VerifyRecordBuffer(v)) return fail(errc::storage_error, kind + " record fails verification (damaged)");
  const fb::Record* r = fb::GetRecord(p);
  if (r->version() != record_version)
    return fail(errc::storage_error, kind + " record of version " + std::to_string(r->version()) +
                                         "; this broker reads version " + std::to_string(record_version));
  if (r->body_type() != want)
    return fail(errc::storage_error,
                "expected a " + kind + " record, found a " + std::string(fb::EnumNameBody(r->body_type())) + " record");
  return r;
}

result<fsync_mode> from_fb(fb::FsyncMode m) {
  switch (m) {
    case fb::FsyncMode::Always:
      return fsync_mode::always;
    case fb::FsyncMode::Interval:
      return fsync_mode::interval;
  }
  return fail(errc::storage_error, "topic record with unknown fsync mode " + std::to_string(static_cast<int>(m)));
}
result<start_position> from_fb(fb::StartPosition p) {
  switch (p) {
    case fb::StartPosition::Latest:
      return start_position::latest;
    case fb::StartPosition::Earliest:
      return start_position::earliest;
  }
  return fail(errc::storage_error,
              "subscription record with unknown start position " + std::to_string(static_cast<int>(p)));
}
result<backoff_kind> from_fb(fb::BackoffKind k) {
  switch (k) {
    case fb::BackoffKind::Exponential:
      return backoff_kind::exponential;
    case fb::BackoffKind::Fixed:
      return backoff_kind::fixed;
  }
  return fail(errc::storage_error, "subscription record with unknown backoff " + std::to_string(static_cast<int>(k)));
}

}  // namespace

flatbuffers::Offset<fb::TopicConfig> build_topic_config(flatbuffers::FlatBufferBuilder& b, const topic_config& c) {
  fb::TopicConfigBuilder cb(b);
  cb.add_partitions(c.partitions);
  cb.add_replication(c.replication);
  cb.add_retention_ms(c.retention_ms);
  cb.add_retention_bytes(c.retention_bytes);
  cb.add_segment_bytes(c.segment_bytes);
  cb.add_segment_ms(c.segment_ms);
  cb.add_max_batch_bytes(c.max_batch_bytes);
  cb.add_fsync(c.fsync == fsync_mode::interval ? fb::FsyncMode::Interval : fb::FsyncMode::Always);
  cb.add_fsync_interval_ms(c.fsync_interval_ms);
  cb.add_max_delay_ms(c.max_delay_ms);
  return cb.Finish();
}

result<topic_config> read_topic_config(const fb::TopicConfig& t) {
  topic_config c;
  c.partitions = t.partitions();
  c.replication = t.replication();
  c.retention_ms = t.retention_ms();
  c.retention_bytes = t.retention_bytes();
  c.segment_bytes = t.segment_bytes();
  c.segment_ms = t.segment_ms();
  c.max_batch_bytes = t.max_batch_bytes();
  auto fsync = from_fb(t.fsync());
  if (!fsync) return fsync.error();
  c.fsync = *fsync;
  c.fsync_interval_ms = t.fsync_interval_ms();
  c.max_delay_ms = t.max_delay_ms();
  return c;
}

flatbuffers::Offset<fb::Subscription> build_subscription(flatbuffers::FlatBufferBuilder& b,
                                                         const subscription_record& r) {
  const subscription_config& c = r.config;
  auto topic = b.CreateString(r.topic);
  auto name = b.CreateString(r.name);
  auto dlq = b.CreateString(c.dead_letter_topic);
  auto starts = b.CreateVector(r.start_offsets);
  fb::SubscriptionConfigBuilder cb(b);
  cb.add_start(c.start == start_position::earliest ? fb::StartPosition::Earliest : fb::StartPosition::Latest);
  cb.add_ack_timeout_ms(c.ack_timeout_ms);
  cb.add_max_deliveries(c.max_deliveries);
  cb.add_ordered(c.ordered);
  cb.add_backoff(c.backoff == backoff_kind::fixed ? fb::BackoffKind::Fixed : fb::BackoffKind::Exponential);
  cb.add_backoff_initial_ms(c.backoff_initial_ms);
  cb.add_backoff_max_ms(c.backoff_max_ms);
  cb.add_dead_letter_topic(dlq);
  auto config = cb.Finish();
  fb::SubscriptionBuilder sb(b);
  sb.add_topic(topic);
  sb.add_topic_id(r.topic_id);
  sb.add_name(name);
  sb.add_id(r.id);
  sb.add_config(config);
  sb.add_start_offsets(starts);
  sb.add_created_ms(r.created_ms);
  return sb.Finish();
}

result<subscription_record> read_subscription(const fb::Subscription& s) {
  const fb::SubscriptionConfig* fc = s.config();
  subscription_record r;
  r.topic = s.topic()->str();
  r.topic_id = s.topic_id();
  r.name = s.name()->str();
  r.id = s.id();
  r.created_ms = s.created_ms();
  if (s.start_offsets()) r.start_offsets.assign(s.start_offsets()->begin(), s.start_offsets()->end());
  subscription_config& c = r.config;
  auto start = from_fb(fc->start());
  if (!start) return start.error();
  c.start = *start;
  c.ack_timeout_ms = fc->ack_timeout_ms();
  c.max_deliveries = fc->max_deliveries();
  c.ordered = fc->ordered();
  auto backoff = from_fb(fc->backoff());
  if (!backoff) return backoff.error();
  c.backoff = *backoff;
  c.backoff_initial_ms = fc->backoff_initial_ms();
  c.backoff_max_ms = fc->backoff_max_ms();
  if (fc->dead_letter_topic()) c.dead_letter_topic = fc->dead_letter_topic()->str();
  if (r.topic.empty() || r.name.empty() || r.id == 0)
    return fail(errc::storage_error, "subscription record without topic, name or id");
  return r;
}

std::string encode_topic_record(const topic_record& r) {
  flatbuffers::FlatBufferBuilder b(256);
  auto name = b.CreateString(r.name);
  auto config = build_topic_config(b, r.config);
  fb::TopicBuilder tb(b);
  tb.add_name(name);
  tb.add_id(r.id);
  tb.add_config(config);
  return finish(b, fb::Body::Topic, tb.Finish().Union());
}

result<topic_record> decode_topic_record(std::string_view s) {
  if (!is_flatbuffer(s)) return detail::decode_text_topic_record(s);
  std::vector<uint64_t> copy;
  auto rec = open_record(s, fb::Body::Topic, copy);
  if (!rec) return rec.error();
  const fb::Topic* t = (*rec)->body_as_Topic();
  auto config = read_topic_config(*t->config());
  if (!config) return config.error();
  topic_record r{t->name()->str(), t->id(), *config};
  if (r.name.empty()) return fail(errc::storage_error, "metadata record without a topic name");
  return r;
}

std::string encode_subscription_record(const subscription_record& r) {
  flatbuffers::FlatBufferBuilder b(256);
  auto sub = build_subscription(b, r);
  return finish(b, fb::Body::Subscription, sub.Union());
}

result<subscription_record> decode_subscription_record(std::string_view s) {
  if (!is_flatbuffer(s)) return detail::decode_text_subscription_record(s);
  std::vector<uint64_t> copy;
  auto rec = open_record(s, fb::Body::Subscription, copy);
  if (!rec) return rec.error();
  return read_subscription(*(*rec)->body_as_Subscription());
}

}  // namespace ferry::meta
