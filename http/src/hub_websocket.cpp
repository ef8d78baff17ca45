// The hub over WebSocket: GET /topics/{topic}/ws (see patchbay/http/hub.hpp, hub_routes.hpp,
// patchbay/http/websocket.hpp for the frames and docs/websocket.md for the protocol).
//
// Shape of one connection: the route handler validates the request, opens the cursor, takes
// the socket over from the server core (Exchange::take_over) and answers the upgrade with
// Beast. It then stays the connection's only coroutine: the writer, which sends what the
// cursor yields, the answers to publishes, pings and the closing handshake. Reading is a chain
// of plain completion handlers (no second coroutine frame): each client message is decoded and
// published at once, its answer queued for the writer, whose cursor is woken
// (Hub::Cursor::wake). An idle connection therefore holds the Session, one small coroutine
// frame, the Beast stream (its fixed 1.5 KiB read buffer), one pending read and the cursor;
// the message buffer is released after every message.
//
// Pings: no timer per connection. One sweep per mounted hub (a timer that exists while there
// are connections) marks every connection every `ping_interval`: a connection that has not
// answered the previous ping (no pong and no message since) is closed; the others get a ping
// from their writer.
//
// Limits: a message above max_message → Beast closes with 1009; invalid UTF-8 in a text
// message → Beast closes with 1007; a binary message → 1003; a text message that is not a
// publish frame (not JSON, another type, malformed members) → 1008 with the reason; a client
// that stops reading is cut (the socket closed, no closing handshake) when what was published
// past its cursor, or its queued answers, exceed send_buffer. The hub stopping, or
// Hub::drop_connections(), closes with 1001; the server stopping sends a 1001 close frame
// (best effort, never waiting) and closes the socket.
//
// All of a connection's state is used on the connection's executor (its strand, or the
// single-threaded io_context); only the sweep's flags are atomics.
#include "hub_routes.hpp"

#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/http/websocket.hpp>

#include <absl/strings/str_cat.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <mutex>
#include <vector>

namespace patchbay::http {

namespace {

namespace beast = boost::beast;
namespace bws = boost::beast::websocket;
using tcp = asio::ip::tcp;
using asio::use_awaitable_t;
constexpr auto tuple_awaitable = asio::as_tuple(use_awaitable_t<executor>{});

/// How long a closing handshake (and the opening one) may take.
constexpr auto handshake_timeout = std::chrono::seconds(5);

struct Registry;

/// One WebSocket connection.
struct Conn : std::enable_shared_from_this<Conn> {
  Conn(tcp::socket& socket, Exchange& exchange, executor ex) : ws(socket), exchange(&exchange), reader_bell(std::move(ex)) {}

  bws::stream<tcp::socket&, false> ws;  // no permessage-deflate
  Exchange* exchange;  // to cut the connection (Exchange::close posts to the connection's executor)
  std::unique_ptr<Hub::Cursor> cursor;
  std::weak_ptr<Hub> hub;
  std::string topic;
  // Reading: an idle connection waits with a read into `first` (small, inline), so that no
  // message buffer is held while nothing arrives (a pending read into a dynamic buffer would
  // hold 1.5 KiB); a message longer than that continues into `message`, which is released
  // after each message. Beast checks max_message and UTF-8 across the pieces.
  std::array<char, 64> first;
  std::string message;
  std::vector<std::string> replies;  // answers to publishes, for the writer
  std::vector<HubEntryPtr> entries;  // the batch being written (keeps the frames alive)
  std::string gap;                   // its gap frame, if any
  std::size_t max_batch = 256;
  std::size_t replies_bytes = 0;
  std::size_t send_buffer = 0;
  std::uint16_t close_code = 0;  // set: the writer closes with it
  std::string close_reason;
  bool reading = false;
  bool reader_done = false;
  bool writing = false;      // a Beast write (or ping, close) is in progress
  bool close_sent = false;
  bool finished = false;     // the handler returned: the socket and the cursor are gone
  Doorbell reader_bell;      // rung when the read chain ends
  std::shared_ptr<Registry> registry;
  // The sweep (any thread):
  std::atomic<bool> ping_due{false};
  std::atomic<bool> answered{true};  // a pong or a message since the last ping

