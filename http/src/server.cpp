// The HTTP/1.1 server core (see patchbay/http/server.hpp for the contract).
//
// Shape: an accept loop hands each connection to a Session coroutine on its own strand (on an
// io_context made for one thread: on that context directly, see connection_executor()). The
// Session reads requests one after another from one flat buffer (pipelined requests wait in
// it), routes them, runs the handler and writes the answer. Deadlines are not timers per
// operation: each Session publishes its current phase and deadline in atomics, and one
// watchdog per server sweeps the sessions every `timer_resolution` and cancels the ones past
// their deadline through the Session's cancellation signal (emitted on the Session's strand).
// That keeps the per-request cost to two atomic stores.
//
// The Session is a template over the stream (plain TCP or TLS); everything that does not
// depend on the stream type lives outside it.
#include <patchbay/http/server.hpp>

#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>

#include <absl/strings/str_cat.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/url_view.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>

namespace patchbay::http {

namespace {

namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using asio::use_awaitable_t;
constexpr auto tuple_awaitable = asio::as_tuple(use_awaitable_t<executor>{});

constexpr std::int64_t no_deadline = std::numeric_limits<std::int64_t>::max();

std::int64_t to_ticks(deadline d) noexcept { return d.time_since_epoch().count(); }

/// What a Session is doing; the watchdog and stop() decide by it.
enum class Phase : std::uint8_t {
  idle,      // waiting for the first byte of a request (keep-alive)
  header,    // reading a request header (or the TLS handshake)
  request,   // reading the body, handling, writing the answer
  streaming, // a streaming handler runs (its writes have deadlines)
  held,      // a held request (long poll): no deadline; at stop() it may still answer
  closing,
};

/// Why a Session was cancelled.
enum class Cancel : std::uint8_t { none, deadline, shutdown };

struct RouteEntry {
  RouteId id = 0;
  bhttp::verb method = bhttp::verb::get;
  std::string pattern;
  std::vector<std::string> segments;  // "{name}" for parameters
  std::size_t literals = 0;
  Handler handler;
  RouteOptions options;
};

struct RouteTable {
  std::vector<std::shared_ptr<const RouteEntry>> routes;
};

bool is_param(std::string_view segment) noexcept {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

absl::StatusOr<std::vector<std::string>> parse_route_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    return absl::InvalidArgumentError(absl::StrCat("route \"", std::string(pattern), "\" must start with '/'"));
  }
  std::vector<std::string> segments;
  std::string_view rest = pattern.substr(1);
  if (rest.empty()) return segments;  // "/"
  for (;;) {
    auto slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    if (seg.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("route \"", std::string(pattern), "\" has an empty segment"));
    }
    if ((seg.front() == '{') != (seg.back() == '}') || (is_param(seg) && seg.size() == 2) ||
        (is_param(seg) && seg.substr(1, seg.size() - 2).find_first_of("{}/") != std::string_view::npos)) {
      return absl::InvalidArgumentError(
          absl::StrCat("route \"", std::string(pattern), "\": segment \"", std::string(seg), "\" is neither a literal nor {name}"));
    }
    segments.emplace_back(seg);
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  return segments;
}

std::string_view Exchange::param(std::string_view name) const noexcept {
  for (const auto& [k, v] : params_) {
    if (k == name) return v;
  }
  return {};
}

std::optional<std::string> Exchange::query(std::string_view name) const {
  auto target = request_.target();
  auto url = boost::urls::parse_origin_form(std::string_view(target.data(), target.size()));
  if (!url) return std::nullopt;
  for (auto param : url->params()) {
    if (param.key == name) return std::string(param.has_value ? param.value : std::string());
  }
  return std::nullopt;
}

void Exchange::respond(bhttp::status status, std::string body, std::string_view content_type) {
  Response res{status, request_.version()};
  res.set(bhttp::field::content_type, content_type);
  res.body() = std::move(body);
  respond(std::move(res));
}

// ---------------------------------------------------------------------------------------------

struct SessionBase {
  virtual ~SessionBase() = default;
  /// Cancels whatever the session awaits; runs on the session's strand.
  virtual void cancel(Cancel why) noexcept = 0;

  std::atomic<std::int64_t> deadline{no_deadline};
  std::atomic<Phase> phase{Phase::header};
  std::atomic<bool> cancel_sent{false};

  void enter(Phase p, std::int64_t until) noexcept {
    deadline.store(until, std::memory_order_relaxed);
    phase.store(p, std::memory_order_release);
    cancel_sent.store(false, std::memory_order_relaxed);
  }
};

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(executor e, ServerOptions o) : ex(std::move(e)), options(std::move(o)), acceptor(asio::make_strand(ex)),
        watchdog_timer(acceptor.get_executor()), all_closed(ex) {}

