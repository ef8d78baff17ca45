// The hub over WebSocket: GET /topics/{topic}/ws (see patchbay/http/hub.hpp, hub_routes.hpp,
// patchbay/http/websocket.hpp for the frames and docs/websocket.md for the protocol).
//
// The server side speaks RFC 6455 itself, over the raw TCP socket (the `websocket` client
// transport keeps Beast): what an idle connection holds is what matters here (10,000 idle
// connections in a few KiB each), and Beast's stream keeps a fixed read buffer and needs a
// pending read per connection.
//
// Shape of one connection: the route handler validates the request (the server core already
// parsed it), opens the cursor and hands the connection over for good (Exchange::hand_over:
// the server core keeps the socket counted but ends its request coroutine and drops the
// request). From then on a Conn holds:
//   - one reactor wait for readability (socket.async_wait(wait_read): no buffer); when it
//     fires, the reader reads what the socket holds into a stack buffer and parses frames
//     (client frames masked, fragmentation, ping/pong/close, UTF-8 checked across fragments);
//     a message buffer exists only while a message is partly read;
//   - no coroutine and no pending operation for writing: the writer (Conn::kick, a plain
//     function) runs when kicked — by the topic's Group (one probe cursor per topic waits for
//     every idle connection of the topic and kicks them when something is published), by the
//     reader (a pong, an answer, a close), by the ping sweep — and gathers what there is to
//     send (the 101 answer, pongs, answers to publishes, a gap, the cursor's messages — each
//     encoded once by the hub, HubEntry::ws_frame(), with a 2-10 byte header of ours — and a
//     ping) into one sendmsg; when the socket is full it waits for writability
//     (async_wait(wait_write)) instead; its buffers are freed once sent.
//
// Pings: no timer per connection. One sweep per mounted hub (a timer that exists while there
// are connections) marks every connection every `ping_interval`: a connection that has not
// answered the previous ping (no pong and nothing else since) is closed; the others get a ping
// from their writer.
//
// Limits: a message above max_message → 1009 (checked on each frame header, before reading
// the payload); invalid UTF-8 in a text message (across fragments) → 1007; a binary message
// → 1003; an unmasked client frame, reserved bits, an unknown opcode, a fragmented or
// oversized (> 125 bytes) control frame, a continuation without a message or a new message
// inside one → 1002; a text message that is not a publish frame (not JSON, another type,
// malformed members) → 1008 with the reason. A client that stops reading is cut (the socket
// closed, no closing handshake) when what was published past its cursor, or its queued
// answers, exceed send_buffer. The hub stopping, or Hub::drop_connections(), closes with 1001;
// the server stopping sends a 1001 close frame (best effort, never waiting) and closes the
// socket. A closing handshake that the client does not complete within 5 s is cut.
//
// All of a connection's state is used on the connection's executor (its strand, or the
// single-threaded io_context); only the sweep's flags and `idle` (who owes the writer a kick)
// are atomics. The Group and the sweep reach a connection by posting to its executor.
#include "hub_routes.hpp"

#include <patchbay/error.hpp>
#include <patchbay/http/websocket.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/beast/websocket/detail/utf8_checker.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <sys/socket.h>
#include <sys/uio.h>
#include <vector>

namespace patchbay::http {

namespace {

namespace beast = boost::beast;
namespace bws = boost::beast::websocket;
using tcp = asio::ip::tcp;
using asio::use_awaitable_t;
constexpr auto tuple_awaitable = asio::as_tuple(use_awaitable_t<executor>{});

/// How long a closing handshake may take before the connection is cut.
constexpr auto close_timeout = std::chrono::seconds(5);

// Opcodes (RFC 6455 5.2).
constexpr std::uint8_t op_continuation = 0x0, op_text = 0x1, op_binary = 0x2, op_close = 0x8, op_ping = 0x9,
                       op_pong = 0xA;

// Close codes.
constexpr std::uint16_t close_going_away = 1001, close_protocol = 1002, close_unsupported = 1003,
                        close_no_status = 1005, close_bad_payload = 1007, close_policy = 1008, close_too_big = 1009;

/// Writes the header of an unmasked server frame (FIN set) into `out` (10 bytes at most).
std::size_t frame_header(std::uint8_t* out, std::uint8_t op, std::uint64_t len) noexcept {
  out[0] = static_cast<std::uint8_t>(0x80 | op);
  if (len < 126) {
    out[1] = static_cast<std::uint8_t>(len);
    return 2;
  }
  if (len < 65536) {
    out[1] = 126;
    out[2] = static_cast<std::uint8_t>(len >> 8);
    out[3] = static_cast<std::uint8_t>(len);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(len >> (56 - 8 * i));
  return 10;
}

/// Appends a whole frame to `out`.
void append_frame(std::string& out, std::uint8_t op, std::string_view payload) {
  std::uint8_t h[10];
  const auto n = frame_header(h, op, payload.size());
  out.append(reinterpret_cast<const char*>(h), n);
  out.append(payload);
}

/// Close codes a peer may send (RFC 6455 7.4).
bool valid_close_code(std::uint16_t code) noexcept {
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008: case 1009: case 1010: case 1011:
    case 1012: case 1013: case 1014:
      return true;
    default:
      return false;
  }
}

/// `s` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

struct Registry;
struct Group;

/// What a message being read needs (allocated only while one is: an idle connection has none).
struct Incoming {
  std::string data;  // the message so far (unmasked)
  beast::websocket::detail::utf8_checker utf8;
  bool active = false;  // a data message is in progress (its first frame had no FIN)
};

/// One WebSocket connection.
struct Conn final : UpgradeOwner, std::enable_shared_from_this<Conn> {
  ~Conn() override;

