#include "broker/cluster/metadata_image.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "broker/cluster/cluster_test_fixture.h"
#include "broker/cluster/records.h"
#include "broker/meta/record_tables.h"
#include "schema/crc32c.h"
#include "schema/meta_generated.h"

namespace ferry::cluster {
namespace {

using testing::apply_next;
using testing::registration;
using testing::subscription;
using testing::topic;

std::string enc(const metadata_record& r) { return encode_metadata_record(r); }

// Three registered brokers 1, 2, 3 at offsets 1..3.
metadata_image three_brokers() {
  metadata_image img;
  for (int32_t n = 1; n <= 3; ++n) EXPECT_TRUE(apply_next(img, registration(n, 1)));
  return img;
}

TEST(records, every_kind_round_trips) {
  broker_registration reg{node_id{4}, 77, "h:1", "h:2", "", "rack-a"};
  std::vector<metadata_record> all = {
      topic("orders", 9, {{1, 2}, {2, 3}}),
      subscription("orders", 9, "billing", 3),
      reg,
      broker_fenced{node_id{4}, 77},
      broker_unfenced{node_id{4}, 78},
      topic_deleted{"orders", 9},
      subscription_deleted{"orders", "billing", 3},
      id_allocation{100, 200},
  };
  for (const auto& r : all) {
    auto back = decode_metadata_record(encode_metadata_record(r));
    ASSERT_TRUE(back) << back.error().to_string();
    ASSERT_EQ(back->index(), r.index()) << record_kind(r);
    // Encoding is deterministic, so equal bytes mean equal values.
    EXPECT_EQ(encode_metadata_record(*back), encode_metadata_record(r)) << record_kind(r);
  }
  auto t = decode_metadata_record(enc(topic("orders", 9, {{1, 2}, {2, 3}})));
  ASSERT_TRUE(t);
  const auto& te = std::get<topic_entry>(*t);
  EXPECT_EQ(te.topic.name, "orders");
  EXPECT_EQ(te.topic.config.partitions, 2);
  ASSERT_EQ(te.assignments.size(), 2U);
  EXPECT_EQ(te.assignments[1].replicas, (std::vector<node_id>{node_id{2}, node_id{3}}));
  auto r = decode_metadata_record(enc(reg));
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<broker_registration>(*r), reg);
}

// records.cc builds the Topic table (with its assignments) around broker/meta's TopicConfig
// builder and reads it back with broker/meta's reader: every field, set away from its default,
// must come back.
TEST(records, every_topic_config_field_survives_the_round_trip) {
  topic_entry t = topic("cfg", 3, {{1}, {2}, {1}});
  meta::topic_config& c = t.topic.config;
  c.replication = 1;
  c.retention_ms = 11;
  c.retention_bytes = 12;
  c.segment_bytes = 13;
  c.segment_ms = 14;
  c.max_batch_bytes = 15;
  c.fsync = meta::fsync_mode::interval;
  c.fsync_interval_ms = 16;
  c.max_delay_ms = 17;
  auto r = decode_metadata_record(enc(t));
  ASSERT_TRUE(r);
  const meta::topic_config& d = std::get<topic_entry>(*r).topic.config;
  EXPECT_EQ(d.partitions, 3);
  EXPECT_EQ(d.replication, 1);
  EXPECT_EQ(d.retention_ms, 11);
  EXPECT_EQ(d.retention_bytes, 12);
  EXPECT_EQ(d.segment_bytes, 13);
  EXPECT_EQ(d.segment_ms, 14);
  EXPECT_EQ(d.max_batch_bytes, 15);
  EXPECT_EQ(d.fsync, meta::fsync_mode::interval);
  EXPECT_EQ(d.fsync_interval_ms, 16);
  EXPECT_EQ(d.max_delay_ms, 17);
  // And the store's own encoding of the same topic decodes to the same config.
  auto store = meta::decode_topic_record(meta::encode_topic_record(t.topic));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->config.segment_ms, d.segment_ms);
  EXPECT_EQ(store->config.fsync_interval_ms, d.fsync_interval_ms);
}

