#pragma once
// Test support: hand-built request frames and a minimal synchronous protocol client on a
// raw_connection, independent of the client library (so broker tests do not depend on it, and
// bad-input tests can build frames the client never would).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/errc.h"
#include "tests/support/broker_process.h"

namespace ferry::test {

using bytes = std::vector<std::byte>;

// ---- request frames (size-prefixed Request FlatBuffers) --------------------------------------
bytes metadata_frame(uint64_t cid);
bytes create_topic_frame(uint64_t cid, std::string_view name, int32_t partitions, uint16_t version = 1);
bytes list_topics_frame(uint64_t cid);
bytes describe_topic_frame(uint64_t cid, std::string_view name);
bytes delete_topic_frame(uint64_t cid, std::string_view name);
bytes produce_frame(uint64_t cid, std::string_view topic, int32_t partition, std::span<const std::byte> batch);
bytes fetch_frame(uint64_t cid, std::string_view topic, int32_t partition, int64_t offset, int32_t max_wait_ms = 0,
                  int32_t max_bytes = 4 << 20);
// A fetch of several partition entries (duplicates allowed: bad-input tests send them).
struct fetch_entry {
  int32_t partition = 0;
  int64_t offset = 0;
  int32_t max_bytes = 1 << 20;
};
bytes fetch_many_frame(uint64_t cid, std::string_view topic, const std::vector<fetch_entry>& entries,
                       int32_t max_wait_ms, int32_t max_bytes);
// Finishes a request built by hand in `fbb` (size prefix, version 1, the correlation id).
bytes finish_request_frame(flatbuffers::FlatBufferBuilder& fbb, uint64_t cid, ferry::wire::RequestBody type,
                           flatbuffers::Offset<void> body);

// Subscriptions and consumers (schema/wire.md "Subscriptions", "Consumers").
struct sub_options {
  bool earliest = true;
  bool ordered = true;
  int32_t max_deliveries = -1;
  int64_t ack_timeout_ms = -1;
  int64_t backoff_initial_ms = -1;
  bool fixed_backoff = false;
};
bytes create_subscription_frame(uint64_t cid, std::string_view topic, std::string_view name, const sub_options& o = {});
bytes describe_subscription_frame(uint64_t cid, std::string_view topic, std::string_view name);
bytes join_frame(uint64_t cid, std::string_view topic, std::string_view sub, int32_t credit_messages,
                 int32_t credit_bytes = 0, int64_t ack_timeout_ms = -1);
bytes leave_frame(uint64_t cid, uint64_t member);
struct nack_spec {
  int32_t partition;
  int64_t offset;
  int64_t delay_ms;
};
bytes ack_frame(uint64_t cid, uint64_t member, int32_t partition, const std::vector<int64_t>& acks,
                const std::vector<nack_spec>& nacks = {}, const std::vector<nack_spec>& extends = {},
                int32_t credit_messages = 0, int32_t credit_bytes = 0);

// A record for make_batch.
struct test_record {
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t timestamp = 1'700'000'000'000;
};
// One record batch (schema/record_batch.md) with a valid CRC.
bytes make_batch(const std::vector<test_record>& records, int64_t producer_id = -1, int32_t base_sequence = -1);
// Convenience: keyless records with these values.
bytes make_value_batch(const std::vector<std::string>& values, int64_t producer_id = -1, int32_t base_sequence = -1);

// A record as read back from the broker.
struct stored_record {
  int64_t offset = 0;
  int64_t timestamp = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
};

struct produce_outcome {
  errc request_error = errc::ok;  // Response.error
  errc error = errc::ok;          // the partition result's error (== request_error if none)
  std::string message;
  int64_t base_offset = -1;
  bool duplicate = false;
};

struct describe_outcome {
  errc error = errc::ok;
  std::string message;
  int32_t partitions = 0;
  std::vector<int64_t> high_watermarks;  // per partition, in partition order
  std::vector<int64_t> log_end_offsets;
};

// A synchronous client on one raw_connection: one request, one response. Every method returns
// the broker's error code; protocol-level surprises (closed connection, wrong correlation id,
// wrong body type) are reported as errors with errc::unknown/connection_closed and a message.
class raw_client {
 public:
  [[nodiscard]] static result<raw_client> connect(uint16_t port);

  result<response_frame> call(bytes frame);  // fills the correlation id check
  // Like call(), but Delivery pushes (correlation id 0) that arrive before the answer are kept in
  // pushes() instead of failing the call.
  result<response_frame> call_keeping_pushes(bytes frame);
  // Waits up to `timeout` for the next Delivery push (or takes one kept by call_keeping_pushes).
  result<response_frame> next_push(std::chrono::milliseconds timeout);
  std::vector<response_frame>& pushes() { return pushes_; }
  // The error code of a request-level answer, and its message.
  std::pair<errc, std::string> create_topic(std::string_view name, int32_t partitions);
  std::pair<errc, std::string> delete_topic(std::string_view name);
  describe_outcome describe_topic(std::string_view name);
  result<std::vector<std::string>> list_topics();
  produce_outcome produce(std::string_view topic, int32_t partition, std::span<const std::byte> batch);
  // Reads [from, end of log) of one partition (batches' records below `from` are skipped).
  // Fails with the broker's error on a partition/request error.
  result<std::vector<stored_record>> read_all(std::string_view topic, int32_t partition, int64_t from = 0);

  uint64_t next_cid() { return ++cid_; }
  raw_connection& conn() { return conn_; }

 private:
  raw_connection conn_;
  uint64_t cid_ = 1000;
  std::vector<response_frame> pushes_;
};

// The (offset, delivery_count, value) of every message in a Delivery push.
struct pushed_message {
  int32_t partition = 0;
  int64_t offset = 0;
  int32_t delivery_count = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
};
std::vector<pushed_message> decode_delivery(const response_frame& f);

// Parses every record of the concatenated batches in `records` (a fetch result), verifying each
// batch's CRC; records below `from` are skipped.
result<std::vector<stored_record>> decode_batches(std::span<const std::byte> records, int64_t from);

// Random printable/binary test payloads, deterministic per seed.
std::string random_payload(uint64_t seed, size_t min_len, size_t max_len, bool binary = true);

}  // namespace ferry::test
