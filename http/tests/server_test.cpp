// Tests of the HTTP server core over real loopback sockets, with a raw blocking client so that
// every byte on the wire is the test's choice: keep-alive, pipelining, routing, the limits and
// their status codes, request smuggling, deadlines (slowloris, idle, handler), the connection
// cap, streaming routes and graceful shutdown.
#include <patchbay/http/server.hpp>

#include <patchbay/error.hpp>
#include <patchbay/http/client.hpp>

#include "test_support.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <future>
#include <thread>

namespace patchbay::http {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

/// A server on 127.0.0.1:<ephemeral> run by two io threads.
class ServerFixture : public ::testing::Test {
 protected:
  void start(ServerOptions options = ServerOptions()) {
    auto s = Server::create(io_.get_executor(), std::move(options));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *s;
    server_->route(bhttp::verb::get, "/hello", [](Exchange& ex) -> awaitable<void> {
      ex.respond(bhttp::status::ok, "Hello from server!");
      co_return;
    });
    server_->route(bhttp::verb::post, "/echo", [](Exchange& ex) -> awaitable<void> {
      ex.respond(bhttp::status::ok, ex.request().body());
      co_return;
    });
    server_->route(bhttp::verb::get, "/users/{id}", [](Exchange& ex) -> awaitable<void> {
      ex.respond(bhttp::status::ok, "user " + std::string(ex.param("id")) + " q=" + ex.query("q").value_or("-"));
      co_return;
    });
    server_->route(bhttp::verb::get, "/users/me", [](Exchange& ex) -> awaitable<void> {
      ex.respond(bhttp::status::ok, "literal wins");
      co_return;
    });
    server_->route(bhttp::verb::get, "/slow", [this](Exchange& ex) -> awaitable<void> {
      ++slow_started_;
      asio::steady_timer t(co_await asio::this_coro::executor, slow_for_);
      co_await t.async_wait(asio::use_awaitable_t<executor>{});
      ex.respond(bhttp::status::ok, "finally");
    });
    server_->route(bhttp::verb::get, "/throws", [](Exchange&) -> awaitable<void> {
      throw std::runtime_error("boom");
      co_return;
    });
    RouteOptions streaming;
    streaming.streaming = true;
    server_->route(
        bhttp::verb::get, "/stream",
        [this](Exchange& ex) -> awaitable<void> {
          bhttp::response_header<> head;
          head.result(bhttp::status::ok);
          head.set(bhttp::field::content_type, "text/plain");
          co_await ex.write_head(std::move(head));
          for (int i = 0;; ++i) {
            co_await ex.write("tick " + std::to_string(i) + "\n");
            ++stream_ticks_;
            asio::steady_timer t(co_await asio::this_coro::executor, 5ms);
            co_await t.async_wait(asio::use_awaitable_t<executor>{});
          }
        },
        streaming);
    server_->start();
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void stop_server() {
    std::promise<void> done;
    asio::co_spawn(io_, server_->stop(), [&](std::exception_ptr) { done.set_value(); });
    ASSERT_EQ(done.get_future().wait_for(60s), std::future_status::ready) << "stop() did not finish";
  }

  void TearDown() override {
    if (server_) stop_server();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  /// A blocking connection with a receive timeout, so that a test fails instead of hanging.
  tcp::socket connect() {
    tcp::socket s(client_io_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    timeval tv{30, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return s;
  }

  static void send(tcp::socket& s, std::string_view bytes) { asio::write(s, asio::buffer(bytes.data(), bytes.size())); }

  /// Reads until the peer closes (or the receive timeout passes).
  static std::string read_all(tcp::socket& s) {
    std::string out;
    char buf[4096];
    boost::system::error_code ec;
    for (;;) {
      auto n = s.read_some(asio::buffer(buf), ec);
      out.append(buf, n);
      if (ec) break;
    }
    return out;
  }

  /// Reads exactly one response (header + Content-Length body).
  static std::string read_response(tcp::socket& s, std::string& carry) {
    char buf[4096];
    for (;;) {
      auto end = carry.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::size_t length = 0;
        auto cl = carry.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::stoul(carry.substr(cl + 16));
        if (carry.size() >= end + 4 + length) {
          std::string one = carry.substr(0, end + 4 + length);
          carry.erase(0, end + 4 + length);
          return one;
        }
      }
      boost::system::error_code ec;
      auto n = s.read_some(asio::buffer(buf), ec);
      if (ec) return "<closed: " + ec.message() + "> " + carry;
      carry.append(buf, n);
    }
  }

  static bool closed_by_peer(tcp::socket& s) {
    char c;
    boost::system::error_code ec;
    s.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

  std::string status_line(std::string_view response) { return std::string(response.substr(0, response.find("\r\n"))); }

  asio::io_context io_{2};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{io_.get_executor()};
  asio::io_context client_io_;
  std::vector<std::thread> threads_;
  std::shared_ptr<Server> server_;
  std::atomic<int> slow_started_{0};
  std::atomic<int> stream_ticks_{0};
  duration slow_for_ = 200ms;
};

TEST_F(ServerFixture, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  auto s = connect();
  std::string carry;
  for (int i = 0; i < 100; ++i) {
    send(s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = read_response(s, carry);
    ASSERT_EQ(status_line(r), "HTTP/1.1 200 OK") << r;
    ASSERT_NE(r.find("Hello from server!"), std::string::npos);
  }
  EXPECT_EQ(server_->stats().connections_accepted, 1u);
}

TEST_F(ServerFixture, PipelinedRequestsAreAnsweredInOrder) {
  start();
  auto s = connect();
  std::string batch;
  for (int i = 0; i < 20; ++i) {
    std::string body = "body-" + std::to_string(i);
    batch += "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  send(s, batch);
  std::string carry;
  for (int i = 0; i < 20; ++i) {
    auto r = read_response(s, carry);
    ASSERT_TRUE(r.ends_with("body-" + std::to_string(i))) << "response " << i << ": " << r;
  }
}

// The answer is written with one non-blocking send when the socket takes it all, the rest
// asynchronously: 8 MiB answers (far more than a socket buffer) pipelined with small ones, over
// HTTP/1.1 and HTTP/1.0 keep-alive, arrive whole and in order, byte for byte what Beast would
// have written; 304 carries no Content-Length; a handler's Connection: close ends the connection.
TEST_F(ServerFixture, LargeAnswersPartialSendsAndHeaderRulesOnTheWire) {
  std::string big(8u << 20, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7) % 26);
  start();
  server_->route(bhttp::verb::get, "/big", [&big](Exchange& ex) -> awaitable<void> {
    ex.response().body() = big;
    ex.response().insert(bhttp::field::content_type, "x/y");
    ex.respond();
    co_return;
  });
  server_->route(bhttp::verb::get, "/not-modified", [](Exchange& ex) -> awaitable<void> {
    ex.response().result(bhttp::status::not_modified);
    ex.response().reason("Nope");
    ex.respond();
    co_return;
  });
  server_->route(bhttp::verb::get, "/closeme", [](Exchange& ex) -> awaitable<void> {
    Response r{bhttp::status::ok, 11};
    r.set(bhttp::field::connection, "close");
    r.body() = "bye\n";
    ex.respond(std::move(r));
    co_return;
  });
  {
    auto s = connect();
    // 8 MiB is more than the socket buffers hold: the first send cannot take an answer whole.
    send(s,
         "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
         "GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello HTTP/1.0\r\n\r\n");
    const std::string expect =
        "HTTP/1.1 200 OK\r\nContent-Type: x/y\r\nContent-Length: 8388608\r\n\r\n" + big +
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\n\r\nHello from server!" +
        "HTTP/1.0 200 OK\r\nContent-Type: x/y\r\nConnection: keep-alive\r\nContent-Length: 8388608\r\n\r\n" + big +
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\n\r\nHello from server!";
    const std::string got = read_all(s);  // HTTP/1.0 without keep-alive: the server closes after the last
    ASSERT_EQ(got.size(), expect.size()) << got.substr(0, 300);
    EXPECT_TRUE(got == expect) << "the bytes differ";
  }
  {
    auto s = connect();
    send(s, "GET /not-modified HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(read_all(s),
              "HTTP/1.1 304 Nope\r\n\r\n"
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 18\r\n\r\n"
              "Hello from server!");
  }
  {
    auto s = connect();
    send(s, "GET /closeme HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(read_all(s), "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbye\n");
  }
}

TEST_F(ServerFixture, RoutesWithParametersLiteralsAndQueries) {
  start();
  auto s = connect();
  std::string carry;
  send(s, "GET /users/42?q=a%20b HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(read_response(s, carry).ends_with("user 42 q=a b"));
  send(s, "GET /users/a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(read_response(s, carry).ends_with("user a/b q=-"));
  send(s, "GET /users/me HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(read_response(s, carry).ends_with("literal wins"));
  send(s, "GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_line(read_response(s, carry)), "HTTP/1.1 404 Not Found");
  send(s, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = read_response(s, carry);
  EXPECT_EQ(status_line(r), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(r.find("Allow: GET"), std::string::npos) << r;
}

TEST_F(ServerFixture, HandlerErrorsAnswer500AndKeepTheConnection) {
  start();
  auto s = connect();
  std::string carry;
  send(s, "GET /throws HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = read_response(s, carry);
  EXPECT_EQ(status_line(r), "HTTP/1.1 500 Internal Server Error");
  EXPECT_NE(r.find("boom"), std::string::npos);
  send(s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_line(read_response(s, carry)), "HTTP/1.1 200 OK");
}

struct BadRequest {
  const char* name;
  std::string bytes;
  const char* status;
};

TEST_F(ServerFixture, BadInputGetsAClearStatusAndTheConnectionCloses) {
  ServerOptions o;
  o.limits.header_limit = 1024;
  o.limits.body_limit = 1000;
  start(o);
  const std::vector<BadRequest> cases = {
      {"malformed request line", "GET\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"garbage", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"bad version", "GET / HTTP/9.Z\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"oversized header", "GET /hello HTTP/1.1\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n",
       "HTTP/1.1 431 Request Header Fields Too Large"},
      {"oversized body (declared)", "POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", "HTTP/1.1 413 Payload Too Large"},
      {"oversized body (chunked)",
       "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + std::string(2000, 'x') + "\r\n0\r\n\r\n",
       "HTTP/1.1 413 Payload Too Large"},
      {"TE then CL", "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
       "HTTP/1.1 400 Bad Request"},
      {"CL then TE", "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       "HTTP/1.1 400 Bad Request"},
      {"two content lengths", "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
       "HTTP/1.1 400 Bad Request"},
      {"bad chunk size", "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 400 Bad Request"},
      {"bad target", "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
  };
  for (const auto& c : cases) {
    auto s = connect();
    send(s, c.bytes);
    auto all = read_all(s);  // the server answers and closes
    EXPECT_EQ(status_line(all), c.status) << c.name << ": " << all;
  }
  // The server is fine afterwards.
  auto s = connect();
  std::string carry;
  send(s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_line(read_response(s, carry)), "HTTP/1.1 200 OK");
}

TEST_F(ServerFixture, ExpectContinueGetsA100BeforeTheBody) {
  start();
  auto s = connect();
  send(s, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  char buf[64];
  std::string got;
  while (got.find("\r\n\r\n") == std::string::npos) got.append(buf, s.read_some(asio::buffer(buf)));
  EXPECT_EQ(got, "HTTP/1.1 100 Continue\r\n\r\n");
  send(s, "hello");
  std::string carry;
  EXPECT_TRUE(read_response(s, carry).ends_with("hello"));
}

TEST_F(ServerFixture, SlowlorisConnectionsAreClosedAtTheHeaderDeadlineWhileOthersAreServed) {
  ServerOptions o;
  o.limits.header_timeout = 1s;
  o.limits.timer_resolution = 50ms;
  start(o);
  // 1,000 connections that each send half a request line and then nothing.
  std::vector<tcp::socket> slow;
  for (int i = 0; i < 1000; ++i) {
    slow.push_back(connect());
    send(slow.back(), "GET /hel");
  }
  // A normal client still gets its answers meanwhile.
  auto s = connect();
  std::string carry;
  for (int i = 0; i < 10; ++i) {
    send(s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(status_line(read_response(s, carry)), "HTTP/1.1 200 OK");
  }
  for (auto& c : slow) ASSERT_TRUE(closed_by_peer(c));
  EXPECT_GE(server_->stats().timeouts, 1000u);
}

TEST_F(ServerFixture, IdleKeepAliveConnectionsAreClosed) {
  ServerOptions o;
  o.limits.idle_timeout = 300ms;
  o.limits.timer_resolution = 20ms;
  start(o);
  auto s = connect();
  std::string carry;
  send(s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(status_line(read_response(s, carry)), "HTTP/1.1 200 OK");
  EXPECT_TRUE(closed_by_peer(s));
}

TEST_F(ServerFixture, AHandlerPastTheRequestDeadlineGets503) {
  ServerOptions o;
  o.limits.request_timeout = 200ms;
  o.limits.timer_resolution = 20ms;
  slow_for_ = 60s;
  start(o);
  auto s = connect();
  send(s, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  auto all = read_all(s);
  EXPECT_EQ(status_line(all), "HTTP/1.1 503 Service Unavailable") << all;
}

TEST_F(ServerFixture, ConnectionsOverTheCapGet503) {
  ServerOptions o;
  o.limits.max_connections = 3;
  start(o);
  std::vector<tcp::socket> held;
  std::string carry;
  for (int i = 0; i < 3; ++i) {
    held.push_back(connect());
    send(held.back(), "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(status_line(read_response(held.back(), carry)), "HTTP/1.1 200 OK");
  }
  auto extra = connect();
  EXPECT_EQ(status_line(read_all(extra)), "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(server_->stats().connections_refused, 1u);
}

TEST_F(ServerFixture, StreamingRoutesWriteUntilTheClientGoes) {
  start();
  auto s = connect();
  send(s, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got;
  char buf[256];
  while (got.find("tick 3\n") == std::string::npos) got.append(buf, s.read_some(asio::buffer(buf)));
  EXPECT_EQ(status_line(got), "HTTP/1.1 200 OK");
  EXPECT_EQ(got.find("Content-Length"), std::string::npos);
  s.close();
  // The handler notices at its next write and the connection goes away.
  for (int i = 0; i < 6000 && server_->stats().connections_open != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server_->stats().connections_open, 0u);
}

TEST_F(ServerFixture, StopAnswersRequestsInFlightAndClosesTheRest) {
  slow_for_ = 300ms;
  start();
  auto idle = connect();
  std::string carry;
  send(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(status_line(read_response(idle, carry)), "HTTP/1.1 200 OK");
  auto busy = connect();
  send(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  auto streaming = connect();
  send(streaming, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  for (int i = 0; i < 6000 && (slow_started_ == 0 || stream_ticks_ == 0); ++i) std::this_thread::sleep_for(1ms);
  stop_server();
  auto answer = read_all(busy);
  EXPECT_EQ(status_line(answer), "HTTP/1.1 200 OK");
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  EXPECT_TRUE(closed_by_peer(idle));
  read_all(streaming);  // ends: the server closed it
  EXPECT_EQ(server_->stats().connections_open, 0u);
  server_.reset();
}

TEST_F(ServerFixture, TlsServesHttpsToCurlAndToTheClientCore) {
  testing_support::TempDir dir;
  auto cert = testing_support::make_test_certificate(dir.path());
  ServerOptions o;
  TlsServerOptions tls;
  tls.certificate_file = cert.certificate_file;
  tls.private_key_file = cert.private_key_file;
  o.tls = tls;
  start(o);
  ASSERT_TRUE(server_->secure());
  const std::string url = "https://localhost:" + std::to_string(server_->port());

  // curl, trusting the generated certificate.
  const std::string out = dir.path() + "/curl.out";
  const std::string cmd = "curl -s --max-time 30 --cacert " + cert.certificate_file + " " + url + "/hello > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(out);
  std::string body((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(body, "Hello from server!");

  // The client core, trusting it too; and plain HTTP on the TLS port is refused.
  asio::io_context client_io;
  std::string answer;
  asio::co_spawn(
      client_io,
      [&]() -> awaitable<void> {
        ClientOptions co;
        co.tls.ca_file = cert.certificate_file;
        Client client(co_await asio::this_coro::executor, co);
        auto res = co_await client.request(url + "/users/7", Request{bhttp::verb::get, "/", 11});
        answer = res.body();
      },
      asio::detached);
  client_io.run_for(60s);
  EXPECT_EQ(answer, "user 7 q=-");

  auto plain = connect();
  send(plain, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_all(plain).find("Hello"), std::string::npos);
}

TEST(ServerCreate, AnAddressInUseIsReportedAtCreate) {
  asio::io_context io;
  auto a = Server::create(io.get_executor(), ServerOptions());
  ASSERT_TRUE(a.ok());
  ServerOptions o;
  o.port = (*a)->port();
  auto b = Server::create(io.get_executor(), o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("cannot listen on 127.0.0.1:" + std::to_string(o.port)), std::string::npos)
      << b.status();
}

TEST(RoutePattern, MalformedPatternsAreRefused) {
  EXPECT_TRUE(parse_route_pattern("/").ok());
  EXPECT_TRUE(parse_route_pattern("/topics/{topic}/events").ok());
  EXPECT_FALSE(parse_route_pattern("topics").ok());
  EXPECT_FALSE(parse_route_pattern("/a//b").ok());
  EXPECT_FALSE(parse_route_pattern("/a/{b").ok());
  EXPECT_FALSE(parse_route_pattern("/a/{}").ok());
}

}  // namespace
}  // namespace patchbay::http
