#include "broker/topics/topic_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>

#include "broker/base/failpoint.h"
#include "broker/runtime/logger.h"
#include "broker/runtime/runtime.h"

namespace ferry::topics {

namespace {
runtime::subsystem_logger logger{"topics"};
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

partition::partition_config topic_manager::partition_cfg(const meta::topic_record& r, int32_t p) const {
  partition::partition_config pc;
  pc.log.dir = topic_dir(r) / std::to_string(p);
  pc.log.segment_bytes = static_cast<uint64_t>(r.config.segment_bytes);
  pc.log.segment_ms = r.config.segment_ms;
  pc.log.retention_ms = r.config.retention_ms;
  pc.log.retention_bytes = r.config.retention_bytes;
  pc.log.preallocate = defaults_.preallocate;
  pc.log.clk = &broker_clock();
  pc.fsync = r.config.fsync == meta::fsync_mode::interval ? partition::fsync_policy::interval
                                                          : partition::fsync_policy::always;
  pc.fsync_interval_ms = r.config.fsync_interval_ms;
  pc.topic_id = r.id;
  pc.store = &store_;
  pc.dead_letters = const_cast<topic_manager*>(this);
  pc.checkpoint_interval_ms = defaults_.checkpoint_interval_ms;
  pc.delays = defaults_.delays;
  pc.delay = defaults_.delay;
  pc.producers = defaults_.producers;
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
    auto open_it = [this, name = rec.name, p, cfg, owner] {
      return partition::partition::open(name, partition_id{p}, cfg, rt_, owner);
    };
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
  // Folders of deleted topics (recorded in the store with the deletion) are what an interrupted
  // delete left behind: they go now. A folder the store knows nothing of is left alone: data is
  // never deleted on a guess.
  auto deleted_fn = [this] { return store_.list_deleted_folders(); };
  auto deleted = co_await runtime::on_disk(rt_.disk(), std::move(deleted_fn));
  if (!deleted) co_return deleted.error();
  std::error_code ec;
  auto topics_root = data_dir_ / "topics";
  if (!std::filesystem::exists(topics_root)) {
    std::filesystem::create_directories(topics_root, ec);
    (void)log::posix_files().sync_dir(data_dir_);
  }
  std::set<std::string> on_disk;
  for (auto& entry : std::filesystem::directory_iterator(topics_root, ec)) {
    auto name = entry.path().filename().string();
    on_disk.insert(name);
    if (keep.contains(name)) continue;
    if (std::find(deleted->begin(), deleted->end(), name) == deleted->end()) {
      logger()->warn("{}: no topic in the metadata store uses this folder; left alone (move it away if unwanted)",
                     entry.path().string());
      continue;
    }
    logger()->warn("removing {}: its topic was deleted (the delete was interrupted)", entry.path().string());
    auto rm = [path = entry.path(), topics_root] {
      std::error_code e;
      std::filesystem::remove_all(path, e);
      return !e && log::posix_files().sync_dir(topics_root);
    };
    bool removed = co_await runtime::on_disk(rt_.disk(), std::move(rm));
    if (removed) on_disk.erase(name);  // else its record stays: the next start-up tries again
  }
  for (auto& folder : *deleted) {
    if (on_disk.contains(folder)) continue;
    auto forget = [this, folder] { return store_.forget_deleted_folder(folder); };
    (void)co_await runtime::on_disk(rt_.disk(), std::move(forget));
  }
  version_.fetch_add(1);
  logger()->info("loaded {} topics", recs->size());
  if (auto r = co_await load_subscriptions(); !r) co_return r.error();
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
    // Undo: the record goes and whatever folders the failed open made are removed (start-up
    // finishes that if this is interrupted).
    auto undo_fn = [this, name, dir = topic_dir(rec)] {
      if (auto r = store_.delete_topic(name, dir.filename().string()); !r) return r;
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      if (ec || !log::posix_files().sync_dir(dir.parent_path())) return result<void>{};
      return store_.forget_deleted_folder(dir.filename().string());
    };
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
    if (it == topics_.end() || pending_.contains(name))
      co_return fail(errc::unknown_topic, "topic '" + name + "' does not exist");
    t = it->second;
    topics_.erase(it);
    pending_.insert(name);
  }
  version_.fetch_add(1);
  // Delete the record first, recording the folder as deleted in the same write: a crash after it
  // leaves only that folder, which start-up removes.
  meta::topic_record gone_rec{t->name, t->id, t->config};
  auto del_fn = [this, name, folder = topic_dir(gone_rec).filename().string()] {
    return store_.delete_topic(name, folder);
  };
  auto del = co_await runtime::on_disk(rt_.disk(), std::move(del_fn));
  if (!del) {
    std::unique_lock lk(mu_);
    topics_[name] = t;
    pending_.erase(name);
    co_return del.error();
  }
  if (FERRY_FAILPOINT("topics.delete_after_record")) co_return fail(errc::storage_error, "failpoint");
  // Its subscriptions go with it (records, then checkpoints; start-up drops leftovers).
  std::map<std::string, subscription_ptr, std::less<>> gone;
  {
    std::unique_lock lk(mu_);
    if (auto it = subs_.find(name); it != subs_.end()) {
      gone = std::move(it->second);
      subs_.erase(it);
    }
  }
  for (auto& [sub_name, sp] : gone) {
    auto del_sub = [this, name, sn = sub_name] { return store_.delete_subscription(name, sn); };
    if (auto r = co_await runtime::on_disk(rt_.disk(), std::move(del_sub)); !r)
      logger()->warn("deleting subscription {}/{}: {}", name, sub_name, r.error().to_string());
  }
  auto del_ckpt = [this, prefix = partition::partition::checkpoint_prefix(t->id)] {
    return store_.delete_checkpoints(prefix);
  };
  if (auto r = co_await runtime::on_disk(rt_.disk(), std::move(del_ckpt)); !r)
    logger()->warn("deleting checkpoints of {}: {}", name, r.error().to_string());
  co_await close_topic(t);
  if (defaults_.delays != nullptr) {
    auto drop = [idx = defaults_.delays, tid = t->id] { return idx->drop_topic(tid); };
    if (auto r = co_await runtime::on_disk(rt_.disk(), std::move(drop)); !r)
      logger()->warn("dropping delayed messages of {}: {}", name, r.error().to_string());
  }
  meta::topic_record rec{t->name, t->id, t->config};
  auto dir = topic_dir(rec);
  auto remove_fn = [this, dir] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) return false;
    // The folder's removal is durable before the store forgets it was to be removed.
    if (!log::posix_files().sync_dir(dir.parent_path())) return false;
    return static_cast<bool>(store_.forget_deleted_folder(dir.filename().string()));
  };
  if (!co_await runtime::on_disk(rt_.disk(), std::move(remove_fn)))
    logger()->warn("deleting the folder of topic {} did not finish; the next start-up retries", name);
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
        auto retain = [p] {
          p->expire_producers();
          return p->apply_retention_with_subscriptions();
        };
        auto r = co_await runtime::run_on(rt_.executor(p->owner()), std::move(retain));
        if (r && !r->retired.empty()) {
          // Unlinking a big segment takes tens of ms on ext4: on the disk pool, not the shard.
          auto remove = [retired = std::move(r->retired)]() mutable {
            return log::partition_log::remove_retired(retired);
          };
          auto removed = co_await runtime::on_disk(rt_.disk(), std::move(remove));
          if (!removed)
            logger()->warn("retention on {}/{}: deleting segment files failed (a restart retries): {}", t->name,
                           p->id().value, removed.error().to_string());
        }
        if (!r)
          logger()->warn("retention on {}/{} failed: {}", t->name, p->id().value, r.error().to_string());
        else if (r->segments_deleted > 0)
          logger()->info("retention on {}/{}: deleted {} segments ({} bytes), log starts at {}", t->name, p->id().value,
                         r->segments_deleted, r->bytes_deleted, r->new_start.value);
      }
    }
  }
}

