// Fuzz target: frame decoding (schema/frame.h, schema/wire.md). The broker decodes every frame a
// client sends; the client decodes every frame a broker sends.
//
// Input: one flags byte, then a frame body. The target prepends the 4-byte length prefix (the
// broker reads a frame of exactly the length it announces) and copies it into a buffer of exactly
// that size (aligned, as the broker's frame buffers are).
//   flags bit 0: record batches in the frame get their CRC32C fixed up before they are checked
//                (a hostile client computes valid CRCs), so mutations reach the record decoder
//                and the idempotence check.
// Then:
//  - decode_request, and if it verifies, every field of the request is read as the handlers read
//    them (broker/protocol): for a produce request the frame's layout is checked
//    (check_produce_layout: no batch shares bytes with another or with the tables), each
//    partition's batch goes through verify_produced_batch (with its delays) and for_each_record,
//    then, as in partition::produce, the idempotence check (producer_state) and stamp_batch in
//    place;
//  - decode_response on the same bytes, and if it verifies, every field of the response is read as
//    the client reads it (client/src): fetched batches through the reader's decoding loop,
//    delivered records through detail::decode_record.
// A FlatBuffers verifier that lets a view point outside the frame is an AddressSanitizer report.
#include <cstring>
#include <string>
#include <vector>

#include "broker/base/assert.h"
#include "broker/partition/producer_state.h"
#include "schema/frame.h"
#include "schema/record_batch.h"
#include "tests/fuzz/fuzz_input.h"

namespace w = ferry::wire;
using ferry::fuzz::touch;

namespace {

bool fix_crcs = false;
const std::byte* frame_start = nullptr;  // of the request being walked

// Makes `batch` CRC-valid if the input asked for it (and its header is long enough to hold one).
void maybe_fix_crc(std::span<std::byte> batch) {
  if (!fix_crcs || batch.size() < w::batch_header_size) return;
  w::put_le32(batch.data() + w::hdr::crc, w::compute_batch_crc(batch));
}

// Adds fields as unsigned numbers (hostile values must not overflow a signed sum here).
template <class... T>
uint64_t sum(T... v) {
  return (uint64_t{0} + ... + static_cast<uint64_t>(v));
}

uint64_t str(const flatbuffers::String* s) { return s ? touch(s->string_view()) : 0; }

template <class T>
uint64_t bytes(const flatbuffers::Vector<T>* v) {
  if (v == nullptr) return 0;
  return touch(std::span<const std::byte>(reinterpret_cast<const std::byte*>(v->data()), v->size() * sizeof(T)));
}

template <class T, class Fn>
uint64_t each(const flatbuffers::Vector<flatbuffers::Offset<T>>* v, Fn&& fn) {
  uint64_t h = 0;
  if (v == nullptr) return h;
  for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) {
    const T* t = v->Get(i);
    if (t != nullptr) h += fn(*t);
  }
  return h;
}

uint64_t records(std::span<const std::byte> batch) {
  uint64_t h = 0;
  auto r = w::for_each_record(batch, [&](const w::record_view& rv) {
    h += static_cast<uint64_t>(rv.offset) + touch(rv.key.value_or("")) + touch(rv.value.value_or(""));
    for (const auto& hv : rv.headers) h += touch(hv.key) + touch(hv.value.value_or(""));
  });
  FERRY_ASSERT(r, "for_each_record failed on a verified batch");
  return h;
}

uint64_t topic_config(const w::TopicConfig* c) {
  if (c == nullptr) return 0;
  return sum(c->partitions(), c->replication(), c->retention_ms(), c->retention_bytes(), c->segment_bytes(),
             c->segment_ms(), c->max_batch_bytes(), c->fsync(), c->fsync_interval_ms(), c->max_delay_ms());
}

uint64_t sub_config(const w::SubscriptionConfig* c) {
  if (c == nullptr) return 0;
  return sum(c->start(), c->ack_timeout_ms(), c->max_deliveries(), c->ordered(), c->backoff(), c->backoff_initial_ms(),
             c->backoff_max_ms()) +
         str(c->dead_letter_topic());
}

