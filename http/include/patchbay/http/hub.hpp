// patchbay/http/hub.hpp — the server side of the streaming patterns.
//
// A Hub keeps, per topic, a bounded ring of the latest messages (`history`, default 1024),
// each at a position "<epoch>:<seq>": the sequence grows by one per message and the epoch is
// drawn when the topic is created, so a position from an earlier run of the hub is recognised
// as foreign. Every browser-facing pattern reads the same rings: server-sent events, long and
// short polling and WebSocket. A message is encoded for the wire
// once (per format) and the encoded frame is shared by every connection that sends it.
//
// Mounted on a Server, a hub serves
//   POST /topics/{topic}          publish the request body (headers → message headers, see
//                                 transports/http/README.md); answers {"id":..,"position":..}
//   GET  /topics/{topic}/events   server-sent events (text/event-stream): `retry:` first, then
//                                 one event per message with `id:` = position, a heartbeat
//                                 comment every `heartbeat`; Last-Event-ID (or ?last_event_id=)
//                                 resumes from the history, and an `event: gap` tells when it
//                                 no longer reaches that id (an unknown or malformed id starts
//                                 from now, after a gap event); without an id, ?from=earliest
//                                 starts from the oldest message held. ?envelope=1 selects the
//                                 envelope format (headers, message id, binary payloads).
//   GET  /topics/{topic}/poll     long poll (hub_poll.cpp, docs/polling.md): ?after=&wait=&limit=;
//                                 answers at once with what follows `after`, or holds until data
//                                 or `wait` (clamped to poll.max_wait); JSON {"messages":[..],
//                                 "next":..[,"gap":..]}; held polls are answered when the hub stops
//   GET  /topics/{topic}/messages short poll: the same answer at once, with ETag / If-None-Match → 304
//   GET  /topics/{topic}/ws       WebSocket (hub_websocket.cpp, docs/websocket.md): JSON text
//                                 frames both ways — messages, gaps, publishes and their answers;
//                                 ?after= / ?from=earliest resume as above; pings, close codes.
//   OPTIONS on the above          CORS preflight, when cors_origin is set
// Every endpoint is described in docs/openapi.yaml.
// Topics exist when declared (`topics`), when used by the application (publish/subscribe
// through the hub), or — with `open_topics` — when first named over HTTP; any other topic name
// gets 404.
//
// Slow readers: a cursor that falls behind the ring receives a gap and continues from the
// oldest message held, so a slow reader costs no memory. An SSE connection whose unsent
// backlog exceeds `send_buffer` bytes (a client that stopped reading) is disconnected; it never
// slows the publisher or the other connections.
//
// Thread safety: every member may be called from any thread. One mutex per topic guards its
// ring and its waiting cursors; the hub mutex guards the topic map (order: hub, then topic).
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/delivery.hpp>
#include <patchbay/doorbell.hpp>
#include <patchbay/message.hpp>
#include <patchbay/position.hpp>
#include <patchbay/stream.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace patchbay::http {

class Server;

/// Long and short polling (http/src/hub_poll.cpp).
struct PollOptions {
  duration default_wait = std::chrono::seconds(30);  ///< a long poll without ?wait=
  duration max_wait = std::chrono::seconds(60);      ///< ?wait= above it is clamped to it
  std::size_t max_batch = 256;                       ///< messages per answer, at most
  PollOptions() {}
};

/// WebSocket (http/src/hub_websocket.cpp).
struct WebSocketOptions {
  std::size_t max_message = 1024 * 1024;             ///< larger incoming message → close 1009
  duration ping_interval = std::chrono::seconds(30); ///< 0: no pings
  std::size_t send_buffer = 1024 * 1024;             ///< unsent backlog cap per connection, bytes
  WebSocketOptions() {}
};

