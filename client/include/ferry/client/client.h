#pragma once
// Ferry's C++ client library (namespace ferry::client).
//
//   producer  asynchronous, batching, idempotent publishing (callback or future per message)
//   reader    reads one partition's raw log from an offset (no acknowledgements)
//   consumer  a member of a subscription: messages pushed by the broker under credit, acked,
//             nacked (redelivered after a delay) or extended one by one; acks batched on the wire
//   admin     topics and subscriptions: create, list, describe, delete, seek; delayed messages:
//             list those not yet due, cancel one by id
//
// Every call returns ferry::result<T>: a value, or a ferry::error with a typed code (ferry::errc,
// the same codes the broker sends) and a readable message. Nothing here throws.
//
// Partitioning: a message with an explicit partition goes there; a keyed message goes to
// partition_for_key(key, partitions) = (murmur2(key) & 0x7fffffff) % partitions, Kafka's
// murmur2 with seed 0x9747b28c, stable across versions and languages; keyless messages are spread
// by the producer (one partition per batch, rotating).
//
// Idempotence: each producer picks a random 63-bit producer id and numbers its batches per
// partition; the broker refuses to store a (producer id, sequence) twice, also across broker
// restarts, so the producer's retries after timeouts or disconnects never duplicate a message.
//
// Consumer: consumer::create joins a subscription as a member; the broker pushes messages to it
// on its connection, never more than the member's credit (credit_messages messages and
// credit_bytes bytes buffered ahead of poll()). poll() hands them out and gives their credit back
// to the broker. Each message handed out is leased to the member: ack() ends the lease (the
// message is done for this subscription), nack() asks for a redelivery after a delay, extend()
// renews the lease; a lease that runs out (ack timeout) or the member leaving (close(), or a lost
// connection) redelivers the message, with delivery_count one higher. Delivery is at least once:
// process a message, then ack it. Acks, nacks and extends are asynchronous and batched (at most
// ack_linger after the first, or ack_batch at a time) and answered one by one through their
// callback; flush() waits for every answer. After a lost connection the consumer joins again by
// itself as a new member: what it had not yet handed out is dropped (the broker redelivers it),
// and settling a message of the old member fails locally with lease_not_held. poll() keeps
// working across this; it returns a join error only while rejoining fails for a reason retrying
// will not fix (e.g. the subscription was deleted), and keeps trying.
//
//   auto c = consumer::create(opts, "orders", "billing");   // result<unique_ptr<consumer>>
//   for (;;) {
//     auto batch = (*c)->poll(std::chrono::seconds(1));
//     if (!batch) break;                                    // closed, or a join error
//     for (auto& d : *batch) {
//       if (handle(d)) (*c)->ack(d); else (*c)->nack(d, std::chrono::seconds(30));
//     }
//   }
//   (*c)->close();                                           // flushes acks, leaves
//
// Threads: producer, reader, admin and consumer are thread-safe. Each owns one I/O thread;
// producer and settle callbacks run on it and must not block (nor call flush(), poll() or
// close() of the same object, which would wait for that thread).
//
// Example: client/examples/quickstart.cc (topic, subscription, produce, read, consume).
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/result.h"

namespace ferry::client {

struct client_options {
  std::string bootstrap = "127.0.0.1:7070";  // host:port of a broker
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  uint32_t max_frame_bytes = 16u << 20;
};

// The bootstrap address from FERRY_BOOTSTRAP, else "127.0.0.1:7070".
std::string default_bootstrap();

struct message {
  std::optional<std::string> key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<int32_t> partition;      // explicit partition; else by key, else spread
  std::optional<int64_t> deliver_at_ms;  // delayed delivery: absolute due time (ms since epoch)
  std::optional<int64_t> delay_ms;       // delayed delivery: due = broker's clock at append + delay
                                         // (a negative delay, or one beyond the topic's max_delay_ms,
                                         // fails with errc::delay_out_of_range)
  int64_t timestamp_ms = 0;              // 0: the producer's clock at send()
};

struct message_id {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string to_string() const;  // "topic/partition/offset"
};
// Parses "topic/partition/offset" (the topic may not contain '/').
result<message_id> parse_message_id(std::string_view s);

uint32_t murmur2(std::string_view data) noexcept;
int32_t partition_for_key(std::string_view key, int32_t partitions) noexcept;

struct producer_options : client_options {
  std::chrono::milliseconds linger{2};                 // wait this long to fill a batch
  size_t batch_bytes = 256u << 10;                     // send a partition's batch at this size
  int max_in_flight = 5;                               // unanswered batches per partition
  size_t buffer_bytes = 64u << 20;                     // send() blocks while this much is unsent
  std::chrono::milliseconds delivery_timeout{120000};  // give up on a message after this long
  std::chrono::milliseconds retry_backoff{100};
  bool wait_for_durable = true;  // acks after fsync (the default) or after write
};

class producer {
 public:
  using callback = std::function<void(const result<message_id>&)>;