  void start_read();
  void start_read_more();
  void on_read(beast::error_code ec, std::size_t n);
  std::size_t read_used = 0;  // bytes of `message` filled before the pending read
  void handle(std::string_view text);
  void request_close(std::uint16_t code, std::string reason) {
    if (close_code == 0) {
      close_code = code;
      close_reason = std::move(reason);
    }
  }
  void reply(std::string frame) {
    if (finished) return;
    replies_bytes += frame.size();
    replies.push_back(std::move(frame));
    if (replies_bytes > send_buffer) exchange->close();  // a client that publishes but never reads
    cursor->wake();
  }
};

struct OnRead {
  std::shared_ptr<Conn> c;
  void operator()(beast::error_code ec, std::size_t n) const { c->on_read(ec, n); }
};

void Conn::start_read() {
  // The first piece of the next message (`message` is empty between messages).
  reading = true;
  ws.async_read_some(asio::buffer(first), OnRead{shared_from_this()});
}

void Conn::on_read(beast::error_code ec, std::size_t n) {
  reading = false;
  if (!ec) {
    answered.store(true, std::memory_order_relaxed);
    if (message.empty()) {
      message.assign(first.data(), n);
    } else {
      message.resize(read_used + n);
    }
    if (!ws.is_message_done()) {
      start_read_more();
      return;
    }
    if (!ws.got_text()) {
      request_close(static_cast<std::uint16_t>(bws::close_code::unknown_data), "binary messages are not accepted");
    } else {
      handle(message);
    }
    std::string().swap(message);  // an idle connection keeps no message buffer
    if (close_code == 0) {
      start_read();
      return;
    }
  }
  // Closed by the client (Beast answered its close), failed (Beast sent 1009 / 1007 itself),
  // cancelled, or we are closing: the read chain ends here.
  reader_done = true;
  cursor->wake();
  reader_bell.ring();
}

void Conn::start_read_more() {
  // The rest of a longer message, into the tail of `message` (trimmed on completion); also
  // when `message` is still empty (a first piece of no bytes).
  reading = true;
  const std::size_t used = message.size();
  message.resize(used + std::max<std::size_t>(4096, std::min<std::size_t>(used, 1 << 20)));
  read_used = used;
  ws.async_read_some(asio::buffer(message.data() + used, message.size() - used), OnRead{shared_from_this()});
}

awaitable<void> forward_upstream(std::shared_ptr<Conn> c, std::function<awaitable<void>(Message)> up, Message msg) {
  std::string id = msg.id;
  std::string error;
  try {
    co_await up(std::move(msg));
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (c->finished) co_return;  // the connection is gone
  if (error.empty()) {
    c->reply(websocket::encode_published(id, ""));
  } else {
    c->reply(websocket::encode_error(id, "the backbone refused the message: " + error));
  }
}

void Conn::handle(std::string_view text) {
  auto frame = websocket::decode(text);
  if (!frame) {
    request_close(static_cast<std::uint16_t>(bws::close_code::policy_error), "not a JSON frame with a \"type\"");
    return;
  }
  if (frame->type != websocket::Frame::Type::publish) {
    request_close(static_cast<std::uint16_t>(bws::close_code::policy_error),
                  "unknown frame type \"" + frame->type_name.substr(0, 64) + "\" (expected \"publish\")");
    return;
  }
  Message msg = std::move(*frame->message);
  msg.topic = topic;
  msg.stamp();
  std::string id = msg.id;
  auto h = hub.lock();
  if (!h || h->stopped()) {
    reply(websocket::encode_error(id, "the hub is stopping"));
    return;
  }
  if (auto up = h->upstream(topic)) {
    // A bridged topic: the message goes to the backbone; the position comes with the message
    // when it returns through the bridge.
    asio::co_spawn(ws.get_executor(), forward_upstream(shared_from_this(), std::move(up), std::move(msg)), asio::detached);
    return;
  }
  try {
    auto position = h->publish(topic, std::move(msg));
    reply(websocket::encode_published(id, position));
  } catch (const std::exception& e) {
    reply(websocket::encode_error(id, e.what()));
  }
}

/// Every connection of one mounted hub, for the ping sweep.
struct Registry : std::enable_shared_from_this<Registry> {
  explicit Registry(duration i) : interval(i) {}
  const duration interval;
  std::mutex mu;
  std::vector<Conn*> conns;
  asio::steady_timer* timer = nullptr;  // the sweep's, while it runs
  std::optional<executor> timer_ex;

  void add(Conn* c, const executor& ex) {
    if (interval <= duration::zero()) return;
    bool begin = false;
    {
      std::lock_guard lock(mu);
      conns.push_back(c);
      if (!timer_ex) {
        timer_ex = ex;
        begin = true;
      }
    }
    // Outside the lock: co_spawn may start the sweep inline.
    if (begin) asio::co_spawn(ex, sweep(shared_from_this()), asio::detached);
  }
  void remove(Conn* c) {
    if (interval <= duration::zero()) return;
    std::lock_guard lock(mu);
    if (auto it = std::find(conns.begin(), conns.end(), c); it != conns.end()) {
      *it = conns.back();
      conns.pop_back();
    }
    if (conns.empty() && timer_ex) {
      // The sweep ends now instead of keeping its executor busy until the next tick.
      asio::post(*timer_ex, [self = shared_from_this()] {
        std::lock_guard lock(self->mu);
        if (self->timer && self->conns.empty()) self->timer->cancel();
      });
    }
  }

  static awaitable<void> sweep(std::shared_ptr<Registry> self) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    {
      std::lock_guard lock(self->mu);
      self->timer = &timer;
    }
    for (;;) {
      timer.expires_after(self->interval);
      auto [ec] = co_await timer.async_wait(tuple_awaitable);
      std::lock_guard lock(self->mu);
      if (ec || self->conns.empty()) {
        self->timer = nullptr;
        self->timer_ex.reset();
        co_return;
      }
      for (auto* c : self->conns) {
        if (!c->answered.exchange(false, std::memory_order_relaxed)) {
          c->exchange->close();  // no pong (nor anything else) since the last ping
          continue;
        }
        c->ping_due.store(true, std::memory_order_relaxed);
        c->cursor->wake();
      }
    }
  }
};

void add_cors(const HubOptions& options, bhttp::fields& fields) {
  if (!options.cors_origin.empty()) fields.set(bhttp::field::access_control_allow_origin, options.cors_origin);
}

void answer(Exchange& ex, const HubOptions* options, bhttp::status status, std::string text) {
  Response res{status, ex.request().version()};
  res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  if (options) add_cors(*options, res.base());
  res.body() = std::move(text);
  ex.respond(std::move(res));
}

/// "<epoch>:<seq>" with both parts decimal digits.
bool well_formed_position(std::string_view p) {
  const auto colon = p.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == p.size()) return false;
  auto digits = [](std::string_view s) { return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }); };
  return digits(p.substr(0, colon)) && digits(p.substr(colon + 1)) && colon <= 20 && p.size() - colon - 1 <= 20;
}

