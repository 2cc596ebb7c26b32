#pragma once
// Test-only: a small in-process broker speaking the wire protocol over loopback TCP, with fault
// injection, so producer/reader/admin/consumer logic can be tested without ferryd. Blocking
// sockets, one thread per connection; state under one mutex. Not a model of ferryd's internals;
// client/test/shared_test.cc runs the same client tests against it and against a real ferryd.
//
// Subscriptions, minimally: a subscription hands each partition's messages out in offset order
// (nacked and released ones first), leases them to a member until acked, nacked or the member
// leaves or disconnects, and pushes Delivery frames (correlation id 0) to members with credit,
// never beyond the credit granted (messages, and bytes of the record). No ack timeouts, no
// ordered keys, no dead letters. Writes to a connection are serialised by its write mutex, so a
// push may come from any connection's thread (after each answer every member with credit gets
// what is available).
//
// Delayed messages, minimally: the fake's clock stands still at 1000 ms (every batch's append
// time), so a produced record with a deliver_at after that is pending, any other is released at
// once. A topic's max_delay_ms (default 365 days) is checked on produce (the whole batch is refused
// with DelayOutOfRange, nothing stored). Cancel and ListDelayed work on the pending set;
// release_delayed() makes one fall due. Subscriptions do not hold delayed messages back.
//
// Threads: every public member may be used from any thread; the state below (topics, subs,
// members, observations) is read and written under `mu`, except the atomics.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "schema/errc.h"

namespace ferry::client::testing {

class fake_broker {
 public:
  struct stored {
    int64_t base_offset;
    std::vector<std::byte> bytes;
  };
  struct partition {
    std::vector<stored> batches;
    int64_t next = 0;
    std::map<int64_t, std::pair<int32_t, int64_t>> last_seq;  // producer -> (next seq, last base offset)
    std::map<std::pair<int64_t, int32_t>, int64_t> seen;      // (producer, base sequence) -> base offset
  };

  using msg_key = std::pair<int32_t, int64_t>;  // (partition, offset)
  struct delayed_entry {
    int64_t due_time;
    int64_t append_time;
    std::optional<std::string> key;
    int32_t value_bytes;
  };
  static constexpr int64_t clock_ms = 1000;  // the fake's "now" and every batch's append time
  static constexpr int64_t default_max_delay_ms = 365LL * 86'400'000;
  struct lease {
    uint64_t member;
    int32_t delivery_count;
  };
  struct subscription {
    int64_t ack_timeout_ms = 30000;
    int32_t max_deliveries = 10;
    bool ordered = true;
    bool fixed_backoff = false;
    int64_t backoff_initial_ms = 1000;
    int64_t backoff_max_ms = 60000;
    bool earliest = false;
    std::string dead_letter_topic;
    std::vector<int64_t> next;      // per partition: the first offset never handed out
    std::deque<msg_key> redeliver;  // nacked or released, handed out first
    std::map<msg_key, lease> leased;
    std::map<msg_key, int32_t> deliveries;
    std::set<msg_key> acked;
  };
  struct connection;  // one client connection (fake_broker.cc)
  struct member {
    uint64_t id;
    std::string topic, sub, name;
    connection* conn;
    int64_t credit_messages;
    int64_t credit_bytes;
    int64_t ack_timeout_ms;
  };

  // Fault injection (set before traffic, or under mu).
  std::atomic<int> drop_before_answer_on_produce{-1};  // Nth produce request (1-based): store it, then drop
                                                       // the connection
  std::atomic<int> not_leader_on_produce{-1};          // Nth produce request: answer not_leader without storing
  std::atomic<int> drop_on_ack_request{-1};  // Nth ack request (1-based): drop the connection without answering
                                             // or applying it
  std::atomic<int> fail_ack_request{-1};     // Nth ack request: request-level fail_ack_request_code, nothing applied
  errc fail_ack_request_code = errc::not_ready;
  std::map<msg_key, errc> fail_item;                 // ack/nack/extend of this message fails with this code (once)
  std::atomic<bool> push_before_join_answer{false};  // a new member's first Delivery goes out before its JoinResponse
  std::optional<msg_key> truncate_record;            // deliver this message's record one byte short, once
  std::optional<int> cancel_outcome_wire;            // answer every cancel with this raw CancelOutcome value

