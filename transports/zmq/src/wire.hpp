// The zmq transport's wire format: how a Message becomes zmq frames and back.
//
// Topic messages (PUB/SUB and PUSH/PULL):
//
//     frame 0      topic                      (SUB filters on it by prefix; patchbay then
//                                              compares it exactly)
//     frame 1..n   one header per frame:      name, NUL byte, value (the name is non-empty
//                                              and holds no NUL; the value is any bytes)
//     last frame   payload                    (any bytes, may be empty)
//
// The message id and time travel as reserved headers `patchbay-id` and `patchbay-time`
// (nanoseconds since the Unix epoch, decimal); they are moved into Message::id / time on
// receipt and never appear in Message::headers. A plain two-frame [topic, payload] message,
// as any zmq publisher sends, is valid: it gets a fresh id and the receive time.
//
// A message is malformed — dropped and counted, never delivered — when it has fewer than two
// frames, when a header frame has no NUL or an empty name, or when `patchbay-time` is not a
// number.
//
// Requests (DEALER → ROUTER, REQ-compatible envelope):   "", service, request id, headers..., payload
// Replies  (ROUTER → DEALER):                            "", request id, status, headers..., payload
// where status is the decimal patchbay::errc (0: success; otherwise the payload is the error text).
#pragma once

#include <patchbay/message.hpp>

#include <zmq.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace patchbay::zeromq::wire {

inline constexpr std::string_view id_header = "patchbay-id";
inline constexpr std::string_view time_header = "patchbay-time";

/// Builds the header frame "name\0value".
zmq::message_t header_frame(std::string_view name, std::string_view value);

/// The payload frame; large payloads are sent without a copy (the frame keeps the Bytes alive).
zmq::message_t payload_frame(const Bytes& payload);

/// Appends the header frames of `msg` (reserved id and time first) to `frames`.
void append_headers(const Message& msg, std::vector<zmq::message_t>& frames);

/// The first invalid header name of `headers` (empty name, NUL inside, reserved), or nullopt.
std::optional<std::string> invalid_header(const Headers& headers);

/// Parses header frames [first, last) and the payload frame into `out` (topic left as is).
/// Returns false (leaving `out` unspecified) when a frame is malformed.
bool parse_body(std::vector<zmq::message_t>& frames, std::size_t first, Message& out);

/// Reads one whole multipart message without waiting. Returns false at EAGAIN (nothing read).
bool recv_multipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames);

/// Sends every frame without waiting. Returns false at EAGAIN on the first frame (nothing
/// sent); throws zmq::error_t on other errors. Once the first frame is accepted zmq accepts
/// the rest of the message (its high-water mark counts whole messages).
bool send_multipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames);

inline std::string_view view(const zmq::message_t& m) { return {static_cast<const char*>(m.data()), m.size()}; }

}  // namespace patchbay::zeromq::wire
