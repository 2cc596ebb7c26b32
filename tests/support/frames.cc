#include "tests/support/frames.h"

#include <algorithm>
#include <random>

#include "schema/frame.h"
#include "schema/record_batch.h"

namespace ferry::test {

namespace fb = flatbuffers;
using namespace ferry::wire;

namespace {

bytes finish(fb::FlatBufferBuilder& fbb, uint64_t cid, RequestBody type, fb::Offset<void> body, uint16_t version = 1) {
  // version 1 equals the default and would be omitted; force it so every frame says its version.
  fbb.ForceDefaults(true);
  RequestBuilder rb(fbb);
  rb.add_version(version);
  rb.add_correlation_id(cid);
  rb.add_body_type(type);
  rb.add_body(body);
  auto root = rb.Finish();
  finish_request(fbb, root);
  auto span = fbb.GetBufferSpan();
  auto p = reinterpret_cast<const std::byte*>(span.data());
  return bytes(p, p + span.size());
}

errc code_of(ErrorCode e) { return from_wire(e); }

std::string str(const fb::String* s) { return s ? s->str() : std::string(); }

}  // namespace

bytes metadata_frame(uint64_t cid) {
  fb::FlatBufferBuilder fbb;
  auto body = CreateMetadataRequest(fbb);
  return finish(fbb, cid, RequestBody::MetadataRequest, body.Union());
}

bytes create_topic_frame(uint64_t cid, std::string_view name, int32_t partitions, uint16_t version) {
  fb::FlatBufferBuilder fbb;
  auto n = fbb.CreateString(name.data(), name.size());
  auto cfg = CreateTopicConfig(fbb, partitions);
  auto body = CreateCreateTopicRequest(fbb, n, cfg);
  return finish(fbb, cid, RequestBody::CreateTopicRequest, body.Union(), version);
}

bytes list_topics_frame(uint64_t cid) {
  fb::FlatBufferBuilder fbb;
  auto body = CreateListTopicsRequest(fbb);
  return finish(fbb, cid, RequestBody::ListTopicsRequest, body.Union());
}

bytes describe_topic_frame(uint64_t cid, std::string_view name) {
  fb::FlatBufferBuilder fbb;
  auto n = fbb.CreateString(name.data(), name.size());
  auto body = CreateDescribeTopicRequest(fbb, n);
  return finish(fbb, cid, RequestBody::DescribeTopicRequest, body.Union());
}

bytes delete_topic_frame(uint64_t cid, std::string_view name) {
  fb::FlatBufferBuilder fbb;
  auto n = fbb.CreateString(name.data(), name.size());
  auto body = CreateDeleteTopicRequest(fbb, n);
  return finish(fbb, cid, RequestBody::DeleteTopicRequest, body.Union());
}

bytes produce_frame(uint64_t cid, std::string_view topic, int32_t partition, std::span<const std::byte> batch) {
  fb::FlatBufferBuilder fbb;
  auto t = fbb.CreateString(topic.data(), topic.size());
  auto recs = fbb.CreateVector(reinterpret_cast<const uint8_t*>(batch.data()), batch.size());
  auto pp = CreateProducePartition(fbb, partition, recs);
  auto parts = fbb.CreateVector(&pp, 1);
  auto body = CreateProduceRequest(fbb, t, Acks::Durable, 30000, parts);
  return finish(fbb, cid, RequestBody::ProduceRequest, body.Union());
}

bytes fetch_frame(uint64_t cid, std::string_view topic, int32_t partition, int64_t offset, int32_t max_wait_ms,
                  int32_t max_bytes) {
  fb::FlatBufferBuilder fbb;
  auto t = fbb.CreateString(topic.data(), topic.size());
  auto fp = CreateFetchPartition(fbb, partition, offset, max_bytes);
  auto parts = fbb.CreateVector(&fp, 1);
  auto body = CreateFetchRequest(fbb, t, parts, max_wait_ms, 1, max_bytes);
  return finish(fbb, cid, RequestBody::FetchRequest, body.Union());
}

bytes fetch_many_frame(uint64_t cid, std::string_view topic, const std::vector<fetch_entry>& entries,
                       int32_t max_wait_ms, int32_t max_bytes) {
  fb::FlatBufferBuilder fbb(64 + entries.size() * 32);
  auto t = fbb.CreateString(topic.data(), topic.size());
  std::vector<fb::Offset<FetchPartition>> fps;
  fps.reserve(entries.size());
  for (auto& e : entries) fps.push_back(CreateFetchPartition(fbb, e.partition, e.offset, e.max_bytes));
  auto parts = fbb.CreateVector(fps);
  auto body = CreateFetchRequest(fbb, t, parts, max_wait_ms, 1, max_bytes);
  return finish(fbb, cid, RequestBody::FetchRequest, body.Union());
}

bytes finish_request_frame(fb::FlatBufferBuilder& fbb, uint64_t cid, RequestBody type, fb::Offset<void> body) {
  return finish(fbb, cid, type, body);
}

bytes make_batch(const std::vector<test_record>& records, int64_t producer_id, int32_t base_sequence) {
  batch_builder b;
  for (auto& r : records) {
    std::vector<header_view> hs;
    for (auto& [k, v] : r.headers) hs.push_back(header_view{k, std::string_view(v)});
    std::optional<std::string_view> key, value;
    if (r.key) key = *r.key;
    if (r.value) value = *r.value;
    b.add(key, value, hs, r.timestamp);
  }
  auto s = b.finish(producer_id, 0, base_sequence);
  return bytes(s.begin(), s.end());
}

bytes make_value_batch(const std::vector<std::string>& values, int64_t producer_id, int32_t base_sequence) {
  std::vector<test_record> recs;
  recs.reserve(values.size());
  for (auto& v : values) recs.push_back(test_record{std::nullopt, v, {}, 1'700'000'000'000});
  return make_batch(recs, producer_id, base_sequence);
}

result<std::vector<stored_record>> decode_batches(std::span<const std::byte> records, int64_t from) {
  std::vector<stored_record> out;
  size_t pos = 0;
  while (pos < records.size()) {
    auto rest = records.subspan(pos);
    auto h = parse_batch_header(rest);
    if (!h) return fail(errc::corrupt_batch, "batch header at byte " + std::to_string(pos) + ": " + h.error().message);
    if (h->batch_length < static_cast<int32_t>(batch_header_size) || static_cast<size_t>(h->batch_length) > rest.size())
      return fail(errc::corrupt_batch, "batch at byte " + std::to_string(pos) + " has length " +
                                           std::to_string(h->batch_length) + " but " + std::to_string(rest.size()) +
                                           " bytes are left");
    auto batch = rest.first(static_cast<size_t>(h->batch_length));
    if (auto v = verify_batch(batch); !v)
      return fail(errc::corrupt_batch, "batch at offset " + std::to_string(h->base_offset) + ": " + v.error().message);
    auto r = for_each_record(batch, [&](const record_view& rv) {
      if (rv.offset < from) return;
      stored_record s;
      s.offset = rv.offset;
      s.timestamp = rv.timestamp;
      if (rv.key) s.key = std::string(*rv.key);
      if (rv.value) s.value = std::string(*rv.value);
      for (auto& hv : rv.headers)
        s.headers.emplace_back(std::string(hv.key),
                               hv.value ? std::optional<std::string>(std::string(*hv.value)) : std::nullopt);
      out.push_back(std::move(s));
    });
    if (!r) return r.error();
    pos += batch.size();
  }
  return out;
}

std::string random_payload(uint64_t seed, size_t min_len, size_t max_len, bool binary) {
  std::mt19937_64 rng(seed);
  size_t len = min_len + (max_len > min_len ? rng() % (max_len - min_len + 1) : 0);
  std::string s(len, '\0');
  for (auto& c : s) c = binary ? static_cast<char>(rng() & 0xff) : static_cast<char>('a' + rng() % 26);
  return s;
}

bytes create_subscription_frame(uint64_t cid, std::string_view topic, std::string_view name, const sub_options& o) {
  fb::FlatBufferBuilder fbb;
  auto t = fbb.CreateString(topic.data(), topic.size());
  auto n = fbb.CreateString(name.data(), name.size());
  auto cfg = CreateSubscriptionConfig(
      fbb, o.earliest ? StartPosition::Earliest : StartPosition::Latest, o.ack_timeout_ms, o.max_deliveries, o.ordered,
      o.fixed_backoff ? BackoffKind::Fixed : BackoffKind::Exponential, o.backoff_initial_ms, -1);
  auto body = CreateCreateSubscriptionRequest(fbb, t, n, cfg);
  return finish(fbb, cid, RequestBody::CreateSubscriptionRequest, body.Union());
}

bytes describe_subscription_frame(uint64_t cid, std::string_view topic, std::string_view name) {
  fb::FlatBufferBuilder fbb;
  auto t = fbb.CreateString(topic.data(), topic.size());
  auto n = fbb.CreateString(name.data(), name.size());
  auto body = CreateDescribeSubscriptionRequest(fbb, t, n);
  return finish(fbb, cid, RequestBody::DescribeSubscriptionRequest, body.Union());
}

bytes join_frame(uint64_t cid, std::string_view topic, std::string_view sub, int32_t credit_messages,
                 int32_t credit_bytes, int64_t ack_timeout_ms) {
  fb::FlatBufferBuilder fbb;
  auto t = fbb.CreateString(topic.data(), topic.size());
  auto s = fbb.CreateString(sub.data(), sub.size());
  auto m = fbb.CreateString("raw-test");
  auto body = CreateJoinRequest(fbb, t, s, m, ack_timeout_ms, credit_messages, credit_bytes);
  return finish(fbb, cid, RequestBody::JoinRequest, body.Union());
}

bytes leave_frame(uint64_t cid, uint64_t member) {
  fb::FlatBufferBuilder fbb;
  auto body = CreateLeaveRequest(fbb, member);
  return finish(fbb, cid, RequestBody::LeaveRequest, body.Union());
}

bytes ack_frame(uint64_t cid, uint64_t member, int32_t partition, const std::vector<int64_t>& acks,
                const std::vector<nack_spec>& nacks, const std::vector<nack_spec>& extends, int32_t credit_messages,
                int32_t credit_bytes) {
  fb::FlatBufferBuilder fbb;
  std::vector<fb::Offset<PartitionOffsets>> pos;
  if (!acks.empty()) pos.push_back(CreatePartitionOffsetsDirect(fbb, partition, &acks));
  std::vector<fb::Offset<NackItem>> nv;
  nv.reserve(nacks.size());
  for (auto& n : nacks) nv.push_back(CreateNackItem(fbb, n.partition, n.offset, n.delay_ms));
  std::vector<fb::Offset<ExtendItem>> xv;
  xv.reserve(extends.size());
  for (auto& x : extends) xv.push_back(CreateExtendItem(fbb, x.partition, x.offset, x.delay_ms));
  auto body = CreateAckRequestDirect(fbb, member, &pos, &nv, &xv, credit_messages, credit_bytes);
  return finish(fbb, cid, RequestBody::AckRequest, body.Union());
}

std::vector<pushed_message> decode_delivery(const response_frame& f) {
  std::vector<pushed_message> out;
  auto* d = f.resp->body_as_Delivery();
  if (d == nullptr || d->messages() == nullptr) return out;
  for (auto m : *d->messages()) {
    pushed_message pm;
    pm.partition = m->partition();
    pm.offset = m->offset();
    pm.delivery_count = m->delivery_count();
    if (m->record()) {
      batch_header h;
      h.first_timestamp = m->first_timestamp();
      h.append_time = m->append_time();
      h.attributes = m->batch_attributes();
      record_view rv;
      auto rec = std::as_bytes(std::span(m->record()->data(), m->record()->size()));
      if (detail::decode_record(rec, h, rv)) {
        if (rv.key) pm.key = std::string(*rv.key);
        if (rv.value) pm.value = std::string(*rv.value);
      }
    }
    out.push_back(std::move(pm));
  }
  return out;
}

// ---- raw_client -----------------------------------------------------------------------------

result<raw_client> raw_client::connect(uint16_t port) {
  auto c = raw_connection::connect(port);
  if (!c) return c.error();
  raw_client rc;
  rc.conn_ = std::move(*c);
  return rc;
}

result<response_frame> raw_client::call(bytes frame) {
  auto req = decode_request(frame);
  if (!req) return fail(errc::unknown, "test bug: request frame does not verify: " + req.error().message);
  uint64_t cid = (*req)->correlation_id();
  auto r = conn_.roundtrip(frame);
  if (!r) return r.error();
  if (r->resp->correlation_id() != cid)
    return fail(errc::unknown, "response correlation id " + std::to_string(r->resp->correlation_id()) +
                                   " does not match the request's " + std::to_string(cid));
  return r;
}

result<response_frame> raw_client::call_keeping_pushes(bytes frame) {
  auto req = decode_request(frame);
  if (!req) return fail(errc::unknown, "test bug: request frame does not verify: " + req.error().message);
  uint64_t cid = (*req)->correlation_id();
  if (auto s = conn_.send_bytes(frame); !s) return s.error();
  for (;;) {
    auto r = conn_.read_response();
    if (!r) return r.error();
    if (r->resp->correlation_id() == 0 && r->resp->body_type() == ResponseBody::Delivery) {
      pushes_.push_back(std::move(*r));
      continue;
    }
    if (r->resp->correlation_id() != cid)
      return fail(errc::unknown, "response correlation id " + std::to_string(r->resp->correlation_id()) +
                                     " does not match the request's " + std::to_string(cid));
    return r;
  }
}

result<response_frame> raw_client::next_push(std::chrono::milliseconds timeout) {
  if (!pushes_.empty()) {
    auto f = std::move(pushes_.front());
    pushes_.erase(pushes_.begin());
    return f;
  }
  auto r = conn_.read_response(timeout);
  if (!r) return r.error();
  if (r->resp->correlation_id() != 0 || r->resp->body_type() != ResponseBody::Delivery)
    return fail(errc::unknown,
                "expected a Delivery push, got correlation id " + std::to_string(r->resp->correlation_id()));
  return r;
}

std::pair<errc, std::string> raw_client::create_topic(std::string_view name, int32_t partitions) {
  auto r = call(create_topic_frame(next_cid(), name, partitions));
  if (!r) return {r.error().code, r.error().message};
  return {code_of(r->resp->error()), str(r->resp->error_message())};
}

std::pair<errc, std::string> raw_client::delete_topic(std::string_view name) {
  auto r = call(delete_topic_frame(next_cid(), name));
  if (!r) return {r.error().code, r.error().message};
  return {code_of(r->resp->error()), str(r->resp->error_message())};
}

describe_outcome raw_client::describe_topic(std::string_view name) {
  describe_outcome out;
  auto r = call(describe_topic_frame(next_cid(), name));
  if (!r) {
    out.error = r.error().code;
    out.message = r.error().message;
    return out;
  }
  out.error = code_of(r->resp->error());
  out.message = str(r->resp->error_message());
  if (out.error != errc::ok) return out;
  auto d = r->resp->body_as_DescribeTopicResponse();
  if (!d) {
    out.error = errc::unknown;
    out.message = "describe answered without a DescribeTopicResponse body";
    return out;
  }
  if (d->config()) out.partitions = d->config()->partitions();
  if (d->partitions()) {
    std::vector<const PartitionState*> ps(d->partitions()->begin(), d->partitions()->end());
    std::sort(ps.begin(), ps.end(), [](auto a, auto b) { return a->partition() < b->partition(); });
    for (auto p : ps) {
      out.high_watermarks.push_back(p->high_watermark());
      out.log_end_offsets.push_back(p->log_end_offset());
    }
    if (out.partitions == 0) out.partitions = static_cast<int32_t>(ps.size());
  }
  return out;
}

result<std::vector<std::string>> raw_client::list_topics() {
  auto r = call(list_topics_frame(next_cid()));
  if (!r) return r.error();
  if (r->resp->error() != ErrorCode::Ok) return fail(code_of(r->resp->error()), str(r->resp->error_message()));
  auto l = r->resp->body_as_ListTopicsResponse();
  if (!l) return fail(errc::unknown, "list answered without a ListTopicsResponse body");
  std::vector<std::string> names;
  if (l->topics())
    for (auto t : *l->topics()) names.push_back(str(t->name()));
  return names;
}

produce_outcome raw_client::produce(std::string_view topic, int32_t partition, std::span<const std::byte> batch) {
  produce_outcome out;
  auto r = call(produce_frame(next_cid(), topic, partition, batch));
  if (!r) {
    out.request_error = out.error = r.error().code;
    out.message = r.error().message;
    return out;
  }
  out.request_error = out.error = code_of(r->resp->error());
  out.message = str(r->resp->error_message());
  auto p = r->resp->body_as_ProduceResponse();
  if (out.request_error != errc::ok) return out;
  if (!p || !p->partitions() || p->partitions()->size() != 1) {
    out.error = errc::unknown;
    out.message = "produce answered without exactly one partition result";
    return out;
  }
  auto pr = p->partitions()->Get(0);
  out.error = code_of(pr->error());
  if (out.error != errc::ok || out.message.empty()) out.message = str(pr->error_message());
  out.base_offset = pr->base_offset();
  out.duplicate = pr->duplicate();
  return out;
}

result<std::vector<stored_record>> raw_client::read_all(std::string_view topic, int32_t partition, int64_t from) {
  std::vector<stored_record> all;
  int64_t next = from;
  for (int rounds = 0; rounds < 100000; ++rounds) {
    auto r = call(fetch_frame(next_cid(), topic, partition, next));
    if (!r) return r.error();
    if (r->resp->error() != ErrorCode::Ok) return fail(code_of(r->resp->error()), str(r->resp->error_message()));
    auto f = r->resp->body_as_FetchResponse();
    if (!f || !f->partitions() || f->partitions()->size() != 1)
      return fail(errc::unknown, "fetch answered without exactly one partition result");
    auto pr = f->partitions()->Get(0);
    if (pr->error() != ErrorCode::Ok) return fail(code_of(pr->error()), str(pr->error_message()));
    std::span<const std::byte> recs;
    if (pr->records())
      recs =
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(pr->records()->data()), pr->records()->size());
    auto decoded = decode_batches(recs, next);
    if (!decoded) return decoded.error();
    if (decoded->empty()) {
      if (pr->high_watermark() > next)
        return fail(errc::unknown, "fetch at " + std::to_string(next) +
                                       " returned no records below the high watermark " +
                                       std::to_string(pr->high_watermark()));
      return all;
    }
    next = decoded->back().offset + 1;
    for (auto& s : *decoded) all.push_back(std::move(s));
  }
  return fail(errc::unknown, "read_all did not reach the end of the log");
}

}  // namespace ferry::test
