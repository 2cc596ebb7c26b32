#pragma once
// ferryctl's shared pieces: the global flags, exit statuses, error output, and what several
// nouns print (messages in JSON and in tables).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/ferryctl/json.h"
#include "ferry/client/client.h"

namespace ferry::ctl {

namespace fc = ferry::client;

inline constexpr int exit_ok = 0;
inline constexpr int exit_broker = 1;  // a broker or connection error
inline constexpr int exit_usage = 2;   // the command line is wrong

// The flags before the noun (or anywhere: ferryctl lets them follow the noun and verb).
struct globals {
  std::string bootstrap;
  std::string output = "table";
  bool json() const { return output == "json"; }
  fc::client_options client() const;
};

// Prints "error: <code>: <message>" to stderr; returns exit_broker.
int broker_error(const ferry::error& e);
// Prints "error: <msg>" and a hint to stderr; returns exit_usage.
int usage_error(const std::string& msg);

// This machine's clock, ms since the epoch.
int64_t now_ms();
// A duration for people ("15m"; "default" for a negative value).
std::string duration_text(int64_t ms);

// Prints `j` on one line of stdout.
void print_json(const json& j);
// {"code":"unknown_topic","message":"..."}
json error_json(const ferry::error& e);
// {"key":"value" or null, ...}; a key given twice keeps its last value.
json headers_json(const std::vector<fc::header>& hs);
// The fields every printed message starts with: topic, partition, offset, id, key, value,
// headers, timestamp, append_time.
json message_json(const fc::received_message& m);

// A table cell: printable text, or "-" if absent.
std::string cell(const std::optional<std::string>& s);
// "k=v,k=v" for a table, printable.
std::string headers_text(const std::vector<fc::header>& hs);

}  // namespace ferry::ctl
