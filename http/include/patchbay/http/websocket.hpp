// patchbay/http/websocket.hpp — the JSON frames the hub's WebSocket endpoint
// (`GET /topics/{topic}/ws`) and the `websocket` transport exchange. No Beast here: the
// WebSocket framing lives in http/src/hub_websocket.cpp (server) and the transport (client).
//
// Every frame is one text message holding one JSON object with a "type" member:
//   server → client
//     {"type":"message","position":"<epoch>:<seq>", <envelope members>}   a message (the
//         envelope object of sse::encode_envelope: "id", "headers", "payload"/"payload_base64")
//     {"type":"gap", <gap members>}          the history no longer reaches the requested position
//                                            (sse::encode_gap_json's members)
//     {"type":"published","id":..,"position":..}   the answer to one publish ("position" absent
//                                            when the topic is bridged to a backbone)
//     {"type":"error","id":..,"error":"text"}      a publish (or frame) the hub refused
//   client → server
//     {"type":"publish", <envelope members>}  publishes on the connection's topic; "id" is
//                                            optional (generated when absent)
// See docs/websocket.md for the close codes and limits.
#pragma once

#include <patchbay/delivery.hpp>
#include <patchbay/message.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace patchbay::http::websocket {

/// {"type":"message","position":..,<envelope members>}
std::string encode_message(const Message& msg, std::string_view position);
/// {"type":"gap",<gap members>}
std::string encode_gap(const Gap& gap);
/// {"type":"published","id":..,"position":..} (no "position" when it is empty)
std::string encode_published(std::string_view id, std::string_view position);
/// {"type":"error","id":..,"error":..} (no "id" when it is empty)
std::string encode_error(std::string_view id, std::string_view error);
/// {"type":"publish",<envelope members>}
std::string encode_publish(const Message& msg);

/// One decoded frame (either direction).
struct Frame {
  enum class Type { message, gap, published, error, publish, unknown };
  Type type = Type::unknown;
  std::string type_name;           ///< the "type" member as sent
  std::optional<Message> message;  ///< message, publish
  std::string position;            ///< message, published
  std::optional<Gap> gap;          ///< gap
  std::string id;                  ///< published, error
  std::string error;               ///< error
};

/// Decodes one frame; std::nullopt when it is not a JSON object with a string "type", or when
/// the members of a known type are malformed. An unknown type decodes as Type::unknown.
std::optional<Frame> decode(std::string_view json);

}  // namespace patchbay::http::websocket
