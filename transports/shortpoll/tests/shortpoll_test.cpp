// The shortpoll transport's own tests (beside the conformance suite), against a hub in this
// process: the 304 path seen from the client (conditional requests counted), 100,000 messages
// published at poll boundaries with none lost or duplicated, and a client that resumes from a
// saved position after it was restarted. The fault tests are in shortpoll_fault_test.cpp.
#include <patchbay/transports/shortpoll/shortpoll.hpp>

#include "../../longpoll/tests/poll_test_rig.hpp"

#include <random>

namespace patchbay {
namespace {

using namespace std::chrono_literals;
using poll_test::Rig;
namespace sp = shortpoll_transport;

std::unique_ptr<Rig> make_rig(http::HubOptions options) {
  auto rig = std::make_unique<Rig>(sp::register_transport, "shortpoll");
  rig->start_hub(std::move(options));
  return rig;
}

http::HubOptions topics(std::vector<std::string> names, std::size_t history = 1024) {
  http::HubOptions o;
  o.topics = std::move(names);
  o.history = history;
  return o;
}

TEST(ShortPoll, AnUnchangedTopicCostsA304AndNewMessagesA200) {
  auto rig = make_rig(topics({"t"}));
  auto feed = rig->transport("interval: 10ms\njitter: 0.5");
  rig->run([&]() -> awaitable<void> {
    auto sub = co_await feed->subscribe("t");
    // Nothing new: each poll is a conditional request answered 304 (the stream drives the polls).
    while (sp::stats(*feed)->not_modified < 5) {
      auto n = co_await conformance::next_for(sub, 200ms);
      EXPECT_NE(n.what, conformance::Next::kind::item);
    }
    const auto before = *sp::stats(*feed);
    rig->hub().publish("t", Message("news"));
    auto got = co_await poll_test::receive(sub, 1);
    EXPECT_EQ(got.payloads, std::vector<std::string>{"news"});
    const auto after = *sp::stats(*feed);
    EXPECT_GT(after.answers, before.answers);
    EXPECT_EQ(after.messages, 1u);
    EXPECT_EQ(after.errors, 0u);
    // The validator moved with the position: 304s again afterwards.
    while (sp::stats(*feed)->not_modified < after.not_modified + 3) {
      auto n = co_await conformance::next_for(sub, 200ms);
      EXPECT_NE(n.what, conformance::Next::kind::item);
    }
    const auto end = *sp::stats(*feed);
    EXPECT_GE(end.requests, end.answers + end.not_modified);
  });
}

TEST(ShortPoll, WithoutConditionalRequestsEveryPollIsA200) {
  auto rig = make_rig(topics({"t"}));
  auto feed = rig->transport("interval: 10ms\nconditional: false");
  rig->run([&]() -> awaitable<void> {
    auto sub = co_await feed->subscribe("t");
    while (sp::stats(*feed)->answers < 5) co_await conformance::next_for(sub, 100ms);
    EXPECT_EQ(sp::stats(*feed)->not_modified, 0u);
  });
}

// The publisher races the poll loop (bursts of 1..13 with short pauses) while each answer holds
// at most 5 messages, so answers end at batch boundaries and messages land between polls.
TEST(ShortPoll, HundredThousandMessagesAtPollBoundariesNoneLostNoneDuplicated) {
  constexpr int n = 100'000;
  auto rig = make_rig(topics({"t"}, 2 * n));
  auto feed = rig->transport("interval: 1ms\nlimit: 5");
  ASSERT_TRUE(feed);
  rig->run([&]() -> awaitable<void> {
    auto sub = co_await feed->subscribe("t");
    std::thread publisher([&] {
      std::minstd_rand rng(7);
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
    auto extra = co_await conformance::next_for(sub, 300ms);
    EXPECT_NE(extra.what, conformance::Next::kind::item);
    EXPECT_EQ(sp::stats(*feed)->messages, static_cast<std::uint64_t>(n));
    EXPECT_EQ(sp::stats(*feed)->errors, 0u);
  });
}

TEST(ShortPoll, AClientResumesFromASavedPositionAfterARestart) {
  auto rig = make_rig(topics({"t"}));
  std::string saved;
  {
    auto first = rig->transport("interval: 10ms");
    rig->run([&]() -> awaitable<void> {
      auto sub = co_await first->subscribe("t");
      for (int i = 0; i < 10; ++i) co_await first->publish(conformance::msg("t", "m" + std::to_string(i)));
      auto got = co_await poll_test::receive(sub, 5);
      saved = got.last_position;
      EXPECT_EQ(got.payloads.back(), "m4");
    });
    rig->stop(first);
  }
  for (int i = 10; i < 15; ++i) rig->hub().publish("t", Message("m" + std::to_string(i)));
  auto second = rig->transport("interval: 10ms");
  rig->run([&]() -> awaitable<void> {
    auto sub = co_await second->subscribe("t", SubscribeOptions().from(Position::after(saved)));
    auto got = co_await poll_test::receive(sub, 10);
    EXPECT_TRUE(got.gaps.empty());
    std::vector<std::string> want;
    for (int i = 5; i < 15; ++i) want.push_back("m" + std::to_string(i));
    EXPECT_EQ(got.payloads, want);
  });
}

}  // namespace
}  // namespace patchbay
