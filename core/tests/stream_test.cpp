#include <patchbay/stream.hpp>

#include "async_test_support.hpp"

#include <patchbay/error.hpp>

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
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
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace patchbay {
namespace {

using namespace std::chrono_literals;

using namespace patchbay::testing_support;

/// A finite source that yields its items (suspending before each, like real I/O), then ends.
template <typename T>
class ListSource final : public StreamSource<T> {
 public:
  explicit ListSource(std::vector<T> items) : items_(std::move(items)) {}

  awaitable<std::optional<T>> next() override {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable_t<executor>{});
    if (closed_ || next_ == items_.size()) co_return std::nullopt;
    co_return std::move(items_[next_++]);
  }
  void close() noexcept override { closed_ = true; }
  bool closed() const { return closed_; }

 private:
  std::vector<T> items_;
  std::size_t next_ = 0;
  std::atomic<bool> closed_{false};
};

template <typename T>
Stream<T> list_stream(std::vector<T> items, std::shared_ptr<ListSource<T>>* source = nullptr) {
  auto s = std::make_shared<ListSource<T>>(std::move(items));
  if (source) *source = s;
  return Stream<T>(s);
}

template <typename T>
awaitable<std::vector<T>> drain(Stream<T>& stream) {
  std::vector<T> out;
  while (auto v = co_await stream.next()) out.push_back(std::move(*v));
  co_return out;
}

bool is_timed_out(const boost::system::system_error& e) { return e.code() == make_error_code(errc::timed_out); }

/// Checks that `seen` holds 0..n-1 exactly once each.
void expect_each_once(std::vector<int> seen, int n) {
  std::sort(seen.begin(), seen.end());
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(n)) << "elements lost or duplicated";
  for (int i = 0; i < n; ++i) ASSERT_EQ(seen[i], i) << "element lost or duplicated";
}

TEST(Stream, EmptyHandleYieldsNothing) {
  run_async([]() -> awaitable<void> {
    Stream<int> empty;
    EXPECT_FALSE(empty);
    auto got1 = co_await empty.next();
    EXPECT_FALSE(got1);
    auto mapped = std::move(empty).map([](int v) { return v + 1; }).take(3);
    auto got2 = co_await mapped.next();
    EXPECT_FALSE(got2);
  });
}

TEST(Stream, FromChannelReadsUntilClosed) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto channel = std::make_shared<Channel<int>>(ex, 4);
    auto stream = Stream<int>::from_channel(channel);
    co_await channel->send(1);
    co_await channel->send(2);
    auto got3 = co_await stream.next();
    EXPECT_EQ(got3, 1);
    auto got4 = co_await stream.next();
    EXPECT_EQ(got4, 2);

    std::promise<std::optional<int>> got;
    auto result = got.get_future();
    asio::co_spawn(ex, stream.next(), [&](std::exception_ptr, std::optional<int> v) { got.set_value(v); });
    co_await yield();
    EXPECT_NE(result.wait_for(0s), std::future_status::ready);
    stream.close();
    co_await yield();
    CO_ASSERT_READY(result);
    EXPECT_FALSE(result.get().has_value());
    EXPECT_FALSE(channel->is_open()) << "closing the stream closes its channel";
    auto got5 = co_await stream.next();
    EXPECT_FALSE(got5);
  });
}

TEST(Stream, MapTransformsEachElement) {
  run_async([]() -> awaitable<void> {
    auto stream = list_stream<int>({1, 2, 3}).map([](int v) { return std::to_string(v * 10); });
    static_assert(std::is_same_v<decltype(stream), Stream<std::string>>);
    auto got6 = co_await drain(stream);
    EXPECT_EQ(got6, (std::vector<std::string>{"10", "20", "30"}));
  });
}

TEST(Stream, MapMovesMoveOnlyElements) {
  run_async([]() -> awaitable<void> {
    std::vector<std::unique_ptr<int>> items;
    for (int i = 0; i < 3; ++i) items.push_back(std::make_unique<int>(i));
    auto stream = list_stream(std::move(items)).map([](std::unique_ptr<int>&& p) { return *p + 1; });
    auto got7 = co_await drain(stream);
    EXPECT_EQ(got7, (std::vector<int>{1, 2, 3}));
  });
}

