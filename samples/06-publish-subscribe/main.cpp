// samples/06-publish-subscribe — one binary, two publish/subscribe patterns, any transport.
//
// A market feed publishes price ticks on the `prices` topic and orders on the `orders` topic.
//   * prices fan out: the `dashboard` and the `audit` subscriber each receive every tick, in order;
//   * orders go to the consumer group `fulfilment`: two workers share them, each order is
//     processed by one worker.
// Which wire carries the topics is the config's business: config/inproc.yaml keeps everything in
// the process, config/zmq.yaml goes over ZeroMQ, and the broker configs over RabbitMQ, Redis or
// NATS. The output is the same with every one of them: each subscriber prints what it received
// (in publish order), and the group prints which orders were processed (sorted, since which
// worker takes which order is up to the transport) and whether each was processed exactly once.
//
//     publish_subscribe [--config FILE]
#include <patchbay/patchbay.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace pb = patchbay;
using namespace std::chrono_literals;

namespace {

constexpr int kTicks = 12;
constexpr int kOrders = 10;
constexpr auto kPatience = 30s;  // how long a subscriber waits for the next message before giving up

const char* const kSymbols[] = {"ACME", "INIT", "GLOBX"};

/// Price tick n: a deterministic walk, written as cents so that output never depends on
/// floating-point formatting.
std::string tick(int n) {
  const int cents = 10'000 + (n * 137) % 900 - 450;
  std::ostringstream out;
  out << kSymbols[n % 3] << ' ' << cents / 100 << '.' << std::setw(2) << std::setfill('0') << cents % 100;
  return out.str();
}

/// One fan-out subscriber: receives every tick, in order, and returns them.
pb::awaitable<std::vector<std::string>> watch_prices(pb::Stream<pb::Delivery> prices) {
  std::vector<std::string> seen;
  auto timed = std::move(prices).timeout(kPatience);
  while (static_cast<int>(seen.size()) < kTicks) {
    auto d = co_await timed.next();
    if (!d) break;
    if (d->is_gap()) continue;
    seen.push_back(d->message().payload.str());
    d->ack();
  }
  co_return seen;
}

struct Fulfilment {
  std::mutex mutex;
  std::map<std::string, int> processed;  // order → how many times
  std::atomic<int> total{0};
};

/// One worker of the `fulfilment` group: processes orders until the group has all of them.
pb::awaitable<void> fulfil(pb::Stream<pb::Delivery> orders, std::shared_ptr<Fulfilment> state) {
  // A short timeout: when the other worker took the last order, this one notices and ends.
  auto timed = std::move(orders).timeout(100ms);
  while (state->total.load() < kOrders) {
    std::optional<pb::Delivery> d;
    try {
      d = co_await timed.next();
    } catch (const boost::system::system_error& e) {
      if (e.code() == pb::errc::timed_out) continue;
      throw;
    }
    if (!d) break;
    if (d->is_gap()) continue;
    {
      std::lock_guard lock(state->mutex);
      ++state->processed[d->message().payload.str()];
    }
    d->ack();
    ++state->total;
  }
}

pb::awaitable<void> publish_all(pb::Topic prices, pb::Topic orders) {
  for (int n = 0; n < kTicks; ++n) co_await prices.publish(tick(n));
  for (int n = 1; n <= kOrders; ++n) {
    pb::Message order(pb::Bytes("order-" + std::to_string(100 + n)));
    order.headers.add("customer", "c" + std::to_string(n % 4));
    co_await orders.publish(std::move(order));
  }
}

pb::awaitable<int> market(pb::Runtime& runtime) {
  auto prices = runtime.topic("prices");
  auto orders = runtime.topic("orders");

  // Subscribe first: a subscription receives what is published after it is established.
  auto dashboard = co_await prices.subscribe();
  auto audit = co_await prices.subscribe();
  auto worker1 = co_await orders.subscribe(pb::SubscribeOptions().group("fulfilment"));
  auto worker2 = co_await orders.subscribe(pb::SubscribeOptions().group("fulfilment"));

  // Each coroutine on its own strand (see docs/architecture.md, "Threading model").
  auto fulfilment = std::make_shared<Fulfilment>();
  auto seen_dashboard = pb::asio::co_spawn(runtime.get_executor(), watch_prices(std::move(dashboard)), pb::asio::use_future);
  auto seen_audit = pb::asio::co_spawn(runtime.get_executor(), watch_prices(std::move(audit)), pb::asio::use_future);
  auto w1 = pb::asio::co_spawn(runtime.get_executor(), fulfil(std::move(worker1), fulfilment), pb::asio::use_future);
  auto w2 = pb::asio::co_spawn(runtime.get_executor(), fulfil(std::move(worker2), fulfilment), pb::asio::use_future);
  co_await publish_all(prices, orders);

  // Wait for the subscribers without blocking this coroutine's thread.
  pb::asio::steady_timer timer(co_await pb::asio::this_coro::executor);
  auto ready = [](auto& f) { return f.wait_for(0s) == std::future_status::ready; };
  while (!(ready(seen_dashboard) && ready(seen_audit) && ready(w1) && ready(w2))) {
    timer.expires_after(10ms);
    co_await timer.async_wait(pb::asio::use_awaitable_t<pb::executor>{});
  }

  int status = 0;
  for (auto [name, fut] : {std::pair{"dashboard", &seen_dashboard}, std::pair{"audit", &seen_audit}}) {
    std::vector<std::string> seen;
    try {
      seen = fut->get();
    } catch (const std::exception& e) {
      std::cout << name << ": " << e.what() << "\n";
      status = 1;
    }
    std::cout << name << " received " << seen.size() << " of " << kTicks << " prices:";
    for (const auto& s : seen) std::cout << " [" << s << "]";
    std::cout << "\n";
    if (static_cast<int>(seen.size()) != kTicks) status = 1;
  }
  for (auto* f : {&w1, &w2}) {
    try {
      f->get();
    } catch (const std::exception& e) {
      std::cout << "a fulfilment worker failed: " << e.what() << "\n";
      status = 1;
    }
  }
  bool once = true;
  std::cout << "fulfilment processed " << fulfilment->processed.size() << " of " << kOrders << " orders:";
  for (const auto& [order, times] : fulfilment->processed) {
    std::cout << ' ' << order;
    once &= times == 1;
  }
  std::cout << "\nfulfilment processed each order exactly once: " << (once ? "yes" : "no") << "\n";
  if (!once || static_cast<int>(fulfilment->processed.size()) != kOrders) status = 1;
  co_return status;
}

}  // namespace

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  if (argc == 3 && std::strcmp(argv[1], "--config") == 0) {
    options.config_file = argv[2];
  } else if (argc != 1) {
    std::cerr << "usage: publish_subscribe [--config FILE]\n";
    return 2;
  }
  // The configs name plugin modules as ${PATCHBAY_MODULE_DIR}/libpatchbay_<name>.so; default to
  // the build tree this binary came from.
  ::setenv("PATCHBAY_MODULE_DIR", PATCHBAY_SAMPLE_MODULE_DIR, 0);

  auto created = pb::Runtime::create(std::move(options));
  if (!created.ok()) {
    std::cerr << created.status().message() << "\n";
    return 2;
  }
  auto& runtime = **created;
  if (auto s = runtime.start(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  auto result = pb::asio::co_spawn(runtime.get_executor(), market(runtime), pb::asio::use_future);
  int status = 1;
  try {
    status = result.get();
  } catch (const std::exception& e) {
    std::cout << "failed: " << e.what() << "\n";
  }
  runtime.stop();
  runtime.wait();
  return status;
}
