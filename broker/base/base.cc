#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "broker/base/assert.h"
#include "broker/base/clock.h"
#include "broker/base/failpoint.h"

namespace ferry {

namespace detail {
void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept {
  std::fprintf(stderr, "FERRY_ASSERT failed: %s at %s:%d: %s\n", expr, file, line, msg);
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

int64_t wall_now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
int64_t system_clock_source::now_ms() const noexcept { return wall_now_ms(); }
int64_t system_clock_source::monotonic_ns() const noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {
#ifdef FERRY_FAILPOINTS
class file_offset_clock final : public clock {
 public:
  explicit file_offset_clock(std::string path) : path_(std::move(path)) { refresh(); }
  int64_t now_ms() const noexcept override {
    auto mono = std::chrono::steady_clock::now().time_since_epoch().count();
    if (mono - last_read_.load(std::memory_order_relaxed) > 2'000'000) refresh();
    return wall_now_ms() + offset_.load(std::memory_order_relaxed);
  }
  int64_t monotonic_ns() const noexcept override { return sys_.monotonic_ns(); }

 private:
  void refresh() const noexcept {
    std::unique_lock lk(mu_, std::try_to_lock);
    if (!lk.owns_lock()) return;
    last_read_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    if (FILE* f = std::fopen(path_.c_str(), "r")) {
      long long v = 0;
      if (std::fscanf(f, "%lld", &v) == 1) offset_.store(v, std::memory_order_relaxed);
      std::fclose(f);
    }
  }
  std::string path_;
  system_clock_source sys_;
  mutable std::mutex mu_;
  mutable std::atomic<int64_t> last_read_{0};
  mutable std::atomic<int64_t> offset_{0};
};
#endif
}  // namespace

const clock& broker_clock() {
  static const clock* c = []() -> const clock* {
#ifdef FERRY_FAILPOINTS
    if (const char* f = std::getenv("FERRY_CLOCK_FILE"); f != nullptr && *f != '\0') {
      std::fprintf(stderr, "FERRY_CLOCK_FILE=%s: the broker's wall clock is shifted by the offset in it\n", f);
      return new file_offset_clock(f);
    }
#endif
    return new system_clock_source();
  }();
  return *c;
}

namespace failpoint {
namespace {
std::mutex mu;
std::atomic<bool> any_armed{false};  // the hot path skips the lock while nothing is armed
std::map<std::string, std::string, std::less<>>& points() {
  static std::map<std::string, std::string, std::less<>> p;
  return p;
}
}  // namespace

void arm(std::string_view name, std::string_view action) {
  std::lock_guard lk(mu);
  points()[std::string(name)] = std::string(action);
  any_armed.store(true, std::memory_order_release);
}
void disarm_all() {
  std::lock_guard lk(mu);
  points().clear();
  any_armed.store(false, std::memory_order_release);
}
void arm_from_env() {
  const char* env = std::getenv("FERRY_FAILPOINTS");
  if (env == nullptr) return;
  std::string_view s(env);
  while (!s.empty()) {
    auto comma = s.find(',');
    auto item = s.substr(0, comma);
    auto eq = item.find('=');
    if (eq != std::string_view::npos) arm(item.substr(0, eq), item.substr(eq + 1));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
}
bool hit(std::string_view name) {
  if (!any_armed.load(std::memory_order_acquire)) return false;
  std::string action;
  {
    std::lock_guard lk(mu);
    auto it = points().find(name);
    if (it == points().end()) return false;
    action = it->second;
  }
  if (action == "crash") {
    std::fprintf(stderr, "failpoint %.*s: crash\n", static_cast<int>(name.size()), name.data());
    _exit(137);
  }
  if (action.rfind("sleep-", 0) == 0) {
    // A slow disk or a busy thread: the caller goes on after the pause.
    std::this_thread::sleep_for(std::chrono::milliseconds(std::strtoll(action.c_str() + 6, nullptr, 10)));
    return false;
  }
  return action == "error";
}
}  // namespace failpoint

}  // namespace ferry

namespace ferry {
namespace {
thread_local bool event_loop_thread = false;
}
void mark_event_loop_thread() noexcept { event_loop_thread = true; }
bool on_event_loop_thread() noexcept { return event_loop_thread; }
}  // namespace ferry
