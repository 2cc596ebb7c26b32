// Fuzz target: start-up recovery of a partition log (broker/log/log.h, schema/segment.md) from
// arbitrary file bytes: torn tails, damaged batches, wrong offsets, bad or missing index files.
//
// Input: [u8 flags], then by flags:
//   bit 0 (two segments): [u32 length of the first segment's data][u64 the second segment's base]
//   bit 1 (index files for the first segment): [u16 .index length][u16 .timeindex length]
//   bit 2 (first base offset): [u64 the first segment's base] (else 0)
//   (both bases are taken modulo 2^63: any name a folder can hold)
//   bits 4-6: the log's index interval, 16 << n bytes;
// then the .index and .timeindex bytes, then the data: the first segment's, then the second's.
// The files go into a fresh folder under $TMPDIR (default /dev/shm, so the fsyncs cost nothing).
//
// Checks, when partition_log::open accepts the folder: every batch from the start to the log end
// reads back whole, CRC-valid and at consecutive offsets (or the read reports corrupt_batch);
// for_each_batch_header walks the same batches; and, if all of it read, recovery is idempotent
// (close and reopen give the same offsets and bytes) and the log takes, syncs and keeps one more
// batch across another reopen.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "broker/base/assert.h"
#include "broker/base/clock.h"
#include "broker/log/log.h"
#include "tests/fuzz/fuzz_input.h"

namespace fs = std::filesystem;
namespace w = ferry::wire;
using ferry::offset;
using ferry::log::partition_log;

