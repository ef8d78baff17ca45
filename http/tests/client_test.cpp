// Tests of the HTTP client core (client.hpp) against the scripted raw server of
// test_support.hpp: keep-alive pooling, retries of idempotent requests, deadlines, limits,
// framing, streaming responses and cancellation. Timing is never asserted tighter than "did not
// take ten times the deadline"; everything else waits on conditions.
#include "test_support.hpp"

#include <patchbay/error.hpp>
#include <patchbay/http/client.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

namespace patchbay::http {
namespace {

using namespace std::chrono_literals;
using namespace testing_support;
using boost::system::error_code;

Request make_request(bhttp::verb method, std::string body = {}) {
  Request req;
  req.method(method);
  req.body() = std::move(body);
  return req;
}

struct Failure {
  error_code code;
  std::string what;
};

// How `call` failed; an empty code when it succeeded.
template <typename T>
awaitable<Failure> failure_of(awaitable<T> call) {
  Failure failure;
  try {
    co_await std::move(call);
  } catch (const boost::system::system_error& e) {
    failure.code = e.code();
    failure.what = e.what();
  }
  co_return failure;
}

// Polls `condition` (generously bounded: run_async fails the test long before a hang matters).
template <typename Condition>
awaitable<bool> eventually(Condition condition, duration limit = 30s) {
  const auto until = clock::now() + limit;
  while (!condition()) {
    if (clock::now() > until) co_return false;
    co_await sleep_for(2ms);
  }
  co_return true;
}

// Answers nothing: waits for requests until the client closes the connection.
awaitable<void> never_answer(ServerConnection& c) {
  for (;;) {
    auto req = co_await c.read_request();
    if (!req) co_return;
  }
}

TEST(HttpClient, ContentLengthResponse) {
  std::mutex mutex;
  std::string target, host, user_agent;
  TestServer server([&](ServerConnection& c) -> awaitable<void> {
    while (auto req = co_await c.read_request()) {
      {
        std::lock_guard lock(mutex);
        target = std::string(req->target());
        host = std::string((*req)[bhttp::field::host]);
        user_agent = std::string((*req)[bhttp::field::user_agent]);
      }
      co_await c.write(http_response("hello", "X-Test: yes\r\n"));
    }
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    Response res = co_await client.request(server.url("/path?x=1#fragment"), make_request(bhttp::verb::get));
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "hello");
    EXPECT_EQ(res["X-Test"], "yes");
    std::lock_guard lock(mutex);
    EXPECT_EQ(target, "/path?x=1");
    EXPECT_EQ(host, "127.0.0.1:" + std::to_string(server.port()));
    EXPECT_EQ(user_agent, "patchbay/0.1");
  });
}

TEST(HttpClient, ChunkedResponse) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    while (auto req = co_await c.read_request())
      co_await c.write(
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    for (int i = 0; i < 3; ++i) {
      Response res = co_await client.request(server.url(), make_request(bhttp::verb::get));
      EXPECT_EQ(res.body(), "hello world");
    }
    EXPECT_EQ(server.accepted(), 1);
  });
}

TEST(HttpClient, HeadResponseHasNoBodyAndKeepsTheConnection) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    while (auto req = co_await c.read_request()) {
      if (req->method() == bhttp::verb::head)
        co_await c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
      else
        co_await c.write(http_response("hello"));
    }
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    Response head = co_await client.request(server.url(), make_request(bhttp::verb::head));
    EXPECT_EQ(head[bhttp::field::content_length], "5");
    EXPECT_EQ(head.body(), "");
    Response get = co_await client.request(server.url(), make_request(bhttp::verb::get));
    EXPECT_EQ(get.body(), "hello");
    EXPECT_EQ(server.accepted(), 1);
  });
}

