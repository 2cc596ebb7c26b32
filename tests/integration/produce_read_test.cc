// Produce and read back through the client library against a real ferryd: every message is
// acknowledged, read back byte for byte (keys, values, headers, timestamps) in the partition its
// key maps to; topics and data survive a SIGTERM + restart; topic admin (create, list, describe,
// delete, re-create) behaves.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "ferry/client/client.h"
#include "tests/support/broker_process.h"
#include "tests/support/frames.h"

namespace ferry::test {
namespace {

using namespace ferry::client;

std::string name_of(errc e) { return std::string(errc_name(e)); }

struct sent_message {
  std::string topic;
  message m;
  std::optional<message_id> id;
  std::optional<error> err;
  bool done = false;
};

client_options opts_for(const broker_process& b) {
  client_options o;
  o.bootstrap = b.bootstrap();
  o.request_timeout = 10s;
  return o;
}

// Reads `partition` from `from` until `end` (exclusive) or the deadline.
result<std::vector<received_message>> read_partition(const broker_process& b, const std::string& topic,
                                                     int32_t partition, int64_t end, int64_t from = reader::earliest) {
  auto r = reader::create(opts_for(b), topic, partition, from);
  if (!r) return r.error();
  std::vector<received_message> out;
  auto deadline = clock_type::now() + 20s;
  while ((out.empty() ? (*r)->position() : out.back().offset + 1) < end) {
    if (clock_type::now() > deadline)
      return fail(errc::timeout, topic + "/" + std::to_string(partition) + ": read " + std::to_string(out.size()) +
                                     " messages, position " + std::to_string((*r)->position()) +
                                     ", expected the end at " + std::to_string(end));
    auto got = (*r)->poll(200ms);
    if (!got) return got.error();
    for (auto& m : *got) out.push_back(std::move(m));
  }
  return out;
}

class produce_read : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.start());
    connect_admin();
  }
  void connect_admin() {
    auto a = admin::create(opts_for(broker_));
    ASSERT_TRUE(a) << a.error().to_string();
    admin_ = std::move(*a);
  }

  // Sends `n` messages to `topic` (every third keyless, the rest over 17 keys, random binary
  // values, headers, explicit timestamps) and waits for every acknowledgement.
  void produce(const std::string& topic, int n, uint64_t seed) {
    producer_options po;
    po.bootstrap = broker_.bootstrap();
    po.linger = 2ms;
    po.batch_bytes = 16 << 10;
    po.delivery_timeout = 30s;
    auto p = producer::create(po);
    ASSERT_TRUE(p) << p.error().to_string();
    size_t first = sent_.size();
    for (int i = 0; i < n; ++i) {
      auto s = std::make_unique<sent_message>();
      s->topic = topic;
      if (i % 3 != 0) s->m.key = "key-" + std::to_string(i % 17);
      if (i == 5) s->m.key = "";  // an empty key is a key
      s->m.value = random_payload(seed + i, 0, i % 50 == 0 ? 100000 : 2000);
      s->m.headers = {{"idx", std::to_string(i)}, {"bin", random_payload(seed * 7 + i, 0, 20)}};
      if (i % 10 == 0) s->m.headers.push_back({"empty", ""});
      s->m.timestamp_ms = 1'600'000'000'000 + seed + i;
      sent_.push_back(std::move(s));
    }
    for (size_t i = first; i < sent_.size(); ++i) {
      sent_message* s = sent_[i].get();
      (*p)->send(topic, s->m, [this, s](const result<message_id>& r) {
        std::lock_guard lk(mu_);
        EXPECT_FALSE(s->done) << "callback ran twice";
        s->done = true;
        if (r)
          s->id = *r;
        else
          s->err = r.error();
      });
    }
    auto f = (*p)->flush(60s);
    ASSERT_TRUE(f) << f.error().to_string();
    (*p)->close();
    std::lock_guard lk(mu_);
    for (size_t i = first; i < sent_.size(); ++i) {
      auto& s = *sent_[i];
      ASSERT_TRUE(s.done) << "message " << i << ": no callback after flush";
      ASSERT_TRUE(s.id) << "message " << i << " failed: " << s.err->to_string();
      EXPECT_EQ(s.id->topic, topic);
    }
  }

  // Reads every partition of `topic` and checks it holds exactly the acknowledged messages,
  // byte for byte, in the partition their key maps to, keys in send order.
  void verify(const std::string& topic, int32_t partitions) {
    std::map<std::pair<int32_t, int64_t>, const sent_message*> by_id;
    std::vector<int64_t> end(partitions, 0);
    for (auto& s : sent_) {
      if (s->topic != topic) continue;
      ASSERT_TRUE(s->id);
      ASSERT_GE(s->id->partition, 0);
      ASSERT_LT(s->id->partition, partitions);
      EXPECT_TRUE(by_id.emplace(std::make_pair(s->id->partition, s->id->offset), s.get()).second)
          << "two messages acknowledged with the same id " << s->id->to_string();
      if (s->m.key) {
        EXPECT_EQ(s->id->partition, partition_for_key(*s->m.key, partitions)) << "key '" << *s->m.key << "'";
      }
      end[s->id->partition] = std::max(end[s->id->partition], s->id->offset + 1);
    }
    size_t seen = 0;
    for (int32_t p = 0; p < partitions; ++p) {
      SCOPED_TRACE(topic + "/" + std::to_string(p));
      auto got = read_partition(broker_, topic, p, end[p]);
      ASSERT_TRUE(got) << got.error().to_string();
      for (size_t i = 0; i < got->size(); ++i) {
        auto& r = (*got)[i];
        EXPECT_EQ(r.offset, static_cast<int64_t>(i)) << "offsets are not continuous";
        EXPECT_EQ(r.topic, topic);
        EXPECT_EQ(r.partition, p);
        EXPECT_EQ(r.id(), topic + "/" + std::to_string(p) + "/" + std::to_string(r.offset));
        auto it = by_id.find({p, r.offset});
        ASSERT_NE(it, by_id.end()) << "offset " << r.offset << " holds a message nobody acknowledged";
        const message& m = it->second->m;
        EXPECT_EQ(r.key, m.key);
        ASSERT_TRUE(r.value);
        EXPECT_TRUE(*r.value == m.value) << "value differs at offset " << r.offset << " (" << r.value->size() << " vs "
                                         << m.value.size() << " bytes)";
        EXPECT_EQ(r.timestamp_ms, m.timestamp_ms);
        EXPECT_GT(r.append_time_ms, 0);
        ASSERT_EQ(r.headers.size(), m.headers.size());
        for (size_t h = 0; h < m.headers.size(); ++h) {
          EXPECT_EQ(r.headers[h].key, m.headers[h].first);
          EXPECT_EQ(r.headers[h].value, std::optional<std::string>(m.headers[h].second));
        }
        ++seen;
      }
      EXPECT_EQ(static_cast<int64_t>(got->size()), end[p]);
    }
    EXPECT_EQ(seen, by_id.size());
    // Same key, same partition, send order = offset order (the producer keeps per-partition order).
    std::map<std::string, int64_t> last;
    for (auto& s : sent_) {
      if (s->topic != topic || !s->m.key) continue;
      auto [it, fresh] = last.emplace(*s->m.key, s->id->offset);
      if (!fresh) {
        EXPECT_GT(s->id->offset, it->second) << "key '" << *s->m.key << "' out of send order";
        it->second = s->id->offset;
      }
    }
  }

  broker_process broker_;
  std::unique_ptr<admin> admin_;
  std::mutex mu_;
  std::vector<std::unique_ptr<sent_message>> sent_;
};