namespace {

// Any non-negative base: the log refuses names beyond 2^62 as damage (tests/fuzz/README.md,
// "Findings").
constexpr uint64_t max_base = (uint64_t{1} << 63) - 1;

const fs::path& root() {
  static const fs::path r = [] {
    fs::path base = "/dev/shm";
    if (const char* t = std::getenv("TMPDIR"); t && *t) base = t;
    std::error_code ec;
    if (!fs::is_directory(base, ec)) base = fs::temp_directory_path();
    auto p = base / ("ferry-fuzz-segment-" + std::to_string(::getpid()));
    fs::create_directories(p);
    std::atexit([] { std::filesystem::remove_all(root()); });
    return p;
  }();
  return r;
}

std::string segment_name(int64_t base, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020lld", static_cast<long long>(base));
  return std::string(buf) + ext;
}

void write_file(const fs::path& p, std::span<const std::byte> bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  FERRY_ASSERT(f.good(), "cannot write a fuzz input file");
}

struct contents {
  int64_t start = 0;
  int64_t next = 0;
  bool complete = false;  // every batch read (no corrupt_batch on the way)
  size_t batches = 0;
  std::vector<std::byte> bytes;
};

contents read_all(partition_log& log) {
  contents c;
  c.start = log.start_offset().value;
  c.next = log.next_offset().value;
  FERRY_ASSERT(c.start <= c.next, "log start above its end");
  int64_t off = c.start;
  std::vector<std::byte> out;
  while (off < c.next) {
    out.clear();
    auto r = log.read(offset{off}, 16 << 10, offset{c.next}, out);
    if (!r) {
      FERRY_ASSERT(r.error().code == ferry::errc::corrupt_batch, "read failed other than with corrupt_batch");
      return c;
    }
    FERRY_ASSERT(!out.empty(), "read returned nothing below the log end");
    size_t pos = 0;
    while (pos < out.size()) {
      auto rest = std::span<const std::byte>(out).subspan(pos);
      auto h = w::parse_batch_header(rest);
      FERRY_ASSERT(h, "read returned a batch whose header does not parse");
      auto len = static_cast<size_t>(h->batch_length);
      FERRY_ASSERT(len <= rest.size(), "read returned part of a batch");
      FERRY_ASSERT(w::compute_batch_crc(rest.first(len)) == h->crc, "read returned a batch with a bad CRC");
      FERRY_ASSERT(h->base_offset == off, "read returned batches at non-consecutive offsets");
      FERRY_ASSERT(h->last_offset() < c.next, "read returned a batch past the log end");
      off = h->next_offset();
      pos += len;
      ++c.batches;
    }
    c.bytes.insert(c.bytes.end(), out.begin(), out.end());
  }
  c.complete = true;
  return c;
}

ferry::log::log_config config(const fs::path& dir, uint32_t interval, const ferry::clock& clk) {
  ferry::log::log_config cfg;
  cfg.dir = dir;
  cfg.segment_bytes = 1 << 20;
  cfg.index_interval_bytes = interval;
  cfg.preallocate = false;
  cfg.clk = &clk;
  return cfg;
}

void check(const fs::path& dir, uint32_t interval) {
  static const ferry::manual_clock clk;
  auto log = partition_log::open(config(dir, interval, clk));
  if (!log) return;
  auto first = read_all(**log);
  size_t headers = 0;
  auto fe = (*log)->for_each_batch_header(offset{first.start}, [&](const w::batch_header& h) {
    ++headers;
    FERRY_ASSERT(h.batch_length >= static_cast<int32_t>(w::batch_header_size), "header walk gave a short batch");
  });
  if (first.complete) FERRY_ASSERT(fe && headers == first.batches, "header walk and reads disagree");
  for (int64_t ts : {INT64_MIN, int64_t{0}, int64_t{1'700'000'000'000}, INT64_MAX}) {
    auto o = (*log)->offset_for_timestamp(ts);
    if (o) FERRY_ASSERT(o->value >= first.start && o->value <= first.next, "offset_for_timestamp outside the log");
  }
  if (!first.complete) return;

  // Recovery is idempotent: what one open recovered, the next open finds unchanged.
  FERRY_ASSERT((*log)->close(), "closing a recovered log failed");
  log->reset();
  log = partition_log::open(config(dir, interval, clk));
  FERRY_ASSERT(log, "a log that recovered once does not open again");
  auto second = read_all(**log);
  FERRY_ASSERT(second.start == first.start && second.next == first.next && second.bytes == first.bytes,
               "reopening a recovered log changed it");

  // And it takes new data: one more batch, synced, survives a reopen.
  w::batch_builder b;
  b.add(std::string_view("k"), std::string_view("after recovery"), {}, 1);
  auto built = b.finish(-1, 0, -1);
  std::vector<std::byte> batch(built.begin(), built.end());
  auto a = (*log)->append(batch, ferry::epoch{1});
  if (!a) return;  // e.g. relative offsets past 32 bits in one segment
  FERRY_ASSERT(a->base.value == first.next, "append after recovery got another offset than the log end");
  auto ps = (*log)->begin_sync();
  auto sr = partition_log::run_sync(ps);
  (*log)->end_sync(ps, sr);
  FERRY_ASSERT(sr && (*log)->close(), "syncing after recovery failed");
  log->reset();
  log = partition_log::open(config(dir, interval, clk));
  FERRY_ASSERT(log && (*log)->next_offset().value == first.next + 1, "the batch appended after recovery is lost");
  std::vector<std::byte> out;
  FERRY_ASSERT((*log)->read(offset{first.next}, 1 << 20, offset{first.next + 1}, out), "cannot read the new batch");
  FERRY_ASSERT(w::verify_batch(out), "the batch appended after recovery does not verify");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;

  ferry::fuzz::input in(data, size);
  uint8_t flags = in.u8();
  bool two = flags & 1;
  bool index = flags & 2;
  uint32_t first_len = two ? in.u32() : 0;
  auto base2 = two ? static_cast<int64_t>(in.u64() & max_base) : 0;
  uint16_t ilen = index ? in.u16() : 0;
  uint16_t tlen = index ? in.u16() : 0;
  auto base1 = (flags & 4) ? static_cast<int64_t>(in.u64() & max_base) : 0;
  uint32_t interval = 16u << ((flags >> 4) & 7);
  auto idx = in.bytes(ilen);
  auto tidx = in.bytes(tlen);
  auto data1 = in.bytes(two ? first_len : in.left());
  auto data2 = in.rest();

  fs::path dir = root() / "p";
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_file(dir / segment_name(base1, ".log"), data1);
  if (index) {
    write_file(dir / segment_name(base1, ".index"), idx);
    write_file(dir / segment_name(base1, ".timeindex"), tidx);
  }
  if (two && base2 != base1) write_file(dir / segment_name(base2, ".log"), data2);
  check(dir, interval);
  fs::remove_all(dir);
  return 0;
}
