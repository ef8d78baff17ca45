// patchbay/http/event_source.hpp — a server-sent events client that behaves like a browser's
// EventSource, on the HTTP client core.
//
// next() connects on first use and yields events one at a time; it reconnects on its own,
// following the WHATWG processing model:
//   * a response whose status is not 200, or whose Content-Type is not text/event-stream
//     (parameters allowed), fails the source: that next() and every later one throw
//     system_error(errc::unavailable) naming the status or content type; it never reconnects;
//   * a network error, a failed connection attempt or the end of the stream make it reconnect
//     after the reconnection time (`reconnect_delay`, replaced by any `retry:` field), with
//     `Accept: text/event-stream`, `Cache-Control: no-cache` and, when there is one,
//     `Last-Event-ID`. Consecutive attempts that deliver no event back off: the delay grows by
//     `backoff_factor` each time up to `max_backoff` (or the reconnection time, if longer); an
//     attempt that delivers an event resets it. Each delay gets up to 10% random jitter so that
//     many clients of one restarted server do not reconnect in lock step.
// Only dispatched events move the last event ID (see sse.hpp): an event cut off by a dropped
// connection is resent by the server after the reconnection, never skipped.
//
// With `envelope`, the request asks for patchbay's envelope format (`?envelope=1`); whether
// the server honoured it (`X-Patchbay-Envelope: 1`) comes with every event, ready for
// sse::decode(received.event, received.envelope).
//
// Thread safety: one coroutine calls next() at a time (it runs on that coroutine's executor,
// which must be a strand when the io_context has several threads); last_event_id() and
// envelope() are read from that coroutine too. close() and connections() may be called from
// any thread. The Client must outlive the EventSource, and the EventSource every pending next().
// Cancellation: cancelling the coroutine awaiting next() (`||`, a timeout) makes it throw
// operation_aborted at once; events already received stay queued for the next call, but the
// connection in use is closed, so that call reconnects (resuming from Last-Event-ID).
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/headers.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/sse.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace patchbay::http {

struct EventSourceOptions {
  duration reconnect_delay = std::chrono::seconds(3);  ///< initial reconnection time; `retry:` replaces it
  duration max_backoff = std::chrono::seconds(30);     ///< longest delay after repeated failures
  double backoff_factor = 2;                           ///< delay growth per consecutive failed attempt
  bool envelope = false;                               ///< ask for the envelope format (`?envelope=1`)
  std::string last_event_id;                           ///< sent with the first request when not empty
  Headers headers;                                     ///< extra request headers (replace ours of the same name)
  EventSourceOptions() {}
};

/// One event, and whether the connection it arrived on uses the envelope format.
struct ReceivedEvent {
  sse::Event event;
  bool envelope = false;
  ReceivedEvent() {}
  ReceivedEvent(sse::Event e, bool envelope_format) : event(std::move(e)), envelope(envelope_format) {}
};

class EventSource {
 public:
  /// `url`: absolute http:// or https:// URL; throws system_error(errc::bad_message) otherwise.
  EventSource(Client& client, std::string url, EventSourceOptions options = EventSourceOptions());
  /// Closes the source.
  ~EventSource();
  EventSource(const EventSource&) = delete;
  EventSource& operator=(const EventSource&) = delete;

  /// The next event, connecting or reconnecting as needed. Throws errc::closed after close(),
  /// errc::unavailable once the source has failed (see above).
  awaitable<ReceivedEvent> next();

  /// Connects now (retrying like next() would) and returns once the server answered with its
  /// event stream; events then wait for next(). Throws like next(). A transport's subscribe()
  /// uses it: once a hub has answered, every message it receives afterwards reaches this source.
  awaitable<void> open();

  /// Stops for good, from any thread: a pending next() throws errc::closed promptly (also
  /// during a reconnection delay), and so does every later one.
  void close() noexcept;

  /// The last event ID: what the next reconnection sends as Last-Event-ID.
  const std::string& last_event_id() const noexcept;
  /// Whether the current (or last) connection uses the envelope format.
  bool envelope() const noexcept;
  /// How many connections delivered an event stream (a 200 text/event-stream response).
  std::uint64_t connections() const noexcept;
  /// The current reconnection time (the option, or the last `retry:` value).
  duration reconnection_time() const noexcept;

 private:
  struct State;
  class PendingCall;
  std::shared_ptr<State> state_;
};

}  // namespace patchbay::http
