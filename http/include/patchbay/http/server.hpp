// patchbay/http/server.hpp — the HTTP/1.1 server core every browser-facing endpoint runs on.
//
// One Server owns one listener (optionally TLS) and serves many routes: the hub's topic
// endpoints, `POST /services/{name}`, user routes such as `GET /users/{id}`. It speaks
// HTTP/1.1 with keep-alive and pipelining (requests on one connection are answered in order)
// and enforces limits with safe defaults:
//
//   header_limit    8 KiB   larger request header → 431 and close
//   body_limit      1 MiB   larger request body → 413 and close
//   header_timeout  10 s    from the first byte of a request until its header is complete
//                           (slowloris) → the connection is closed
//   idle_timeout    60 s    keep-alive wait for the first byte of the next request → closed
//   request_timeout 30 s    reading the body, running the handler and writing the answer;
//                           a handler still running then gets 503 and the connection closes
//   send_timeout    30 s    one write of a streaming response (a client that stopped reading)
//   max_connections 10000   beyond it new connections get 503 (Retry-After: 1) and are closed
//
// A request carrying both Transfer-Encoding and Content-Length (in either order), or any other
// header the parser rejects, gets 400 and the connection is closed: no request smuggling. An
// unknown path gets 404, a known path with another method 405 with `Allow`.
//
// Deadlines are enforced by one watchdog per server that sweeps the connections every
// `timer_resolution` (default 250 ms), so a deadline fires up to that much late; no timer is
// armed per request.
//
// stop(): the listener closes; idle keep-alive connections close at once; requests being
// handled are answered (with `Connection: close`) until `shutdown_timeout`, then closed;
// streaming responses are cancelled (their handler sees operation_aborted) and closed.
//
// Thread safety: every member may be called from any thread. Each connection runs on its own
// strand (or, when the executor is an io_context made for one thread — concurrency hint 1, as
// Runtime makes for `threads: 1` — on that io_context directly: no strand is needed there);
// handlers for one connection run one at a time, handlers for different connections
// concurrently. Routes may be added and removed while the server runs.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/http/tls.hpp>

#include <absl/status/statusor.h>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace patchbay::http {

namespace bhttp = boost::beast::http;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

struct ServerLimits {
  std::size_t header_limit = 8 * 1024;
  std::size_t body_limit = 1024 * 1024;
  duration header_timeout = std::chrono::seconds(10);
  duration idle_timeout = std::chrono::seconds(60);
  duration request_timeout = std::chrono::seconds(30);
  duration send_timeout = std::chrono::seconds(30);
  std::size_t max_connections = 10000;
  duration shutdown_timeout = std::chrono::seconds(5);
  duration timer_resolution = std::chrono::milliseconds(250);
  ServerLimits() {}
};

struct ServerOptions {
  std::string host = "127.0.0.1";  ///< address to listen on ("0.0.0.0", "::", a name)
  std::uint16_t port = 0;          ///< 0: an ephemeral port (see Server::port())
  ServerLimits limits;
  std::optional<TlsServerOptions> tls;  ///< set: HTTPS only
  ServerOptions() {}
};

/// A connection handed over for good by Exchange::hand_over(): its socket stays open, and the
/// connection counted in max_connections, until this handle is destroyed, which closes it.
/// Destroy it on the connection's executor (or once nothing runs any more).
class Upgraded {
 public:
  virtual ~Upgraded() = default;
  virtual asio::ip::tcp::socket& socket() noexcept = 0;
};

/// The owner of a handed-over connection, as the server core sees it.
class UpgradeOwner {
 public:
  virtual ~UpgradeOwner() = default;
  /// The server is stopping: end the connection now (a last write may be attempted, never
  /// waited for) and destroy the Upgraded handle. Runs on the connection's executor; may be
  /// called more than once.
  virtual void server_stopping() noexcept = 0;
};

/// One request being answered. Lives until the handler returns.
class Exchange {
 public:
  virtual ~Exchange() = default;

  Request& request() noexcept { return request_; }
  const Request& request() const noexcept { return request_; }

  /// The decoded value of a `{name}` segment of the route pattern, or empty.
  std::string_view param(std::string_view name) const noexcept;
  const std::vector<std::pair<std::string, std::string>>& params() const noexcept { return params_; }

  /// The decoded value of query parameter `name`, if present.
  std::optional<std::string> query(std::string_view name) const;

  const asio::ip::tcp::endpoint& remote() const noexcept { return remote_; }

  /// Sets the answer; it is written when the handler returns (keep-alive as the request
  /// asked, unless the answer carries `Connection: close`). A handler that returns without answering gets 500 written for it.
  void respond(Response response) {
    response_ = std::move(response);
    responded_ = true;
  }
  /// A short answer with a text/plain body.
  void respond(bhttp::status status, std::string body, std::string_view content_type = "text/plain; charset=utf-8");

