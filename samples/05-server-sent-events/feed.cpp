// samples/05-server-sent-events/feed.cpp — a live price feed served as server-sent events.
//
// Publishes a simulated quote for one of four symbols every `--interval` milliseconds (200 by
// default) on the topic `prices`, and serves the page that shows them (GET /). feed.yaml puts
// both on an `http` transport with a listener: the topic becomes GET /topics/prices/events.
//
//   build/release/bin/sse_feed --config samples/05-server-sent-events/feed.yaml
//   open http://localhost:8081/         or: curl -N http://localhost:8081/topics/prices/events
#include <patchbay/patchbay.hpp>
#include <patchbay/transports/http/http.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <string>

namespace pb = patchbay;

namespace {

constexpr std::string_view kPage =
#include "page.html.inc"
    ;

pb::awaitable<void> publish_prices(pb::Topic prices, std::chrono::milliseconds interval) {
  std::mt19937 rng(42);
  std::normal_distribution<double> step(0.0, 0.4);
  const char* symbols[] = {"ACME", "INIT", "GLOBEX", "HOOLI"};
  double price[] = {101.0, 42.0, 250.0, 77.0};
  pb::asio::steady_timer timer(co_await pb::asio::this_coro::executor);
  for (unsigned n = 0;; ++n) {
    const unsigned i = n % 4;
    price[i] = std::max(1.0, price[i] + step(rng));
    // Written by hand: Boost.JSON prints doubles in exponent form (1.0112E2).
    char quote[96];
    std::snprintf(quote, sizeof quote, "{\"symbol\":\"%s\",\"price\":%.2f,\"seq\":%u}", symbols[i], price[i], n);
    co_await prices.publish(std::string_view(quote));
    timer.expires_after(interval);
    co_await timer.async_wait(pb::asio::use_awaitable);
  }
}

pb::awaitable<void> serve_page(pb::Service page) {
  co_await page.serve([](pb::Message) -> pb::awaitable<pb::Message> {
    pb::Message reply{std::string_view(kPage)};
    reply.headers.add("content-type", "text/html; charset=utf-8");
    co_return reply;
  });
}

}  // namespace

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  std::chrono::milliseconds interval(200);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      options.config_file = argv[++i];
    } else if (std::strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
      interval = std::chrono::milliseconds(std::stoi(argv[++i]));
    } else {
      std::cerr << "usage: sse_feed --config feed.yaml [--interval MS]\n";
      return 2;
    }
  }
  auto registry = pb::Registry::with_builtins();
  if (auto s = pb::http_transport::register_transport(*registry); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  options.registry = std::move(registry);
  auto runtime = pb::Runtime::create(std::move(options));
  if (!runtime.ok()) {
    std::cerr << runtime.status().message() << "\n";
    return 1;
  }
  auto& rt = **runtime;
  pb::asio::co_spawn(rt.get_executor(), serve_page(rt.service("page")), pb::asio::detached);
  pb::asio::co_spawn(rt.get_executor(), publish_prices(rt.topic("prices"), interval), pb::asio::detached);
  std::cout << "publishing prices (Ctrl-C stops)" << std::endl;
  if (auto s = rt.run(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  return 0;
}
