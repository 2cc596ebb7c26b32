#include "broker/log/faulty_file.h"

#include <algorithm>
#include <string>
#include <vector>

namespace ferry::log {
namespace {

error make_fault(faulty_files::fault f, std::string_view what, const std::filesystem::path& p) {
  if (f == faulty_files::fault::disk_full)
    return fail(errc::disk_full, std::string(what) + " '" + p.string() + "': No space left on device (injected)");
  return fail(errc::storage_error, std::string(what) + " '" + p.string() + "': Input/output error (injected)");
}

class faulty_file final : public file {
 public:
  faulty_file(faulty_files& owner, std::shared_ptr<file> real, std::filesystem::path p)
      : owner_(owner), real_(std::move(real)), path_(std::move(p)) {}

  result<void> pwrite_all(std::span<const std::byte> data, uint64_t pos) override {
    faulty_files::fault f;
    if (owner_.take_fault(faulty_files::op::write, path_, f)) {
      auto half = data.first(data.size() / 2);
      if (!half.empty()) {
        auto r = real_->pwrite_all(half, pos);
        if (r) note_write(pos + half.size());
      }
      return make_fault(f, "write", path_);
    }
    auto r = real_->pwrite_all(data, pos);
    if (r) note_write(pos + data.size());
    return r;
  }

  result<size_t> pread(std::span<std::byte> out, uint64_t pos) override { return real_->pread(out, pos); }

  result<void> datasync() override {
    faulty_files::fault f;
    if (owner_.take_fault(faulty_files::op::sync, path_, f)) return make_fault(f, "fdatasync", path_);
    auto size = real_->size();
    auto r = real_->datasync();
    if (!r) return r;
    std::lock_guard lk(owner_.mu_);
    auto& s = owner_.states_[path_.string()];
    s.synced_end = s.written_end;
    if (size) s.synced_size = *size;
    ++owner_.datasyncs_;
    return {};
  }

  result<void> truncate(uint64_t size) override {
    faulty_files::fault f;
    if (owner_.take_fault(faulty_files::op::truncate, path_, f)) return make_fault(f, "truncate", path_);
    auto r = real_->truncate(size);
    if (!r) return r;
    std::lock_guard lk(owner_.mu_);
    auto& s = owner_.states_[path_.string()];
    s.written_end = std::min(s.written_end, size);
    s.synced_end = std::min(s.synced_end, size);
    return {};
  }

  result<void> preallocate(uint64_t size) override { return real_->preallocate(size); }
  result<uint64_t> size() override { return real_->size(); }

 private:
  void note_write(uint64_t end) {
    std::lock_guard lk(owner_.mu_);
    auto& s = owner_.states_[path_.string()];
    s.written_end = std::max(s.written_end, end);
  }

  faulty_files& owner_;
  std::shared_ptr<file> real_;
  std::filesystem::path path_;
};

}  // namespace

faulty_files::faulty_files(file_factory& real) : real_(real) {}

void faulty_files::fail(op o, fault f, repeat r, std::string suffix) {
  std::lock_guard lk(mu_);
  faults_[static_cast<int>(o)] = armed{true, f, r, std::move(suffix)};
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

bool faulty_files::take_fault(op o, const std::filesystem::path& p, fault& f) {
  std::lock_guard lk(mu_);
  auto& a = faults_[static_cast<int>(o)];
  if (!a.on) return false;
  const std::string s = p.string();
  if (!a.suffix.empty() &&
      (s.size() < a.suffix.size() || s.compare(s.size() - a.suffix.size(), a.suffix.size(), a.suffix) != 0))
    return false;
  f = a.f;
  if (a.r == repeat::once) a.on = false;
  return true;
}

result<std::shared_ptr<file>> faulty_files::open(const std::filesystem::path& p, open_mode mode) {
  std::error_code ec;
  bool existed = std::filesystem::exists(p, ec);
  auto f = real_.open(p, mode);
  if (!f) return f.error();
  {
    std::lock_guard lk(mu_);
    if (!states_.count(p.string())) {
      // A file we have not seen is taken as durable as it is (it predates this factory or a crash).
      state s;
      if (existed) {
        auto sz = (*f)->size();
        if (sz) s.written_end = s.synced_end = s.synced_size = *sz;
      }
      states_[p.string()] = s;
    }
  }
  return std::shared_ptr<file>(std::make_shared<faulty_file>(*this, std::move(*f), p));
}

result<void> faulty_files::remove(const std::filesystem::path& p) {
  auto r = real_.remove(p);
  if (r) {
    std::lock_guard lk(mu_);
    states_.erase(p.string());
  }
  return r;
}

result<void> faulty_files::rename(const std::filesystem::path& from, const std::filesystem::path& to) {
  auto r = real_.rename(from, to);
  if (r) {
    std::lock_guard lk(mu_);
    auto it = states_.find(from.string());
    if (it != states_.end()) {
      states_[to.string()] = it->second;
      states_.erase(it);
    }
  }
  return r;
}

result<void> faulty_files::sync_dir(const std::filesystem::path& dir) { return real_.sync_dir(dir); }

result<void> faulty_files::crash(uint64_t torn_bytes) {
  std::map<std::string, state> states;
  {
    std::lock_guard lk(mu_);
    states.swap(states_);
  }
  for (auto& [path, s] : states) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) continue;
    auto f = real_.open(path, open_mode::existing);
    if (!f) return f.error();
    auto cur = (*f)->size();
    if (!cur) return cur.error();
    uint64_t keep = std::min(*cur, s.synced_end + torn_bytes);
    uint64_t new_size = std::max(keep, s.synced_size);
    // Zero [keep, new_size): truncate down, then grow back (the new range reads as zeros).
    if (auto r = (*f)->truncate(keep); !r) return r;
    if (new_size > keep) {
      if (auto r = (*f)->truncate(new_size); !r) return r;
    }
  }
  // Everything on disk now is what survived: later opens take it as durable.
  return {};
}

}  // namespace ferry::log