TEST(Stream, FilterKeepsMatchingElements) {
  run_async([]() -> awaitable<void> {
    auto stream = list_stream<int>({1, 2, 3, 4, 5, 6}).filter([](const int& v) { return v % 2 == 0; });
    auto got8 = co_await drain(stream);
    EXPECT_EQ(got8, (std::vector<int>{2, 4, 6}));
  });
}

TEST(Stream, TakeEndsAfterNAndClosesUpstream) {
  run_async([]() -> awaitable<void> {
    std::shared_ptr<ListSource<int>> source;
    auto stream = list_stream<int>({1, 2, 3, 4, 5}, &source).take(3);
    auto got9 = co_await stream.next();
    EXPECT_EQ(got9, 1);
    auto got10 = co_await stream.next();
    EXPECT_EQ(got10, 2);
    EXPECT_FALSE(source->closed());
    auto got11 = co_await stream.next();
    EXPECT_EQ(got11, 3);
    EXPECT_TRUE(source->closed()) << "take(n) closes the upstream after the n-th element";
    auto got12 = co_await stream.next();
    EXPECT_FALSE(got12);
    auto got13 = co_await stream.next();
    EXPECT_FALSE(got13);
  });
}

TEST(Stream, TakeZeroEndsAtOnce) {
  run_async([]() -> awaitable<void> {
    auto channel = std::make_shared<Channel<int>>(co_await asio::this_coro::executor, 4);
    auto stream = Stream<int>::from_channel(channel).take(0);
    auto got14 = co_await stream.next();
    EXPECT_FALSE(got14);
    EXPECT_FALSE(channel->is_open());
  });
}

TEST(Stream, TakeEndsEarlierWhenUpstreamEnds) {
  run_async([]() -> awaitable<void> {
    auto stream = list_stream<int>({1, 2}).take(5);
    auto got15 = co_await drain(stream);
    EXPECT_EQ(got15, (std::vector<int>{1, 2}));
  });
}

TEST(Stream, OperatorsCompose) {
  run_async([]() -> awaitable<void> {
    std::vector<int> items(20);
    for (int i = 0; i < 20; ++i) items[i] = i;
    auto stream = list_stream(std::move(items))
                      .filter([](const int& v) { return v % 3 == 0; })
                      .map([](int v) { return v * 2; })
                      .timeout(1h)
                      .take(4)
                      .batch(3, 1h);
    auto batches = co_await drain(stream);
    CO_ASSERT_TRUE(batches.size() == 2u);
    EXPECT_EQ(batches[0], (std::vector<int>{0, 6, 12}));
    EXPECT_EQ(batches[1], (std::vector<int>{18}));
  });
}

TEST(Stream, TimeoutThrowsTimedOutAndStreamStaysUsable) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto channel = std::make_shared<Channel<int>>(ex, 4);
    auto stream = Stream<int>::from_channel(channel).timeout(20ms);
    const auto start = clock::now();
    try {
      co_await stream.next();
      ADD_FAILURE() << "next() on an idle stream did not time out";
    } catch (const boost::system::system_error& e) {
      EXPECT_TRUE(is_timed_out(e)) << e.what();
    }
    EXPECT_GE(clock::now() - start, 20ms);

    co_await channel->send(7);
    auto got16 = co_await stream.next();
    EXPECT_EQ(got16, 7);
    try {
      co_await stream.next();
      ADD_FAILURE() << "second idle next() did not time out";
    } catch (const boost::system::system_error& e) {
      EXPECT_TRUE(is_timed_out(e)) << e.what();
    }
    co_await channel->send(8);
    auto got17 = co_await stream.next();
    EXPECT_EQ(got17, 8);
    stream.close();
    auto got18 = co_await stream.next();
    EXPECT_FALSE(got18);
  });
}