// ---- subscriptions -------------------------------------------------------------------------------

subscription_ptr topic_manager::find_subscription(std::string_view topic, std::string_view name) const {
  std::shared_lock lk(mu_);
  auto t = subs_.find(topic);
  if (t == subs_.end()) return nullptr;
  auto it = t->second.find(name);
  return it == t->second.end() ? nullptr : it->second;
}

std::vector<subscription_ptr> topic_manager::list_subscriptions(std::string_view topic) const {
  std::shared_lock lk(mu_);
  std::vector<subscription_ptr> out;
  for (auto& [tn, m] : subs_) {
    if (!topic.empty() && tn != topic) continue;
    for (auto& [n, sp] : m) out.push_back(sp);
  }
  return out;
}

asio::awaitable<result<void>> topic_manager::attach_subscription(std::shared_ptr<const topic> t, subscription_ptr s,
                                                                 bool load_checkpoints) {
  for (auto& p : t->partitions) {
    partition::partition::saved_subscription saved;
    if (load_checkpoints) {
      auto get = [this, key = p->checkpoint_key(s->id)] { return store_.get_checkpoint(key); };
      auto got = co_await runtime::on_disk(rt_.disk(), std::move(get));
      if (!got) co_return got.error();
      saved.checkpoint = std::move(*got);
      auto list = [this, prefix = p->journal_prefix(s->id)] { return store_.list_journal(prefix); };
      auto journal = co_await runtime::on_disk(rt_.disk(), std::move(list));
      if (!journal) co_return journal.error();
      saved.journal = std::move(*journal);
    }
    auto origin = load_checkpoints ? partition::partition::subscription_origin::existing
                                   : partition::partition::subscription_origin::created;
    auto add = [p, s, origin, saved = std::move(saved)]() mutable {
      return p->add_subscription(*s, std::move(saved), origin);
    };
    auto added = co_await runtime::run_on(rt_.executor(p->owner()), std::move(add));
    if (!added) co_return added.error();
  }
  co_return result<void>{};
}

