// ferry-log-bench: the storage engine alone, no network.
//
// (1) raw baseline: 1 MiB (--group-bytes) chunks written with pwrite + fdatasync after each;
// (2) the log: batches of --batch-records records of --message-size bytes appended until a group
//     holds --group-bytes, then begin_sync/run_sync/end_sync (group commit), with preallocation on
//     and/or off. Prints MB/s, messages/s and the ratio of (2) to (1); --json FILE writes the same.
//
//   ferry-log-bench [--dir D] [--total-bytes N] [--seconds S] [--group-bytes N] [--message-size N]
//                   [--batch-records N] [--segment-bytes N] [--preallocate on|off|both] [--json FILE]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "broker/log/log.h"
#include "schema/record_batch.h"

namespace {

using clk = std::chrono::steady_clock;

struct options {
  std::string dir = "/tmp/ferry-log-bench-" + std::to_string(::getpid());
  uint64_t total_bytes = 2ull << 30;
  double seconds = 10;
  uint64_t group_bytes = 1 << 20;
  size_t message_size = 100;
  int batch_records = 1000;
  uint64_t segment_bytes = 128ull << 20;
  std::string preallocate = "both";
  std::string json;
};

struct outcome {
  std::string name;
  uint64_t bytes = 0;
  uint64_t messages = 0;
  uint64_t syncs = 0;
  double secs = 0;
  double mb_s() const { return bytes / secs / 1e6; }
  double msg_s() const { return messages / secs; }
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr, "ferry-log-bench: %s\n", msg);
  std::fprintf(
      stderr,
      "usage: ferry-log-bench [--dir D] [--total-bytes N] [--seconds S] [--group-bytes N] [--message-size N]\n"
      "                       [--batch-records N] [--segment-bytes N] [--preallocate on|off|both] [--json FILE]\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") usage("help");
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    try {
      if (a == "--dir")
        o.dir = v;
      else if (a == "--total-bytes")
        o.total_bytes = std::stoull(v);
      else if (a == "--seconds")
        o.seconds = std::stod(v);
      else if (a == "--group-bytes")
        o.group_bytes = std::stoull(v);
      else if (a == "--message-size")
        o.message_size = std::stoul(v);
      else if (a == "--batch-records")
        o.batch_records = std::stoi(v);
      else if (a == "--segment-bytes")
        o.segment_bytes = std::stoull(v);
      else if (a == "--preallocate")
        o.preallocate = v;
      else if (a == "--json")
        o.json = v;
      else
        usage(("unknown option " + a).c_str());
    } catch (const std::exception&) {
      usage(("bad value for " + a).c_str());
    }
  }
  if (o.preallocate != "on" && o.preallocate != "off" && o.preallocate != "both") usage("--preallocate on|off|both");
  if (o.batch_records <= 0 || o.group_bytes == 0) usage("sizes must be positive");
  return o;
}

double since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

outcome raw_baseline(const options& o, bool prealloc) {
  outcome r;
  r.name = prealloc ? "raw_preallocated" : "raw";
  auto path = std::filesystem::path(o.dir) / "raw.dat";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror("open raw.dat");
    std::exit(1);
  }
  uint64_t file_bytes = o.segment_bytes;
  std::vector<char> chunk(o.group_bytes, 'x');
  uint64_t pos = 0;
  if (prealloc && ::fallocate(fd, 0, 0, static_cast<off_t>(file_bytes)) != 0) std::perror("fallocate");
  auto t0 = clk::now();
  while (r.bytes < o.total_bytes && since(t0) < o.seconds) {
    // Rotate like the log does, so both write the same kind of files.
    if (pos + chunk.size() > file_bytes) {
      ::close(fd);
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (prealloc) (void)::fallocate(fd, 0, 0, static_cast<off_t>(file_bytes));
      pos = 0;
    }
    if (::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(pos)) != static_cast<ssize_t>(chunk.size())) {
      std::perror("pwrite");
      std::exit(1);
    }
    if (::fdatasync(fd) != 0) {
      std::perror("fdatasync");
      std::exit(1);
    }
    pos += chunk.size();
    r.bytes += chunk.size();
    r.syncs++;
  }
  r.secs = since(t0);
  ::close(fd);
  std::filesystem::remove(path);
  return r;
}

