// The `retry` middleware over a scripted fake transport (retries, backoff bound by the caller's
// deadline, per-attempt timeout, circuit breaker states), and loaded as a module through config
// `plugins:`.
#include <patchbay/plugins/retry/retry.hpp>

#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <fake_transport.hpp>
#include <plugin_test.hpp>

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::errc;
using patchbay::Message;
namespace asio = patchbay::asio;
namespace t = patchbay::plugins::testing;

class Retry : public ::testing::Test {
 protected:
  Retry() : registry(patchbay::Registry::with_builtins()), fake(std::make_shared<t::FakeTransport>()) {
    EXPECT_TRUE(patchbay::plugins::retry::register_middleware(*registry).ok());
  }
  std::shared_ptr<patchbay::Transport> make(const std::string& settings) {
    auto m = t::make_middleware(*registry, "retry", settings, io.get_executor(), fake, "orders");
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : nullptr;
  }
  /// Publishes once; the error it ended with (errc::ok on success) and its text.
  std::pair<boost::system::error_code, std::string> publish(patchbay::Transport& m) {
    return io.run([&]() -> awaitable<std::pair<boost::system::error_code, std::string>> {
      try {
        Message msg("x");
        msg.topic = "orders";
        co_await m.publish(std::move(msg));
      } catch (const boost::system::system_error& e) {
        co_return std::make_pair(e.code(), std::string(e.what()));
      }
      co_return std::make_pair(boost::system::error_code(), std::string());
    });
  }

  std::unique_ptr<patchbay::Registry> registry;
  std::shared_ptr<t::FakeTransport> fake;
  t::IoThread io;
};

TEST_F(Retry, RetriesRetryableErrorsUntilSuccess) {
  auto m = make("{max_attempts: 3, initial_backoff: 1ms, circuit_breaker: {failure_threshold: 0}}");
  fake->script({errc::unavailable, errc::timed_out});
  EXPECT_FALSE(publish(*m).first);
  EXPECT_EQ(fake->attempts, 3);
}

TEST_F(Retry, GivesUpAfterMaxAttemptsWithTheLastError) {
  auto m = make("{max_attempts: 3, initial_backoff: 1ms, circuit_breaker: {failure_threshold: 0}}");
  fake->otherwise(errc::unavailable);
  EXPECT_EQ(publish(*m).first, errc::unavailable);
  EXPECT_EQ(fake->attempts, 3);
}

TEST_F(Retry, OtherErrorsAreNotRetried) {
  auto m = make("{max_attempts: 5, initial_backoff: 1ms, retry_on: [unavailable]}");
  fake->script({errc::timed_out});
  EXPECT_EQ(publish(*m).first, errc::timed_out);
  EXPECT_EQ(fake->attempts, 1);
  fake->script({errc::bad_message});
  EXPECT_EQ(publish(*m).first, errc::bad_message);
  EXPECT_EQ(fake->attempts, 2);
}

TEST_F(Retry, EachAttemptIsBoundedByTheTimeout) {
  auto m = make("{max_attempts: 2, initial_backoff: 1ms, timeout: 50ms, circuit_breaker: {failure_threshold: 0}}");
  fake->hang(true);
  auto [ec, text] = publish(*m);
  EXPECT_EQ(ec, errc::timed_out) << text;
  EXPECT_EQ(fake->attempts, 2);
}

TEST_F(Retry, RequestsStopRetryingAtTheCallersDeadline) {
  auto m = make("{max_attempts: 1000, initial_backoff: 20ms, max_backoff: 20ms, jitter: 0, circuit_breaker: {failure_threshold: 0}}");
  fake->otherwise(errc::unavailable);
  auto ec = io.run([&]() -> awaitable<boost::system::error_code> {
    try {
      co_await m->request("quotes", Message("q"), patchbay::clock::now() + 200ms);
    } catch (const boost::system::system_error& e) {
      co_return e.code();
    }
    co_return boost::system::error_code();
  });
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_LT(fake->attempts, 1000);  // ended by the deadline, not by max_attempts
  // And a request that succeeds after one failure returns the reply.
  fake->otherwise(errc::ok);
  fake->script({errc::unavailable});
  auto reply = io.run([&]() -> awaitable<std::string> {
    Message r = co_await m->request("quotes", Message("q"), patchbay::clock::now() + 60s);
    co_return r.payload.str();
  });
  EXPECT_EQ(reply, "reply to q");
}

TEST_F(Retry, CircuitOpensFailsFastThenLetsOneTrialThrough) {
  auto m = make("{max_attempts: 1, circuit_breaker: {failure_threshold: 2, open_for: 100ms}}");
  fake->otherwise(errc::unavailable);
  EXPECT_EQ(publish(*m).first, errc::unavailable);
  EXPECT_EQ(publish(*m).first, errc::unavailable);
  EXPECT_EQ(fake->attempts, 2);
  // Open: fails at once, without calling the transport.
  auto [ec, text] = publish(*m);
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_NE(text.find("circuit open"), std::string::npos) << text;
  EXPECT_NE(text.find("'orders'"), std::string::npos) << text;
  EXPECT_EQ(fake->attempts, 2);

  // After open_for, one trial goes through; it fails, so the circuit opens again.
  int before = fake->attempts;
  while (fake->attempts == before) {
    auto r = publish(*m);
    ASSERT_EQ(r.first, errc::unavailable) << r.second;
  }
  EXPECT_EQ(fake->attempts, before + 1);
  EXPECT_NE(publish(*m).second.find("circuit open"), std::string::npos);

  // The transport recovers: the next trial succeeds and closes the circuit.
  fake->otherwise(errc::ok);
  for (;;) {
    auto r = publish(*m);
    if (!r.first) break;
    ASSERT_NE(r.second.find("circuit open"), std::string::npos) << r.second;
  }
  const int closed_at = fake->attempts;
  EXPECT_FALSE(publish(*m).first);
  EXPECT_FALSE(publish(*m).first);
  EXPECT_EQ(fake->attempts, closed_at + 2);
}

TEST_F(Retry, BadSettingsAreReported) {
  for (const char* bad : {"{retry_on: [unavailabel]}", "{jitter: 2}", "{max_attempts: 0}", "{operations: [subscribe]}",
                          "{circuit_breaker: {threshold: 3}}"}) {
    auto m = t::make_middleware(*registry, "retry", bad, io.get_executor(), fake);
    EXPECT_FALSE(m.ok()) << bad;
  }
}

TEST(RetryModule, LoadsThroughPluginsAndPublishes) {
  auto rt = t::start_runtime(std::string("plugins: [ ") + PATCHBAY_RETRY_MODULE + " ]\n" +
                             "transports: { bus: { type: inproc } }\n"
                             "bindings:\n"
                             "  orders:\n"
                             "    transport: bus\n"
                             "    middleware: [ { type: retry, max_attempts: 3, timeout: 5s } ]\n");
  ASSERT_TRUE(rt);
  auto got = t::run(*rt, [&]() -> awaitable<std::string> {
    auto topic = rt->topic("orders");
    auto sub = co_await topic.subscribe();
    co_await topic.publish(Message("through retry"));
    auto d = co_await sub.next();
    if (!d) throw std::runtime_error("subscription ended");
    d->ack();
    co_return d->message().payload.str();
  });
  EXPECT_EQ(got, "through retry");
  t::stop(rt);
}

}  // namespace
