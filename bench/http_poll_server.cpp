// http_bench_poll_server — the patchbay side of the polling benchmarks (driven by
// bench/poll_bench.sh; the raw baseline is bench/http_raw_server.cpp).
//
// A Hub (topic "bench", default options) mounted on an http::Server with default limits (but
// max_connections 20000), one io_context run by the main thread, as --mode=hub of
// http_bench_patchbay. Before listening it publishes --messages (16) 100-byte messages, so a
// short poll after the newest one finds nothing new: GET /topics/bench/messages?after=<next>
// answers `{"messages":[],"next":..}` (200) or, with If-None-Match, 304; long polls
// GET /topics/bench/poll?after=<next>&wait=600 are held.
//
// Prints "listening <port>" and "next <position>" when ready; SIGUSR1 prints memory figures
// (bench/http_common.hpp) and "held <long polls held>"; SIGINT/SIGTERM end the process.
// GCC 12 at -O2 reports a false -Wrestrict inside std::string::assign when Flags' constructor
// is inlined here (GCC bug 105329); nothing overlaps.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#include "http_common.hpp"

#include <patchbay/http/hub.hpp>
#include <patchbay/http/server.hpp>

#include <boost/asio/io_context.hpp>
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

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "http_bench_poll_server: %s\n", what.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  const pbh::Flags flags(argc, argv);
#pragma GCC diagnostic pop
  pbh::raise_open_files_limit();
  asio::io_context io{1};
  http::ServerOptions o;
  o.port = static_cast<std::uint16_t>(flags.num("port", 0));
  o.limits.max_connections = 20000;  // above the 10,000 of the memory benchmark
  auto made = http::Server::create(io.get_executor(), o);
  if (!made.ok()) die(std::string(made.status().message()));
  auto server = *made;
  http::HubOptions ho;
  ho.topics = {"bench"};
  ho.heartbeat = duration::zero();
  auto hub = http::Hub::create(io.get_executor(), ho);
  hub->mount(*server);
  std::string next;
  for (long long i = 0; i < flags.num("messages", 16); ++i) next = hub->publish("bench", Message(pbh::payload_100()));
  server->start();

  auto usr1 = std::make_shared<asio::signal_set>(io, SIGUSR1);
  auto on_usr1 = std::make_shared<std::function<void(boost::system::error_code, int)>>();
  *on_usr1 = [usr1, on_usr1, hub](boost::system::error_code ec, int) {
    if (ec) return;
    pbh::print_memory_stats(stdout, "patchbay-poll");
    std::printf("held %zu\n", hub->held_polls());
    std::fflush(stdout);
    usr1->async_wait(*on_usr1);
  };
  usr1->async_wait(*on_usr1);
  asio::signal_set term(io, SIGINT, SIGTERM);
  term.async_wait([](boost::system::error_code, int) {
    std::fflush(stdout);
    std::_Exit(0);
  });
  std::printf("listening %u\nnext %s\n", static_cast<unsigned>(server->port()), next.c_str());
  std::fflush(stdout);
  io.run();
  return 0;
}
