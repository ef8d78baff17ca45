// Tests of the hub's WebSocket endpoint (GET /topics/{topic}/ws) with raw Beast WebSocket
// clients (synchronous, on the test thread, with socket receive timeouts so that nothing hangs):
// subscribe, publish and its "published" answer, resume from a position, the gap frame, the
// close codes (1009 oversized, 1007 invalid UTF-8, 1003 binary, 1008 not a publish frame, 1001
// when the hub or the server stops), pings and a client that never answers them, a client that
// never reads being cut at the cap, plain HTTP answers (426, 404, 400, 503), and many clients
// connecting at once beyond max_connections (101 or 503 with Retry-After, never a crash).
#include <patchbay/http/hub.hpp>

#include <patchbay/http/server.hpp>
#include <patchbay/http/websocket.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <functional>
#include <future>
#include <thread>

namespace patchbay::http {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
namespace beast = boost::beast;
namespace bws = boost::beast::websocket;

void set_timeout(tcp::socket& s, int seconds = 30) {
  timeval tv{seconds, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/// A synchronous client connection.
struct Client {
  explicit Client(asio::io_context& io) : ws(io) {}
  bws::stream<tcp::socket> ws;
  beast::flat_buffer buffer;

  /// The next text frame, decoded; std::nullopt on a closed connection (see closed()).
  std::optional<websocket::Frame> next() {
    buffer.clear();
    boost::system::error_code ec;
    ws.read(buffer, ec);
    if (ec) {
      error = ec;
      return std::nullopt;
    }
    auto f = websocket::decode(beast::buffers_to_string(buffer.data()));
    EXPECT_TRUE(f) << beast::buffers_to_string(buffer.data());
    return f;
  }
  /// The next frame that is not of type `skip`.
  std::optional<websocket::Frame> next_except(websocket::Frame::Type skip) {
    for (;;) {
      auto f = next();
      if (!f || f->type != skip) return f;
    }
  }
  void send(std::string_view text) { ws.write(asio::buffer(text.data(), text.size())); }
  /// Reads until the connection ends; the close code the server sent (0: none).
  std::uint16_t close_code() {
    for (;;) {
      buffer.clear();
      boost::system::error_code ec;
      ws.read(buffer, ec);
      if (ec) {
        error = ec;
        return static_cast<std::uint16_t>(ws.reason().code);
      }
    }
  }
  boost::system::error_code error;
};

class HubWebSocket : public ::testing::Test {
 protected:
  void start(HubOptions options, ServerOptions server_options = ServerOptions()) {
    auto s = Server::create(io_.get_executor(), std::move(server_options));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *s;
    hub_ = Hub::create(io_.get_executor(), std::move(options));
    hub_->mount(*server_);
    server_->start();
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  void stop_server() {
    if (!server_ || server_stopped_) return;
    server_stopped_ = true;
    std::promise<void> done;
    asio::co_spawn(io_, server_->stop(), [&](std::exception_ptr) { done.set_value(); });
    ASSERT_EQ(done.get_future().wait_for(60s), std::future_status::ready) << "server stop hangs";
  }
  void TearDown() override {
    if (server_) {
      hub_->stop();
      stop_server();
    }
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  std::unique_ptr<Client> open(std::string target, int receive_buffer = 0) {
    auto c = std::make_unique<Client>(client_io_);
    auto& s = c->ws.next_layer();
    s.open(tcp::v4());
    if (receive_buffer) s.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    set_timeout(s);
    c->ws.handshake("127.0.0.1", target);
    return c;
  }

  /// A raw HTTP request and its whole answer (the connection closes after it).
  std::string raw(std::string request) {
    tcp::socket s(client_io_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    set_timeout(s);
    asio::write(s, asio::buffer(request));
    std::string out;
    char buf[4096];
    for (;;) {
      boost::system::error_code ec;
      auto n = s.read_some(asio::buffer(buf), ec);
      out.append(buf, n);
      if (ec || out.find("\r\n\r\n") != std::string::npos) break;
    }
    return out;
  }

  static std::string upgrade_request(std::string target) {
    return "GET " + target +
           " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  }

  static HubOptions options() {
    HubOptions o;
    o.topics = {"t"};
    o.heartbeat = duration::zero();
    return o;
  }

  /// Waits (at most 30 s) until `cond` holds.
  template <typename Cond>
  static bool eventually(Cond cond) {
    const auto until = clock::now() + 30s;
    while (!cond()) {
      if (clock::now() > until) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  asio::io_context io_{2};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  asio::io_context client_io_;
  std::shared_ptr<Server> server_;
  std::shared_ptr<Hub> hub_;
  bool server_stopped_ = false;
};

using Type = websocket::Frame::Type;

TEST(WebSocketCodec, FramesRoundTrip) {
  Message m("hello \xff");
  m.id = "id-1";
  m.headers.add("k", "v");
  auto f = websocket::decode(websocket::encode_message(m, "7:3"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->type, Type::message);
  EXPECT_EQ(f->position, "7:3");
  EXPECT_EQ(f->message->payload.str(), "hello \xff");
  EXPECT_EQ(f->message->id, "id-1");
  EXPECT_EQ(f->message->headers.get("k").value_or(""), std::string_view("v"));

  auto p = websocket::decode(websocket::encode_publish(m));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->type, Type::publish);
  auto a = websocket::decode(websocket::encode_published("x", "1:2"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type, Type::published);
  EXPECT_EQ(a->id, "x");
  EXPECT_EQ(a->position, "1:2");
  auto e = websocket::decode(websocket::encode_error("x", "no"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error, "no");
  Gap g;
  g.missed = 3;
  g.reason = "history trimmed";
  auto gf = websocket::decode(websocket::encode_gap(g));
  ASSERT_TRUE(gf && gf->gap);
  EXPECT_EQ(gf->gap->missed, 3u);

  EXPECT_FALSE(websocket::decode("not json"));
  EXPECT_FALSE(websocket::decode("[1]"));
  EXPECT_FALSE(websocket::decode(R"({"type":1})"));
  auto u = websocket::decode(R"({"type":"other"})");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->type, Type::unknown);
}

TEST_F(HubWebSocket, SubscribesAndReceivesMessagesInOrder) {
  start(options());
  auto c = open("/topics/t/ws");
  std::vector<std::string> positions;
  for (int i = 0; i < 5; ++i) positions.push_back(hub_->publish("t", Message("m" + std::to_string(i))));
  for (int i = 0; i < 5; ++i) {
    auto f = c->next();
    ASSERT_TRUE(f) << c->error.message();
    EXPECT_EQ(f->type, Type::message);
    EXPECT_EQ(f->message->payload.str(), "m" + std::to_string(i));
    EXPECT_EQ(f->position, positions[i]);
  }
}

TEST_F(HubWebSocket, PublishIsAnsweredWithItsPosition) {
  start(options());
  auto c = open("/topics/t/ws");
  auto other = open("/topics/t/ws");
  c->send(R"({"type":"publish","id":"p1","headers":[["k","v"]],"payload":"hello"})");
  auto answer = c->next_except(Type::message);
  ASSERT_TRUE(answer) << c->error.message();
  EXPECT_EQ(answer->type, Type::published);
  EXPECT_EQ(answer->id, "p1");
  EXPECT_FALSE(answer->position.empty());
  auto got = other->next();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->message->payload.str(), "hello");
  EXPECT_EQ(got->message->id, "p1");
  EXPECT_EQ(got->message->headers.get("k").value_or(""), std::string_view("v"));
  EXPECT_EQ(got->position, answer->position);

  // Without an id, one is generated and returned.
  c->send(R"({"type":"publish","payload_base64":"AAE="})");
  auto second = c->next_except(Type::message);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->type, Type::published);
  EXPECT_FALSE(second->id.empty());
  auto bin = other->next();
  ASSERT_TRUE(bin);
  EXPECT_EQ(bin->message->payload.str(), std::string("\0\1", 2));
}

TEST_F(HubWebSocket, LongMessagesArriveWhole) {
  start(options());
  auto c = open("/topics/t/ws");
  for (std::size_t size : {10u, 63u, 64u, 65u, 4000u, 4200u, 100'000u, 900'000u}) {
    std::string payload(size, 'a');
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i % 26);
    c->send(R"({"type":"publish","payload":")" + payload + "\"}");
    auto answer = c->next_except(Type::message);
    ASSERT_TRUE(answer) << size << ": " << c->error.message();
    EXPECT_EQ(answer->type, Type::published) << size;
  }
  auto check = hub_->open("t", Position::earliest(), UnknownPosition::from_latest, false);
  auto batch = check->read(100);
  ASSERT_EQ(batch.entries.size(), 8u);
  EXPECT_EQ(batch.entries[7]->message.payload.size(), 900'000u);
  EXPECT_EQ(batch.entries[7]->message.payload.str().substr(26, 3), "abc");
}

TEST_F(HubWebSocket, ResumesAfterAPositionAndFromTheEarliest) {
  start(options());
  std::vector<std::string> positions;
  for (int i = 0; i < 5; ++i) positions.push_back(hub_->publish("t", Message("m" + std::to_string(i))));
  auto c = open("/topics/t/ws?after=" + positions[1]);
  for (int i = 2; i < 5; ++i) {
    auto f = c->next();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->message->payload.str(), "m" + std::to_string(i));
  }
  auto e = open("/topics/t/ws?from=earliest");
  auto f = e->next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->message->payload.str(), "m0");
}

TEST_F(HubWebSocket, AGapFrameTellsWhatTheHistoryNoLongerHolds) {
  auto o = options();
  o.history = 4;
  start(o);
  std::vector<std::string> positions;
  for (int i = 0; i < 10; ++i) positions.push_back(hub_->publish("t", Message("m" + std::to_string(i))));
  auto c = open("/topics/t/ws?after=" + positions[0]);
  auto g = c->next();
  ASSERT_TRUE(g);
  ASSERT_EQ(g->type, Type::gap);
  EXPECT_EQ(g->gap->missed, 5u);  // m1..m5 are gone
  EXPECT_EQ(g->gap->last_seen, Position::after(positions[0]));
  auto f = c->next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->message->payload.str(), "m6");

  // A well-formed position of another epoch: a gap, then what follows from now.
  auto foreign = open("/topics/t/ws?after=1:1");
  auto fg = foreign->next();
  ASSERT_TRUE(fg);
  EXPECT_EQ(fg->type, Type::gap);
  EXPECT_EQ(fg->gap->reason, "epoch changed");
}

TEST_F(HubWebSocket, PlainRequestsGetClearAnswers) {
  auto o = options();
  o.cors_origin = "*";
  start(o);
  auto not_upgrade = raw("GET /topics/t/ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(not_upgrade.find("426"), std::string::npos) << not_upgrade;
  EXPECT_NE(not_upgrade.find("Access-Control-Allow-Origin: *"), std::string::npos) << not_upgrade;
  auto unknown = raw(upgrade_request("/topics/nope/ws"));
  EXPECT_NE(unknown.find("404"), std::string::npos) << unknown;
  for (std::string bad : {"garbage", "-1", "1:-2", "1:", ":5", "99999999999999999999999:1"}) {
    auto r = raw(upgrade_request("/topics/t/ws?after=" + bad));
    EXPECT_NE(r.find("400"), std::string::npos) << bad << ": " << r;
  }
  auto ok = raw(upgrade_request("/topics/t/ws"));
  EXPECT_NE(ok.find("101"), std::string::npos) << ok;
  EXPECT_NE(ok.find("Access-Control-Allow-Origin: *"), std::string::npos) << ok;
  hub_->stop();
  auto stopped = raw(upgrade_request("/topics/t/ws"));
  EXPECT_NE(stopped.find("503"), std::string::npos) << stopped;
}

TEST_F(HubWebSocket, AnOversizedMessageIsClosedWith1009) {
  auto o = options();
  o.websocket.max_message = 1024;
  start(o);
  auto c = open("/topics/t/ws");
  c->send(R"({"type":"publish","payload":")" + std::string(2000, 'x') + "\"}");
  EXPECT_EQ(c->close_code(), 1009) << c->error.message();
  // The connection is gone and nothing was published.
  EXPECT_TRUE(eventually([&] { return server_->stats().connections_open == 0; }));
}

TEST_F(HubWebSocket, InvalidUtf8InATextMessageIsClosedWith1007) {
  start(options());
  auto c = open("/topics/t/ws");
  c->send("{\"type\":\"publish\",\"payload\":\"\xff\xfe\"}");
  EXPECT_EQ(c->close_code(), 1007) << c->error.message();
}

TEST_F(HubWebSocket, ABinaryMessageIsClosedWith1003) {
  start(options());
  auto c = open("/topics/t/ws");
  c->ws.binary(true);
  c->send(R"({"type":"publish","payload":"x"})");
  EXPECT_EQ(c->close_code(), 1003) << c->error.message();
}

TEST_F(HubWebSocket, AFrameThatIsNotAPublishIsClosedWith1008) {
  start(options());
  for (std::string bad : {"not json", "[1,2]", R"({"type":"subscribe"})", R"({"type":"publish","headers":7})"}) {
    auto c = open("/topics/t/ws");
    c->send(bad);
    EXPECT_EQ(c->close_code(), 1008) << bad << ": " << c->error.message();
    EXPECT_FALSE(c->ws.reason().reason.empty());
  }
}

TEST_F(HubWebSocket, StoppingTheHubClosesWith1001) {
  start(options());
  auto c = open("/topics/t/ws");
  auto d = open("/topics/t/ws");
  hub_->stop();
  EXPECT_EQ(c->close_code(), 1001) << c->error.message();
  EXPECT_EQ(d->close_code(), 1001) << d->error.message();
}

TEST_F(HubWebSocket, StoppingTheServerClosesWith1001AndDoesNotHang) {
  start(options());
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(open("/topics/t/ws"));
  hub_->publish("t", Message("x"));
  for (auto& c : clients) ASSERT_TRUE(c->next());
  stop_server();  // the hub still runs
  for (auto& c : clients) EXPECT_EQ(c->close_code(), 1001) << c->error.message();
  EXPECT_EQ(server_->stats().connections_open, 0u);
}

TEST_F(HubWebSocket, DroppedConnectionsCloseWith1001AndResume) {
  start(options());
  auto c = open("/topics/t/ws");
  auto p = hub_->publish("t", Message("a"));
  ASSERT_TRUE(c->next());
  hub_->drop_connections();
  EXPECT_EQ(c->close_code(), 1001);
  hub_->publish("t", Message("b"));
  auto again = open("/topics/t/ws?after=" + p);
  auto f = again->next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->message->payload.str(), "b");
}

TEST_F(HubWebSocket, TheServerPingsAndClosesAClientThatNeverAnswers) {
  auto o = options();
  o.websocket.ping_interval = 100ms;
  start(o);
  // A Beast client answers pings (inside read) and stays.
  auto c = open("/topics/t/ws");
  std::atomic<int> pings{0};
  c->ws.control_callback([&](bws::frame_type kind, beast::string_view) {
    if (kind == bws::frame_type::ping) ++pings;
  });
  std::thread reader([&] {
    auto f = c->next();
    EXPECT_TRUE(f) << c->error.message();
  });
  EXPECT_TRUE(eventually([&] { return pings.load() >= 3; }));
  hub_->publish("t", Message("done"));
  reader.join();

  // A raw client that completes the handshake and then never reads nor answers: closed.
  tcp::socket s(client_io_);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  set_timeout(s);
  asio::write(s, asio::buffer(upgrade_request("/topics/t/ws")));
  boost::system::error_code ec;
  std::string all;
  char buf[1024];
  for (;;) {
    auto n = s.read_some(asio::buffer(buf), ec);
    all.append(buf, n);
    if (ec) break;
  }
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_NE(all.find("101"), std::string::npos);
  EXPECT_NE(all.find("\x89\x00", 0, 2), std::string::npos) << "a ping frame";
}

TEST_F(HubWebSocket, AClientThatNeverReadsIsCutAtTheCap) {
  auto o = options();
  o.websocket.send_buffer = 256 * 1024;
  o.history = 100'000;
  start(o);
  auto slow = open("/topics/t/ws", 4096);
  auto fast = open("/topics/t/ws");
  // The slow client never reads; the fast one keeps up (the publisher stays within 100
  // messages of it, well inside the cap).
  const int total = 20'000;  // 20 MB: far past the cap and any socket buffer
  std::atomic<int> fast_got{0};
  std::thread publisher([&] {
    for (int i = 0; i < total; ++i) {
      while (i - fast_got.load() > 100) std::this_thread::yield();
      hub_->publish("t", Message(std::string(1000, 'x')));
    }
  });
  while (fast_got.load() < total) {
    auto f = fast->next();
    if (!f) break;
    ++fast_got;
  }
  publisher.join();
  EXPECT_EQ(fast_got.load(), total) << fast->error.message();
  // The slow client now drains what the kernel holds, then finds the connection cut.
  int slow_got = 0;
  for (;;) {
    auto f = slow->next();
    if (!f) break;
    ++slow_got;
  }
  EXPECT_LT(slow_got, total);
  EXPECT_NE(slow->error, boost::system::error_code(asio::error::would_block)) << "timed out instead of being cut";
}

TEST_F(HubWebSocket, ManyClientsAtOnceAreServedOrRefusedWith503) {
  ServerOptions so;
  so.limits.max_connections = 300;
  start(options(), so);
  const int n = 800;
  std::vector<tcp::socket> sockets;
  for (int i = 0; i < n; ++i) {
    tcp::socket s(client_io_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    set_timeout(s);
    sockets.push_back(std::move(s));
  }
  const std::string req = upgrade_request("/topics/t/ws");
  for (auto& s : sockets) {
    boost::system::error_code ec;
    asio::write(s, asio::buffer(req), ec);  // a refused one may already be closed
  }
  int upgraded = 0, refused = 0, other = 0;
  for (auto& s : sockets) {
    std::string head;
    boost::system::error_code ec;
    asio::read_until(s, asio::dynamic_buffer(head), "\r\n\r\n", ec);
    if (head.rfind("HTTP/1.1 101", 0) == 0) {
      ++upgraded;
    } else if (head.rfind("HTTP/1.1 503", 0) == 0 && head.find("Retry-After:") != std::string::npos) {
      ++refused;
    } else {
      ++other;
      ADD_FAILURE() << "unexpected answer: '" << head << "' " << ec.message();
    }
  }
  EXPECT_EQ(upgraded + refused, n);
  EXPECT_GE(upgraded, 1);
  EXPECT_LE(upgraded, 300);
  EXPECT_EQ(other, 0);
  // The upgraded ones work.
  hub_->publish("t", Message("to all"));
  sockets.clear();
  EXPECT_TRUE(eventually([&] { return server_->stats().connections_open == 0; }));
  auto c = open("/topics/t/ws");
  hub_->publish("t", Message("after"));
  auto f = c->next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->message->payload.str(), "after");
}

// --- the framing, with a raw client that writes the frames itself --------------------------

/// A WebSocket client over a plain socket: frames are written byte by byte as given (masked
/// or not, any opcode, fragmented), and read back raw.
struct RawWs {
  explicit RawWs(asio::io_context& io) : s(io) {}
  tcp::socket s;
  std::string in;  // bytes read and not yet consumed

  struct Frame {
    std::uint8_t op = 0;
    bool fin = false;
    std::string payload;
  };

  /// A frame: `b0` is FIN/RSV/opcode as sent; masked with a fixed key unless `masked` is false.
  void send_frame(std::uint8_t b0, std::string_view payload, bool masked = true) {
    std::string f;
    f += static_cast<char>(b0);
    const std::uint8_t m = masked ? 0x80 : 0;
    if (payload.size() < 126) {
      f += static_cast<char>(m | payload.size());
    } else if (payload.size() < 65536) {
      f += static_cast<char>(m | 126);
      f += static_cast<char>(payload.size() >> 8);
      f += static_cast<char>(payload.size() & 0xFF);
    } else {
      f += static_cast<char>(m | 127);
      for (int i = 7; i >= 0; --i) f += static_cast<char>((static_cast<std::uint64_t>(payload.size()) >> (8 * i)) & 0xFF);
    }
    const char key[4] = {0x12, 0x34, 0x56, 0x78};
    if (masked) f.append(key, 4);
    for (std::size_t i = 0; i < payload.size(); ++i) f += masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i];
    boost::system::error_code ec;
    asio::write(s, asio::buffer(f), ec);  // the server may have closed already
  }
  void text(std::string_view payload) { send_frame(0x81, payload); }

  bool fill(std::size_t need) {
    while (in.size() < need) {
      char buf[4096];
      boost::system::error_code ec;
      auto n = s.read_some(asio::buffer(buf), ec);
      if (ec) return false;
      in.append(buf, n);
    }
    return true;
  }
  /// The next frame from the server; std::nullopt once the connection ended.
  std::optional<Frame> next() {
    if (!fill(2)) return std::nullopt;
    const auto b0 = static_cast<std::uint8_t>(in[0]), b1 = static_cast<std::uint8_t>(in[1]);
    EXPECT_EQ(b1 & 0x80, 0) << "server frames are not masked";
    std::size_t at = 2;
    std::uint64_t len = b1 & 0x7F;
    if (len == 126) {
      if (!fill(4)) return std::nullopt;
      len = (static_cast<std::uint8_t>(in[2]) << 8) | static_cast<std::uint8_t>(in[3]);
      at = 4;
    } else if (len == 127) {
      if (!fill(10)) return std::nullopt;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<std::uint8_t>(in[2 + i]);
      at = 10;
    }
    if (!fill(at + len)) return std::nullopt;
    Frame f;
    f.op = b0 & 0x0F;
    f.fin = (b0 & 0x80) != 0;
    f.payload = in.substr(at, len);
    in.erase(0, at + len);
    return f;
  }
  /// Reads until a close frame: its code (0: the connection ended without one).
  std::uint16_t close_code() {
    for (;;) {
      auto f = next();
      if (!f) return 0;
      if (f->op == 0x8) {
        if (f->payload.size() < 2) return 1005;
        last_reason = f->payload.substr(2);
        return static_cast<std::uint16_t>((static_cast<std::uint8_t>(f->payload[0]) << 8) | static_cast<std::uint8_t>(f->payload[1]));
      }
    }
  }
  /// Whether the server closed the TCP connection (after its close frame).
  bool ends() {
    for (;;) {
      char buf[256];
      boost::system::error_code ec;
      s.read_some(asio::buffer(buf), ec);
      if (ec) return ec == asio::error::eof || ec == asio::error::connection_reset;
    }
  }
  std::string last_reason;
};

class HubWebSocketFraming : public HubWebSocket {
 protected:
  std::unique_ptr<RawWs> raw_open(std::string target = "/topics/t/ws") {
    auto c = std::make_unique<RawWs>(client_io_);
    c->s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    set_timeout(c->s);
    asio::write(c->s, asio::buffer(upgrade_request(target)));
    boost::system::error_code ec;
    asio::read_until(c->s, asio::dynamic_buffer(c->in), "\r\n\r\n", ec);
    const auto end = c->in.find("\r\n\r\n");
    EXPECT_NE(end, std::string::npos) << c->in;
    head_ = c->in.substr(0, end + 4);
    EXPECT_EQ(head_.rfind("HTTP/1.1 101", 0), 0u) << head_;
    c->in.erase(0, end + 4);
    return c;
  }
  std::string head_;
};

TEST_F(HubWebSocketFraming, TheHandshakeAnswersTheKey) {
  start(options());
  auto c = raw_open();
  // RFC 6455 1.3's example key and answer.
  EXPECT_NE(head_.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos) << head_;
  EXPECT_NE(head_.find("X-Patchbay-Position: "), std::string::npos) << head_;
  EXPECT_EQ(head_.find("Sec-WebSocket-Extensions"), std::string::npos) << "no permessage-deflate";
  // Another version, no key: clear answers.
  auto v8 = raw("GET /topics/t/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  EXPECT_EQ(v8.rfind("HTTP/1.1 426", 0), 0u) << v8;
  EXPECT_NE(v8.find("Sec-WebSocket-Version: 13"), std::string::npos) << v8;
  auto nokey = raw("GET /topics/t/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_EQ(nokey.rfind("HTTP/1.1 400", 0), 0u) << nokey;
}

TEST_F(HubWebSocketFraming, APingIsAnsweredWithAPongCarryingItsPayload) {
  start(options());
  auto c = raw_open();
  c->send_frame(0x89, "are you there");
  auto f = c->next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, 0xA);
  EXPECT_TRUE(f->fin);
  EXPECT_EQ(f->payload, "are you there");
  c->send_frame(0x89, "");
  f = c->next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, 0xA);
  EXPECT_EQ(f->payload, "");
  // An unsolicited pong is ignored.
  c->send_frame(0x8A, "x");
  hub_->publish("t", Message("still here"));
  f = c->next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, 0x1);
  EXPECT_NE(f->payload.find("still here"), std::string::npos) << f->payload;
}

TEST_F(HubWebSocketFraming, AFragmentedTextMessageIsReassembledAcrossFramesAndPings) {
  start(options());
  auto c = raw_open();
  // "é" (C3 A9) split between two fragments; a ping between fragments is answered at once.
  const std::string json = "{\"type\":\"publish\",\"id\":\"f1\",\"payload\":\"caf\xC3\xA9 au lait\"}";
  const auto cut = json.find('\xC3') + 1;
  c->send_frame(0x01, json.substr(0, 10));           // text, no FIN
  c->send_frame(0x00, json.substr(10, cut - 10));    // continuation, ends inside "é"
  c->send_frame(0x89, "mid");                        // a ping between fragments
  c->send_frame(0x80, json.substr(cut));             // continuation, FIN
  auto pong = c->next();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->op, 0xA);
  EXPECT_EQ(pong->payload, "mid");
  for (;;) {
    auto f = c->next();
    ASSERT_TRUE(f);
    ASSERT_EQ(f->op, 0x1);
    auto frame = websocket::decode(f->payload);
    ASSERT_TRUE(frame);
    if (frame->type != Type::published) continue;
    EXPECT_EQ(frame->id, "f1");
    break;
  }
  auto check = hub_->open("t", Position::earliest(), UnknownPosition::from_latest, false);
  auto batch = check->read(10);
  ASSERT_EQ(batch.entries.size(), 1u);
  EXPECT_EQ(batch.entries[0]->message.payload.str(), "caf\xC3\xA9 au lait");
}

