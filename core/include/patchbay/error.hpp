// patchbay/error.hpp — patchbay's error category for I/O and coroutine operations.
//
// Asynchronous operations report failures as boost::system::error_code values from this
// category (thrown as boost::system::system_error when awaited with the default token).
// Start-up work (config, plugin loading, binding checks) uses absl::Status instead.
// The numeric values are stable: they travel on the wire (e.g. in the `patchbay-error`
// header of a failed reply) and must never be renumbered.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <string>
#include <type_traits>

namespace patchbay {

enum class errc : int {
  ok = 0,
  timed_out = 1,          ///< a deadline passed before the operation completed
  no_responders = 2,      ///< nobody serves the requested service
  stopped = 3,            ///< the transport or runtime is stopping or stopped
  closed = 4,             ///< the stream, channel or subscription was closed
  payload_too_large = 5,  ///< the message exceeds the transport's max_payload
  not_supported = 6,      ///< the transport does not declare the feature this call needs
  remote_error = 7,       ///< the serving side failed while handling the request
  bad_message = 8,        ///< malformed input from the network or a peer
  unavailable = 9,        ///< the peer or broker cannot be reached right now
};

const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// Throws boost::system::system_error carrying `e` and an optional context message.
[[noreturn]] void throw_error(errc e, const std::string& what = {});

}  // namespace patchbay

template <>
struct boost::system::is_error_code_enum<patchbay::errc> : std::true_type {};