struct HubOptions {
  std::size_t history = 1024;                            ///< messages kept per topic
  std::vector<std::string> topics;                       ///< topics that exist from the start
  bool open_topics = false;                              ///< HTTP requests may create topics
  bool http_publish = true;                              ///< POST /topics/{topic} is served
  /// Access-Control-Allow-Origin on every hub answer, if set; then OPTIONS (CORS preflight) is
  /// served on the topic endpoints too.
  std::string cors_origin;
  duration sse_retry = std::chrono::seconds(3);          ///< `retry:` sent to SSE clients
  duration heartbeat = std::chrono::seconds(15);         ///< SSE comment interval (0: none)
  std::size_t send_buffer = 1024 * 1024;                 ///< SSE backlog cap per connection, bytes
  std::size_t max_batch = 256;                           ///< events per SSE write, at most
  PollOptions poll;                                      ///< long and short polling
  WebSocketOptions websocket;                            ///< WebSocket connections
  HubOptions() {}
};

/// One message in a topic's ring.
struct HubEntry {
  std::uint64_t seq = 0;
  std::string position;     ///< "<epoch>:<seq>"
  Message message;
  std::uint64_t start_bytes = 0;  ///< the topic's cumulative message bytes before this entry
  std::uint64_t end_bytes = 0;    ///< ... and up to and including it
  /// The server-sent event for this entry (encoded once, then shared).
  const std::string& sse_frame(bool envelope) const;
  /// The WebSocket text message for this entry ({"type":"message","position":..,...}, see
  /// patchbay/http/websocket.hpp), encoded once, then shared.
  const std::string& ws_frame() const;
  /// The message object of long and short poll answers, {"position":..,<envelope members>}
  /// (see hub_poll.cpp; encoded once, then shared).
  const std::string& poll_object() const;

 private:
  friend class Hub;
  struct Frames;
  std::shared_ptr<Frames> frames_;
};
using HubEntryPtr = std::shared_ptr<const HubEntry>;

/// What where the cursor stands: a gap first if the ring moved past it, then entries.
struct HubBatch {
  std::optional<Gap> gap;
  std::vector<HubEntryPtr> entries;
  bool closed = false;     ///< the hub stopped or the cursor was closed
  bool heartbeat = false;  ///< a heartbeat is due (cursors that asked for heartbeats)
};

/// What to do with a position the topic does not know (foreign epoch, malformed, in the future).
enum class UnknownPosition { from_latest, from_earliest };

class Hub : public std::enable_shared_from_this<Hub> {
 public:
  class Cursor;

  static std::shared_ptr<Hub> create(executor ex, HubOptions options = HubOptions());
  ~Hub();

  /// Stores `msg` (stamped if needed) on `topic`, creating the topic, and wakes its readers.
  /// Returns the position. Throws errc::stopped after stop().
  std::string publish(std::string_view topic, Message msg);

  /// A reader on `topic` starting at `from`. The topic is created when `create` is true;
  /// otherwise nullptr for an unknown topic.
  std::unique_ptr<Cursor> open(std::string_view topic, const Position& from, UnknownPosition unknown, bool create);

  /// What a cursor opened at `from` would read first — up to `max` entries, a gap first where
  /// one applies — and, in `next`, where it would then stand (as Cursor::next_position()),
  /// without making a cursor: for requests that read once (short polls, long polls that need
  /// not wait). std::nullopt for an unknown topic (created when `create` is true).
  std::optional<HubBatch> peek(std::string_view topic, const Position& from, UnknownPosition unknown, bool create,
                               std::size_t max, std::string& next);

  /// A local subscription (Features: ordered, replay, gap_signal, headers; deliveries need no
  /// ack). Creates the topic.
  Stream<Delivery> subscribe(std::string_view topic, const Position& from);

  bool has_topic(std::string_view topic) const;
  /// Makes `topic` exist (for declared and bridged topics).
  void declare(std::string_view topic);

