// EventSource against scripted raw HTTP servers (test_support's TestServer, not patchbay's own
// server core): reconnection with Last-Event-ID, `retry:`, responses that fail the source for
// good, close() and cancellation at every stage, chunked and close-delimited bodies, the
// envelope flag, and 10,000 events through forced disconnects arriving exactly once, in order.
// Reconnection delays are tiny (or, where a test proves they are not waited for, huge); every
// wait is bounded by run_async's deadline, and no test asserts a timing.
#include <patchbay/error.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/event_source.hpp>
#include <patchbay/http/sse.hpp>

#include "test_support.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace patchbay::http {
namespace {

using namespace std::chrono_literals;
using namespace testing_support;
using boost::asio::experimental::awaitable_operators::operator||;

using Request = ServerConnection::Request;

// Requests the scripted servers saw, for assertions after the fact.
class RequestLog {
 public:
  void add(const Request& req) {
    std::lock_guard lock(mutex_);
    requests_.push_back(req);
  }
  std::vector<Request> all() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
};

std::string header(const Request& req, std::string_view name) {
  const auto v = req[boost::beast::string_view(name.data(), name.size())];
  return std::string(v.data(), v.size());
}

std::string target(const Request& req) { return std::string(req.target().data(), req.target().size()); }

// A close-delimited event-stream response head.
std::string stream_head(std::string_view extra_headers = {}, std::string_view content_type = "text/event-stream") {
  return "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(content_type) +
         "\r\nCache-Control: no-cache\r\nConnection: close\r\n" + std::string(extra_headers) + "\r\n";
}

std::string chunked_head() {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
}

std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + std::string(data) + "\r\n";
}

// Whether a request arrived. Every co_await in this file is a statement of its own, never part of
// a condition or an EXPECT_*, and takes no `?:` temporaries: g++ 12 miscompiles
// `while (co_await c.read_request())` and `co_await c.write(x ? a() : b())`.
awaitable<bool> next_request(ServerConnection& c) {
  const auto req = co_await c.read_request();
  co_return req.has_value();
}

// Serves nothing more until the client goes away.
awaitable<void> hold(ServerConnection& c) {
  for (;;) {
    const bool more = co_await next_request(c);
    if (!more) co_return;
  }
}

EventSourceOptions fast() {
  EventSourceOptions options;
  options.reconnect_delay = 1ms;
  options.max_backoff = 5ms;
  return options;
}

// Awaits `op` and returns the error code it threw (none if it did not throw).
template <typename T>
awaitable<boost::system::error_code> error_of(awaitable<T> op) {
  try {
    co_await std::move(op);
  } catch (const boost::system::system_error& e) {
    co_return e.code();
  }
  co_return boost::system::error_code();
}

TEST(EventSource, ReconnectsWithLastEventId) {
  RequestLog log;
  TestServer server([&log](ServerConnection& c) -> awaitable<void> {
    auto req = co_await c.read_request();
    if (!req) co_return;
    log.add(*req);
    co_await c.write(stream_head());
    if (c.index() == 0) {
      co_await c.write("retry: 1\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n");
      co_return;  // the server ends the stream
    }
    co_await c.write("id: 3\ndata: c\n\n");
    co_await hold(c);
  });
  run_async(
      [&]() -> awaitable<void> {
        Client client(pool);
        EventSource source(client, server.url("/events?x=1"), fast());
        std::vector<sse::Event> events;
        for (int i = 0; i < 3; ++i) {
          auto received = co_await source.next();
          events.push_back(std::move(received.event));
        }
        EXPECT_EQ(events[0].data, "a");
        EXPECT_EQ(events[0].last_event_id, "1");
        EXPECT_EQ(events[1].data, "b");
        EXPECT_EQ(events[2].data, "c");
        EXPECT_EQ(events[2].last_event_id, "3");
        EXPECT_EQ(events[2].type, "message");
        EXPECT_EQ(source.last_event_id(), "3");
        EXPECT_EQ(source.connections(), 2u);
        EXPECT_FALSE(source.envelope());
      },
      2);
  const auto requests = log.all();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& req : requests) {
    EXPECT_EQ(req.method(), boost::beast::http::verb::get);
    EXPECT_EQ(target(req), "/events?x=1");
    EXPECT_EQ(header(req, "Accept"), "text/event-stream");
    EXPECT_EQ(header(req, "Cache-Control"), "no-cache");
  }
  EXPECT_FALSE(requests[0].count("Last-Event-ID"));
  EXPECT_EQ(header(requests[1], "Last-Event-ID"), "2");
}