  executor ex;
  ServerOptions options;
  tcp::acceptor acceptor;
  std::shared_ptr<asio::ssl::context> tls;
  asio::steady_timer watchdog_timer;

  mutable std::mutex routes_mu;
  std::shared_ptr<const RouteTable> routes = std::make_shared<RouteTable>();
  RouteId next_route = 1;

  std::mutex sessions_mu;
  std::unordered_map<SessionBase*, std::shared_ptr<SessionBase>> sessions;
  Doorbell all_closed;

  std::atomic<bool> started{false};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> accepted{0}, refused{0}, requests{0}, timeouts{0}, bad_requests{0};

  std::shared_ptr<const RouteTable> snapshot() const {
    std::lock_guard lock(routes_mu);
    return routes;
  }

  void add(std::shared_ptr<SessionBase> s) {
    std::lock_guard lock(sessions_mu);
    auto* key = s.get();
    sessions.emplace(key, std::move(s));
  }
  void remove(SessionBase* s) {
    std::lock_guard lock(sessions_mu);
    sessions.erase(s);
    if (sessions.empty() && stopping.load()) all_closed.ring();
  }
  std::size_t open_sessions() {
    std::lock_guard lock(sessions_mu);
    return sessions.size();
  }

  /// The executor for one connection: a strand, unless one thread runs everything.
  ///   - An io_context created for one thread (concurrency hint 1, as Runtime does for
  ///     `threads: 1`) runs one handler at a time anyway: a strand would only add a trip through
  ///     its queue to every completion (~4k instructions a request).
  ///   - Otherwise a strand built on the io_context's own executor type when there is one: a
  ///     strand over any_io_executor does not fit any_io_executor's small buffer and costs an
  ///     allocation and an extra indirection on every completion (~6k instructions a request).
  executor connection_executor() const {
    if (const auto* io = ex.target<asio::io_context::executor_type>()) {
      if (single_threaded(io->context())) return *io;
      return asio::make_strand(*io);
    }
    return asio::make_strand(ex);
  }

  static bool single_threaded(asio::io_context& ctx) {
    // The hint the io_context was made with; Asio keeps it in its scheduler (Boost 1.81).
    return asio::use_service<asio::detail::scheduler>(ctx).concurrency_hint() == 1;
  }

  awaitable<void> accept_loop();
  awaitable<void> stop();
  awaitable<void> refuse(tcp::socket socket);
  awaitable<void> watchdog();
};