TEST(records, a_store_topic_record_reads_without_assignments) {
  meta::topic_record old;
  old.name = "legacy";
  old.id = 5;
  auto r = decode_metadata_record(meta::encode_topic_record(old));
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<topic_entry>(*r).topic.id, 5U);
  EXPECT_TRUE(std::get<topic_entry>(*r).assignments.empty());
}

TEST(records, damaged_unknown_version_and_unknown_kind_are_refused) {
  EXPECT_EQ(decode_metadata_record("format=1\nname=x\n").error().code, errc::storage_error);
  std::string bytes = registration(1, 1);
  bytes.resize(bytes.size() - 6);
  EXPECT_EQ(decode_metadata_record(bytes).error().code, errc::storage_error);

  flatbuffers::FlatBufferBuilder b;
  auto body = meta::fb::CreateBrokerFenced(b, 1, 1).Union();
  meta::fb::FinishRecordBuffer(b, meta::fb::CreateRecord(b, 2, meta::fb::Body::BrokerFenced, body));
  auto v2 = decode_metadata_record({reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()});
  ASSERT_FALSE(v2);
  EXPECT_NE(v2.error().message.find("version 2"), std::string::npos) << v2.error().message;

  flatbuffers::FlatBufferBuilder u;
  auto ubody = meta::fb::CreateBrokerFenced(u, 1, 1).Union();
  meta::fb::FinishRecordBuffer(u, meta::fb::CreateRecord(u, 1, static_cast<meta::fb::Body>(200), ubody));
  auto unknown = decode_metadata_record({reinterpret_cast<const char*>(u.GetBufferPointer()), u.GetSize()});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown"), std::string::npos) << unknown.error().message;
}

TEST(metadata_image, version_is_the_last_applied_offset_also_when_refused) {
  metadata_image img;
  EXPECT_EQ(img.version(), 0U);
  EXPECT_EQ(img.apply(4, registration(1, 1)).status, apply_status::applied);
  EXPECT_EQ(img.version(), 4U);
  auto o = img.apply(9, "not a record at all");
  EXPECT_EQ(o.status, apply_status::refused);
  EXPECT_NE(o.reason.find("FMET"), std::string::npos) << o.reason;
  EXPECT_EQ(img.version(), 9U);
  EXPECT_EQ(img.refused(), 1U);
  img.advance(12);  // a noop entry of the metadata group
  EXPECT_EQ(img.version(), 12U);
  EXPECT_EQ(img.brokers().size(), 1U);
}

TEST(metadata_image, applying_an_offset_twice_is_a_programmer_error) {
  metadata_image img;
  ASSERT_TRUE(apply_next(img, registration(1, 1)));
  EXPECT_DEATH(img.apply(1, registration(2, 1)), "offset order");
}

TEST(metadata_image, registration_needs_a_newer_incarnation_and_unfences) {
  metadata_image img = three_brokers();
  EXPECT_FALSE(apply_next(img, registration(2, 1)));                 // same incarnation: a retry or a replay
  EXPECT_FALSE(apply_next(img, enc(broker_fenced{node_id{2}, 0})));  // an older process
  EXPECT_EQ(img.broker(node_id{2})->state, broker_state::alive);
  ASSERT_TRUE(apply_next(img, enc(broker_fenced{node_id{2}, 1})));
  EXPECT_EQ(img.broker(node_id{2})->state, broker_state::fenced);
  EXPECT_FALSE(apply_next(img, enc(broker_fenced{node_id{2}, 1})));  // already fenced
  ASSERT_TRUE(apply_next(img, registration(2, 5)));
  EXPECT_EQ(img.broker(node_id{2})->state, broker_state::alive);
  EXPECT_EQ(img.broker(node_id{2})->registration.incarnation, 5U);
  EXPECT_EQ(img.broker(node_id{2})->registered_at, img.version());
  EXPECT_FALSE(apply_next(img, registration(2, 4)));
  EXPECT_FALSE(apply_next(img, registration(0, 1)));
  broker_registration no_peer{node_id{7}, 1, "h:1", "", "", ""};
  EXPECT_FALSE(apply_next(img, enc(no_peer)));
  EXPECT_EQ(img.broker(node_id{7}), nullptr);
}

