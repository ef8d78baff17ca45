// patchbay/http/message_fields.hpp — message headers ↔ HTTP header fields, one mapping for
// the hub and every HTTP transport.
//
// Every field except the hop-by-hop and framing ones (Host, Connection, Content-Length,
// Transfer-Encoding, Keep-Alive, TE, Trailer, Upgrade, Expect, Proxy-Connection) is a message
// header, name as sent, in order, repeated fields kept; the message id travels as
// `Patchbay-Message-Id`. Functions only; thread-safe.
#pragma once

#include <patchbay/message.hpp>

#include <boost/beast/http/fields.hpp>

#include <initializer_list>
#include <string_view>

namespace patchbay::http {

inline constexpr std::string_view kMessageIdField = "Patchbay-Message-Id";

/// Whether `field_name` is a hop-by-hop or framing field (case-insensitive).
bool is_hop_by_hop(std::string_view field_name) noexcept;

/// Adds `msg`'s headers to `fields`, and its id when set. Throws system_error(errc::bad_message)
/// for a header HTTP cannot carry: a name that is not a token, a hop-by-hop or framing name, a
/// value with CR, LF or NUL, or with leading or trailing white space (HTTP would trim it).
void put_message_headers(const Message& msg, boost::beast::http::fields& fields);

/// Adds the message headers `fields` carry to `msg` (skipping the hop-by-hop and framing fields
/// and those named in `skip`) and takes its id from `Patchbay-Message-Id`.
void take_message_headers(const boost::beast::http::fields& fields, Message& msg,
                          std::initializer_list<std::string_view> skip = {});

}  // namespace patchbay::http
