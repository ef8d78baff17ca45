// patchbay/transports/redis/envelope.hpp — message headers where Redis Pub/Sub has none.
//
// A Redis Pub/Sub message is one opaque string. With `envelope: true` (the default) the redis
// transport publishes patchbay messages as
//
//     "\0PB1"  u32 id length, id,  i64 time (ms since the epoch),
//              u32 header count, { u32 name length, name, u32 value length, value } ...,
//              payload (the rest)
//
// with big-endian integers. The leading NUL byte keeps text published by other clients
// (`redis-cli PUBLISH chan hello`) from being mistaken for an envelope: such a message, or
// anything else that does not decode completely, is delivered as a plain payload with a fresh
// id and the time of receipt. Streams need no envelope: they carry id, time and headers as
// entry fields.
//
// Thread safety: pure functions.
#pragma once

#include <patchbay/message.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace patchbay::redis {

inline constexpr std::string_view kEnvelopeMagic{"\0PB1", 4};

/// A time from milliseconds since the epoch as it comes off the wire: a value the clock cannot
/// represent (beyond ±292 years, where nanoseconds overflow) gives the unset time_point{}.
Message::time_point time_from_ms(long long ms) noexcept;

/// The envelope bytes that precede the payload (the payload is appended by the caller, so a
/// large payload is not copied).
std::string envelope_head(const Message& msg);

/// Decodes a Pub/Sub message body: the envelope's message, or std::nullopt when `wire` is not
/// a well-formed envelope (then it is a plain payload).
std::optional<Message> decode_envelope(std::string_view wire);

}  // namespace patchbay::redis
