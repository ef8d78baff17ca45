// samples/03-short-polling/hub.cpp — a build-status board served over short polling.
//
// Publishes a job status on the topic `jobs` every `--interval` milliseconds (500 by
// default), `--count` of them (0: without end). hub.yaml puts the topic on an `http` transport
// with a listener: GET /topics/jobs/messages?after=P answers at once with what follows P, with
// an ETag: asked again with If-None-Match and nothing new, it answers 304 without a body.
//
//   build/release/bin/shortpoll_hub --config samples/03-short-polling/hub.yaml
//   curl 'http://localhost:8083/topics/jobs/messages'
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

pb::awaitable<void> publish_jobs(pb::Topic jobs, std::chrono::milliseconds interval, unsigned count) {
  const char* states[] = {"queued", "running", "passed"};
  pb::asio::steady_timer timer(co_await pb::asio::this_coro::executor);
  for (unsigned n = 0; count == 0 || n < count; ++n) {
    char text[96];
    std::snprintf(text, sizeof text, "{\"job\":\"build-%u\",\"state\":\"%s\",\"seq\":%u}", n / 3, states[n % 3], n);
    co_await jobs.publish(std::string_view(text));
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
      std::cerr << "usage: shortpoll_hub --config hub.yaml [--interval MS] [--count N]\n";
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
  pb::asio::co_spawn(rt.get_executor(), publish_jobs(rt.topic("jobs"), interval, count), pb::asio::detached);
  std::cout << "publishing job states (Ctrl-C stops)" << std::endl;
  if (auto s = rt.run(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  return 0;
}
