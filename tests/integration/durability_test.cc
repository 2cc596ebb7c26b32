// Durability against a real ferryd: a producer streams messages (through a loopback proxy, so it
// keeps one address while the broker restarts on new ports) and records every acknowledgement;
// the broker is killed with SIGKILL mid-stream (or stopped with SIGTERM, or crashes at the
// failpoint "after append, before fsync") and restarted. Afterwards every acknowledged message is
// there, at its acknowledged offset, byte for byte, exactly once; offsets are continuous; and the
// idempotent producer's retries did not store anything twice.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "ferry/client/client.h"
#include "tests/support/broker_process.h"
#include "tests/support/frames.h"
#include "tests/support/tcp_proxy.h"

namespace ferry::test {
namespace {

using namespace ferry::client;

std::string name_of(errc e) { return std::string(errc_name(e)); }

constexpr int32_t partitions = 2;

struct acked_message {
  uint64_t index;  // send order within its stream
  int32_t partition;
  int64_t offset;
  std::string value;
};

// One producer streaming keyed messages on its own thread until stopped; records what the broker
// acknowledged.
class stream {
 public:
  stream(std::string bootstrap, std::string topic, std::string tag) : topic_(std::move(topic)), tag_(std::move(tag)) {
    producer_options po;
    po.bootstrap = std::move(bootstrap);
    po.linger = 1ms;
    po.batch_bytes = 8 << 10;
    po.buffer_bytes = 1 << 20;
    po.max_in_flight = 5;
    po.connect_timeout = 1s;
    po.request_timeout = 3s;
    po.retry_backoff = 50ms;
    po.delivery_timeout = 60s;
    auto p = producer::create(po);
    EXPECT_TRUE(p) << p.error().to_string();
    if (p) producer_ = std::move(*p);
  }
  ~stream() { stop(); }

  void start(uint64_t limit = UINT64_MAX) {
    thread_ = std::thread([this, limit] {
      for (uint64_t i = 0; i < limit && !stop_.load(); ++i) {
        message m;
        m.key = "key-" + std::to_string(i % 8);
        m.value = tag_ + "/" + std::to_string(i) + "/" + random_payload(i * 31 + tag_.size(), 0, 400);
        ++sent_;
        producer_->send(topic_, m, [this, i, v = m.value](const result<message_id>& r) {
          std::lock_guard lk(mu_);
          if (r) {
            acked_.push_back(acked_message{i, r->partition, r->offset, v});
            ++acked_count_;
          } else {
            failures_[r.error().code]++;
            last_failure_ = r.error().to_string();
          }
        });
      }
    });
  }
  // Stops sending, flushes (waits for every callback) and closes the producer.
  void stop() {
    if (!producer_) return;
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    auto f = producer_->flush(90s);
    EXPECT_TRUE(f) << "flush: " << f.error().to_string();
    producer_->close();
    producer_.reset();
  }

  uint64_t acked() const { return acked_count_.load(); }
  uint64_t sent() const { return sent_.load(); }
  std::vector<acked_message> acked_messages() {
    std::lock_guard lk(mu_);
    return acked_;
  }
  std::string failure_summary() {
    std::lock_guard lk(mu_);
    std::string s;
    for (auto& [code, n] : failures_) s += std::string(errc_name(code)) + " x" + std::to_string(n) + " ";
    if (!last_failure_.empty()) s += "(last: " + last_failure_ + ")";
    return s;
  }

 private:
  std::unique_ptr<producer> producer_;
  std::string topic_;
  std::string tag_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> acked_count_{0};
  std::mutex mu_;
  std::vector<acked_message> acked_;
  std::map<errc, int> failures_;
  std::string last_failure_;
};

class durability : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.start());
    proxy_ = std::make_unique<tcp_proxy>(broker_.client_port());
    auto c = raw_client::connect(broker_.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    auto [e, m] = c->create_topic(topic_, partitions);
    ASSERT_EQ(name_of(e), name_of(errc::ok)) << m;
  }

  std::string via_proxy() const { return "127.0.0.1:" + std::to_string(proxy_->port()); }

  // Restarts the broker (after it was killed or stopped) and points the proxy at it.
  void restart(bool disarm_failpoints = true) {
    if (disarm_failpoints) broker_.options().env.clear();
    ASSERT_TRUE(broker_.restart());
    proxy_->set_target(broker_.client_port());
    proxy_->cut_all();  // links to the dead process: let the producer reconnect
  }

