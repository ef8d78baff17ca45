// patchbay/http/sse.hpp — server-sent events: the WHATWG event-stream parser, and the codec
// that maps patchbay Messages to events and back.
//
// Parser: follows https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
// exactly. The stream is decoded as UTF-8 (invalid sequences become U+FFFD, one per maximal
// invalid subpart, as the Encoding standard's decoder does); lines end at CRLF, LF or CR, split
// across feed() calls at any byte; one leading BOM is dropped; lines starting with ':' are
// comments; a line without ':' is a field with an empty value; one space after the colon is
// dropped; `retry` is applied only when its value is all ASCII digits; an `id` whose value
// contains U+0000 is ignored; an event with an empty data buffer is not dispatched; an
// unterminated event at end of stream is dropped (finish()).
// As in the spec, an `id` line sets the last event ID *buffer*, which becomes the last event ID
// (what last_event_id() returns and a reconnection sends) only when its event ends with a blank
// line — even one with no data. An id whose event was cut off by the end of the stream is
// therefore not sent on reconnection, so the server resends that event.
//
// Codec (patchbay's own hub ↔ its clients, and any browser):
//   * A text payload (valid UTF-8 without CR) is sent as `data:` lines, one per LF-separated
//     line, so a browser's `event.data` is the payload unchanged.
//   * Any other payload is sent base64-encoded with `event: binary`.
//   * With the envelope format (requested by patchbay's client, `?envelope=1`), the data is one
//     line of JSON: {"id":..., "headers":[[name,value],...], "payload":... | "payload_base64":...}
//     so headers and the message id travel too; the event type stays `message`. JSON strings
//     must be valid UTF-8, so: a payload that is not valid UTF-8 goes as "payload_base64"; an id
//     that is not goes as "id_base64"; and when any header name or value is not, the whole list
//     goes as "headers_base64": [[base64(name), base64(value)], ...] (order kept). The JSON
//     line never contains CR or LF (the serializer escapes them).
//   * The event id is the hub's position token (it must not contain CR, LF or NUL; an empty
//     position writes no `id:` line, so the client's last event ID stays as it was); a gap is
//     `event: gap` with JSON data {"last_seen": token, "resumes_at": token, "missed": n,
//     "reason": text} and no id. An empty Position is written as null.
// Thread safety: a Parser is used by one coroutine at a time; the functions are pure.
#pragma once

#include <patchbay/delivery.hpp>
#include <patchbay/message.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace patchbay::http::sse {

/// One dispatched event, as a browser's MessageEvent would see it.
struct Event {
  std::string type;           ///< "message" unless the stream set `event:`
  std::string data;           ///< data lines joined with LF, without the final LF
  std::string last_event_id;  ///< the last event ID buffer when dispatched
};

class Parser {
 public:
  Parser();

  std::function<void(Event&&)> on_event;            ///< each dispatched event
  std::function<void(std::uint64_t)> on_retry;      ///< a valid `retry:` value, in milliseconds
  std::function<void(std::string_view)> on_comment; ///< a comment line's text after ':' (optional)

  /// Feeds the next bytes of the stream (any split). The callbacks run inside; they must not
  /// call feed() themselves.
  void feed(std::string_view bytes);

  /// End of the stream: drops an unterminated event, any partial line, and an id that arrived
  /// in that unterminated event (the last event ID buffer returns to last_event_id()).
  void finish();

  /// Begins a new stream (after a reconnection): does what finish() does and expects a BOM
  /// again. The last event ID persists, as in a browser.
  void reset_stream();

  /// The last event ID as of the last blank line: what a reconnection sends as Last-Event-ID.
  const std::string& last_event_id() const noexcept { return last_event_id_; }
  /// Sets the last event ID and the last event ID buffer (e.g. a stored resume point).
  void set_last_event_id(std::string id) {
    last_event_id_ = id;
    id_buffer_ = std::move(id);
  }

 private:
  void process_text(std::string_view text);
  void process_line(std::string_view line);
  void dispatch();
  void clear_stream_state();

  std::string line_;         // current line, decoded to UTF-8
  std::string pending_utf8_; // an incomplete UTF-8 sequence at the end of the last chunk
  std::string repaired_;     // a chunk with invalid UTF-8 replaced by U+FFFD (reused buffer)
  std::string data_;
  std::string type_;
  std::string id_buffer_;     // the spec's last event ID buffer
  std::string last_event_id_; // the spec's last event ID string of the event source
  bool bom_checked_ = false;
  bool after_cr_ = false;    // the previous text ended with CR: skip a leading LF
};

/// Wire format of an event's data.
enum class Format { plain, envelope };

/// Whether a payload goes out as text `data:` lines (valid UTF-8 without CR).
bool is_text(std::string_view payload) noexcept;

/// The complete frame for one message at `position` ("id: ...\ndata: ...\n\n").
std::string encode(const Message& msg, std::string_view position, Format format);

/// `event: gap` frame (no id, so the client's Last-Event-ID is unchanged).
std::string encode_gap(const Gap& gap);

/// `retry: <ms>` line plus blank line.
std::string encode_retry(std::uint64_t milliseconds);

/// A heartbeat comment line (": <text>\n\n").
std::string encode_comment(std::string_view text);

/// What an Event carries, decoded. `envelope` tells whether the server answered with the
/// envelope format. A gap event yields `gap` set; a foreign event type other than message /
/// binary / gap yields a message with header `sse-event: <type>`. Malformed envelope or base64
/// data: std::nullopt (the caller reports it).
struct Decoded {
  std::optional<Message> message;
  std::optional<Gap> gap;
};
std::optional<Decoded> decode(const Event& event, bool envelope);

/// The envelope JSON object of one message, on one line: {"id":..., "headers":[[n,v],...],
/// "payload":... | "payload_base64":...} as described above. The same object carries messages
/// in SSE's envelope format, long and short poll answers and WebSocket frames.
std::string encode_envelope(const Message& msg);
/// The message of an envelope object (other members are ignored); std::nullopt when malformed.
std::optional<Message> decode_envelope_json(std::string_view json);
/// A gap as a JSON object {"last_seen":..,"resumes_at":..,"missed":n,"reason":..}, and back.
std::string encode_gap_json(const Gap& gap);
std::optional<Gap> decode_gap_json(std::string_view json);

/// Base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace patchbay::http::sse
