// Internal to the conformance suite: the scenario table and the helpers scenarios share.
#pragma once

#include <patchbay/conformance/suite.hpp>

#include <patchbay/stream.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace patchbay::conformance {

/// A failed expectation inside a scenario; the runner reports it as a test failure.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define PB_REQUIRE(cond, what)                                                                   \
  do {                                                                                           \
    if (!(cond))                                                                                 \
      throw ::patchbay::conformance::Failure(std::string(__FILE__ ":") + std::to_string(__LINE__) + \
                                             ": expected " #cond ": " + (what));                  \
  } while (0)

struct Context {
  const Harness& harness;
  std::shared_ptr<Transport> transport;
  Features features;
  std::string scenario;
  /// A new strand on the transport's io_context: coroutines spawned on separate strands run in
  /// parallel on the io threads; each one is serialized, as cancellation requires.
  std::function<executor()> fresh;

  /// A topic or service name unique to this scenario run.
  std::string unique(const std::string& base) const;
};

struct Scenario {
  const char* name;
  bool (*applies)(const Features&, const Harness&);
  awaitable<void> (*run)(Context&);
};

const std::vector<Scenario>& scenarios();

}  // namespace patchbay::conformance
