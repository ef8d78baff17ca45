// The longpoll transport's own tests (beside the conformance suite), against a hub in this
// process: 100,000 messages published at poll boundaries with none lost or duplicated, a client
// that resumes from a saved position after it was restarted, a clear error when the hub refuses
// a subscription. The fault tests are in longpoll_fault_test.cpp.
#include <patchbay/transports/longpoll/longpoll.hpp>

#include "poll_test_rig.hpp"

#include <random>

namespace patchbay {
namespace {

using namespace std::chrono_literals;
using poll_test::Rig;
namespace lp = longpoll_transport;

std::unique_ptr<Rig> make_rig(http::HubOptions options) {
  auto rig = std::make_unique<Rig>(lp::register_transport, "longpoll");
  rig->start_hub(std::move(options));
  return rig;
}

http::HubOptions topics(std::vector<std::string> names, std::size_t history = 1024) {
  http::HubOptions o;
  o.topics = std::move(names);
  o.history = history;
  return o;
}

// The publisher races the poll loop: bursts of 1..13 messages with short pauses, while the
// subscriber asks for at most 5 per answer, so that answers end at batch boundaries, held polls
// are woken in the middle of bursts, and a message often lands between an answer and the next
// poll. Every message must arrive exactly once, in order, without a gap.
TEST(LongPoll, HundredThousandMessagesAtPollBoundariesNoneLostNoneDuplicated) {
  constexpr int n = 100'000;
  auto rig = make_rig(topics({"t"}, 2 * n));
  auto feed = rig->transport("wait: 10s\nlimit: 5");
  ASSERT_TRUE(feed);
  rig->run([&]() -> awaitable<void> {
    auto sub = co_await feed->subscribe("t");
    std::thread publisher([&] {
      std::minstd_rand rng(42);
      int i = 0;
      while (i < n) {
        const int burst = static_cast<int>(rng() % 13) + 1;
        for (int k = 0; k < burst && i < n; ++k, ++i) rig->hub().publish("t", Message(std::to_string(i)));
        if (rng() % 4 == 0) std::this_thread::sleep_for(50us);
      }
    });
    auto got = co_await poll_test::receive(sub, n);
    publisher.join();
    EXPECT_TRUE(got.gaps.empty());
    CO_ASSERT_TRUE(got.payloads.size() == static_cast<std::size_t>(n));
    int out_of_place = 0;
    for (int i = 0; i < n; ++i) {
      if (got.payloads[static_cast<std::size_t>(i)] != std::to_string(i)) ++out_of_place;
    }
    EXPECT_EQ(out_of_place, 0);
    // Nothing more: no duplicate arrives after the last one.
    auto extra = co_await conformance::next_for(sub, 300ms);
    EXPECT_NE(extra.what, conformance::Next::kind::item);
    auto stats = lp::stats(*feed);
    CO_ASSERT_TRUE(stats.has_value());
    EXPECT_EQ(stats->messages, static_cast<std::uint64_t>(n));
    EXPECT_GE(stats->requests, static_cast<std::uint64_t>(n / 5));
    EXPECT_EQ(stats->errors, 0u);
  });
}

TEST(LongPoll, AClientResumesFromASavedPositionAfterARestart) {
  auto rig = make_rig(topics({"t"}));
  std::string saved;
  {
    auto first = rig->transport("wait: 10s");
    rig->run([&]() -> awaitable<void> {
      auto sub = co_await first->subscribe("t");
      for (int i = 0; i < 10; ++i) co_await first->publish(conformance::msg("t", "m" + std::to_string(i)));
      auto got = co_await poll_test::receive(sub, 5);
      saved = got.last_position;  // as an application would store it next to its effect
      EXPECT_EQ(got.payloads.back(), "m4");
    });
    rig->stop(first);  // the client goes away
  }
  for (int i = 10; i < 15; ++i) rig->hub().publish("t", Message("m" + std::to_string(i)));
  auto second = rig->transport("wait: 10s");
  rig->run([&]() -> awaitable<void> {
    auto sub = co_await second->subscribe("t", SubscribeOptions().from(Position::after(saved)));
    auto got = co_await poll_test::receive(sub, 10);
    EXPECT_TRUE(got.gaps.empty());
    std::vector<std::string> want;
    for (int i = 5; i < 15; ++i) want.push_back("m" + std::to_string(i));
    EXPECT_EQ(got.payloads, want);
  });
}

TEST(LongPoll, SubscribeFailsClearlyWhenTheHubRefuses) {
  auto rig = make_rig(topics({"t"}));
  auto feed = rig->transport("wait: 1s");
  rig->run([&]() -> awaitable<void> {
    std::string error;
    try {
      auto sub = co_await feed->subscribe("unknown-topic");
    } catch (const std::exception& e) {
      error = e.what();
    }
    EXPECT_NE(error.find("404"), std::string::npos) << error;
  });
}

}  // namespace
}  // namespace patchbay