namespace {

struct Match {
  std::shared_ptr<const RouteEntry> route;
  std::vector<std::pair<std::string, std::string>> params;
  std::string allow;  // methods of routes matching the path, when the method did not match
};

/// Finds the route for `method` and the request target. Returns false for a malformed target.
/// The request path split into segments, percent-decoded only where a segment holds '%' (the
/// common request allocates nothing here).
struct PathSegments {
  static constexpr std::size_t max = 32;
  std::array<std::string_view, max> segment;
  std::size_t count = 0;
  std::vector<std::string> decoded;  // storage for decoded segments; reserved before first use
};

/// Splits an origin-form target ("/a/b%2Fc?q=1"); false when it is malformed (bad percent
/// encoding, not starting with '/', absurdly deep).
bool split_path(std::string_view target, PathSegments& out) {
  if (target.empty() || target.front() != '/') return false;
  std::string_view path = target.substr(1, target.find('?') == std::string_view::npos ? std::string_view::npos
                                                                                    : target.find('?') - 1);
  // "/" has no segments; "/a/" is "/a".
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return true;
  for (;;) {
    if (out.count == PathSegments::max) return false;
    const auto slash = path.find('/');
    std::string_view seg = path.substr(0, slash);
    if (seg.find('%') != std::string_view::npos) {
      auto pct = boost::urls::make_pct_string_view(seg);
      if (!pct) return false;
      if (out.decoded.empty()) out.decoded.reserve(PathSegments::max);  // views stay valid
      out.decoded.push_back(pct->decode());
      seg = out.decoded.back();
    }
    out.segment[out.count++] = seg;
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return true;
}

/// Finds the route for `method` and the request target. Returns false for a malformed target.
bool match_route(const RouteTable& table, bhttp::verb method, std::string_view target, Match& out) {
  PathSegments path;
  if (!split_path(target, path)) return false;

  const RouteEntry* best = nullptr;
  for (const auto& r : table.routes) {
    if (r->segments.size() != path.count) continue;
    bool ok = true;
    for (std::size_t i = 0; i < path.count && ok; ++i) {
      ok = is_param(r->segments[i]) ? !path.segment[i].empty() : r->segments[i] == path.segment[i];
    }
    if (!ok) continue;
    if (r->method != method) {
      auto name = bhttp::to_string(r->method);
      if (out.allow.find(std::string_view(name.data(), name.size())) == std::string::npos) {
        if (!out.allow.empty()) out.allow += ", ";
        out.allow.append(name.data(), name.size());
      }
      continue;
    }
    if (!best || r->literals > best->literals) {
      best = r.get();
      out.route = r;
    }
  }
  if (best) {
    for (std::size_t i = 0; i < path.count; ++i) {
      if (is_param(best->segments[i])) {
        out.params.emplace_back(best->segments[i].substr(1, best->segments[i].size() - 2), std::string(path.segment[i]));
      }
    }
  }
  return true;
}

/// Whether `ec` is the parser rejecting the request (as opposed to the connection failing).
bool is_parse_error(const boost::system::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

/// Writes the status line and header of `res` into `out` (`capacity` bytes) as Beast's
/// serializer writes them after res.keep_alive(keep_alive) and res.prepare_payload() (the
/// handler's fields, then Connection where keep-alive needs one, then Content-Length), without
/// adding fields to `res`. Returns the size of the header (more than `capacity`: nothing
/// useful was written, call again with that much room), or 0 for what is left to Beast: a
/// handler that set Connection, Content-Length or Transfer-Encoding itself, or a body on a
/// status that has none.
std::size_t serialize_head(const Response& res, unsigned version, bool keep_alive, char* out, std::size_t capacity) {
  const unsigned code = res.result_int();
  const std::size_t body = res.body().size();
  // 1xx, 204 and 304 carry no body and, as Beast's prepare_payload() leaves them, no
  // Content-Length (RFC 9110 8.6: a 304's would have to be the 200's length).
  const bool bodiless = code / 100 == 1 || code == 204 || code == 304;
  if (body > 0 && bodiless) return 0;
  std::size_t size = 0;
  const auto put = [&](const char* data, std::size_t n) {
    if (n != 0 && size + n <= capacity) std::memcpy(out + size, data, n);
    size += n;
  };
  char line[13] = {'H', 'T', 'T', 'P', '/', static_cast<char>('0' + version / 10), '.',
                   static_cast<char>('0' + version % 10), ' ', static_cast<char>('0' + code / 100),
                   static_cast<char>('0' + (code / 10) % 10), static_cast<char>('0' + code % 10), ' '};
  put(line, sizeof line);
  const auto reason = res.reason();
  put(reason.data(), reason.size());
  put("\r\n", 2);
  for (const auto& f : res) {
    const auto name = f.name();
    if (name == bhttp::field::connection || name == bhttp::field::content_length ||
        name == bhttp::field::transfer_encoding) {
      return 0;
    }
    const auto n = f.name_string();
    const auto v = f.value();
    if (v.data() == n.data() + n.size() + 2 && v.data()[v.size()] == '\r') {
      put(n.data(), n.size() + 2 + v.size() + 2);  // Beast keeps the line "name: value\r\n" in one piece
    } else {
      put(n.data(), n.size());
      put(": ", 2);
      put(v.data(), v.size());
      put("\r\n", 2);
    }
  }
  if (version < 11) {
    if (keep_alive) put("Connection: keep-alive\r\n", 24);
  } else if (!keep_alive) {
    put("Connection: close\r\n", 19);
  }
  if (bodiless) {
    put("\r\n", 2);
    return size;
  }
  char length[48] = "Content-Length: ";
  char* end = std::to_chars(length + 16, length + sizeof length - 4, body).ptr;
  std::memcpy(end, "\r\n\r\n", 4);
  put(length, static_cast<std::size_t>(end + 4 - length));
  return size;
}

tcp::socket& lowest(tcp::socket& s) { return s; }
tcp::socket& lowest(asio::ssl::stream<tcp::socket>& s) { return s.next_layer(); }

/// One connection. `Stream` is tcp::socket or asio::ssl::stream<tcp::socket>.
template <class Stream>
class Session final : public SessionBase, public Exchange, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(std::shared_ptr<Server::Impl> server, Stream stream)
      : server_(std::move(server)), stream_(std::move(stream)) {
    boost::system::error_code ec;
    remote_ = lowest(stream_).remote_endpoint(ec);
  }

  void start() {
    auto self = this->shared_from_this();
    // serve() is the connection's only coroutine (an idle stream keeps its frame); the
    // completion handler closes the connection however serve() ended (an exception means a
    // cancelled or failed connection: nothing to answer any more).
    // A connection handed over (hand_over()) is closed by its handle instead.
    asio::co_spawn(lowest(stream_).get_executor(), serve(),
                   asio::bind_cancellation_slot(signal_.slot(), [self](std::exception_ptr) {
                     if (!self->handed_over_) self->finish();
                   }));
  }

  void cancel(Cancel why) noexcept override {
    auto self = this->shared_from_this();
    asio::post(lowest(stream_).get_executor(), [self, why] {
      // The session may have moved on to a new phase since the watchdog looked.
      if (why == Cancel::deadline && self->deadline.load() >= to_ticks(clock::now())) return;
      if (self->handed_over_) {
        // No coroutine of ours runs any more: the owner ends the connection.
        if (auto owner = self->owner_.lock()) owner->server_stopping();
        return;
      }
      if (self->why_ == Cancel::none) self->why_ = why;
      self->signal_.emit(asio::cancellation_type::terminal);
    });
  }

  awaitable<void> write_head(bhttp::response_header<> head) override {
    if (head_written_) throw_error(errc::bad_message, "the response header was already written");
    head_written_ = true;
    bhttp::response<bhttp::empty_body> res(std::move(head));
    res.version(11);
    if (res.find(bhttp::field::connection) == res.end()) res.set(bhttp::field::connection, "close");
    bhttp::response_serializer<bhttp::empty_body> sr(res);
    begin_write();
    co_await bhttp::async_write_header(stream_, sr, use_awaitable_t<executor>{});
    end_write();
  }

  awaitable<void> write(std::span<const asio::const_buffer> buffers) override {
    if (!head_written_) throw_error(errc::bad_message, "write_head() must come before write()");
    begin_write();
    co_await asio::async_write(stream_, buffers, use_awaitable_t<executor>{});
    end_write();
  }

  void close() noexcept override {
    auto self = this->shared_from_this();
    asio::post(lowest(stream_).get_executor(), [self] {
      boost::system::error_code ec;
      lowest(self->stream_).close(ec);
    });
  }

  tcp::socket* take_over(std::string& early) override {
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      if (head_written_) return nullptr;
      head_written_ = true;  // the server writes nothing more on this connection
      enter(Phase::streaming, no_deadline);
      early.assign(static_cast<const char*>(buffer_.data().data()), buffer_.size());
      buffer_.consume(buffer_.size());
      buffer_.shrink_to_fit();
      return &stream_;
    } else {
      (void)early;
      return nullptr;
    }
  }

  std::unique_ptr<Upgraded> hand_over(std::string& early, std::weak_ptr<UpgradeOwner> owner) override {
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      if (!take_over(early)) return nullptr;
      handed_over_ = true;
      owner_ = std::move(owner);
      return std::make_unique<Handle>(this->shared_from_this());
    } else {
      (void)early;
      (void)owner;
      return nullptr;
    }
  }

