#include "client/ferryctl/common.h"

#include <chrono>
#include <cstdio>

#include "client/ferryctl/format.h"

namespace ferry::ctl {

fc::client_options globals::client() const {
  fc::client_options o;
  o.bootstrap = bootstrap;
  return o;
}

int broker_error(const ferry::error& e) {
  std::fprintf(stderr, "error: %s: %s\n", std::string(ferry::errc_name(e.code)).c_str(), e.message.c_str());
  return exit_broker;
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "error: %s\nRun with --help for usage.\n", msg.c_str());
  return exit_usage;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string duration_text(int64_t ms) { return format_duration_ms(ms); }

void print_json(const json& j) {
  std::string s = json_line(j);
  s.push_back('\n');
  std::fwrite(s.data(), 1, s.size(), stdout);
}

json error_json(const ferry::error& e) {
  json j;
  j["code"] = json_text(ferry::errc_name(e.code));
  j["message"] = json_text(e.message);
  return j;
}

json headers_json(const std::vector<fc::header>& hs) {
  json j = json::object();
  for (const auto& h : hs) j[utf8_or_latin1(h.key)] = json_text_or_null(h.value);
  return j;
}

json message_json(const fc::received_message& m) {
  json j;
  j["topic"] = json_text(m.topic);
  j["partition"] = m.partition;
  j["offset"] = m.offset;
  j["id"] = json_text(m.id());
  j["key"] = json_text_or_null(m.key);
  j["value"] = json_text_or_null(m.value);
  j["headers"] = headers_json(m.headers);
  j["timestamp"] = m.timestamp_ms;
  j["append_time"] = m.append_time_ms;
  return j;
}

std::string cell(const std::optional<std::string>& s) { return s ? printable(*s) : "-"; }

std::string headers_text(const std::vector<fc::header>& hs) {
  std::string out;
  for (const auto& h : hs) {
    if (!out.empty()) out += ",";
    out += printable(h.key) + "=" + (h.value ? printable(*h.value) : "");
  }
  return out;
}

}  // namespace ferry::ctl
