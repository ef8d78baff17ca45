// The conformance suite against a real rabbitmq-server (scripts/brokers start rabbitmq), with the
// transport loaded as a module through config `plugins:`. Skipped, saying how to start the
// broker, when PATCHBAY_RABBITMQ_PORT is not set.
#include <patchbay/conformance/suite.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!std::getenv("PATCHBAY_RABBITMQ_PORT")) {
    // Register one test that explains the skip, rather than none (ctest would then report nothing).
    ::testing::RegisterTest(
        "Conformance/rabbitmq", "needs_broker", nullptr, nullptr, __FILE__, __LINE__, []() -> ::testing::Test* {
          struct Skip : ::testing::Test {
            void TestBody() override {
              GTEST_SKIP() << "PATCHBAY_RABBITMQ_PORT is not set: run `scripts/brokers start rabbitmq` and source "
                              "$PATCHBAY_BROKER_DIR/env (scripts/test does both)";
            }
          };
          return new Skip;
        });
    return RUN_ALL_TESTS();
  }
  patchbay::conformance::Harness h;
  h.name = "rabbitmq";
  // Transient messages (persistent: false): the broker confirms a transient message once it is
  // enqueued, while a persistent one waits for the broker's disk sync (every 25 ms or so), which
  // makes the scenarios that await each publish in turn take ~40 s per 2,000 messages. The
  // transport then declares itself not durable, so the suite also checks that stop() drains
  // every subscription first. Persistent publishing with confirms is what the fault test
  // (fault_test.cpp: 100,000 messages, broker killed) and the other tests use.
  // Every scenario gets its own exchange, so that leftovers of one never reach another.
  h.make = [] {
    static int n = 0;
    const std::string config = std::string("plugins: [") + PATCHBAY_RABBITMQ_MODULE + "]\n" +
                               "default_transport: bus\n"
                               "transports:\n"
                               "  bus:\n"
                               "    type: rabbitmq\n"
                               "    url: amqp://guest:guest@127.0.0.1:${PATCHBAY_RABBITMQ_PORT}/\n"
                               "    exchange: conformance-" +
                               std::to_string(::getpid()) + "-" + std::to_string(++n) +
                               "\n"
                               "    max_payload: 16777216\n"
                               "    subscriber_queue_expiry: 60s\n"
                               "    persistent: false\n";
    return patchbay::conformance::from_config(config);
  };
  patchbay::conformance::register_suite(h);
  return RUN_ALL_TESTS();
}
