// Fault tests: a zmq peer (a publisher in its own process) is killed with SIGKILL and started
// again on the same endpoint; the subscriber, untouched, resumes receiving from the new one.
#include <patchbay/transports/zmq/zmq.hpp>

#include "test_support.hpp"

#include <patchbay/conformance/suite.hpp>

#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <future>
#include <spawn.h>
#include <sys/wait.h>

extern char** environ;

namespace {

using namespace std::chrono_literals;
namespace zt = patchbay::zeromq::testing;
using patchbay::awaitable;

class Peer {
 public:
  Peer(const std::string& endpoint, const std::string& topic, const std::string& generation) {
    const char* argv[] = {PATCHBAY_ZMQ_TEST_PEER, endpoint.c_str(), topic.c_str(), generation.c_str(), nullptr};
    if (posix_spawn(&pid_, PATCHBAY_ZMQ_TEST_PEER, nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
      throw std::runtime_error("cannot start " PATCHBAY_ZMQ_TEST_PEER);
  }
  ~Peer() { kill(); }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

TEST(ZmqFault, SubscriberResumesAfterThePublisherIsKilledAndRestarted) {
  const std::string endpoint = zt::tcp_endpoint();
  auto made = patchbay::conformance::from_config(
      "plugins: [ " PATCHBAY_ZMQ_MODULE " ]\n"
      "transports:\n"
      "  bus: { type: zmq, subscribe: { connect: [ '" + endpoint + "' ] }, join_timeout: 30s,\n"
      "         reconnect_interval: 50ms, reconnect_interval_max: 200ms }\n"
      "default_transport: bus\n");
  ASSERT_TRUE(made.ok()) << made.status();
  auto in = std::move(*made);

  auto peer = std::make_unique<Peer>(endpoint, "ticks", "1");
  // subscribe() returns once the peer welcomed the subscription (it waits for the peer to be up).
  auto fut = patchbay::asio::co_spawn(
      in.ex,
      [&]() -> awaitable<std::string> {
        auto sub = co_await in.transport->subscribe("ticks");
        auto wait_for_generation = [&](std::string gen) -> awaitable<bool> {
          for (;;) {
            auto n = co_await patchbay::conformance::next_for(sub, 30s);
            if (n.what != patchbay::conformance::Next::kind::item) co_return false;
            if (n.delivery->message().payload.view().starts_with(gen + ":")) co_return true;
          }
        };
        auto first = wait_for_generation("1");
        if (bool ok = co_await std::move(first); !ok) co_return std::string("nothing from the first peer");
        peer->kill();
        peer = std::make_unique<Peer>(endpoint, "ticks", "2");
        auto second = wait_for_generation("2");
        if (bool ok = co_await std::move(second); !ok) co_return std::string("nothing from the restarted peer");
        co_return std::string("resumed");
      },
      patchbay::asio::use_future);
  ASSERT_EQ(fut.wait_for(120s), std::future_status::ready);
  EXPECT_EQ(fut.get(), "resumed");
  auto* i = dynamic_cast<patchbay::zeromq::Introspection*>(in.transport.get());
  ASSERT_NE(i, nullptr);
  EXPECT_EQ(i->counters().malformed, 0u);
  peer.reset();
  in.shutdown();
}

}  // namespace