TEST(EventSource, SendsConfiguredLastEventIdAndHeaders) {
  RequestLog log;
  TestServer server([&log](ServerConnection& c) -> awaitable<void> {
    auto req = co_await c.read_request();
    if (!req) co_return;
    log.add(*req);
    co_await c.write(stream_head() + "data: x\n\n");
    co_await hold(c);
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    EventSourceOptions options = fast();
    options.last_event_id = "41";
    options.headers.add("Authorization", "Bearer t");
    options.headers.add("Accept", "text/event-stream, */*");
    EventSource source(client, server.url("/events"), options);
    const auto r1 = co_await source.next();
    EXPECT_EQ(r1.event.last_event_id, "41");
  });
  const auto requests = log.all();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(header(requests[0], "Last-Event-ID"), "41");
  EXPECT_EQ(header(requests[0], "Authorization"), "Bearer t");
  EXPECT_EQ(requests[0].count("Accept"), 1u);
  EXPECT_EQ(header(requests[0], "Accept"), "text/event-stream, */*");
}

TEST(EventSource, RetryFieldReplacesTheReconnectionTime) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    const bool asked = co_await next_request(c);
    if (!asked) co_return;
    co_await c.write(stream_head());
    if (c.index() == 0) {
      co_await c.write("retry: 5\ndata: a\n\n");
      co_return;
    }
    co_await c.write("data: b\n\n");
    co_await hold(c);
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    EventSourceOptions options;
    options.reconnect_delay = 1h;  // the test would time out waiting for it
    EventSource source(client, server.url("/"), options);
    const auto r2 = co_await source.next();
    EXPECT_EQ(r2.event.data, "a");
    EXPECT_EQ(source.reconnection_time(), 5ms);
    const auto r3 = co_await source.next();
    EXPECT_EQ(r3.event.data, "b");
  });
}

TEST(EventSource, FailedConnectionAttemptsAreRetried) {
  // The first connections end before any response byte (the client core may retry some of them
  // itself); the source keeps trying until a stream arrives.
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    const bool asked = co_await next_request(c);
    if (!asked) co_return;
    if (c.index() < 5) {
      c.reset();
      co_return;
    }
    co_await c.write(stream_head() + "data: finally\n\n");
    co_await hold(c);
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    EventSource source(client, server.url("/"), fast());
    const auto r4 = co_await source.next();
    EXPECT_EQ(r4.event.data, "finally");
    EXPECT_EQ(source.connections(), 1u);
  });
  EXPECT_EQ(server.accepted(), 6);
}

TEST(EventSource, StatusOtherThan200FailsForGood) {
  for (const char* status : {"204 No Content", "301 Moved Permanently", "404 Not Found", "503 Service Unavailable"}) {
    SCOPED_TRACE(status);
    RequestLog log;
    TestServer server([&log, status](ServerConnection& c) -> awaitable<void> {
      for (;;) {
        auto req = co_await c.read_request();
        if (!req) co_return;
        log.add(*req);
        co_await c.write(http_response("", "Content-Type: text/event-stream\r\nLocation: /elsewhere\r\n", status));
      }
    });
    run_async([&]() -> awaitable<void> {
      Client client(pool);
      EventSource source(client, server.url("/"), fast());
      try {
        co_await source.next();
        ADD_FAILURE() << "next() returned";
      } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), make_error_code(errc::unavailable));
        EXPECT_NE(std::string(e.what()).find(std::string(status).substr(0, 3)), std::string::npos) << e.what();
      }
      // Failed for good: no reconnection, however often it is asked.
      const auto ec10 = co_await error_of(source.next());
      EXPECT_EQ(ec10, make_error_code(errc::unavailable));
      const auto ec11 = co_await error_of(source.next());
      EXPECT_EQ(ec11, make_error_code(errc::unavailable));
      EXPECT_EQ(source.connections(), 0u);
    });
    EXPECT_EQ(log.size(), 1u);
  }
}

