// The `headers` middleware, linked in and loaded as a module through config `plugins:`.
#include <patchbay/plugins/headers/headers.hpp>

#include <patchbay/conformance/suite.hpp>
#include <patchbay/runtime.hpp>

#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::Message;
namespace asio = patchbay::asio;

constexpr const char* kBindings =
    "transports:\n"
    "  bus: { type: inproc }\n"
    "bindings:\n"
    "  orders:\n"
    "    transport: bus\n"
    "    middleware:\n"
    "      - type: headers\n"
    "        set: { x-env: test, x-origin: billing }\n";

std::unique_ptr<patchbay::Runtime> make(std::string config, bool linked_in) {
  patchbay::RuntimeOptions options;
  options.config_text = std::move(config);
  options.handle_signals = false;
  options.threads = 2;
  if (linked_in) {
    options.registry = patchbay::Registry::with_builtins();
    EXPECT_TRUE(patchbay::plugins::headers::register_middleware(*options.registry).ok());
  }
  auto rt = patchbay::Runtime::create(std::move(options));
  EXPECT_TRUE(rt.ok()) << rt.status();
  if (!rt.ok()) return nullptr;
  EXPECT_TRUE((*rt)->start().ok());
  return std::move(*rt);
}

/// Publishes on `orders` and returns the headers the subscriber saw.
patchbay::Headers round_trip(patchbay::Runtime& rt, Message msg) {
  auto done = asio::co_spawn(
      rt.get_executor(),
      [&rt, msg = std::move(msg)]() mutable -> awaitable<patchbay::Headers> {
        auto topic = rt.topic("orders");
        auto sub = co_await topic.subscribe();
        co_await topic.publish(std::move(msg));
        auto d = co_await sub.next();
        if (!d) throw std::runtime_error("subscription ended");
        d->ack();
        co_return d->message().headers;
      },
      asio::use_future);
  EXPECT_EQ(done.wait_for(60s), std::future_status::ready);
  return done.get();
}

TEST(HeadersMiddleware, StampsConfiguredHeadersWhenLinkedIn) {
  auto rt = make(kBindings, true);
  ASSERT_TRUE(rt);
  Message m("order 1");
  m.headers.add("x-origin", "set by the application");
  auto headers = round_trip(*rt, std::move(m));
  EXPECT_EQ(headers.get("x-env"), "test");
  EXPECT_EQ(headers.get("x-origin"), "set by the application");  // overwrite: false keeps it
  auto bindings = rt->bindings();
  ASSERT_EQ(bindings.size(), 1u);
  EXPECT_EQ(bindings[0].middleware, std::vector<std::string>{"headers"});
  rt->stop();
  rt->wait();
}

TEST(HeadersMiddleware, LoadsAsAModuleThroughPlugins) {
  auto rt = make(std::string("plugins: [ ") + PATCHBAY_HEADERS_MODULE + " ]\n" + kBindings, false);
  ASSERT_TRUE(rt);
  auto headers = round_trip(*rt, Message("order 2"));
  EXPECT_EQ(headers.get("x-env"), "test");
  EXPECT_EQ(headers.get("x-origin"), "billing");
  bool from_module = false;
  for (const auto& f : rt->registry().list())
    if (f.type == "headers") from_module = f.origin.find("libpatchbay_headers.so") != std::string::npos;
  EXPECT_TRUE(from_module);
  rt->stop();
  rt->wait();
}

TEST(HeadersMiddleware, BadSettingsAreReportedWithTheirPlace) {
  patchbay::RuntimeOptions options;
  options.config_text =
      "transports:\n  bus: { type: inproc }\nbindings:\n  orders:\n    transport: bus\n    middleware:\n"
      "      - type: headers\n        sett: { x: y }\n";
  options.registry = patchbay::Registry::with_builtins();
  ASSERT_TRUE(patchbay::plugins::headers::register_middleware(*options.registry).ok());
  auto rt = patchbay::Runtime::create(std::move(options));
  ASSERT_FALSE(rt.ok());
  const std::string text(rt.status().message());
  EXPECT_NE(text.find("<string>:7:"), std::string::npos) << text;
  EXPECT_NE(text.find("names no header"), std::string::npos) << text;
}

TEST(HeadersMiddleware, UnknownMiddlewareTypeNamesTheKnownOnes) {
  patchbay::RuntimeOptions options;
  options.config_text =
      "transports:\n  bus: { type: inproc }\nbindings:\n  orders:\n    transport: bus\n    middleware:\n"
      "      - type: hedaers\n";
  auto rt = patchbay::Runtime::create(std::move(options));
  ASSERT_FALSE(rt.ok());
  const std::string text(rt.status().message());
  EXPECT_NE(text.find("unknown middleware type 'hedaers'"), std::string::npos) << text;
  EXPECT_NE(text.find("<string>:7:"), std::string::npos) << text;
}

}  // namespace
