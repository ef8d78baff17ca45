// Bridges: a hub's topic fed from another transport of the same runtime. Messages published on
// the backbone (here the in-process transport) appear on the hub — for local subscribers and
// for event streams over HTTP — and messages published to the hub go to the backbone, so that
// hubs on several machines bridged to one broker see the same messages.
#include <patchbay/transports/http/http.hpp>

#include <patchbay/conformance/suite.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/event_source.hpp>
#include <patchbay/patchbay.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <gtest/gtest.h>

#include <future>

namespace patchbay {
namespace {

using namespace std::chrono_literals;

unsigned free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

/// Runs `body` on the runtime and waits (at most 120 s) for it.
void run_on(Runtime& rt, std::function<awaitable<void>()> body) {
  std::promise<std::exception_ptr> done;
  asio::co_spawn(rt.get_executor(), body(), [&](std::exception_ptr e) { done.set_value(e); });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(120s), std::future_status::ready) << "the test coroutine did not finish in 120 s";
  if (auto e = f.get()) std::rethrow_exception(e);
}

TEST(HttpBridge, BackboneMessagesReachTheHubAndHubPublishesGoToTheBackbone) {
  const auto port = std::to_string(free_port());
  RuntimeOptions options;
  options.handle_signals = false;
  options.config_text = R"(
transports:
  backbone: { type: inproc }
  hub:
    type: http
    listen: 127.0.0.1:)" + port + R"(
    bridges:
      - { from: backbone, topics: [prices] }
bindings:
  prices_on_backbone: { transport: backbone, name: prices }
  prices_on_hub: { transport: hub, name: prices }
)";
  auto registry = Registry::with_builtins();
  ASSERT_TRUE(http_transport::register_transport(*registry).ok());
  options.registry = std::move(registry);
  auto created = Runtime::create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status();
  auto& rt = **created;
  ASSERT_TRUE(rt.start().ok());

  run_on(rt, [&]() -> awaitable<void> {
    auto backbone = rt.topic("prices_on_backbone");
    auto hub = rt.topic("prices_on_hub");
    auto on_hub = co_await hub.subscribe();
    auto on_backbone = co_await backbone.subscribe();
    // The next payload on `s`, acknowledged (the backbone is at-least-once: an unsettled
    // delivery would come back).
    auto take = [](Stream<Delivery>& s) -> awaitable<std::string> {
      auto n = co_await conformance::next_for(s, 30s);
      if (!n.delivery) co_return std::string("<nothing within 30 s>");
      n.delivery->ack();
      co_return n.delivery->message().payload.str();
    };

    // An event stream over HTTP on the hub, opened before anything is published.
    http::Client client(co_await asio::this_coro::executor);
    http::EventSource events(client, "http://127.0.0.1:" + port + "/topics/prices/events");
    co_await events.open();

    co_await backbone.publish("from the backbone");
    EXPECT_EQ(co_await take(on_hub), "from the backbone");
    auto e = co_await events.next();
    EXPECT_EQ(e.event.data, "from the backbone");

    // Publishing to the hub goes through the backbone: its subscribers see it, and the hub
    // (fed by the bridge) shows it once.
    EXPECT_EQ(co_await take(on_backbone), "from the backbone");
    co_await hub.publish("from the hub");
    EXPECT_EQ(co_await take(on_backbone), "from the hub");
    EXPECT_EQ(co_await take(on_hub), "from the hub");
    e = co_await events.next();
    EXPECT_EQ(e.event.data, "from the hub");

    // POST /topics/prices on the hub goes to the backbone too (202: the position comes later).
    http::Request post{http::bhttp::verb::post, "/", 11};
    post.body() = "posted to the hub";
    auto answer = co_await client.request("http://127.0.0.1:" + port + "/topics/prices", std::move(post));
    EXPECT_EQ(answer.result_int(), 202u) << answer.body();
    EXPECT_EQ(co_await take(on_backbone), "posted to the hub");
    e = co_await events.next();
    EXPECT_EQ(e.event.data, "posted to the hub");
    events.close();
  });
  rt.stop();
  rt.wait();
}

TEST(HttpBridge, ABridgeFromAnUnknownTransportFailsAtStart) {
  RuntimeOptions options;
  options.handle_signals = false;
  options.config_text = R"(
transports:
  hub:
    type: http
    listen: 127.0.0.1:0
    bridges:
      - { from: nowhere, topics: [prices] }
)";
  auto registry = Registry::with_builtins();
  ASSERT_TRUE(http_transport::register_transport(*registry).ok());
  options.registry = std::move(registry);
  auto created = Runtime::create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status();
  auto status = (*created)->start();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("bridge from 'nowhere': no such transport"), std::string::npos) << status;
}

}  // namespace
}  // namespace patchbay
