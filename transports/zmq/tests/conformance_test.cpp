// The conformance suite over zmq tcp:// and ipc://, with the transport loaded as a module
// through config `plugins:` (not linked in): every role bound and connected to itself.
#include "test_support.hpp"

#include <patchbay/conformance/suite.hpp>

#include <gtest/gtest.h>

namespace zt = patchbay::zeromq::testing;

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  patchbay::conformance::register_suite({
      .name = "zmq_tcp",
      .make = [] {
        return zt::retry_busy([] { return patchbay::conformance::from_config(zt::self_config(PATCHBAY_ZMQ_MODULE, zt::tcp_wiring())); });
      },
  });
  patchbay::conformance::register_suite({
      .name = "zmq_ipc",
      .make = [] { return patchbay::conformance::from_config(zt::self_config(PATCHBAY_ZMQ_MODULE, zt::ipc_wiring())); },
  });
  // With a payload limit, so that the refusal scenario runs too (fewer bulk messages: the
  // bulk scenarios already ran above).
  patchbay::conformance::register_suite({
      .name = "zmq_tcp_max_payload",
      .make =
          [] {
            return zt::retry_busy([] {
              return patchbay::conformance::from_config(
                  zt::self_config(PATCHBAY_ZMQ_MODULE, zt::tcp_wiring(), "    max_payload: 65536\n"));
            });
          },
      .bulk_messages = 1000,
  });
  return RUN_ALL_TESTS();
}
