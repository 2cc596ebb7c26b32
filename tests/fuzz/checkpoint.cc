// Fuzz target: restoring a subscription's state from its checkpoint and delivery journal
// (broker/subscription/dispatcher.h: restore, restore_deliveries), as a partition does on
// start-up with bytes read back from RocksDB (partition::add_subscription).
//
// Input: [u8 flags][u32 log start][u16 n][n bytes: the checkpoint], then delivery journal
// records, each [u8 length][bytes].
//   flags bit 0: after the journal, expire_below(log start), as start-up does after retention.
// The dispatcher runs against a partition_port that has no data (restore reads nothing).
// Checks: a checkpoint that restores encodes (checkpoint()) to bytes that restore again into the
// same state and encode to the same bytes.
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <vector>

#include "broker/base/assert.h"
#include "broker/subscription/dispatcher.h"
#include "tests/fuzz/empty_port.h"
#include "tests/fuzz/fuzz_input.h"

namespace sub = ferry::subscription;

namespace {

ferry::meta::subscription_record record() {
  ferry::meta::subscription_record r;
  r.topic = "fuzz";
  r.name = "s";
  r.id = 11;
  return r;
}

struct state {
  int64_t cursor, acked_above, dead_lettered, expired;
  bool operator==(const state&) const = default;
};
state state_of(const sub::dispatcher& d) {
  auto s = d.stats();
  return {s.cursor, s.acked_above_cursor, s.dead_lettered, s.expired};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  static ferry::fuzz::empty_port port;

  ferry::fuzz::input in(data, size);
  uint8_t flags = in.u8();
  int64_t log_start = in.u32();
  auto cp = in.bytes(in.u16());
  std::vector<std::string> journal;
  while (in.left() > 0) {
    auto r = in.bytes(in.u8());
    journal.emplace_back(reinterpret_cast<const char*>(r.data()), r.size());
  }

  sub::dispatcher d(port, record(), 0);
  auto applied = d.restore(std::string_view(reinterpret_cast<const char*>(cp.data()), cp.size()));
  if (!applied) return 0;
  for (const auto& j : journal)
    if (!d.restore_deliveries(j)) return 0;
  if (flags & 1) d.expire_below(log_start);

  std::string blob = d.checkpoint(*applied);
  sub::dispatcher d2(port, record(), 0);
  auto applied2 = d2.restore(blob);
  FERRY_ASSERT(applied2 && *applied2 == *applied, "a checkpoint the dispatcher wrote does not restore");
  FERRY_ASSERT(state_of(d2) == state_of(d), "a checkpoint round trip changed the state");
  FERRY_ASSERT(d2.checkpoint(*applied) == blob, "a checkpoint round trip changed the bytes");
  return 0;
}
