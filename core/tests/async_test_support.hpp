// Helpers shared by the core's coroutine tests: run a test coroutine with a deadline, and
// assertions that work inside coroutines.
#pragma once

#include <patchbay/asio.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <future>
#include <thread>
#include <vector>

namespace patchbay::testing_support {

// ASSERT_* returns from the enclosing function, which a coroutine cannot do.
#define CO_ASSERT_TRUE(cond)                        \
  do {                                              \
    if (!(cond)) {                                  \
      ADD_FAILURE() << "assertion failed: " #cond; \
      co_return;                                    \
    }                                               \
  } while (0)
#define CO_ASSERT_READY(future) CO_ASSERT_TRUE((future).wait_for(std::chrono::seconds(0)) == std::future_status::ready)

/// The io_context executor of the running test, for coroutines that need a strand of their own.
inline executor pool;

/// Runs the coroutine made by `test` on a strand of a fresh io_context served by `threads`
/// threads, and fails (instead of hanging) when it has not finished within `limit`. Coroutines
/// on an io_context run by several threads live on strands, as Asio requires.
template <typename F>
void run_async(F test, int threads = 1, std::chrono::seconds limit = std::chrono::seconds(120)) {
  asio::io_context io(threads);
  std::promise<std::exception_ptr> finished;
  auto result = finished.get_future();
  pool = io.get_executor();
  asio::co_spawn(executor(asio::make_strand(io)), std::move(test),
                 [&finished](std::exception_ptr e) { finished.set_value(e); });
  std::vector<std::thread> threads_running;
  for (int i = 0; i < threads; ++i) threads_running.emplace_back([&io] { io.run(); });
  const bool done = result.wait_for(limit) == std::future_status::ready;
  io.stop();
  for (auto& t : threads_running) t.join();
  ASSERT_TRUE(done) << "the test coroutine did not finish within " << limit.count() << "s";
  if (auto e = result.get()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      FAIL() << "the test coroutine threw: " << ex.what();
    }
  }
}

/// Sleeps; tests poll conditions with it under a generous overall deadline.
inline awaitable<void> sleep_for(duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable_t<executor>{});
}

/// Lets other ready handlers run a few times (e.g. for a spawned coroutine to reach its
/// suspension point on a single-threaded io_context).
inline awaitable<void> yield(int times = 16) {
  for (int i = 0; i < times; ++i)
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable_t<executor>{});
}

}  // namespace patchbay::testing_support
