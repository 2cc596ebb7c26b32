#pragma once
// The delay index's byte formats (schema/delay.md, "Store"): its RocksDB keys and values, apart
// from RocksDB so that they can be tested and fuzzed alone (tests/fuzz/delay_entry.cc). Also
// defines pending_message::bytes().
//
// Keys: a kind byte, the topic id and partition big-endian, then the rest big-endian so that
// RocksDB's byte order is numeric order:
//   'D' tid p due off  -> the message        (due has its sign bit flipped: negative dues sort first)
//   'O' tid p off      -> due                 (cancel looks a message up by offset)
//   'X' tid p off      -> ""                  (cancelled)
//   'A' tid p          -> applied_upto, pending
// Decoders take bytes read back from disk: anything that does not parse is refused (false or
// nullopt), never read out of bounds.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "broker/delay/delay_index.h"

namespace ferry::delay {

inline constexpr size_t key_prefix_len = 1 + 8 + 4;            // kind, topic id, partition
inline constexpr size_t due_key_len = key_prefix_len + 8 + 8;  // 'D' keys: + due, offset

// kind + topic id: the start of every key of one topic (drop_topic deletes the range up to the
// next topic id).
std::string topic_prefix(char kind, uint64_t topic_id);
// kind + topic id + partition.
std::string key_prefix(char kind, partition_key p);
// A 'D' key.
std::string due_key(partition_key p, int64_t due, int64_t offset);
// An 'O' or 'X' key.
std::string offset_key(char kind, partition_key p, int64_t offset);
// The (due, offset) of a 'D' key of due_key_len bytes (its prefix is not checked); nullopt if the
// key has another length.
std::optional<std::pair<int64_t, int64_t>> decode_due_key(std::string_view key);

// The value of an 'O' key: the due time, 8 bytes. nullopt if it is not 8 bytes long.
std::string encode_due(int64_t due);
std::optional<int64_t> decode_due(std::string_view value);

// The value of an 'A' key: 16 bytes. nullopt if it is not 16 bytes long.
std::string encode_state(index_state s);
std::optional<index_state> decode_state(std::string_view value);

// The value of a 'D' key: the message without its due time and offset (those are in the key).
std::string encode_message(const pending_message& m);
// Fills m's append_time, timestamp, key, value and headers (appended to m.headers). False if
// `value` is not exactly one encoded message of a known version.
[[nodiscard]] bool decode_message(std::string_view value, pending_message& m);

}  // namespace ferry::delay
