// patchbay/http/client.hpp — the HTTP/1.1 client core every HTTP client transport uses.
//
// A Client keeps a pool of keep-alive connections per origin (scheme, host, port), resolves
// names, and bounds every call with a deadline covering resolve, connect, write and read.
// Requests whose method is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) are retried, at
// most `max_retries` times, when the connection failed before any response byte arrived (a
// pooled connection the server had closed, a refused or reset connection); other requests are
// never retried, so a POST is sent at most once. `https://` URLs use TLS (see tls.hpp).
//
// Errors are thrown as boost::system::system_error: errc::timed_out at the deadline,
// errc::bad_message for an unparsable URL or response, errc::payload_too_large for a response
// beyond `body_limit`, and Asio's codes (connection_refused, ...) for network failures. A
// non-2xx response is not an error here: the caller reads its status.
//
// Thread safety: a Client may be used concurrently from any thread; each call resumes on the
// executor of the awaiting coroutine (the I/O itself runs on a strand of the connection's own).
// Destroy it only after every call has completed, and before its io_context.
// Cancellation: cancelling the awaiting coroutine (e.g. with `||` or a cancellation slot)
// closes the connection in use; the call completes with operation_aborted.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/http/tls.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace patchbay::http {

namespace bhttp = boost::beast::http;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

struct ClientOptions {
  duration connect_timeout = std::chrono::seconds(5);    ///< resolve + connect (+ TLS handshake)
  duration request_timeout = std::chrono::seconds(30);   ///< the whole call, when no deadline is given
  std::size_t max_idle_per_origin = 16;                  ///< idle keep-alive connections kept per origin
  duration idle_timeout = std::chrono::seconds(30);      ///< pooled connections idle longer are closed
  unsigned max_retries = 2;                              ///< extra attempts, idempotent methods only
  std::size_t header_limit = 64 * 1024;                  ///< largest response header
  std::size_t body_limit = 64 * 1024 * 1024;             ///< largest response body (request())
  TlsClientOptions tls;                                  ///< for https:// URLs
  std::string user_agent = "patchbay/0.1";
  /// Replaces name resolution for every host, names and literal addresses alike: returns the
  /// addresses to connect to, or throws system_error to refuse the call (its text ends up in
  /// the call's error). The webhook sender checks every address against its SSRF policy here
  /// (patchbay/http/ssrf.hpp), so a connection only ever goes to an address that was checked.
  /// Runs on a connection's strand; the call's deadline bounds it.
  std::function<awaitable<std::vector<asio::ip::tcp::endpoint>>(std::string host, unsigned short port, bool tls)>
      resolve;
  ClientOptions() {}
};

class ResponseStream;

class Client {
 public:
  explicit Client(executor ex, ClientOptions options = ClientOptions());
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Sends `req` to `url` (absolute: http://host[:port]/path?query or https://...) and reads
  /// the whole response. The request's target, Host, User-Agent (unless set) and
  /// Content-Length are filled in from `url` and the body. `until`: the deadline for the whole
  /// call; a default-constructed deadline means now + request_timeout.
  awaitable<Response> request(std::string_view url, Request req, deadline until = {});

  /// Sends `req` and returns once the response header has arrived (by `header_until`); the
  /// body is then read piece by piece, with no deadline, from the returned stream (SSE, long
  /// polls). The connection is not returned to the pool.
  awaitable<std::unique_ptr<ResponseStream>> open(std::string_view url, Request req, deadline header_until = {});

  /// Closes every idle pooled connection.
  void close_idle();

  const ClientOptions& options() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

/// A response whose body is read as it arrives. Chunked framing is removed.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  virtual const bhttp::response_header<>& head() const noexcept = 0;
  unsigned status() const { return head().result_int(); }
  /// The next body bytes, valid until the next call; an empty view at the end of the body.
  /// Throws system_error on a network failure or after close(). Cancelling the awaiting
  /// coroutine closes the stream, like close().
  virtual awaitable<std::string_view> read_some() = 0;
  /// Closes the connection; a pending read_some completes with operation_aborted.
  /// May be called from any thread.
  virtual void close() noexcept = 0;
};

}  // namespace patchbay::http