TEST(HttpClient, KeepAliveReusesOneConnection) {
  std::atomic<int> requests{0};
  TestServer server([&](ServerConnection& c) -> awaitable<void> {
    while (auto req = co_await c.read_request()) {
      ++requests;
      co_await c.write(http_response(req->body()));
    }
  });
  run_async(
      [&]() -> awaitable<void> {
        Client client(pool);
        for (int i = 0; i < 100; ++i) {
          const std::string body = "request " + std::to_string(i);
          Response res = co_await client.request(server.url(), make_request(bhttp::verb::post, body));
          EXPECT_EQ(res.body(), body);
        }
        EXPECT_EQ(requests.load(), 100);
        EXPECT_EQ(server.accepted(), 1);
      },
      2);
}

TEST(HttpClient, ResponseWithConnectionCloseIsNotPooled) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    if (auto req = co_await c.read_request()) co_await c.write(http_response("bye", "Connection: close\r\n"));
    c.close();
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    for (int i = 0; i < 3; ++i) {
      Response res = co_await client.request(server.url(), make_request(bhttp::verb::post, "x"));
      EXPECT_EQ(res.body(), "bye");
    }
    EXPECT_EQ(server.accepted(), 3);
  });
}

// The server holds back every response of the first two rounds until four requests of the
// round have arrived, so each round needs four connections at once.
TEST(HttpClient, ConcurrentRequestsOpenSeveralConnectionsAndPoolUpToTheLimit) {
  std::atomic<int> seen{0};
  TestServer server([&](ServerConnection& c) -> awaitable<void> {
    while (auto req = co_await c.read_request()) {
      const int mine = seen++;
      if (mine < 8) {
        const int round_end = (mine / 4 + 1) * 4;
        while (seen.load() < round_end) co_await sleep_for(1ms);
      }
      co_await c.write(http_response("ok"));
    }
  });
  run_async(
      [&]() -> awaitable<void> {
        ClientOptions options;
        options.max_idle_per_origin = 2;
        Client client(pool, options);
        const std::string url = server.url();
        std::atomic<int> done{0}, failed{0};
        auto round = [&]() -> awaitable<void> {
          done = 0;
          for (int i = 0; i < 4; ++i)
            asio::co_spawn(asio::make_strand(pool), client.request(url, make_request(bhttp::verb::get)),
                           [&](std::exception_ptr e, Response res) {
                             if (e || res.body() != "ok") ++failed;
                             ++done;
                           });
          co_await eventually([&] { return done.load() == 4; });
        };
        co_await round();
        EXPECT_EQ(server.accepted(), 4);
        // Two of the four connections were pooled, so the second round opens two more.
        co_await round();
        EXPECT_EQ(server.accepted(), 6);
        EXPECT_EQ(failed.load(), 0);
        for (int i = 0; i < 4; ++i) {
          Response res = co_await client.request(url, make_request(bhttp::verb::get));
          EXPECT_EQ(res.body(), "ok");
        }
        EXPECT_EQ(server.accepted(), 6);
      },
      2);
}

// The first connection serves one request, then takes the next one and closes without an
// answer: what a client sees when a server drops a keep-alive connection just as it is reused.
class StaleConnection : public ::testing::Test {
 protected:
  std::atomic<int> requests{0};
  TestServer server{[this](ServerConnection& c) -> awaitable<void> {
    for (int served = 0; auto req = co_await c.read_request(); ++served) {
      ++requests;
      if (c.index() == 0 && served == 1) {
        c.close();
        co_return;
      }
      co_await c.write(http_response("ok"));
    }
  }};
};

TEST_F(StaleConnection, IdempotentRequestIsRetried) {
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    for (int i = 0; i < 2; ++i) {
      Response res = co_await client.request(server.url(), make_request(bhttp::verb::get));
      EXPECT_EQ(res.body(), "ok");
    }
    EXPECT_EQ(requests.load(), 3);
    EXPECT_EQ(server.accepted(), 2);
  });
}

