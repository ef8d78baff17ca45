#include <patchbay/channel.hpp>

#include "async_test_support.hpp"

#include <patchbay/error.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace patchbay {
namespace {

using namespace std::chrono_literals;

using namespace patchbay::testing_support;

TEST(Channel, ReceivesInSendOrder) {
  run_async([]() -> awaitable<void> {
    Channel<int> channel(co_await asio::this_coro::executor, 8);
    for (int i = 0; i < 5; ++i) co_await channel.send(i);
    for (int i = 0; i < 5; ++i) {
      auto v = co_await channel.receive();
      EXPECT_EQ(v, i);
    }
    EXPECT_FALSE(channel.try_receive().has_value());
  });
}

TEST(Channel, TrySendAndTryReceive) {
  run_async([]() -> awaitable<void> {
    Channel<std::string> channel(co_await asio::this_coro::executor, 1);
    std::string a = "a", b = "b";
    EXPECT_TRUE(channel.try_send(a));
    EXPECT_TRUE(channel.ready());
    EXPECT_FALSE(channel.try_send(b));
    EXPECT_EQ(b, "b") << "a failed try_send must leave the value untouched";
    EXPECT_EQ(channel.try_receive(), "a");
    EXPECT_FALSE(channel.try_receive().has_value());
  });
}

TEST(Channel, SendSuspendsWhileFull) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Channel<int> channel(ex, 2);
    co_await channel.send(0);
    co_await channel.send(1);
    int extra = 2;
    EXPECT_FALSE(channel.try_send(extra));

    std::atomic<bool> sent{false};
    asio::co_spawn(
        ex,
        [&]() -> awaitable<void> {
          co_await channel.send(2);
          sent = true;
        },
        asio::detached);
    co_await yield();
    EXPECT_FALSE(sent) << "send completed although the channel was full";

    auto got1 = co_await channel.receive();
    EXPECT_EQ(got1, 0);
    for (auto until = clock::now() + 30s; !sent && clock::now() < until;) co_await sleep_for(1ms);
    EXPECT_TRUE(sent) << "the pending send did not complete after a receive made room";
    auto got2 = co_await channel.receive();
    EXPECT_EQ(got2, 1);
    auto got3 = co_await channel.receive();
    EXPECT_EQ(got3, 2);
  });
}

TEST(Channel, RendezvousWithZeroCapacity) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Channel<int> channel(ex, 0);
    int v = 1;
    EXPECT_FALSE(channel.try_send(v)) << "nobody is receiving";
    asio::co_spawn(ex, channel.send(7), asio::detached);
    auto got4 = co_await channel.receive();
    EXPECT_EQ(got4, 7);
  });
}

TEST(Channel, CloseWakesWaitingReceive) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Channel<int> channel(ex, 4);
    std::promise<std::optional<int>> got;
    auto result = got.get_future();
    asio::co_spawn(ex, channel.receive(), [&](std::exception_ptr e, std::optional<int> v) {
      if (e)
        got.set_exception(e);
      else
        got.set_value(v);
    });
    co_await yield();
    EXPECT_NE(result.wait_for(0s), std::future_status::ready);
    channel.close();
    co_await yield();
    CO_ASSERT_READY(result);
    EXPECT_FALSE(result.get().has_value());
    auto got5 = co_await channel.receive();
    EXPECT_FALSE(got5) << "a receive after close yields nullopt";
    EXPECT_FALSE(channel.is_open());
  });
}

TEST(Channel, CloseFailsWaitingAndLaterSends) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Channel<int> channel(ex, 1);
    co_await channel.send(1);
    std::promise<void> sent;
    auto result = sent.get_future();
    asio::co_spawn(ex, channel.send(2), [&](std::exception_ptr e) {
      if (e)
        sent.set_exception(e);
      else
        sent.set_value();
    });
    co_await yield();
    EXPECT_NE(result.wait_for(0s), std::future_status::ready);
    channel.close();
    co_await yield();
    CO_ASSERT_READY(result);
    try {
      result.get();
      ADD_FAILURE() << "the waiting send succeeded on a closed channel";
    } catch (const boost::system::system_error& e) {
      EXPECT_EQ(e.code(), make_error_code(errc::closed));
    }
    try {
      co_await channel.send(3);
      ADD_FAILURE() << "send after close succeeded";
    } catch (const boost::system::system_error& e) {
      EXPECT_EQ(e.code(), make_error_code(errc::closed));
    }
    int v = 4;
    EXPECT_FALSE(channel.try_send(v));
    auto got6 = co_await channel.receive();
    EXPECT_FALSE(got6) << "buffered values are dropped by close";
    channel.close();  // idempotent
  });
}

