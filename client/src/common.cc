// Small pieces of the public API shared by producer, reader and admin.
#include <charconv>
#include <cstdlib>

#include "ferry/client/client.h"

namespace ferry::client {

std::string default_bootstrap() {
  const char* env = std::getenv("FERRY_BOOTSTRAP");
  if (env != nullptr && *env != '\0') return env;
  return "127.0.0.1:7070";
}

std::string message_id::to_string() const {
  return topic + "/" + std::to_string(partition) + "/" + std::to_string(offset);
}

std::string received_message::id() const {
  return topic + "/" + std::to_string(partition) + "/" + std::to_string(offset);
}

std::string delayed_message::id(const std::string& topic) const {
  return topic + "/" + std::to_string(partition) + "/" + std::to_string(offset);
}

result<message_id> parse_message_id(std::string_view s) {
  auto bad = [&](const char* why) {
    return fail(errc::invalid_argument, "message id '" + std::string(s) + "' " + why);
  };
  auto last = s.rfind('/');
  if (last == std::string_view::npos) return bad("is not topic/partition/offset");
  auto mid = s.rfind('/', last == 0 ? 0 : last - 1);
  if (mid == std::string_view::npos || last == 0) return bad("is not topic/partition/offset");
  std::string_view topic = s.substr(0, mid);
  std::string_view part = s.substr(mid + 1, last - mid - 1);
  std::string_view off = s.substr(last + 1);
  if (topic.empty()) return bad("has an empty topic");
  if (topic.find('/') != std::string_view::npos) return bad("has a '/' in its topic");
  message_id id;
  id.topic = std::string(topic);
  auto pr = std::from_chars(part.data(), part.data() + part.size(), id.partition);
  if (part.empty() || pr.ec != std::errc{} || pr.ptr != part.data() + part.size() || id.partition < 0)
    return bad("has an invalid partition");
  auto orr = std::from_chars(off.data(), off.data() + off.size(), id.offset);
  if (off.empty() || orr.ec != std::errc{} || orr.ptr != off.data() + off.size() || id.offset < 0)
    return bad("has an invalid offset");
  return id;
}

// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), bit for bit, so keys land on the
// same partition as with Kafka's default partitioner.
uint32_t murmur2(std::string_view data) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const uint32_t length = static_cast<uint32_t>(data.size());
  constexpr uint32_t m = 0x5bd1e995;
  constexpr int r = 24;
  uint32_t h = 0x9747b28c ^ length;
  const uint32_t length4 = length / 4;
  for (uint32_t i = 0; i < length4; ++i) {
    const uint32_t i4 = i * 4;
    uint32_t k = static_cast<uint32_t>(p[i4]) | (static_cast<uint32_t>(p[i4 + 1]) << 8) |
                 (static_cast<uint32_t>(p[i4 + 2]) << 16) | (static_cast<uint32_t>(p[i4 + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const uint32_t tail = length & ~3u;
  switch (length % 4) {
    case 3:
      h ^= static_cast<uint32_t>(p[tail + 2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<uint32_t>(p[tail + 1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= static_cast<uint32_t>(p[tail]);
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

int32_t partition_for_key(std::string_view key, int32_t partitions) noexcept {
  if (partitions <= 0) return 0;
  return static_cast<int32_t>((murmur2(key) & 0x7fffffffu) % static_cast<uint32_t>(partitions));
}

std::future<result<message_id>> producer::send(std::string_view topic, message m) {
  auto p = std::make_shared<std::promise<result<message_id>>>();
  auto f = p->get_future();
  send(topic, std::move(m), [p](const result<message_id>& r) { p->set_value(r); });
  return f;
}

}  // namespace ferry::client
