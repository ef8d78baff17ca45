// patchbay/conformance/test_support.hpp — small helpers for a transport's own tests (beside the
// conformance suite): run a test coroutine on an Instance, wait on a condition, read with a
// deadline, make a message. Header-only; include it from a test, never from a library.
#pragma once

#include <patchbay/conformance/suite.hpp>
#include <patchbay/message.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <optional>
#include <string>

namespace patchbay::conformance {

/// Runs `body()` on the instance's executor and waits for it at most `limit`; rethrows its failure.
template <typename F>
void run(Instance& inst, F body, duration limit = std::chrono::seconds(150)) {
  auto done = asio::co_spawn(inst.ex, body(), asio::use_future);
  ASSERT_EQ(done.wait_for(limit), std::future_status::ready) << "test coroutine did not finish";
  done.get();
}

inline awaitable<void> sleep_for(duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable_t<executor>{});
}

/// Waits until `cond()` holds, at most `limit`; returns whether it held.
template <typename Cond>
awaitable<bool> eventually(Cond cond, duration limit = std::chrono::seconds(30)) {
  const auto until = clock::now() + limit;
  while (!cond()) {
    if (clock::now() >= until) co_return false;
    co_await sleep_for(std::chrono::milliseconds(5));
  }
  co_return true;
}

/// next() with a deadline; std::nullopt when nothing arrived or the stream ended.
inline awaitable<std::optional<Delivery>> next_within(Stream<Delivery>& s, duration d = std::chrono::seconds(30)) {
  auto n = co_await next_for(s, d);
  co_return std::move(n.delivery);
}

/// A stamped message with a text payload.
inline Message msg(std::string topic, std::string body) {
  Message m{Bytes(std::move(body))};
  m.topic = std::move(topic);
  m.stamp();
  return m;
}

}  // namespace patchbay::conformance
