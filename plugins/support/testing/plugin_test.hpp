// plugin_test.hpp — helpers the middleware plugins' tests share: make and start a Runtime from
// YAML (optionally with factories linked in), and run a test coroutine on it with a deadline.
#pragma once

#include <patchbay/registry.hpp>
#include <patchbay/runtime.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <sstream>
#include <string>
#include <vector>

namespace patchbay::plugins::testing {

/// A started Runtime from `config`; `link` may register linked-in factories first. nullptr
/// (with a test failure) when it cannot be made.
inline std::unique_ptr<Runtime> start_runtime(std::string config, std::function<void(Registry&)> link = {}) {
  RuntimeOptions options;
  options.config_text = std::move(config);
  options.handle_signals = false;
  options.threads = 2;
  if (link) {
    options.registry = Registry::with_builtins();
    link(*options.registry);
  }
  auto rt = Runtime::create(std::move(options));
  EXPECT_TRUE(rt.ok()) << rt.status();
  if (!rt.ok()) return nullptr;
  auto started = (*rt)->start();
  EXPECT_TRUE(started.ok()) << started;
  if (!started.ok()) return nullptr;
  return std::move(*rt);
}

/// The error text Runtime::create gives for `config` (empty when it succeeds).
inline std::string create_error(std::string config, std::function<void(Registry&)> link = {}) {
  RuntimeOptions options;
  options.config_text = std::move(config);
  options.handle_signals = false;
  if (link) {
    options.registry = Registry::with_builtins();
    link(*options.registry);
  }
  auto rt = Runtime::create(std::move(options));
  return rt.ok() ? std::string() : std::string(rt.status().message());
}

/// Runs `body()` (a coroutine returning awaitable<T>) on a strand of `rt` and returns its
/// result; fails the test when it does not finish within `limit`; rethrows its exception.
template <typename F>
auto run(Runtime& rt, F body, std::chrono::seconds limit = std::chrono::seconds(120)) {
  auto done = asio::co_spawn(rt.get_executor(), body(), asio::use_future);
  if (done.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "test coroutine did not finish within " << limit.count() << " s";
    std::abort();  // the coroutine still references the test's frame
  }
  return done.get();
}

inline void stop(std::unique_ptr<Runtime>& rt) {
  if (!rt) return;
  rt->stop();
  rt->wait();
}

inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

/// A fresh file name under the test temp folder.
inline std::string temp_path(const std::string& stem) {
  const char* dir = std::getenv("TMPDIR");
  std::ostringstream p;
  p << (dir ? dir : "/tmp") << "/patchbay-" << stem << "-" << ::getpid() << "-"
    << std::chrono::steady_clock::now().time_since_epoch().count();
  return p.str();
}

}  // namespace patchbay::plugins::testing

namespace patchbay::plugins::testing {

/// An io_context run by one thread, for tests that build a middleware by hand.
class IoThread {
 public:
  IoThread() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~IoThread() {
    work_.reset();
    io_.stop();
    thread_.join();
  }
  executor get_executor() { return io_.get_executor(); }

  /// Runs `body()` on the io thread and returns its result (rethrows its exception).
  template <typename F>
  auto run(F body, std::chrono::seconds limit = std::chrono::seconds(120)) {
    auto done = asio::co_spawn(io_, body(), asio::use_future);
    if (done.wait_for(limit) != std::future_status::ready) {
      ADD_FAILURE() << "test coroutine did not finish within " << limit.count() << " s";
      std::abort();
    }
    return done.get();
  }

 private:
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace patchbay::plugins::testing