  std::unique_ptr<Upgraded> link;  // the server core's connection (the socket); closes it when reset
  tcp::socket* sock = nullptr;
  std::unique_ptr<Hub::Cursor> cursor;
  std::weak_ptr<Hub> hub;
  std::shared_ptr<Registry> registry;
  std::size_t registry_index = 0;  // in registry->conns (guarded by its mutex)
  std::shared_ptr<Group> group;    // the connections of this topic (the writer's wake-ups)
  std::size_t group_index = 0;     // in group->members (guarded by its mutex)
  std::size_t max_message = 0;
  std::size_t send_buffer = 0;
  std::uint32_t max_batch = 256;

  // Writing: `out` (whole frames of ours: the 101, pongs, answers, a gap, a ping, the close)
  // then `entries` (the cursor's messages, each a header of ours and the hub's shared frame),
  // sent from (out_sent, entry_index, entry_sent). `queued`: frames for the next round.
  std::string out;
  std::vector<HubEntryPtr> entries;
  std::string queued;
  std::size_t out_sent = 0;
  std::size_t entry_index = 0;
  std::size_t entry_sent = 0;

  // Reading: the header of the frame being read, then its payload.
  std::unique_ptr<Incoming> in;
  std::string control;  // a control frame's payload (<= 125 bytes) while it is read
  std::uint64_t remaining = 0;
  std::uint64_t payload_pos = 0;
  std::array<std::uint8_t, 14> head{};
  std::uint8_t head_len = 0;
  std::uint8_t op = 0;
  bool fin = false;
  bool in_payload = false;
  std::array<std::uint8_t, 4> mask{};

  std::unique_ptr<asio::steady_timer> close_timer;  // only while closing
  std::string close_reason;
  std::uint16_t close_code = 0;  // set: the writer closes with it (close_no_status: an empty close)
  bool close_sent = false;       // the close frame is in `out`
  bool peer_closed = false;      // the client's close frame arrived
  bool parse_ok = true;          // false after a framing error: the rest is discarded
  bool skip_data = false;        // after a data error (1003, 1007, 1009): data frames are skipped,
                                 // control frames still read (the client's close answer)
  bool skip = false;             // the current frame's payload is skipped
  bool dead = false;             // the socket is closed
  bool writer_done = false;
  bool write_blocked = false;  // waiting for the socket to take more

  // The sweep (any thread):
  std::atomic<bool> ping_due{false};
  std::atomic<bool> answered{true};  // a pong or anything else since the last ping
  // The writer is idle: whoever sets it back to false (exchange) owes it a kick().
  std::atomic<bool> idle{false};

  executor ex() const { return sock->get_executor(); }

  // UpgradeOwner: the server stops (1001, best effort, never waiting), then closes.
  void server_stopping() noexcept override;

  void start_read();
  void on_readable(const boost::system::error_code& ec);
  void feed(const std::uint8_t* p, std::size_t n);
  bool on_header();
  void on_frame_end();
  void on_message(std::string_view text);
  void protocol_error(std::uint16_t code, std::string reason);
  void data_error(std::uint16_t code, std::string reason);

  enum class Want { idle, more, blocked, done };
  Want pump();
  void kick();
  void on_writable(const boost::system::error_code& ec);
  enum class Flush { sent, blocked, failed };
  Flush flush();