outcome log_run(const options& o, bool prealloc) {
  outcome r;
  r.name = prealloc ? "log_preallocate_on" : "log_preallocate_off";
  auto dir = std::filesystem::path(o.dir) / r.name;
  std::filesystem::remove_all(dir);
  ferry::log::log_config cfg;
  cfg.dir = dir;
  cfg.segment_bytes = o.segment_bytes;
  cfg.preallocate = prealloc;
  auto lg = ferry::log::partition_log::open(cfg);
  if (!lg) {
    std::fprintf(stderr, "open: %s\n", lg.error().to_string().c_str());
    std::exit(1);
  }
  auto& log = **lg;
  ferry::wire::batch_builder b;
  std::string value(o.message_size, 'v');
  for (int i = 0; i < o.batch_records; ++i) b.add(std::nullopt, std::string_view(value), {}, 1'700'000'000'000 + i);
  auto built = b.finish(-1, 0, -1);
  std::vector<std::byte> batch(built.begin(), built.end());

  auto t0 = clk::now();
  uint64_t in_group = 0;
  while (r.bytes < o.total_bytes && since(t0) < o.seconds) {
    auto a = log.append(batch, ferry::epoch{1});
    if (!a) {
      std::fprintf(stderr, "append: %s\n", a.error().to_string().c_str());
      std::exit(1);
    }
    r.bytes += batch.size();
    r.messages += static_cast<uint64_t>(o.batch_records);
    in_group += batch.size();
    if (in_group >= o.group_bytes) {
      auto s = log.begin_sync();
      auto rs = ferry::log::partition_log::run_sync(s);
      log.end_sync(s, rs);
      if (!rs) {
        std::fprintf(stderr, "sync: %s\n", rs.error().to_string().c_str());
        std::exit(1);
      }
      r.syncs++;
      in_group = 0;
    }
  }
  auto s = log.begin_sync();
  auto rs = ferry::log::partition_log::run_sync(s);
  log.end_sync(s, rs);
  r.secs = since(t0);
  if (log.durable_offset() != log.next_offset()) std::fprintf(stderr, "warning: not everything durable\n");
  (void)log.close();
  lg->reset();
  std::filesystem::remove_all(dir);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  std::filesystem::create_directories(o.dir);
  std::vector<outcome> results;
  std::printf("ferry-log-bench: dir %s, group %llu bytes, %zu-byte messages, %d per batch, segment %llu bytes\n",
              o.dir.c_str(), static_cast<unsigned long long>(o.group_bytes), o.message_size, o.batch_records,
              static_cast<unsigned long long>(o.segment_bytes));
  outcome raw = raw_baseline(o, false);
  results.push_back(raw);
  results.push_back(raw_baseline(o, true));
  if (o.preallocate != "on") results.push_back(log_run(o, false));
  if (o.preallocate != "off") results.push_back(log_run(o, true));
  for (auto& r : results) {
    std::printf("%-22s %9.1f MB/s %12.0f msg/s %7.0f syncs/s  %6.3f of raw  (%llu bytes in %.2f s)\n", r.name.c_str(),
                r.mb_s(), r.msg_s(), r.syncs / r.secs, r.mb_s() / raw.mb_s(), static_cast<unsigned long long>(r.bytes),
                r.secs);
  }
  if (!o.json.empty()) {
    FILE* f = std::fopen(o.json.c_str(), "w");
    if (!f) {
      std::perror("json");
      return 1;
    }
    std::fprintf(f,
                 "{\n  \"group_bytes\": %llu, \"message_size\": %zu, \"batch_records\": %d, \"segment_bytes\": %llu,\n",
                 static_cast<unsigned long long>(o.group_bytes), o.message_size, o.batch_records,
                 static_cast<unsigned long long>(o.segment_bytes));
    std::fprintf(f, "  \"results\": [\n");
    for (size_t i = 0; i < results.size(); ++i) {
      auto& r = results[i];
      std::fprintf(
          f,
          "    {\"name\": \"%s\", \"bytes\": %llu, \"seconds\": %.4f, \"mb_per_s\": %.2f, \"messages_per_s\": %.0f, "
          "\"syncs\": %llu, \"ratio_to_raw\": %.4f}%s\n",
          r.name.c_str(), static_cast<unsigned long long>(r.bytes), r.secs, r.mb_s(), r.msg_s(),
          static_cast<unsigned long long>(r.syncs), r.mb_s() / raw.mb_s(), i + 1 < results.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
  }
  std::filesystem::remove_all(o.dir);
  return 0;
}