TEST(Stream, TimeoutCloseWakesWaitingNext) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto channel = std::make_shared<Channel<int>>(ex, 4);
    auto stream = Stream<int>::from_channel(channel).timeout(1h);
    std::promise<std::optional<int>> got;
    auto result = got.get_future();
    asio::co_spawn(ex, stream.next(), [&](std::exception_ptr, std::optional<int> v) { got.set_value(v); });
    co_await yield();
    stream.close();
    for (auto until = clock::now() + 30s; result.wait_for(0s) != std::future_status::ready && clock::now() < until;)
      co_await sleep_for(1ms);
    CO_ASSERT_READY(result);
    EXPECT_FALSE(result.get().has_value());
  });
}

TEST(Stream, BatchBySize) {
  run_async([]() -> awaitable<void> {
    auto stream = list_stream<int>({0, 1, 2, 3, 4, 5, 6}).batch(3, 1h);
    static_assert(std::is_same_v<decltype(stream), Stream<std::vector<int>>>);
    auto got19 = co_await stream.next();
    EXPECT_EQ(got19, (std::vector<int>{0, 1, 2}));
    auto got20 = co_await stream.next();
    EXPECT_EQ(got20, (std::vector<int>{3, 4, 5}));
    auto got21 = co_await stream.next();
    EXPECT_EQ(got21, (std::vector<int>{6})) << "the partial batch is emitted at the end";
    auto got22 = co_await stream.next();
    EXPECT_FALSE(got22);
  });
}

TEST(Stream, BatchByMaxWait) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto channel = std::make_shared<Channel<int>>(ex, 16);
    auto stream = Stream<int>::from_channel(channel).batch(10, 30ms);
    co_await channel->send(1);
    co_await channel->send(2);
    auto start = clock::now();
    auto got23 = co_await stream.next();
    EXPECT_EQ(got23, (std::vector<int>{1, 2}));
    EXPECT_GE(clock::now() - start, 30ms) << "a batch that is not full waits max_wait";

    co_await channel->send(3);
    start = clock::now();
    auto got24 = co_await stream.next();
    EXPECT_EQ(got24, (std::vector<int>{3}));
    EXPECT_GE(clock::now() - start, 30ms);
  });
}

TEST(Stream, BatchEmitsPartialBatchOnClose) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto channel = std::make_shared<Channel<int>>(ex, 16);
    auto stream = Stream<int>::from_channel(channel).batch(10, 1h);
    co_await channel->send(1);
    std::promise<std::optional<std::vector<int>>> got;
    auto result = got.get_future();
    asio::co_spawn(ex, stream.next(),
                   [&](std::exception_ptr, std::optional<std::vector<int>> v) { got.set_value(std::move(v)); });
    co_await yield();
    stream.close();
    for (auto until = clock::now() + 30s; result.wait_for(0s) != std::future_status::ready && clock::now() < until;)
      co_await sleep_for(1ms);
    CO_ASSERT_READY(result);
    EXPECT_EQ(result.get(), (std::vector<int>{1}));
    auto got25 = co_await stream.next();
    EXPECT_FALSE(got25);
  });
}

/// Sends 0..n-1 into `channel`, pausing at random for up to `max_pause` to race the timers.
awaitable<void> produce(std::shared_ptr<Channel<int>> channel, int n, std::chrono::microseconds max_pause) {
  std::minstd_rand rng(12345);
  std::uniform_int_distribution<long> pause(0, max_pause.count());
  for (int i = 0; i < n; ++i) {
    co_await channel->send(i);
    if (i % 3 == 0) co_await sleep_for(std::chrono::microseconds(pause(rng)));
  }
}