  // Observations (under mu unless atomic).
  std::atomic<int> produce_requests{0};
  std::atomic<int> max_partitions_per_request{0};
  std::atomic<int> ack_requests{0};
  std::atomic<int> join_requests{0};
  std::atomic<int> leave_requests{0};
  std::atomic<int> connections_accepted{0};
  std::vector<size_t> ack_request_items;                  // acks + nacks + extends per AckRequest
  std::vector<uint64_t> ack_request_members;              // member id of each AckRequest
  std::vector<std::pair<msg_key, int64_t>> nacks_seen;    // (message, delay_ms)
  std::vector<std::pair<msg_key, int64_t>> extends_seen;  // (message, extend_ms)
  int64_t acked_total = 0;
  int64_t delivered_total = 0;
  int64_t credit_returned_messages = 0;
  int64_t credit_returned_bytes = 0;
  std::map<msg_key, size_t> record_bytes;  // size of each delivered record (its credit in bytes)
  std::vector<std::string> join_names;
  std::vector<int64_t> join_ack_timeouts;
  std::vector<std::pair<int32_t, int32_t>> join_credits;                 // (messages, bytes)
  std::atomic<int> delayed_requests{0};                                  // Cancel and ListDelayed requests
  std::vector<std::tuple<int32_t, int64_t, int32_t>> list_delayed_seen;  // (partition, before_time, limit)

  // Listens on 127.0.0.1, a free port, at once.
  fake_broker();
  // Closes every connection and joins every thread.
  ~fake_broker();
  fake_broker(const fake_broker&) = delete;
  fake_broker& operator=(const fake_broker&) = delete;

  std::string address() const;  // "127.0.0.1:port"
  void add_topic(const std::string& name, int partitions, int64_t max_delay_ms = default_max_delay_ms);
  // The pending delayed message at (p, offset) falls due: it is released, no longer cancellable.
  void release_delayed(const std::string& topic, int p, int64_t offset);
  size_t delayed_pending(const std::string& topic);
  int64_t records(const std::string& topic, int p);  // the partition's next offset
  void drop_all_connections();
  void add_subscription(const std::string& topic, const std::string& name, bool earliest = true);
  // Appends a batch as the broker stores it (offsets and append time stamped), e.g. a control batch.
  int64_t append_batch(const std::string& topic, int p, std::vector<std::byte> bytes, int64_t append_time = 1000);
  // Hands out what members have credit for (also done after every answer).
  void push_now();
  size_t member_count();
  std::vector<uint64_t> member_ids();
  size_t leased(const std::string& topic, const std::string& sub);

  std::mutex mu;
  std::map<std::string, std::vector<partition>> topics;
  std::map<std::pair<std::string, std::string>, subscription> subs;
  std::map<uint64_t, member> members;
  uint64_t next_member_id = 1000;
  std::map<std::string, int64_t> max_delay;                         // per topic
  std::map<std::string, std::map<msg_key, delayed_entry>> delayed;  // per topic: pending, not yet due
  std::map<std::string, std::set<msg_key>> released;                // per topic: fell due
  std::map<std::string, std::set<msg_key>> cancelled;               // per topic

 private:
  struct io;        // the listening socket, connections and their threads (fake_broker.cc)
  struct exchange;  // one request and its answer (fake_broker.cc)

  void serve(connection& c);
  void disconnected_locked(connection& c);
  void release_locked(const member& m);
  void pump_all_locked();
  void pump_locked(member& m);
  int64_t cursor_locked(const subscription& sub, int32_t p) const;

  // One handler per request type, called under mu. Each answers through the exchange (or sets it
  // to drop the connection unanswered).
  void handle(exchange& x);
  void on_metadata(exchange& x);
  void on_create_topic(exchange& x);
  void on_list_topics(exchange& x);
  void on_describe_topic(exchange& x);
  void on_delete_topic(exchange& x);
  void on_produce(exchange& x);
  void on_fetch(exchange& x);
  void on_create_subscription(exchange& x);
  void on_delete_subscription(exchange& x);
  void on_list_subscriptions(exchange& x);
  void on_describe_subscription(exchange& x);
  void on_seek_subscription(exchange& x);
  void on_join(exchange& x);
  void on_leave(exchange& x);
  void on_ack(exchange& x);
  void on_cancel(exchange& x);
  void on_list_delayed(exchange& x);

  std::unique_ptr<io> io_;
};

}  // namespace ferry::client::testing