  // Every acknowledged message of every stream so far is at its offset, byte for byte, exactly
  // once; offsets are continuous; no message is stored twice (acknowledged or not: the producer is
  // idempotent); within a stream and partition, send order is offset order.
  void verify(const std::vector<acked_message>& acked, const std::string& what) {
    SCOPED_TRACE(what);
    auto c = raw_client::connect(broker_.client_port());
    ASSERT_TRUE(c) << c.error().to_string();
    std::map<std::pair<int32_t, int64_t>, std::string> stored;
    std::map<std::string, int> copies;
    for (int32_t p = 0; p < partitions; ++p) {
      auto all = c->read_all(topic_, p);
      ASSERT_TRUE(all) << "partition " << p << ": " << all.error().to_string();
      for (size_t i = 0; i < all->size(); ++i) {
        auto& r = (*all)[i];
        ASSERT_EQ(r.offset, static_cast<int64_t>(i)) << "partition " << p << ": offsets are not continuous";
        ASSERT_TRUE(r.value);
        stored[{p, r.offset}] = *r.value;
        copies[*r.value]++;
      }
    }
    size_t missing = 0, wrong = 0;
    for (auto& a : acked) {
      auto it = stored.find({a.partition, a.offset});
      if (it == stored.end()) {
        if (++missing <= 5)
          ADD_FAILURE() << "acknowledged message " << a.value.substr(0, a.value.find('/', a.value.find('/') + 1))
                        << " at " << topic_ << "/" << a.partition << "/" << a.offset << " is lost";
      } else if (it->second != a.value) {
        if (++wrong <= 5)
          ADD_FAILURE() << "offset " << a.partition << "/" << a.offset
                        << " holds another message than the one acknowledged";
      }
    }
    EXPECT_EQ(missing, 0u) << "acknowledged messages lost";
    EXPECT_EQ(wrong, 0u) << "acknowledged messages at the wrong offset or altered";
    size_t dups = 0;
    for (auto& [v, n] : copies) {
      if (n > 1 && ++dups <= 5) ADD_FAILURE() << "message " << v.substr(0, 20) << "... stored " << n << " times";
    }
    EXPECT_EQ(dups, 0u) << "messages stored more than once (a producer retry was not deduplicated)";
    // Send order within a partition (each stream's index): offsets increase with the index.
    std::map<std::pair<std::string, int32_t>, std::pair<uint64_t, int64_t>> last;
    for (auto& a : acked) {
      std::string tag = a.value.substr(0, a.value.find('/'));
      auto [it, fresh] = last.try_emplace({tag, a.partition}, a.index, a.offset);
      if (!fresh) {
        if (a.index > it->second.first) {
          EXPECT_GT(a.offset, it->second.second) << tag << " message " << a.index << " stored before an earlier one";
        }
        if (a.index > it->second.first) it->second = {a.index, a.offset};
      }
    }
    std::cerr << what << ": " << acked.size() << " acknowledged, " << stored.size() << " stored\n";
  }

  const std::string topic_ = "durable";
  broker_process broker_;
  std::unique_ptr<tcp_proxy> proxy_;
};

TEST_F(durability, acknowledged_messages_survive_kill9_mid_stream) {
  std::vector<acked_message> all_acked;
  const auto test_deadline = clock_type::now() + 150s;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    stream s(via_proxy(), topic_, "kill" + std::to_string(round));
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.acked() >= 1000; }, 30s))
        << "only " << s.acked() << " of " << s.sent() << " acknowledged; failures: " << s.failure_summary();
    // Kill while sends are in flight: the producer thread is still sending.
    int status = broker_.kill9();
    uint64_t acked_before = s.acked();
    std::cerr << "round " << round << ": killed with " << s.sent() - acked_before << " messages unacknowledged\n";
    EXPECT_EQ(status, 128 + SIGKILL);
    restart();
    // The producer reconnects through the proxy and carries on.
    ASSERT_TRUE(wait_until([&] { return s.acked() >= acked_before + 1000; }, 45s))
        << "after the restart only " << s.acked() - acked_before
        << " more acknowledged; failures: " << s.failure_summary();
    s.stop();
    EXPECT_EQ(s.failure_summary(), "") << "messages failed although the broker came back";
    auto acked = s.acked_messages();
    all_acked.insert(all_acked.end(), acked.begin(), acked.end());
    verify(all_acked, "after kill -9 round " + std::to_string(round));
    ASSERT_LT(clock_type::now(), test_deadline) << "kill -9 rounds are too slow";
  }
  // And once more after a last crash with nothing in flight: the recovery is stable.
  broker_.kill9();
  restart();
  verify(all_acked, "after a final kill -9");
}