TEST_F(StaleConnection, PostIsNotRetried) {
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    Response first = co_await client.request(server.url(), make_request(bhttp::verb::post, "one"));
    EXPECT_EQ(first.body(), "ok");
    Failure failure = co_await failure_of(client.request(server.url(), make_request(bhttp::verb::post, "two")));
    EXPECT_TRUE(failure.code) << "the POST on the dropped connection succeeded";
    EXPECT_EQ(requests.load(), 2);
    EXPECT_EQ(server.accepted(), 1);
  });
}

// A server that closes an idle keep-alive connection: the client notices before reusing it,
// so even a POST succeeds (on a new connection), sent once.
TEST(HttpClient, ConnectionClosedWhileIdleIsNotReused) {
  std::atomic<int> requests{0}, closed{0};
  TestServer server([&](ServerConnection& c) -> awaitable<void> {
    if (auto req = co_await c.read_request()) {
      ++requests;
      co_await c.write(http_response("ok"));
    }
    c.close();
    ++closed;
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    for (int i = 0; i < 2; ++i) {
      Response res = co_await client.request(server.url(), make_request(bhttp::verb::post, "x"));
      EXPECT_EQ(res.body(), "ok");
      CO_ASSERT_TRUE(co_await eventually([&] { return closed.load() == i + 1; }));
      co_await sleep_for(100ms);  // for the FIN to travel through the loopback
    }
    EXPECT_EQ(requests.load(), 2);
    EXPECT_EQ(server.accepted(), 2);
  });
}

TEST(HttpClient, RetriesAreBounded) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    if (auto req = co_await c.read_request()) c.reset();
  });
  run_async([&]() -> awaitable<void> {
    ClientOptions options;
    options.max_retries = 2;
    Client client(pool, options);
    Failure get = co_await failure_of(client.request(server.url(), make_request(bhttp::verb::get)));
    EXPECT_TRUE(get.code);
    EXPECT_EQ(server.accepted(), 3) << get.what;
    Failure post = co_await failure_of(client.request(server.url(), make_request(bhttp::verb::post, "x")));
    EXPECT_TRUE(post.code);
    EXPECT_EQ(server.accepted(), 4) << post.what;
  });
}

TEST(HttpClient, RetriesStopAtTheDeadline) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    if (auto req = co_await c.read_request()) {
      co_await sleep_for(50ms);
      c.reset();
    }
  });
  run_async([&]() -> awaitable<void> {
    ClientOptions options;
    options.max_retries = 1000;
    Client client(pool, options);
    const auto started = clock::now();
    Failure failure =
        co_await failure_of(client.request(server.url(), make_request(bhttp::verb::get), clock::now() + 300ms));
    EXPECT_TRUE(failure.code);
    EXPECT_LT(clock::now() - started, 3s);
    EXPECT_LT(server.accepted(), 100) << failure.what;
  });
}

TEST(HttpClient, ConnectionRefused) {
  unsigned short port = 0;
  {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
    Failure failure = co_await failure_of(client.request(url, make_request(bhttp::verb::get)));
    EXPECT_EQ(failure.code, asio::error::connection_refused) << failure.what;
  });
}

// A TLS server that never completes the handshake: the connect deadline ends the call.
TEST(HttpClient, ConnectDeadline) {
  TestServer server([](ServerConnection&) -> awaitable<void> { co_await sleep_for(std::chrono::hours(1)); });
  run_async([&]() -> awaitable<void> {
    ClientOptions options;
    options.connect_timeout = 300ms;
    Client client(pool, options);
    const auto started = clock::now();
    const std::string url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";
    Failure failure = co_await failure_of(client.request(url, make_request(bhttp::verb::get)));
    EXPECT_EQ(failure.code, make_error_code(errc::timed_out)) << failure.what;
    EXPECT_LT(clock::now() - started, 10 * options.connect_timeout);
  });
}