/// Validates the request, opens the cursor, answers the upgrade. nullptr when it answered
/// otherwise (an error) or the handshake failed.
awaitable<std::shared_ptr<Conn>> open_ws(std::weak_ptr<Hub> weak, std::shared_ptr<Registry> registry, Exchange& ex) {
  auto hub = weak.lock();
  if (!hub || hub->stopped()) {
    answer(ex, hub ? &hub->options() : nullptr, bhttp::status::service_unavailable, "the hub is stopping\n");
    co_return nullptr;
  }
  const auto& options = hub->options();
  auto& req = ex.request();
  if (!bws::is_upgrade(req)) {
    answer(ex, &options, bhttp::status::upgrade_required, "this endpoint speaks WebSocket only\n");
    ex.response().set(bhttp::field::upgrade, "websocket");
    co_return nullptr;
  }
  Position from = Position::latest();
  if (auto after = ex.query("after"); after && !after->empty()) {
    if (!well_formed_position(*after)) {
      answer(ex, &options, bhttp::status::bad_request, "malformed position in after= (expected <epoch>:<seq>)\n");
      co_return nullptr;
    }
    from = Position::after(*after);
  } else if (auto f = ex.query("from"); f && *f == "earliest") {
    from = Position::earliest();
  } else if (f && !f->empty() && *f != "latest") {
    answer(ex, &options, bhttp::status::bad_request, "from= must be earliest or latest\n");
    co_return nullptr;
  }
  std::string topic(ex.param("topic"));
  auto cursor = hub->open(topic, from, UnknownPosition::from_latest, options.open_topics);
  if (!cursor) {
    answer(ex, &options, bhttp::status::not_found, "unknown topic\n");
    co_return nullptr;
  }
  std::string early;
  auto* socket = ex.take_over(early);
  if (!socket) {
    answer(ex, &options, bhttp::status::not_implemented, "WebSocket is served on plain TCP listeners only (no TLS yet)\n");
    co_return nullptr;
  }
  if (!early.empty()) co_return nullptr;  // frames before our 101: not a WebSocket client; close

  auto c = std::make_shared<Conn>(*socket, ex, co_await asio::this_coro::executor);
  c->cursor = std::move(cursor);
  c->hub = weak;
  c->topic = std::move(topic);
  c->send_buffer = std::max<std::size_t>(options.websocket.send_buffer, 1024);
  c->registry = std::move(registry);
  c->ws.read_message_max(std::max<std::size_t>(options.websocket.max_message, 1));
  c->ws.auto_fragment(false);
  bws::stream_base::timeout timeouts;
  timeouts.handshake_timeout = handshake_timeout;
  timeouts.idle_timeout = bws::stream_base::none();
  timeouts.keep_alive_pings = false;
  c->ws.set_option(timeouts);
  // The 101 answer says where the cursor starts (X-Patchbay-Position, a position to resume
  // after), so that a client whose connection drops before the first message resumes there
  // instead of "from now". Browsers do not see it; nothing else changes.
  c->ws.set_option(bws::stream_base::decorator(
      [origin = options.cors_origin, start = c->cursor->next_position(),
       max = std::to_string(options.websocket.max_message)](bws::response_type& res) {
        if (!origin.empty()) res.set(bhttp::field::access_control_allow_origin, origin);
        res.set("X-Patchbay-Position", start);
        res.set("X-Patchbay-Max-Message", max);  // larger incoming messages are closed with 1009
      }));
  c->ws.control_callback([raw = c.get()](bws::frame_type kind, beast::string_view) {
    if (kind == bws::frame_type::pong) raw->answered.store(true, std::memory_order_relaxed);
  });
  auto [ec] = co_await c->ws.async_accept(req, tuple_awaitable);
  if (ec) co_return nullptr;
  // The decorator served the 101; an empty one keeps no allocation for the connection's life.
  c->ws.set_option(bws::stream_base::decorator([](bws::response_type&) {}));
  ex.request() = Request();  // an idle connection keeps nothing of its request
  co_return c;
}