TEST(Channel, CancelledReceiveConsumesNothing) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Channel<int> channel(ex, 4);
    asio::cancellation_signal signal;
    std::promise<std::optional<int>> got;
    auto result = got.get_future();
    asio::co_spawn(ex, channel.receive(),
                   asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, std::optional<int> v) {
                     if (e)
                       got.set_exception(e);
                     else
                       got.set_value(v);
                   }));
    co_await yield();
    signal.emit(asio::cancellation_type::terminal);
    co_await yield();
    CO_ASSERT_READY(result);
    EXPECT_THROW(result.get(), boost::system::system_error);

    co_await channel.send(42);
    auto got7 = co_await channel.receive();
    EXPECT_EQ(got7, 42) << "the value went to the cancelled receive";
  });
}

TEST(Channel, CancelledSendEnqueuesNothing) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Channel<int> channel(ex, 1);
    co_await channel.send(1);
    asio::cancellation_signal signal;
    std::promise<void> sent;
    auto result = sent.get_future();
    asio::co_spawn(ex, channel.send(2), asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
                     if (e)
                       sent.set_exception(e);
                     else
                       sent.set_value();
                   }));
    co_await yield();
    signal.emit(asio::cancellation_type::terminal);
    co_await yield();
    CO_ASSERT_READY(result);
    EXPECT_THROW(result.get(), boost::system::system_error);
    auto got8 = co_await channel.receive();
    EXPECT_EQ(got8, 1);
    EXPECT_FALSE(channel.try_receive().has_value()) << "the cancelled send enqueued its value";
  });
}

constexpr int kProducers = 4;
constexpr int kConsumers = 4;
constexpr int kPerProducer = 10'000;

TEST(Channel, ManyThreadsProducersAndConsumers) {
  std::vector<std::vector<int>> received(kConsumers);
  run_async(
      [&]() -> awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto channel = std::make_shared<Channel<int>>(ex, 16);
        auto finished = std::make_shared<Channel<int>>(ex, kProducers + kConsumers);
        for (int p = 0; p < kProducers; ++p) {
          asio::co_spawn(
              asio::make_strand(pool),
              [channel, finished, p]() -> awaitable<void> {
                for (int i = 0; i < kPerProducer; ++i) co_await channel->send(p * kPerProducer + i);
                co_await finished->send(p);
              },
              asio::detached);
        }
        for (int c = 0; c < kConsumers; ++c) {
          asio::co_spawn(
              asio::make_strand(pool),
              [channel, finished, out = &received[c], c]() -> awaitable<void> {
                // -1 is the end marker; one is sent per consumer after every producer is done.
                for (;;) {
                  auto v = co_await channel->receive();
                  if (!v || *v < 0) break;
                  out->push_back(*v);
                }
                co_await finished->send(kProducers + c);
              },
              asio::detached);
        }
        for (int p = 0; p < kProducers; ++p) co_await finished->receive();
        for (int c = 0; c < kConsumers; ++c) co_await channel->send(-1);
        for (int c = 0; c < kConsumers; ++c) co_await finished->receive();
      },
      4);

  std::vector<int> all;
  for (const auto& values : received) {
    // Values of one producer reach any single consumer in the order they were sent.
    std::vector<int> last(kProducers, -1);
    for (int v : values) {
      EXPECT_GT(v, last[v / kPerProducer]);
      last[v / kPerProducer] = v;
    }
    all.insert(all.end(), values.begin(), values.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kProducers * kPerProducer));
  for (int i = 0; i < kProducers * kPerProducer; ++i) ASSERT_EQ(all[i], i) << "value received twice or never";
}

}  // namespace
}  // namespace patchbay