// A produce request as handler.cc's do_produce takes it: the frame's layout checked, each batch verified where it lies
// in the frame (verify_produced_batch), then as partition::produce goes on: the producer's sequence checked and
// remembered (producer_state, one for the whole request), offsets and append time stamped in place (the broker owns the
// frame buffer).
uint64_t produce(const w::Request& envelope, const w::ProduceRequest& p, std::span<const std::byte> frame) {
  uint64_t h = str(p.topic()) + static_cast<uint64_t>(p.acks()) + static_cast<uint64_t>(p.timeout_ms());
  // do_produce refuses a frame whose batches share bytes or overlap its tables before anything is
  // stamped in place (stamping such a frame would rewrite the tables this loop still reads).
  if (!w::check_produce_layout(&envelope, &p, frame)) return h + 1;
  ferry::partition::producer_state producers;
  int64_t next_offset = 0;
  h += each(p.partitions(), [&](const w::ProducePartition& pp) -> uint64_t {
    if (pp.records() == nullptr) return static_cast<uint64_t>(pp.partition());
    auto* data = const_cast<std::byte*>(reinterpret_cast<const std::byte*>(pp.records()->data()));
    std::span<std::byte> batch(data, pp.records()->size());
    maybe_fix_crc(batch);
    w::batch_delays delays;
    auto hdr = w::verify_produced_batch(batch, &delays);
    if (!hdr) return 1;
    uint64_t r = records(batch) + static_cast<uint64_t>(delays.count);
    auto c = producers.check(*hdr);
    if (c.v == ferry::partition::producer_state::verdict::duplicate) return r + sum(c.original.next_offset());
    if (c.v != ferry::partition::producer_state::verdict::accept) return r + sum(c.expected);
    int64_t append_time = 1'700'000'000'000;
    w::stamp_batch(batch, next_offset, 1, append_time);
    hdr->base_offset = next_offset;
    hdr->append_time = append_time;
    producers.remember(*hdr);
    next_offset = hdr->next_offset();
    return r;
  });
  return h;
}

uint64_t request(const w::Request& r, std::span<const std::byte> frame) {
  uint64_t h = r.version() + r.correlation_id() + static_cast<uint64_t>(r.body_type());
  if (r.body() == nullptr) return h;  // the handler refuses a request without a body
  switch (r.body_type()) {
    case w::RequestBody::MetadataRequest:
      if (auto* t = r.body_as_MetadataRequest()->topics())
        for (flatbuffers::uoffset_t i = 0; i < t->size(); ++i) h += str(t->Get(i));
      break;
    case w::RequestBody::CreateTopicRequest:
      h += str(r.body_as_CreateTopicRequest()->name()) + topic_config(r.body_as_CreateTopicRequest()->config());
      break;
    case w::RequestBody::ListTopicsRequest:
      break;
    case w::RequestBody::DescribeTopicRequest:
      h += str(r.body_as_DescribeTopicRequest()->name());
      break;
    case w::RequestBody::DeleteTopicRequest:
      h += str(r.body_as_DeleteTopicRequest()->name());
      break;
    case w::RequestBody::ProduceRequest:
      h += produce(r, *r.body_as_ProduceRequest(), frame);
      break;
    case w::RequestBody::FetchRequest: {
      auto* f = r.body_as_FetchRequest();
      h += str(f->topic()) + sum(f->max_wait_ms(), f->min_bytes(), f->max_bytes());
      h += each(f->partitions(),
                [](const w::FetchPartition& p) { return sum(p.partition(), p.offset(), p.max_bytes()); });
      break;
    }
    case w::RequestBody::CreateSubscriptionRequest: {
      auto* c = r.body_as_CreateSubscriptionRequest();
      h += str(c->topic()) + str(c->name()) + sub_config(c->config());
      break;
    }
    case w::RequestBody::DeleteSubscriptionRequest:
      h += str(r.body_as_DeleteSubscriptionRequest()->topic()) + str(r.body_as_DeleteSubscriptionRequest()->name());
      break;
    case w::RequestBody::ListSubscriptionsRequest:
      h += str(r.body_as_ListSubscriptionsRequest()->topic());
      break;
    case w::RequestBody::DescribeSubscriptionRequest:
      h += str(r.body_as_DescribeSubscriptionRequest()->topic()) + str(r.body_as_DescribeSubscriptionRequest()->name());
      break;
    case w::RequestBody::SeekSubscriptionRequest: {
      auto* s = r.body_as_SeekSubscriptionRequest();
      h += str(s->topic()) + str(s->name()) + static_cast<uint64_t>(s->target()) +
           sum(s->value(), s->partition(), s->dry_run());
      break;
    }
    case w::RequestBody::JoinRequest: {
      auto* j = r.body_as_JoinRequest();
      h += str(j->topic()) + str(j->subscription()) + str(j->member_name()) +
           sum(j->ack_timeout_ms(), j->credit_messages(), j->credit_bytes());
      break;
    }
    case w::RequestBody::LeaveRequest:
      h += r.body_as_LeaveRequest()->member_id();
      break;
    case w::RequestBody::AckRequest: {
      auto* a = r.body_as_AckRequest();
      h += a->member_id() + sum(a->credit_messages(), a->credit_bytes());
      h += each(a->acks(), [](const w::PartitionOffsets& p) {
        uint64_t s = static_cast<uint64_t>(p.partition());
        if (p.offsets()) {
          // The verifier checks only the length field's alignment; decode_request must refuse
          // 64-bit elements at 4 mod 8 (a misaligned load).
          FERRY_ASSERT(
              (reinterpret_cast<uintptr_t>(p.offsets()->data()) - reinterpret_cast<uintptr_t>(frame_start)) % 8 == 0,
              "decode_request accepted a [long] vector that is not 8-byte aligned");
          for (auto o : *p.offsets()) s += static_cast<uint64_t>(o);
        }
        return s;
      });
      h += each(a->nacks(), [](const w::NackItem& n) { return sum(n.partition(), n.offset(), n.delay_ms()); });
      h += each(a->extends(), [](const w::ExtendItem& e) { return sum(e.partition(), e.offset(), e.extend_ms()); });
      break;
    }
    case w::RequestBody::DeliveryPlaceholder:
      break;
    case w::RequestBody::CancelRequest: {
      auto* c = r.body_as_CancelRequest();
      h += str(c->topic()) + sum(c->partition(), c->offset());
      break;
    }
    case w::RequestBody::ListDelayedRequest: {
      auto* l = r.body_as_ListDelayedRequest();
      h += str(l->topic()) + sum(l->partition(), l->before_time(), l->limit());
      break;
    }
    default:
      break;  // NONE or an API id this build does not know: refused by the handler
  }
  h += touch(w::api_name(static_cast<uint8_t>(r.body_type())));
  return h;
}

