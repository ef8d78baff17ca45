// samples/08-live-dashboard/dashboard.cpp — the flagship sample: one topic, four browser
// patterns side by side.
//
// A price feed publishes a simulated quote on the topic `prices` every `--interval` ms. The
// topic is bound to a backbone (the in-process bus by default; Redis, NATS, RabbitMQ or ZeroMQ
// with `--config`), and the hub of the `http` transport bridges it to browsers. The page it
// serves at GET / reads the same topic four ways at once — server-sent events, long polling,
// short polling and WebSocket — and counts, per panel, messages, requests, bytes and the
// publish-to-display latency (each quote carries its publish time, `t`, in ms since the epoch).
//
//   build/release/bin/live_dashboard                      # inproc backbone, http://127.0.0.1:8080/
//   build/release/bin/live_dashboard --listen 0.0.0.0:9000 --config samples/08-live-dashboard/config/redis.yaml
//
// The application code below does not change with the backbone: it publishes to a Topic and
// serves a page through a Service; the config decides the wires.
#include <patchbay/patchbay.hpp>
#include <patchbay/transports/http/http.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>

namespace pb = patchbay;

namespace {

constexpr std::string_view kPage =
#include "dashboard.html.inc"
    ;

constexpr std::string_view kDefaultConfig =
#include "inproc.yaml.inc"
    ;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

pb::awaitable<void> publish_prices(pb::Topic prices, std::chrono::milliseconds interval) {
  std::mt19937 rng(7);
  std::normal_distribution<double> step(0.0, 0.35);
  const char* symbols[] = {"ACME", "INIT", "GLOBEX", "HOOLI"};
  double price[] = {101.0, 42.0, 250.0, 77.0};
  pb::asio::steady_timer timer(co_await pb::asio::this_coro::executor);
  unsigned failures = 0;
  for (unsigned n = 0;; ++n) {
    const unsigned i = n % 4;
    price[i] = std::max(1.0, price[i] + step(rng));
    // Written by hand: Boost.JSON prints doubles in exponent form (1.0112E2).
    char quote[128];
    std::snprintf(quote, sizeof quote, "{\"symbol\":\"%s\",\"price\":%.2f,\"seq\":%u,\"t\":%lld}", symbols[i], price[i],
                  n, static_cast<long long>(now_ms()));
    std::string error;
    try {
      co_await prices.publish(std::string_view(quote));
    } catch (const std::exception& e) {
      error = e.what();
    }
    // A backbone that is down (a broker restarting) costs quotes, not the feed: say so, go on.
    if (!error.empty() && failures++ % 50 == 0) std::cerr << "live_dashboard: publish failed: " << error << std::endl;
    timer.expires_after(interval);
    co_await timer.async_wait(pb::asio::use_awaitable);
  }
}

pb::awaitable<void> serve_page(pb::Service page) {
  co_await page.serve([](pb::Message) -> pb::awaitable<pb::Message> {
    pb::Message reply{std::string_view(kPage)};
    reply.headers.add("content-type", "text/html; charset=utf-8");
    reply.headers.add("cache-control", "no-cache");
    co_return reply;
  });
}

int usage() {
  std::cerr << "usage: live_dashboard [--config FILE] [--listen HOST:PORT] [--interval MS]\n"
               "  no --config: the in-process backbone (config/inproc.yaml, compiled in)\n"
               "  --listen sets LISTEN, which every config of the sample uses (default 127.0.0.1:8080)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  std::chrono::milliseconds interval(200);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      options.config_file = argv[++i];
    } else if (arg == "--listen" && i + 1 < argc) {
      ::setenv("LISTEN", argv[++i], 1);
    } else if (arg == "--interval" && i + 1 < argc) {
      const int ms = std::atoi(argv[++i]);
      if (ms <= 0) return usage();
      interval = std::chrono::milliseconds(ms);
    } else {
      return usage();
    }
  }
  if (!options.config_file) options.config_text = std::string(kDefaultConfig);
  // The broker configs load their transport as a module: ${PATCHBAY_MODULE_DIR}/libpatchbay_<name>.so,
  // by default from the build tree this binary came from.
  ::setenv("PATCHBAY_MODULE_DIR", PATCHBAY_SAMPLE_MODULE_DIR, 0);
  const char* listen = std::getenv("LISTEN");
  const std::string address = listen && *listen ? listen : "127.0.0.1:8080";

  auto registry = pb::Registry::with_builtins();
  if (auto s = pb::http_transport::register_transport(*registry); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  options.registry = std::move(registry);
  auto runtime = pb::Runtime::create(std::move(options));
  if (!runtime.ok()) {
    std::cerr << "live_dashboard: " << runtime.status().message() << "\n";
    return 1;
  }
  auto& rt = **runtime;
  pb::asio::co_spawn(rt.get_executor(), serve_page(rt.service("page")), pb::asio::detached);
  pb::asio::co_spawn(rt.get_executor(), publish_prices(rt.topic("prices"), interval), pb::asio::detached);
  std::cout << "live dashboard: http://" << address << "/   (prices every " << interval.count()
            << " ms; Ctrl-C stops)" << std::endl;
  if (auto s = rt.run(); !s.ok()) {
    std::cerr << "live_dashboard: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
