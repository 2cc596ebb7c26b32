#include "broker/protocol/delayed.h"

#include <algorithm>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "broker/runtime/runtime.h"

namespace ferry::protocol {

namespace {

// partition::cancel on the partition's shard; resumes the caller with the outcome.
auto cancel_on(runtime::shard_set* rt, std::shared_ptr<partition::partition> p, int64_t offset) {
  auto ex = rt->executor(p->owner());
  auto start = [p = std::move(p), offset](std::function<void(result<partition::cancel_result>)> done) {
    p->cancel(offset, std::move(done));
  };
  return runtime::start_on<result<partition::cancel_result>>(ex, std::move(start));
}

struct index_view {
  delay::delay_index* index = nullptr;
  delay::partition_key key;
  int64_t pending = 0;
  int64_t next_due_memory = -1;
  size_t loaded = 0;
};

asio::awaitable<index_view> view_of(runtime::shard_set* rt, std::shared_ptr<partition::partition> p) {
  auto fn = [p] {
    index_view v;
    if (auto* d = p->delays()) {
      v.index = &d->index();
      v.key = d->key();
      v.pending = d->pending();
      v.next_due_memory = d->next_due_in_memory();
      v.loaded = d->loaded();
    }
    return v;
  };
  co_return co_await runtime::run_on(rt->executor(p->owner()), std::move(fn));
}

}  // namespace

asio::awaitable<delayed_summary> delayed_summary_of(runtime::shard_set* rt, std::shared_ptr<partition::partition> p) {
  auto v = co_await view_of(rt, p);
  delayed_summary s;
  s.pending = std::max<int64_t>(0, v.pending);
  s.next_due = v.next_due_memory;
  if (v.index != nullptr && v.pending > static_cast<int64_t>(v.loaded)) {
    // Some wait in the index only: its first key may be earlier than what memory holds.
    auto first = [idx = v.index, key = v.key] { return idx->load(key, INT64_MIN, -1, INT64_MAX, 1, 1 << 20); };
    auto got = co_await runtime::on_disk(rt->disk(), std::move(first));
    if (got && !got->empty() && (s.next_due < 0 || got->front().due < s.next_due)) s.next_due = got->front().due;
  }
  co_return s;
}

asio::awaitable<body_result> do_cancel(runtime::shard_set* rt, topics::topic_manager* topics,
                                       const topics::router* routes, fbb_t* fbb, const w::CancelRequest* req) {
  auto name = str(req->topic());
  auto t = topics->find(name);
  if (!t) co_return no_topic(name);
  int32_t part = req->partition();
  auto routed = routes->route(*t, part);
  if (!routed) co_return failed(routed.error());
  if (req->offset() < 0)
    co_return failed(errc::invalid_argument, "offset must be >= 0, got " + std::to_string(req->offset()));
  auto p = *std::move(routed);
  auto r = co_await cancel_on(rt, p, req->offset());
  if (!r) co_return failed(r.error());
  w::CancelOutcome o = r->outcome == partition::cancel_outcome::cancelled  ? w::CancelOutcome::Cancelled
                       : r->outcome == partition::cancel_outcome::too_late ? w::CancelOutcome::TooLate
                                                                           : w::CancelOutcome::Unknown;
  auto tn = fbb->CreateString(name);
  auto msg = fbb->CreateString(r->message);
  co_return ok_body(w::ResponseBody::CancelResponse, w::CreateCancelResponse(*fbb, tn, part, req->offset(), o, msg));
}

asio::awaitable<body_result> do_list_delayed(runtime::shard_set* rt, topics::topic_manager* topics, fbb_t* fbb,
                                             const w::ListDelayedRequest* req) {
  auto name = str(req->topic());
  auto t = topics->find(name);
  if (!t) co_return no_topic(name);
  int32_t only = req->partition();
  if (only < -1 || only >= static_cast<int32_t>(t->partitions.size()))
    co_return failed(errc::unknown_partition, topics::no_partition_message(name, only, t->partitions.size()));
  int32_t limit = req->limit();
  if (limit < 1 || limit > 10000)
    co_return failed(errc::invalid_argument, "limit must be between 1 and 10000, got " + std::to_string(limit));
  int64_t before = req->before_time() < 0 ? INT64_MAX : req->before_time();
  struct item {
    int32_t partition;
    delay::pending_message m;
  };
  std::vector<item> all;
  int64_t pending = 0;
  for (auto& p : t->partitions) {
    if (only != -1 && p->id().value != only) continue;
    auto v = co_await view_of(rt, p);
    pending += std::max<int64_t>(0, v.pending);
    if (v.index == nullptr) continue;
    // The index has every pending message (it is written shortly after each becomes durable).
    auto load = [idx = v.index, key = v.key, before, limit] {
      return idx->load(key, INT64_MIN, -1, before, static_cast<size_t>(limit), 64u << 20);
    };
    auto got = co_await runtime::on_disk(rt->disk(), std::move(load));
    if (!got) co_return failed(got.error());
    for (auto& m : *got) all.push_back(item{p->id().value, std::move(m)});
  }
  std::sort(all.begin(), all.end(), [](const item& a, const item& b) {
    return a.m.due != b.m.due           ? a.m.due < b.m.due
           : a.partition != b.partition ? a.partition < b.partition
                                        : a.m.offset < b.m.offset;
  });
  if (all.size() > static_cast<size_t>(limit)) all.resize(static_cast<size_t>(limit));
  std::vector<fb_offset<w::DelayedMessage>> out;
  for (auto& it : all) {
    fb_offset<flatbuffers::Vector<uint8_t>> key;
    if (it.m.key) key = fbb->CreateVector(reinterpret_cast<const uint8_t*>(it.m.key->data()), it.m.key->size());
    int32_t vb = it.m.value ? static_cast<int32_t>(it.m.value->size()) : 0;
    out.push_back(w::CreateDelayedMessage(*fbb, it.partition, it.m.offset, it.m.due, it.m.append_time, key, vb));
  }
  auto tn = fbb->CreateString(name);
  auto ov = fbb->CreateVector(out);
  co_return ok_body(w::ResponseBody::ListDelayedResponse, w::CreateListDelayedResponse(*fbb, tn, ov, pending));
}

}  // namespace ferry::protocol