// client/src/reader.cc's decode: whole batches, each verified, control batches skipped.
uint64_t fetched(std::span<std::byte> recs) {
  uint64_t h = 0;
  size_t pos = 0;
  while (recs.size() - pos >= w::batch_header_size) {
    auto rest = recs.subspan(pos);
    auto hdr = w::parse_batch_header(rest);
    if (!hdr) return h;
    auto len = static_cast<size_t>(hdr->batch_length);
    if (len > rest.size()) return h;
    auto batch = rest.first(len);
    maybe_fix_crc(batch);
    if (!w::verify_batch(batch)) return h;
    if ((hdr->attributes & w::attr_control) == 0) h += records(batch);
    pos += len;
  }
  return h;
}

// client/src/consumer.cc's decode_delivered.
uint64_t delivered(const w::DeliveredMessage& dm) {
  if (dm.record() == nullptr) return 0;
  std::span<const std::byte> rec(reinterpret_cast<const std::byte*>(dm.record()->data()), dm.record()->size());
  w::batch_header hdr;
  hdr.base_offset = 0;
  hdr.first_timestamp = dm.first_timestamp();
  hdr.append_time = dm.append_time();
  hdr.attributes = dm.batch_attributes();
  w::record_view rv;
  auto n = w::detail::decode_record(rec, hdr, rv);
  if (!n) return 0;
  FERRY_ASSERT(*n <= rec.size(), "decode_record consumed more than the record");
  uint64_t h = touch(rv.key.value_or("")) + touch(rv.value.value_or(""));
  for (const auto& hv : rv.headers) h += touch(hv.key) + touch(hv.value.value_or(""));
  return h;
}

