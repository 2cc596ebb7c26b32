#pragma once
// Dead letters (namespace ferry::client): reading a subscription's dead-letter topic and
// publishing dead letters again to the topic they came from.
//
// When a message of a subscription runs out of deliveries (max_deliveries), the broker appends a
// copy of it to the subscription's dead-letter topic ("<topic>.<subscription>.dlq" unless the
// subscription names another) with the message's key, value and headers plus these headers of its
// own (schema/wire.md, "Reserved headers"):
//
//   ferry-dlq-original-id     "topic/partition/offset" of the message in its own topic
//   ferry-dlq-subscription    the subscription that gave up on it
//   ferry-dlq-delivery-count  how often it was delivered (decimal)
//   ferry-dlq-reason          why, in words (e.g. "nacked", "ack timeout")
//   ferry-dlq-time            when it was dead-lettered (ms since the epoch, decimal)
//
// A dead-letter topic may be shared by several subscriptions (an explicit dead_letter_topic):
// of_subscription() tells which dead letters are one subscription's.
//
// Replaying publishes a dead letter again to its original topic: same key, value and headers,
// minus every header reserved for the broker (the ones above, ferry-delayed-id, ...), plus
// "ferry-replayed-from: <dead-letter topic>/<partition>/<offset>". A keyed message finds its
// partition by key like any publish; a keyless one goes back to its original partition. Every
// subscription of the topic then gets it again as a new message.
//
//   auto plan = plan_replay(opts, "orders", "billing", {.all = true});
//   auto ids = replay(*producer, *plan, std::chrono::seconds(30));  // one result per dead letter
//
// Threads: these are plain functions over the thread-safe admin, reader and producer.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/client/client.h"

namespace ferry::client {

inline constexpr std::string_view dlq_header_prefix = "ferry-dlq-";
inline constexpr std::string_view dlq_original_id_header = "ferry-dlq-original-id";
inline constexpr std::string_view dlq_subscription_header = "ferry-dlq-subscription";
inline constexpr std::string_view dlq_delivery_count_header = "ferry-dlq-delivery-count";
inline constexpr std::string_view dlq_reason_header = "ferry-dlq-reason";
inline constexpr std::string_view dlq_time_header = "ferry-dlq-time";
// Put on a replayed message: the dead letter it was published from. Clients may set it.
inline constexpr std::string_view replayed_from_header = "ferry-replayed-from";

// Whether `key` is one of the broker's dead-letter headers ("ferry-dlq-..."; case-sensitive).
bool is_dlq_header(std::string_view key) noexcept;

// A message of a dead-letter topic with the broker's dead-letter headers read.
struct dead_letter {
  received_message message;               // as stored in the dead-letter topic (id(): its DLQ id)
  std::string original_id;                // "topic/partition/offset"; empty if the header is missing
  std::string subscription;               // empty if the header is missing
  std::optional<int64_t> delivery_count;  // absent if missing or not a decimal number
  std::string reason;
  std::optional<int64_t> time_ms;  // absent if missing or not a decimal number
};

// Reads the dead-letter headers of `m` (a header without a value counts as missing).
dead_letter to_dead_letter(received_message m);

// Whether `d` is a dead letter of subscription `sub` of `topic`: its subscription header names
// the subscription ("sub" or "topic/sub"), or it has none (an older broker's dead letter).
bool of_subscription(const dead_letter& d, std::string_view topic, std::string_view sub);

// The dead-letter topic of subscription `sub` of `topic` with configuration `c`:
// c.dead_letter_topic, or "<topic>.<sub>.dlq" if that is empty.
std::string dead_letter_topic_of(const std::string& topic, const std::string& sub, const subscription_config& c);

// The dead-letter topic of an existing subscription (asks the broker). Errors: as
// admin::describe_subscription (unknown_topic, unknown_subscription, connection errors).
[[nodiscard]] result<std::string> find_dead_letter_topic(admin& a, const std::string& topic, const std::string& sub);

// The dead letters of subscription `sub` of `topic`, in the order of its dead-letter topic
// (partition by partition, by offset), as of the call: every message from the log start to the
// high-water mark of each partition, at most `limit` of them if given. An empty list if the
// dead-letter topic does not exist yet (nothing was ever dead-lettered). Errors: as
// find_dead_letter_topic, and reading errors (connection, offset_out_of_range, ...).
[[nodiscard]] result<std::vector<dead_letter>> list_dead_letters(const client_options& opts, const std::string& topic,
                                                                 const std::string& sub,
                                                                 std::optional<size_t> limit = std::nullopt);

// Which dead letters to replay: by their position in the dead-letter topic, by the original id
// they carry, or all of them. Positions and ids may be combined; `all` stands alone.
struct replay_selection {
  std::vector<std::pair<int32_t, int64_t>> positions;  // (partition, offset) in the dead-letter topic
  std::vector<message_id> original_ids;
  bool all = false;
};

// The dead letters a selection names and where each goes back to.
struct replay_plan {
  std::string dead_letter_topic;
  std::vector<dead_letter> letters;  // in the order of the dead-letter topic
  std::vector<message_id> targets;   // targets[i]: the original id of letters[i]
  // One unknown_message error per selector that names no dead letter of the subscription (in the
  // order: positions, then original ids). A plan with any is not replayed; letters and targets
  // are then empty.
  std::vector<error> not_found;
};

// Reads the subscription's dead letters and picks those `sel` names. Errors: invalid_argument for
// an empty selection, `all` combined with positions or ids, or a chosen dead letter without a
// usable ferry-dlq-original-id header (nothing could say where it goes); otherwise as
// list_dead_letters. A selector naming nothing is not an error here: see replay_plan::not_found.
[[nodiscard]] result<replay_plan> plan_replay(const client_options& opts, const std::string& topic,
                                              const std::string& sub, const replay_selection& sel);

// The message that replaying dead letter `d` publishes to `target.topic` (see the file comment).
message replay_message(const dead_letter& d, const message_id& target);

// Publishes every dead letter of `plan` through `p` (replay_message of each), waits up to
// `timeout` for their acknowledgements, and returns one result per letter: the new id, or why it
// failed (errc::timeout for one not answered in time). A plan with not_found entries publishes
// nothing (each of its letters, if any, fails with invalid_argument).
std::vector<result<message_id>> replay(producer& p, const replay_plan& plan, std::chrono::milliseconds timeout);

}  // namespace ferry::client
