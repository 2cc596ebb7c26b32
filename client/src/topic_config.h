#pragma once
// Private: topic_config <-> wire TopicConfig, and DescribeTopic shared by admin and reader.
#include "client/src/connection.h"

namespace ferry::client::detail {

flatbuffers::Offset<wire::TopicConfig> to_wire(flatbuffers::FlatBufferBuilder& fbb, const topic_config& c);
topic_config from_wire(const wire::TopicConfig* c);
// DescribeTopic over `io` (blocking; not on the I/O thread).
result<topic_description> describe(io_runner& io, const std::string& name);

}  // namespace ferry::client::detail
