// The conformance suite against the built-in in-process transport.
#include <patchbay/conformance/suite.hpp>

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  patchbay::conformance::register_suite({
      .name = "inproc",
      .make = [] {
        return patchbay::conformance::from_config(
            "transports:\n"
            "  bus: { type: inproc, history: 256 }\n"
            "default_transport: bus\n");
      },
      .history_limit = 256,
  });
  // The same with a payload limit, so that the refusal scenario runs too.
  patchbay::conformance::register_suite({
      .name = "inproc_max_payload",
      .make = [] {
        return patchbay::conformance::from_config(
            "transports:\n"
            "  bus: { type: inproc, history: 256, max_payload: 65536 }\n"
            "default_transport: bus\n");
      },
      .history_limit = 256,
  });
  return RUN_ALL_TESTS();
}
