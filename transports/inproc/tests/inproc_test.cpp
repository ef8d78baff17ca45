// Behaviour specific to the in-process transport: slow-subscriber policies, epochs, groups,
// and its settings' validation.
#include <patchbay/transports/inproc/inproc.hpp>

#include <patchbay/conformance/suite.hpp>
#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::Delivery;
using patchbay::Message;
using patchbay::Position;
using patchbay::Stream;
namespace asio = patchbay::asio;

patchbay::conformance::Instance make(const std::string& settings) {
  auto inst = patchbay::conformance::from_config("transports:\n  bus: " + settings + "\ndefault_transport: bus\n");
  EXPECT_TRUE(inst.ok()) << inst.status();
  return std::move(*inst);
}

/// Runs `body` on the instance's executor and waits (bounded) for it.
template <typename F>
void run(patchbay::conformance::Instance& inst, F body) {
  auto done = asio::co_spawn(inst.ex, body(), asio::use_future);
  ASSERT_EQ(done.wait_for(120s), std::future_status::ready) << "test coroutine did not finish";
  done.get();
  inst.shutdown();
}

/// next() with a deadline; nullopt when nothing arrived (lossless: see conformance::next_for).
awaitable<std::optional<Delivery>> next_within(Stream<Delivery>& s, patchbay::duration d) {
  auto n = co_await patchbay::conformance::next_for(s, d);
  co_return std::move(n.delivery);
}

Message msg(std::string body, std::string topic = "t") {
  Message m{patchbay::Bytes(std::move(body))};
  m.topic = std::move(topic);
  m.stamp();
  return m;
}

TEST(Inproc, DropOldestSkipsASlowSubscriberAheadWithAGap) {
  auto inst = make("{ type: inproc, history: 16, buffer: 4, slow_subscriber: drop_oldest }");
  run(inst, [&]() -> awaitable<void> {
    auto sub = co_await inst.transport->subscribe("t", {});
    for (int i = 0; i < 10; ++i) co_await inst.transport->publish(msg(std::to_string(i)));  // never waits
    auto gap = co_await next_within(sub, 30s);
    EXPECT_TRUE(gap && gap->is_gap());
    if (!gap || !gap->is_gap()) co_return;
    EXPECT_EQ(gap->gap().missed, 6u);
    EXPECT_NE(gap->gap().reason.find("slow subscriber"), std::string::npos);
    for (int i = 6; i < 10; ++i) {
      auto d = co_await next_within(sub, 30s);
      EXPECT_TRUE(d && !d->is_gap());
      if (!d) co_return;
      EXPECT_EQ(d->message().payload.str(), std::to_string(i));
      d->ack();
    }
  });
}

TEST(Inproc, BlockPolicyHoldsThePublisherUntilTheSubscriberCatchesUp) {
  auto inst = make("{ type: inproc, history: 8, buffer: 4 }");
  run(inst, [&]() -> awaitable<void> {
    auto sub = co_await inst.transport->subscribe("t", {});
    for (int i = 0; i < 4; ++i) co_await inst.transport->publish(msg(std::to_string(i)));
    std::atomic<bool> fifth_published{false};
    asio::co_spawn(co_await asio::this_coro::executor, [&]() -> awaitable<void> {
      co_await inst.transport->publish(msg("4"));
      fifth_published = true;
    }, asio::detached);
    asio::steady_timer t(co_await asio::this_coro::executor, 300ms);
    co_await t.async_wait(asio::use_awaitable_t<patchbay::executor>{});
    EXPECT_FALSE(fifth_published.load()) << "the publisher was not held by a subscriber 4 messages behind";
    for (int i = 0; i < 5; ++i) {
      auto d = co_await next_within(sub, 30s);
      EXPECT_TRUE(d && !d->is_gap());
      if (!d) co_return;
      EXPECT_EQ(d->message().payload.str(), std::to_string(i));  // nothing lost, nothing skipped
      d->ack();
    }
    EXPECT_TRUE(fifth_published.load());
  });
}