 private:
  const ServerLimits& limits() const noexcept { return server_->options.limits; }

  std::int64_t after(duration d) const noexcept {
    if (d <= duration::zero() || d >= std::chrono::hours(24 * 365)) return no_deadline;
    return to_ticks(clock::now() + d);
  }

  void begin_write() noexcept { enter(Phase::streaming, after(limits().send_timeout)); }
  void end_write() noexcept { enter(Phase::streaming, no_deadline); }

  /// Writes a short error answer and marks the connection for closing.
  awaitable<void> fail(bhttp::status status, std::string text, unsigned version = 11) {
    server_->bad_requests.fetch_add(1, std::memory_order_relaxed);
    Response res{status, version};
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res.set(bhttp::field::connection, "close");
    res.body() = std::move(text);
    res.body() += '\n';
    res.prepare_payload();
    enter(Phase::request, after(std::min<duration>(limits().send_timeout, std::chrono::seconds(5))));
    co_await bhttp::async_write(stream_, res, tuple_awaitable);
  }

  /// The handle of a handed-over connection: closes it when destroyed.
  struct Handle final : Upgraded {
    explicit Handle(std::shared_ptr<Session> s) : session(std::move(s)) {}
    ~Handle() override {
      session->owner_.reset();
      session->finish();
    }
    tcp::socket& socket() noexcept override { return lowest(session->stream_); }
    std::shared_ptr<Session> session;
  };

  void finish() noexcept {
    enter(Phase::closing, no_deadline);
    boost::system::error_code ec;
    lowest(stream_).shutdown(tcp::socket::shutdown_send, ec);
    lowest(stream_).close(ec);
    server_->remove(this);
  }

  static constexpr std::size_t beast_writes = SIZE_MAX, send_failed = SIZE_MAX - 1;