  void request_close(std::uint16_t code, std::string reason);
  void cut() noexcept;
  void reply(std::string_view frame_text);
  /// Has the writer look again (on the connection's executor).
  void wake() {
    if (idle.exchange(false)) asio::post(ex(), [self = shared_from_this()] { self->kick(); });
  }
  /// The same from any thread, for a Conn that may be going away.
  static void wake(Conn* raw) {
    if (raw->idle.exchange(false)) post_to(raw, [](Conn& conn) { conn.kick(); });
  }
  /// Runs `f(conn)` on the connection's executor if the connection still exists (any thread).
  template <typename F>
  static void post_to(Conn* raw, F f) {
    if (auto self = raw->weak_from_this().lock()) {
      auto e = self->ex();
      asio::post(e, [self = std::move(self), f = std::move(f)] { f(*self); });
    }
  }
};

/// The connections of one topic (of one mounted hub), and the one cursor that waits for them.
/// An idle connection has no coroutine and no pending operation on the cursor: the group's
/// probe cursor, kept at the topic's head, wakes when something is published; the group then
/// kicks every idle member, which reads its own cursor. The generation counter closes the race
/// between a member going idle and a publish (see Conn::kick).
struct Group {
  std::unique_ptr<Hub::Cursor> probe;
  std::mutex mu;
  std::vector<Conn*> members;  // a Conn leaves first thing in its destructor
  bool ended = false;          // the last member left (guarded by mu)
  std::atomic<std::uint64_t> generation{0};

  static awaitable<void> watch(std::shared_ptr<Group> g) {
    for (;;) {
      co_await g->probe->wait();
      bool closed = false;
      for (;;) {  // back to the head
        auto batch = g->probe->read(4096);
        if (batch.closed) closed = true;
        if (batch.closed || (batch.entries.empty() && !batch.gap)) break;
      }
      g->generation.fetch_add(1);
      std::lock_guard lock(g->mu);
      for (auto* c : g->members) Conn::wake(c);
      // Ended (the last member left) or the hub stopped: the members saw it through their own
      // cursors (a probe has no backlog watch: drop_connections() does not close it).
      if (closed || g->ended) co_return;
    }
  }
};

/// Every connection of one mounted hub: the topic groups and the ping sweep.
struct Registry : std::enable_shared_from_this<Registry> {
  explicit Registry(duration i) : interval(i) {}
  const duration interval;
  std::mutex mu;
  std::vector<Conn*> conns;  // for the sweep (when there are pings)
  std::map<std::string, std::shared_ptr<Group>, std::less<>> groups;
  asio::steady_timer* timer = nullptr;  // the sweep's, while it runs
  std::optional<executor> timer_ex;

  void add(Hub& hub, Conn* c, const executor& ex) {
    bool begin = false;
    std::shared_ptr<Group> start;
    {
      std::lock_guard lock(mu);
      const auto& topic = c->cursor->topic();
      auto& g = groups[topic];
      if (!g) {
        g = std::make_shared<Group>();
        g->probe = hub.open(topic, Position::latest(), UnknownPosition::from_latest, true);
        if (g->probe) start = g;  // (none: the hub is stopping; the members see it themselves)
      }
      c->group = g;
      {
        std::lock_guard glock(g->mu);
        c->group_index = g->members.size();
        g->members.push_back(c);
      }
      if (interval > duration::zero()) {
        c->registry_index = conns.size();
        conns.push_back(c);
        if (!timer_ex) {
          timer_ex = ex;
          begin = true;
        }
      }
    }
    // Outside the lock: co_spawn may start these inline.
    if (start) asio::co_spawn(ex, Group::watch(std::move(start)), asio::detached);
    if (begin) asio::co_spawn(ex, sweep(shared_from_this()), asio::detached);
  }
  void remove(Conn* c) {
    std::lock_guard lock(mu);
    if (auto& g = c->group) {
      std::lock_guard glock(g->mu);
      const auto i = c->group_index;
      if (i < g->members.size() && g->members[i] == c) {
        g->members[i] = g->members.back();
        g->members[i]->group_index = i;
        g->members.pop_back();
      }
      if (g->members.empty() && !g->ended) {
        g->ended = true;
        if (g->probe) g->probe->close();  // its watch ends
        if (auto it = groups.find(c->cursor ? c->cursor->topic() : std::string()); it != groups.end() && it->second == g) {
          groups.erase(it);
        } else {
          std::erase_if(groups, [&](const auto& kv) { return kv.second == g; });
        }
      }
    }
    if (interval <= duration::zero()) return;
    const auto i = c->registry_index;
    if (i < conns.size() && conns[i] == c) {
      conns[i] = conns.back();
      conns[i]->registry_index = i;
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
      // A Conn in the list is alive: it leaves the list first thing in its destructor.
      for (auto* c : self->conns) {
        if (!c->answered.exchange(false, std::memory_order_relaxed)) {
          Conn::post_to(c, [](Conn& conn) { conn.cut(); });  // no pong (nor anything else) since the last ping
          continue;
        }
        c->ping_due.store(true, std::memory_order_relaxed);
        Conn::wake(c);
      }
    }
  }
};

Conn::~Conn() {
  if (registry) registry->remove(this);
  cursor.reset();  // before `link` closes the connection in the server core
}

// --- closing ---------------------------------------------------------------------------------

void Conn::request_close(std::uint16_t code, std::string reason) {
  if (close_code != 0 || dead) return;
  close_code = code;
  close_reason = std::move(reason);
  // The client has close_timeout to complete the handshake (and to read what is queued).
  close_timer = std::make_unique<asio::steady_timer>(ex(), close_timeout);
  close_timer->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->cut();
  });
  wake();
}