asio::awaitable<void> topic_manager::detach_subscription(std::shared_ptr<const topic> t, subscription_ptr s) {
  for (auto& p : t->partitions) {
    auto rm = [p, id = s->id] { p->remove_subscription(id); };
    co_await runtime::run_on(rt_.executor(p->owner()), std::move(rm));
  }
}

asio::awaitable<result<void>> topic_manager::load_subscriptions() {
  auto list_fn = [this] { return store_.list_subscriptions(); };
  auto recs = co_await runtime::on_disk(rt_.disk(), std::move(list_fn));
  if (!recs) co_return recs.error();
  size_t n = 0;
  for (auto& rec : *recs) {
    auto t = find(rec.topic);
    if (!t || t->id != rec.topic_id) {
      // What an interrupted topic deletion left behind.
      logger()->warn("dropping subscription {}/{}: its topic is gone", rec.topic, rec.name);
      auto del = [this, topic = rec.topic, name = rec.name] { return store_.delete_subscription(topic, name); };
      (void)co_await runtime::on_disk(rt_.disk(), std::move(del));
      continue;
    }
    auto sp = std::make_shared<const meta::subscription_record>(rec);
    if (auto r = co_await attach_subscription(t, sp, true); !r) {
      co_return fail(r.error().code, "subscription " + rec.topic + "/" + rec.name + ": " + r.error().message);
    }
    std::unique_lock lk(mu_);
    subs_[rec.topic][rec.name] = sp;
    ++n;
  }
  logger()->info("loaded {} subscriptions", n);
  co_return result<void>{};
}