TEST(metadata_image, unfencing_needs_the_current_incarnation_of_a_fenced_broker) {
  metadata_image img = three_brokers();
  EXPECT_FALSE(apply_next(img, enc(broker_unfenced{node_id{1}, 1})));  // not fenced
  ASSERT_TRUE(apply_next(img, enc(broker_fenced{node_id{1}, 1})));
  EXPECT_FALSE(apply_next(img, enc(broker_unfenced{node_id{1}, 2})));
  EXPECT_FALSE(apply_next(img, enc(broker_unfenced{node_id{9}, 1})));
  ASSERT_TRUE(apply_next(img, enc(broker_unfenced{node_id{1}, 1})));
  EXPECT_EQ(img.broker(node_id{1})->state, broker_state::alive);
}

TEST(metadata_image, a_topic_needs_one_valid_assignment_per_partition) {
  metadata_image img = three_brokers();
  EXPECT_FALSE(apply_next(img, enc(topic("t", 1, {{1}, {4}}))));  // broker 4 not registered
  EXPECT_FALSE(apply_next(img, enc(topic("t", 1, {{1, 1}}))));    // twice the same broker
  auto short_t = topic("t", 1, {{1}, {2}});
  short_t.assignments.pop_back();
  EXPECT_FALSE(apply_next(img, enc(short_t)));  // 2 partitions, 1 assignment
  auto wrong_r = topic("t", 1, {{1}, {2}});
  wrong_r.assignments[1].replicas.emplace_back(3);
  EXPECT_FALSE(apply_next(img, enc(wrong_r)));  // 2 replicas for factor 1
  auto swapped = topic("t", 1, {{1}, {2}});
  std::swap(swapped.assignments[0], swapped.assignments[1]);
  EXPECT_FALSE(apply_next(img, enc(swapped)));  // not in partition order
  EXPECT_FALSE(apply_next(img, enc(topic("bad/name", 1, {{1}}))));
  meta::topic_record old;  // a store record: no assignments
  old.name = "t";
  old.id = 1;
  EXPECT_FALSE(apply_next(img, meta::encode_topic_record(old)));
  EXPECT_TRUE(img.topics().empty());
  EXPECT_EQ(img.next_topic_id(), 1U);
  EXPECT_EQ(img.refused(), 7U);
  ASSERT_TRUE(apply_next(img, enc(topic("t", 1, {{1, 2}, {2, 3}}))));
  EXPECT_EQ(img.next_topic_id(), 2U);
}

TEST(metadata_image, topic_ids_are_never_reused_and_an_update_keeps_its_id) {
  metadata_image img = three_brokers();
  ASSERT_TRUE(apply_next(img, enc(topic("a", 3, {{1}}))));
  EXPECT_EQ(img.next_topic_id(), 4U);
  EXPECT_FALSE(apply_next(img, enc(topic("b", 3, {{1}}))));  // id handed out already
  EXPECT_FALSE(apply_next(img, enc(topic("b", 2, {{1}}))));
  EXPECT_FALSE(apply_next(img, enc(topic("a", 4, {{1}}))));  // another topic of the same name
  ASSERT_TRUE(apply_next(img, enc(topic_deleted{"a", 3})));
  EXPECT_FALSE(apply_next(img, enc(topic("a", 3, {{1}}))));  // re-created: needs a new id
  ASSERT_TRUE(apply_next(img, enc(topic("a", 4, {{1}}))));
  EXPECT_FALSE(apply_next(img, enc(topic_deleted{"a", 3})));  // the old one is gone already
  EXPECT_FALSE(apply_next(img, enc(topic_deleted{"zzz", 4})));
}

