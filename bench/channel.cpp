// bench_channel — patchbay::Channel<T> against the raw Asio concurrent_channel it wraps.
//
// One producer coroutine sends, one consumer coroutine receives, both on one single-threaded
// io_context: the cost measured is the channel's, not a thread hand-off. One iteration is one
// message sent (and received). The producer runs Google Benchmark's timing loop; the consumer
// drains what is still buffered after the loop, outside the timed region.
//
// Targets: ratio patchbay / raw <= 1.10, and <= 100 ns per message on one thread.

#include "report.hpp"

#include <patchbay/channel.hpp>
#include <patchbay/message.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <string>

namespace {

using namespace patchbay;
using boost::system::error_code;

template <typename T>
using RawChannel = asio::experimental::concurrent_channel<executor, void(error_code, T)>;

/// What each message carries: a counter, or a realistic Message (small payload, 32-char id).
template <typename T>
struct Payload;

template <>
struct Payload<std::uint64_t> {
  std::uint64_t next = 0;
  std::uint64_t make() { return next++; }
  static std::uint64_t weight(const std::uint64_t& v) { return v; }
};

template <>
struct Payload<Message> {
  Message proto = [] {
    Message m("hello, patchbay!");
    m.topic = "bench";
    m.stamp();
    return m;
  }();
  Message make() { return proto; }
  static std::uint64_t weight(const Message& m) { return m.payload.size(); }
};

// --- patchbay::Channel -------------------------------------------------------------------------

template <typename T>
awaitable<void> produce(benchmark::State& state, Channel<T>& channel) {
  Payload<T> payload;
  for (auto _ : state) co_await channel.send(payload.make());
  channel.close();
}

template <typename T>
awaitable<void> consume(Channel<T>& channel) {
  std::uint64_t sum = 0;
  while (auto v = co_await channel.receive()) sum += Payload<T>::weight(*v);
  benchmark::DoNotOptimize(sum);
}

template <typename T>
void channel_patchbay(benchmark::State& state) {
  asio::io_context ctx(1);
  Channel<T> channel(ctx.get_executor(), static_cast<std::size_t>(state.range(0)));
  asio::co_spawn(ctx, produce<T>(state, channel), asio::detached);
  asio::co_spawn(ctx, consume<T>(channel), asio::detached);
  ctx.run();
  state.SetItemsProcessed(state.iterations());
}

// --- raw concurrent_channel --------------------------------------------------------------------

template <typename T>
awaitable<void> produce_raw(benchmark::State& state, RawChannel<T>& channel) {
  Payload<T> payload;
  for (auto _ : state) co_await channel.async_send(error_code{}, payload.make(), asio::use_awaitable_t<executor>{});
  channel.close();
}

template <typename T>
awaitable<void> consume_raw(RawChannel<T>& channel) {
  std::uint64_t sum = 0;
  for (;;) {
    auto [ec, v] = co_await channel.async_receive(asio::as_tuple(asio::use_awaitable_t<executor>{}));
    if (ec) break;
    sum += Payload<T>::weight(v);
  }
  benchmark::DoNotOptimize(sum);
}

template <typename T>
void channel_raw(benchmark::State& state) {
  asio::io_context ctx(1);
  RawChannel<T> channel(ctx.get_executor(), static_cast<std::size_t>(state.range(0)));
  asio::co_spawn(ctx, produce_raw<T>(state, channel), asio::detached);
  asio::co_spawn(ctx, consume_raw<T>(channel), asio::detached);
  ctx.run();
  state.SetItemsProcessed(state.iterations());
}

// --- raw concurrent_channel on the concrete io_context executor (for information) -------------
// Channel<T> and the baseline above use any_io_executor, as all of patchbay does. This variant
// shows how much of the baseline is the type-erased executor itself.

using typed_executor = asio::io_context::executor_type;
using TypedChannel = asio::experimental::concurrent_channel<typed_executor, void(error_code, std::uint64_t)>;
constexpr auto use_typed_awaitable = asio::use_awaitable_t<typed_executor>{};

asio::awaitable<void, typed_executor> produce_typed(benchmark::State& state, TypedChannel& channel) {
  std::uint64_t next = 0;
  for (auto _ : state) co_await channel.async_send(error_code{}, next++, use_typed_awaitable);
  channel.close();
}

asio::awaitable<void, typed_executor> consume_typed(TypedChannel& channel) {
  std::uint64_t sum = 0;
  for (;;) {
    auto [ec, v] = co_await channel.async_receive(asio::as_tuple(use_typed_awaitable));
    if (ec) break;
    sum += v;
  }
  benchmark::DoNotOptimize(sum);
}

void channel_raw_typed(benchmark::State& state) {
  asio::io_context ctx(1);
  TypedChannel channel(ctx.get_executor(), static_cast<std::size_t>(state.range(0)));
  asio::co_spawn(ctx.get_executor(), produce_typed(state, channel), asio::detached);
  asio::co_spawn(ctx.get_executor(), consume_typed(channel), asio::detached);
  ctx.run();
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  using patchbay::bench::Comparison;
  std::vector<Comparison> comparisons;
  // Each pair runs back to back, ours first, so both see the same load.
  auto pair = [&](const std::string& what, auto ours, auto raw, std::int64_t capacity) {
    const std::string suffix = "/" + std::to_string(capacity);
    patchbay::bench::add("channel_" + what + "/patchbay", ours)->Arg(capacity);
    patchbay::bench::add("channel_" + what + "/raw", raw)->Arg(capacity);
    comparisons.push_back({"channel " + what + " cap " + std::to_string(capacity),
                           "channel_" + what + "/patchbay" + suffix, "channel_" + what + "/raw" + suffix,
                           "concurrent_channel", 1.10, 100});
  };
  pair("u64", channel_patchbay<std::uint64_t>, channel_raw<std::uint64_t>, 64);
  pair("u64", channel_patchbay<std::uint64_t>, channel_raw<std::uint64_t>, 1024);
  pair("message", channel_patchbay<patchbay::Message>, channel_raw<patchbay::Message>, 1024);
  patchbay::bench::add("channel_u64/raw_typed_executor", channel_raw_typed)->Arg(64);
  comparisons.push_back({"channel u64 cap 64, raw on io_context::executor_type", "channel_u64/patchbay/64",
                         "channel_u64/raw_typed_executor/64", "concurrent_channel<io_context::executor_type>", 0, 0,
                         "msg", true});
  return patchbay::bench::run_and_compare(argc, argv, comparisons);
}