TEST(HttpClient, RequestDeadline) {
  TestServer server(never_answer);
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    auto started = clock::now();
    Failure failure =
        co_await failure_of(client.request(server.url(), make_request(bhttp::verb::get), clock::now() + 300ms));
    EXPECT_EQ(failure.code, make_error_code(errc::timed_out)) << failure.what;
    EXPECT_LT(clock::now() - started, 3s);

    ClientOptions options;
    options.request_timeout = 300ms;
    Client impatient(pool, options);
    started = clock::now();
    failure = co_await failure_of(impatient.request(server.url(), make_request(bhttp::verb::get)));
    EXPECT_EQ(failure.code, make_error_code(errc::timed_out)) << failure.what;
    EXPECT_LT(clock::now() - started, 3s);
  });
}

TEST(HttpClient, BodyAndHeaderLimits) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    while (auto req = co_await c.read_request()) {
      if (req->target() == "/big-body")
        co_await c.write(http_response(std::string(1000, 'x')));
      else
        co_await c.write(http_response("small", "X-Big: " + std::string(2000, 'y') + "\r\n"));
    }
  });
  run_async([&]() -> awaitable<void> {
    ClientOptions options;
    options.body_limit = 100;
    options.header_limit = 1024;
    Client client(pool, options);
    Failure body = co_await failure_of(client.request(server.url("/big-body"), make_request(bhttp::verb::get)));
    EXPECT_EQ(body.code, make_error_code(errc::payload_too_large)) << body.what;
    Failure header = co_await failure_of(client.request(server.url("/big-header"), make_request(bhttp::verb::get)));
    EXPECT_EQ(header.code, make_error_code(errc::payload_too_large)) << header.what;
  });
}

TEST(HttpClient, IdleTimeoutAndCloseIdleDropPooledConnections) {
  TestServer server(answer_with("ok"));
  run_async([&]() -> awaitable<void> {
    ClientOptions options;
    options.idle_timeout = 50ms;
    Client client(pool, options);
    co_await client.request(server.url(), make_request(bhttp::verb::get));
    co_await sleep_for(200ms);
    co_await client.request(server.url(), make_request(bhttp::verb::get));
    EXPECT_EQ(server.accepted(), 2);

    Client patient(pool);
    co_await patient.request(server.url(), make_request(bhttp::verb::get));
    patient.close_idle();
    co_await patient.request(server.url(), make_request(bhttp::verb::get));
    EXPECT_EQ(server.accepted(), 4);
  });
}

TEST(HttpClient, InvalidUrls) {
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    for (const char* url : {"not a url", "ftp://example.com/", "http:///path", "/relative"}) {
      Failure failure = co_await failure_of(client.request(url, make_request(bhttp::verb::get)));
      EXPECT_EQ(failure.code, make_error_code(errc::bad_message)) << url << ": " << failure.what;
    }
  });
}

// Cancelling the awaiting coroutine closes the connection (the server sees it) and the call
// ends with operation_aborted; the connection is not pooled.
TEST(HttpClient, CancellationClosesTheConnection) {
  std::atomic<int> received{0}, closed{0};
  TestServer server([&](ServerConnection& c) -> awaitable<void> {
    if (c.index() == 0) {
      while (auto req = co_await c.read_request()) ++received;
      ++closed;
      co_return;
    }
    while (auto req = co_await c.read_request()) co_await c.write(http_response("ok"));
  });
  run_async(
      [&]() -> awaitable<void> {
        Client client(pool);
        const std::string url = server.url();
        asio::cancellation_signal signal;
        auto strand = asio::make_strand(pool);
        std::atomic<bool> done{false};
        Failure failure;
        asio::co_spawn(strand, failure_of(client.request(url, make_request(bhttp::verb::get))),
                       asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr, Failure f) {
                         failure = std::move(f);
                         done = true;
                       }));
        CO_ASSERT_TRUE(co_await eventually([&] { return received.load() == 1; }));
        // Emitted on the strand of the coroutine it cancels, as Asio requires.
        asio::post(strand, [&] { signal.emit(asio::cancellation_type::terminal); });
        CO_ASSERT_TRUE(co_await eventually([&] { return done.load(); }));
        EXPECT_EQ(failure.code, asio::error::operation_aborted) << failure.what;
        CO_ASSERT_TRUE(co_await eventually([&] { return closed.load() == 1; }));
        Response res = co_await client.request(url, make_request(bhttp::verb::get));
        EXPECT_EQ(res.body(), "ok");
        EXPECT_EQ(server.accepted(), 2);
      },
      2);
}