TEST(Stream, TimeoutLosesNothingWhenTimersRaceElements) {
  constexpr int kCount = 3000;
  std::vector<int> seen;
  int timeouts = 0;
  run_async(
      [&]() -> awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto channel = std::make_shared<Channel<int>>(ex, 2);
        auto stream = Stream<int>::from_channel(channel).timeout(100us);
        asio::co_spawn(asio::make_strand(pool), produce(channel, kCount, 300us), asio::detached);
        while (seen.size() < static_cast<std::size_t>(kCount)) {
          try {
            auto v = co_await stream.next();
            if (!v) break;
            seen.push_back(*v);
          } catch (const boost::system::system_error& e) {
            if (!is_timed_out(e)) throw;
            ++timeouts;
          }
        }
        stream.close();
      },
      4);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << "order changed";
  expect_each_once(seen, kCount);
  RecordProperty("timeouts", timeouts);
}

TEST(Stream, BatchLosesNothingWhenTimersRaceElements) {
  constexpr int kCount = 3000;
  std::vector<int> seen;
  run_async(
      [&]() -> awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto channel = std::make_shared<Channel<int>>(ex, 2);
        auto stream = Stream<int>::from_channel(channel).batch(4, 150us);
        asio::co_spawn(asio::make_strand(pool), produce(channel, kCount, 300us), asio::detached);
        while (seen.size() < static_cast<std::size_t>(kCount)) {
          auto batch = co_await stream.next();
          if (!batch) break;
          EXPECT_FALSE(batch->empty());
          EXPECT_LE(batch->size(), 4u);
          seen.insert(seen.end(), batch->begin(), batch->end());
        }
        stream.close();
      },
      4);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << "order changed";
  expect_each_once(seen, kCount);
}

/// The caller's own deadline (a parallel_group, as recommended) cancels next() at random
/// moments; an element obtained by a cancelled next() must come out of a later call.
template <typename T, typename Collect>
awaitable<void> consume_with_caller_deadlines(Stream<T>& stream, std::size_t want, Collect collect,
                                              const std::size_t& have) {
  auto ex = co_await asio::this_coro::executor;
  std::minstd_rand rng(777);
  std::uniform_int_distribution<long> wait_us(0, 200);
  while (have < want) {
    asio::steady_timer deadline_timer(ex, std::chrono::microseconds(wait_us(rng)));
    auto [order, error, value, timer_ec] =
        co_await asio::experimental::make_parallel_group(asio::co_spawn(ex, stream.next(), asio::deferred),
                                                         deadline_timer.async_wait(asio::deferred))
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable_t<executor>{});
    if (error) continue;  // cancelled by our deadline: nothing was consumed
    if (!value) break;
    collect(std::move(*value));
  }
}

TEST(Stream, CallerCancellationOfTimeoutLosesNothing) {
  constexpr int kCount = 2000;
  std::vector<int> seen;
  run_async(
      [&]() -> awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto channel = std::make_shared<Channel<int>>(ex, 2);
        auto stream = Stream<int>::from_channel(channel).map([](int v) { return v; }).timeout(1h);
        asio::co_spawn(asio::make_strand(pool), produce(channel, kCount, 300us), asio::detached);
        std::size_t have = 0;
        co_await consume_with_caller_deadlines(
            stream, kCount,
            [&](int v) {
              seen.push_back(v);
              have = seen.size();
            },
            have);
        stream.close();
      },
      4);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << "order changed";
  expect_each_once(seen, kCount);
}

TEST(Stream, CallerCancellationOfBatchLosesNothing) {
  constexpr int kCount = 2000;
  std::vector<int> seen;
  run_async(
      [&]() -> awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto channel = std::make_shared<Channel<int>>(ex, 2);
        auto stream = Stream<int>::from_channel(channel).batch(5, 100us);
        asio::co_spawn(asio::make_strand(pool), produce(channel, kCount, 300us), asio::detached);
        std::size_t have = 0;
        co_await consume_with_caller_deadlines(
            stream, kCount,
            [&](std::vector<int> batch) {
              seen.insert(seen.end(), batch.begin(), batch.end());
              have = seen.size();
            },
            have);
        stream.close();
      },
      4);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << "order changed";
  expect_each_once(seen, kCount);
}

