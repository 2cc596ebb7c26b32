#pragma once
// The FlatBuffers tables of the metadata log's records (schema/meta.fbs) that other encodings
// embed: a Topic with its assignments and a BrokerRegistration are both entries of the log
// (records.cc) and parts of the metadata image snapshot (metadata_image.cc). Topic and
// subscription configuration come from broker/meta (record_tables.h), so one place knows them.
//
// Internal to broker/cluster. Pure functions, any thread.
#include <flatbuffers/flatbuffers.h>

#include "broker/cluster/records.h"
#include "schema/meta_generated.h"
#include "schema/result.h"

namespace ferry::cluster {

// Precondition of the builders: no table of `b` is under construction.
flatbuffers::Offset<meta::fb::Topic> build_topic(flatbuffers::FlatBufferBuilder& b, const topic_entry& t);
flatbuffers::Offset<meta::fb::BrokerRegistration> build_registration(flatbuffers::FlatBufferBuilder& b,
                                                                     const broker_registration& r);

// Readers of verified tables. read_topic: storage_error for an empty name or an enum value this
// broker does not know.
[[nodiscard]] result<topic_entry> read_topic(const meta::fb::Topic& t);
broker_registration read_registration(const meta::fb::BrokerRegistration& r);

}  // namespace ferry::cluster