  [[nodiscard]] static result<std::unique_ptr<producer>> create(producer_options opts);
  virtual ~producer() = default;

  // Queues `m` for `topic`; `cb` runs once with the stored id or the final error (after retries
  // of retriable errors until delivery_timeout). Blocks while buffer_bytes are queued.
  virtual void send(std::string_view topic, message m, callback cb) = 0;
  std::future<result<message_id>> send(std::string_view topic, message m);

  // Sends everything queued and waits until every callback so far has run.
  [[nodiscard]] virtual result<void> flush(std::chrono::milliseconds timeout = std::chrono::minutes(2)) = 0;
  // Flushes, then stops the I/O thread. Later sends fail with errc::shutting_down.
  virtual void close() = 0;
  virtual int64_t producer_id() const = 0;
};

struct header {
  std::string key;
  std::optional<std::string> value;
};

struct received_message {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = 0;    // producer's timestamp
  int64_t append_time_ms = 0;  // broker's clock when stored
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<header> headers;
  std::optional<int64_t> deliver_at_ms;
  std::string id() const;  // "topic/partition/offset"
};

class reader {
 public:
  static constexpr int64_t earliest = -2;  // start offsets with a special meaning
  static constexpr int64_t latest = -1;

  // Reads `topic`/`partition` starting at `offset` (or earliest / latest).
  [[nodiscard]] static result<std::unique_ptr<reader>> create(client_options opts, std::string topic, int32_t partition,
                                                              int64_t offset);
  virtual ~reader() = default;
  // Next messages from position(); waits up to max_wait for at least one (empty on timeout).
  // Control batches (the broker's own records for subscriptions) are skipped: their offsets are
  // absent from what poll() returns, though position() moves past them.
  [[nodiscard]] virtual result<std::vector<received_message>> poll(std::chrono::milliseconds max_wait,
                                                                   size_t max_bytes = 1u << 20) = 0;
  virtual int64_t position() const = 0;  // next offset poll() returns
  virtual void seek(int64_t offset) = 0;
  virtual int64_t high_watermark() const = 0;  // as of the last poll; -1 before the first
};

struct topic_config {
  int32_t partitions = 1;
  int16_t replication = 1;
  int64_t retention_ms = -1;     // -1: broker default
  int64_t retention_bytes = -1;  // -1: unlimited
  int64_t segment_bytes = 0;     // 0: broker default
  int64_t segment_ms = 0;        // 0: broker default
  int32_t max_batch_bytes = 0;   // 0: broker default
  bool fsync_interval = false;   // false: fsync before every ack (default)
  int32_t fsync_interval_ms = 0;
  int64_t max_delay_ms = 0;  // longest accepted delivery delay; 0: broker default (365 days)
};

struct topic_summary {
  std::string name;
  int32_t partitions = 0;
  int16_t replication = 0;
};

struct partition_state {
  int32_t partition = 0;
  int32_t leader = 0;
  int64_t log_start_offset = 0;
  int64_t high_watermark = 0;
  int64_t log_end_offset = 0;
  int64_t size_bytes = 0;
  int32_t segments = 0;
  int64_t delayed_pending = 0;    // delayed messages not yet due
  int64_t next_due_time_ms = -1;  // -1: none
  std::string status = "ok";      // or the problems, comma-separated: corrupt, log_failed, disk_full, ...
  std::string status_detail;      // what is wrong, in words
};

struct topic_description {
  std::string name;
  topic_config config;
  std::vector<partition_state> partitions;
};

// ---- subscriptions ----------------------------------------------------------------------------
// A subscription is a named, durable consumer group on a topic: it receives every message of the
// topic (fan-out: every subscription gets its own copy). Its members share the messages, each
// delivery leased to one member until acked, nacked or its ack timeout expires (then it is
// redelivered). After max_deliveries deliveries a message goes to the dead-letter topic.
// With ordered keys, message n+1 of a key is not delivered before message n is acked or
// dead-lettered; different keys and keyless messages go out in parallel.

enum class start_position { latest, earliest };
enum class backoff_kind { exponential, fixed };

// Unset values take the broker's defaults (shown in the comments); create_subscription returns
// the configuration in force.
struct subscription_config {
  start_position start = start_position::latest;
  std::optional<std::chrono::milliseconds> ack_timeout;      // 30 s
  std::optional<int32_t> max_deliveries;                     // 10; 0: never dead-letter
  bool ordered = true;                                       // ordered keys
  backoff_kind backoff = backoff_kind::exponential;          // delay(n) = initial * 2^(n-1), capped
  std::optional<std::chrono::milliseconds> backoff_initial;  // 1 s
  std::optional<std::chrono::milliseconds> backoff_max;      // 60 s
  std::string dead_letter_topic;                             // "": "<topic>.<subscription>.dlq"
};

struct subscription_summary {
  std::string topic;
  std::string name;
  int32_t members = 0;
  int64_t backlog = 0;
  int64_t in_flight = 0;
};

struct subscription_partition_state {
  int32_t partition = 0;
  int64_t cursor = 0;  // every message below is acked (or dead-lettered)
  int64_t log_start_offset = 0;
  int64_t high_watermark = 0;  // log end visible to consumers
  int64_t backlog = 0;         // messages not yet acked (the lag)
  int64_t in_flight = 0;
  int64_t acked_above_cursor = 0;
  int64_t redeliveries = 0;
  int64_t dead_lettered = 0;
  int64_t expired = 0;                  // deleted by the retention limit before being acked
  int64_t oldest_unacked_time_ms = -1;  // append time of the oldest unacked message; -1: none
  int64_t delayed_pending = 0;          // delayed messages not yet due
  int64_t next_due_time_ms = -1;
};

struct member_info {
  uint64_t member_id = 0;
  std::string name;
  std::string peer;
  int64_t in_flight = 0;
  int64_t credit_messages = 0;
};

struct subscription_description {
  std::string topic;
  std::string name;
  subscription_config config;  // with every default filled in
  std::vector<subscription_partition_state> partitions;
  std::vector<member_info> members;
};

enum class seek_target { earliest, latest, time, offset };

struct seek_partition_result {
  int32_t partition = 0;
  std::optional<ferry::error> error;  // this partition could not be moved
  int64_t old_cursor = 0;
  int64_t new_cursor = 0;
  int64_t old_backlog = 0;
  int64_t new_backlog = 0;
};

// ---- delayed messages -------------------------------------------------------------------------
// A message with delay_ms (turned into a due time by the broker's clock when it is stored) or
// deliver_at_ms is stored and acknowledged like any other, but no subscription gets it before it is
// due. When it falls due the broker releases it: a copy is appended to the same partition (with
// the header "ferry-delayed-id: topic/partition/offset" naming the original) and every
// subscription then delivers it like a message published at that moment. Raw readers see the
// original at publish and the released copy later.

enum class cancel_outcome { cancelled, too_late, unknown };

struct cancel_result {
  cancel_outcome outcome = cancel_outcome::unknown;
  std::string message;  // why, for too_late and unknown
};

struct delayed_message {
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t due_time_ms = 0;
  int64_t append_time_ms = 0;
  std::optional<std::string> key;
  int32_t value_bytes = 0;
  std::string id(const std::string& topic) const;  // "topic/partition/offset"
};

struct delayed_listing {
  std::vector<delayed_message> messages;  // earliest due first
  int64_t pending = 0;                    // delayed messages pending in the topic (or the partition asked)
};

class admin {
 public:
  [[nodiscard]] static result<std::unique_ptr<admin>> create(client_options opts);
  virtual ~admin() = default;
  [[nodiscard]] virtual result<topic_config> create_topic(const std::string& name, const topic_config& cfg) = 0;
  [[nodiscard]] virtual result<std::vector<topic_summary>> list_topics() = 0;
  [[nodiscard]] virtual result<topic_description> describe_topic(const std::string& name) = 0;
  [[nodiscard]] virtual result<void> delete_topic(const std::string& name) = 0;

