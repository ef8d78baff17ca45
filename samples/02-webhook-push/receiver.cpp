// samples/02-webhook-push/receiver.cpp — a webhook endpoint that verifies and acknowledges.
//
// Reads the topic `orders` through receiver.yaml, which binds it to the `webhook` transport: an
// HTTP listener for POST /webhooks/orders that checks the Standard Webhooks signature (401 when
// it does not match, nothing delivered) and holds each request until the Delivery is settled:
// ack() answers 204, nack() 503, and the sender retries. With `--nack-first` the first delivery
// is nacked, so its retry arrives marked redelivered(). Exits after `--count` orders.
//
//   build/release/bin/webhook_receiver --config samples/02-webhook-push/receiver.yaml --count 5
#include <patchbay/patchbay.hpp>
#include <patchbay/transports/webhook/webhook.hpp>

#include <cstring>
#include <future>
#include <iostream>
#include <set>

namespace pb = patchbay;

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  int count = 5;
  bool nack_first = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      options.config_file = argv[++i];
    } else if (std::strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
      count = std::stoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--nack-first") == 0) {
      nack_first = true;
    } else {
      std::cerr << "usage: webhook_receiver --config receiver.yaml [--count N] [--nack-first]\n";
      return 2;
    }
  }
  options.handle_signals = false;
  auto registry = pb::Registry::with_builtins();
  if (auto s = pb::webhook_transport::register_transport(*registry); !s.ok()) {
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
  if (auto s = rt.start(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  std::promise<bool> done;
  // A named lambda: it must outlive the coroutine, which refers to its captures.
  auto receive_orders = [&]() -> pb::awaitable<void> {
    auto orders = co_await rt.topic("orders").subscribe();
    std::cout << "listening for webhooks" << std::endl;
    std::set<std::string> seen;
    while (static_cast<int>(seen.size()) < count) {
      auto d = co_await orders.next();
      if (!d) break;
      const auto& m = d->message();
      if (nack_first) {
        nack_first = false;
        std::cout << "nack " << m.id << " (the sender will retry)" << std::endl;
        d->nack();
        continue;
      }
      std::cout << "order " << m.payload.view() << " (webhook-id " << m.id << ")"
                << (d->redelivered() ? " redelivered" : "") << std::endl;
      seen.insert(m.id);
      d->ack();
    }
  };
  pb::asio::co_spawn(rt.get_executor(), receive_orders(), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::cerr << "receiver failed: " << x.what() << "\n";
      }
    }
    done.set_value(!e);
  });
  bool ok = done.get_future().get();
  rt.stop();
  rt.wait();
  return ok ? 0 : 1;
}
