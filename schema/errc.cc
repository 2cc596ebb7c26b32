// Names, retry classes and the error type of the wire's error codes (schema/errc.h, result.h).
#include "schema/errc.h"

#include <string>
#include <string_view>

#include "schema/result.h"

namespace ferry {

std::string_view errc_name(errc e) noexcept {
  switch (e) {
    case errc::ok:
      return "ok";
    case errc::unknown:
      return "unknown";
    case errc::malformed_frame:
      return "malformed_frame";
    case errc::frame_too_large:
      return "frame_too_large";
    case errc::unsupported_api:
      return "unsupported_api";
    case errc::unsupported_version:
      return "unsupported_version";
    case errc::unknown_topic:
      return "unknown_topic";
    case errc::invalid_topic_name:
      return "invalid_topic_name";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::topic_exists:
      return "topic_exists";
    case errc::unknown_partition:
      return "unknown_partition";
    case errc::offset_out_of_range:
      return "offset_out_of_range";
    case errc::corrupt_batch:
      return "corrupt_batch";
    case errc::not_leader:
      return "not_leader";
    case errc::timeout:
      return "timeout";
    case errc::disk_full:
      return "disk_full";
    case errc::storage_error:
      return "storage_error";
    case errc::out_of_order_sequence:
      return "out_of_order_sequence";
    case errc::duplicate_sequence:
      return "duplicate_sequence";
    case errc::request_too_large:
      return "request_too_large";
    case errc::shutting_down:
      return "shutting_down";
    case errc::not_ready:
      return "not_ready";
    case errc::connection_closed:
      return "connection_closed";
    case errc::unknown_subscription:
      return "unknown_subscription";
    case errc::subscription_exists:
      return "subscription_exists";
    case errc::unknown_member:
      return "unknown_member";
    case errc::lease_not_held:
      return "lease_not_held";
    case errc::unknown_message:
      return "unknown_message";
    case errc::invalid_subscription_name:
      return "invalid_subscription_name";
    case errc::delay_out_of_range:
      return "delay_out_of_range";
    case errc::resource_exhausted:
      return "resource_exhausted";
  }
  return "unknown";
}

bool errc_retriable(errc e) noexcept {
  switch (e) {
    case errc::not_leader:
    case errc::timeout:
    case errc::out_of_order_sequence:
    case errc::shutting_down:
    case errc::not_ready:
    case errc::connection_closed:
    case errc::resource_exhausted:
      return true;
    default:
      return false;
  }
}

std::string error::to_string() const {
  std::string s(errc_name(code));
  if (!message.empty()) {
    s += ": ";
    s += message;
  }
  return s;
}

void throw_exception_from_error(error const& e, boost::source_location const&) { throw error_exception(e); }

}  // namespace ferry
