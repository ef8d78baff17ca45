// Unit tests without a Redis server: the RESP reader (hiredis's, with patchbay's limits) and
// encoder, the Pub/Sub envelope, settings errors, and peers that send garbage.
#include <patchbay/transports/redis/resp.hpp>

#include <patchbay/transports/redis/envelope.hpp>
#include <patchbay/transports/redis/redis.hpp>

#include "../src/entries.hpp"

#include <patchbay/runtime.hpp>
#include <patchbay/topic.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <climits>
#include <thread>

namespace {

using namespace patchbay::redis;
using patchbay::Bytes;

std::vector<Reply> parse_all(RespReader& r, std::string_view in) {
  std::vector<Reply> out;
  r.feed(in.data(), in.size());
  while (auto x = r.next()) out.push_back(std::move(*x));
  return out;
}

TEST(RespReader, ParsesEveryRespTwoType) {
  RespReader r;
  auto got = parse_all(r, "+OK\r\n-ERR wrong\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:-7\r\n*-1\r\n*0\r\n");
  ASSERT_TRUE(r.error().empty()) << r.error();
  ASSERT_EQ(got.size(), 8u);
  EXPECT_EQ(got[0].type, Reply::kind::status);
  EXPECT_EQ(got[0].str, "OK");
  EXPECT_TRUE(got[1].is_error());
  EXPECT_EQ(got[1].str, "ERR wrong");
  EXPECT_EQ(got[2].integer, 42);
  EXPECT_EQ(got[3].type, Reply::kind::string);
  EXPECT_EQ(got[3].str, "hello");
  EXPECT_TRUE(got[4].is_nil());
  ASSERT_TRUE(got[5].is_array());
  ASSERT_EQ(got[5].elements.size(), 2u);
  EXPECT_EQ(got[5].elements[0].str, "a");
  EXPECT_EQ(got[5].elements[1].elements[0].integer, -7);
  EXPECT_TRUE(got[6].is_nil());
  EXPECT_TRUE(got[7].is_array() && got[7].elements.empty());
}

TEST(RespReader, ByteByByteAndBinarySafe) {
  std::string payload("a\r\nb\0c", 6);
  std::string wire = "*2\r\n$7\r\nmessage\r\n$6\r\n" + payload + "\r\n";
  RespReader r;
  std::vector<Reply> got;
  for (char c : wire) {
    r.feed(&c, 1);
    while (auto x = r.next()) got.push_back(std::move(*x));
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].elements[1].str, payload);
}

TEST(RespReader, ALargeBulkInOneFeed) {
  std::string big(5 << 20, 'x');
  std::string wire = "$" + std::to_string(big.size()) + "\r\n" + big + "\r\n:1\r\n";
  RespReader r;
  auto got = parse_all(r, wire);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].str.size(), big.size());
  EXPECT_EQ(got[1].integer, 1);
}

TEST(RespReader, RefusesWhatNoServerSends) {
  for (std::string bad : {std::string("?what\r\n"), std::string("*99999999999\r\n"), std::string("*-5\r\n"),
std::string("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")}) {
    RespReader r;
    auto got = parse_all(r, bad);
    EXPECT_TRUE(got.empty()) << "parsed " << bad;
    EXPECT_FALSE(r.error().empty()) << "no error for " << bad;
    EXPECT_FALSE(r.feed("+OK\r\n", 5)) << "a reader in error accepts input";
  }
  // hiredis 0.14 waits for the bytes of any declared length: the buffer limit ends that.
  RespReader::Limits tiny;
  tiny.max_buffered = 64;
  RespReader waiting(tiny);
  EXPECT_TRUE(parse_all(waiting, "$9223372036854775807\r\n" + std::string(100, 'x')).empty());
  EXPECT_NE(waiting.error().find("larger than"), std::string::npos) << waiting.error();
  RespReader::Limits small;
  small.max_bulk = 10;
  RespReader limited(small);
  auto got = parse_all(limited, "$11\r\nhello world\r\n");
  EXPECT_TRUE(got.empty());
  EXPECT_NE(limited.error().find("limits"), std::string::npos) << limited.error();
}

