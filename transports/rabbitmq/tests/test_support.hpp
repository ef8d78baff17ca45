// Helpers shared by the rabbitmq transport's tests: making a transport from config (the module
// loaded through `plugins:`), running a coroutine to completion from the test thread, and
// skipping when no broker was started.
#pragma once

#include <patchbay/conformance/suite.hpp>
#include <patchbay/error.hpp>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdlib>
#include <string>

namespace patchbay::rabbitmq_test {

using namespace std::chrono_literals;

#define PB_NEED_BROKER()                                                                                    \
  do {                                                                                                      \
    if (!std::getenv("PATCHBAY_RABBITMQ_PORT"))                                                             \
      GTEST_SKIP() << "PATCHBAY_RABBITMQ_PORT is not set: run `scripts/brokers start rabbitmq` and source " \
                      "$PATCHBAY_BROKER_DIR/env (scripts/test does both)";                                  \
  } while (0)

inline std::string unique(const std::string& prefix) { return prefix + "-" + Message::generate_id().substr(0, 12); }

/// Config text for one rabbitmq transport named `bus`, loaded as a module; `extra` adds settings
/// (each line indented by four spaces).
inline std::string config_for(const std::string& url, const std::string& extra = {}) {
  return std::string("plugins: [") + PATCHBAY_RABBITMQ_MODULE + "]\n" +
         "default_transport: bus\n"
         "transports:\n"
         "  bus:\n"
         "    type: rabbitmq\n"
         "    url: " +
         url + "\n" + extra;
}

inline std::string shared_url() { return "amqp://guest:guest@127.0.0.1:${PATCHBAY_RABBITMQ_PORT}/"; }

/// Runs `f()` (returning awaitable<T>) on the instance's strand and waits for it.
/// The lambda coroutine lives in this frame until the coroutine has finished (run() blocks), as
/// GCC 12 needs (docs/architecture.md).
template <typename F>
auto run(conformance::Instance& inst, F&& f) {
  std::decay_t<F> coroutine = std::forward<F>(f);
  return asio::co_spawn(
             inst.ex, [&coroutine] { return coroutine(); }, asio::use_future)
      .get();
}

struct Made {
  conformance::Instance inst;
  ~Made() {
    if (inst.shutdown) inst.shutdown();
  }
};

}  // namespace patchbay::rabbitmq_test
