// The append path allocates nothing in steady state (the broker appends ~500 batches/s per
// partition on a shared core). A separate binary because it replaces the global operator new.
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include "broker/log/log.h"

namespace {
std::atomic<long> g_allocations{0};
}

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace ferry::log {
namespace {

TEST(log_alloc_test, steady_state_append_does_not_allocate_and_a_sync_allocates_a_few_times) {
  char tmpl[] = "/tmp/ferry-log-alloc-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::filesystem::path dir = tmpl;
  manual_clock clk;
  {
    log_config c;
    c.dir = dir / "p0";
    c.segment_bytes = 8 << 20;
    c.clk = &clk;
    auto l = partition_log::open(c);
    ASSERT_TRUE(l);
    wire::batch_builder b;
    std::string v(100, 'v');
    for (int i = 0; i < 100; ++i) b.add(std::nullopt, std::string_view(v), {}, 1);
    auto s = b.finish(-1, 0, -1);
    std::vector<std::byte> batch(s.begin(), s.end());
    for (int i = 0; i < 10; ++i) ASSERT_TRUE((*l)->append(batch, epoch{1}));
    long before = g_allocations.load();
    for (int i = 0; i < 500; ++i) ASSERT_TRUE((*l)->append(batch, epoch{1}));
    EXPECT_EQ(g_allocations.load() - before, 0);
    before = g_allocations.load();
    auto ps = (*l)->begin_sync();
    auto r = partition_log::run_sync(ps);
    (*l)->end_sync(ps, r);
    ASSERT_TRUE(r);
    EXPECT_LE(g_allocations.load() - before, 4);  // the file list of the pending sync
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::log
