// http_bench_patchbay — the patchbay side of the HTTP benchmarks (driven by bench/http_bench.sh;
// the raw baseline is bench/http_raw_server.cpp).
//
//   --mode=server     an http::Server on one io_context run by one thread (the main thread),
//                     default limits, one route `GET /hello` answering "Hello from server!"
//                     with Exchange::respond(status, text).
//   --mode=transport  what users run: a Runtime (`threads: 1`) whose `http` transport listens
//                     with a `routes:` entry `GET /hello → service hello`, and a coroutine
//                     serving `hello` through Service::serve() that returns the same text.
//   --mode=hub        a Hub (topic "bench", default options unless given below) mounted on an
//                     http::Server, one io thread: GET /topics/bench/events. For the fan-out
//                     benchmark it publishes 100-byte messages with the paced publisher of
//                     bench/http_common.hpp (UDP feedback on the listener's port number); for the
//                     memory benchmark the connections just stay idle.
//
// Flags: --port=N (0: ephemeral; `transport` picks a free one), --send-buffer=BYTES,
// --heartbeat-ms=MS (hub), --window=N (publisher). Prints "listening <port>" when ready;
// SIGUSR1 prints memory figures (bench/http_common.hpp); SIGINT/SIGTERM end the process.
#include "http_common.hpp"

#include <patchbay/http/hub.hpp>
#include <patchbay/http/server.hpp>
#include <patchbay/registry.hpp>
#include <patchbay/runtime.hpp>
#include <patchbay/transports/http/http.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

namespace {

using namespace patchbay;
namespace pbh = patchbay::bench::http;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "http_bench_patchbay: %s\n", what.c_str());
  std::exit(1);
}

/// SIGUSR1 → memory figures; SIGINT/SIGTERM → exit at once (a benchmark process: no drain).
void handle_signals(executor ex, const char* tag, bool exit_on_term) {
  auto usr1 = std::make_shared<asio::signal_set>(ex, SIGUSR1);
  auto on_usr1 = std::make_shared<std::function<void(boost::system::error_code, int)>>();
  *on_usr1 = [usr1, on_usr1, tag](boost::system::error_code ec, int) {
    if (ec) return;
    pbh::print_memory_stats(stdout, tag);
    usr1->async_wait(*on_usr1);
  };
  usr1->async_wait(*on_usr1);
  if (exit_on_term) {
    auto term = std::make_shared<asio::signal_set>(ex, SIGINT, SIGTERM);
    term->async_wait([term](boost::system::error_code, int) {
      std::fflush(stdout);
      std::_Exit(0);
    });
  }
}

std::shared_ptr<http::Server> make_server(asio::io_context& io, const pbh::Flags& flags) {
  http::ServerOptions o;
  o.port = static_cast<std::uint16_t>(flags.num("port", 0));
  o.limits.max_connections = 20000;  // above the 10,000 of the memory benchmark; no memory cost
  auto s = http::Server::create(io.get_executor(), o);
  if (!s.ok()) die(std::string(s.status().message()));
  return *s;
}

int run_server(const pbh::Flags& flags) {
  asio::io_context io{1};
  auto server = make_server(io, flags);
  server->route(http::bhttp::verb::get, "/hello", [](http::Exchange& ex) -> awaitable<void> {
    ex.respond(http::bhttp::status::ok, "Hello from server!");
    co_return;
  });
  server->start();
  handle_signals(io.get_executor(), "patchbay-server", true);
  std::printf("listening %u\n", static_cast<unsigned>(server->port()));
  std::fflush(stdout);
  io.run();
  return 0;
}

int run_hub(const pbh::Flags& flags) {
  asio::io_context io{1};
  auto server = make_server(io, flags);
  http::HubOptions ho;
  ho.topics = {"bench"};
  ho.send_buffer = static_cast<std::size_t>(flags.num("send-buffer", static_cast<long long>(ho.send_buffer)));
  if (const long long hb = flags.num("heartbeat-ms", -1); hb >= 0) ho.heartbeat = std::chrono::milliseconds(hb);
  auto hub = http::Hub::create(io.get_executor(), ho);
  hub->mount(*server);
  server->start();

  udp::socket feedback(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), server->port()));
  const std::string& payload = pbh::payload_100();
  asio::co_spawn(io,
                 pbh::paced_publisher<executor>(feedback, static_cast<std::uint64_t>(flags.num("window", 256)),
                                                [&hub, &payload](std::uint64_t) { hub->publish("bench", Message(payload)); }),
                 asio::detached);

  handle_signals(io.get_executor(), "patchbay-hub", true);
  std::printf("listening %u\n", static_cast<unsigned>(server->port()));
  std::fflush(stdout);
  io.run();
  return 0;
}

/// A port nobody listens on now (the transport's config needs a number; its URL is not public).
std::uint16_t free_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

int run_transport(const pbh::Flags& flags) {
  std::uint16_t port = static_cast<std::uint16_t>(flags.num("port", 0));
  if (port == 0) port = free_port();
  const std::string config = R"(threads: 1
default_transport: web
transports:
  web:
    type: http
    listen: 127.0.0.1:)" + std::to_string(port) + R"(
    routes:
      - method: GET
        path: /hello
        service: hello
)";
  auto registry = Registry::with_builtins();
  if (auto st = http_transport::register_transport(*registry); !st.ok()) die(std::string(st.message()));
  RuntimeOptions options;
  options.config_text = config;
  options.registry = std::move(registry);
  auto rt = Runtime::create(std::move(options));
  if (!rt.ok()) die(std::string(rt.status().message()));
  Runtime& runtime = **rt;
  if (auto st = runtime.start(); !st.ok()) die(std::string(st.message()));
  asio::co_spawn(runtime.get_executor(),
                 runtime.service("hello").serve([](Message) -> awaitable<Message> { co_return Message("Hello from server!"); }),
                 asio::detached);
  handle_signals(runtime.get_executor(), "patchbay-transport", false);  // the Runtime stops on SIGINT/SIGTERM
  std::printf("listening %u\n", static_cast<unsigned>(port));
  std::fflush(stdout);
  runtime.wait();
  std::fflush(stdout);
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  const pbh::Flags flags(argc, argv);
  pbh::raise_open_files_limit();
  const std::string mode = flags.get("mode", "server");
  if (mode == "server") return run_server(flags);
  if (mode == "hub") return run_hub(flags);
  if (mode == "transport") return run_transport(flags);
  die("unknown --mode=" + mode + " (server, transport, hub)");
}