TEST(Inproc, APositionFromAnotherInstanceGivesAnEpochGap) {
  std::string token;
  {
    auto first = make("{ type: inproc }");
    run(first, [&]() -> awaitable<void> {
      auto sub = co_await first.transport->subscribe("t", {});
      co_await first.transport->publish(msg("old"));
      auto d = co_await next_within(sub, 30s);
      EXPECT_TRUE(d.has_value());
      if (d) token = d->position().token();
    });
  }
  auto second = make("{ type: inproc }");
  run(second, [&]() -> awaitable<void> {
    co_await second.transport->publish(msg("new"));
    auto sub = co_await second.transport->subscribe("t", patchbay::SubscribeOptions().from(Position::after(token)));
    auto gap = co_await next_within(sub, 30s);
    EXPECT_TRUE(gap && gap->is_gap());
    if (gap && gap->is_gap()) {
      EXPECT_NE(gap->gap().reason.find("epoch"), std::string::npos);
    }
    auto d = co_await next_within(sub, 30s);
    EXPECT_TRUE(d && !d->is_gap() && d->message().payload.view() == "new");
  });
}

TEST(Inproc, AGroupMemberLeavingHandsItsUnackedMessagesToTheOthers) {
  auto inst = make("{ type: inproc }");
  run(inst, [&]() -> awaitable<void> {
    auto leaver = co_await inst.transport->subscribe("t", patchbay::SubscribeOptions().group("g").max_in_flight(1));
    auto stayer = co_await inst.transport->subscribe("t", patchbay::SubscribeOptions().group("g"));
    co_await inst.transport->publish(msg("only"));
    // Whoever gets it first: if the leaver does, it leaves without settling.
    auto d = co_await next_within(leaver, 2s);
    if (d) {
      leaver.close();
      d.reset();  // destroyed unsettled: back to the group
    }
    auto again = co_await next_within(stayer, 30s);
    EXPECT_TRUE(again && !again->is_gap() && again->message().payload.view() == "only");
  });
}

TEST(Inproc, SettingsAreValidatedWithTheirPlace) {
  patchbay::RuntimeOptions options;
  options.config_text = "transports:\n  bus: { type: inproc, history: 4, buffer: 8 }\n";
  auto rt = patchbay::Runtime::create(std::move(options));
  ASSERT_FALSE(rt.ok());
  EXPECT_NE(rt.status().message().find("<string>:2:"), absl::string_view::npos) << rt.status();
  EXPECT_NE(rt.status().message().find("buffer"), absl::string_view::npos) << rt.status();

  patchbay::RuntimeOptions bad_policy;
  bad_policy.config_text = "transports:\n  bus:\n    type: inproc\n    slow_subscriber: sometimes\n";
  rt = patchbay::Runtime::create(std::move(bad_policy));
  ASSERT_FALSE(rt.ok());
  EXPECT_NE(rt.status().message().find("<string>:4:"), absl::string_view::npos) << rt.status();
  EXPECT_NE(rt.status().message().find("drop_oldest"), absl::string_view::npos) << rt.status();
}

TEST(Inproc, RequireOfAMissingFeatureIsRefusedWithBindingTransportAndFeature) {
  patchbay::RuntimeOptions options;
  options.config_text =
      "transports:\n  bus: { type: inproc }\nbindings:\n  orders:\n    transport: bus\n    require: [ordered, durable]\n";
  auto rt = patchbay::Runtime::create(std::move(options));
  ASSERT_FALSE(rt.ok());
  const auto text = std::string(rt.status().message());
  EXPECT_NE(text.find("orders"), std::string::npos) << text;
  EXPECT_NE(text.find("'bus'"), std::string::npos) << text;
  EXPECT_NE(text.find("'durable'"), std::string::npos) << text;
  EXPECT_EQ(text.find("'ordered'"), std::string::npos) << text;
}

}  // namespace
