// The conformance suite against a real nats-server, with the transport loaded as a module
// through config `plugins:`. The server is the one `scripts/brokers start nats` runs; its port
// comes from PATCHBAY_NATS_PORT. The suite is always registered (ctest lists the tests once per
// build), and skipped as a whole when the variable is unset.
#include <patchbay/conformance/suite.hpp>

#include <gtest/gtest.h>

#include <cstdlib>

namespace {

class NeedsNatsServer : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* port = std::getenv("PATCHBAY_NATS_PORT");
    if (!port || !*port)
      GTEST_SKIP() << "PATCHBAY_NATS_PORT is not set: run `scripts/brokers start nats` and source "
                      "$PATCHBAY_BROKER_DIR/env (scripts/test does both)";
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new NeedsNatsServer);
  patchbay::conformance::Harness h;
  h.name = "nats";
  const std::string config = std::string("plugins: [") + PATCHBAY_NATS_MODULE + "]\n" + R"(
default_transport: bus
transports:
  bus:
    type: nats
    url: nats://127.0.0.1:${PATCHBAY_NATS_PORT}
)";
  h.make = [config] { return patchbay::conformance::from_config(config); };
  patchbay::conformance::register_suite(h);
  return RUN_ALL_TESTS();
}