  /// Serializes response_ (serialize_head()) and sends it with one non-blocking system call
  /// on a plain TCP socket. Returns how much of the answer the socket did not take (all of it
  /// when it would block, and always on TLS), `beast_writes` when serialize_head() leaves the
  /// answer to Beast (nothing was sent), `send_failed` when the connection failed.
  std::size_t send_now(unsigned version, bool again) {
    char stack[1024];
    std::string heap;
    char* head = stack;
    const std::size_t size = serialize_head(response_, version, again, stack, sizeof stack);
    if (size == 0) return beast_writes;
    if (size > sizeof stack) {
      heap.resize(size);
      head = heap.data();
      serialize_head(response_, version, again, head, size);
    }
    const std::string& body = response_.body();
    std::size_t sent = 0;
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      iovec iov[2] = {{head, size}, {const_cast<char*>(body.data()), body.size()}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = body.empty() ? 1 : 2;
      const auto n = ::sendmsg(stream_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0) {
        sent = static_cast<std::size_t>(n);
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return send_failed;
      }
    }
    return size + body.size() - sent;
  }

  /// Writes the last `left` bytes of the answer send_now() started (the header is serialized
  /// again, as send_now() did); false when the connection failed.
  awaitable<bool> write_rest(unsigned version, bool again, std::size_t left) {
    std::string head(serialize_head(response_, version, again, nullptr, 0), '\0');
    serialize_head(response_, version, again, head.data(), head.size());
    const std::size_t sent = head.size() + response_.body().size() - left;
    std::array<asio::const_buffer, 2> out{asio::buffer(head), asio::buffer(response_.body())};
    out[0] += sent;
    out[1] += sent > head.size() ? sent - head.size() : 0;
    auto [ec, n] = co_await asio::async_write(stream_, out, tuple_awaitable);
    co_return !ec;
  }