TEST(EventSource, WrongContentTypeFailsForGood) {
  for (const char* extra : {"Content-Type: text/plain\r\n", "Content-Type: text/event-streams\r\n", ""}) {
    SCOPED_TRACE(extra);
    RequestLog log;
    TestServer server([&log, extra](ServerConnection& c) -> awaitable<void> {
      auto req = co_await c.read_request();
      if (!req) co_return;
      log.add(*req);
      co_await c.write("HTTP/1.1 200 OK\r\n" + std::string(extra) + "Connection: close\r\n\r\ndata: x\n\n");
    });
    run_async([&]() -> awaitable<void> {
      Client client(pool);
      EventSource source(client, server.url("/"), fast());
      try {
        co_await source.next();
        ADD_FAILURE() << "next() returned";
      } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), make_error_code(errc::unavailable));
        EXPECT_NE(std::string(e.what()).find("Content-Type"), std::string::npos) << e.what();
      }
      const auto ec12 = co_await error_of(source.next());
      EXPECT_EQ(ec12, make_error_code(errc::unavailable));
    });
    EXPECT_EQ(log.size(), 1u);
  }
}

TEST(EventSource, ContentTypeParametersAndCaseAreAccepted) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    const bool asked = co_await next_request(c);
    if (!asked) co_return;
    co_await c.write(stream_head({}, " Text/Event-Stream ; charset=utf-8") + "data: x\n\n");
    co_await hold(c);
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    EventSource source(client, server.url("/"), fast());
    const auto r5 = co_await source.next();
    EXPECT_EQ(r5.event.data, "x");
  });
}

TEST(EventSource, ChunkedBodySplitAnywhere) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    const bool asked = co_await next_request(c);
    if (!asked) co_return;
    if (c.index() > 0) {
      co_await c.write(chunked_head());
      co_await hold(c);
      co_return;
    }
    co_await c.write(chunked_head() + chunk("\xEF\xBB"));
    co_await c.write(chunk("\xBFid: 1\nda"));
    co_await sleep_for(1ms);
    co_await c.write(chunk("ta: a\n\nid: 2\r"));
    co_await sleep_for(1ms);
    co_await c.write(chunk("\ndata: \xE2\x82") + chunk("\xAC\r\n\r\n"));
    co_await c.write("0\r\n\r\n");
    co_await hold(c);
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    EventSource source(client, server.url("/"), fast());
    const auto a = co_await source.next();
    EXPECT_EQ(a.event.data, "a");
    EXPECT_EQ(a.event.last_event_id, "1");
    const auto b = co_await source.next();
    EXPECT_EQ(b.event.data, "\xE2\x82\xAC");
    EXPECT_EQ(b.event.last_event_id, "2");
  });
}

TEST(EventSource, CloseDelimitedBody) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    const bool asked = co_await next_request(c);
    if (!asked) co_return;
    if (c.index() > 0) {
      co_await c.write(stream_head());
      co_await hold(c);
      co_return;
    }
    co_await c.write(stream_head() + "data: one\n");
    co_await sleep_for(1ms);
    co_await c.write("\ndata: two\r\n\r\ndata: cut off by the close\n");
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    EventSource source(client, server.url("/"), fast());
    const auto r6 = co_await source.next();
    EXPECT_EQ(r6.event.data, "one");
    const auto r7 = co_await source.next();
    EXPECT_EQ(r7.event.data, "two");
    // The unterminated third event is dropped (connection 1 sends nothing), and the source
    // reconnects.
    while (server.accepted() < 2) {
      const auto r = co_await (source.next() || sleep_for(100ms));
      EXPECT_EQ(r.index(), 1u);
    }
  });
}

