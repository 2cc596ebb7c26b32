#pragma once
// result<T>: the one return type for expected failures (STYLE.md, "Errors are values").
// It is boost::system::result<T, ferry::error>: an error carries a typed code and a readable
// message with context ("topic 'orders' not found"), so it can go on the wire as is.
#include <string>
#include <utility>

#include <boost/system/result.hpp>

#include "schema/errc.h"

namespace ferry {

struct error {
  errc code = errc::unknown;
  std::string message;

  std::string to_string() const;  // "unknown_topic: topic 'x' not found"
};

// Called by result<T>::value() on an error; makes it an exception (used at the edges only).
[[noreturn]] void throw_exception_from_error(error const& e, boost::source_location const& loc);

template <class T>
using result = boost::system::result<T, error>;

// Builds an error result: `return fail(errc::unknown_topic, "topic '" + name + "' not found");`
inline error fail(errc code, std::string message) { return error{code, std::move(message)}; }

// Thrown by throw_exception_from_error (result::value() on an error).
class error_exception : public std::runtime_error {
 public:
  explicit error_exception(error e) : std::runtime_error(e.to_string()), error_(std::move(e)) {}
  const error& err() const noexcept { return error_; }

 private:
  error error_;
};

}  // namespace ferry
