// The shortpoll transport's fault tests: backoff while the hub is down, and recovery when it is
// back (a new epoch: a gap, then the new hub's messages).
#include <patchbay/transports/shortpoll/shortpoll.hpp>

#include "../../longpoll/tests/poll_test_rig.hpp"

namespace patchbay {
namespace {

using namespace std::chrono_literals;
using poll_test::Rig;
namespace sp = shortpoll_transport;

http::HubOptions topics(std::vector<std::string> names) {
  http::HubOptions o;
  o.topics = std::move(names);
  return o;
}

TEST(ShortPollFault, BacksOffWhileTheHubIsDownAndRecoversWhenItIsBack) {
  Rig rig(sp::register_transport, "shortpoll");
  rig.start_hub(topics({"t"}));
  const auto port = rig.port();
  auto feed = rig.transport("interval: 5ms\nretry_delay: 10ms\nmax_backoff: 200ms\nclient: { connect_timeout: 1s }");
  rig.run([&]() -> awaitable<void> {
    auto sub = co_await feed->subscribe("t");
    rig.hub().publish("t", Message("before"));
    auto got = co_await poll_test::receive(sub, 1);
    EXPECT_EQ(got.payloads, std::vector<std::string>{"before"});

    const auto errors_before = sp::stats(*feed)->errors;
    rig.stop_hub();
    auto quiet = co_await conformance::next_for(sub, 1500ms);
    EXPECT_EQ(quiet.what, conformance::Next::kind::timed_out);
    const auto errors_down = sp::stats(*feed)->errors - errors_before;
    EXPECT_GE(errors_down, 2u) << "it keeps trying";
    // 10 ms doubling to 200 ms: about 10 attempts in 1.5 s; at the 5 ms interval, 300.
    EXPECT_LE(errors_down, 40u) << "it backs off";

    rig.start_hub(topics({"t"}), port);
    rig.hub().publish("t", Message("after"));
    auto back = co_await poll_test::receive(sub, 1);
    EXPECT_EQ(back.payloads, std::vector<std::string>{"after"});
    CO_ASSERT_TRUE(back.gaps.size() == 1u);
    EXPECT_EQ(back.gaps[0].reason, "epoch changed");
  });
}

}  // namespace
}  // namespace patchbay
