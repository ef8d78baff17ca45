// samples/02-webhook-push/sender.cpp — a hub that pushes orders to a webhook endpoint.
//
// Publishes `--count` orders (5 by default) on the topic `orders`, one every `--interval`
// milliseconds, then keeps running so that the hub's webhook sender can finish its retries
// (Ctrl-C / SIGTERM stops it). sender.yaml gives the `http` transport a `webhooks:` section: one
// static endpoint subscribed to `orders`, a durable SQLite outbox, a short retry schedule. Each
// publish returns once the delivery is in the outbox; delivery is asynchronous: signed
// (webhook-id, webhook-timestamp, webhook-signature), retried on failure, with the same
// webhook-id on every attempt.
//
//   build/release/bin/webhook_sender --config samples/02-webhook-push/sender.yaml
#include <patchbay/patchbay.hpp>
#include <patchbay/transports/http/http.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

namespace pb = patchbay;

namespace {

pb::awaitable<void> publish_orders(pb::Topic orders, std::chrono::milliseconds interval, unsigned count) {
  pb::asio::steady_timer timer(co_await pb::asio::this_coro::executor);
  for (unsigned n = 1; n <= count; ++n) {
    char text[96];
    std::snprintf(text, sizeof text, "{\"order\":%u,\"item\":\"widget\",\"quantity\":%u}", n, n * 2);
    pb::Message msg(std::string_view{text});
    msg.headers.add("content-type", "application/json");
    msg.stamp();
    const std::string id = msg.id;
    co_await orders.publish(std::move(msg));
    std::cout << "published order " << n << " (webhook-id " << id << ")" << std::endl;
    timer.expires_after(interval);
    co_await timer.async_wait(pb::asio::use_awaitable);
  }
  std::cout << "all orders published; the outbox delivers them (Ctrl-C stops)" << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  std::chrono::milliseconds interval(500);
  unsigned count = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      options.config_file = argv[++i];
    } else if (std::strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
      interval = std::chrono::milliseconds(std::stoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
      count = static_cast<unsigned>(std::stoul(argv[++i]));
    } else {
      std::cerr << "usage: webhook_sender --config sender.yaml [--interval MS] [--count N]\n";
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
  // Started first: the hub's webhook sender is running before the first publish.
  if (auto s = rt.start(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  pb::asio::co_spawn(rt.get_executor(), publish_orders(rt.topic("orders"), interval, count), pb::asio::detached);
  rt.wait();  // until SIGINT / SIGTERM
  return 0;
}
