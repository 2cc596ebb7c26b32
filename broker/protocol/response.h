#pragma once
// Internal to broker/protocol: what an API handler returns, shared by handler.cc and
// subscriptions.cc.
#include <memory>
#include <span>
#include <string>

#include "broker/meta/topic_config.h"
#include "broker/net/server.h"
#include "schema/frame.h"
#include "schema/result.h"

namespace ferry::protocol {

namespace w = ferry::wire;
using fbb_t = flatbuffers::FlatBufferBuilder;
template <class T>
using fb_offset = flatbuffers::Offset<T>;

// What an API handler produces: the body (type + offset into fbb) or a request-level error.
struct body_result {
  w::ResponseBody type = w::ResponseBody::NONE;
  flatbuffers::Offset<void> body{};
  errc code = errc::ok;
  std::string message;
};

inline body_result failed(const error& e) { return body_result{w::ResponseBody::NONE, {}, e.code, e.message}; }
inline body_result failed(errc c, std::string m) { return body_result{w::ResponseBody::NONE, {}, c, std::move(m)}; }
// A request for a topic that is not there: invalid_topic_name if the name could never exist,
// else unknown_topic.
inline body_result no_topic(const std::string& name) {
  if (auto v = meta::validate_topic_name(name); !v) return failed(v.error());
  return failed(errc::unknown_topic, "topic '" + name + "' does not exist");
}
template <class T>
body_result ok_body(w::ResponseBody type, fb_offset<T> body) {
  return body_result{type, body.Union(), errc::ok, {}};
}

// A response frame built in a FlatBufferBuilder (owned until the write completes).
class builder_frame final : public net::out_frame {
 public:
  explicit builder_frame(std::unique_ptr<fbb_t> b) : b_(std::move(b)) {}
  std::span<const std::byte> bytes() const override {
    auto s = b_->GetBufferSpan();
    return std::as_bytes(std::span(s.data(), s.size()));
  }

 private:
  std::unique_ptr<fbb_t> b_;
};

inline std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

}  // namespace ferry::protocol
