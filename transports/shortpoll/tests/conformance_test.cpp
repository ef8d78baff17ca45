// The conformance suite against the `shortpoll` transport: each instance is one runtime with a
// hub (`type: http`, listening on loopback) and a `shortpoll` transport that subscribes to it by
// short polling (a small interval, so that the bulk scenarios finish quickly) and publishes by
// POST. Both are loaded as modules through config `plugins:`;
// every message crosses real sockets twice.
#include <patchbay/conformance/suite.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>

namespace {

/// A port that was free a moment ago (the kernel hands out ephemeral ports in sequence, so it
/// is not reused right away).
unsigned free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  patchbay::conformance::Harness h;
  h.name = "shortpoll";
  h.history_limit = 16384;  // the ring holds a whole bulk scenario: the hub is lossless within its history
  h.make = [] {
    const auto port = std::to_string(free_port());
    return patchbay::conformance::from_config(std::string("plugins: [") + PATCHBAY_HTTP_MODULE + ", " +
                                              PATCHBAY_SHORTPOLL_MODULE + "]\n" + R"(
default_transport: feed
transports:
  hub:
    type: http
    listen: 127.0.0.1:)" + port + R"(
    history: 16384
    open_topics: true
    limits: { body_limit: 8388608 }  # the binary scenario publishes 4 MiB
  feed:
    type: shortpoll
    url: http://127.0.0.1:)" + port + R"(
    interval: 20ms
    jitter: 0.2
    retry_delay: 50ms
)");
  };
  patchbay::conformance::register_suite(h);
  return RUN_ALL_TESTS();
}
