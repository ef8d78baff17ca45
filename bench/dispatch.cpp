// bench_dispatch — one dispatch hop: a Doorbell ring resuming a waiting coroutine, against the
// raw Asio ways of resuming a coroutine through the io_context.
//
//   - self: one coroutine rings its own doorbell and waits on it (`bell.ring(); co_await
//     bell.wait();`), i.e. one trip through the scheduler; raw: `co_await asio::post(ex,
//     use_awaitable)`. One iteration is one hop.
//   - pingpong: two coroutines wake each other through two doorbells; raw: the same over two
//     capacity-1 concurrent_channel<void(error_code)> signals. One iteration is one round trip
//     (two hops).
// Everything runs on one single-threaded io_context.
//
// Target: ratio patchbay / raw <= 1.3.

#include "report.hpp"

#include <patchbay/doorbell.hpp>

#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace {

using namespace patchbay;
using boost::system::error_code;
using Signal = asio::experimental::concurrent_channel<executor, void(error_code)>;

// --- self: one hop through the scheduler -------------------------------------------------------

awaitable<void> doorbell_self(benchmark::State& state, Doorbell& bell) {
  for (auto _ : state) {
    bell.ring();
    co_await bell.wait();
  }
}

awaitable<void> post_self(benchmark::State& state, executor ex) {
  for (auto _ : state) co_await asio::post(ex, asio::use_awaitable_t<executor>{});
}

void self_patchbay(benchmark::State& state) {
  asio::io_context ctx(1);
  Doorbell bell(ctx.get_executor());
  asio::co_spawn(ctx, doorbell_self(state, bell), asio::detached);
  ctx.run();
  state.SetItemsProcessed(state.iterations());
}

void self_raw(benchmark::State& state) {
  asio::io_context ctx(1);
  asio::co_spawn(ctx, post_self(state, ctx.get_executor()), asio::detached);
  ctx.run();
  state.SetItemsProcessed(state.iterations());
}

// --- pingpong: two coroutines wake each other --------------------------------------------------

awaitable<void> doorbell_ping(benchmark::State& state, Doorbell& mine, Doorbell& theirs, bool& done) {
  for (auto _ : state) {
    theirs.ring();
    co_await mine.wait();
  }
  done = true;
  theirs.ring();
}

awaitable<void> doorbell_pong(Doorbell& mine, Doorbell& theirs, const bool& done) {
  for (;;) {
    co_await mine.wait();
    if (done) break;
    theirs.ring();
  }
}

awaitable<void> signal_ping(benchmark::State& state, Signal& to_pong, Signal& to_ping, bool& done) {
  for (auto _ : state) {
    co_await to_pong.async_send(error_code{}, asio::use_awaitable_t<executor>{});
    co_await to_ping.async_receive(asio::use_awaitable_t<executor>{});
  }
  done = true;
  co_await to_pong.async_send(error_code{}, asio::use_awaitable_t<executor>{});
}

awaitable<void> signal_pong(Signal& to_pong, Signal& to_ping, const bool& done) {
  for (;;) {
    co_await to_pong.async_receive(asio::use_awaitable_t<executor>{});
    if (done) break;
    co_await to_ping.async_send(error_code{}, asio::use_awaitable_t<executor>{});
  }
}

void pingpong_patchbay(benchmark::State& state) {
  asio::io_context ctx(1);
  Doorbell ping(ctx.get_executor()), pong(ctx.get_executor());
  bool done = false;
  asio::co_spawn(ctx, doorbell_pong(pong, ping, done), asio::detached);
  asio::co_spawn(ctx, doorbell_ping(state, ping, pong, done), asio::detached);
  ctx.run();
  state.SetItemsProcessed(2 * state.iterations());
}

void pingpong_raw(benchmark::State& state) {
  asio::io_context ctx(1);
  Signal to_pong(ctx.get_executor(), 1), to_ping(ctx.get_executor(), 1);
  bool done = false;
  asio::co_spawn(ctx, signal_pong(to_pong, to_ping, done), asio::detached);
  asio::co_spawn(ctx, signal_ping(state, to_pong, to_ping, done), asio::detached);
  ctx.run();
  state.SetItemsProcessed(2 * state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  patchbay::bench::add("dispatch_self/patchbay", self_patchbay);
  patchbay::bench::add("dispatch_self/raw", self_raw);
  patchbay::bench::add("dispatch_pingpong/patchbay", pingpong_patchbay);
  patchbay::bench::add("dispatch_pingpong/raw", pingpong_raw);
  return patchbay::bench::run_and_compare(
      argc, argv,
      {{"dispatch self (ring + wait)", "dispatch_self/patchbay", "dispatch_self/raw", "asio::post", 1.3, 0, "hop"},
       {"dispatch pingpong (2 coroutines)", "dispatch_pingpong/patchbay", "dispatch_pingpong/raw",
        "concurrent_channel<void(error_code)> cap 1", 1.3, 0, "round trip"}});
}
