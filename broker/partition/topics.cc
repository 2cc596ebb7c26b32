#include "broker/partition/topics.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>

#include "broker/runtime/runtime.h"

namespace ferry::partition {

namespace {
std::shared_ptr<spdlog::logger> logger() {
  static auto l = [] {
    auto existing = spdlog::get("topics");
    return existing ? existing : spdlog::default_logger()->clone("topics");
  }();
  return l;
}
}  // namespace

topic_manager::topic_manager(runtime::shard_set& rt, meta::meta_store& store, std::filesystem::path data_dir,
                             broker_defaults d)
    : rt_(rt), store_(store), data_dir_(std::move(data_dir)), defaults_(std::move(d)) {}

shard_id topic_manager::shard_for(std::string_view topic, int32_t partition) const {
  // Consecutive partitions of a topic land on consecutive shards.
  size_t h = std::hash<std::string_view>{}(topic);
  return shard_id{static_cast<uint32_t>((h + static_cast<size_t>(partition)) % rt_.size())};
}

std::filesystem::path topic_manager::topic_dir(const meta::topic_record& r) const {
  return data_dir_ / "topics" / (std::to_string(r.id) + "-" + r.name);
}

partition_config topic_manager::partition_cfg(const meta::topic_record& r, int32_t p) const {
  partition_config pc;
  pc.log.dir = topic_dir(r) / std::to_string(p);
  pc.log.segment_bytes = static_cast<uint64_t>(r.config.segment_bytes);
  pc.log.segment_ms = r.config.segment_ms;
  pc.log.retention_ms = r.config.retention_ms;
  pc.log.retention_bytes = r.config.retention_bytes;
  pc.log.preallocate = defaults_.preallocate;
  pc.fsync = r.config.fsync == meta::fsync_mode::interval ? fsync_policy::interval : fsync_policy::always;
  pc.fsync_interval_ms = r.config.fsync_interval_ms;
  return pc;
}

asio::awaitable<result<std::shared_ptr<topic>>> topic_manager::open_topic(meta::topic_record rec) {
  auto t = std::make_shared<topic>();
  t->name = rec.name;
  t->id = rec.id;
  t->config = rec.config;
  t->partitions.resize(static_cast<size_t>(rec.config.partitions));
  for (int32_t p = 0; p < rec.config.partitions; ++p) {
    shard_id owner = shard_for(rec.name, p);
    auto cfg = partition_cfg(rec, p);
    // Open on the owner shard: recovery reads the log there, and the partition lives there.
    auto open_it = [this, name = rec.name, p, cfg, owner] { return partition::open(name, partition_id{p}, cfg, rt_, owner); };
    auto opened = co_await runtime::run_on(rt_.executor(owner), std::move(open_it));
    if (!opened) {
      co_await close_topic(t);
      co_return opened.error();
    }
    t->partitions[static_cast<size_t>(p)] = std::move(*opened);
  }
  co_return t;
}

asio::awaitable<void> topic_manager::close_topic(std::shared_ptr<topic> t) {
  for (auto& p : t->partitions) {
    if (!p) continue;
    auto ex = rt_.executor(p->owner());
    co_await asio::co_spawn(ex, p->close(), asio::use_awaitable);
  }
}

asio::awaitable<result<void>> topic_manager::start() {
  auto list_fn = [this] { return store_.list_topics(); };
  auto recs = co_await runtime::on_disk(rt_.disk(), std::move(list_fn));
  if (!recs) co_return recs.error();
  std::set<std::string> keep;
  for (auto& rec : *recs) {
    keep.insert(topic_dir(rec).filename().string());
    auto t = co_await open_topic(rec);
    if (!t) co_return t.error();
    std::unique_lock lk(mu_);
    topics_[rec.name] = std::move(*t);
  }
  // Folders without a stored topic are what an interrupted delete left behind.
  std::error_code ec;
  auto topics_root = data_dir_ / "topics";
  std::filesystem::create_directories(topics_root, ec);
  for (auto& entry : std::filesystem::directory_iterator(topics_root, ec)) {
    if (!keep.contains(entry.path().filename().string())) {
      logger()->warn("removing {}: no such topic in the metadata store (interrupted delete)", entry.path().string());
      std::filesystem::remove_all(entry.path(), ec);
    }
  }
  version_.fetch_add(1);
  logger()->info("loaded {} topics", recs->size());
  runtime::spawn_logged(rt_.executor(shard_id{0}), retention_loop(), "retention loop");
  co_return result<void>{};
}

asio::awaitable<result<meta::topic_config>> topic_manager::create_topic(std::string name, meta::topic_config cfg) {
  if (auto r = meta::validate_topic_name(name); !r) co_return r.error();
  if (auto r = meta::validate_topic_config(cfg, defaults_.max_replication); !r) co_return r.error();
  {
    std::unique_lock lk(mu_);
    if (topics_.contains(name) || pending_.contains(name))
      co_return fail(errc::topic_exists, "topic '" + name + "' already exists");
    pending_.insert(name);
  }
  auto unpend = [this, name] {
    std::unique_lock lk(mu_);
    pending_.erase(name);
  };
  auto next_id_fn = [this] { return store_.next_id(); };
  auto id = co_await runtime::on_disk(rt_.disk(), std::move(next_id_fn));
  if (!id) {
    unpend();
    co_return id.error();
  }
  meta::topic_record rec{name, *id, cfg};
  // Persist first: a crash after this point leaves a stored topic whose folders start-up creates.
  auto put_fn = [this, rec] { return store_.put_topic(rec); };
  auto put = co_await runtime::on_disk(rt_.disk(), std::move(put_fn));
  if (!put) {
    unpend();
    co_return put.error();
  }
  auto t = co_await open_topic(rec);
  if (!t) {
    auto undo_fn = [this, name] { return store_.delete_topic(name); };
    (void)co_await runtime::on_disk(rt_.disk(), std::move(undo_fn));
    unpend();
    co_return t.error();
  }
  {
    std::unique_lock lk(mu_);
    topics_[name] = std::move(*t);
    pending_.erase(name);
  }
  version_.fetch_add(1);
  logger()->info("created topic {} with {} partitions", name, cfg.partitions);
  co_return cfg;
}

asio::awaitable<result<void>> topic_manager::delete_topic(std::string name) {
  std::shared_ptr<topic> t;
  {
    std::unique_lock lk(mu_);
    auto it = topics_.find(name);
    if (it == topics_.end() || pending_.contains(name)) co_return fail(errc::unknown_topic, "topic '" + name + "' does not exist");
    t = it->second;
    topics_.erase(it);
    pending_.insert(name);
  }
  version_.fetch_add(1);
  // Delete the record first: a crash after it leaves only folders, which start-up removes.
  auto del_fn = [this, name] { return store_.delete_topic(name); };
  auto del = co_await runtime::on_disk(rt_.disk(), std::move(del_fn));
  if (!del) {
    std::unique_lock lk(mu_);
    topics_[name] = t;
    pending_.erase(name);
    co_return del.error();
  }
  co_await close_topic(t);
  meta::topic_record rec{t->name, t->id, t->config};
  auto dir = topic_dir(rec);
  auto remove_fn = [dir] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  };
  co_await runtime::on_disk(rt_.disk(), std::move(remove_fn));
  {
    std::unique_lock lk(mu_);
    pending_.erase(name);
  }
  logger()->info("deleted topic {}", name);
  co_return result<void>{};
}

