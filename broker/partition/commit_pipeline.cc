#include "broker/partition/commit_pipeline.h"

#include <algorithm>

#include "broker/base/assert.h"
#include "broker/log/log.h"

namespace ferry::partition {

commit_pipeline::commit_pipeline(offset initial_hwm, visibility v, std::function<void(offset)> publish)
    : vis_(v), publish_(std::move(publish)), committed_(initial_hwm), hwm_(initial_hwm) {}

void commit_pipeline::add(state_machine& m) {
  if (std::find(machines_.begin(), machines_.end(), &m) == machines_.end()) machines_.push_back(&m);
}

void commit_pipeline::remove(state_machine& m) { std::erase(machines_, &m); }

bool commit_pipeline::wanted(const wire::batch_header& h, batch_hint hint) const {
  for (auto* m : machines_)
    if (m->wants(h, hint)) return true;
  return false;
}

void commit_pipeline::appended(const wire::batch_header& h, std::span<const std::byte> batch, batch_hint hint) {
  if (wanted(h, hint)) pending_.push_back(pending{h, hint, std::vector<std::byte>(batch.begin(), batch.end())});
  if (vis_ == visibility::appended) set_hwm(offset{h.next_offset()});
}

void commit_pipeline::appended(const wire::batch_header& h, std::vector<std::byte>&& batch, batch_hint hint) {
  if (wanted(h, hint)) pending_.push_back(pending{h, hint, std::move(batch)});
  if (vis_ == visibility::appended) set_hwm(offset{h.next_offset()});
}

void commit_pipeline::commit(offset c) {
  if (c <= committed_) return;
  while (!pending_.empty() && pending_.front().h.last_offset() < c.value) {
    // Popped before applying: a machine's apply may append (and queue) further batches.
    pending p = std::move(pending_.front());
    pending_.pop_front();
    for (auto* m : machines_)
      if (m->wants(p.h, p.hint)) m->apply(p.h, p.bytes);
  }
  committed_ = c;
  for (auto* m : machines_) m->committed(c);
  if (vis_ == visibility::committed) set_hwm(c);
}

void commit_pipeline::discard_from(offset from) {
  while (!pending_.empty() && pending_.back().h.base_offset >= from.value) pending_.pop_back();
}

void commit_pipeline::set_hwm(offset o) {
  if (o <= hwm_) return;
  hwm_ = o;
  if (publish_) publish_(o);
}

void commit_pipeline::for_each_pending(const std::function<void(const wire::batch_header&, batch_hint)>& fn) const {
  for (const auto& p : pending_) fn(p.h, p.hint);
}

result<void> commit_pipeline::replay(log::partition_log& log, state_machine& m, offset from, offset to) {
  from = std::max(from, log.start_offset());
  if (from >= to) return {};
  // The headers say which batches the machine wants; runs of consecutive wanted batches are read
  // in one go (up to 1 MiB), so a machine that wants little reads little.
  struct run {
    int64_t base, next;
  };
  std::vector<run> runs;
  auto walk = log.for_each_batch_header(from, [&](const wire::batch_header& h) {
    // The first batch may begin below `from` (it contains it): only whole batches from `from` on.
    if (h.base_offset < from.value || h.base_offset >= to.value) return;
    if (!m.wants(h, batch_hint::maybe_delays)) return;
    if (!runs.empty() && runs.back().next == h.base_offset)
      runs.back().next = h.next_offset();
    else
      runs.push_back(run{h.base_offset, h.next_offset()});
  });
  if (!walk) return walk.error();
  std::vector<std::byte> buf;
  for (const auto& r : runs) {
    int64_t pos = r.base;
    while (pos < r.next) {
      const int64_t before = pos;
      buf.clear();
      if (auto rd = log.read(offset{pos}, 1u << 20, offset{r.next}, buf); !rd) return rd.error();
      if (buf.empty()) return fail(errc::corrupt_batch, "replay: no batch at offset " + std::to_string(pos));
      size_t at = 0;
      while (at + wire::batch_header_size <= buf.size()) {
        auto h = wire::parse_batch_header(std::span<const std::byte>(buf).subspan(at));
        if (!h || at + static_cast<size_t>(h->batch_length) > buf.size()) break;
        auto bytes = std::span<const std::byte>(buf).subspan(at, static_cast<size_t>(h->batch_length));
        at += static_cast<size_t>(h->batch_length);
        if (h->base_offset >= pos) {
          m.apply(*h, bytes);
          pos = h->next_offset();
        }
      }
      if (pos == before) return fail(errc::corrupt_batch, "replay: no batch starts at offset " + std::to_string(pos));
    }
  }
  return {};
}

}  // namespace ferry::partition