TEST(metadata_image, an_update_may_add_partitions_and_move_replicas_but_not_shrink) {
  metadata_image img = three_brokers();
  ASSERT_TRUE(apply_next(img, enc(topic("a", 1, {{1}, {2}}))));
  metadata_version created = img.version();
  auto longer_retention = topic("a", 1, {{1}, {2}});
  longer_retention.topic.config.retention_ms *= 2;
  ASSERT_TRUE(apply_next(img, enc(longer_retention)));
  EXPECT_EQ(img.topic("a")->assigned_at, created);  // the assignment did not change
  EXPECT_EQ(img.topic("a")->changed_at, img.version());
  ASSERT_TRUE(apply_next(img, enc(topic("a", 1, {{1}, {3}, {2}}))));
  EXPECT_EQ(img.topic("a")->assigned_at, img.version());
  EXPECT_FALSE(apply_next(img, enc(topic("a", 1, {{1}, {3}}))));
  EXPECT_EQ(img.topic("a")->entry.topic.config.partitions, 3);
}

TEST(metadata_image, subscriptions_follow_their_topic) {
  metadata_image img = three_brokers();
  EXPECT_FALSE(apply_next(img, enc(subscription("a", 1, "s", 1))));  // no topic yet
  ASSERT_TRUE(apply_next(img, enc(topic("a", 1, {{1}}))));
  EXPECT_FALSE(apply_next(img, enc(subscription("a", 2, "s", 1))));  // wrong topic id
  EXPECT_FALSE(apply_next(img, enc(subscription("a", 1, "s", 0))));  // no id
  ASSERT_TRUE(apply_next(img, enc(subscription("a", 1, "s", 1))));
  ASSERT_TRUE(apply_next(img, enc(subscription("a", 1, "u", 7))));
  EXPECT_EQ(img.next_subscription_id(), 8U);
  EXPECT_FALSE(apply_next(img, enc(subscription("a", 1, "v", 7))));  // id handed out
  EXPECT_FALSE(apply_next(img, enc(subscription("a", 1, "s", 8))));  // exists with id 1
  auto changed = subscription("a", 1, "s", 1);
  changed.config.max_deliveries = 3;
  ASSERT_TRUE(apply_next(img, enc(changed)));
  EXPECT_EQ(img.subscription("a", "s")->config.max_deliveries, 3);
  EXPECT_FALSE(apply_next(img, enc(subscription_deleted{"a", "s", 2})));
  ASSERT_TRUE(apply_next(img, enc(subscription_deleted{"a", "s", 1})));
  EXPECT_EQ(img.subscription("a", "s"), nullptr);
  // A deleted topic takes its subscriptions, and only its own.
  ASSERT_TRUE(apply_next(img, enc(topic("b", 2, {{2}}))));
  ASSERT_TRUE(apply_next(img, enc(subscription("b", 2, "s", 8))));
  ASSERT_TRUE(apply_next(img, enc(topic_deleted{"a", 1})));
  EXPECT_EQ(img.subscription("a", "u"), nullptr);
  EXPECT_NE(img.subscription("b", "s"), nullptr);
  EXPECT_EQ(img.subscriptions().size(), 1U);
}

TEST(metadata_image, id_allocation_never_lowers_a_counter) {
  metadata_image img;
  ASSERT_TRUE(apply_next(img, enc(id_allocation{50, 60})));
  EXPECT_EQ(img.next_topic_id(), 50U);
  EXPECT_EQ(img.next_subscription_id(), 60U);
  EXPECT_FALSE(apply_next(img, enc(id_allocation{51, 59})));
  EXPECT_EQ(img.next_topic_id(), 50U);
  ASSERT_TRUE(apply_next(img, enc(id_allocation{50, 70})));
  EXPECT_EQ(img.next_subscription_id(), 70U);
}