  /// Sends what `POST /topics/{topic}` receives for `topic` to `publish` instead of the ring:
  /// for bridged topics, whose ring is fed from the backbone. The answer is then 202 with the
  /// message id (the position is assigned when the message comes back through the bridge).
  void set_upstream(std::string_view topic, std::function<awaitable<void>(Message)> publish);
  /// What set_upstream() registered for `topic` (empty when the topic is not bridged): for
  /// endpoints other than POST that publish (WebSocket).
  std::function<awaitable<void>(Message)> upstream(std::string_view topic) const;
  std::vector<std::string> topics() const;

  /// Adds the hub's routes to `server`.
  void mount(Server& server);

  // --- publish observer (webhook outbox, transports/http/webhooks) -----------------------
  /// Called synchronously by publish() for every message, under the topic's lock, once the
  /// entry has its position and before it enters the ring and publish() returns: so whatever
  /// the observer records (the webhook sender writes its durable outbox rows here) is recorded
  /// before the publish is acknowledged (POST /topics/{topic} answers after it). Calls for one
  /// topic come one at a time, in position order. If the observer throws, the message is not
  /// stored and publish() throws that exception (POST answers 503). It must not call back into
  /// the hub. nullptr removes it.
  using PublishObserver = std::function<void(const HubEntry& entry)>;
  void set_publish_observer(PublishObserver observer);

  /// Closes every SSE connection (clients reconnect and resume with Last-Event-ID): to move
  /// clients to other instances before maintenance, and for tests.
  void drop_connections();

  /// Ends every cursor and local subscription (SSE streams end); publish() fails afterwards.
  void stop();

  const HubOptions& options() const noexcept;

  /// True once stop() was called.
  bool stopped() const noexcept;

  /// Open SSE connections, for tests and metrics.
  std::size_t sse_connections() const noexcept;

  /// Long polls being held (waiting for data or their wait to end), for tests and metrics.
  std::size_t held_polls() const noexcept;
  /// Counts a long poll in held_polls() (+1 when it starts waiting, -1 when it ends); used by
  /// the long-poll endpoint (hub_poll.cpp).
  void count_held_poll(int delta) noexcept;

  struct Impl;  ///< implementation detail (hub.cpp)

 private:
  Hub() = default;
  std::shared_ptr<Impl> impl_;
};

/// A reader's place in one topic. Used by one coroutine at a time; close() from any thread.
class Hub::Cursor {
 public:
  ~Cursor();
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;

  /// Up to `max` entries after the cursor (a gap first when it fell behind). Never waits.
  HubBatch read(std::size_t max);

  /// Returns when read() has something (or the cursor closed). Cancellable: a cancelled wait
  /// consumes nothing.
  awaitable<void> wait();

  /// Calls `on_overrun` once (on the publisher's thread, under the topic lock: it must only
  /// post or close) when more than `limit` encoded bytes were published past what this cursor
  /// has read. For connections whose client stopped reading.
  void watch_backlog(std::uint64_t limit, std::function<void()> on_overrun);

  /// Asks for heartbeats: every `HubOptions::heartbeat`, wait() returns and the next read()
  /// has `heartbeat` set. One hub-wide ticker serves every cursor: no timer per connection.
  void enable_heartbeat();

  /// The position of the last entry read (empty before the first).
  const std::string& position() const noexcept;
  /// Where the cursor stands, as a position to resume after: the last entry read, or — before
  /// the first read — the message before the next one it would read ("<epoch>:0" when it
  /// starts at the topic's first message). Opening a cursor after it reads exactly what this
  /// cursor would read next (long and short polls answer it as `next`).
  std::string next_position() const;
  const std::string& topic() const noexcept;
  void close() noexcept;
  /// Makes a pending (or the next) wait() return without closing the cursor (from any
  /// thread): for a connection that also has other work for its writer (WebSocket replies).
  void wake() noexcept;

  struct State;  ///< implementation detail (hub.cpp)

 private:
  friend class Hub;
  explicit Cursor(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace patchbay::http
