// A zmq peer for the fault test, in its own process: `zmq_test_peer ENDPOINT TOPIC GENERATION`
// binds a publisher at ENDPOINT (the transport loaded as a module) and publishes
// "GENERATION:i" on TOPIC every 2 ms until it is killed.
#include <patchbay/runtime.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <cstdio>
#include <string>

namespace {

patchbay::awaitable<void> publish_forever(std::shared_ptr<patchbay::Transport> transport, std::string topic,
                                          std::string generation) {
  patchbay::asio::steady_timer timer(co_await patchbay::asio::this_coro::executor);
  for (long i = 0;; ++i) {
    patchbay::Message m{patchbay::Bytes(generation + ":" + std::to_string(i))};
    m.topic = topic;
    m.stamp();
    co_await transport->publish(std::move(m));
    timer.expires_after(std::chrono::milliseconds(2));
    co_await timer.async_wait(patchbay::asio::use_awaitable_t<patchbay::executor>{});
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s ENDPOINT TOPIC GENERATION\n", argv[0]);
    return 2;
  }
  patchbay::RuntimeOptions options;
  options.config_text = std::string("plugins: [ " PATCHBAY_ZMQ_MODULE " ]\n"
                                    "transports: { bus: { type: zmq, publish: { bind: [ '") +
                        argv[1] + "' ] } } }\ndefault_transport: bus\nthreads: 1\n";
  auto rt = patchbay::Runtime::create(std::move(options));
  if (!rt.ok()) {
    std::fprintf(stderr, "%s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  if (auto s = (*rt)->start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  auto transport = (*rt)->topic(argv[2]).transport();
  patchbay::asio::co_spawn((*rt)->get_executor(), publish_forever(transport, argv[2], argv[3]),
                           patchbay::asio::detached);
  (void)(*rt)->run();
  return 0;
}