  [[nodiscard]] virtual result<subscription_config> create_subscription(const std::string& topic,
                                                                        const std::string& name,
                                                                        const subscription_config& cfg) = 0;
  [[nodiscard]] virtual result<void> delete_subscription(const std::string& topic, const std::string& name) = 0;
  // Every subscription of `topic`, or of every topic if it is empty.
  [[nodiscard]] virtual result<std::vector<subscription_summary>> list_subscriptions(const std::string& topic) = 0;
  [[nodiscard]] virtual result<subscription_description> describe_subscription(const std::string& topic,
                                                                               const std::string& name) = 0;
  // Moves the subscription's cursor on `partition` (or every partition if nullopt) to the earliest
  // retained message, the log end, the first message at or after `value` ms since the epoch
  // (seek_target::time) or offset `value` (seek_target::offset, clamped to the log). Messages
  // below the new cursor count as acked, those above as not acked; in-flight leases end. With
  // dry_run nothing changes and the answer says what would.
  [[nodiscard]] virtual result<std::vector<seek_partition_result>> seek_subscription(const std::string& topic,
                                                                                     const std::string& name,
                                                                                     seek_target target, int64_t value,
                                                                                     std::optional<int32_t> partition,
                                                                                     bool dry_run) = 0;

  // Cancels a delayed message before it is due: no subscription ever gets it (cancelled). too_late:
  // it is already due (released) or was not delayed; unknown: no such message. A cancel racing
  // with the due time has exactly one of these outcomes. Errors: unknown_topic, unknown_partition;
  // invalid_argument for a negative partition or offset (nothing sent).
  [[nodiscard]] virtual result<cancel_result> cancel(const message_id& id) = 0;
  // Delayed messages of `topic` not yet due, earliest first: at most `limit` (1..10000), only
  // those due before `before_ms` if given, of one partition if given. Errors: unknown_topic,
  // unknown_partition; invalid_argument for a limit outside 1..10000 or a negative partition or
  // before_ms (nothing sent).
  [[nodiscard]] virtual result<delayed_listing> list_delayed(const std::string& topic, std::optional<int64_t> before_ms,
                                                             size_t limit, std::optional<int32_t> partition) = 0;
};

// ---- consumer ---------------------------------------------------------------------------------

struct consumer_options : client_options {
  std::string member_name;                                // shown in describe; "" : host and pid
  int32_t credit_messages = 1000;                         // messages buffered ahead of poll()
  int32_t credit_bytes = 16 << 20;                        // bytes buffered ahead of poll(); must be at least
                                                          // the topic's largest message
  std::optional<std::chrono::milliseconds> ack_timeout;   // overrides the subscription's
  std::chrono::milliseconds ack_linger{1};                // an ack is sent at most this long after ack()
  size_t ack_batch = 1024;                                // or as soon as this many are queued
  std::chrono::milliseconds reconnect_backoff{100};       // first wait before joining again after a drop,
  std::chrono::milliseconds reconnect_backoff_max{5000};  // doubling up to this
  // An idle member still sends an empty AckRequest this often, so the broker's idle timeout
  // (10 minutes by default) never closes a consumer that is only waiting for messages.
  std::chrono::milliseconds keepalive{30000};
  std::optional<int64_t> message_limit;  // in all: never take credit for more messages than this
                                         // (a consumer that wants N messages and then stops)
};

// One delivered message; its id is (topic, partition, offset).
struct delivery : received_message {
  int32_t delivery_count = 1;  // 1 on the first delivery, 2 on the first redelivery, ...
  uint64_t member_id = 0;      // the member it was delivered to (see consumer::create)
};

// The broker's answer to one ack / nack / extend.
using settle_callback = std::function<void(const result<void>&)>;

class consumer {
 public:
  // Joins `subscription` of `topic` as a new member. The member leaves on close() or when its
  // connection drops; the broker then redelivers what it held to other members. After a dropped
  // connection the consumer joins again as a new member: acks for deliveries of the old member
  // fail with lease_not_held (those messages are redelivered).
  [[nodiscard]] static result<std::unique_ptr<consumer>> create(consumer_options opts, std::string topic,
                                                                std::string subscription);
  virtual ~consumer() = default;

