// Helpers shared by the HTTP core's tests: a fresh temporary directory, a self-signed
// certificate made at test time (CN=localhost, subjectAltName DNS:localhost and IP:127.0.0.1),
// and a scripted raw HTTP/1.1 server for client tests that does not depend on patchbay's own
// server core. The coroutine helpers (run_async, CO_ASSERT_TRUE, sleep_for) come from the core's
// tests.
#pragma once

#include "../../core/tests/async_test_support.hpp"

#include <patchbay/asio.hpp>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace boost::asio::ssl {
class context;
}

namespace patchbay::http::testing_support {

using namespace patchbay::testing_support;

/// A fresh, empty directory under the system's temporary directory, removed with everything in
/// it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct TestCertificate {
  std::string certificate_file;  ///< <dir>/cert.pem
  std::string private_key_file;  ///< <dir>/key.pem
  std::string certificate_pem;
  std::string private_key_pem;
};

/// Makes a self-signed certificate (EC P-256, valid for a day) for CN=localhost with
/// subjectAltName DNS:localhost and IP:127.0.0.1, and writes cert.pem and key.pem into `dir`.
/// Throws std::runtime_error when OpenSSL or the file system fails.
TestCertificate make_test_certificate(const std::string& dir);

/// One accepted connection of a TestServer, as its handler sees it. Used only on the server's
/// thread.
class ServerConnection {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  virtual ~ServerConnection() = default;
  /// The next request; std::nullopt once the client closed the connection (or on any error).
  virtual awaitable<std::optional<Request>> read_request() = 0;
  /// Writes raw bytes, e.g. a whole response (see http_response()). Throws on failure.
  virtual awaitable<void> write(std::string bytes) = 0;
  /// Closes the connection (FIN).
  virtual void close() = 0;
  /// Resets the connection (RST, through SO_LINGER 0).
  virtual void reset() = 0;
  /// 0 for the first connection the server accepted, 1 for the next, ...
  int index() const { return index_; }

 protected:
  explicit ServerConnection(int index) : index_(index) {}

 private:
  int index_;
};

/// A raw HTTP/1.1 server on `address`, port 0, with a thread of its own. Every accepted
/// connection (after the TLS handshake, when `tls` is given) runs `handler`; the connection
/// closes when the handler returns. The destructor stops the server and joins its thread.
class TestServer {
 public:
  using Handler = std::function<awaitable<void>(ServerConnection&)>;
  explicit TestServer(Handler handler, std::shared_ptr<boost::asio::ssl::context> tls = nullptr,
                      const std::string& address = "127.0.0.1");
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  unsigned short port() const;
  /// http(s)://<address>:<port><target>
  std::string url(std::string_view target = "/") const;
  /// The same with another host name, e.g. "localhost".
  std::string url_with_host(std::string_view host, std::string_view target = "/") const;
  /// Connections accepted so far.
  int accepted() const { return accepted_.load(); }

 private:
  struct Impl;
  std::atomic<int> accepted_{0};
  std::unique_ptr<Impl> impl_;
};

/// "HTTP/1.1 <status>\r\nContent-Length: <n>\r\n<extra_headers>\r\n<body>"; extra_headers are
/// complete lines ("Name: value\r\n").
std::string http_response(std::string_view body, std::string_view extra_headers = {},
                          std::string_view status = "200 OK");

/// A handler answering every request on a connection with `body`, until the client closes it.
TestServer::Handler answer_with(std::string body);

}  // namespace patchbay::http::testing_support
