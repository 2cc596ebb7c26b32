#pragma once
// ferryctl's commands, one file per noun (topic.cc, produce.cc, read.cc, sub.cc, consume.cc,
// dlq.cc, msg.cc, delayed.cc); main.cc wires them to the command line. Each takes the global
// flags and its own arguments (as parsed, already checked against their documented ranges) and
// returns the exit status (exit_ok, exit_broker, exit_usage), having printed what it has to say.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/ferryctl/common.h"

namespace ferry::ctl {

// ---- topic.cc ----
struct topic_create_args {
  std::string topic;
  int32_t partitions = 1;
  int16_t replication = 1;
  std::string retention;
  int64_t retention_bytes = -1;
  int64_t segment_bytes = 0;
  std::string max_delay;
};
int topic_create(const globals& g, const topic_create_args& a);
int topic_list(const globals& g);
int topic_describe(const globals& g, const std::string& topic);
int topic_delete(const globals& g, const std::string& topic);

// ---- produce.cc ----
struct produce_args {
  std::string topic;
  std::optional<std::string> key;
  std::vector<std::string> headers;
  std::optional<int32_t> partition;
  std::string delay;
  std::string at;
  std::optional<std::string> value;  // else: one message per stdin line
};
int produce(const globals& g, const produce_args& a);

// ---- read.cc ----
struct read_args {
  std::string topic;
  std::optional<int32_t> partition;
  std::optional<int64_t> offset;
  bool from_beginning = false;
  std::optional<int64_t> count;
  bool follow = false;
};
int read_topic(const globals& g, const read_args& a);

// ---- sub.cc ----
struct sub_create_args {
  std::string topic;
  std::string sub;
  std::string from;
  std::string ack_timeout;
  std::optional<int32_t> max_deliveries;
  std::string ordered;
  std::string backoff;
  std::string backoff_initial;
  std::string backoff_max;
  std::string dead_letter_topic;
};
int sub_create(const globals& g, const sub_create_args& a);
int sub_list(const globals& g, const std::string& topic);
int sub_describe(const globals& g, const std::string& topic, const std::string& sub);
int sub_delete(const globals& g, const std::string& topic, const std::string& sub);
struct sub_seek_args {
  std::string topic;
  std::string sub;
  std::string to;
  std::optional<int32_t> partition;
  bool dry_run = false;
};
int sub_seek(const globals& g, const sub_seek_args& a);

// ---- consume.cc ----
struct consume_args {
  std::string topic;
  std::string sub;
  std::optional<int64_t> count;
  bool nack = false;
  std::string nack_delay;
  bool no_ack = false;
  std::string wait = "5s";
  std::string member;
};
int consume(const globals& g, const consume_args& a);

// ---- dlq.cc ----
struct dlq_list_args {
  std::string topic;
  std::string sub;
  std::optional<int64_t> count;
};
int dlq_list(const globals& g, const dlq_list_args& a);
struct dlq_replay_args {
  std::string topic;
  std::string sub;
  std::vector<std::string> offsets;       // DLQ-PARTITION/OFFSET
  std::vector<std::string> original_ids;  // TOPIC/PARTITION/OFFSET
  bool all = false;
  bool dry_run = false;
};
int dlq_replay(const globals& g, const dlq_replay_args& a);

// ---- msg.cc ----
int msg_cancel(const globals& g, const std::string& id);

// ---- delayed.cc ----
struct delayed_list_args {
  std::string topic;
  std::string before;
  int64_t limit = 100;
  std::optional<int32_t> partition;
};
int delayed_list(const globals& g, const delayed_list_args& a);

}  // namespace ferry::ctl
