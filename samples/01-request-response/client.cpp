// samples/01-request-response/client.cpp — calls the `quote` service of a remote server.
//
// The code asks for `quote` like it would any service; client.yaml binds `quote` to an `http`
// transport with the server's URL, so the request becomes POST {url}/services/quote. A remote
// error keeps its HTTP status (patchbay::http::StatusError).
//
// Run: build/release/bin/rr_client --config samples/01-request-response/client.yaml ACME
#include <patchbay/http/status_error.hpp>
#include <patchbay/patchbay.hpp>
#include <patchbay/transports/http/http.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstring>
#include <future>
#include <iostream>

namespace pb = patchbay;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc < 4 || std::strcmp(argv[1], "--config") != 0) {
    std::cerr << "usage: rr_client --config client.yaml SYMBOL...\n";
    return 2;
  }
  pb::RuntimeOptions options;
  options.config_file = argv[2];
  options.handle_signals = false;
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
  if (auto s = rt.start(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  std::vector<std::string> symbols(argv + 3, argv + argc);
  std::promise<int> result;
  // A named lambda: it must outlive the coroutine, which refers to its captures.
  auto call_quotes = [&]() -> pb::awaitable<int> {
    auto quote = rt.service("quote");
    int failures = 0;
    for (const auto& symbol : symbols) {
      try {
        pb::Message request(boost::json::serialize(boost::json::object{{"symbol", symbol}}));
        request.headers.add("content-type", "application/json");
        pb::Message reply = co_await quote.request(std::move(request), 5s);
        std::cout << "quote " << symbol << ": " << reply.payload.view() << std::endl;
      } catch (const pb::http::StatusError& e) {
        std::cout << "quote " << symbol << " failed with HTTP " << e.status() << ": " << e.body() << std::endl;
        ++failures;
      } catch (const std::exception& e) {
        std::cout << "quote " << symbol << " failed: " << e.what() << std::endl;
        ++failures;
      }
    }
    co_return failures;
  };
  pb::asio::co_spawn(rt.get_executor(), call_quotes(),
                     [&](std::exception_ptr e, int failures) { result.set_value(e ? 1 : failures); });
  int failures = result.get_future().get();
  rt.stop();
  rt.wait();
  return failures == 0 ? 0 : 1;
}
