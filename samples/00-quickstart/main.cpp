// samples/00-quickstart — patchbay in one file: a topic, a service, no config.
//
// Serves a `greeter` service, subscribes to the `ticks` topic, publishes five ticks, prints
// each one it receives with its position and acknowledges it, then calls the service once.
// With no config every name lives on the in-process transport; `--config patchbay.yaml`
// reads the same setup from a file, where a binding can be moved to another transport.
#include <patchbay/patchbay.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <cstring>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>

namespace pb = patchbay;
using namespace std::chrono_literals;

namespace {

// The service: "NAME" -> "Hello, NAME!". Runs until the runtime stops.
pb::awaitable<void> serve_greeter(pb::Service greeter) {
  co_await greeter.serve([](pb::Message request) -> pb::awaitable<pb::Message> {
    co_return pb::Message("Hello, " + request.payload.str() + "!");
  });
}

// Five ticks, 100 ms apart.
pb::awaitable<void> publish_ticks(pb::Topic ticks) {
  pb::asio::steady_timer timer(co_await pb::asio::this_coro::executor);
  for (int n = 1; n <= 5; ++n) {
    if (n > 1) {
      timer.expires_after(100ms);
      co_await timer.async_wait(pb::asio::use_awaitable);
    }
    co_await ticks.publish("tick " + std::to_string(n));
  }
}

pb::awaitable<void> quickstart(pb::Runtime& runtime) {
  auto ex = co_await pb::asio::this_coro::executor;

  auto greeter = runtime.service("greeter");
  pb::asio::co_spawn(ex, serve_greeter(greeter), pb::asio::detached);

  // Subscribe before publishing: a subscription receives what is published after it is
  // established (or, with `SubscribeOptions().from(Position::earliest())`, the history too).
  auto ticks = runtime.topic("ticks");
  auto subscription = co_await ticks.subscribe();  // from Position::latest(), no consumer group
  pb::asio::co_spawn(ex, publish_ticks(ticks), pb::asio::detached);

  for (int received = 0; received < 5;) {
    auto delivery = co_await subscription.next();
    if (!delivery) throw std::runtime_error("the subscription ended early");
    if (delivery->is_gap()) continue;  // history moved on; nothing to settle
    std::cout << "received " << delivery->message().payload.view() << " at position "
              << delivery->position().to_string() << std::endl;
    delivery->ack();  // processed: an at-least-once transport will not deliver it again
    ++received;
  }

  pb::Message reply = co_await greeter.request(pb::Message("patchbay"), 2s);
  std::cout << "greeter replied: " << reply.payload.view() << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  if (argc == 3 && std::strcmp(argv[1], "--config") == 0) {
    options.config_file = argv[2];
  } else if (argc != 1) {
    std::cerr << "usage: quickstart [--config FILE]\n";
    return 2;
  }

  auto created = pb::Runtime::create(std::move(options));
  if (!created.ok()) {
    std::cerr << created.status().message() << "\n";
    return 1;
  }
  pb::Runtime& runtime = **created;
  if (auto status = runtime.start(); !status.ok()) {
    runtime.wait();  // a failed start requested a stop; let it finish
    std::cerr << status.message() << "\n";
    return 1;
  }

  // The completion handler runs on a runtime thread; wait() joins those before we read.
  bool finished = false;
  std::exception_ptr error;
  pb::asio::co_spawn(runtime.get_executor(), quickstart(runtime), [&](std::exception_ptr e) {
    error = e;
    finished = true;
    runtime.stop();
  });
  runtime.wait();

  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::cerr << "quickstart failed: " << e.what() << "\n";
    }
    return 1;
  }
  if (!finished) {
    std::cerr << "quickstart interrupted\n";
    return 1;
  }
  std::cout << "quickstart done" << std::endl;
  return 0;
}