TEST_F(produce_read, messages_are_read_back_byte_for_byte_and_survive_restart) {
  topic_config one;
  one.partitions = 1;
  topic_config four;
  four.partitions = 4;
  auto c1 = admin_->create_topic("single", one);
  ASSERT_TRUE(c1) << c1.error().to_string();
  EXPECT_EQ(c1->partitions, 1);
  auto c4 = admin_->create_topic("quad", four);
  ASSERT_TRUE(c4) << c4.error().to_string();
  EXPECT_EQ(c4->partitions, 4);

  produce("single", 300, 1);
  produce("quad", 600, 2);
  verify("single", 1);
  verify("quad", 4);

  // Every partition of the 4-partition topic got keyless messages (spread by the producer).
  auto d = admin_->describe_topic("quad");
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_EQ(d->partitions.size(), 4u);
  for (auto& p : d->partitions) EXPECT_GT(p.high_watermark, 0) << "partition " << p.partition << " is empty";

  ASSERT_EQ(broker_.sigterm_and_wait(), 0) << "SIGTERM did not end ferryd with exit code 0";
  ASSERT_TRUE(broker_.restart());
  connect_admin();

  auto l = admin_->list_topics();
  ASSERT_TRUE(l) << l.error().to_string();
  std::map<std::string, int32_t> names;
  for (auto& t : *l) names[t.name] = t.partitions;
  EXPECT_EQ(names, (std::map<std::string, int32_t>{{"quad", 4}, {"single", 1}}));
  verify("single", 1);
  verify("quad", 4);

  // Producing after the restart continues at the next offsets.
  produce("quad", 100, 3);
  verify("quad", 4);
}

