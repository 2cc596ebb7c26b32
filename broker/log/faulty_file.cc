#include "broker/log/faulty_file.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace ferry::log {
namespace {

error make_fault(faulty_files::fault f, std::string_view what, const std::filesystem::path& p) {
  switch (f) {
    case faulty_files::fault::disk_full:
      return fail(errc::disk_full, std::string(what) + " '" + p.string() + "': No space left on device (injected)");
    case faulty_files::fault::too_many_files:
      return fail(errc::storage_error, std::string(what) + " '" + p.string() + "': Too many open files (injected)");
    case faulty_files::fault::io_error:
      break;
  }
  return fail(errc::storage_error, std::string(what) + " '" + p.string() + "': Input/output error (injected)");
}

// One spelling per path, so that a file's folder compares equal to the path given to sync_dir.
std::string key(const std::filesystem::path& p) {
  auto n = p.lexically_normal();
  if (!n.has_filename() && n.has_parent_path()) n = n.parent_path();
  return n.string();
}
std::string parent_key(const std::filesystem::path& p) { return key(std::filesystem::path(key(p)).parent_path()); }

class faulty_file final : public file {
 public:
  faulty_file(faulty_files& owner, std::shared_ptr<file> real, std::string k)
      : owner_(owner), real_(std::move(real)), key_(std::move(k)) {}

  result<void> pwrite_all(std::span<const std::byte> data, uint64_t pos) override {
    faulty_files::fault f;
    if (owner_.take_fault(faulty_files::op::write, key_, f)) {
      auto half = data.first(data.size() / 2);
      if (!half.empty()) {
        save_old_sectors(pos, half.size());
        auto r = real_->pwrite_all(half, pos);
        if (r) note_write(pos + half.size());
      }
      return make_fault(f, "write", key_);
    }
    save_old_sectors(pos, data.size());
    auto r = real_->pwrite_all(data, pos);
    if (r) note_write(pos + data.size());
    return r;
  }

  result<size_t> pread(std::span<std::byte> out, uint64_t pos) override { return real_->pread(out, pos); }

  result<void> datasync() override {
    faulty_files::fault f;
    if (owner_.take_fault(faulty_files::op::sync, key_, f)) return make_fault(f, "fdatasync", key_);
    auto size = real_->size();
    auto r = real_->datasync();
    if (!r) return r;
    std::lock_guard lk(owner_.mu_);
    auto& s = owner_.states_[key_];
    s.synced_end = s.written_end;
    if (size) s.synced_size = *size;
    s.old_sectors.clear();
    ++owner_.datasyncs_;
    return {};
  }

  result<void> truncate(uint64_t size) override {
    faulty_files::fault f;
    if (owner_.take_fault(faulty_files::op::truncate, key_, f)) return make_fault(f, "truncate", key_);
    // A cut is a change too: what it removes may come back (as old contents) in a sector crash.
    if (auto cur = real_->size(); cur && *cur > size) save_old_sectors(size, *cur - size);
    auto r = real_->truncate(size);
    if (!r) return r;
    std::lock_guard lk(owner_.mu_);
    auto& s = owner_.states_[key_];
    s.written_end = std::min(s.written_end, size);
    s.synced_end = std::min(s.synced_end, size);
    return {};
  }

  result<void> preallocate(uint64_t size) override { return real_->preallocate(size); }
  result<uint64_t> size() override { return real_->size(); }
  result<uint64_t> next_data(uint64_t pos) override { return real_->next_data(pos); }

 private:
  void note_write(uint64_t end) {
    std::lock_guard lk(owner_.mu_);
    auto& s = owner_.states_[key_];
    s.written_end = std::max(s.written_end, end);
  }