  // Streaming (routes registered with streaming = true): write the header once, then any
  // bytes; the connection closes when the handler returns. Each write is bounded by
  // send_timeout; failures throw system_error.

  /// Writes the status line and header; no Content-Length, so the body ends with the connection.
  virtual awaitable<void> write_head(bhttp::response_header<> head) = 0;
  virtual awaitable<void> write(std::span<const asio::const_buffer> buffers) = 0;
  /// `bytes` must stay valid until the write completes.
  awaitable<void> write(std::string_view bytes) {
    asio::const_buffer b(bytes.data(), bytes.size());
    co_await write(std::span<const asio::const_buffer>(&b, 1));
  }
  /// Closes the connection now (from any thread): a pending write fails.
  virtual void close() noexcept = 0;

  /// Takes the connection over for another protocol (a WebSocket upgrade, on a route
  /// registered with streaming = true): returns the connection's socket, which the handler
  /// uses until it returns; the server writes nothing more and closes the connection then. The
  /// connection still counts in max_connections, and stop() cancels the handler like a
  /// streaming one (the handler must end every operation on the socket before it returns).
  /// `early` receives bytes the client sent after the request (normally none: a WebSocket
  /// client waits for the 101 answer). nullptr on a TLS listener (not supported) or once an
  /// answer was started.
  virtual asio::ip::tcp::socket* take_over(std::string& early) {
    (void)early;
    return nullptr;
  }
  /// Like take_over(), but the connection outlives the handler (a WebSocket connection that
  /// should cost no coroutine and no request state while idle): the handler sets the
  /// connection up and returns (without suspending after this call); the server core then
  /// drops its coroutine and the request, and keeps the socket open and counted until the
  /// returned handle is destroyed. stop() calls owner->server_stopping() on the connection's
  /// executor. The handler must have read what it needs of request() before it returns.
  /// nullptr on a TLS listener or once an answer was started.
  virtual std::unique_ptr<Upgraded> hand_over(std::string& early, std::weak_ptr<UpgradeOwner> owner) {
    (void)early;
    (void)owner;
    return nullptr;
  }

  bool responded() const noexcept { return responded_; }
  /// The answer being built: empty (200, no fields) until the handler fills it. A handler may
  /// build it in place and then call respond() without arguments (saves a move of the whole
  /// message per request).
  Response& response() noexcept { return response_; }
  void respond() noexcept { responded_ = true; }

 protected:
  Exchange() = default;
  Request request_;
  std::vector<std::pair<std::string, std::string>> params_;
  asio::ip::tcp::endpoint remote_;
  Response response_;
  bool responded_ = false;
};

/// Handles one request. Throwing answers 500 (with the text of a std::exception).
using Handler = std::function<awaitable<void>(Exchange&)>;

struct RouteOptions {
  /// The handler streams its answer (SSE, WebSocket): no request_timeout applies, and the
  /// handler is cancelled at stop().
  bool streaming = false;
  /// The handler may wait long before it answers with respond() (long polls): no
  /// request_timeout applies, and at stop() it is not cancelled at once but, like a request
  /// being handled, has until shutdown_timeout to answer (the hub answers its held polls when
  /// it stops). The connection stays open for the next request.
  bool held = false;
  RouteOptions() {}
};

using RouteId = std::uint64_t;

/// Counters, for tests and metrics.
struct ServerStats {
  std::size_t connections_open = 0;
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;  ///< over max_connections
  std::uint64_t requests = 0;
  std::uint64_t timeouts = 0;             ///< connections closed by a deadline
  std::uint64_t bad_requests = 0;         ///< 4xx answered by the server core itself
};

class Server {
 public:
  /// Binds the listener now (so the port is known and an address in use is reported here);
  /// accepting starts with start().
  static absl::StatusOr<std::shared_ptr<Server>> create(executor ex, ServerOptions options);

  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();
  /// Graceful stop (see the file comment). Idempotent; completes when every connection closed.
  awaitable<void> stop();

  /// Adds a route. `pattern` is a path whose segments are literals or `{name}` (one decoded
  /// segment), e.g. "/topics/{topic}/events". A literal segment wins over a parameter.
  RouteId route(bhttp::verb method, std::string_view pattern, Handler handler, RouteOptions options = RouteOptions());
  void remove_route(RouteId id);

  /// Every route as "METHOD /pattern", in registration order (for docs and tests).
  std::vector<std::string> routes() const;

  std::uint16_t port() const noexcept;
  /// "http://127.0.0.1:8080" (or https), for clients in tests and logs.
  std::string url() const;
  bool secure() const noexcept;
  ServerStats stats() const;
  const ServerOptions& options() const noexcept;

  struct Impl;  ///< implementation detail (server.cpp)

 private:
  Server();
  std::shared_ptr<Impl> impl_;
};

/// Parses "/a/{b}/c" into segments; error text for a malformed pattern (for config checks).
absl::StatusOr<std::vector<std::string>> parse_route_pattern(std::string_view pattern);

}  // namespace patchbay::http