TEST(Command, EncodesRespArraysAndSharesLargeArguments) {
  EXPECT_EQ(make_command({"SET", "k", "v"}).str(), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
  EXPECT_EQ(make_command({"PING"}).name(), "PING");
  Bytes big(std::string(1 << 20, 'p'));
  Command c(3);
  c.arg("PUBLISH").arg("chan").arg("head:", big);
  const auto& pieces = c.pieces();
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_TRUE(pieces[1].shares_buffer_with(big)) << "a large payload was copied";
  EXPECT_EQ(c.str(), "*3\r\n$7\r\nPUBLISH\r\n$4\r\nchan\r\n$" + std::to_string(5 + big.size()) + "\r\nhead:" + big.str() + "\r\n");
  Command wrong(3);
  wrong.arg("GET").arg("k");
  EXPECT_THROW(wrong.pieces(), std::logic_error);
  Command n(2);
  n.arg("SELECT").arg(-12LL);
  EXPECT_EQ(n.str(), "*2\r\n$6\r\nSELECT\r\n$3\r\n-12\r\n");
}

TEST(Envelope, RoundTripsIdTimeHeadersAndBinaryPayload) {
  patchbay::Message m{Bytes(std::string("\0\x01\xff payload", 10))};
  m.stamp();
  m.headers.add("content-type", "application/json");
  m.headers.add("x-repeated", "one");
  m.headers.add("x-repeated", "two");
  m.headers.add("x-empty", "");
  const std::string wire = envelope_head(m) + m.payload.str();
  auto back = decode_envelope(wire);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->id, m.id);
  EXPECT_EQ(back->headers, m.headers);
  EXPECT_EQ(back->payload, m.payload);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(back->time.time_since_epoch()),
            std::chrono::duration_cast<std::chrono::milliseconds>(m.time.time_since_epoch()));
}

TEST(Envelope, AnythingElseIsAPlainPayload) {
  EXPECT_FALSE(decode_envelope("hello").has_value());
  EXPECT_FALSE(decode_envelope("").has_value());
  patchbay::Message m{Bytes("x")};
  m.stamp();
  m.headers.add("a", "b");
  const std::string head = envelope_head(m);
  for (std::size_t cut = 0; cut < head.size(); ++cut)
    EXPECT_FALSE(decode_envelope(head.substr(0, cut)).has_value()) << "a truncated envelope decoded at " << cut;
  std::string huge_count(kEnvelopeMagic);
  huge_count += std::string("\0\0\0\1i", 5) + std::string(8, '\0') + "\xff\xff\xff\xff";
  EXPECT_FALSE(decode_envelope(huge_count).has_value());
}

TEST(Envelope, TimesTheClockCannotHoldAreIgnored) {
  // Found by fuzz_redis_resp: milliseconds beyond what nanoseconds can count overflowed.
  EXPECT_EQ(time_from_ms(LLONG_MAX), patchbay::Message::time_point{});
  EXPECT_EQ(time_from_ms(-LLONG_MAX), patchbay::Message::time_point{});
  EXPECT_NE(time_from_ms(1700000000000), patchbay::Message::time_point{});
  std::string wire(kEnvelopeMagic);
  wire += std::string("\0\0\0\1i", 5) + std::string(8, '\xff') + std::string(4, '\0') + "payload";
  auto m = decode_envelope(wire);
  ASSERT_TRUE(m.has_value());
  EXPECT_NE(m->time, patchbay::Message::time_point{});
  EXPECT_EQ(m->payload.view(), "payload");
}

TEST(StreamEntries, FieldsBecomeAMessage) {
  RespReader r;
  auto got = parse_all(r,
                       "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n"
                       "*2\r\n$15\r\n1700000000000-1\r\n*8\r\n$11\r\npatchbay-id\r\n$2\r\nid\r\n$13\r\npatchbay-time\r\n$13\r\n1700000000123\r\n"
                       "$8\r\nheader:a\r\n$1\r\nb\r\n$7\r\npayload\r\n$2\r\nhi\r\n"
                       "*2\r\n$25\r\n99999999999999999999999-0\r\n*2\r\n$4\r\ntemp\r\n$2\r\n21\r\n");
  ASSERT_EQ(got.size(), 1u);
  auto entries = detail::read_reply_entries(got[0], "topic");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].id, "1700000000000-1");
  EXPECT_EQ(entries[0].message.id, "id");
  EXPECT_EQ(entries[0].message.payload.view(), "hi");
  EXPECT_EQ(entries[0].message.headers.get("a"), "b");
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(entries[0].message.time.time_since_epoch()).count(),
            1700000000123);
  // Another client's entry, with an id whose time no clock holds: fields become headers.
  EXPECT_EQ(entries[1].message.id, entries[1].id);
  EXPECT_EQ(entries[1].message.headers.get("temp"), "21");
  EXPECT_TRUE(entries[1].message.payload.empty());
}

// --- settings and peers, through a Runtime with the transport linked in -------------------

absl::StatusOr<std::unique_ptr<patchbay::Runtime>> runtime(const std::string& settings) {
  patchbay::RuntimeOptions options;
  options.config_text = "default_transport: bus\ntransports:\n  bus: { type: redis, " + settings + " }\n";
  options.handle_signals = false;
  options.threads = 2;
  options.registry = patchbay::Registry::with_builtins();
  if (auto s = register_transport(*options.registry); !s.ok()) return s;
  return patchbay::Runtime::create(std::move(options));
}