  // Remembers, for crash_sectors(), what each sector about to be written held at the last
  // datasync: only sectors that existed then (below synced_size) and only the first time.
  void save_old_sectors(uint64_t pos, size_t n) {
    if (n == 0) return;
    std::lock_guard lk(owner_.mu_);
    auto& s = owner_.states_[key_];
    for (uint64_t sec = pos / faulty_files::sector; sec * faulty_files::sector < pos + n; ++sec) {
      uint64_t start = sec * faulty_files::sector;
      if (start >= s.synced_size || s.old_sectors.count(sec)) continue;
      std::vector<std::byte> old(faulty_files::sector);
      auto len = std::min<uint64_t>(faulty_files::sector, s.synced_size - start);
      auto got = real_->pread(std::span(old.data(), len), start);
      if (!got) continue;  // unknown: a lost sector then reads as zeros
      s.old_sectors.emplace(sec, std::move(old));
    }
  }

  faulty_files& owner_;
  std::shared_ptr<file> real_;
  std::string key_;
};

result<std::vector<std::byte>> read_whole(file& f) {
  auto sz = f.size();
  if (!sz) return sz.error();
  std::vector<std::byte> b(*sz);
  auto n = f.pread(b, 0);
  if (!n) return n.error();
  b.resize(*n);
  return b;
}

}  // namespace

faulty_files::faulty_files(file_factory& real) : real_(real) {}

void faulty_files::fail(op o, fault f, repeat r, std::string suffix, int skip) {
  std::lock_guard lk(mu_);
  faults_[static_cast<int>(o)] = armed{true, f, r, std::move(suffix), skip};
}

void faulty_files::heal() {
  std::lock_guard lk(mu_);
  for (auto& a : faults_) a = armed{};
}

int faulty_files::datasyncs() const {
  auto& self = const_cast<faulty_files&>(*this);
  std::lock_guard lk(self.mu_);
  return datasyncs_;
}

int faulty_files::dir_syncs() const {
  auto& self = const_cast<faulty_files&>(*this);
  std::lock_guard lk(self.mu_);
  return dir_syncs_;
}

bool faulty_files::take_fault(op o, const std::filesystem::path& p, fault& f) {
  std::lock_guard lk(mu_);
  auto& a = faults_[static_cast<int>(o)];
  if (!a.on) return false;
  const std::string s = p.string();
  if (!a.suffix.empty() &&
      (s.size() < a.suffix.size() || s.compare(s.size() - a.suffix.size(), a.suffix.size(), a.suffix) != 0))
    return false;
  if (a.skip > 0) {
    --a.skip;
    return false;
  }
  f = a.f;
  if (a.r == repeat::once) a.on = false;
  return true;
}

result<std::shared_ptr<file>> faulty_files::open(const std::filesystem::path& p, open_mode mode) {
  const std::string k = key(p);
  fault fl;
  if (take_fault(op::open, k, fl)) return make_fault(fl, "open", k);
  std::error_code ec;
  bool existed = std::filesystem::exists(k, ec);
  auto f = real_.open(k, mode);
  if (!f) return f.error();
  {
    std::lock_guard lk(mu_);
    if (!existed) changes_.push_back(entry_change{entry_change::created_file, parent_key(k), k, {}, {}, {}});
    if (!states_.count(k)) {
      // A file we have not seen is taken as durable as it is (it predates this factory or a crash).
      state s;
      if (existed) {
        auto sz = (*f)->size();
        if (sz) s.written_end = s.synced_end = s.synced_size = *sz;
      }
      states_[k] = s;
    }
  }
  return std::shared_ptr<file>(std::make_shared<faulty_file>(*this, std::move(*f), k));
}

// What a crash would bring back if the removal of `p` is not made durable: the file's bytes and
// its crash state (the data crash then drops what was never synced).
result<faulty_files::entry_change> faulty_files::stash_removal(const std::filesystem::path& p) {
  const std::string k = key(p);
  entry_change c{entry_change::removed, parent_key(k), k, {}, {}, {}};
  auto f = real_.open(k, open_mode::existing);
  if (!f) return f.error();
  auto b = read_whole(**f);
  if (!b) return b.error();
  c.bytes = std::move(*b);
  std::lock_guard lk(mu_);
  if (auto it = states_.find(k); it != states_.end()) c.st = it->second;
  return c;
}