TEST_F(produce_read, explicit_partition_and_reader_offsets) {
  topic_config cfg;
  cfg.partitions = 3;
  ASSERT_TRUE(admin_->create_topic("explicit", cfg));
  producer_options po;
  po.bootstrap = broker_.bootstrap();
  auto p = producer::create(po);
  ASSERT_TRUE(p) << p.error().to_string();
  std::vector<std::future<result<message_id>>> fs;
  for (int i = 0; i < 10; ++i) {
    message m;
    m.key = "ignored-for-routing";
    m.partition = 2;
    m.value = "v" + std::to_string(i);
    fs.push_back((*p)->send("explicit", std::move(m)));
  }
  for (int i = 0; i < 10; ++i) {
    auto r = fs[i].get();
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->partition, 2);
    EXPECT_EQ(r->offset, i);
    EXPECT_EQ(r->to_string(), "explicit/2/" + std::to_string(i));
  }
  // A bad partition fails the message, not the producer.
  message bad;
  bad.partition = 7;
  bad.value = "x";
  auto br = (*p)->send("explicit", std::move(bad)).get();
  ASSERT_FALSE(br);
  EXPECT_EQ(name_of(br.error().code), name_of(errc::unknown_partition)) << br.error().message;
  // Unknown topic.
  message m;
  m.value = "y";
  auto ur = (*p)->send("does-not-exist", std::move(m)).get();
  ASSERT_FALSE(ur);
  EXPECT_EQ(name_of(ur.error().code), name_of(errc::unknown_topic)) << ur.error().message;

  // Reading from an offset in the middle, and from latest.
  auto mid = read_partition(broker_, "explicit", 2, 10, 6);
  ASSERT_TRUE(mid) << mid.error().to_string();
  ASSERT_EQ(mid->size(), 4u);
  EXPECT_EQ((*mid)[0].offset, 6);
  EXPECT_EQ((*mid)[0].value, "v6");
  auto latest = reader::create(opts_for(broker_), "explicit", 2, reader::latest);
  ASSERT_TRUE(latest) << latest.error().to_string();
  auto none = (*latest)->poll(100ms);
  ASSERT_TRUE(none) << none.error().to_string();
  EXPECT_TRUE(none->empty());
  EXPECT_EQ((*latest)->position(), 10);
  message more;
  more.partition = 2;
  more.value = "after latest";
  ASSERT_TRUE((*p)->send("explicit", std::move(more)).get());
  std::vector<received_message> got;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = (*latest)->poll(100ms);
        if (r)
          for (auto& x : *r) got.push_back(x);
        return !got.empty();
      },
      10s));
  EXPECT_EQ(got[0].value, "after latest");
  EXPECT_EQ(got[0].offset, 10);
  // Other partitions are empty.
  auto p0 = read_partition(broker_, "explicit", 0, 0);
  ASSERT_TRUE(p0);
  EXPECT_TRUE(p0->empty());
}