asio::awaitable<result<subscription_ptr>> topic_manager::create_subscription(std::string topic, std::string name,
                                                                             meta::subscription_config cfg) {
  auto t = find(topic);
  if (!t) {
    if (auto v = meta::validate_topic_name(topic); !v) co_return v.error();
    co_return fail(errc::unknown_topic, "topic '" + topic + "' does not exist");
  }
  if (auto r = meta::validate_subscription_name(name); !r) co_return r.error();
  if (cfg.dead_letter_topic.empty()) cfg.dead_letter_topic = meta::default_dead_letter_topic(topic, name);
  if (auto r = meta::validate_subscription_config(cfg); !r) co_return r.error();
  if (cfg.dead_letter_topic == topic)
    co_return fail(errc::invalid_argument, "the dead-letter topic cannot be the subscription's own topic");
  {
    std::unique_lock lk(mu_);
    auto key = std::make_pair(topic, name);
    auto ts = subs_.find(topic);
    if ((ts != subs_.end() && ts->second.contains(name)) || subs_pending_.contains(key))
      co_return fail(errc::subscription_exists, "subscription '" + name + "' on topic '" + topic + "' already exists");
    subs_pending_.insert(key);
  }
  auto unpend = [this, topic, name] {
    std::unique_lock lk(mu_);
    subs_pending_.erase({topic, name});
  };
  auto next_id_fn = [this] { return store_.next_id(); };
  auto id = co_await runtime::on_disk(rt_.disk(), std::move(next_id_fn));
  if (!id) {
    unpend();
    co_return id.error();
  }
  auto rec = std::make_shared<meta::subscription_record>();
  rec->topic = topic;
  rec->topic_id = t->id;
  rec->name = name;
  rec->id = *id;
  rec->config = cfg;
  rec->created_ms = wall_now_ms();
  for (auto& p : t->partitions) {
    bool earliest = cfg.start == meta::start_position::earliest;
    auto where = [p, earliest] { return earliest ? p->stats().log_start.value : p->hwm().value; };
    rec->start_offsets.push_back(co_await runtime::run_on(rt_.executor(p->owner()), std::move(where)));
  }
  auto put = [this, rec] { return store_.put_subscription(*rec); };
  if (auto r = co_await runtime::on_disk(rt_.disk(), std::move(put)); !r) {
    unpend();
    co_return r.error();
  }
  subscription_ptr sp = rec;
  if (auto r = co_await attach_subscription(t, sp, false); !r) {
    co_await detach_subscription(t, sp);
    auto undo = [this, topic, name] { return store_.delete_subscription(topic, name); };
    (void)co_await runtime::on_disk(rt_.disk(), std::move(undo));
    unpend();
    co_return r.error();
  }
  {
    std::unique_lock lk(mu_);
    subs_[topic][name] = sp;
    subs_pending_.erase({topic, name});
  }
  version_.fetch_add(1);
  logger()->info(
      "created subscription {} on {} (from {}, ordered {}, ack timeout {} ms, max deliveries {}, "
      "dead letters to {})",
      name, topic, cfg.start == meta::start_position::earliest ? "earliest" : "latest", cfg.ordered, cfg.ack_timeout_ms,
      cfg.max_deliveries, cfg.dead_letter_topic);
  co_return sp;
}

asio::awaitable<result<void>> topic_manager::delete_subscription(std::string topic, std::string name) {
  subscription_ptr sp;
  {
    std::unique_lock lk(mu_);
    auto ts = subs_.find(topic);
    if (ts == subs_.end() || !ts->second.contains(name) || subs_pending_.contains({topic, name}))
      co_return fail(errc::unknown_subscription, "subscription '" + name + "' on topic '" + topic + "' does not exist");
    sp = ts->second[name];
    ts->second.erase(name);
    if (ts->second.empty()) subs_.erase(ts);
    subs_pending_.insert({topic, name});
  }
  auto del = [this, topic, name] { return store_.delete_subscription(topic, name); };
  auto r = co_await runtime::on_disk(rt_.disk(), std::move(del));
  if (!r) {
    std::unique_lock lk(mu_);
    subs_[topic][name] = sp;
    subs_pending_.erase({topic, name});
    co_return r.error();
  }
  if (auto t = find(topic)) {
    co_await detach_subscription(t, sp);
    for (auto& p : t->partitions) {
      auto del_ckpt = [this, key = p->checkpoint_key(sp->id)] { return store_.delete_checkpoint(key); };
      (void)co_await runtime::on_disk(rt_.disk(), std::move(del_ckpt));
    }
  }
  {
    std::unique_lock lk(mu_);
    subs_pending_.erase({topic, name});
  }
  version_.fetch_add(1);
  logger()->info("deleted subscription {} on {}", name, topic);
  co_return result<void>{};
}

