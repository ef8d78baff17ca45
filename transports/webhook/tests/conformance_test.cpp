// The conformance suite against the `webhook` transport, sender → receiver over real HTTP on
// loopback: each instance is one runtime with a hub (`type: http` with a `webhooks:` section
// that allowlists loopback and retries fast) and a `webhook` receiver registered with it
// (`url:`). Both are loaded as modules through config `plugins:`. A publish goes to the hub by
// POST, the hub's sender writes it to its outbox and POSTs it, signed, to the receiver's
// subscription URL; ack answers 204, nack 503 and the sender retries.
//
// Two harnesses: "webhook" (the default: up to max_concurrency deliveries in flight, no order)
// and "webhook_ordered" (`ordered: true`: the hub keeps one in flight per subscription).
#include <patchbay/conformance/suite.hpp>
#include <patchbay/conformance/test_support.hpp>
#include <patchbay/http/client.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>

namespace {

unsigned free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

std::string runtime_config(bool ordered, std::string hub = std::to_string(free_port())) {
  const auto receiver = std::to_string(free_port());
  return std::string("plugins: [") + PATCHBAY_HTTP_MODULE + ", " + PATCHBAY_WEBHOOK_MODULE + "]\n" + R"(
default_transport: hooks
transports:
  hub:
    type: http
    listen: 127.0.0.1:)" + hub + R"(
    open_topics: true
    limits: { body_limit: 8388608 }   # the binary scenario publishes 4 MiB
    webhooks:
      schedule: [0s, 50ms, 100ms, 200ms, 500ms, 1s, 2s, 5s, 10s]   # nack → 503 → retried quickly
      timeout: 60s
      allow: [127.0.0.0/8]            # the receiver is on loopback
  hooks:
    type: webhook
    listen: 127.0.0.1:)" + receiver + R"(
    url: http://127.0.0.1:)" + hub + R"(
    ordered: )" + (ordered ? "true" : "false") + R"(
    limits: { body_limit: 8388608, request_timeout: 60s }
)";
}

using namespace patchbay;
using namespace std::chrono_literals;

/// The hub's list of webhook subscriptions (GET /webhooks/subscriptions).
awaitable<std::string> list_subscriptions(http::Client& client, const std::string& hub) {
  http::Request req{boost::beast::http::verb::get, "/", 11};
  auto res = co_await client.request("http://127.0.0.1:" + hub + "/webhooks/subscriptions", std::move(req));
  co_return res.body();
}

// subscribe() registers a subscription at the hub with the receiver's own URL; closing the
// stream deletes it there.
TEST(WebhookHubRegistration, SubscribeRegistersAndCloseDeletes) {
  const auto hub = std::to_string(free_port());
  auto made = conformance::from_config(runtime_config(false, hub));
  ASSERT_TRUE(made.ok()) << made.status();
  auto inst = *std::move(made);
  http::Client client(inst.ex);
  conformance::run(inst, [&]() -> awaitable<void> {
    auto sub = co_await inst.transport->subscribe("orders.eu");
    const auto listed = co_await list_subscriptions(client, hub);
    EXPECT_NE(listed.find("/webhooks/orders.eu/"), std::string::npos) << listed;
    EXPECT_NE(listed.find("\"topics\":[\"orders.eu\"]"), std::string::npos) << listed;
    EXPECT_EQ(listed.find("whsec_"), std::string::npos) << "the list shows a secret: " << listed;
    sub.close();
    std::string after;
    for (int i = 0; i < 600; ++i) {
      after = co_await list_subscriptions(client, hub);
      if (after.find("orders.eu") == std::string::npos) break;
      co_await conformance::sleep_for(50ms);
    }
    EXPECT_EQ(after.find("orders.eu"), std::string::npos) << "still registered after close: " << after;
  });
  client.close_idle();
  if (inst.shutdown) inst.shutdown();
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (bool ordered : {false, true}) {
    patchbay::conformance::Harness h;
    h.name = ordered ? "webhook_ordered" : "webhook";
    h.bulk_messages = 2000;  // every message is two HTTP round trips (publish, delivery)
    h.make = [ordered] { return patchbay::conformance::from_config(runtime_config(ordered)); };
    patchbay::conformance::register_suite(h);
  }
  return RUN_ALL_TESTS();
}