TEST_F(produce_read, topic_admin_create_list_describe_delete_recreate) {
  topic_config cfg;
  cfg.partitions = 3;
  ASSERT_TRUE(admin_->create_topic("orders", cfg));
  cfg.partitions = 1;
  ASSERT_TRUE(admin_->create_topic("audit.log_v2", cfg));

  auto dup = admin_->create_topic("orders", cfg);
  ASSERT_FALSE(dup);
  EXPECT_EQ(name_of(dup.error().code), name_of(errc::topic_exists)) << dup.error().message;
  auto bad = admin_->create_topic("bad name", cfg);
  ASSERT_FALSE(bad);
  EXPECT_EQ(name_of(bad.error().code), name_of(errc::invalid_topic_name));
  topic_config zero;
  zero.partitions = 0;
  auto z = admin_->create_topic("zero", zero);
  ASSERT_FALSE(z);
  EXPECT_EQ(name_of(z.error().code), name_of(errc::invalid_argument));

  auto l = admin_->list_topics();
  ASSERT_TRUE(l) << l.error().to_string();
  std::set<std::string> names;
  for (auto& t : *l) names.insert(t.name);
  EXPECT_EQ(names, (std::set<std::string>{"audit.log_v2", "orders"}));

  produce("orders", 50, 9);
  auto d = admin_->describe_topic("orders");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->name, "orders");
  EXPECT_EQ(d->config.partitions, 3);
  ASSERT_EQ(d->partitions.size(), 3u);
  int64_t total = 0;
  for (auto& p : d->partitions) {
    EXPECT_EQ(p.log_start_offset, 0);
    EXPECT_EQ(p.high_watermark, p.log_end_offset);
    if (p.high_watermark > 0) {
      EXPECT_GT(p.size_bytes, 0);
    }
    EXPECT_GE(p.segments, 1);
    total += p.high_watermark;
  }
  EXPECT_EQ(total, 50);

  auto del = admin_->delete_topic("orders");
  ASSERT_TRUE(del) << del.error().to_string();
  auto gone = admin_->describe_topic("orders");
  ASSERT_FALSE(gone);
  EXPECT_EQ(name_of(gone.error().code), name_of(errc::unknown_topic));
  auto del2 = admin_->delete_topic("orders");
  ASSERT_FALSE(del2);
  EXPECT_EQ(name_of(del2.error().code), name_of(errc::unknown_topic));
  l = admin_->list_topics();
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].name, "audit.log_v2");

  // Re-created: a new, empty topic (possibly with another partition count).
  cfg.partitions = 2;
  ASSERT_TRUE(admin_->create_topic("orders", cfg));
  d = admin_->describe_topic("orders");
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_EQ(d->partitions.size(), 2u);
  for (auto& p : d->partitions) {
    EXPECT_EQ(p.high_watermark, 0);
    EXPECT_EQ(p.log_end_offset, 0);
  }
  auto r = reader::create(opts_for(broker_), "orders", 0, reader::earliest);
  ASSERT_TRUE(r) << r.error().to_string();
  auto got = (*r)->poll(100ms);
  ASSERT_TRUE(got) << got.error().to_string();
  EXPECT_TRUE(got->empty()) << "a re-created topic shows old messages";

  // The deletion and the re-creation survive a restart; the old data does not come back.
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  ASSERT_TRUE(broker_.restart());
  connect_admin();
  d = admin_->describe_topic("orders");
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_EQ(d->partitions.size(), 2u);
  for (auto& p : d->partitions) EXPECT_EQ(p.high_watermark, 0);
  l = admin_->list_topics();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->size(), 2u);
}

}  // namespace
}  // namespace ferry::test