TEST(Settings, MistakesAreClearErrors) {
  auto bad_url = runtime("url: 'http://127.0.0.1:6379'");
  ASSERT_FALSE(bad_url.ok());
  EXPECT_NE(bad_url.status().message().find("redis://"), absl::string_view::npos) << bad_url.status();
  auto bad_mode = runtime("mode: queue");
  ASSERT_FALSE(bad_mode.ok());
  EXPECT_NE(bad_mode.status().message().find("streams"), absl::string_view::npos) << bad_mode.status();
  auto bad_db = runtime("url: 'redis://127.0.0.1:6379/zero'");
  ASSERT_FALSE(bad_db.ok());
  EXPECT_NE(bad_db.status().message().find("database"), absl::string_view::npos) << bad_db.status();
  auto user_only = runtime("user: alice");
  ASSERT_FALSE(user_only.ok());
  EXPECT_NE(user_only.status().message().find("password"), absl::string_view::npos) << user_only.status();
  auto unknown = runtime("mode: pubsub, max_len: 10");  // max_len is a streams setting
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("max_len"), absl::string_view::npos) << unknown.status();
  auto ok = runtime("url: 'redis://:secret@127.0.0.1:6390/2', mode: streams, max_len: 1000, claim_idle: 5s");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

/// A string literal with its NUL bytes (but not the terminating one).
template <std::size_t N>
std::string literal(const char (&s)[N]) {
  return std::string(s, N - 1);
}

/// A TCP server on a thread. On each connection it plays `steps`: once what it has read
/// contains a step's `until`, it writes the step's reply; then it waits for the client to
/// close the connection.
class FakeServer {
 public:
  struct Step {
    std::string until, reply;
  };
  explicit FakeServer(std::vector<Step> steps)
      : steps_(std::move(steps)), acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    boost::system::error_code ec;
    boost::asio::io_context io;  // wake the acceptor with a connection of our own
    boost::asio::ip::tcp::socket s(io);
    s.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  int accepted() const { return accepted_.load(); }
  int closed_by_client() const { return closed_by_client_.load(); }

 private:
  void serve() {
    while (!stop_) {
      boost::asio::ip::tcp::socket s(io_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      ++accepted_;
      std::string got;
      char buf[4096];
      for (const auto& step : steps_) {
        while (!ec && got.find(step.until) == std::string::npos) {
          auto n = s.read_some(boost::asio::buffer(buf), ec);
          got.append(buf, n);
        }
        if (ec) break;
        got.erase(0, got.find(step.until) + step.until.size());
        boost::asio::write(s, boost::asio::buffer(step.reply), ec);
      }
      while (!ec) s.read_some(boost::asio::buffer(buf), ec);
      if (ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset) ++closed_by_client_;
    }
  }

  std::vector<Step> steps_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0}, closed_by_client_{0};
};

TEST(GarbagePeer, GarbageInsteadOfAHandshakeIsAClearStartError) {
  FakeServer fake({{"PING\r\n", literal("HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff")}});
  auto rt = runtime("url: 'redis://127.0.0.1:" + std::to_string(fake.port()) + "', connect_timeout: 2s");
  ASSERT_TRUE(rt.ok()) << rt.status();
  auto s = (*rt)->start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not speaking RESP"), absl::string_view::npos) << s;
  (*rt)->stop();
  (*rt)->wait();
}

TEST(GarbagePeer, GarbageAfterTheHandshakeClosesTheConnectionAndReconnects) {
  // A good handshake (CLIENT SETNAME, PING); then the answer to PUBLISH is not RESP.
  FakeServer fake({{"PING\r\n", "+OK\r\n+PONG\r\n"},
                   {"PUBLISH", literal("*3\r\n$7\r\nmessage\r\n?\x01\x02" "garbage\r\n")}});
  auto rt = runtime("url: 'redis://127.0.0.1:" + std::to_string(fake.port()) +
                    "', connect_timeout: 2s, reconnect_min: 10ms, reconnect_max: 50ms");
  ASSERT_TRUE(rt.ok()) << rt.status();
  ASSERT_TRUE((*rt)->start().ok());
  auto topic = (*rt)->topic("garbage");
  auto publish = [&]() -> patchbay::awaitable<std::string> {
    try {
      co_await topic.publish(patchbay::Message("hello"));
    } catch (const boost::system::system_error& e) {
      co_return std::string(e.what());
    }
    co_return std::string("published");
  };
  auto outcome = boost::asio::co_spawn((*rt)->get_executor(), publish, boost::asio::use_future);
  ASSERT_EQ(outcome.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  const std::string what = outcome.get();
  EXPECT_NE(what.find("lost after PUBLISH was sent"), std::string::npos) << what;
  EXPECT_NE(what.find("malformed reply"), std::string::npos) << what;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((fake.accepted() < 2 || fake.closed_by_client() < 1) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(fake.closed_by_client(), 1) << "the client kept a connection that sent garbage";
  EXPECT_GE(fake.accepted(), 2) << "the client did not reconnect";
  (*rt)->stop();
  (*rt)->wait();
}

}  // namespace
