// samples/05-server-sent-events/subscriber.cpp — reads `prices` from a remote hub.
//
// subscriber.yaml binds `prices` to the `sse` transport: an EventSource client that
// reconnects with Last-Event-ID by itself. Prints `--count` events (default 5) and exits.
//
//   build/release/bin/sse_subscriber --config samples/05-server-sent-events/subscriber.yaml
#include <patchbay/patchbay.hpp>
#include <patchbay/transports/sse/sse.hpp>

#include <cstring>
#include <future>
#include <iostream>

namespace pb = patchbay;

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  int count = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      options.config_file = argv[++i];
    } else if (std::strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
      count = std::stoi(argv[++i]);
    } else {
      std::cerr << "usage: sse_subscriber --config subscriber.yaml [--count N]\n";
      return 2;
    }
  }
  options.handle_signals = false;
  auto registry = pb::Registry::with_builtins();
  if (auto s = pb::sse_transport::register_transport(*registry); !s.ok()) {
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
  auto print_events = [&]() -> pb::awaitable<void> {
    auto prices = co_await rt.topic("prices").subscribe();
    for (int n = 0; n < count;) {
      auto d = co_await prices.next();
      if (!d) break;
      if (d->is_gap()) {
        std::cout << "gap: " << d->gap().reason << std::endl;
        continue;
      }
      std::cout << "event " << ++n << " at " << d->position().token() << ": " << d->message().payload.view()
                << std::endl;
    }
  };
  pb::asio::co_spawn(rt.get_executor(), print_events(), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::cerr << "subscriber failed: " << x.what() << "\n";
      }
    }
    done.set_value(!e);
  });
  bool ok = done.get_future().get();
  rt.stop();
  rt.wait();
  return ok ? 0 : 1;
}
