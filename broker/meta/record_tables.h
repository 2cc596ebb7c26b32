#pragma once
// The FlatBuffers tables of topic and subscription configuration (schema/meta.fbs), built into a
// caller's builder and read from a verified buffer: for the records that embed them, so one place
// knows their fields and enums. broker/meta's own store records (encode_topic_record,
// encode_subscription_record) use them, and so do the metadata log's Topic with its assignments
// and the metadata image snapshot (broker/cluster).
//
// Whoever includes this header also links ferry_meta_schema (the flatc-generated header).
// Pure functions, any thread.
#include <flatbuffers/flatbuffers.h>

#include "broker/meta/subscription_config.h"
#include "broker/meta/topic_config.h"
#include "schema/meta_generated.h"
#include "schema/result.h"

namespace ferry::meta {

// Builds a TopicConfig table holding every field of `c`. Precondition: no table of `b` is under
// construction (FlatBuffers builds children before their parent).
flatbuffers::Offset<fb::TopicConfig> build_topic_config(flatbuffers::FlatBufferBuilder& b, const topic_config& c);
// The configuration in a verified table. storage_error for an enum value this broker does not know.
[[nodiscard]] result<topic_config> read_topic_config(const fb::TopicConfig& t);

// Builds a Subscription table (with its SubscriptionConfig) holding every field of `r`. Same
// precondition as build_topic_config.
flatbuffers::Offset<fb::Subscription> build_subscription(flatbuffers::FlatBufferBuilder& b,
                                                         const subscription_record& r);
// The record in a verified table. storage_error for an unknown enum value, or without topic, name
// or id.
[[nodiscard]] result<subscription_record> read_subscription(const fb::Subscription& s);

}  // namespace ferry::meta