uint64_t response(const w::Response& r) {
  uint64_t h = r.correlation_id() + static_cast<uint64_t>(r.error()) + str(r.error_message()) + r.metadata_version();
  if (r.body() == nullptr) return h;  // a body type without a body: the client must refuse it
  switch (r.body_type()) {
    case w::ResponseBody::MetadataResponse: {
      auto* m = r.body_as_MetadataResponse();
      h += each(m->brokers(), [](const w::BrokerInfo& b) { return str(b.host()) + b.port(); });
      h += each(m->topics(), [](const w::TopicMetadata& t) {
        return str(t.name()) + str(t.error_message()) +
               each(t.partitions(), [](const w::PartitionInfo& p) { return bytes(p.replicas()); });
      });
      break;
    }
    case w::ResponseBody::CreateTopicResponse:
      h += str(r.body_as_CreateTopicResponse()->name()) + topic_config(r.body_as_CreateTopicResponse()->config());
      break;
    case w::ResponseBody::ListTopicsResponse:
      h += each(r.body_as_ListTopicsResponse()->topics(), [](const w::TopicSummary& t) { return str(t.name()); });
      break;
    case w::ResponseBody::DescribeTopicResponse: {
      auto* d = r.body_as_DescribeTopicResponse();
      h += str(d->name()) + topic_config(d->config());
      h += each(d->partitions(), [](const w::PartitionState& p) {
        return sum(p.log_start_offset(), p.high_watermark(), p.next_due_time());
      });
      break;
    }
    case w::ResponseBody::ProduceResponse:
      h += str(r.body_as_ProduceResponse()->topic());
      h += each(r.body_as_ProduceResponse()->partitions(), [](const w::ProducePartitionResult& p) {
        return str(p.error_message()) + sum(p.base_offset(), p.log_append_time(), p.duplicate());
      });
      break;
    case w::ResponseBody::FetchResponse:
      h += str(r.body_as_FetchResponse()->topic());
      h += each(r.body_as_FetchResponse()->partitions(), [](const w::FetchPartitionResult& p) {
        uint64_t s = str(p.error_message()) + sum(p.high_watermark(), p.log_start_offset());
        if (p.records())
          s += fetched(std::span(const_cast<std::byte*>(reinterpret_cast<const std::byte*>(p.records()->data())),
                                 p.records()->size()));
        return s;
      });
      break;
    case w::ResponseBody::ListSubscriptionsResponse:
      h += each(r.body_as_ListSubscriptionsResponse()->subscriptions(),
                [](const w::SubscriptionSummary& s) { return str(s.topic()) + str(s.name()); });
      break;
    case w::ResponseBody::DescribeSubscriptionResponse: {
      auto* d = r.body_as_DescribeSubscriptionResponse();
      h += str(d->topic()) + str(d->name()) + sub_config(d->config());
      h += each(d->partitions(), [](const w::SubscriptionPartitionState& p) {
        return sum(p.cursor(), p.backlog(), p.oldest_unacked_time());
      });
      h += each(d->members(), [](const w::MemberInfo& m) { return str(m.name()) + str(m.peer()); });
      break;
    }
    case w::ResponseBody::SeekSubscriptionResponse:
      h += str(r.body_as_SeekSubscriptionResponse()->topic()) + str(r.body_as_SeekSubscriptionResponse()->name());
      h += each(r.body_as_SeekSubscriptionResponse()->partitions(),
                [](const w::SeekPartitionResult& p) { return str(p.error_message()); });
      break;
    case w::ResponseBody::JoinResponse:
      h += sub_config(r.body_as_JoinResponse()->config());
      break;
    case w::ResponseBody::AckResponse:
      h += str(r.body_as_AckResponse()->error_message());
      h += each(r.body_as_AckResponse()->failures(),
                [](const w::AckFailure& f) { return static_cast<uint64_t>(f.offset()); });
      break;
    case w::ResponseBody::Delivery: {
      auto* d = r.body_as_Delivery();
      h += str(d->topic()) + str(d->subscription());
      h += each(d->messages(), [](const w::DeliveredMessage& m) { return delivered(m); });
      break;
    }
    case w::ResponseBody::CancelResponse:
      h += str(r.body_as_CancelResponse()->topic()) + str(r.body_as_CancelResponse()->message());
      break;
    case w::ResponseBody::ListDelayedResponse:
      h += str(r.body_as_ListDelayedResponse()->topic());
      h += each(r.body_as_ListDelayedResponse()->messages(), [](const w::DelayedMessage& m) { return bytes(m.key()); });
      break;
    default:
      break;
  }
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size - 1 > UINT32_MAX - w::frame_prefix_bytes) return 0;
  fix_crcs = (data[0] & 1) != 0;
  ++data;
  --size;
  // One exactly-sized buffer per decoder: decoding a request stamps produce batches in place.
  std::vector<std::byte> frame(w::frame_prefix_bytes + size);
  w::put_le32(frame.data(), static_cast<uint32_t>(size));
  if (size > 0) std::memcpy(frame.data() + w::frame_prefix_bytes, data, size);
  std::vector<std::byte> copy = frame;

  frame_start = frame.data();
  if (auto req = w::decode_request(frame); req) touch(std::to_string(request(**req, frame)));
  if (auto resp = w::decode_response(copy); resp) touch(std::to_string(response(**resp)));
  return 0;
}
