// reader: Fetch long polls on one partition, records decoded and copied out on the I/O thread.
// Control batches (wire::attr_control, written by the broker for subscriptions) are skipped.
#include <mutex>

#include "client/src/connection.h"
#include "client/src/topic_config.h"
#include "schema/record_batch.h"

namespace ferry::client {
namespace {

namespace w = ferry::wire;
using detail::io_runner;
using detail::make_request;

struct fetched {
  std::vector<received_message> messages;
  int64_t next_position;
  int64_t high_watermark;
};

// Decodes the whole batches in `records`, keeping records at or above `position` and skipping
// control batches (their offsets are consumed, never returned).
result<fetched> decode(std::span<const std::byte> records, const std::string& topic, int32_t partition,
                       int64_t position) {
  fetched out{{}, position, -1};
  size_t pos = 0;
  while (records.size() - pos >= w::batch_header_size) {
    auto rest = records.subspan(pos);
    auto h = w::parse_batch_header(rest);
    if (!h) return fail(errc::corrupt_batch, topic + "/" + std::to_string(partition) + ": " + h.error().message);
    auto len = static_cast<size_t>(h->batch_length);
    if (len > rest.size()) break;  // a partial batch at the end: fetch it again next time
    auto batch = rest.subspan(0, len);
    auto v = w::verify_batch(batch);
    if (!v)
      return fail(errc::corrupt_batch, topic + "/" + std::to_string(partition) + " at offset " +
                                           std::to_string(h->base_offset) + ": " + v.error().message);
    if ((h->attributes & w::attr_control) != 0) {
      // Broker-internal (subscription acks, dead-letter moves, seeks): not messages. Its offsets
      // are simply absent from what readers see.
      out.next_position = std::max(out.next_position, h->next_offset());
      pos += len;
      continue;
    }
    auto r = w::for_each_record(batch, [&](const w::record_view& rv) {
      if (rv.offset < position) return;
      received_message m;
      m.topic = topic;
      m.partition = partition;
      m.offset = rv.offset;
      m.timestamp_ms = rv.timestamp;
      m.append_time_ms = h->append_time;
      if (rv.key) m.key = std::string(*rv.key);
      if (rv.value) m.value = std::string(*rv.value);
      m.headers.reserve(rv.headers.size());
      for (const auto& hv : rv.headers) {
        header hd;
        hd.key = std::string(hv.key);
        if (hv.value) hd.value = std::string(*hv.value);
        m.headers.push_back(std::move(hd));
      }
      m.deliver_at_ms = rv.deliver_at;
      out.messages.push_back(std::move(m));
    });
    if (!r) return fail(errc::corrupt_batch, topic + "/" + std::to_string(partition) + ": " + r.error().message);
    out.next_position = std::max(out.next_position, h->next_offset());
    pos += len;
  }
  return out;
}

class reader_impl final : public reader {
 public:
  reader_impl(client_options opts, std::string topic, int32_t partition, int64_t offset)
      : io_(std::move(opts)), topic_(std::move(topic)), partition_(partition), position_(offset) {}

  result<void> resolve() {
    std::lock_guard lk(mu_);
    return resolve_locked();
  }

  result<void> resolve_locked() {
    if (position_ >= 0) return {};
    auto d = detail::describe(io_, topic_);
    if (!d) return d.error();
    for (const auto& p : d->partitions) {
      if (p.partition != partition_) continue;
      position_ = position_ == earliest ? p.log_start_offset : p.high_watermark;
      hwm_ = p.high_watermark;
      return {};
    }
    return fail(errc::unknown_partition, "topic '" + topic_ + "' has no partition " + std::to_string(partition_));
  }

  result<std::vector<received_message>> poll(std::chrono::milliseconds max_wait, size_t max_bytes) override {
    std::lock_guard lk(mu_);
    if (auto r = resolve_locked(); !r) return r.error();
    const int64_t position = position_;
    auto wait = std::clamp<int64_t>(max_wait.count(), 0, 30000);
    auto mb = static_cast<int32_t>(std::min<size_t>(std::max<size_t>(max_bytes, 1), 0x7fffffff));
    auto r = io_.call<fetched>(
        w::ResponseBody::FetchResponse,
        [&](flatbuffers::FlatBufferBuilder& fbb, uint64_t id) {
          auto name = fbb.CreateString(topic_);
          auto fp = w::CreateFetchPartition(fbb, partition_, position, mb);
          auto parts = fbb.CreateVector(&fp, 1);
          return make_request(fbb, id, w::CreateFetchRequest(fbb, name, parts, static_cast<int32_t>(wait), 1, mb));
        },
        [&](const w::Response& resp) -> result<fetched> {
          const auto* f = resp.body_as_FetchResponse();
          if (f->partitions() != nullptr) {
            for (const auto* p : *f->partitions()) {
              if (p->partition() != partition_) continue;
              if (p->error() != w::ErrorCode::Ok)
                return fail(w::from_wire(p->error()), p->error_message()
                                                          ? p->error_message()->str()
                                                          : "fetch " + topic_ + "/" + std::to_string(partition_) +
                                                                " at offset " + std::to_string(position));
              std::span<const std::byte> recs;
              if (p->records() != nullptr)
                recs = std::span(reinterpret_cast<const std::byte*>(p->records()->data()), p->records()->size());
              auto out = decode(recs, topic_, partition_, position);
              if (out) out->high_watermark = p->high_watermark();
              return out;
            }
          }
          return fail(errc::malformed_frame,
                      "fetch response has no result for " + topic_ + "/" + std::to_string(partition_));
        },
        std::chrono::milliseconds(wait));
    if (!r) return r.error();
    position_ = r->next_position;
    hwm_ = r->high_watermark;
    return std::move(r->messages);
  }

  int64_t position() const override {
    std::lock_guard lk(mu_);
    return position_;
  }
  void seek(int64_t offset) override {
    std::lock_guard lk(mu_);
    position_ = offset;
  }
  int64_t high_watermark() const override {
    std::lock_guard lk(mu_);
    return hwm_;
  }

 private:
  io_runner io_;
  mutable std::mutex mu_;
  std::string topic_;
  int32_t partition_;
  int64_t position_;  // earliest / latest until resolved
  int64_t hwm_ = -1;
};

}  // namespace

result<std::unique_ptr<reader>> reader::create(client_options opts, std::string topic, int32_t partition,
                                               int64_t offset) {
  if (auto hp = detail::split_host_port(opts.bootstrap); !hp) return hp.error();
  if (partition < 0) return fail(errc::invalid_argument, "partition " + std::to_string(partition) + " is negative");
  if (offset < earliest) return fail(errc::invalid_argument, "start offset " + std::to_string(offset) + " is invalid");
  auto r = std::make_unique<reader_impl>(std::move(opts), std::move(topic), partition, offset);
  // Resolve earliest/latest now, so "latest" means the end at create() time and a missing topic
  // or partition shows up here.
  if (auto ok = r->resolve(); !ok) return ok.error();
  return std::unique_ptr<reader>(std::move(r));
}

}  // namespace ferry::client
