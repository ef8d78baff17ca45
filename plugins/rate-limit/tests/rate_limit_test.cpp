// The `rate-limit` middleware: the token bucket on a fake clock, reject and wait modes over a
// fake transport, and served calls limited when loaded as a module through config `plugins:`.
#include <patchbay/plugins/rate_limit/rate_limit.hpp>

#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <fake_transport.hpp>
#include <plugin_test.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::errc;
using patchbay::Message;
using patchbay::plugins::rate_limit::TokenBucket;
namespace asio = patchbay::asio;
namespace t = patchbay::plugins::testing;

TEST(TokenBucket, BurstThenRefillAtTheRate) {
  const auto t0 = patchbay::clock::now();
  TokenBucket b(10, 3);  // 10/s: one token per 100 ms
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b.take(0ms, t0), patchbay::duration::zero());
  EXPECT_FALSE(b.take(0ms, t0));                  // empty, no waiting allowed
  auto wait = b.take(1s, t0);                     // reserves the next token
  ASSERT_TRUE(wait);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(*wait).count(), 100);
  auto second = b.take(1s, t0);                   // queues behind the first
  ASSERT_TRUE(second);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(*second).count(), 200);
  EXPECT_FALSE(b.take(250ms, t0));                // would wait 300 ms
  EXPECT_EQ(b.take(0ms, t0 + 10s), patchbay::duration::zero());  // refilled (to the burst)
}

class RateLimit : public ::testing::Test {
 protected:
  RateLimit() : registry(patchbay::Registry::with_builtins()), fake(std::make_shared<t::FakeTransport>()) {
    EXPECT_TRUE(patchbay::plugins::rate_limit::register_middleware(*registry).ok());
  }
  std::shared_ptr<patchbay::Transport> make(const std::string& settings) {
    auto m = t::make_middleware(*registry, "rate-limit", settings, io.get_executor(), fake, "orders");
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : nullptr;
  }
  /// Publishes `n` times; how many succeeded, and the text of the last error.
  std::pair<int, std::string> publish(patchbay::Transport& m, int n) {
    return io.run([&]() -> awaitable<std::pair<int, std::string>> {
      int ok = 0;
      std::string error;
      for (int i = 0; i < n; ++i) {
        try {
          co_await m.publish(Message("x"));
          ++ok;
        } catch (const boost::system::system_error& e) {
          EXPECT_EQ(e.code(), errc::unavailable);
          error = e.what();
        }
      }
      co_return std::make_pair(ok, error);
    });
  }

  std::unique_ptr<patchbay::Registry> registry;
  std::shared_ptr<t::FakeTransport> fake;
  t::IoThread io;
};

TEST_F(RateLimit, RejectModeRefusesBeyondTheBurst) {
  auto m = make("{rate: 0.001, burst: 3, mode: reject}");  // no refill within the test
  auto [ok, error] = publish(*m, 5);
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(fake->attempts, 3);
  EXPECT_NE(error.find("rate-limit: binding 'orders'"), std::string::npos) << error;
}

TEST_F(RateLimit, WaitModePacesCalls) {
  auto m = make("{rate: 50, burst: 1, mode: wait}");  // one per 20 ms after the first
  const auto start = patchbay::clock::now();
  auto [ok, error] = publish(*m, 5);
  EXPECT_EQ(ok, 5) << error;
  // A lower bound only: four calls each waited for a token 20 ms after the previous one.
  EXPECT_GE(patchbay::clock::now() - start, 79ms);
}

TEST_F(RateLimit, WaitModeRefusesAWaitBeyondMaxWaitOrTheDeadline) {
  auto m = make("{rate: 0.001, burst: 1, mode: wait, max_wait: 50ms}");
  auto [ok, error] = publish(*m, 2);
  EXPECT_EQ(ok, 1);
  EXPECT_NE(error.find("rate-limit"), std::string::npos);
  auto r = make("{rate: 1, burst: 1, mode: wait, max_wait: 1h}");
  auto codes = io.run([&]() -> awaitable<std::vector<boost::system::error_code>> {
    std::vector<boost::system::error_code> out;
    for (int i = 0; i < 2; ++i) {
      try {
        co_await r->request("s", Message("q"), patchbay::clock::now() + 100ms);  // the 2nd would wait ~1 s
        out.emplace_back();
      } catch (const boost::system::system_error& e) {
        out.push_back(e.code());
      }
    }
    co_return out;
  });
  ASSERT_EQ(codes.size(), 2u);
  EXPECT_FALSE(codes[0]);
  EXPECT_EQ(codes[1], errc::unavailable);
}

TEST(RateLimitModule, ServedCallsBeyondTheLimitAreRefused) {
  auto rt = t::start_runtime(std::string("plugins: [ ") + PATCHBAY_RATE_LIMIT_MODULE + " ]\n" +
                             "transports: { bus: { type: inproc } }\n"
                             "bindings:\n"
                             "  quotes:\n"
                             "    transport: bus\n"
                             "    middleware: [ { type: rate-limit, rate: 1000, serve: { rate: 0.001, burst: 1 } } ]\n");
  ASSERT_TRUE(rt);
  patchbay::ServiceHandler handler = [](Message) -> awaitable<Message> { co_return Message("ok"); };
  asio::co_spawn(rt->get_executor(), rt->service("quotes").serve(handler), asio::detached);
  auto result = t::run(*rt, [&]() -> awaitable<std::string> {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto quotes = rt->service("quotes");
    std::string first;
    for (int i = 0; i < 2000 && first.empty(); ++i) {  // until the handler is registered
      try {
        first = (co_await quotes.request(Message("a"), 10s)).payload.str();
      } catch (const boost::system::system_error& e) {
        if (e.code() != errc::no_responders) throw;
      }
      if (!first.empty()) break;
      timer.expires_after(2ms);
      co_await timer.async_wait(asio::use_awaitable_t<patchbay::executor>{});
    }
    EXPECT_EQ(first, "ok");
    try {
      co_await quotes.request(Message("b"), 10s);
    } catch (const boost::system::system_error& e) {
      EXPECT_EQ(e.code(), errc::remote_error);
      co_return std::string(e.what());
    }
    co_return std::string("answered");
  });
  EXPECT_NE(result.find("rate-limit"), std::string::npos) << result;
  t::stop(rt);
}

TEST(RateLimitModule, BadSettingsAreReported) {
  auto error = t::create_error(std::string("plugins: [ ") + PATCHBAY_RATE_LIMIT_MODULE + " ]\n" +
                               "transports: { bus: { type: inproc } }\n"
                               "bindings:\n"
                               "  b:\n"
                               "    transport: bus\n"
                               "    middleware: [ { type: rate-limit, rate: 10, mode: drop } ]\n");
  EXPECT_NE(error.find("<string>:6:"), std::string::npos) << error;
  EXPECT_NE(error.find("wait"), std::string::npos) << error;
  auto missing = t::create_error(std::string("plugins: [ ") + PATCHBAY_RATE_LIMIT_MODULE + " ]\n" +
                                 "transports: { bus: { type: inproc } }\n"
                                 "bindings: { b: { transport: bus, middleware: [ { type: rate-limit } ] } }\n");
  EXPECT_NE(missing.find("`rate:`"), std::string::npos) << missing;
}

}  // namespace