TEST_F(durability, acknowledged_messages_survive_sigterm_mid_stream) {
  stream s(via_proxy(), topic_, "term");
  s.start();
  ASSERT_TRUE(wait_until([&] { return s.acked() >= 300; }, 30s)) << s.failure_summary();
  uint64_t acked_before = s.acked();
  EXPECT_EQ(broker_.sigterm_and_wait(), 0) << "graceful shutdown with produces in flight did not exit 0";
  restart();
  ASSERT_TRUE(wait_until([&] { return s.acked() >= acked_before + 300; }, 45s)) << s.failure_summary();
  s.stop();
  EXPECT_EQ(s.failure_summary(), "");
  auto acked = s.acked_messages();
  verify(acked, "after SIGTERM");
  EXPECT_EQ(broker_.sigterm_and_wait(), 0);
  restart();
  verify(acked, "after a second SIGTERM");
}

TEST_F(durability, acknowledged_messages_survive_cut_connections) {
  // The broker stays up; every client connection is cut, mid-stream, several times. Requests in
  // flight are lost with their connection, the producer reconnects and resends them, and the
  // broker's deduplication keeps every message exactly once, in send order.
  stream s(via_proxy(), topic_, "cut");
  s.start();
  ASSERT_TRUE(wait_until([&] { return s.acked() >= 500; }, 30s)) << s.failure_summary();
  for (int cut = 0; cut < 5; ++cut) {
    uint64_t before = s.acked();
    uint64_t accepted = proxy_->connections_accepted();
    proxy_->cut_all();
    ASSERT_TRUE(wait_until([&] { return proxy_->connections_accepted() > accepted && s.acked() >= before + 300; }, 30s))
        << "cut " << cut << ": no progress after reconnecting; failures: " << s.failure_summary();
  }
  s.stop();
  EXPECT_EQ(s.failure_summary(), "") << "messages failed although the broker never went down";
  verify(s.acked_messages(), "after 5 cut connections");
}

TEST_F(durability, acknowledged_messages_survive_sigstop_pause) {
  // A paused broker (SIGSTOP) answers nothing; after SIGCONT the producer's requests complete and
  // nothing is lost or stored twice (the producer may time out and resend meanwhile).
  stream s(via_proxy(), topic_, "stop");
  s.start();
  ASSERT_TRUE(wait_until([&] { return s.acked() >= 200; }, 30s)) << s.failure_summary();
  broker_.sigstop();
  // Answers already on their way when the broker stopped still arrive; wait until none has come
  // for 300 ms, then nothing more may be acknowledged while the broker is stopped.
  uint64_t seen = s.acked();
  auto quiet_since = clock_type::now();
  ASSERT_TRUE(wait_until(
      [&] {
        if (s.acked() != seen) {
          seen = s.acked();
          quiet_since = clock_type::now();
        }
        return clock_type::now() - quiet_since >= 300ms;
      },
      10s));
  uint64_t frozen = s.acked();
  std::this_thread::sleep_for(3500ms);  // longer than the producer's request timeout (3 s): forces resends
  EXPECT_EQ(s.acked(), frozen) << "acknowledgements came from a stopped broker";
  broker_.sigcont();
  ASSERT_TRUE(wait_until([&] { return s.acked() >= frozen + 300; }, 45s)) << s.failure_summary();
  s.stop();
  EXPECT_EQ(s.failure_summary(), "");
  verify(s.acked_messages(), "after SIGSTOP/SIGCONT");
}