TEST(metadata_image, routes_name_the_first_replica_while_it_is_alive) {
  metadata_image img = three_brokers();
  ASSERT_TRUE(apply_next(img, enc(topic("a", 1, {{2, 1}, {3, 2}}))));
  metadata_version assigned = img.version();
  auto table = img.routing();
  EXPECT_EQ(table.version, img.version());
  const auto& rs = table.routes;
  ASSERT_EQ(rs.size(), 2U);
  EXPECT_EQ(rs[0].leader, node_id{2});
  EXPECT_EQ(rs[0].client_address, "10.0.0.2:7070");
  EXPECT_EQ(rs[0].replicas, (std::vector<node_id>{node_id{2}, node_id{1}}));
  EXPECT_EQ(rs[0].epoch, assigned);
  EXPECT_EQ(rs[1].leader, node_id{3});
  ASSERT_TRUE(apply_next(img, enc(broker_fenced{node_id{3}, 1})));
  auto r1 = img.route_of("a", 1);
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->leader, no_leader);
  EXPECT_TRUE(r1->client_address.empty());
  EXPECT_EQ(img.route_of("a", 2).error().code, errc::unknown_partition);
  EXPECT_EQ(img.route_of("b", 0).error().code, errc::unknown_topic);
  ASSERT_TRUE(apply_next(img, registration(3, 2)));
  EXPECT_EQ(img.route_of("a", 1)->leader, node_id{3});
}

// A random mix of records: most are built from the state so far (a shadow image) so that they
// apply, the rest are random (most of those are refused) or damaged.
std::vector<std::string> random_entries(uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto pick_u = [&rng](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  const std::vector<std::string> names = {"a", "b", "c", "orders"};
  metadata_image shadow;
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    const bool valid = pick(0, 3) != 0;
    const int32_t node = pick(1, 5);
    const broker_info* b = shadow.broker(node_id{node});
    const uint64_t cur_inc = b ? b->registration.incarnation : 0;
    const uint64_t inc = valid ? cur_inc + (b && b->state == broker_state::alive ? 0 : 1) : pick_u(0, 4);
    const std::string& name = names[static_cast<size_t>(pick(0, 3))];
    const std::string& sub = names[static_cast<size_t>(pick(0, 3))];
    const topic_info* t = shadow.topic(name);
    const uint64_t tid = valid && t ? t->entry.topic.id : pick_u(0, 8);
    const meta::subscription_record* s = shadow.subscription(name, sub);
    std::string e;
    switch (pick(0, 9)) {
      case 0:
      case 1:
        e = registration(node, valid ? cur_inc + 1 : pick_u(0, 4));
        break;
      case 2:
        e = enc(broker_fenced{node_id{node}, inc});
        break;
      case 3:
        e = enc(broker_unfenced{node_id{node}, valid ? cur_inc : inc});
        break;
      case 4:
      case 5: {
        // Partitions grow (or stay) when the topic exists; replicas are consecutive node ids.
        int parts = t && valid ? t->entry.topic.config.partitions + pick(0, 1) : pick(1, 4);
        std::vector<std::vector<int32_t>> reps(static_cast<size_t>(parts));
        int r = t && valid ? t->entry.topic.config.replication : pick(1, 2);
        for (auto& p : reps) {
          int first = pick(1, 5);
          for (int k = 0; k < r; ++k) p.push_back((first + k - 1) % 5 + 1);
        }
        uint64_t id = valid ? (t ? t->entry.topic.id : shadow.next_topic_id() + pick_u(0, 2)) : pick_u(0, 8);
        e = enc(topic(name, id, reps));
        break;
      }
      case 6:
        e = enc(topic_deleted{name, tid});
        break;
      case 7: {
        uint64_t id = valid ? (s ? s->id : shadow.next_subscription_id()) : pick_u(0, 8);
        auto rec = subscription(name, tid, sub, id);
        rec.config.max_deliveries = pick(0, 20);
        e = enc(rec);
        break;
      }
      case 8:
        e = enc(subscription_deleted{name, sub, valid && s ? s->id : pick_u(0, 8)});
        break;
      default:
        if (valid) {
          e = enc(id_allocation{shadow.next_topic_id() + pick_u(0, 3), shadow.next_subscription_id() + pick_u(0, 3)});
        } else {
          e = registration(node, cur_inc + 1);
          e[static_cast<size_t>(pick(0, static_cast<int>(e.size()) - 1))] ^= 0x5a;
        }
    }
    shadow.apply(shadow.version() + 1, e);
    out.push_back(std::move(e));
  }
  return out;
}

