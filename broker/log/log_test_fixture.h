#pragma once
// Shared by the broker/log unit tests: a temp-folder fixture that opens logs, appends batches and
// remembers their stamped bytes, plus file helpers. Tests use the real disk.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "broker/base/failpoint.h"
#include "broker/log/faulty_file.h"
#include "broker/log/log.h"

namespace ferry::log::test {

namespace fs = std::filesystem;
using bytes = std::vector<std::byte>;

inline bytes make_batch(int records, size_t value_size, int64_t ts) {
  wire::batch_builder b;
  std::string v(value_size, 'x');
  for (int i = 0; i < records; ++i) {
    v[0] = static_cast<char>('a' + i % 26);
    b.add(std::string_view("k"), std::string_view(v), {}, ts + i);
  }
  auto s = b.finish(-1, 0, -1);
  return bytes(s.begin(), s.end());
}

inline std::string seg_name(int64_t base, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020lld", static_cast<long long>(base));
  return std::string(buf) + ext;
}

inline bytes read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

inline void write_file(const fs::path& p, const bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

inline void flip_byte(const fs::path& p, uint64_t pos) {
  int fd = ::open(p.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  unsigned char c;
  ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(pos)), 1);
  c ^= 0x5a;
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(pos)), 1);
  ::close(fd);
}

inline result<append_info> append_copy(partition_log& l, bytes b) { return l.append(b, epoch{7}); }

class log_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-log-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    failpoint::disarm_all();
  }
  void TearDown() override {
    failpoint::disarm_all();
    fs::remove_all(dir_);
  }

  log_config config(uint64_t segment_bytes = 4096, bool prealloc = false) {
    log_config c;
    c.dir = dir_ / "p0";
    c.segment_bytes = segment_bytes;
    c.index_interval_bytes = 256;
    c.preallocate = prealloc;
    c.clk = &clk_;
    return c;
  }

  std::unique_ptr<partition_log> open(const log_config& c) {
    auto r = partition_log::open(c);
    EXPECT_TRUE(r) << (r ? "" : r.error().to_string());
    return r ? std::move(*r) : nullptr;
  }

  // Appends a batch and remembers its stamped bytes (what reads must return).
  append_info append(partition_log& l, int records = 3, size_t value_size = 40, int64_t ts = -1) {
    auto b = make_batch(records, value_size, ts < 0 ? clk_.now_ms() : ts);
    auto r = l.append(b, epoch{7});
    EXPECT_TRUE(r) << (r ? "" : r.error().to_string());
    stored_.push_back(b);
    return r ? *r : append_info{};
  }

  bytes expected_from(size_t first_batch) const {
    bytes all;
    for (size_t i = first_batch; i < stored_.size(); ++i) all.insert(all.end(), stored_[i].begin(), stored_[i].end());
    return all;
  }

  bytes read_all(partition_log& l, offset from) {
    bytes out;
    auto r = l.read(from, SIZE_MAX, l.next_offset(), out);
    EXPECT_TRUE(r) << (r ? "" : r.error().to_string());
    return out;
  }

  void sync(partition_log& l) {
    auto s = l.begin_sync();
    auto r = partition_log::run_sync(s);
    l.end_sync(s, r);
    ASSERT_TRUE(r) << r.error().to_string();
  }

  // ---- helpers for damage tests (stored_ holds every batch appended, in order) ----

  int64_t base_of(size_t batch) const {
    int64_t base = 0;
    for (size_t i = 0; i < batch; ++i) base += wire::parse_batch_header(stored_[i])->record_count;
    return base;
  }
  int64_t end_offset() const { return base_of(stored_.size()); }

  // Where batch `batch` lies on disk, given the log's segments.
  struct place {
    fs::path seg;
    uint64_t pos = 0;
    int64_t base = 0;
  };
  place place_of(const log_config& c, const std::vector<segment_info>& segs, size_t batch) const {
    place p;
    p.base = base_of(batch);
    size_t si = 0;
    while (si + 1 < segs.size() && segs[si + 1].base.value <= p.base) ++si;
    p.seg = c.dir / seg_name(segs[si].base.value, ".log");
    int64_t b = 0;
    for (size_t i = 0; i < batch; ++i) {
      if (b >= segs[si].base.value) p.pos += stored_[i].size();
      b += wire::parse_batch_header(stored_[i])->record_count;
    }
    return p;
  }

  // The stored bytes of every batch that lies entirely below offset `at`.
  bytes expected_below(int64_t at) const {
    bytes all;
    int64_t b = 0;
    for (const auto& s : stored_) {
      b += wire::parse_batch_header(s)->record_count;
      if (b > at) break;
      all.insert(all.end(), s.begin(), s.end());
    }
    return all;
  }

  // Every .log file of the folder, by name.
  std::map<std::string, bytes> data_files(const fs::path& d) const {
    std::map<std::string, bytes> m;
    for (auto& e : fs::directory_iterator(d))
      if (e.path().extension() == ".log") m[e.path().filename().string()] = read_file(e.path());
    return m;
  }

  fs::path dir_;
  manual_clock clk_;
  std::vector<bytes> stored_;
};

}  // namespace ferry::log::test
