// Behaviour of the nats transport beyond the conformance suite, against the shared nats-server
// (scripts/brokers start nats): queue groups across connections, no responders, request
// deadlines, slow subscribers (bounded, counted, signalled), wildcards, stop.
#include "nats_test_support.hpp"

#include <atomic>
#include <mutex>
#include <set>

namespace {

using namespace nats_test;
using patchbay::errc;
using patchbay::SubscribeOptions;

TEST(Nats, QueueGroupMembersOnSeparateConnectionsSplitTheMessages) {
  NATS_TEST_NEEDS_BROKER(url);
  auto a = make(url);
  auto b = make(url);
  auto publisher = make(url);
  ASSERT_TRUE(a.ok() && b.ok() && publisher.ok()) << a.status() << b.status() << publisher.status();
  const std::string topic = unique("group");
  constexpr int n = 400;
  run(*publisher, [&]() -> awaitable<void> {
    auto sa = co_await a->transport->subscribe(topic, SubscribeOptions().group("workers"));
    auto sb = co_await b->transport->subscribe(topic, SubscribeOptions().group("workers"));
    for (int i = 0; i < n; ++i) co_await publisher->transport->publish(msg(topic, std::to_string(i)));
    std::set<std::string> seen;
    int from_a = 0, from_b = 0, duplicates = 0;
    // Each member receives its share; together they receive each message exactly once. Read
    // until all arrived, or nothing arrived for 30 s.
    auto last_progress = patchbay::clock::now();
    while (static_cast<int>(seen.size()) < n && patchbay::clock::now() - last_progress < 30s) {
      for (auto* s : {&sa, &sb}) {
        auto d = co_await next_within(*s, 50ms);
        if (!d || d->is_gap()) continue;
        ++(s == &sa ? from_a : from_b);
        if (!seen.insert(d->message().id).second) ++duplicates;
        last_progress = patchbay::clock::now();
      }
    }
    co_await sleep_for(300ms);  // a duplicate would show up now
    for (auto* s : {&sa, &sb})
      if (auto d = co_await next_within(*s, 50ms); d && !d->is_gap()) ++duplicates;
    EXPECT_EQ(static_cast<int>(seen.size()), n);
    EXPECT_EQ(duplicates, 0);
    EXPECT_GT(from_a, 0) << "member a received nothing";
    EXPECT_GT(from_b, 0) << "member b received nothing";
  });
  for (auto* i : {&*a, &*b, &*publisher}) i->shutdown();
}

TEST(Nats, RequestWithoutResponderFailsWithNoRespondersNotATimeout) {
  NATS_TEST_NEEDS_BROKER(url);
  auto inst = make(url);
  ASSERT_TRUE(inst.ok()) << inst.status();
  run(*inst, [&]() -> awaitable<void> {
    const std::string service = unique("nobody");
    const auto started = patchbay::clock::now();
    boost::system::error_code code;
    std::string text;
    try {
      co_await inst->transport->request(service, msg(service, "anyone?"), patchbay::clock::now() + 60s);
    } catch (const boost::system::system_error& e) {
      code = e.code();
      text = e.what();
    }
    EXPECT_EQ(code, make_error_code(errc::no_responders)) << text;
    EXPECT_NE(text.find(service), std::string::npos) << "the error should name the service: " << text;
    // The server answers at once; a deadline of a minute was not what ended the request.
    EXPECT_LT(patchbay::clock::now() - started, 30s);
  });
  inst->shutdown();
}

TEST(Nats, RequestEndsAtItsDeadlineWhenTheHandlerIsSlow) {
  NATS_TEST_NEEDS_BROKER(url);
  auto inst = make(url, "    drain_timeout: 200ms\n");
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string service = unique("slow");
  asio::cancellation_signal stop_serving;
  std::atomic<bool> serve_ended{false};
  auto serve = [&]() -> awaitable<void> {
    co_await inst->transport->serve(service, [](Message) -> awaitable<Message> {
      co_await sleep_for(3s);
      co_return Message(std::string_view("too late"));
    });
  };
  asio::co_spawn(inst->fresh(), serve(),
                 asio::bind_cancellation_slot(stop_serving.slot(), [&](std::exception_ptr) { serve_ended = true; }));
  run(*inst, [&]() -> awaitable<void> {
    // serve() subscribes asynchronously: wait until a request gets past "no responders".
    boost::system::error_code code;
    for (int attempt = 0; attempt < 100; ++attempt) {
      code = {};
      try {
        co_await inst->transport->request(service, msg(service, "x"), patchbay::clock::now() + 300ms);
      } catch (const boost::system::system_error& e) {
        code = e.code();
      }
      if (code != make_error_code(errc::no_responders)) break;
      co_await sleep_for(20ms);
    }
    EXPECT_EQ(code, make_error_code(errc::timed_out)) << code.message();
  });
  asio::post(inst->ex, [&] { stop_serving.emit(asio::cancellation_type::all); });
  inst->shutdown();
}

TEST(Nats, ASlowSubscriberIsBoundedItsDropsCountedAndSignalledAsAGap) {
  NATS_TEST_NEEDS_BROKER(url);
  auto inst = make(url, "    max_pending_messages: 10\n");
  ASSERT_TRUE(inst.ok()) << inst.status();
  run(*inst, [&]() -> awaitable<void> {
    const std::string topic = unique("slow");
    auto sub = co_await inst->transport->subscribe(topic, {});
    constexpr int n = 200;
    for (int i = 0; i < n; ++i) co_await inst->transport->publish(msg(topic, std::to_string(i)));
    // Every message reaches the subscription: 10 fit in its queue, the other 190 are dropped.
    EXPECT_TRUE(co_await eventually([&] { return stats(*inst).received + stats(*inst).slow_consumer_drops == n; }))
        << "received " << stats(*inst).received << ", dropped " << stats(*inst).slow_consumer_drops;
    EXPECT_EQ(stats(*inst).slow_consumer_drops, static_cast<std::uint64_t>(n - 10));
    // The slow one: the 10 it had room for, in order, then one gap saying how many it missed.
    for (int i = 0; i < 10; ++i) {
      auto d = co_await next_within(sub);
      EXPECT_TRUE(d && !d->is_gap()) << "message " << i;
      if (!d || d->is_gap()) co_return;
      EXPECT_EQ(d->message().payload.str(), std::to_string(i));
    }
    auto gap = co_await next_within(sub);
    EXPECT_TRUE(gap && gap->is_gap());
    if (!gap || !gap->is_gap()) co_return;
    EXPECT_EQ(gap->gap().missed, static_cast<std::uint64_t>(n - 10));
    EXPECT_NE(gap->gap().reason.find("slow subscriber"), std::string::npos) << gap->gap().reason;
    // Having caught up, it receives again.
    co_await inst->transport->publish(msg(topic, "after"));
    auto after = co_await next_within(sub);
    EXPECT_TRUE(after && !after->is_gap() && after->message().payload.str() == "after");
  });
  inst->shutdown();
}

TEST(Nats, WildcardSubscriptionsSeeTheConcreteSubject) {
  NATS_TEST_NEEDS_BROKER(url);
  auto inst = make(url);
  ASSERT_TRUE(inst.ok()) << inst.status();
  run(*inst, [&]() -> awaitable<void> {
    const std::string base = unique("wild");
    auto one = co_await inst->transport->subscribe(base + ".*", {});
    auto all = co_await inst->transport->subscribe(base + ".>", {});
    co_await inst->transport->publish(msg(base + ".a", "1"));
    co_await inst->transport->publish(msg(base + ".a.b", "2"));
    auto d = co_await next_within(one);
    EXPECT_TRUE(d && d->message().topic == base + ".a");
    for (const char* want : {".a", ".a.b"}) {
      auto e = co_await next_within(all);
      EXPECT_TRUE(e && e->message().topic == base + want) << want;
    }
    auto none = co_await next_within(one, 300ms);
    EXPECT_FALSE(none.has_value()) << "'*' matched two tokens";
  });
  inst->shutdown();
}

TEST(Nats, BadInputIsRefusedWithAClearError) {
  NATS_TEST_NEEDS_BROKER(url);
  auto inst = make(url);
  ASSERT_TRUE(inst.ok()) << inst.status();
  run(*inst, [&]() -> awaitable<void> {
    auto code_of = [&](Message m) -> awaitable<boost::system::error_code> {
      try {
        co_await inst->transport->publish(std::move(m));
      } catch (const boost::system::system_error& e) {
        co_return e.code();
      }
      co_return boost::system::error_code{};
    };
    Message bad_name = msg(unique("h"), "x");
    bad_name.headers.add("with space", "v");
    EXPECT_EQ(co_await code_of(std::move(bad_name)), make_error_code(errc::bad_message));
    Message bad_value = msg(unique("h"), "x");
    bad_value.headers.add("x-line", "one\r\ntwo");
    EXPECT_EQ(co_await code_of(std::move(bad_value)), make_error_code(errc::bad_message));
    EXPECT_EQ(co_await code_of(msg("has space", "x")), make_error_code(errc::bad_message));
    boost::system::error_code replay;
    try {
      co_await inst->transport->subscribe(unique("r"), SubscribeOptions().from(patchbay::Position::earliest()));
    } catch (const boost::system::system_error& e) {
      replay = e.code();
    }
    EXPECT_EQ(replay, make_error_code(errc::not_supported));
  });
  inst->shutdown();
}

TEST(Nats, StopEndsSubscriptionsAndRefusesNewWork) {
  NATS_TEST_NEEDS_BROKER(url);
  auto inst = make(url);
  ASSERT_TRUE(inst.ok()) << inst.status();
  run(*inst, [&]() -> awaitable<void> {
    const std::string topic = unique("stop");
    auto sub = co_await inst->transport->subscribe(topic, {});
    co_await inst->transport->publish(msg(topic, "before stop"));
    co_await inst->transport->stop();
    co_await inst->transport->stop();  // idempotent
    // What arrived before stop is still delivered, then the stream ends.
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d && !d->is_gap() && d->message().payload.str() == "before stop");
    auto end = co_await patchbay::conformance::next_for(sub, 30s);
    EXPECT_EQ(end.what, patchbay::conformance::Next::kind::ended);
    boost::system::error_code code;
    try {
      co_await inst->transport->publish(msg(topic, "after stop"));
    } catch (const boost::system::system_error& e) {
      code = e.code();
    }
    EXPECT_EQ(code, make_error_code(errc::stopped));
  });
  inst->shutdown();
}

}  // namespace