// The images log every refusal; hundreds of them would drown the test's output.
class quiet_log {
 public:
  quiet_log() : level_(spdlog::default_logger()->level()) { spdlog::default_logger()->set_level(spdlog::level::err); }
  ~quiet_log() { spdlog::default_logger()->set_level(level_); }
  quiet_log(const quiet_log&) = delete;
  quiet_log& operator=(const quiet_log&) = delete;

 private:
  spdlog::level::level_enum level_;
};

TEST(metadata_image, two_images_fed_the_same_random_entries_are_equal) {
  quiet_log quiet;
  size_t topics_seen = 0;
  size_t subscriptions_seen = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    auto entries = random_entries(seed, 300);
    metadata_image a;
    metadata_image b;
    std::mt19937_64 gaps(seed * 7919);
    metadata_version offset = 0;
    uint64_t applied = 0;
    for (const auto& e : entries) {
      offset += 1 + gaps() % 3;  // noop and membership entries leave gaps in the offsets
      bool ok_a = a.apply(offset, e).status == apply_status::applied;
      bool ok_b = b.apply(offset, e).status == apply_status::applied;
      ASSERT_EQ(ok_a, ok_b) << "seed " << seed << " offset " << offset;
      applied += ok_a ? 1 : 0;
      ASSERT_EQ(a.version(), offset);
    }
    EXPECT_EQ(a, b) << "seed " << seed;
    EXPECT_EQ(a.dump(), b.dump());
    EXPECT_EQ(a.refused(), b.refused());
    // The mix must exercise both outcomes, or the comparison proves little.
    EXPECT_GT(applied, entries.size() / 3) << "seed " << seed;
    EXPECT_GT(a.refused(), entries.size() / 10) << "seed " << seed;
    EXPECT_FALSE(a.brokers().empty()) << "seed " << seed;
    topics_seen += a.topics().size();
    subscriptions_seen += a.subscriptions().size();
  }
  // The runs end with topics and subscriptions in the images, not only brokers.
  EXPECT_GT(topics_seen, 50U);
  EXPECT_GT(subscriptions_seen, 25U);
}

TEST(metadata_image, images_that_differ_in_one_entry_are_not_equal) {
  quiet_log quiet;
  auto entries = random_entries(3, 200);
  metadata_image a;
  metadata_image b;
  for (const auto& e : entries) {
    ASSERT_TRUE(a.apply(a.version() + 1, e).status == b.apply(b.version() + 1, e).status);
  }
  ASSERT_EQ(a, b);
  ASSERT_TRUE(apply_next(a, registration(9, 1)));
  b.advance(b.version() + 1);
  EXPECT_EQ(a.version(), b.version());
  EXPECT_NE(a, b);
}