asio::awaitable<void> topic_manager::close_all() {
  closed_ = true;
  std::map<std::string, std::shared_ptr<topic>, std::less<>> all;
  {
    std::unique_lock lk(mu_);
    all.swap(topics_);
  }
  for (auto& [name, t] : all) co_await close_topic(t);
}

std::shared_ptr<const topic> topic_manager::find(std::string_view name) const {
  std::shared_lock lk(mu_);
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const topic>> topic_manager::list() const {
  std::shared_lock lk(mu_);
  std::vector<std::shared_ptr<const topic>> out;
  for (auto& [n, t] : topics_) out.push_back(t);
  return out;
}

asio::awaitable<void> topic_manager::retention_loop() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!closed_) {
    timer.expires_after(std::chrono::milliseconds(defaults_.retention_check_ms));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (closed_) break;
    for (auto& t : list()) {
      for (auto& p : t->partitions) {
        // Issue-2 scope: no subscriptions yet, so only the topic's time/size limits apply
        // (low-water mark = log start: nothing is pinned or released by consumers).
        auto retain = [p] { return p->apply_retention(p->stats().log_start); };
        auto r = co_await runtime::run_on(rt_.executor(p->owner()), std::move(retain));
        if (!r)
          logger()->warn("retention on {}/{} failed: {}", t->name, p->id().value, r.error().to_string());
        else if (r->segments_deleted > 0)
          logger()->info("retention on {}/{}: deleted {} segments ({} bytes), log starts at {}", t->name,
                         p->id().value, r->segments_deleted, r->bytes_deleted, r->new_start.value);
      }
    }
  }
}

}  // namespace ferry::partition
