#include "broker/delay/codec.h"

#include "schema/varint.h"

namespace ferry::delay {
namespace {

constexpr uint8_t value_version = 1;

void put_be64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}
void put_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t flip(int64_t v) { return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63); }
int64_t unflip(uint64_t v) { return static_cast<int64_t>(v ^ (uint64_t{1} << 63)); }

}  // namespace

std::string topic_prefix(char kind, uint64_t topic_id) {
  std::string k(1, kind);
  put_be64(k, topic_id);
  return k;
}

std::string key_prefix(char kind, partition_key p) {
  auto k = topic_prefix(kind, p.topic_id);
  put_be32(k, static_cast<uint32_t>(p.partition));
  return k;
}

std::string due_key(partition_key p, int64_t due, int64_t offset) {
  auto k = key_prefix('D', p);
  put_be64(k, flip(due));
  put_be64(k, static_cast<uint64_t>(offset));
  return k;
}

std::string offset_key(char kind, partition_key p, int64_t offset) {
  auto k = key_prefix(kind, p);
  put_be64(k, static_cast<uint64_t>(offset));
  return k;
}

std::optional<std::pair<int64_t, int64_t>> decode_due_key(std::string_view key) {
  if (key.size() != due_key_len) return std::nullopt;
  return std::pair{unflip(get_be64(key.data() + key_prefix_len)),
                   static_cast<int64_t>(get_be64(key.data() + key_prefix_len + 8))};
}

std::string encode_due(int64_t due) {
  std::string v;
  put_be64(v, flip(due));
  return v;
}

std::optional<int64_t> decode_due(std::string_view value) {
  if (value.size() != 8) return std::nullopt;
  return unflip(get_be64(value.data()));
}

std::string encode_state(index_state s) {
  std::string v;
  put_be64(v, static_cast<uint64_t>(s.applied_upto));
  put_be64(v, static_cast<uint64_t>(s.pending));
  return v;
}

std::optional<index_state> decode_state(std::string_view value) {
  if (value.size() != 16) return std::nullopt;
  return index_state{static_cast<int64_t>(get_be64(value.data())), static_cast<int64_t>(get_be64(value.data() + 8))};
}

size_t pending_message::bytes() const {
  size_t n = sizeof(*this) + (key ? key->size() : 0) + (value ? value->size() : 0);
  for (auto& [k, v] : headers) n += k.size() + (v ? v->size() : 0) + 64;
  return n;
}

std::string encode_message(const pending_message& m) {
  byte_writer w;
  w.u8(value_version);
  w.varint(m.append_time);
  w.varint(m.timestamp);
  w.u8(m.key ? 1 : 0);
  if (m.key) w.str(*m.key);
  w.u8(m.value ? 1 : 0);
  if (m.value) w.str(*m.value);
  w.uvarint(m.headers.size());
  for (auto& [k, v] : m.headers) {
    w.str(k);
    w.u8(v ? 1 : 0);
    if (v) w.str(*v);
  }
  return std::move(w).str();
}

bool decode_message(std::string_view value, pending_message& m) {
  byte_reader r{value};
  if (r.u8() != value_version) return false;
  m.append_time = r.varint();
  m.timestamp = r.varint();
  if (r.u8()) m.key = r.str();
  if (r.u8()) m.value = r.str();
  uint64_t n = r.uvarint();
  if (!r.ok || n > value.size()) return false;
  for (uint64_t i = 0; i < n && r.ok; ++i) {
    std::string k = r.str();
    std::optional<std::string> v;
    if (r.u8()) v = r.str();
    m.headers.emplace_back(std::move(k), std::move(v));
  }
  return r.ok && r.pos == value.size();
}

}  // namespace ferry::delay
