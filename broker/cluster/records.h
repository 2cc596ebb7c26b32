#pragma once
// The records of the cluster's metadata log (schema/meta.fbs, prose in schema/meta.md "The
// metadata log"), as values, and their encoding. Each log entry is one FlatBuffers `Record`; the
// topic and subscription bodies are the ones the metadata store already keeps (broker/meta), a
// topic now with its partition assignments.
//
// Pure functions, any thread.
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "broker/consensus/types.h"
#include "broker/meta/subscription_config.h"
#include "broker/meta/topic_config.h"
#include "schema/result.h"
#include "schema/types.h"

namespace ferry::cluster {

// The metadata version: the offset (consensus log index) of the last applied metadata log entry.
using metadata_version = consensus::index_t;

struct broker_registration {
  node_id node{0};
  uint64_t incarnation = 0;  // strictly greater than any earlier process of this node
  std::string client_address;
  std::string peer_address;
  std::string http_address;  // empty: none
  std::string rack;          // empty: no rack
  friend bool operator==(const broker_registration&, const broker_registration&) = default;
};

struct broker_fenced {
  node_id node{0};
  uint64_t incarnation = 0;
};

struct broker_unfenced {
  node_id node{0};
  uint64_t incarnation = 0;
};

struct partition_assignment {
  int32_t partition = 0;
  std::vector<node_id> replicas;  // distinct; the first serves the partition
  friend bool operator==(const partition_assignment&, const partition_assignment&) = default;
};

// A topic as the metadata log holds it: the stored record and where each partition lives.
struct topic_entry {
  meta::topic_record topic;
  std::vector<partition_assignment> assignments;  // one per partition, in partition order
};

struct topic_deleted {
  std::string name;
  uint64_t id = 0;
};

struct subscription_deleted {
  std::string topic;
  std::string name;
  uint64_t id = 0;
};

struct id_allocation {
  uint64_t next_topic_id = 0;
  uint64_t next_subscription_id = 0;
};

using metadata_record = std::variant<topic_entry, meta::subscription_record, broker_registration, broker_fenced,
                                     broker_unfenced, topic_deleted, subscription_deleted, id_allocation>;

// The entry bytes of one record: a `Record` of version 1 with file identifier FMET.
std::string encode_metadata_record(const metadata_record& r);

// The record in `bytes`. storage_error when the bytes fail the FlatBuffers verifier, lack the
// identifier, carry a version other than 1, a body kind this broker does not know, or a field the
// record cannot be without (a name, an address); the message says which.
[[nodiscard]] result<metadata_record> decode_metadata_record(std::string_view bytes);

// "topic", "subscription", "broker_registration", ...: for log lines.
const char* record_kind(const metadata_record& r);

}  // namespace ferry::cluster