  awaitable<void> serve() {
    if constexpr (std::is_same_v<Stream, asio::ssl::stream<tcp::socket>>) {
      enter(Phase::header, after(limits().header_timeout));
      auto [ec] = co_await stream_.async_handshake(asio::ssl::stream_base::server, tuple_awaitable);
      if (ec) co_return;
    }
    for (;;) {
      if (server_->stopping.load()) co_return;
      if (buffer_.size() == 0) {
        // Keep-alive: wait for the first byte of the next request under the idle deadline.
        enter(Phase::idle, after(limits().idle_timeout));
        auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(read_chunk), tuple_awaitable);
        if (ec) co_return;  // closed, reset, idle deadline or shutdown
        buffer_.commit(n);
      }
      enter(Phase::header, after(limits().header_timeout));
      if (server_->stopping.load()) co_return;

      // The parser lives in read_request()'s frame, not in this long-lived one: a streaming
      // connection keeps only what it needs.
      if (const bool ok = co_await read_request(); !ok) co_return;
      const unsigned version = request_.version();
      const bool keep_alive = request_.keep_alive();

      auto table = server_->snapshot();
      Match match;
      match.params.swap(params_);  // the last request's storage, reused
      match.params.clear();
      auto target = request_.target();
      if (!match_route(*table, request_.method(), std::string_view(target.data(), target.size()), match)) {
        co_await fail(bhttp::status::bad_request, "malformed request target", version);
        co_return;
      }
      responded_ = false;
      response_ = Response();
      head_written_ = false;
      params_ = std::move(match.params);
      bool streaming = false;
      bool held = false;
      if (!match.route) {
        if (!match.allow.empty()) {
          respond(bhttp::status::method_not_allowed, "method not allowed\n");
          response_.set(bhttp::field::allow, match.allow);
        } else {
          respond(bhttp::status::not_found, "not found\n");
        }
      } else {
        streaming = match.route->options.streaming;
        held = match.route->options.held && !streaming;
        if (streaming) {
          enter(Phase::streaming, no_deadline);
          buffer_.shrink_to_fit();
        } else if (held) {
          enter(Phase::held, no_deadline);
          buffer_.shrink_to_fit();
        }
        std::string error;
        bool timed_out = false;
        try {
          co_await match.route->handler(*this);
        } catch (const boost::system::system_error& e) {
          if (why_ != Cancel::none) {
            timed_out = why_ == Cancel::deadline;
            if (!timed_out || streaming) co_return;  // shutdown, or a stuck stream: close
          } else {
            error = e.what();
          }
        } catch (const std::exception& e) {
          error = e.what();
        }
        if (handed_over_) {
          // The connection lives on without this coroutine and without the request.
          request_ = Request();
          response_ = Response();
          std::vector<std::pair<std::string, std::string>>().swap(params_);
          co_return;
        }
        if (head_written_) co_return;  // a streaming answer ends with the connection
        if (timed_out) {
          server_->timeouts.fetch_add(1, std::memory_order_relaxed);
          co_await asio::this_coro::reset_cancellation_state();
          why_ = Cancel::none;
          co_await fail(bhttp::status::service_unavailable, "request deadline exceeded", version);
          co_return;
        }
        if (!error.empty()) {
          respond(bhttp::status::internal_server_error, absl::StrCat("handler failed: ", error, "\n"));
        } else if (!responded_) {
          respond(bhttp::status::internal_server_error, "the handler gave no answer\n");
        }
      }
      if (streaming || held) enter(Phase::request, after(limits().request_timeout));
      // A handler may end the connection with its answer (`Connection: close`).
      const auto connection = response_[bhttp::field::connection];
      const bool handler_closes = !connection.empty() && bhttp::token_list(connection).exists("close");
      const bool again = keep_alive && !handler_closes && !server_->stopping.load();
      response_.version(version);
      // Sent at once when the socket takes it all (the common case: no write operation to wait
      // for), otherwise the rest asynchronously; what serialize_head() leaves to Beast below.
      if (const std::size_t left = send_now(version, again); left != beast_writes) {
        if (left == send_failed) co_return;
        if (left > 0) {
          const bool ok = co_await write_rest(version, again, left);
          if (!ok) co_return;
        }
        if (!again) co_return;
        continue;
      }
      response_.keep_alive(again);
      response_.prepare_payload();
      auto [ec, n] = co_await bhttp::async_write(stream_, response_, tuple_awaitable);
      if (ec || !again) co_return;
      // request_ and response_ are replaced by the next request (read_request, the reset above).
    }
  }

  /// Reads one request into request_; false when the connection is to close (the error, if
  /// any, was answered).
  ///
  /// What is already buffered is parsed synchronously (Beast's parser::put, as its read loop
  /// does), and the stream is read only when the parser needs more: the common request, which
  /// arrives whole with the first read, costs no second asynchronous operation (Beast's
  /// async_read_header would post its completion even when the buffer holds the whole header).
  awaitable<bool> read_request() {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits().header_limit, UINT32_MAX)));
    parser.body_limit(limits().body_limit);
    unsigned version = 11;
    bool header_done = false;
    boost::system::error_code ec;
    for (;;) {
      if (buffer_.size() > 0) {
        const auto used = parser.put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec == bhttp::error::need_more) ec = {};
        if (ec) break;
        if (!header_done && parser.is_header_done()) {
          header_done = true;
          if (const bool ok = co_await on_header(parser); !ok) co_return false;
          version = parser.get().version();
        }
        if (parser.is_done()) break;
        if (used > 0 && buffer_.size() > 0) continue;  // more of the buffer to parse
      }
      auto [rec, n] = co_await stream_.async_read_some(buffer_.prepare(header_done ? 65536 : read_chunk), tuple_awaitable);
      buffer_.commit(n);
      if (rec == asio::error::eof) {
        if (buffer_.size() == 0 && parser.got_some()) {
          parser.put_eof(ec);
          if (!ec && parser.is_done()) break;
        }
        co_return false;  // the client went away mid-request: nothing to answer
      }
      if (rec) {
        if (rec == asio::error::operation_aborted && why_ == Cancel::deadline) {
          server_->timeouts.fetch_add(1, std::memory_order_relaxed);
          if (header_done) {
            co_await asio::this_coro::reset_cancellation_state();
            co_await fail(bhttp::status::request_timeout, "request body not received in time", version);
          }
        }
        co_return false;
      }
    }
    if (ec) {
      if (ec == bhttp::error::header_limit) {
        co_await fail(bhttp::status::request_header_fields_too_large, "request header too large", version);
      } else if (ec == bhttp::error::body_limit) {
        co_await fail(bhttp::status::payload_too_large, "request body too large", version);
      } else if (is_parse_error(ec)) {
        co_await fail(bhttp::status::bad_request, absl::StrCat("malformed request: ", ec.message()), version);
      }
      co_return false;
    }
    request_ = parser.release();
    co_return true;
  }

  /// The header is complete: request deadline, framing checks, `Expect: 100-continue`.
  awaitable<bool> on_header(bhttp::request_parser<bhttp::string_body>& parser) {
    server_->requests.fetch_add(1, std::memory_order_relaxed);
    enter(Phase::request, after(limits().request_timeout));
    auto& head = parser.get();
    // Request smuggling: Beast refuses most ambiguous framings itself; this makes the rule
    // explicit for the combination that matters most.
    if (head.count(bhttp::field::transfer_encoding) > 0 && head.count(bhttp::field::content_length) > 0) {
      co_await fail(bhttp::status::bad_request, "both Transfer-Encoding and Content-Length", head.version());
      co_return false;
    }
    if (!parser.is_done() && buffer_.size() == 0) {
      if (auto expect = head[bhttp::field::expect]; beast::iequals(expect, "100-continue")) {
        static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(cont.data(), cont.size()), tuple_awaitable);
        if (ec) co_return false;
      }
    }
    co_return true;
  }

  static constexpr std::size_t read_chunk = 2048;

  std::shared_ptr<Server::Impl> server_;
  Stream stream_;
  asio::cancellation_signal signal_;
  Cancel why_ = Cancel::none;
  beast::flat_buffer buffer_;
  bool head_written_ = false;
  bool handed_over_ = false;
  std::weak_ptr<UpgradeOwner> owner_;  // of a handed-over connection
};

}  // namespace

