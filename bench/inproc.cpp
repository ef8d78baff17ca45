// bench_inproc — the in-process transport's publish → deliver → ack against a raw
// concurrent_channel carrying the same Message (send + receive).
//
// The transport is built directly from the registry (`Registry::with_builtins()`, default
// settings: history = buffer = 1024, slow subscribers block the publisher) on a single-threaded
// io_context, so what is measured is the transport's own work, not thread hand-offs:
//   - roundtrip: one coroutine publishes, takes the delivery with next() and acks it;
//   - pipelined: a publisher coroutine and a subscriber coroutine (next + ack), up to `buffer`
//     messages apart;
//   - fanout4: one publish, four subscriptions each take and ack it (raw: the message copied
//     into four channels and received from each). One iteration is one published message.
// Messages carry a 16-byte payload and an id already stamped (Topic::publish would stamp it;
// the transport is called directly, as Topic does after stamping).
//
// Target: ratio patchbay / raw <= 1.5.

#include "report.hpp"

#include <patchbay/config.hpp>
#include <patchbay/registry.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace patchbay;
using boost::system::error_code;
using RawChannel = asio::experimental::concurrent_channel<executor, void(error_code, Message)>;

constexpr std::size_t kRawCapacity = 1024;  // as the transport's default `buffer`

Message prototype() {
  Message m("hello, patchbay!");
  m.topic = "bench";
  m.stamp();
  return m;
}

/// A started in-process transport on `ctx`; the registry outlives it (it may own its code).
struct Inproc {
  std::unique_ptr<Registry> registry = Registry::with_builtins();
  std::shared_ptr<Transport> transport;

  explicit Inproc(asio::io_context& ctx) {
    config::Node settings;
    auto made = registry->make_transport("inproc", TransportContext{"bench", ctx.get_executor(), settings});
    if (!made.ok()) throw std::runtime_error(std::string(made.status().message()));
    transport = std::move(*made);
  }
};

/// Counts deliveries so that a pipelined subscriber knows when the publisher is done: after
/// its timing loop the publisher sends one more message, so the subscriber always wakes.
struct Progress {
  std::uint64_t published = 0;
  std::uint64_t received = 0;
  bool done = false;
  bool finished() const { return done && received == published; }
};

// --- patchbay inproc ---------------------------------------------------------------------------

awaitable<void> inproc_roundtrip(benchmark::State& state, Transport& t, std::size_t subscribers) {
  co_await t.start();
  std::vector<Stream<Delivery>> subs;
  for (std::size_t i = 0; i < subscribers; ++i) subs.push_back(co_await t.subscribe("bench"));
  const Message proto = prototype();
  for (auto _ : state) {
    co_await t.publish(proto);
    for (auto& sub : subs) {
      auto d = co_await sub.next();
      d->ack();
    }
  }
  subs.clear();
  co_await t.stop();
}

awaitable<void> inproc_subscriber(Stream<Delivery> sub, Progress& progress) {
  while (auto d = co_await sub.next()) {
    d->ack();
    ++progress.received;
    if (progress.finished()) break;
  }
}

awaitable<void> inproc_pipelined(benchmark::State& state, Transport& t) {
  co_await t.start();
  Progress progress;
  auto ex = co_await asio::this_coro::executor;
  auto sub = co_await t.subscribe("bench");
  asio::co_spawn(ex, inproc_subscriber(std::move(sub), progress), asio::detached);
  const Message proto = prototype();
  for (auto _ : state) co_await t.publish(proto);
  progress.published = static_cast<std::uint64_t>(state.iterations()) + 1;
  progress.done = true;
  co_await t.publish(proto);
  co_await t.stop();  // drains: returns once the subscriber acked everything
}

void inproc_patchbay(benchmark::State& state) {
  asio::io_context ctx(1);
  Inproc inproc(ctx);
  if (state.range(0) == 0)
    asio::co_spawn(ctx, inproc_pipelined(state, *inproc.transport), asio::detached);
  else
    asio::co_spawn(ctx, inproc_roundtrip(state, *inproc.transport, static_cast<std::size_t>(state.range(0))),
                   asio::detached);
  ctx.run();
  state.SetItemsProcessed(state.iterations());
}

// --- raw concurrent_channel --------------------------------------------------------------------

awaitable<void> raw_roundtrip(benchmark::State& state, std::vector<std::unique_ptr<RawChannel>>& channels) {
  const Message proto = prototype();
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    for (auto& ch : channels) co_await ch->async_send(error_code{}, proto, asio::use_awaitable_t<executor>{});
    for (auto& ch : channels) {
      auto [ec, m] = co_await ch->async_receive(asio::as_tuple(asio::use_awaitable_t<executor>{}));
      bytes += m.payload.size();
    }
  }
  benchmark::DoNotOptimize(bytes);
}

awaitable<void> raw_subscriber(RawChannel& ch, Progress& progress) {
  for (;;) {
    auto [ec, m] = co_await ch.async_receive(asio::as_tuple(asio::use_awaitable_t<executor>{}));
    if (ec) break;
    benchmark::DoNotOptimize(m.payload.size());
    ++progress.received;
    if (progress.finished()) break;
  }
}

awaitable<void> raw_pipelined(benchmark::State& state, RawChannel& ch) {
  Progress progress;
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex, raw_subscriber(ch, progress), asio::detached);
  const Message proto = prototype();
  for (auto _ : state) co_await ch.async_send(error_code{}, proto, asio::use_awaitable_t<executor>{});
  progress.published = static_cast<std::uint64_t>(state.iterations()) + 1;
  progress.done = true;
  co_await ch.async_send(error_code{}, proto, asio::use_awaitable_t<executor>{});
}

void inproc_raw(benchmark::State& state) {
  asio::io_context ctx(1);
  std::vector<std::unique_ptr<RawChannel>> channels;
  for (std::int64_t i = 0; i < std::max<std::int64_t>(state.range(0), 1); ++i)
    channels.push_back(std::make_unique<RawChannel>(ctx.get_executor(), kRawCapacity));
  if (state.range(0) == 0)
    asio::co_spawn(ctx, raw_pipelined(state, *channels.front()), asio::detached);
  else
    asio::co_spawn(ctx, raw_roundtrip(state, channels), asio::detached);
  ctx.run();
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  using patchbay::bench::Comparison;
  std::vector<Comparison> comparisons;
  // Arg: the number of subscribers in one coroutine (roundtrip, fanout), or 0 for pipelined.
  auto pair = [&](const std::string& what, std::int64_t arg) {
    patchbay::bench::add("inproc_" + what + "/patchbay", inproc_patchbay)->Arg(arg);
    patchbay::bench::add("inproc_" + what + "/raw", inproc_raw)->Arg(arg);
    const std::string suffix = "/" + std::to_string(arg);
    comparisons.push_back({"inproc " + what, "inproc_" + what + "/patchbay" + suffix,
                           "inproc_" + what + "/raw" + suffix, "concurrent_channel<Message>", 1.5});
  };
  pair("roundtrip", 1);
  pair("pipelined", 0);
  pair("fanout4", 4);
  return patchbay::bench::run_and_compare(argc, argv, comparisons);
}
