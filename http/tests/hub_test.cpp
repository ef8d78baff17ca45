// Tests of the hub: rings, positions and gaps through cursors and local subscriptions, and its
// HTTP face over real sockets — POST /topics/{topic}, the SSE endpoint (retry, ids, resume
// with Last-Event-ID, the gap event, unknown topics, heartbeats), a client that stops reading
// being cut at the send-buffer cap without slowing a normal reader, and 10,000 events read by
// the EventSource client through forced disconnects, exactly once and in order.
#include <patchbay/http/hub.hpp>

#include <patchbay/http/client.hpp>
#include <patchbay/http/event_source.hpp>
#include <patchbay/http/server.hpp>
#include <patchbay/http/sse.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <future>
#include <thread>

namespace patchbay::http {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

TEST(HubCursor, ReadsInOrderAndReportsAGapWhenTheRingMovedOn) {
  asio::io_context io;
  HubOptions o;
  o.history = 4;
  o.heartbeat = duration::zero();
  auto hub = Hub::create(io.get_executor(), o);
  auto cursor = hub->open("t", Position::earliest(), UnknownPosition::from_latest, true);
  ASSERT_TRUE(cursor);
  for (int i = 0; i < 3; ++i) hub->publish("t", Message("m" + std::to_string(i)));
  auto b = cursor->read(10);
  ASSERT_FALSE(b.gap);
  ASSERT_EQ(b.entries.size(), 3u);
  EXPECT_EQ(b.entries[2]->message.payload.str(), "m2");
  const std::string third = b.entries[2]->position;
  for (int i = 3; i < 12; ++i) hub->publish("t", Message("m" + std::to_string(i)));
  b = cursor->read(10);
  ASSERT_TRUE(b.gap);
  EXPECT_EQ(b.gap->missed, 5u);  // m3..m7 are gone; m8..m11 remain
  EXPECT_EQ(b.gap->last_seen, Position::after(third));
  ASSERT_EQ(b.entries.size(), 4u);
  EXPECT_EQ(b.entries[0]->message.payload.str(), "m8");
}

TEST(HubCursor, ResumesAfterAPositionAndTreatsForeignOnesAsUnknown) {
  asio::io_context io;
  HubOptions o;
  o.heartbeat = duration::zero();
  auto hub = Hub::create(io.get_executor(), o);
  std::vector<std::string> positions;
  for (int i = 0; i < 5; ++i) positions.push_back(hub->publish("t", Message("m" + std::to_string(i))));
  auto c = hub->open("t", Position::after(positions[1]), UnknownPosition::from_latest, false);
  auto b = c->read(10);
  ASSERT_EQ(b.entries.size(), 3u);
  EXPECT_EQ(b.entries[0]->message.payload.str(), "m2");

  for (std::string bad : {"garbage", "1:2", "", ":", "99999999999999999999999:1"}) {
    auto u = hub->open("t", Position::after(bad), UnknownPosition::from_latest, false);
    auto ub = u->read(10);
    ASSERT_TRUE(ub.gap) << bad;
    EXPECT_FALSE(ub.gap->reason.empty());
    EXPECT_TRUE(ub.entries.empty()) << bad << ": from_latest starts after the newest message";
  }
  auto e = hub->open("t", Position::after("1:2"), UnknownPosition::from_earliest, false);
  auto eb = e->read(10);
  ASSERT_TRUE(eb.gap);
  EXPECT_EQ(eb.entries.size(), 5u);
  EXPECT_FALSE(hub->open("unknown", Position::latest(), UnknownPosition::from_latest, false));
}

TEST(HubCursor, BacklogWatchFiresOnceWhenAReaderFallsTooFarBehind) {
  asio::io_context io;
  HubOptions o;
  o.heartbeat = duration::zero();
  auto hub = Hub::create(io.get_executor(), o);
  auto c = hub->open("t", Position::latest(), UnknownPosition::from_latest, true);
  int fired = 0;
  c->watch_backlog(10'000, [&] { ++fired; });
  for (int i = 0; i < 5; ++i) hub->publish("t", Message(std::string(1000, 'x')));
  EXPECT_EQ(fired, 0);
  c->read(100);  // caught up
  for (int i = 0; i < 20; ++i) hub->publish("t", Message(std::string(1000, 'x')));
  EXPECT_EQ(fired, 1);
}

/// A hub on a server, with raw socket clients.
class HubHttp : public ::testing::Test {
 protected:
  void start(HubOptions options) {
    auto s = Server::create(io_.get_executor(), ServerOptions());
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *s;
    hub_ = Hub::create(io_.get_executor(), std::move(options));
    hub_->mount(*server_);
    server_->start();
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) {
      hub_->stop();
      std::promise<void> done;
      asio::co_spawn(io_, server_->stop(), [&](std::exception_ptr) { done.set_value(); });
      done.get_future().wait();
    }
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  tcp::socket connect(int receive_buffer = 0) {
    tcp::socket s(client_io_);
    s.open(tcp::v4());
    if (receive_buffer) s.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    timeval tv{30, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return s;
  }

  /// Opens an event stream and returns the socket and a parser fed by `pump`.
  struct EventStream {
    explicit EventStream(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    sse::Parser parser;
    std::vector<sse::Event> events;
    std::string head;
    std::vector<std::uint64_t> retries;
    std::vector<std::string> comments;
    std::atomic<std::size_t> received{0};

    /// Reads until `n` events arrived in total (false if the server closed first).
    bool pump_until(std::size_t n, std::size_t comments_wanted = 0) {
      char buf[4096];
      while (events.size() < n || comments.size() < comments_wanted) {
        boost::system::error_code ec;
        auto got = socket.read_some(asio::buffer(buf), ec);
        if (ec) return false;
        std::string_view chunk(buf, got);
        if (head.empty() || head.find("\r\n\r\n") == std::string::npos) {
          head.append(chunk);
          auto end = head.find("\r\n\r\n");
          if (end == std::string::npos) continue;
          chunk = std::string_view(head).substr(end + 4);
          parser.feed(chunk);
          head.resize(end + 4);
          continue;
        }
        parser.feed(chunk);
      }
      return true;
    }
  };

  std::unique_ptr<EventStream> open_events(std::string target, std::string extra_headers = "") {
    auto es = std::make_unique<EventStream>(connect());
    auto* p = es.get();
    p->parser.on_event = [p](sse::Event&& e) {
      p->events.push_back(std::move(e));
      ++p->received;
    };
    p->parser.on_retry = [p](std::uint64_t ms) { p->retries.push_back(ms); };
    p->parser.on_comment = [p](std::string_view c) { p->comments.emplace_back(c); };
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n" + extra_headers + "\r\n";
    asio::write(p->socket, asio::buffer(req));
    return es;
  }

  std::string post(std::string target, std::string body, std::string headers = "") {
    auto s = connect();
    std::string req = "POST " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n" + headers + "\r\n" + body;
    asio::write(s, asio::buffer(req));
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

  /// Runs a client coroutine on its own io_context (with a deadline of 120 s) until it ends.
  void run_client(std::function<awaitable<void>()> body) {
    asio::io_context io;
    std::exception_ptr failure;
    bool finished = false;
    asio::co_spawn(asio::make_strand(io), body(), [&](std::exception_ptr e) {
      failure = e;
      finished = true;
    });
    io.run_for(std::chrono::seconds(120));
    ASSERT_TRUE(finished) << "the client did not finish within 120 s";
    if (failure) std::rethrow_exception(failure);
  }

  void wait_for(const std::function<bool()>& condition) {
    for (int i = 0; i < 60'000 && !condition(); ++i) std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(condition());
  }

  asio::io_context io_{2};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{io_.get_executor()};
  asio::io_context client_io_;
  std::vector<std::thread> threads_;
  std::shared_ptr<Server> server_;
  std::shared_ptr<Hub> hub_;
};

TEST_F(HubHttp, EventStreamCarriesRetryIdsAndPlainTextData) {
  HubOptions o;
  o.topics = {"news"};
  o.sse_retry = 1500ms;
  start(o);
  auto es = open_events("/topics/news/events");
  wait_for([&] { return hub_->sse_connections() == 1; });
  auto p1 = hub_->publish("news", Message("hello"));
  auto p2 = hub_->publish("news", Message("two\nlines"));
  ASSERT_TRUE(es->pump_until(2));
  EXPECT_NE(es->head.find("Content-Type: text/event-stream"), std::string::npos) << es->head;
  EXPECT_NE(es->head.find("Cache-Control: no-cache"), std::string::npos);
  ASSERT_EQ(es->retries, std::vector<std::uint64_t>{1500});
  EXPECT_EQ(es->events[0].data, "hello");
  EXPECT_EQ(es->events[0].type, "message");
  EXPECT_EQ(es->events[0].last_event_id, p1);
  EXPECT_EQ(es->events[1].data, "two\nlines");
  EXPECT_EQ(es->events[1].last_event_id, p2);
}

TEST_F(HubHttp, LastEventIdResumesFromHistoryAndAGapSaysWhatIsGone) {
  HubOptions o;
  o.topics = {"t"};
  o.history = 5;
  start(o);
  std::vector<std::string> pos;
  for (int i = 0; i < 3; ++i) pos.push_back(hub_->publish("t", Message("m" + std::to_string(i))));
  auto resumed = open_events("/topics/t/events", "Last-Event-ID: " + pos[0] + "\r\n");
  ASSERT_TRUE(resumed->pump_until(2));
  EXPECT_EQ(resumed->events[0].data, "m1");
  EXPECT_EQ(resumed->events[1].data, "m2");

  for (int i = 3; i < 20; ++i) hub_->publish("t", Message("m" + std::to_string(i)));
  auto late = open_events("/topics/t/events?last_event_id=" + pos[0]);
  ASSERT_TRUE(late->pump_until(6));
  EXPECT_EQ(late->events[0].type, "gap");
  auto gap = sse::decode(late->events[0], false);
  ASSERT_TRUE(gap && gap->gap);
  EXPECT_EQ(gap->gap->missed, 14u);  // m1..m14 are gone, m15..m19 remain
  EXPECT_EQ(late->events[1].data, "m15");

  for (std::string bad : {"nonsense", "1:1"}) {
    auto unknown = open_events("/topics/t/events", "Last-Event-ID: " + bad + "\r\n");
    ASSERT_TRUE(unknown->pump_until(1));
    EXPECT_EQ(unknown->events[0].type, "gap") << bad;
    wait_for([&] { return hub_->sse_connections() >= 1; });
    hub_->publish("t", Message("now " + bad));
    ASSERT_TRUE(unknown->pump_until(2));
    EXPECT_EQ(unknown->events[1].data, "now " + bad) << "an unknown id starts from now";
  }
}

TEST_F(HubHttp, PublishOverHttpReachesEventStreamsWithHeadersInTheEnvelope) {
  HubOptions o;
  o.topics = {"t"};
  start(o);
  auto es = open_events("/topics/t/events?envelope=1");
  wait_for([&] { return hub_->sse_connections() == 1; });
  auto answer = post("/topics/t", "payload\r\nwith CR", "X-Trace: abc\r\nPatchbay-Message-Id: id-1\r\n");
  ASSERT_EQ(answer.substr(0, 15), "HTTP/1.1 200 OK") << answer;
  EXPECT_NE(answer.find("\"id\":\"id-1\""), std::string::npos) << answer;
  ASSERT_TRUE(es->pump_until(1));
  EXPECT_NE(es->head.find("X-Patchbay-Envelope: 1"), std::string::npos);
  auto d = sse::decode(es->events[0], true);
  ASSERT_TRUE(d && d->message);
  EXPECT_EQ(d->message->payload.str(), "payload\r\nwith CR");
  EXPECT_EQ(d->message->id, "id-1");
  EXPECT_EQ(d->message->headers.get("X-Trace"), "abc");
  EXPECT_FALSE(d->message->headers.contains("Content-Length"));
}

TEST_F(HubHttp, UnknownTopicsGet404UnlessTopicsAreOpen) {
  HubOptions o;
  o.topics = {"known"};
  start(o);
  EXPECT_EQ(post("/topics/unknown", "x").substr(0, 22), "HTTP/1.1 404 Not Found");
  auto es = open_events("/topics/unknown/events");
  char buf[256];
  auto n = es->socket.read_some(asio::buffer(buf));
  EXPECT_EQ(std::string_view(buf, n).substr(0, 22), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(post("/topics/known", "x").substr(0, 15), "HTTP/1.1 200 OK");
}

TEST_F(HubHttp, HeartbeatCommentsKeepIdleStreamsAlive) {
  HubOptions o;
  o.topics = {"t"};
  o.heartbeat = 50ms;
  start(o);
  auto es = open_events("/topics/t/events");
  ASSERT_TRUE(es->pump_until(0, 3));
  EXPECT_EQ(es->comments[0], " heartbeat");
}

TEST_F(HubHttp, AClientThatStopsReadingIsCutAtTheBufferCapWithoutSlowingOthers) {
  HubOptions o;
  o.topics = {"t"};
  o.send_buffer = 256 * 1024;
  o.history = 100'000;
  start(o);
  auto stalled = open_events("/topics/t/events", "");
  auto reader = open_events("/topics/t/events", "");
  wait_for([&] { return hub_->sse_connections() == 2; });
  // The stalled client never reads; the reader keeps up (the publisher stays within 100
  // messages of it, well inside the cap).
  const std::string payload(1000, 'p');
  const int n = 20'000;  // 20 MB: far past the cap and any socket buffer
  std::thread publisher([&] {
    for (int i = 0; i < n; ++i) {
      while (i - static_cast<int>(reader->received.load()) > 100) std::this_thread::yield();
      hub_->publish("t", Message(payload));
    }
  });
  ASSERT_TRUE(reader->pump_until(n));
  publisher.join();
  // The stalled connection was closed by the server: reading it ends (after what was buffered).
  std::string head;
  char buf[65536];
  boost::system::error_code ec;
  std::size_t total = 0;
  while (!ec) total += stalled->socket.read_some(asio::buffer(buf), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_LT(total, 20'000'000u);
  wait_for([&] { return hub_->sse_connections() == 1; });
}

}  // namespace
}  // namespace patchbay::http

namespace patchbay::http {
namespace {

TEST(HubSubscribe, LocalSubscriptionsReceiveWhatIsPublishedAfterThem) {
  asio::io_context io(2);
  HubOptions o;
  o.heartbeat = duration::zero();
  auto hub = Hub::create(io.get_executor(), o);
  std::vector<std::string> got;
  asio::co_spawn(
      asio::make_strand(io),
      [&]() -> awaitable<void> {
        auto sub = hub->subscribe("t", Position::latest());
        asio::co_spawn(
            asio::make_strand(io),
            [&]() -> awaitable<void> {
              for (int i = 0; i < 3; ++i) hub->publish("t", Message("m" + std::to_string(i)));
              co_return;
            },
            asio::detached);
        for (int i = 0; i < 3; ++i) {
          auto d = co_await sub.next();
          if (!d) break;
          got.push_back(d->message().payload.str());
        }
      },
      asio::detached);
  std::thread t([&] { io.run_for(std::chrono::seconds(30)); });
  io.run_for(std::chrono::seconds(30));
  t.join();
  EXPECT_EQ(got, (std::vector<std::string>{"m0", "m1", "m2"}));
}

}  // namespace
}  // namespace patchbay::http

namespace patchbay::http {
namespace {

// 10,000 events through forced disconnects: the hub drops every event stream again and again
// while a publisher runs; the EventSource reconnects with Last-Event-ID each time. Every event
// must arrive exactly once and in order.
TEST_F(HubHttp, TenThousandEventsThroughForcedDisconnectsArriveExactlyOnceInOrder) {
  HubOptions o;
  o.topics = {"t"};
  o.history = 20'000;
  start(o);
  constexpr int n = 10'000;
  std::atomic<int> published{0};
  std::atomic<bool> publishing_done{false};
  std::thread publisher([&] {
    for (int i = 0; i < n; ++i) {
      hub_->publish("t", Message(std::to_string(i)));
      published = i + 1;
      if (i % 50 == 0) std::this_thread::yield();
    }
    publishing_done = true;
  });
  std::thread dropper([&] {
    // Drop every stream each time another ~500 messages went out, until the end.
    int last = 0;
    while (!publishing_done) {
      if (published - last >= 500) {
        last = published;
        hub_->drop_connections();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });

  std::vector<int> got;
  std::uint64_t connections = 0;
  run_client([&]() -> awaitable<void> {
    Client client(co_await asio::this_coro::executor);
    EventSourceOptions options;
    options.reconnect_delay = std::chrono::milliseconds(5);
    options.max_backoff = std::chrono::milliseconds(50);
    options.envelope = true;
    options.last_event_id = "";
    EventSource source(client, server_->url() + "/topics/t/events?from=earliest", options);
    while (got.size() < static_cast<std::size_t>(n)) {
      auto ev = co_await source.next();
      auto decoded = sse::decode(ev.event, ev.envelope);
      if (!decoded || !decoded->message) continue;
      got.push_back(std::stoi(decoded->message->payload.str()));
    }
    connections = source.connections();
    source.close();
  });
  publisher.join();
  dropper.join();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(got[i], i) << "at " << i;
  EXPECT_GT(connections, 1u) << "the streams were never dropped: the test proved nothing";
}

}  // namespace
}  // namespace patchbay::http