result<void> faulty_files::remove(const std::filesystem::path& p) {
  const std::string k = key(p);
  fault fl;
  if (take_fault(op::remove, k, fl)) return make_fault(fl, "unlink", k);
  std::error_code ec;
  std::optional<entry_change> stash;
  if (std::filesystem::is_regular_file(k, ec)) {
    auto s = stash_removal(k);
    if (!s) return s.error();
    stash = std::move(*s);
  }
  auto r = real_.remove(k);
  if (r) {
    std::lock_guard lk(mu_);
    states_.erase(k);
    if (stash) changes_.push_back(std::move(*stash));
  }
  return r;
}

result<void> faulty_files::rename(const std::filesystem::path& from, const std::filesystem::path& to) {
  const std::string kf = key(from), kt = key(to);
  std::error_code ec;
  std::optional<entry_change> replaced;
  if (std::filesystem::is_regular_file(kt, ec)) {
    auto s = stash_removal(kt);
    if (!s) return s.error();
    replaced = std::move(*s);
  }
  auto r = real_.rename(kf, kt);
  if (r) {
    std::lock_guard lk(mu_);
    if (replaced) changes_.push_back(std::move(*replaced));
    changes_.push_back(entry_change{entry_change::renamed, parent_key(kt), kt, kf, {}, {}});
    auto it = states_.find(kf);
    if (it != states_.end()) {
      states_[kt] = it->second;
      states_.erase(kf);
    } else {
      states_.erase(kt);
    }
  }
  return r;
}

result<bool> faulty_files::create_dir(const std::filesystem::path& dir) {
  const std::string k = key(dir);
  auto r = real_.create_dir(k);
  if (r && *r) {
    std::lock_guard lk(mu_);
    changes_.push_back(entry_change{entry_change::created_dir, parent_key(k), k, {}, {}, {}});
  }
  return r;
}

result<void> faulty_files::sync_dir(const std::filesystem::path& dir) {
  const std::string k = key(dir);
  fault fl;
  if (take_fault(op::sync_dir, k, fl)) return make_fault(fl, "fsync directory", k);
  auto r = real_.sync_dir(k);
  if (!r) return r;
  std::lock_guard lk(mu_);
  std::erase_if(changes_, [&](const entry_change& c) { return c.dir == k; });
  ++dir_syncs_;
  return {};
}

// Undoes, newest first, the directory changes no sync_dir() made durable: every one, or (with
// `rng`) each with probability 1/2. Called with mu_ held.
result<void> faulty_files::undo_entries(std::mt19937_64* rng) {
  std::vector<entry_change> changes;
  changes.swap(changes_);
  for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
    std::error_code ec;
    if (rng && (*rng)() % 2 == 0) continue;  // this one reached the disk
    switch (it->k) {
      case entry_change::created_file:
        if (auto r = real_.remove(it->path); !r) return r;
        states_.erase(it->path);
        break;
      case entry_change::created_dir: {
        std::filesystem::remove_all(it->path, ec);
        if (ec) return ferry::fail(errc::storage_error, "crash: remove '" + it->path + "': " + ec.message());
        const std::string prefix = it->path + "/";
        std::erase_if(states_, [&](const auto& kv) { return kv.first.compare(0, prefix.size(), prefix) == 0; });
        break;
      }
      case entry_change::renamed:
        if (std::filesystem::exists(it->path, ec) && !std::filesystem::exists(it->from, ec)) {
          if (auto r = real_.rename(it->path, it->from); !r) return r;
          auto st = states_.find(it->path);
          if (st != states_.end()) {
            states_[it->from] = st->second;
            states_.erase(st);
          }
        }
        break;
      case entry_change::removed: {
        if (std::filesystem::exists(it->path, ec)) break;  // a newer file by that name stayed
        auto f = real_.open(it->path, open_mode::create);
        if (!f) return f.error();
        if (auto r = (*f)->truncate(0); !r) return r;
        if (auto r = (*f)->pwrite_all(it->bytes, 0); !r) return r;
        if (it->st) {
          states_[it->path] = *it->st;
        } else {
          state s;
          s.written_end = s.synced_end = s.synced_size = it->bytes.size();
          states_[it->path] = s;
        }
        break;
      }
    }
  }
  return {};
}

