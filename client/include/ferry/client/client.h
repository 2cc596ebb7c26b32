#pragma once
// Ferry's C++ client library (namespace ferry::client).
//
//   producer  asynchronous, batching, idempotent publishing (callback or future per message)
//   reader    reads one partition's raw log from an offset (no acknowledgements)
//   admin     topics: create, list, describe, delete
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
// Threads: producer, reader and admin are thread-safe. Each owns one I/O thread; producer
// callbacks run on it and must not block.
//
// Example: client/examples/quickstart.cc.
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

#include "broker/base/result.h"

namespace ferry::client {

struct client_options {
  std::string bootstrap = "127.0.0.1:7070";               // host:port of a broker
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
  std::optional<int32_t> partition;       // explicit partition; else by key, else spread
  std::optional<int64_t> deliver_at_ms;   // delayed delivery: absolute due time (ms since epoch)
  std::optional<int64_t> delay_ms;        // delayed delivery: due = broker's clock at append + delay
  int64_t timestamp_ms = 0;               // 0: the producer's clock at send()
};

struct message_id {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string to_string() const;          // "topic/partition/offset"
};
// Parses "topic/partition/offset" (the topic may not contain '/').
result<message_id> parse_message_id(std::string_view s);

uint32_t murmur2(std::string_view data) noexcept;
int32_t partition_for_key(std::string_view key, int32_t partitions) noexcept;

struct producer_options : client_options {
  std::chrono::milliseconds linger{2};              // wait this long to fill a batch
  size_t batch_bytes = 256u << 10;                  // send a partition's batch at this size
  int max_in_flight = 5;                            // unanswered batches per partition
  size_t buffer_bytes = 64u << 20;                  // send() blocks while this much is unsent
  std::chrono::milliseconds delivery_timeout{120000};  // give up on a message after this long
  std::chrono::milliseconds retry_backoff{100};
  bool wait_for_durable = true;                     // acks after fsync (the default) or after write
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
  int64_t timestamp_ms = 0;     // producer's timestamp
  int64_t append_time_ms = 0;   // broker's clock when stored
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<header> headers;
  std::optional<int64_t> deliver_at_ms;
  std::string id() const;       // "topic/partition/offset"
};

class reader {
 public:
  static constexpr int64_t earliest = -2;  // start offsets with a special meaning
  static constexpr int64_t latest = -1;

  // Reads `topic`/`partition` starting at `offset` (or earliest / latest).
  [[nodiscard]] static result<std::unique_ptr<reader>> create(client_options opts, std::string topic,
                                                              int32_t partition, int64_t offset);
  virtual ~reader() = default;
  // Next messages from position(); waits up to max_wait for at least one (empty on timeout).
  [[nodiscard]] virtual result<std::vector<received_message>> poll(std::chrono::milliseconds max_wait,
                                                                   size_t max_bytes = 1u << 20) = 0;
  virtual int64_t position() const = 0;          // next offset poll() returns
  virtual void seek(int64_t offset) = 0;
  virtual int64_t high_watermark() const = 0;    // as of the last poll; -1 before the first
};

struct topic_config {
  int32_t partitions = 1;
  int16_t replication = 1;
  int64_t retention_ms = -1;       // -1: broker default
  int64_t retention_bytes = -1;    // -1: unlimited
  int64_t segment_bytes = 0;       // 0: broker default
  int64_t segment_ms = 0;          // 0: broker default
  int32_t max_batch_bytes = 0;     // 0: broker default
  bool fsync_interval = false;     // false: fsync before every ack (default)
  int32_t fsync_interval_ms = 0;
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
};

struct topic_description {
  std::string name;
  topic_config config;
  std::vector<partition_state> partitions;
};

class admin {
 public:
  [[nodiscard]] static result<std::unique_ptr<admin>> create(client_options opts);
  virtual ~admin() = default;
  [[nodiscard]] virtual result<topic_config> create_topic(const std::string& name, const topic_config& cfg) = 0;
  [[nodiscard]] virtual result<std::vector<topic_summary>> list_topics() = 0;
  [[nodiscard]] virtual result<topic_description> describe_topic(const std::string& name) = 0;
  [[nodiscard]] virtual result<void> delete_topic(const std::string& name) = 0;
};

}  // namespace ferry::client