// Reads body pieces until at least `size` bytes arrived.
awaitable<std::string> read_at_least(ResponseStream& stream, std::size_t size) {
  std::string got;
  while (got.size() < size) {
    const std::string_view piece = co_await stream.read_some();
    if (piece.empty()) break;
    got += piece;
  }
  co_return got;
}

TEST(HttpClient, OpenReadsBodyPiecesAsTheyArrive) {
  std::atomic<int> step{0};
  TestServer server([&](ServerConnection& c) -> awaitable<void> {
    if (auto req = co_await c.read_request(); !req) co_return;
    co_await c.write(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n");
    while (step.load() < 1) co_await sleep_for(2ms);
    co_await c.write("3\r\ntwo\r\n");
    while (step.load() < 2) co_await sleep_for(2ms);
    co_await c.write("0\r\n\r\n");
    co_await never_answer(c);
  });
  run_async(
      [&]() -> awaitable<void> {
        Client client(pool);
        auto stream = co_await client.open(server.url("/events"), make_request(bhttp::verb::get));
        EXPECT_EQ(stream->status(), 200u);
        EXPECT_EQ(stream->head()[bhttp::field::content_type], "text/event-stream");
        EXPECT_EQ(co_await read_at_least(*stream, 3), "one");
        step = 1;
        EXPECT_EQ(co_await read_at_least(*stream, 3), "two");
        step = 2;
        EXPECT_EQ(co_await stream->read_some(), "");
        EXPECT_EQ(co_await stream->read_some(), "");
      },
      2);
}

TEST(HttpClient, OpenWithContentLengthBody) {
  TestServer server(answer_with("abcdef"));
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    auto stream = co_await client.open(server.url(), make_request(bhttp::verb::get));
    EXPECT_EQ(co_await read_at_least(*stream, 100), "abcdef");
    EXPECT_EQ(co_await stream->read_some(), "");
  });
}

TEST(HttpClient, CloseFromAnotherThreadEndsAPendingRead) {
  std::atomic<int> closed{0};
  TestServer server([&](ServerConnection& c) -> awaitable<void> {
    if (auto req = co_await c.read_request(); !req) co_return;
    co_await c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    co_await never_answer(c);
    ++closed;
  });
  run_async(
      [&]() -> awaitable<void> {
        Client client(pool);
        auto stream = co_await client.open(server.url(), make_request(bhttp::verb::get));
        std::thread closer([&] {
          std::this_thread::sleep_for(100ms);
          stream->close();
        });
        Failure failure = co_await failure_of(stream->read_some());
        closer.join();
        EXPECT_EQ(failure.code, asio::error::operation_aborted) << failure.what;
        failure = co_await failure_of(stream->read_some());
        EXPECT_EQ(failure.code, asio::error::operation_aborted) << failure.what;
        EXPECT_TRUE(co_await eventually([&] { return closed.load() == 1; }));
      },
      2);
}

TEST(HttpClient, OpenHeaderDeadline) {
  TestServer server(never_answer);
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    const auto started = clock::now();
    Failure failure =
        co_await failure_of(client.open(server.url(), make_request(bhttp::verb::get), clock::now() + 300ms));
    EXPECT_EQ(failure.code, make_error_code(errc::timed_out)) << failure.what;
    EXPECT_LT(clock::now() - started, 3s);
  });
}

}  // namespace
}  // namespace patchbay::http
