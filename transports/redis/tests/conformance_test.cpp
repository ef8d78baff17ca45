// The conformance suite against a real redis-server, in both modes, with the transport loaded
// as a module through config `plugins:`. Needs the server of `scripts/brokers start redis`
// (PATCHBAY_REDIS_PORT); without it every scenario is skipped with a message saying so.
#include <patchbay/conformance/suite.hpp>

#include <gtest/gtest.h>

#include <cstdlib>

namespace {

std::string config(const std::string& settings) {
  return std::string("plugins: [") + PATCHBAY_REDIS_MODULE + "]\n" +
         "default_transport: bus\n"
         "transports:\n"
         "  bus: { type: redis, url: 'redis://127.0.0.1:${PATCHBAY_REDIS_PORT}', " + settings + " }\n";
}

/// Skips every test (GTEST_SKIP in the environment's SetUp) when no redis-server is configured.
class NeedsRedis : public testing::Environment {
 public:
  void SetUp() override {
    if (std::getenv("PATCHBAY_REDIS_PORT") == nullptr)
      GTEST_SKIP() << "PATCHBAY_REDIS_PORT is not set: run `scripts/brokers start redis` and source "
                      "$PATCHBAY_BROKER_DIR/env (scripts/test does both)";
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const bool have_redis = std::getenv("PATCHBAY_REDIS_PORT") != nullptr;
  auto make = [have_redis](std::string settings) {
    return [have_redis, settings]() -> absl::StatusOr<patchbay::conformance::Instance> {
      if (!have_redis)
        return absl::FailedPreconditionError(
            "PATCHBAY_REDIS_PORT is not set: run `scripts/brokers start redis` and source $PATCHBAY_BROKER_DIR/env");
      return patchbay::conformance::from_config(config(settings));
    };
  };
  testing::AddGlobalTestEnvironment(new NeedsRedis);

  patchbay::conformance::Harness pubsub;
  pubsub.name = "redis_pubsub";
  pubsub.make = make("mode: pubsub, max_payload: 8388608");
  patchbay::conformance::register_suite(pubsub);

  patchbay::conformance::Harness streams;
  streams.name = "redis_streams";
  // max_len bounds the history exactly (trim: exact), above the bulk scenarios' 10,000
  // messages: Redis cannot hold publishers back for a subscriber that lags, so a smaller bound
  // would trim entries a subscriber has not read yet.
  streams.make = make("mode: streams, max_len: 12000, trim: exact, max_payload: 8388608");
  streams.history_limit = 12000;
  patchbay::conformance::register_suite(streams);
  return RUN_ALL_TESTS();
}