/// The next things to send from the cursor into c.entries / c.gap; false once it closed.
bool next_batch(Conn& c) {
  auto batch = c.cursor->read(c.max_batch);
  c.gap.clear();
  c.entries.clear();
  if (batch.closed) return false;
  if (batch.gap) c.gap = websocket::encode_gap(*batch.gap);
  c.entries = std::move(batch.entries);
  return true;
}

awaitable<void> write_text(Conn& c, const std::string& text) {
  c.writing = true;
  co_await c.ws.async_write(asio::buffer(text), use_awaitable_t<executor>{});
  c.writing = false;
}

/// A close frame written without waiting (the server stopping): only when no Beast write is
/// half done.
void close_now(Conn& c) {
  if (!c.close_sent && !c.writing) {
    c.close_sent = true;
    static constexpr std::string_view reason = "the server is stopping";
    std::string frame;
    frame += static_cast<char>(0x88);
    frame += static_cast<char>(2 + reason.size());
    frame += static_cast<char>(0x03);  // 1001
    frame += static_cast<char>(0xE9);
    frame += reason;
    auto& s = c.ws.next_layer();
    boost::system::error_code ec;
    s.non_blocking(true, ec);
    s.write_some(asio::buffer(frame), ec);  // best effort, never waits
  }
  boost::system::error_code ec;
  c.ws.next_layer().shutdown(tcp::socket::shutdown_both, ec);
  c.ws.next_layer().close(ec);
}

enum class Step { wait, work, done };

/// What the writer does next (no waiting here): work to flush(), wait for the cursor, or done.
Step next_step(Conn& c) {
  if (c.close_code != 0 || !c.replies.empty()) return Step::work;
  if (!next_batch(c)) {
    auto h = c.hub.lock();
    c.request_close(static_cast<std::uint16_t>(bws::close_code::going_away),
                    !h || h->stopped() ? "the hub is stopping" : "connection dropped, reconnect and resume");
    return Step::work;
  }
  if (!c.gap.empty() || !c.entries.empty() || c.ping_due.load(std::memory_order_relaxed)) return Step::work;
  return c.reader_done ? Step::done : Step::wait;
}