// The failpoint makes the broker exit right after it appended a batch and before the fsync that
// would acknowledge it. Raw frames, so the test knows exactly which batch was in the air.
TEST_F(durability, crash_after_append_before_sync_loses_nothing_acknowledged) {
  const int64_t pid = 5150;
  int32_t seq = 0;
  std::vector<acked_message> acked;
  {
    auto c = raw_client::connect(broker_.client_port());
    ASSERT_TRUE(c);
    for (int b = 0; b < 20; ++b) {
      std::vector<std::string> vals;
      vals.reserve(5);
      for (int i = 0; i < 5; ++i)
        vals.push_back("fp/" + std::to_string(b * 5 + i) + "/" + random_payload(b * 5 + i, 1, 200));
      auto out = c->produce(topic_, 0, make_value_batch(vals, pid, seq));
      ASSERT_EQ(name_of(out.error), name_of(errc::ok)) << out.message;
      for (int i = 0; i < 5; ++i)
        acked.push_back(acked_message{static_cast<uint64_t>(b * 5 + i), 0, out.base_offset + i, vals[i]});
      seq += 5;
    }
  }
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  broker_.options().env = {{"FERRY_FAILPOINTS", "log.after_append_before_sync=crash"}};
  ASSERT_TRUE(broker_.restart());

  auto unacked = make_value_batch({"fp/unacked/0", "fp/unacked/1"}, pid, seq);
  {
    auto c = raw_client::connect(broker_.client_port());
    ASSERT_TRUE(c);
    auto out = c->produce(topic_, 0, unacked);
    EXPECT_EQ(name_of(out.error), name_of(errc::connection_closed))
        << "the produce was answered although the broker should have crashed before the sync: " << out.message;
  }
  int status = broker_.wait_exit(10s);
  ASSERT_NE(status, -1) << "ferryd did not crash at the armed failpoint log.after_append_before_sync";
  EXPECT_EQ(status, 137);

  restart();  // failpoint disarmed
  verify(acked, "after the failpoint crash");
  auto c = raw_client::connect(broker_.client_port());
  ASSERT_TRUE(c);
  auto all = c->read_all(topic_, 0);
  ASSERT_TRUE(all);
  ASSERT_TRUE(all->size() == 100 || all->size() == 102) << all->size() << " records after the crash";
  bool kept = all->size() == 102;
  std::cerr << "failpoint: the unacknowledged batch was " << (kept ? "kept" : "dropped") << " by recovery\n";
  if (kept) {
    EXPECT_EQ((*all)[100].value, "fp/unacked/0");
    EXPECT_EQ((*all)[101].value, "fp/unacked/1");
  }
  // The producer's retry of the unacknowledged batch: stored exactly once either way.
  auto retry = c->produce(topic_, 0, unacked);
  ASSERT_EQ(name_of(retry.error), name_of(errc::ok)) << retry.message;
  EXPECT_EQ(retry.base_offset, 100);
  EXPECT_EQ(retry.duplicate, kept);
  auto after = c->read_all(topic_, 0);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 102u);
  EXPECT_EQ((*after)[101].value, "fp/unacked/1");
}

// The same with the client library's producer: it retries through the crash and the restart, and
// every message ends up acknowledged exactly once.
TEST_F(durability, producer_retries_through_a_failpoint_crash_without_duplicates) {
  stream s(via_proxy(), topic_, "fpc");
  s.start(150);
  ASSERT_TRUE(wait_until([&] { return s.acked() >= 150; }, 30s)) << s.failure_summary();
  ASSERT_EQ(broker_.sigterm_and_wait(), 0);
  s.stop();

  broker_.options().env = {{"FERRY_FAILPOINTS", "log.after_append_before_sync=crash"}};
  ASSERT_TRUE(broker_.restart());
  proxy_->set_target(broker_.client_port());
  stream s2(via_proxy(), topic_, "fpd");
  s2.start(100);
  int status = broker_.wait_exit(20s);
  ASSERT_NE(status, -1) << "ferryd did not crash at the armed failpoint";
  EXPECT_EQ(s2.acked(), 0u) << "a batch was acknowledged although the broker crashed before syncing it";
  restart();  // disarmed
  ASSERT_TRUE(wait_until([&] { return s2.acked() >= 100; }, 45s)) << s2.failure_summary();
  s2.stop();
  auto acked = s.acked_messages();
  auto acked2 = s2.acked_messages();
  acked.insert(acked.end(), acked2.begin(), acked2.end());
  verify(acked, "after a failpoint crash with the producer retrying");
}

}  // namespace
}  // namespace ferry::test
