// samples/04-long-polling/hub.cpp — a notification hub served over long polling.
//
// Publishes a notification on the topic `alerts` every `--interval` milliseconds (500 by
// default), `--count` of them (0: without end). hub.yaml puts the topic on an `http` transport
// with a listener: GET /topics/alerts/poll?after=P&wait=S answers with what follows P, or holds
// until the next notification; POST /topics/alerts publishes one more.
//
//   build/release/bin/longpoll_hub --config samples/04-long-polling/hub.yaml
//   curl 'http://localhost:8084/topics/alerts/poll?wait=30'
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

pb::awaitable<void> publish_alerts(pb::Topic alerts, std::chrono::milliseconds interval, unsigned count) {
  const char* levels[] = {"info", "warning", "info", "critical"};
  pb::asio::steady_timer timer(co_await pb::asio::this_coro::executor);
  for (unsigned n = 0; count == 0 || n < count; ++n) {
    char text[96];
    std::snprintf(text, sizeof text, "{\"alert\":%u,\"level\":\"%s\"}", n, levels[n % 4]);
    co_await alerts.publish(std::string_view(text));
    timer.expires_after(interval);
    co_await timer.async_wait(pb::asio::use_awaitable);
  }
}

}  // namespace

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  std::chrono::milliseconds interval(500);
  unsigned count = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      options.config_file = argv[++i];
    } else if (std::strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
      interval = std::chrono::milliseconds(std::stoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
      count = static_cast<unsigned>(std::stoul(argv[++i]));
    } else {
      std::cerr << "usage: longpoll_hub --config hub.yaml [--interval MS] [--count N]\n";
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
  pb::asio::co_spawn(rt.get_executor(), publish_alerts(rt.topic("alerts"), interval, count), pb::asio::detached);
  std::cout << "publishing alerts (Ctrl-C stops)" << std::endl;
  if (auto s = rt.run(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  return 0;
}