void Conn::cut() noexcept {
  if (dead) return;
  dead = true;
  boost::system::error_code ec;
  sock->shutdown(tcp::socket::shutdown_both, ec);
  sock->close(ec);  // the pending waits complete (operation_aborted); `link` goes with the Conn
  if (close_timer) close_timer->cancel();
  std::string().swap(out);
  std::string().swap(queued);
  std::vector<HubEntryPtr>().swap(entries);
  in.reset();
}

void Conn::server_stopping() noexcept {
  if (dead) return;
  const bool mid_frame = (out_sent > 0 && out_sent < out.size()) || entry_sent > 0;
  if (!close_sent && !mid_frame) {
    static constexpr std::string_view reason = "the server is stopping";
    std::uint8_t frame[4 + reason.size()];
    frame[0] = 0x80 | op_close;
    frame[1] = static_cast<std::uint8_t>(2 + reason.size());
    frame[2] = static_cast<std::uint8_t>(close_going_away >> 8);
    frame[3] = static_cast<std::uint8_t>(close_going_away & 0xFF);
    std::copy(reason.begin(), reason.end(), frame + 4);
    // Best effort, never waits.
    (void)::send(sock->native_handle(), frame, sizeof frame, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  cut();
}

// --- reading ---------------------------------------------------------------------------------

struct OnReadable {
  std::shared_ptr<Conn> c;
  void operator()(const boost::system::error_code& ec) const { c->on_readable(ec); }
};

void Conn::start_read() { sock->async_wait(tcp::socket::wait_read, OnReadable{shared_from_this()}); }

void Conn::on_readable(const boost::system::error_code& ec) {
  if (ec || dead) return;
  // Reads what the socket holds into the stack (no buffer is kept between reads), a bounded
  // amount per turn so that one busy client does not hold the executor.
  std::array<std::uint8_t, 16384> buf;
  std::size_t budget = 16 * buf.size();
  for (;;) {
    const auto n = ::recv(sock->native_handle(), buf.data(), buf.size(), 0);
    if (n > 0) {
      answered.store(true, std::memory_order_relaxed);
      feed(buf.data(), static_cast<std::size_t>(n));
      if (dead || peer_closed) return;  // no more reading (the writer answers the close)
      if (static_cast<std::size_t>(n) >= budget) break;
      budget -= static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) {  // the client closed the TCP connection
      cut();
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    cut();
    return;
  }
  start_read();
}

void Conn::protocol_error(std::uint16_t code, std::string reason) {
  parse_ok = false;  // the framing is lost: what follows is discarded until the client closes
  in.reset();
  std::string().swap(control);
  request_close(code, std::move(reason));
}

void Conn::data_error(std::uint16_t code, std::string reason) {
  // The framing is intact: the rest of this frame and any later data frame are skipped, control
  // frames are still read (the client answers our close with its own).
  skip_data = true;
  skip = true;
  in.reset();
  request_close(code, std::move(reason));
}

void Conn::feed(const std::uint8_t* p, std::size_t n) {
  while (n > 0 && parse_ok && !peer_closed && !dead) {
    if (!in_payload) {
      // The header: 2 bytes, then the extended length and the mask key.
      std::size_t need = 2;
      if (head_len >= 2) {
        const auto len7 = head[1] & 0x7F;
        need += (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((head[1] & 0x80) ? 4 : 0);
      }
      while (head_len < need && n > 0) {
        head[head_len++] = *p++;
        --n;
        if (head_len == 2) {
          const auto len7 = head[1] & 0x7F;
          need += (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((head[1] & 0x80) ? 4 : 0);
        }
      }
      if (head_len < need) return;
      head_len = 0;
      if (!on_header()) return;
      if (remaining == 0) {
        on_frame_end();
        continue;
      }
      in_payload = true;
      continue;
    }
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(n, remaining));
    char* dst = nullptr;
    if (skip) {
      // skipped
    } else if (op >= op_close) {
      const auto at = control.size();
      control.resize(at + take);
      dst = control.data() + at;
    } else {
      const auto at = in->data.size();
      in->data.resize(at + take);
      dst = in->data.data() + at;
    }
    if (dst) {
      for (std::size_t i = 0; i < take; ++i) dst[i] = static_cast<char>(p[i] ^ mask[(payload_pos + i) & 3]);
      if (op < op_close && !in->utf8.write(reinterpret_cast<const std::uint8_t*>(dst), take)) {
        data_error(close_bad_payload, "invalid UTF-8 in a text message");
      }
    }
    p += take;
    n -= take;
    remaining -= take;
    payload_pos += take;
    if (remaining == 0) {
      in_payload = false;
      on_frame_end();
    }
  }
}

/// Checks the complete header in `head`; false after a protocol error.
bool Conn::on_header() {
  const std::uint8_t b0 = head[0], b1 = head[1];
  fin = (b0 & 0x80) != 0;
  op = b0 & 0x0F;
  if (b0 & 0x70) return protocol_error(close_protocol, "reserved bits set (no extension was negotiated)"), false;
  if (!(b1 & 0x80)) return protocol_error(close_protocol, "unmasked client frame"), false;
  std::uint64_t len = b1 & 0x7F;
  std::size_t at = 2;
  if (len == 126) {
    len = (std::uint64_t{head[2]} << 8) | head[3];
    at = 4;
    if (len < 126) return protocol_error(close_protocol, "non-minimal frame length"), false;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | head[2 + i];
    at = 10;
    if (len < 65536 || (len >> 63)) return protocol_error(close_protocol, "bad frame length"), false;
  }
  std::copy(head.begin() + static_cast<std::ptrdiff_t>(at), head.begin() + static_cast<std::ptrdiff_t>(at) + 4, mask.begin());
  remaining = len;
  payload_pos = 0;
  skip = false;
  if (skip_data && op < op_close) {
    skip = true;
    return true;
  }
  const bool message_open = in && in->active;
  switch (op) {
    case op_close:
    case op_ping:
    case op_pong:
      if (!fin) return protocol_error(close_protocol, "fragmented control frame"), false;
      if (len > 125) return protocol_error(close_protocol, "control frame above 125 bytes"), false;
      control.clear();
      return true;
    case op_continuation:
      if (!message_open) return protocol_error(close_protocol, "continuation frame without a message"), false;
      break;
    case op_text:
      if (message_open) return protocol_error(close_protocol, "new message inside a fragmented one"), false;
      break;
    case op_binary:
      data_error(close_unsupported, "binary messages are not accepted");
      return true;
    default:
      return protocol_error(close_protocol, "unknown opcode"), false;
  }
  const std::size_t so_far = message_open ? in->data.size() : 0;
  if (len > max_message || so_far + len > max_message) {
    data_error(close_too_big, "message above max_message");
    return true;
  }
  if (!in) in = std::make_unique<Incoming>();
  if (op == op_text) {
    in->data.clear();
    in->utf8.reset();
    // What the frame announces, up to 64 KiB (a client announcing more does not get it
    // reserved before it sends it): one allocation for a common message.
    in->data.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(len, 65536)));
  }
  in->active = true;
  return true;
}

void Conn::on_frame_end() {
  switch (op) {
    case op_ping:
      if (close_code == 0) {
        append_frame(queued, op_pong, control);
        wake();
      }
      break;
    case op_pong:
      answered.store(true, std::memory_order_relaxed);
      break;
    case op_close: {
      std::uint16_t code = close_no_status;
      if (control.size() == 1) return protocol_error(close_protocol, "close frame of one byte");
      if (control.size() >= 2) {
        code = static_cast<std::uint16_t>((static_cast<unsigned char>(control[0]) << 8) | static_cast<unsigned char>(control[1]));
        if (!valid_close_code(code)) return protocol_error(close_protocol, "invalid close code");
        if (!bws::detail::check_utf8(control.data() + 2, control.size() - 2)) {
          return protocol_error(close_bad_payload, "close reason is not UTF-8");
        }
      }
      peer_closed = true;
      if (close_sent) {
        cut();  // the closing handshake we started is complete
      } else {
        request_close(code, "");  // echo the client's code (RFC 6455 5.5.1), then close
        wake();
      }
      break;
    }
    default:  // a data frame
      if (skip || !fin) break;
      in->active = false;
      if (!in->utf8.finish()) return protocol_error(close_bad_payload, "invalid UTF-8 in a text message");
      if (close_code == 0) on_message(in->data);
      in.reset();  // an idle connection keeps no message buffer
      break;
  }
  std::string().swap(control);
}

awaitable<void> forward_upstream(std::shared_ptr<Conn> c, std::function<awaitable<void>(Message)> up, Message msg) {
  std::string id = msg.id;
  std::string error;
  try {
    co_await up(std::move(msg));
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (c->dead) co_return;  // the connection is gone
  if (error.empty()) {
    c->reply(websocket::encode_published(id, ""));
  } else {
    c->reply(websocket::encode_error(id, "the backbone refused the message: " + error));
  }
}

void Conn::reply(std::string_view frame_text) {
  if (dead || close_code != 0) return;
  append_frame(queued, op_text, frame_text);
  if (queued.size() > send_buffer) {
    cut();  // a client that publishes but never reads its answers
    return;
  }
  wake();
}

void Conn::on_message(std::string_view text) {
  auto frame = websocket::decode(text);
  if (!frame) {
    request_close(close_policy, "not a JSON frame with a \"type\"");
    return;
  }
  if (frame->type != websocket::Frame::Type::publish) {
    request_close(close_policy, "unknown frame type \"" + std::string(utf8_prefix(frame->type_name, 64)) +
                                    "\" (expected \"publish\")");
    return;
  }
  const std::string& topic = cursor->topic();
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
    asio::co_spawn(ex(), forward_upstream(shared_from_this(), std::move(up), std::move(msg)), asio::detached);
    return;
  }
  try {
    auto position = h->publish(topic, std::move(msg));
    reply(websocket::encode_published(id, position));
  } catch (const std::exception& e) {
    reply(websocket::encode_error(id, e.what()));
  }
}

// --- writing ---------------------------------------------------------------------------------

/// Sends out[out_sent..] then the entries from (entry_index, entry_sent), gathered, until all
/// is sent or the socket is full.
Conn::Flush Conn::flush() {
  constexpr std::size_t max_iov = 64;
  for (;;) {
    std::array<iovec, max_iov> iov;
    std::array<std::array<std::uint8_t, 10>, max_iov / 2> heads;
    std::size_t n = 0, h = 0;
    if (out_sent < out.size()) iov[n++] = {out.data() + out_sent, out.size() - out_sent};
    std::size_t skip = entry_sent;
    for (std::size_t i = entry_index; i < entries.size() && n + 2 <= max_iov; ++i, skip = 0) {
      const std::string& f = entries[i]->ws_frame();
      const auto hl = frame_header(heads[h].data(), op_text, f.size());
      if (skip < hl) {
        iov[n++] = {heads[h].data() + skip, hl - skip};
        iov[n++] = {const_cast<char*>(f.data()), f.size()};
      } else {
        iov[n++] = {const_cast<char*>(f.data()) + (skip - hl), f.size() - (skip - hl)};
      }
      ++h;
    }
    if (n == 0) return Flush::sent;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = n;
    const auto w = ::sendmsg(sock->native_handle(), &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Flush::blocked;
      return Flush::failed;
    }
    // Advance past what was sent.
    auto left = static_cast<std::size_t>(w);
    const auto from_out = std::min(left, out.size() - out_sent);
    out_sent += from_out;
    left -= from_out;
    while (left > 0 && entry_index < entries.size()) {
      const auto total = frame_header(heads[0].data(), op_text, entries[entry_index]->ws_frame().size()) +
                         entries[entry_index]->ws_frame().size();
      const auto step = std::min(left, total - entry_sent);
      entry_sent += step;
      left -= step;
      if (entry_sent == total) {
        ++entry_index;
        entry_sent = 0;
      }
    }
  }
}

/// Sends what there is to send; what the writer does next.
Conn::Want Conn::pump() {
  for (int rounds = 0;; ++rounds) {
    if (dead) return Want::done;
    if (out_sent < out.size() || entry_index < entries.size()) {
      const auto r = flush();
      if (r == Flush::blocked) return Want::blocked;
      if (r == Flush::failed) {
        cut();
        return Want::done;
      }
    }
    // All sent: nothing is kept while idle.
    std::string().swap(out);
    std::vector<HubEntryPtr>().swap(entries);
    out_sent = entry_index = entry_sent = 0;
    if (close_sent) {
      if (peer_closed) {
        cut();  // we answered the client's close: the handshake is complete
      } else if (!parse_ok) {
        // A framing error fails the connection (RFC 6455 7.1.7): our side ends now; the reader
        // drains what the client still sends until it closes too (close_timer bounds it), so
        // that the close frame is not lost to a reset.
        boost::system::error_code ec;
        sock->shutdown(tcp::socket::shutdown_send, ec);
      }
      return Want::done;  // the reader waits for the client's close (close_timer bounds it)
    }
    if (close_code != 0) {
      // The close frame goes alone, after what was queued before it.
      if (!queued.empty()) {
        out.swap(queued);
        continue;
      }
      std::string payload;
      if (close_code != close_no_status) {
        payload += static_cast<char>(close_code >> 8);
        payload += static_cast<char>(close_code & 0xFF);
        payload += utf8_prefix(close_reason, 123);
      }
      append_frame(out, op_close, payload);
      close_sent = true;
      continue;
    }
    if (rounds >= 4) return Want::more;  // let other connections run; back soon
    out.swap(queued);  // pongs and answers to publishes
    if (ping_due.exchange(false, std::memory_order_relaxed)) append_frame(out, op_ping, {});
    auto batch = cursor->read(max_batch);
    if (batch.closed) {
      auto h = hub.lock();
      request_close(close_going_away, !h || h->stopped() ? "the hub is stopping" : "connection dropped, reconnect and resume");
      continue;
    }
    if (batch.gap) append_frame(out, op_text, websocket::encode_gap(*batch.gap));
    entries = std::move(batch.entries);
    if (out.empty() && entries.empty()) return Want::idle;
  }
}

struct OnWritable {
  std::shared_ptr<Conn> c;
  void operator()(const boost::system::error_code& ec) const { c->on_writable(ec); }
};

/// The writer (no coroutine: an idle connection holds no frame). Runs on the connection's
/// executor when kicked: by the topic's group (something was published), the reader (a pong,
/// an answer, a close), the sweep (a ping), the socket taking more.
void Conn::kick() {
  if (writer_done || write_blocked) return;
  for (;;) {
    const auto seen = group->generation.load();
    const Want want = pump();
    switch (want) {
      case Want::done:
        writer_done = true;
        return;
      case Want::blocked:
        write_blocked = true;
        sock->async_wait(tcp::socket::wait_write, OnWritable{shared_from_this()});
        return;
      case Want::more:
        asio::post(ex(), [self = shared_from_this()] { self->kick(); });
        return;
      case Want::idle:
        break;
    }
    // Idle. A publish the cursor read missed has moved the generation by now, or will find
    // `idle` set and kick us.
    idle.store(true);
    if (group->generation.load() == seen) return;
    if (!idle.exchange(false)) return;  // a kick is on its way
  }
}

void Conn::on_writable(const boost::system::error_code& ec) {
  write_blocked = false;
  if (ec) {
    cut();
    return;
  }
  kick();
}

// --- the upgrade -----------------------------------------------------------------------------

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

/// Validates the request, opens the cursor, hands the connection over and starts it. Never
/// suspends (Exchange::hand_over requires the handler to return right after it).
void accept_ws(const std::weak_ptr<Hub>& weak, const std::shared_ptr<Registry>& registry, std::uint32_t max_batch,
               Exchange& ex) {
  auto hub = weak.lock();
  if (!hub || hub->stopped()) {
    answer(ex, hub ? &hub->options() : nullptr, bhttp::status::service_unavailable, "the hub is stopping\n");
    return;
  }
  const auto& options = hub->options();
  auto& req = ex.request();
  if (!bws::is_upgrade(req)) {
    answer(ex, &options, bhttp::status::upgrade_required, "this endpoint speaks WebSocket only\n");
    ex.response().set(bhttp::field::upgrade, "websocket");
    return;
  }
  // What Beast's accept checks (RFC 6455 4.2.1).
  if (req.find(bhttp::field::host) == req.end()) {
    answer(ex, &options, bhttp::status::bad_request, "no Host\n");
    return;
  }
  const auto key = req[bhttp::field::sec_websocket_key];
  if (key.empty() || key.size() > bws::detail::sec_ws_key_type::static_capacity) {
    answer(ex, &options, bhttp::status::bad_request, "missing or malformed Sec-WebSocket-Key\n");
    return;
  }
  if (req[bhttp::field::sec_websocket_version] != "13") {
    answer(ex, &options, bhttp::status::upgrade_required, "Sec-WebSocket-Version 13 is required\n");
    ex.response().set(bhttp::field::sec_websocket_version, "13");
    return;
  }
  Position from = Position::latest();
  if (auto after = ex.query("after"); after && !after->empty()) {
    if (!well_formed_position(*after)) {
      answer(ex, &options, bhttp::status::bad_request, "malformed position in after= (expected <epoch>:<seq>)\n");
      return;
    }
    from = Position::after(*after);
  } else if (auto f = ex.query("from"); f && *f == "earliest") {
    from = Position::earliest();
  } else if (f && !f->empty() && *f != "latest") {
    answer(ex, &options, bhttp::status::bad_request, "from= must be earliest or latest\n");
    return;
  }
  std::string topic(ex.param("topic"));
  auto cursor = hub->open(topic, from, UnknownPosition::from_latest, options.open_topics);
  if (!cursor) {
    answer(ex, &options, bhttp::status::not_found, "unknown topic\n");
    return;
  }

  // The 101 answer, written by the connection's writer before anything else. It says where
  // the cursor starts (X-Patchbay-Position, a position to resume after), so that a client
  // whose connection drops before the first message resumes there instead of "from now", and
  // the largest message accepted (X-Patchbay-Max-Message). No extension, no subprotocol.
  bws::detail::sec_ws_accept_type accept;
  bws::detail::make_sec_ws_accept(accept, key);
  std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
  head.append(accept.data(), accept.size());
  head += "\r\n";
  if (!options.cors_origin.empty()) {
    head += "Access-Control-Allow-Origin: ";
    head += options.cors_origin;
    head += "\r\n";
  }
  head += "X-Patchbay-Position: ";
  head += cursor->next_position();
  head += "\r\nX-Patchbay-Max-Message: ";
  head += std::to_string(options.websocket.max_message);
  head += "\r\n\r\n";

  auto c = std::make_shared<Conn>();
  std::string early;
  c->link = ex.hand_over(early, c);
  if (!c->link) {
    answer(ex, &options, bhttp::status::not_implemented, "WebSocket is served on plain TCP listeners only (no TLS yet)\n");
    return;
  }
  if (!early.empty()) return;  // frames before our 101: not a WebSocket client; closed (c goes)
  c->sock = &c->link->socket();
  boost::system::error_code ignored;
  c->sock->non_blocking(true, ignored);
  c->cursor = std::move(cursor);
  c->hub = weak;
  c->max_message = std::max<std::size_t>(options.websocket.max_message, 1);
  c->send_buffer = std::max<std::size_t>(options.websocket.send_buffer, 1024);
  c->max_batch = max_batch;
  c->out = std::move(head);
  // A client that stops reading: its backlog grows past send_buffer and the connection is cut,
  // from the publisher's side, even while our write to it is blocked. (A raw pointer: the
  // cursor, and with it this callback, goes before the Conn does.)
  c->cursor->watch_backlog(c->send_buffer, [raw = c.get()] { Conn::post_to(raw, [](Conn& conn) { conn.cut(); }); });
  c->registry = registry;
  registry->add(*hub, c.get(), c->ex());
  c->start_read();
  asio::post(c->ex(), [c] { c->kick(); });  // the 101, then what the cursor holds
}

awaitable<void> serve_ws(std::weak_ptr<Hub> hub, std::shared_ptr<Registry> registry, std::uint32_t max_batch, Exchange& ex) {
  accept_ws(hub, registry, max_batch, ex);
  co_return;
}

}  // namespace

void mount_websocket(const std::weak_ptr<Hub>& hub, Server& server) {
  auto locked = hub.lock();
  const duration interval = locked ? locked->options().websocket.ping_interval : duration::zero();
  const auto max_batch = static_cast<std::uint32_t>(
      locked ? std::clamp<std::size_t>(locked->options().max_batch, 1, 1u << 20) : 256);
  auto registry = std::make_shared<Registry>(interval);
  RouteOptions o;
  o.streaming = true;
  server.route(
      bhttp::verb::get, "/topics/{topic}/ws",
      [hub, registry, max_batch](Exchange& ex) -> awaitable<void> { return serve_ws(hub, registry, max_batch, ex); },
      o);
}

}  // namespace patchbay::http