TEST(Stream, MergeOfThreeEndsWhenAllEnd) {
  std::vector<int> seen;
  run_async(
      [&]() -> awaitable<void> {
        auto stream = merge(list_stream<int>({0, 1, 2}), list_stream<int>({100, 101, 102, 103, 104}),
                            list_stream<int>({200}));
        seen = co_await drain(stream);
        auto got26 = co_await stream.next();
        EXPECT_FALSE(got26);
      },
      2);
  ASSERT_EQ(seen.size(), 9u);
  // Each input's own order survives the interleaving.
  for (int base : {0, 100, 200}) {
    std::vector<int> part;
    std::copy_if(seen.begin(), seen.end(), std::back_inserter(part), [&](int v) { return v / 100 * 100 == base; });
    EXPECT_TRUE(std::is_sorted(part.begin(), part.end())) << "input " << base / 100;
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 100, 101, 102, 103, 104, 200}));
}

TEST(Stream, MergeOfNothingEnds) {
  run_async([]() -> awaitable<void> {
    auto stream = merge(std::vector<Stream<int>>{});
    auto got27 = co_await stream.next();
    EXPECT_FALSE(got27);
  });
}

TEST(Stream, MergeCloseClosesInputs) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto a = std::make_shared<Channel<int>>(ex, 4);
    auto b = std::make_shared<Channel<int>>(ex, 4);
    auto stream = merge(Stream<int>::from_channel(a), Stream<int>::from_channel(b));
    co_await b->send(5);
    auto got28 = co_await stream.next();
    EXPECT_EQ(got28, 5);

    std::promise<std::optional<int>> got;
    auto result = got.get_future();
    asio::co_spawn(ex, stream.next(), [&](std::exception_ptr, std::optional<int> v) { got.set_value(v); });
    co_await yield();
    EXPECT_NE(result.wait_for(0s), std::future_status::ready);
    stream.close();
    for (auto until = clock::now() + 30s; result.wait_for(0s) != std::future_status::ready && clock::now() < until;)
      co_await sleep_for(1ms);
    CO_ASSERT_READY(result);
    EXPECT_FALSE(result.get().has_value());
    EXPECT_FALSE(a->is_open());
    EXPECT_FALSE(b->is_open());
    auto got29 = co_await stream.next();
    EXPECT_FALSE(got29);
  });
}

TEST(Stream, MergeClosedBeforeFirstNext) {
  run_async([]() -> awaitable<void> {
    std::shared_ptr<ListSource<int>> a, b;
    auto stream = merge(list_stream<int>({1}, &a), list_stream<int>({2}, &b));
    stream.close();
    auto got30 = co_await stream.next();
    EXPECT_FALSE(got30);
    EXPECT_TRUE(a->closed());
    EXPECT_TRUE(b->closed());
  });
}

TEST(Stream, ThrottlePacesWithoutDropping) {
  run_async([]() -> awaitable<void> {
    auto stream = list_stream<int>({0, 1, 2, 3, 4}).throttle(20ms);
    const auto start = clock::now();
    auto got31 = co_await drain(stream);
    EXPECT_EQ(got31, (std::vector<int>{0, 1, 2, 3, 4}));
    EXPECT_GE(clock::now() - start, 4 * 20ms) << "five elements need at least four intervals";
  });
}

TEST(Stream, ThrottleCloseEndsStream) {
  run_async([]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto channel = std::make_shared<Channel<int>>(ex, 4);
    auto stream = Stream<int>::from_channel(channel).throttle(10ms);
    co_await channel->send(1);
    auto got32 = co_await stream.next();
    EXPECT_EQ(got32, 1);
    std::promise<std::optional<int>> got;
    auto result = got.get_future();
    asio::co_spawn(ex, stream.next(), [&](std::exception_ptr, std::optional<int> v) { got.set_value(v); });
    co_await yield();
    stream.close();
    for (auto until = clock::now() + 30s; result.wait_for(0s) != std::future_status::ready && clock::now() < until;)
      co_await sleep_for(1ms);
    CO_ASSERT_READY(result);
    EXPECT_FALSE(result.get().has_value());
    auto got33 = co_await stream.next();
    EXPECT_FALSE(got33);
  });
}

}  // namespace
}  // namespace patchbay