TEST_F(HubWebSocketFraming, FramingErrorsAreClosedWith1002) {
  start(options());
  struct Case {
    std::string name;
    std::function<void(RawWs&)> send;
  };
  std::vector<Case> cases = {
      {"unmasked client frame", [](RawWs& c) { c.send_frame(0x81, R"({"type":"publish","payload":"x"})", false); }},
      {"control frame above 125 bytes", [](RawWs& c) { c.send_frame(0x89, std::string(126, 'p')); }},
      {"fragmented control frame", [](RawWs& c) { c.send_frame(0x09, "p"); }},
      {"continuation without a message", [](RawWs& c) { c.send_frame(0x80, "x"); }},
      {"new message inside a fragmented one", [](RawWs& c) {
         c.send_frame(0x01, "{");
         c.send_frame(0x81, "{}");
       }},
      {"reserved bit", [](RawWs& c) { c.send_frame(0xC1, "{}"); }},
      {"unknown opcode", [](RawWs& c) { c.send_frame(0x83, "{}"); }},
      {"close frame of one byte", [](RawWs& c) { c.send_frame(0x88, "x"); }},
      {"invalid close code", [](RawWs& c) { c.send_frame(0x88, std::string("\x03\xED", 2)); }},  // 1005
  };
  for (auto& k : cases) {
    auto c = raw_open();
    k.send(*c);
    EXPECT_EQ(c->close_code(), 1002) << k.name;
    EXPECT_TRUE(c->ends()) << k.name;
  }
  EXPECT_TRUE(eventually([&] { return server_->stats().connections_open == 0; }));
}

