// The zmq transport's own tests (the module loaded through `plugins:`): malformed multipart
// messages are dropped and counted while the subscriber keeps going; subscribe() is live when
// it completes (no slow joiner); stop() finishes within the linger although a peer stopped
// reading; a PUSH without any peer fails clearly; config mistakes are clear errors.
#include <patchbay/transports/zmq/zmq.hpp>

#include "test_support.hpp"

#include <patchbay/conformance/suite.hpp>
#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <future>

namespace {

using namespace std::chrono_literals;
namespace zt = patchbay::zeromq::testing;
using patchbay::awaitable;
using patchbay::Delivery;
using patchbay::Message;
using patchbay::Stream;

/// Runs `f()` (a coroutine) on the instance's executor and waits for it.
template <typename F>
auto run(const patchbay::conformance::Instance& in, F f) {
  auto fut = patchbay::asio::co_spawn(in.ex, std::move(f), patchbay::asio::use_future);
  if (fut.wait_for(60s) != std::future_status::ready) throw std::runtime_error("coroutine did not finish within 60 s");
  return fut.get();
}

patchbay::conformance::Instance make(const std::string& config) {
  auto in = patchbay::conformance::from_config(config);
  if (!in.ok()) throw std::runtime_error(std::string(in.status().message()));
  return std::move(*in);
}

patchbay::zeromq::Counters counters(const patchbay::conformance::Instance& in) {
  auto* i = dynamic_cast<patchbay::zeromq::Introspection*>(in.transport.get());
  if (!i) throw std::runtime_error("the transport does not implement patchbay::zeromq::Introspection");
  return i->counters();
}

std::string subscriber_config(const std::string& endpoint, const std::string& extra = {}) {
  return "plugins: [ " PATCHBAY_ZMQ_MODULE " ]\n"
         "transports:\n"
         "  bus:\n"
         "    type: zmq\n"
         "    subscribe: { connect: [ '" + endpoint + "' ] }\n" + extra +
         "default_transport: bus\n";
}

zmq::message_t frame(std::string_view s) { return zmq::message_t(s.data(), s.size()); }

void send_frames(zmq::socket_t& s, std::initializer_list<std::string_view> frames) {
  std::size_t i = 0;
  for (auto f : frames) {
    auto m = frame(f);
    s.send(m, ++i < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

TEST(ZmqTransport, MalformedMessagesAreDroppedAndCountedAndTheSubscriberKeepsGoing) {
  // A raw cppzmq XPUB peer that sends well-formed and malformed messages.
  zmq::context_t ctx;
  zmq::socket_t peer(ctx, zmq::socket_type::xpub);
  peer.set(zmq::sockopt::linger, 0);
  const std::string endpoint = zt::tcp_endpoint();
  peer.bind(endpoint);

  // The peer sends no welcomes: the subscriber gives up waiting for them quickly.
  auto in = make(subscriber_config(endpoint, "    join_timeout: 100ms\n"));
  auto sub = run(in, [&]() -> awaitable<Stream<Delivery>> { co_return co_await in.transport->subscribe("orders"); });

  // Wait until the peer sees our subscription (the slow joiner, handled on the raw side).
  zmq::message_t m;
  for (;;) {
    ASSERT_TRUE(peer.recv(m));
    if (m.size() > 0 && static_cast<const char*>(m.data())[0] == 1 && m.to_string_view().substr(1) == "orders") break;
  }
  using namespace std::string_view_literals;
  send_frames(peer, {"orders", "x-k\0v"sv, "first"});
  send_frames(peer, {"orders"});                                  // one frame: no payload
  send_frames(peer, {"orders", "no separator", "payload"});        // header frame without NUL
  send_frames(peer, {"orders", "\0empty name"sv, "payload"});     // header with an empty name
  send_frames(peer, {"orders", "patchbay-time\0soon"sv, "x"});    // reserved header, not a number
  send_frames(peer, {"orders.more", "other topic, same prefix"}); // not ours: filtered, not counted
  send_frames(peer, {"orders", "second"});                        // plain [topic, payload]

  auto got = run(in, [&]() -> awaitable<std::vector<Message>> {
    std::vector<Message> out;
    for (int i = 0; i < 2; ++i) {
      auto n = co_await patchbay::conformance::next_for(sub, 30s);
      if (n.what != patchbay::conformance::Next::kind::item) break;
      out.push_back(n.delivery->message());
    }
    co_return out;
  });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload.view(), "first");
  EXPECT_EQ(got[0].headers.get("x-k"), "v");
  EXPECT_FALSE(got[0].id.empty()) << "a message without patchbay-id gets a fresh id";
  EXPECT_EQ(got[1].payload.view(), "second");
  EXPECT_EQ(got[1].topic, "orders");
  EXPECT_EQ(counters(in).malformed, 4u);
  EXPECT_EQ(counters(in).received, 2u);
  sub.close();
  in.shutdown();
}

TEST(ZmqTransport, SubscribeIsLiveWhenItCompletes) {
  // Two transports in two runtimes: a publisher bound, a subscriber connected. Without the
  // welcome handshake the first message right after subscribe() is usually lost.
  const std::string endpoint = zt::tcp_endpoint();
  auto pub = make("plugins: [ " PATCHBAY_ZMQ_MODULE " ]\n"
                  "transports: { bus: { type: zmq, publish: { bind: [ '" + endpoint + "' ] } } }\n"
                  "default_transport: bus\n");
  auto sub = make(subscriber_config(endpoint));
  for (int i = 0; i < 50; ++i) {
    const std::string topic = "live." + std::to_string(i);
    auto s = run(sub, [&]() -> awaitable<Stream<Delivery>> { co_return co_await sub.transport->subscribe(topic); });
    run(pub, [&]() -> awaitable<void> {
      Message msg{patchbay::Bytes("first")};
      msg.topic = topic;
      msg.stamp();
      co_await pub.transport->publish(std::move(msg));
    });
    auto n = run(sub, [&]() -> awaitable<patchbay::conformance::Next> {
      co_return co_await patchbay::conformance::next_for(s, 30s);
    });
    ASSERT_EQ(n.what, patchbay::conformance::Next::kind::item) << "round " << i << ": the first message was lost";
    EXPECT_EQ(n.delivery->message().payload.view(), "first");
  }
  EXPECT_GE(counters(pub).welcomes, 50u);
  sub.shutdown();
  pub.shutdown();
}

TEST(ZmqTransport, StopFinishesWithinLingerWhenAPeerStoppedReading) {
  // A raw PULL peer that connects and never reads: the PUSH queue fills up to its high-water
  // mark. stop() must not wait for it longer than the linger.
  zmq::context_t ctx;
  zmq::socket_t peer(ctx, zmq::socket_type::pull);
  peer.set(zmq::sockopt::linger, 0);
  peer.set(zmq::sockopt::rcvhwm, 10);
  const std::string endpoint = zt::tcp_endpoint();
  peer.bind(endpoint);
  auto in = make("plugins: [ " PATCHBAY_ZMQ_MODULE " ]\n"
                 "transports:\n"
                 "  bus: { type: zmq, push: { connect: [ '" + endpoint + "' ] }, sndhwm: 10, linger: 200ms,\n"
                 "         send_timeout: 300ms }\n"
                 "default_transport: bus\n");
  auto outcome = run(in, [&]() -> awaitable<std::string> {
    try {
      for (int i = 0;; ++i) {
        Message msg{patchbay::Bytes(std::string(100'000, 'x'))};
        msg.topic = "jobs";
        co_await in.transport->publish(std::move(msg));
      }
    } catch (const boost::system::system_error& e) {
      co_return e.code() == patchbay::errc::unavailable ? std::string("unavailable") : e.code().message();
    }
  });
  EXPECT_EQ(outcome, "unavailable") << "a PUSH whose peer stopped reading must fail after send_timeout";
  const auto started = std::chrono::steady_clock::now();
  auto stopped = std::async(std::launch::async, [&] { in.shutdown(); });
  // The linger is 200 ms; a stop that waits for the peer would never return.
  ASSERT_EQ(stopped.wait_for(30s), std::future_status::ready) << "stop() did not finish";
  std::printf("stop() took %lld ms with linger 200 ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - started)
                                         .count()));
}

TEST(ZmqTransport, PushWithoutAnyPeerFailsClearly) {
  auto in = make("plugins: [ " PATCHBAY_ZMQ_MODULE " ]\n"
                 "transports:\n"
                 "  bus: { type: zmq, push: { connect: [ '" + zt::tcp_endpoint() + "' ] }, send_timeout: 200ms }\n"
                 "default_transport: bus\n");
  auto outcome = run(in, [&]() -> awaitable<std::string> {
    try {
      Message msg{patchbay::Bytes("job")};
      msg.topic = "jobs";
      co_await in.transport->publish(std::move(msg));
      co_return std::string("sent");
    } catch (const boost::system::system_error& e) {
      co_return std::string(e.what());
    }
  });
  EXPECT_NE(outcome.find("no peer connected"), std::string::npos) << outcome;
  in.shutdown();
}

absl::Status create(const std::string& transport_yaml) {
  patchbay::RuntimeOptions options;
  options.config_text = "plugins: [ " PATCHBAY_ZMQ_MODULE " ]\ntransports:\n  bus: " + transport_yaml +
                        "\ndefault_transport: bus\n";
  options.handle_signals = false;
  return patchbay::Runtime::create(std::move(options)).status();
}

TEST(ZmqTransport, ConfigMistakesAreClearErrors) {
  auto s = create("{ type: zmq, subscribe: { bind: [ 'tcp://127.0.0.1:1' ] } }");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("never bound"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("<string>:3:"), absl::string_view::npos) << s;

  s = create("{ type: zmq, publish: { bind: [ 'tcp://nowhere:not-a-port' ] } }");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot open the 'publish' socket"), absl::string_view::npos) << s;

  s = create("{ type: zmq, publish: { bind: [ '" + zt::tcp_endpoint() + "' ] }, sndhmw: 5 }");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("sndhmw"), absl::string_view::npos) << s;

  s = create("{ type: zmq, publish: { bind: [ '" + zt::tcp_endpoint() + "' ], conect: [] } }");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("conect"), absl::string_view::npos) << s;

  s = create("{ type: zmq }");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no endpoints"), absl::string_view::npos) << s;

  s = create("{ type: zmq, publish: { bind: [ '" + zt::tcp_endpoint() + "' ] }, when_full: sometimes }");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("block, drop"), absl::string_view::npos) << s;
}

}  // namespace
