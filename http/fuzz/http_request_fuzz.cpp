// libFuzzer target for the HTTP request path: each input is written, as is, to a real server
// core (on loopback, two io threads) with the hub mounted and a few routes, the write side is
// shut, and the answer is read until the server closes. The server must answer with an HTTP
// status line or close, never crash, hang or leak; a final request on a fresh connection must
// still be answered.
#include <patchbay/http/hub.hpp>
#include <patchbay/http/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <sys/socket.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace {

using namespace patchbay;
using namespace patchbay::http;
using tcp = asio::ip::tcp;

struct World {
  asio::io_context io{2};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{io.get_executor()};
  std::shared_ptr<Server> server;
  std::shared_ptr<Hub> hub;
  std::vector<std::thread> threads;

  World() {
    ServerOptions o;
    o.limits.header_timeout = std::chrono::milliseconds(500);
    o.limits.request_timeout = std::chrono::milliseconds(500);
    o.limits.idle_timeout = std::chrono::milliseconds(500);
    o.limits.timer_resolution = std::chrono::milliseconds(20);
    o.limits.body_limit = 64 * 1024;
    auto s = Server::create(io.get_executor(), o);
    if (!s.ok()) std::abort();
    server = *s;
    HubOptions h;
    h.open_topics = true;
    h.history = 16;
    h.heartbeat = std::chrono::milliseconds(100);
    hub = Hub::create(io.get_executor(), h);
    hub->mount(*server);
    server->route(bhttp::verb::post, "/echo", [](Exchange& ex) -> awaitable<void> {
      ex.respond(bhttp::status::ok, ex.request().body());
      co_return;
    });
    server->route(bhttp::verb::get, "/users/{id}", [](Exchange& ex) -> awaitable<void> {
      ex.respond(bhttp::status::ok, std::string(ex.param("id")) + ex.query("q").value_or(""));
      co_return;
    });
    server->start();
    for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
  }

  std::string exchange(const std::uint8_t* data, std::size_t size) {
    // Blocking calls here can be interrupted by libFuzzer's own signals (its -timeout alarm):
    // EINTR is retried everywhere, a connect with a fresh socket.
    asio::io_context client;
    tcp::socket s(client);
    boost::system::error_code ec;
    for (int attempt = 0;; ++attempt) {
      s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server->port()), ec);
      if (!ec) break;
      if (ec != asio::error::interrupted || attempt == 100) {
        std::fprintf(stderr, "cannot connect to the server: %s\n", ec.message().c_str());
        std::abort();
      }
      boost::system::error_code ignored;
      s.close(ignored);
      s = tcp::socket(client);
    }
    timeval tv{10, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (std::size_t sent = 0; sent < size;) {
      sent += s.write_some(asio::buffer(data + sent, size - sent), ec);
      if (ec && ec != asio::error::interrupted) break;
    }
    s.shutdown(tcp::socket::shutdown_send, ec);
    std::string out;
    char buf[8192];
    for (;;) {
      auto n = s.read_some(asio::buffer(buf), ec);
      out.append(buf, n);
      if (ec == asio::error::interrupted) continue;
      // An event stream stays open: its header is enough to check.
      if (ec || out.size() > 65536) break;
      auto head_end = out.find("\r\n\r\n");
      if (head_end != std::string::npos && out.find("text/event-stream") < head_end) break;
    }
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      std::fprintf(stderr, "the server neither answered nor closed within 10 s\n");
      std::abort();
    }
    return out;
  }
};

World& world() {
  static World* w = new World();  // lives for the whole run (libFuzzer exits without teardown)
  return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& w = world();
  auto answer = w.exchange(data, size);
  if (!answer.empty() && answer.rfind("HTTP/1.1 ", 0) != 0 && answer.rfind("HTTP/1.0 ", 0) != 0) {
    std::fprintf(stderr, "answer does not start with a status line: %.80s\n", answer.c_str());
    std::abort();
  }
  static unsigned runs = 0;
  if (++runs % 1000 == 0) {
    static const char probe[] = "GET /users/7?q=x HTTP/1.1\r\nHost: fuzz\r\n\r\n";
    auto ok = w.exchange(reinterpret_cast<const std::uint8_t*>(probe), sizeof probe - 1);
    if (ok.rfind("HTTP/1.1 200 OK", 0) != 0) {
      std::fprintf(stderr, "the server stopped answering normal requests: %.80s\n", ok.c_str());
      std::abort();
    }
  }
  return 0;
}