  // Waits up to max_wait for messages; returns at most max_messages (empty on timeout). Polling
  // returns credit to the broker.
  [[nodiscard]] virtual result<std::vector<delivery>> poll(std::chrono::milliseconds max_wait,
                                                           size_t max_messages = 500) = 0;
  // Asynchronous and batched; `cb` (optional) runs on the I/O thread with the broker's answer: ok
  // once the ack is durable, or the error (lease_not_held if the lease had expired, ...).
  virtual void ack(const delivery& d, settle_callback cb = nullptr) = 0;
  // Redeliver after `delay` (the subscription's backoff if nullopt); counts as a failed delivery.
  virtual void nack(const delivery& d, std::optional<std::chrono::milliseconds> delay = std::nullopt,
                    settle_callback cb = nullptr) = 0;
  // Renews the lease for `by` (the member's ack timeout if nullopt) from now.
  virtual void extend(const delivery& d, std::optional<std::chrono::milliseconds> by = std::nullopt,
                      settle_callback cb = nullptr) = 0;
  // Sends everything queued (and the credit to give back) and waits until nothing is unanswered;
  // the first error of any ack, nack or extend since the last flush(), if any (errc::timeout if
  // the wait ran out).
  [[nodiscard]] virtual result<void> flush(std::chrono::milliseconds timeout = std::chrono::seconds(30)) = 0;
  // Flushes (for at most 5 s), leaves the subscription and stops the I/O thread. Afterwards poll()
  // fails with shutting_down and ack()/nack()/extend() call back at once, on the caller's thread,
  // with shutting_down. Idempotent; not from a callback.
  virtual void close() = 0;
  // The current member id; 0 while joining again after a lost connection.
  virtual uint64_t member_id() const = 0;
};

}  // namespace ferry::client