TEST(EventSource, EnvelopeFlagPerConnection) {
  RequestLog log;
  Message msg(std::string_view("payload"));
  msg.id = "m-1";
  msg.headers.add("h", "v");
  TestServer server([&log, &msg](ServerConnection& c) -> awaitable<void> {
    auto req = co_await c.read_request();
    if (!req) co_return;
    log.add(*req);
    if (c.index() == 0) {
      co_await c.write(stream_head("X-Patchbay-Envelope: 1\r\n") + sse::encode(msg, "1", sse::Format::envelope));
      co_return;
    }
    co_await c.write(stream_head() + sse::encode(msg, "2", sse::Format::plain));
    co_await hold(c);
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    EventSourceOptions options = fast();
    options.envelope = true;
    EventSource source(client, server.url("/topics/t/events?from=x"), options);
    const auto first = co_await source.next();
    EXPECT_TRUE(first.envelope);
    const auto decoded = sse::decode(first.event, first.envelope);
    CO_ASSERT_TRUE(decoded && decoded->message);
    EXPECT_EQ(decoded->message->id, "m-1");
    EXPECT_EQ(decoded->message->headers, msg.headers);
    EXPECT_EQ(decoded->message->payload.view(), "payload");

    const auto second = co_await source.next();
    EXPECT_FALSE(second.envelope);
    EXPECT_FALSE(source.envelope());
    const auto plain = sse::decode(second.event, second.envelope);
    CO_ASSERT_TRUE(plain && plain->message);
    EXPECT_EQ(plain->message->payload.view(), "payload");
  });
  for (const auto& req : log.all()) {
    EXPECT_EQ(target(req), "/topics/t/events?from=x&envelope=1");
  }
}

TEST(EventSource, CloseBeforeFirstUse) {
  TestServer server(answer_with(""));
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    EventSource source(client, server.url("/"), fast());
    source.close();
    const auto ec13 = co_await error_of(source.next());
    EXPECT_EQ(ec13, make_error_code(errc::closed));
  });
  EXPECT_EQ(server.accepted(), 0);
}

TEST(EventSource, CloseFromAnotherThreadDuringTheReconnectionDelay) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    const bool asked = co_await next_request(c);
    if (!asked) co_return;
    co_await c.write(stream_head() + "data: a\n\n");
  });
  run_async(
      [&]() -> awaitable<void> {
        Client client(pool);
        EventSourceOptions options;
        options.reconnect_delay = 1h;
        EventSource source(client, server.url("/"), options);
        const auto r8 = co_await source.next();
        EXPECT_EQ(r8.event.data, "a");
        std::thread closer([&source] {
          std::this_thread::sleep_for(50ms);
          source.close();
        });
        const auto ec = co_await error_of(source.next());
        closer.join();
        EXPECT_EQ(ec, make_error_code(errc::closed));
        const auto ec14 = co_await error_of(source.next());
        EXPECT_EQ(ec14, make_error_code(errc::closed));
        EXPECT_EQ(source.connections(), 1u);
      },
      2);
  EXPECT_EQ(server.accepted(), 1);
}

TEST(EventSource, CloseFromAnotherThreadWhileReading) {
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    const bool asked = co_await next_request(c);
    if (!asked) co_return;
    co_await c.write(stream_head() + "data: a\n\n");
    co_await hold(c);
  });
  run_async(
      [&]() -> awaitable<void> {
        Client client(pool);
        EventSource source(client, server.url("/"), fast());
        const auto r9 = co_await source.next();
        EXPECT_EQ(r9.event.data, "a");
        std::thread closer([&source] {
          std::this_thread::sleep_for(50ms);
          source.close();
        });
        const auto ec = co_await error_of(source.next());
        closer.join();
        EXPECT_EQ(ec, make_error_code(errc::closed));
      },
      2);
}

TEST(EventSource, CloseFromAnotherThreadWhileConnecting) {
  // The server accepts but never answers: next() waits for the response head.
  TestServer server([](ServerConnection& c) -> awaitable<void> { co_await hold(c); });
  run_async(
      [&]() -> awaitable<void> {
        Client client(pool);
        EventSource source(client, server.url("/"), fast());
        std::thread closer([&source, &server] {
          while (server.accepted() == 0) std::this_thread::sleep_for(1ms);
          source.close();
        });
        const auto ec = co_await error_of(source.next());
        closer.join();
        EXPECT_EQ(ec, make_error_code(errc::closed));
      },
      2);
}