TEST_F(HubWebSocketFraming, InvalidUtf8AcrossFragmentsIsClosedWith1007) {
  start(options());
  auto c = raw_open();
  c->send_frame(0x01, "{\"type\":\"publish\",\"payload\":\"\xE2\x82");  // a valid prefix of a 3-byte sequence
  c->send_frame(0x80, "x\"}");                                              // ... not continued
  EXPECT_EQ(c->close_code(), 1007);
  // The client's close answer completes the handshake: the server closes the connection.
  c->send_frame(0x88, std::string("\x03\xEF", 2));
  EXPECT_TRUE(c->ends());
}

TEST_F(HubWebSocketFraming, MaxMessageCountsEveryFragment) {
  auto o = options();
  o.websocket.max_message = 100;
  start(o);
  auto c = raw_open();
  c->send_frame(0x01, std::string(60, ' '));
  c->send_frame(0x80, std::string(60, ' '));
  EXPECT_EQ(c->close_code(), 1009);
  c->send_frame(0x88, std::string("\x03\xF1", 2));
  EXPECT_TRUE(c->ends());
  EXPECT_TRUE(hub_->open("t", Position::earliest(), UnknownPosition::from_latest, false)->read(10).entries.empty());
}

TEST_F(HubWebSocketFraming, TheClientsCloseIsEchoedAndTheConnectionEnds) {
  start(options());
  auto c = raw_open();
  c->send_frame(0x88, std::string("\x03\xE8", 2) + "bye");  // 1000
  EXPECT_EQ(c->close_code(), 1000);
  EXPECT_TRUE(c->ends());
  auto d = raw_open();
  d->send_frame(0x88, "");  // no code: an empty close back
  auto f = d->next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, 0x8);
  EXPECT_EQ(f->payload, "");
  EXPECT_TRUE(d->ends());
  EXPECT_TRUE(eventually([&] { return server_->stats().connections_open == 0; }));
}

TEST_F(HubWebSocketFraming, ManyMessagesGatheredInOneWriteArriveInOrderAndWhole) {
  auto o = options();
  o.history = 5000;
  start(o);
  // Sizes across the 7-bit, 16-bit and 64-bit length forms, published before the connection
  // reads them (so that writes gather several and the socket fills up).
  std::vector<std::size_t> sizes;
  for (int i = 0; i < 600; ++i) sizes.push_back(i % 3 == 0 ? 10 : i % 3 == 1 ? 300 : 70'000);
  for (std::size_t i = 0; i < sizes.size(); ++i) hub_->publish("t", Message(std::string(sizes[i], static_cast<char>('a' + i % 26))));
  auto c = raw_open("/topics/t/ws?from=earliest");
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    auto f = c->next();
    ASSERT_TRUE(f) << i;
    ASSERT_EQ(f->op, 0x1);
    auto frame = websocket::decode(f->payload);
    ASSERT_TRUE(frame) << i;
    ASSERT_EQ(frame->message->payload.size(), sizes[i]) << i;
    ASSERT_EQ(frame->message->payload.str()[0], static_cast<char>('a' + i % 26)) << i;
  }
}

}  // namespace
}  // namespace patchbay::http
