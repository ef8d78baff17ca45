// ws_bench_raw — the raw baseline of the WebSocket benchmarks (bench/ws_bench.sh): a minimal
// Beast WebSocket broadcast server, the shape of Beast's own websocket chat example, on C++20
// coroutines and one io_context run by one thread, with the same Asio/Beast build as patchbay.
//
// Every `GET <any path>` upgrade is accepted (websocket::stream::async_accept reads the
// request). Per connection: a reader coroutine (it must read for Beast to answer pings and
// closes; client messages are dropped) and a writer coroutine that sends what the broadcaster
// queued, one async_write per message, and sleeps on a steady_timer when the queue is empty
// (Asio's chat-server idiom); a queue over --max-queue (8192) frames closes the connection. The
// broadcaster encodes each message once — the same JSON text frame the hub sends for a
// 100-byte payload ({"type":"message","position":..,"id":..,"headers":[],"payload":..}) — and
// appends a pointer to it to every connection's queue. Fan-out: the paced publisher of
// bench/http_common.hpp on the UDP port of the listener's number, as the hub side.
//
// Flags: --port=N, --window=N, --max-queue=N. Prints "listening <port>"; SIGUSR1 prints memory
// figures; SIGINT/SIGTERM end the process.
#include "http_common.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

using Frame = std::shared_ptr<const std::string>;

/// The hub's text frame for message `seq` (12-digit epoch, a 32-hex-digit id, no headers).
std::string ws_frame(std::uint64_t seq) {
  char head[160];
  const int n = std::snprintf(head, sizeof head,
                              "{\"type\":\"message\",\"position\":\"123456789012:%llu\",\"id\":\"%032llx\",\"headers\":[],\"payload\":\"",
                              static_cast<unsigned long long>(seq), static_cast<unsigned long long>(seq));
  std::string out(head, static_cast<std::size_t>(n));
  out += patchbay::bench::http::payload_100();
  out += "\"}";
  return out;
}

struct Subscriber {
  explicit Subscriber(tcp::socket s) : ws(std::move(s)), wake(ws.get_executor()) {}
  websocket::stream<tcp::socket> ws;
  std::vector<Frame> queue;
  asio::steady_timer wake;
  bool sleeping = false;
  bool dead = false;
  std::size_t index = 0;
};

class Broadcaster {
 public:
  explicit Broadcaster(std::size_t max_queue) : max_queue_(max_queue) {}

  void add(const std::shared_ptr<Subscriber>& s) {
    s->index = subscribers_.size();
    subscribers_.push_back(s);
  }
  void remove(Subscriber* s) {
    auto& last = subscribers_.back();
    last->index = s->index;
    std::swap(subscribers_[s->index], last);
    subscribers_.pop_back();
  }

  void broadcast(std::uint64_t seq) {
    const Frame frame = std::make_shared<const std::string>(ws_frame(seq));
    for (const auto& s : subscribers_) {
      if (s->queue.size() >= max_queue_) {
        boost::system::error_code ec;
        s->ws.next_layer().close(ec);
        continue;
      }
      s->queue.push_back(frame);
      if (s->sleeping) {
        s->sleeping = false;
        s->wake.cancel();
      }
    }
  }

 private:
  std::size_t max_queue_;
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
};

asio::awaitable<void> reader(std::shared_ptr<Subscriber> s) {
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await s->ws.async_read(buffer, use_tuple);
    if (ec) break;
    buffer.clear();
  }
  s->dead = true;
  s->wake.cancel();
}

asio::awaitable<void> writer(std::shared_ptr<Subscriber> s, Broadcaster& hub) {
  std::vector<Frame> sending;
  while (!s->dead) {
    if (s->queue.empty()) {
      s->sleeping = true;
      s->wake.expires_at(asio::steady_timer::time_point::max());
      co_await s->wake.async_wait(use_tuple);
      continue;
    }
    sending.swap(s->queue);
    bool failed = false;
    for (const auto& f : sending) {
      auto [ec, n] = co_await s->ws.async_write(asio::buffer(*f), use_tuple);
      if (ec) {
        failed = true;
        break;
      }
    }
    sending.clear();
    if (failed) break;
  }
  hub.remove(s.get());
  boost::system::error_code ec;
  s->ws.next_layer().close(ec);
}

asio::awaitable<void> session(tcp::socket socket, Broadcaster& hub) {
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  auto s = std::make_shared<Subscriber>(std::move(socket));
  s->ws.auto_fragment(false);
  auto [aec] = co_await s->ws.async_accept(use_tuple);
  if (aec) co_return;
  hub.add(s);
  asio::co_spawn(s->ws.get_executor(), reader(s), asio::detached);
  co_await writer(s, hub);
}

asio::awaitable<void> listen(tcp::acceptor& acceptor, Broadcaster& hub) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket), hub), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  namespace pbh = patchbay::bench::http;
  const pbh::Flags flags(argc, argv);
  pbh::raise_open_files_limit();

  asio::io_context io{1};
  tcp::acceptor acceptor(io);
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(flags.num("port", 0)));
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  const auto port = acceptor.local_endpoint().port();

  Broadcaster hub(static_cast<std::size_t>(flags.num("max-queue", 8192)));
  udp::socket feedback(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::co_spawn(io,
                 pbh::paced_publisher<asio::any_io_executor>(feedback, static_cast<std::uint64_t>(flags.num("window", 256)),
                                                            [&hub](std::uint64_t seq) { hub.broadcast(seq); }),
                 asio::detached);
  asio::co_spawn(io, listen(acceptor, hub), asio::detached);

  asio::signal_set stop(io, SIGINT, SIGTERM);
  stop.async_wait([&](auto, int) { io.stop(); });
  asio::signal_set usr1(io, SIGUSR1);
  std::function<void(boost::system::error_code, int)> on_usr1 = [&](boost::system::error_code ec, int) {
    if (ec) return;
    pbh::print_memory_stats(stdout, "raw");
    usr1.async_wait(on_usr1);
  };
  usr1.async_wait(on_usr1);

  std::printf("listening %u\n", static_cast<unsigned>(port));
  std::fflush(stdout);
  io.run();
  return 0;
}