TEST(EventSource, CancelledNextLeavesTheSourceUsable) {
  // The first connection that asks for the stream stays silent; the next one (after the
  // cancelled read) has the event. Counted by requests, not by accepted connections: under load
  // a connect cancelled by the 20 ms timeout may still be accepted, without a request.
  std::atomic<int> asked_count{0};
  TestServer server([&asked_count](ServerConnection& c) -> awaitable<void> {
    const bool asked = co_await next_request(c);
    if (!asked) co_return;
    const int n = ++asked_count;
    co_await c.write(stream_head());
    if (n > 1) co_await c.write("id: 7\ndata: after\n\n");
    co_await hold(c);
  });
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    EventSourceOptions options;
    options.reconnect_delay = 1h;  // a cancelled read is no failure: no delay
    EventSource source(client, server.url("/"), options);
    // Time next() out until it has used the silent connection 0.
    do {
      const auto timed_out = co_await (source.next() || sleep_for(20ms));
      EXPECT_EQ(timed_out.index(), 1u);
    } while (asked_count.load() == 0);
    // Cancel it again at once, most likely while connecting; then let it finish.
    auto r = co_await (source.next() || sleep_for(0ms));
    if (r.index() == 1) r = co_await source.next();
    EXPECT_EQ(std::get<0>(r).event.data, "after");
    EXPECT_EQ(source.last_event_id(), "7");
  });
}

TEST(EventSource, TenThousandEventsThroughForcedDisconnectsArriveOnceInOrder) {
  constexpr int total = 10000;
  // Each connection resumes after Last-Event-ID, sends a varying number of events (sometimes
  // chunked, in pieces split mid-event), may end with a half-written event, and closes.
  TestServer server([](ServerConnection& c) -> awaitable<void> {
    auto req = co_await c.read_request();
    if (!req) co_return;
    const std::string last = header(*req, "Last-Event-ID");
    const int first = last.empty() ? 1 : std::stoi(last) + 1;
    const bool chunked = c.index() % 3 == 1;
    const std::string head = chunked ? chunked_head() : stream_head();
    co_await c.write(head);
    if (first > total) {
      co_await hold(c);
      co_return;
    }
    const int count = 1 + (c.index() * 7919) % 300;
    std::string body;
    for (int i = first; i < first + count && i <= total; ++i)
      body += "id: " + std::to_string(i) + "\ndata: event " + std::to_string(i) + "\n\n";
    if (c.index() % 2 == 1) body += "id: " + std::to_string(first + count) + "\ndata: half";
    // Written in three pieces, split at arbitrary points.
    const std::string_view all = body;
    const std::size_t cut1 = std::min(all.size(), all.size() / 3 + c.index() % 5);
    const std::size_t cut2 = std::max(cut1, std::min(all.size(), 2 * all.size() / 3 + 1));
    for (const auto piece : {all.substr(0, cut1), all.substr(cut1, cut2 - cut1), all.substr(cut2)}) {
      if (piece.empty()) continue;
      const std::string bytes = chunked ? chunk(piece) : std::string(piece);
      co_await c.write(bytes);
    }
    if (chunked && c.index() % 2 == 0) co_await c.write("0\r\n\r\n");
    if (c.index() % 4 == 3) c.reset();
  });
  run_async(
      [&]() -> awaitable<void> {
        Client client(pool);
        EventSource source(client, server.url("/events"), fast());
        for (int i = 1; i <= total; ++i) {
          const auto r = co_await source.next();
          const std::string expected = "event " + std::to_string(i);
          if (r.event.data != expected || r.event.last_event_id != std::to_string(i)) {
            ADD_FAILURE() << "event " << i << ": got data '" << r.event.data << "' id '" << r.event.last_event_id << "'";
            co_return;
          }
        }
        EXPECT_GT(source.connections(), 30u);
      },
      2);
}

}  // namespace
}  // namespace patchbay::http