void topic_manager::write_dead_letter(subscription::dead_letter_request r, std::function<void(result<void>)> done) {
  runtime::spawn_logged(rt_.executor(shard_id{0}), dead_letter_task(std::move(r), std::move(done)), "dead letter");
}

asio::awaitable<void> topic_manager::dead_letter_task(subscription::dead_letter_request r,
                                                      std::function<void(result<void>)> done) {
  auto t = find(r.dead_letter_topic);
  if (!t) {
    meta::topic_config cfg = defaults_.topic;
    cfg.partitions = 1;
    auto c = co_await create_topic(r.dead_letter_topic, cfg);
    if (!c && c.error().code != errc::topic_exists) {
      done(fail(c.error().code, "creating dead-letter topic " + r.dead_letter_topic + ": " + c.error().message));
      co_return;
    }
    // Another dead letter may be creating it right now: wait for it to appear.
    asio::steady_timer wait(co_await asio::this_coro::executor);
    for (int i = 0; i < 500 && !(t = find(r.dead_letter_topic)); ++i) {
      wait.expires_after(std::chrono::milliseconds(10));
      co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (!t) {
      done(fail(errc::unknown_topic, "dead-letter topic " + r.dead_letter_topic + " did not appear"));
      co_return;
    }
  }
  // The original message, with headers saying where it came from and why it is here
  // (schema/wire.md, "Dead letters").
  std::string original = r.topic + "/" + std::to_string(r.partition) + "/" + std::to_string(r.offset);
  std::string count = std::to_string(r.delivery_count);
  std::string when = std::to_string(wall_now_ms());
  std::vector<wire::header_view> hs;
  for (auto& [k, v] : r.headers)
    hs.push_back(wire::header_view{k, v ? std::optional<std::string_view>(*v) : std::nullopt});
  hs.push_back(wire::header_view{"ferry-dlq-original-id", original});
  hs.push_back(wire::header_view{"ferry-dlq-subscription", r.subscription});
  hs.push_back(wire::header_view{"ferry-dlq-delivery-count", count});
  hs.push_back(wire::header_view{"ferry-dlq-reason", r.reason});
  hs.push_back(wire::header_view{"ferry-dlq-time", when});
  wire::batch_builder b;
  b.add(r.key ? std::optional<std::string_view>(*r.key) : std::nullopt,
        r.value ? std::optional<std::string_view>(*r.value) : std::nullopt, hs, r.timestamp);
  auto span = b.finish(-1, 0, -1);
  std::vector<std::byte> bytes(span.begin(), span.end());
  auto h = wire::verify_batch(bytes);
  if (!h) {
    done(h.error());
    co_return;
  }
  auto p = t->partitions[0];
  auto ex = rt_.executor(p->owner());
  auto header = *h;
  auto res = co_await asio::co_spawn(ex, p->produce(std::span<std::byte>(bytes), header, partition::ack_level::durable),
                                     asio::use_awaitable);
  if (!res) {
    done(res.error());
    co_return;
  }
  logger()->info("dead letter {} -> {}/0/{} (subscription {}, {} deliveries: {})", original, r.dead_letter_topic,
                 res->base.value, r.subscription, r.delivery_count, r.reason);
  done(result<void>{});
}

}  // namespace ferry::topics
