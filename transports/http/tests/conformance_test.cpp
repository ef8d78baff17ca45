// The conformance suite against the `http` transport, loaded as a module through config
// `plugins:`: requests travel over real loopback sockets (the transport calls its own
// listener), topics are the hub's.
#include <patchbay/conformance/suite.hpp>

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  using patchbay::conformance::Harness;
  Harness h;
  h.name = "http";
  h.history_limit = 16384;  // the ring holds a whole bulk scenario: the hub is lossless within its history
  const std::string config = std::string("plugins: [") + PATCHBAY_HTTP_MODULE + "]\n" + R"(
default_transport: web
transports:
  web:
    type: http
    listen: 127.0.0.1:0
    history: 16384
    open_topics: true
)";
  h.make = [config] { return patchbay::conformance::from_config(config); };
  patchbay::conformance::register_suite(h);
  return RUN_ALL_TESTS();
}