awaitable<void> Server::Impl::refuse(tcp::socket socket) {
  static constexpr std::string_view busy =
      "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: text/plain\r\n"
      "Content-Length: 17\r\n\r\ntoo many clients\n";
  socket.non_blocking(true);
  boost::system::error_code ec;
  socket.write_some(asio::buffer(busy.data(), busy.size()), ec);  // best effort, never waits
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
  co_return;
}

awaitable<void> Server::Impl::accept_loop() {
  auto self = shared_from_this();
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(connection_executor(), tuple_awaitable);
    if (stopping.load() || ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // Out of file descriptors and the like: wait a little instead of spinning.
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(tuple_awaitable);
      continue;
    }
    if (open_sessions() >= options.limits.max_connections) {
      refused.fetch_add(1, std::memory_order_relaxed);
      asio::co_spawn(socket.get_executor(), refuse(std::move(socket)), asio::detached);
      continue;
    }
    accepted.fetch_add(1, std::memory_order_relaxed);
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (tls) {
      auto s = std::make_shared<Session<asio::ssl::stream<tcp::socket>>>(
          self, asio::ssl::stream<tcp::socket>(std::move(socket), *tls));
      add(s);
      s->start();
    } else {
      auto s = std::make_shared<Session<tcp::socket>>(self, std::move(socket));
      add(s);
      s->start();
    }
  }
}

awaitable<void> Server::Impl::watchdog() {
  auto self = shared_from_this();
  const auto tick = std::max<duration>(options.limits.timer_resolution, std::chrono::milliseconds(1));
  std::vector<std::shared_ptr<SessionBase>> late;
  for (;;) {
    watchdog_timer.expires_after(tick);
    auto [ec] = co_await watchdog_timer.async_wait(tuple_awaitable);
    if (ec || (stopping.load() && open_sessions() == 0)) co_return;
    const auto now = to_ticks(clock::now());
    {
      std::lock_guard lock(sessions_mu);
      for (const auto& [key, s] : sessions) {
        if (s->deadline.load(std::memory_order_relaxed) < now && !s->cancel_sent.exchange(true)) late.push_back(s);
      }
    }
    for (auto& s : late) s->cancel(Cancel::deadline);
    late.clear();
  }
}

Server::Server() = default;
Server::~Server() {
  if (impl_) {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
  }
}

absl::StatusOr<std::shared_ptr<Server>> Server::create(executor ex, ServerOptions options) {
  std::shared_ptr<Server> server(new Server());
  auto impl = std::make_shared<Impl>(std::move(ex), std::move(options));
  if (impl->options.tls) {
    auto ctx = make_server_tls(*impl->options.tls);
    if (!ctx.ok()) return ctx.status();
    impl->tls = *std::move(ctx);
  }
  const auto& host = impl->options.host;
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    // A name: resolve it synchronously (start-up only).
    tcp::resolver resolver(impl->ex);
    auto results = resolver.resolve(host, std::to_string(impl->options.port), ec);
    if (ec || results.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot resolve listen address \"", host, "\": ", ec.message()));
    }
    endpoint = results.begin()->endpoint();
  } else {
    endpoint = tcp::endpoint(address, impl->options.port);
  }
  auto where = absl::StrCat(host, ":", impl->options.port);
  auto& acceptor = impl->acceptor;
  if (acceptor.open(endpoint.protocol(), ec); ec) {
    return absl::InternalError(absl::StrCat("cannot listen on ", where, ": ", ec.message()));
  }
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (acceptor.bind(endpoint, ec); ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", where, ": ", ec.message()));
  }
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", where, ": ", ec.message()));
  }
  server->impl_ = std::move(impl);
  return server;
}

void Server::start() {
  if (impl_->started.exchange(true)) return;
  asio::co_spawn(impl_->acceptor.get_executor(), impl_->accept_loop(), asio::detached);
  asio::co_spawn(impl_->acceptor.get_executor(), impl_->watchdog(), asio::detached);
}

awaitable<void> Server::stop() {
  // Everything that touches the acceptor and the timers runs on their strand.
  co_await asio::co_spawn(impl_->acceptor.get_executor(), impl_->stop(), use_awaitable_t<executor>{});
}