// A snapshot taken at a random point of a random log, restored, then fed the rest of the log next
// to the image it came from: the two never differ.
TEST(metadata_image_snapshot, restore_at_a_random_point_then_the_rest_of_the_log_gives_equal_images) {
  quiet_log quiet;
  size_t topics_at_cut = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    auto entries = random_entries(seed, 300);
    std::mt19937_64 rng(seed * 104729);
    const size_t cut = rng() % (entries.size() + 1);
    metadata_image a;
    metadata_version offset = 0;
    for (size_t i = 0; i < cut; ++i) {
      offset += 1 + rng() % 3;
      a.apply(offset, entries[i]);
    }
    if (rng() % 2 == 0) a.advance(a.version() + 1 + rng() % 3);  // a noop last
    std::string bytes = a.snapshot();
    auto b = metadata_image::restore(bytes);
    ASSERT_TRUE(b) << "seed " << seed << ": " << b.error().to_string();
    ASSERT_EQ(b->dump(), a.dump()) << "seed " << seed;
    EXPECT_EQ(b->refused(), a.refused());
    EXPECT_EQ(b->version(), a.version());
    EXPECT_EQ(b->snapshot(), bytes) << "seed " << seed;  // equal images, equal snapshots
    topics_at_cut += a.topics().size();
    for (size_t i = cut; i < entries.size(); ++i) {
      offset = std::max(offset, a.version()) + 1 + rng() % 3;
      auto oa = a.apply(offset, entries[i]);
      auto ob = b->apply(offset, entries[i]);
      ASSERT_EQ(oa.status, ob.status) << "seed " << seed << " entry " << i << ": " << oa.reason << " / " << ob.reason;
    }
    EXPECT_EQ(b->dump(), a.dump()) << "seed " << seed;
    EXPECT_EQ(b->refused(), a.refused());
    EXPECT_EQ(b->routing().routes.size(), a.routing().routes.size());
  }
  EXPECT_GT(topics_at_cut, 20U);  // the cuts hold topics, not only brokers
}

TEST(metadata_image_snapshot, an_empty_image_round_trips) {
  metadata_image empty;
  auto r = metadata_image::restore(empty.snapshot());
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, empty);
  EXPECT_EQ(r->next_topic_id(), 1U);
}

TEST(metadata_image_snapshot, a_restored_image_applies_from_version_plus_one) {
  metadata_image a = three_brokers();
  ASSERT_TRUE(apply_next(a, enc(topic("t", 1, {{1, 2}, {2, 3}}))));
  auto b = metadata_image::restore(a.snapshot());
  ASSERT_TRUE(b);
  EXPECT_EQ(b->version(), 4U);
  EXPECT_EQ(b->route_of("t", 1)->epoch, a.route_of("t", 1)->epoch);
  EXPECT_EQ(b->apply(5, enc(broker_fenced{node_id{2}, 1})).status, apply_status::applied);
  EXPECT_EQ(b->route_of("t", 1)->leader, no_leader);
  EXPECT_DEATH(b->apply(5, registration(4, 1)), "offset order");
}

metadata_image rich_image() {
  quiet_log quiet;
  metadata_image a;
  for (const auto& e : random_entries(7, 300)) a.apply(a.version() + 1, e);
  return a;
}

// Every truncation and every flipped byte: refused with storage_error, or (a byte the format
// does not read, such as padding in the envelope) the same image. Inside the image bytes the
// checksum catches every one.
TEST(metadata_image_snapshot, damaged_bytes_are_refused_with_storage_error) {
  quiet_log quiet;
  metadata_image a = rich_image();
  ASSERT_FALSE(a.topics().empty());
  const std::string bytes = a.snapshot();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = metadata_image::restore(bytes.substr(0, n));
    ASSERT_FALSE(r) << "truncated to " << n;
    EXPECT_EQ(r.error().code, errc::storage_error);
  }
  std::vector<uint64_t> aligned((bytes.size() + 7) / 8);
  std::memcpy(aligned.data(), bytes.data(), bytes.size());
  const auto* snap = flatbuffers::GetRoot<meta::fb::MetadataSnapshot>(aligned.data());
  const size_t image_begin =
      static_cast<size_t>(snap->image()->data() - reinterpret_cast<const uint8_t*>(aligned.data()));
  const size_t image_end = image_begin + snap->image()->size();
  size_t refused = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      auto r = metadata_image::restore(bad);
      if (!r) {
        EXPECT_EQ(r.error().code, errc::storage_error);
        ++refused;
        continue;
      }
      ASSERT_FALSE(i >= image_begin && i < image_end) << "a damaged image byte " << i << " was accepted";
      ASSERT_EQ(r->dump(), a.dump()) << "byte " << i << " changed the image without being refused";
    }
  }
  EXPECT_GT(refused, 3 * (image_end - image_begin) - 1);
}

