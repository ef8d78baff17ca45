// patchbay/conformance/suite.hpp — the one test suite that defines what a transport is.
//
// Every transport runs the same scenarios, each skipped only where the transport's declared
// Features say it does not apply (as in Watermill's universal pub/sub tests). A transport's
// test registers the suite in a few lines:
//
//     int main(int argc, char** argv) {
//       testing::InitGoogleTest(&argc, argv);
//       patchbay::conformance::register_suite({
//           .name = "inproc",
//           .make = [] { return patchbay::conformance::from_config("transports: {bus: {type: inproc}}\n"
//                                                                  "default_transport: bus\n"); },
//           .history_limit = 256});
//       return RUN_ALL_TESTS();
//     }
//
// Tests are named Conformance/<name>.<scenario>; every failure message starts with
// "[<name>] <scenario>:". Each scenario gets a fresh transport instance and unique topic and
// service names, runs with generous deadlines (no wall-clock assertions), and fails instead of
// hanging when its overall deadline passes.
#pragma once

#include <patchbay/runtime.hpp>
#include <patchbay/stream.hpp>
#include <patchbay/transport.hpp>

#include <absl/status/statusor.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace patchbay::conformance {

/// A transport ready for one scenario, running on some io threads.
struct Instance {
  /// Owns whatever runs the io_context (e.g. a Runtime). Declared first so that it is
  /// destroyed last: a module's transport must be released before its code is unmapped.
  std::shared_ptr<void> keep_alive;
  std::shared_ptr<Transport> transport;
  executor ex;                     ///< where the scenario runs: a strand on the transport's io_context
  std::function<executor()> fresh; ///< a new strand on the same io_context (parallel coroutines)
  std::function<void()> shutdown;  ///< stops it after the scenario (optional)
};

struct Harness {
  /// Names the transport in test names and failure messages ("inproc", "rabbitmq").
  std::string name;
  /// Makes a fresh, started instance. Called once per scenario, on the test's thread.
  std::function<absl::StatusOr<Instance>()> make;
  /// How many messages per topic the transport keeps for replay, when it is bounded and known;
  /// 0 skips the history-trim gap scenario.
  std::size_t history_limit = 0;
  /// Overall deadline of one scenario before it is failed.
  std::chrono::seconds scenario_timeout{120};
  /// How long a delivery that should arrive may take before the scenario fails.
  std::chrono::seconds delivery_timeout{30};
  /// How long to watch for a delivery that must not arrive (negative checks).
  std::chrono::milliseconds quiet_period{300};
  /// Messages in the bulk scenarios (groups, ordering, concurrency).
  std::size_t bulk_messages = 10'000;
};

/// Registers every scenario as a GoogleTest test. Call after InitGoogleTest, before
/// RUN_ALL_TESTS.
void register_suite(Harness harness);

/// The outcome of waiting for one delivery with a deadline. Waiting is lossless: a delivery
/// that arrives while the deadline passes is returned, never dropped.
struct Next {
  enum class kind { item, ended, timed_out } what;
  std::optional<Delivery> delivery;
};
/// For transports' own tests too.
awaitable<Next> next_for(Stream<Delivery>& stream, duration d);

/// An Instance from a Runtime built from YAML `config_text` (relative plugin paths are taken
/// from the current folder); the transport is the config's default transport. The runtime is
/// started with 2 io threads and stopped by `shutdown`.
absl::StatusOr<Instance> from_config(const std::string& config_text, int threads = 2);

}  // namespace patchbay::conformance