awaitable<void> Server::Impl::stop() {
  auto self = shared_from_this();
  if (stopping.exchange(true)) {
    // Someone else stops it; wait for the same end.
    while (open_sessions() > 0) co_await all_closed.wait();
    co_return;
  }
  boost::system::error_code ec;
  acceptor.close(ec);

  // Idle and streaming connections close now; requests being handled (and held requests,
  // which whoever holds them answers when it stops) finish first.
  std::vector<std::shared_ptr<SessionBase>> now;
  {
    std::lock_guard lock(sessions_mu);
    for (const auto& [key, s] : sessions) {
      const auto phase = s->phase.load(std::memory_order_acquire);
      if (phase != Phase::request && phase != Phase::held) now.push_back(s);
    }
  }
  for (auto& s : now) s->cancel(Cancel::shutdown);
  now.clear();

  // After shutdown_timeout, the rest is cancelled too. `grace` and `forced` live in this frame,
  // which outlives the coroutine below (it is cancelled and given a turn before we return);
  // both run on this strand.
  asio::steady_timer grace(acceptor.get_executor());
  grace.expires_after(options.limits.shutdown_timeout);
  bool forced = false;
  asio::co_spawn(
      acceptor.get_executor(),
      [](std::shared_ptr<Impl> impl, asio::steady_timer& grace, bool& forced) -> awaitable<void> {
        auto [ec] = co_await grace.async_wait(tuple_awaitable);
        if (ec) co_return;
        forced = true;
        std::vector<std::shared_ptr<SessionBase>> all;
        {
          std::lock_guard lock(impl->sessions_mu);
          for (const auto& [key, s] : impl->sessions) all.push_back(s);
        }
        for (auto& s : all) s->cancel(Cancel::shutdown);
        impl->all_closed.ring();
      }(self, grace, forced),
      asio::detached);
  // Sessions that finish their request after the snapshot above close on their own (they see
  // `stopping`); the last one rings all_closed.
  while (open_sessions() > 0) {
    co_await all_closed.wait();
    if (forced) {
      // Cancelled sessions close promptly; give them turns on their strands.
      while (open_sessions() > 0) {
        asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(10));
        co_await t.async_wait(use_awaitable_t<executor>{});
      }
    }
  }
  grace.cancel();
  watchdog_timer.cancel();
  // Let the grace coroutine see its cancellation before `grace` and `forced` go away.
  asio::steady_timer settle(acceptor.get_executor(), std::chrono::milliseconds(0));
  co_await settle.async_wait(tuple_awaitable);
}

RouteId Server::route(bhttp::verb method, std::string_view pattern, Handler handler, RouteOptions options) {
  auto segments = parse_route_pattern(pattern);
  if (!segments.ok()) throw std::invalid_argument(std::string(segments.status().message()));
  auto entry = std::make_shared<RouteEntry>();
  entry->method = method;
  entry->pattern = std::string(pattern);
  entry->segments = *std::move(segments);
  entry->literals = std::count_if(entry->segments.begin(), entry->segments.end(),
                                  [](const std::string& s) { return !is_param(s); });
  entry->handler = std::move(handler);
  entry->options = options;
  std::lock_guard lock(impl_->routes_mu);
  entry->id = impl_->next_route++;
  auto table = std::make_shared<RouteTable>(*impl_->routes);
  table->routes.push_back(entry);
  impl_->routes = std::move(table);
  return entry->id;
}

void Server::remove_route(RouteId id) {
  std::lock_guard lock(impl_->routes_mu);
  auto table = std::make_shared<RouteTable>(*impl_->routes);
  std::erase_if(table->routes, [id](const auto& r) { return r->id == id; });
  impl_->routes = std::move(table);
}

std::vector<std::string> Server::routes() const {
  std::vector<std::string> out;
  for (const auto& r : impl_->snapshot()->routes) {
    auto m = bhttp::to_string(r->method);
    out.push_back(absl::StrCat(std::string(m.data(), m.size()), " ", r->pattern));
  }
  return out;
}

std::uint16_t Server::port() const noexcept {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

std::string Server::url() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  auto addr = ep.address();
  std::string host = addr.is_v6() ? absl::StrCat("[", addr.to_string(), "]") : addr.to_string();
  if (addr.is_unspecified()) host = addr.is_v6() ? "[::1]" : "127.0.0.1";
  return absl::StrCat(secure() ? "https://" : "http://", host, ":", ep.port());
}

bool Server::secure() const noexcept { return impl_->tls != nullptr; }

ServerStats Server::stats() const {
  ServerStats s;
  s.connections_open = impl_->open_sessions();
  s.connections_accepted = impl_->accepted.load();
  s.connections_refused = impl_->refused.load();
  s.requests = impl_->requests.load();
  s.timeouts = impl_->timeouts.load();
  s.bad_requests = impl_->bad_requests.load();
  return s;
}

const ServerOptions& Server::options() const noexcept { return impl_->options; }

}  // namespace patchbay::http