/// Sends what next_step() found: the closing handshake (then false: the connection is done),
/// answers to publishes, a gap, messages, a ping. Its frame exists only while it runs.
awaitable<bool> flush(Conn& c) {
  if (c.close_code != 0) {
    c.close_sent = true;
    c.writing = true;
    bws::close_reason reason(static_cast<bws::close_code>(c.close_code), c.close_reason);
    auto [ec] = co_await c.ws.async_close(reason, tuple_awaitable);
    (void)ec;  // closed either way
    c.writing = false;
    co_return false;
  }
  if (!c.replies.empty()) {
    auto replies = std::move(c.replies);
    c.replies.clear();
    c.replies_bytes = 0;
    for (const auto& r : replies) co_await write_text(c, r);
  }
  if (!c.gap.empty()) co_await write_text(c, c.gap);
  c.gap.clear();
  // The hot path of a fan-out: one Beast write per message, awaited here directly (no
  // coroutine frame per message).
  c.writing = true;
  for (const auto& e : c.entries) {
    const std::string& frame = e->ws_frame();
    co_await c.ws.async_write(asio::buffer(frame), use_awaitable_t<executor>{});
  }
  c.writing = false;
  c.entries.clear();
  if (c.ping_due.exchange(false, std::memory_order_relaxed)) {
    c.writing = true;
    co_await c.ws.async_ping({}, use_awaitable_t<executor>{});
    c.writing = false;
  }
  co_return true;
}

/// The end of a connection: the read chain must end before the socket goes back to the server.
awaitable<void> finish(std::shared_ptr<Conn> c, bool cancelled) {
  c->registry->remove(c.get());
  if (cancelled) {
    close_now(*c);  // the server is stopping (or a deadline): 1001 if possible, then close
  } else if (c->reading) {
    boost::system::error_code ec;
    c->ws.next_layer().close(ec);
  }
  while (!c->reader_done) co_await c->reader_bell.wait();
  c->finished = true;
  c->cursor.reset();
}

/// The connection's life after the handshake. Its frame is what an idle connection keeps, so
/// the loop has three suspension points and no other locals: the batch lives in the Conn,
/// writing in flush() and the end in finish(), frames that exist only while they run.
awaitable<void> serve_ws(std::weak_ptr<Hub> hub, std::shared_ptr<Registry> registry, std::size_t max_batch, Exchange& ex) {
  auto c = co_await open_ws(std::move(hub), std::move(registry), ex);
  if (!c) co_return;
  c->max_batch = max_batch;
  // A client that stops reading: its backlog grows past send_buffer and the connection is cut,
  // from the publisher's side, even while our write to it is blocked.
  c->cursor->watch_backlog(c->send_buffer, [ex = c->exchange] { ex->close(); });
  c->registry->add(c.get(), c->ws.get_executor());
  c->start_read();
  bool cancelled = false;
  try {
    for (;;) {
      const Step step = next_step(*c);
      if (step == Step::done) break;
      if (step == Step::work) {
        const bool more = co_await flush(*c);
        if (!more) break;
        continue;
      }
      co_await c->cursor->wait();
    }
  } catch (const boost::system::system_error& e) {
    cancelled = e.code() == asio::error::operation_aborted;
  }
  // No cancellation from here on (the server may cancel again when its grace period ends).
  co_await asio::this_coro::reset_cancellation_state([](asio::cancellation_type) { return asio::cancellation_type::none; });
  co_await finish(std::move(c), cancelled);
}

}  // namespace

void mount_websocket(const std::weak_ptr<Hub>& hub, Server& server) {
  auto locked = hub.lock();
  const duration interval = locked ? locked->options().websocket.ping_interval : duration::zero();
  const std::size_t max_batch = locked ? std::max<std::size_t>(locked->options().max_batch, 1) : 256;
  auto registry = std::make_shared<Registry>(interval);
  RouteOptions o;
  o.streaming = true;
  server.route(
      bhttp::verb::get, "/topics/{topic}/ws",
      [hub, registry, max_batch](Exchange& ex) -> awaitable<void> { return serve_ws(hub, registry, max_batch, ex); },
      o);
}

}  // namespace patchbay::http