result<void> faulty_files::crash(uint64_t torn_bytes) { return crash_impl(torn_bytes, std::nullopt); }
result<void> faulty_files::crash_sectors(uint64_t seed) { return crash_impl(0, seed); }

result<void> faulty_files::crash_impl(uint64_t torn_bytes, std::optional<uint64_t> seed) {
  std::lock_guard lk(mu_);
  std::mt19937_64 rng(seed.value_or(0));
  if (auto r = undo_entries(seed ? &rng : nullptr); !r) return r;
  std::map<std::string, state> states;
  states.swap(states_);
  for (auto& [path, s] : states) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) continue;
    auto f = real_.open(path, open_mode::existing);
    if (!f) return f.error();
    auto cur = (*f)->size();
    if (!cur) return cur.error();
    uint64_t written = std::min(*cur, s.written_end);
    uint64_t keep = std::min(*cur, s.synced_end + torn_bytes);
    // Sector mode: over the unsynced range [synced_end, written) each sector survives (half the
    // time), or goes back to its contents at the last sync, or to zeros. A sector that holds
    // synced bytes keeps those whatever happens to the rest of it.
    struct lost {
      uint64_t sec;
      bool old;
    };
    std::vector<lost> lost_sectors;
    if (seed) {
      keep = std::min(*cur, s.synced_end);
      for (uint64_t sec = s.synced_end / sector; sec * sector < written; ++sec) {
        auto roll = rng() % 4;
        if (roll < 2)
          keep = std::max(keep, std::min(sec * sector + sector, written));
        else
          lost_sectors.push_back({sec, roll == 2});
      }
    }
    uint64_t new_size = std::max(keep, s.synced_size);
    // Zero [keep, new_size) and cut what is beyond: truncate down, then grow back (the new range
    // reads as zeros).
    if (auto r = (*f)->truncate(keep); !r) return r;
    if (new_size > keep) {
      if (auto r = (*f)->truncate(new_size); !r) return r;
    }
    std::vector<std::byte> buf(sector);
    for (auto [sec, old] : lost_sectors) {
      uint64_t start = sec * sector;
      uint64_t from = std::max(start, s.synced_end);
      uint64_t to = std::min(start + sector, new_size);
      if (from >= to) continue;
      std::fill(buf.begin(), buf.end(), std::byte{0});
      if (old)
        if (auto it = s.old_sectors.find(sec); it != s.old_sectors.end()) buf = it->second;
      if (auto r = (*f)->pwrite_all(std::span(buf.data() + (from - start), to - from), from); !r) return r;
    }
  }
  // Everything on disk now is what survived: later opens take it as durable.
  return {};
}

result<void> flip_bits(const std::filesystem::path& p, uint64_t pos, uint8_t mask) {
  auto f = posix_files().open(p, open_mode::existing);
  if (!f) return f.error();
  std::byte b{};
  auto n = (*f)->pread(std::span(&b, 1), pos);
  if (!n) return n.error();
  if (*n != 1) return fail(errc::invalid_argument, "flip_bits: position " + std::to_string(pos) + " past the end");
  b ^= static_cast<std::byte>(mask);
  return (*f)->pwrite_all(std::span(&b, 1), pos);
}

result<void> zero_range(const std::filesystem::path& p, uint64_t pos, uint64_t len) {
  auto f = posix_files().open(p, open_mode::existing);
  if (!f) return f.error();
  auto sz = (*f)->size();
  if (!sz) return sz.error();
  if (pos + len > *sz) return fail(errc::invalid_argument, "zero_range: past the end of " + p.string());
  std::vector<std::byte> zeros(len);
  return (*f)->pwrite_all(zeros, pos);
}

}  // namespace ferry::log