// Bytes that verify and carry a matching checksum but describe an impossible image.
std::string wrap_image(flatbuffers::FlatBufferBuilder& inner, uint16_t format = 1) {
  flatbuffers::FlatBufferBuilder outer;
  auto image = outer.CreateVector(inner.GetBufferPointer(), inner.GetSize());
  outer.Finish(
      meta::fb::CreateMetadataSnapshot(outer, format, crc32c(inner.GetBufferPointer(), inner.GetSize()), image),
      "FMIS");
  return {reinterpret_cast<const char*>(outer.GetBufferPointer()), outer.GetSize()};
}

TEST(metadata_image_snapshot, an_image_that_breaks_the_invariants_is_refused) {
  namespace fb = meta::fb;
  {  // a topic whose partition is assigned to a broker nobody registered
    flatbuffers::FlatBufferBuilder b;
    auto name = b.CreateString("t");
    meta::topic_config c;
    auto config = b.CreateVector(std::vector<flatbuffers::Offset<fb::Assignment>>{
        fb::CreateAssignment(b, 0, b.CreateVector(std::vector<int32_t>{9}))});
    auto tc = fb::CreateTopicConfig(b, c.partitions, c.replication, c.retention_ms, c.retention_bytes, c.segment_bytes,
                                    c.segment_ms, c.max_batch_bytes, fb::FsyncMode::Always, c.fsync_interval_ms,
                                    c.max_delay_ms);
    auto t = fb::CreateTopic(b, name, 1, tc, config);
    auto ts = b.CreateVector(std::vector<flatbuffers::Offset<fb::ImageTopic>>{fb::CreateImageTopic(b, t, 1, 1)});
    b.Finish(fb::CreateMetadataImage(b, 5, 2, 1, 0, 0, ts, 0));
    auto r = metadata_image::restore(wrap_image(b));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::storage_error);
    EXPECT_NE(r.error().message.find("not registered"), std::string::npos) << r.error().message;
  }
  {  // a subscription of a topic that is not there
    flatbuffers::FlatBufferBuilder b;
    auto s = meta::build_subscription(b, subscription("gone", 4, "s", 1));
    auto ss = b.CreateVector(std::vector<flatbuffers::Offset<fb::Subscription>>{s});
    b.Finish(fb::CreateMetadataImage(b, 5, 5, 2, 0, 0, 0, ss));
    auto r = metadata_image::restore(wrap_image(b));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::storage_error);
    EXPECT_NE(r.error().message.find("no topic"), std::string::npos) << r.error().message;
  }
  {  // an unknown format, and a log record where a snapshot belongs
    flatbuffers::FlatBufferBuilder b;
    b.Finish(fb::CreateMetadataImage(b, 5, 1, 1, 0));
    auto r = metadata_image::restore(wrap_image(b, 2));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("format 2"), std::string::npos) << r.error().message;
    EXPECT_TRUE(metadata_image::restore(wrap_image(b, 1)));
    EXPECT_EQ(metadata_image::restore(registration(1, 1)).error().code, errc::storage_error);
  }
}

}  // namespace
}  // namespace ferry::cluster
