// patchbay/http/status_error.hpp — a remote HTTP answer that was not 2xx, as an error.
//
// HTTP client transports throw it from request() (and publish()) when the server answered
// with a status that has no patchbay meaning of its own. It is a system_error with
// errc::remote_error, so code written against the core API handles it like any remote
// failure; code that cares about HTTP catches StatusError and reads status() and body().
#pragma once

#include <patchbay/error.hpp>

#include <boost/system/system_error.hpp>

#include <string>

namespace patchbay::http {

class StatusError : public boost::system::system_error {
 public:
  StatusError(unsigned status, std::string body, const std::string& what)
      : boost::system::system_error(make_error_code(errc::remote_error), what), status_(status), body_(std::move(body)) {}

  /// The HTTP status code (e.g. 404, 503).
  unsigned status() const noexcept { return status_; }
  /// The answer's body, as received.
  const std::string& body() const noexcept { return body_; }

 private:
  unsigned status_;
  std::string body_;
};

}  // namespace patchbay::http
