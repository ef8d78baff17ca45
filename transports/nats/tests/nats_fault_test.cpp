// Fault tests: each starts its own nats-server (own port, own folder) and stops, kills or
// restarts it — never the shared one. A server restart: subscriptions resume, publishes made
// while it was down are buffered and delivered; wrong credentials and unreachable servers give
// clear errors within the connect deadline; a full reconnect buffer and a connection closed for
// good are errors, not hangs.
#include "nats_test_support.hpp"

#include <cstdio>

namespace {

using namespace nats_test;
using patchbay::errc;
using patchbay::SubscribeOptions;

/// A runtime that could not start: how long it took and what it said.
struct Refusal {
  std::string text;
  patchbay::duration took{};
};

Refusal refused_start(const std::string& url, const std::string& settings) {
  const auto started = patchbay::clock::now();
  auto inst = make(url, settings);
  Refusal r{inst.ok() ? "" : std::string(inst.status().message()), patchbay::clock::now() - started};
  std::printf("refused after %lld ms: %s\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(r.took).count()), r.text.c_str());
  if (inst.ok()) inst->shutdown();
  return r;
}

TEST(NatsFault, ServerRestartResumesSubscriptionsAndDeliversWhatWasPublishedMeanwhile) {
  NatsServer server;
  server.start();
  auto inst = make(server.url(), "    reconnect_wait: 100ms\n");
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string topic = unique("restart");
  const std::string service = unique("echo");
  asio::cancellation_signal stop_serving;
  auto serve = [&]() -> awaitable<void> {
    co_await inst->transport->serve(service, [](Message m) -> awaitable<Message> {
      co_return Message(std::string_view("echo:" + m.payload.str()));
    });
  };
  asio::co_spawn(inst->fresh(), serve(), asio::bind_cancellation_slot(stop_serving.slot(), asio::detached));

  run(*inst, [&]() -> awaitable<void> {
    auto sub = co_await inst->transport->subscribe(topic, {});
    auto group = co_await inst->transport->subscribe(topic, SubscribeOptions().group("g"));
    for (int i = 0; i < 5; ++i) co_await inst->transport->publish(msg(topic, "before " + std::to_string(i)));
    for (auto* s : {&sub, &group})
      for (int i = 0; i < 5; ++i) {
        auto d = co_await next_within(*s);
        EXPECT_TRUE(d && !d->is_gap() && d->message().payload.str() == "before " + std::to_string(i));
      }

    server.kill(SIGKILL);
    EXPECT_TRUE(co_await eventually([&] { return stats(*inst).disconnects >= 2; }))
        << "both connections should notice the lost server";
    // Published while the server is down: buffered by nats.c, sent after the reconnect.
    for (int i = 0; i < 5; ++i) co_await inst->transport->publish(msg(topic, "during " + std::to_string(i)));

    server.start();  // same port
    EXPECT_TRUE(co_await eventually([&] { return stats(*inst).reconnects >= 2; }, 60s))
        << "reconnects: " << stats(*inst).reconnects;

    for (auto* s : {&sub, &group}) {
      // First the gap of the disconnect (others' messages may be lost), then ours, in order.
      auto gap = co_await next_within(*s);
      EXPECT_TRUE(gap && gap->is_gap());
      if (gap && gap->is_gap()) {
        EXPECT_NE(gap->gap().reason.find("disconnected"), std::string::npos) << gap->gap().reason;
      }
      for (int i = 0; i < 5; ++i) {
        auto d = co_await next_within(*s);
        EXPECT_TRUE(d && !d->is_gap() && d->message().payload.str() == "during " + std::to_string(i))
            << (d ? (d->is_gap() ? "gap: " + d->gap().reason : d->message().payload.str()) : "nothing");
      }
    }
    // And the subscriptions live on.
    co_await inst->transport->publish(msg(topic, "after"));
    for (auto* s : {&sub, &group}) {
      auto d = co_await next_within(*s);
      EXPECT_TRUE(d && !d->is_gap() && d->message().payload.str() == "after");
    }
    // So does the service (its subscription is on the other connection).
    Message reply = co_await inst->transport->request(service, msg(service, "ping"), patchbay::clock::now() + 30s);
    EXPECT_EQ(reply.payload.str(), "echo:ping");
  });
  asio::post(inst->ex, [&] { stop_serving.emit(asio::cancellation_type::all); });
  inst->shutdown();
}

TEST(NatsFault, WrongCredentialsAreAClearErrorWithinTheConnectDeadline) {
  NatsServer server({"--user", "alice", "--pass", "s3cret"});
  server.start();
  const auto r = refused_start(server.url(), "    user: alice\n    password: wrong\n    connect_timeout: 2s\n");
  EXPECT_FALSE(r.text.empty()) << "a wrong password was accepted";
  EXPECT_NE(r.text.find("uthorization"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("credentials"), std::string::npos) << r.text;
  EXPECT_LT(r.took, 2s + 10s) << "generous slack over connect_timeout on a busy machine";
  const auto none = refused_start(server.url(), "    connect_timeout: 2s\n");
  EXPECT_FALSE(none.text.empty()) << "no credentials were accepted";

  // The right ones work.
  auto inst = make(server.url(), "    user: alice\n    password: s3cret\n");
  ASSERT_TRUE(inst.ok()) << inst.status();
  run(*inst, [&]() -> awaitable<void> {
    auto sub = co_await inst->transport->subscribe("auth.ok", {});
    co_await inst->transport->publish(msg("auth.ok", "in"));
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d && d->message().payload.str() == "in");
  });
  inst->shutdown();
}

TEST(NatsFault, AnUnreachableServerIsAClearErrorWithinTheConnectDeadline) {
  const int port = free_port();  // nobody listens there
  const auto r = refused_start("nats://127.0.0.1:" + std::to_string(port), "    connect_timeout: 1s\n");
  EXPECT_NE(r.text.find("cannot connect to nats://127.0.0.1:" + std::to_string(port)), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("connect_timeout"), std::string::npos) << r.text;
  EXPECT_LT(r.took, 1s + 10s) << "generous slack over connect_timeout on a busy machine";

  // Something that is not a NATS server at all: a listener that never says anything.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const auto silent = refused_start("nats://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), "    connect_timeout: 1s\n");
  ::close(fd);
  EXPECT_NE(silent.text.find("cannot connect"), std::string::npos) << silent.text;
  EXPECT_LT(silent.took, 1s + 10s);
}

TEST(NatsFault, AFullReconnectBufferIsAnErrorNotAHang) {
  NatsServer server;
  server.start();
  auto inst = make(server.url(), "    reconnect_wait: 10s\n    reconnect_buffer: 16384\n");
  ASSERT_TRUE(inst.ok()) << inst.status();
  run(*inst, [&]() -> awaitable<void> {
    server.kill(SIGKILL);
    // Both connections (data and rpc) noticed: a publish racing with the loss may fail instead.
    EXPECT_TRUE(co_await eventually([&] { return stats(*inst).disconnects >= 2; }));
    boost::system::error_code code;
    std::string text;
    int accepted = 0;
    for (; accepted < 1000; ++accepted) {
      try {
        co_await inst->transport->publish(msg("buffered", std::string(1024, 'x')));
      } catch (const boost::system::system_error& e) {
        code = e.code();
        text = e.what();
        break;
      }
    }
    EXPECT_EQ(code, make_error_code(errc::unavailable)) << text;
    EXPECT_NE(text.find("reconnect_buffer"), std::string::npos) << text;
    EXPECT_LE(accepted, 16) << "more was buffered than reconnect_buffer allows";
  });
  inst->shutdown();
}

TEST(NatsFault, AConnectionClosedForGoodEndsStreamsAndRefusesPublishes) {
  NatsServer server;
  server.start();
  auto inst = make(server.url(), "    reconnect_wait: 50ms\n    max_reconnects: 2\n    connect_timeout: 500ms\n");
  ASSERT_TRUE(inst.ok()) << inst.status();
  run(*inst, [&]() -> awaitable<void> {
    auto sub = co_await inst->transport->subscribe("closing", {});
    server.kill(SIGKILL);
    auto end = co_await patchbay::conformance::next_for(sub, 60s);
    // After the gap of the disconnect, the stream must end.
    while (end.what == patchbay::conformance::Next::kind::item && end.delivery->is_gap())
      end = co_await patchbay::conformance::next_for(sub, 60s);
    EXPECT_EQ(end.what, patchbay::conformance::Next::kind::ended);
    boost::system::error_code code;
    std::string text;
    try {
      co_await inst->transport->publish(msg("closing", "x"));
    } catch (const boost::system::system_error& e) {
      code = e.code();
      text = e.what();
    }
    EXPECT_EQ(code, make_error_code(errc::unavailable)) << text;
    EXPECT_NE(text.find("max_reconnects"), std::string::npos) << text;
  });
  inst->shutdown();
}

}  // namespace
