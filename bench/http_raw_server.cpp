// http_bench_raw — the raw Beast baseline of the HTTP benchmarks (driven by bench/http_bench.sh).
//
// What a competent hand-written Beast server on C++20 coroutines looks like, with the same Asio
// and Beast build as patchbay (the separately compiled copy in libpatchbay.so), on one
// io_context run by one thread:
//
//   GET /hello                  "Hello from server!" (text/plain), keep-alive: one coroutine per
//                               connection, one flat_buffer reused for every request on it, one
//                               response object built once and reused (only version and
//                               keep-alive change), a fresh request per read (a Beast parser
//                               cannot be reused), plain tcp::socket without per-operation
//                               timers (faster than Beast's examples' tcp_stream), TCP_NODELAY
//                               as patchbay sets it.
//   GET /topics/{t}/events      server-sent events, broadcast: the request-reading coroutine
//                               writes the header and `retry:` and ends (its buffer goes with
//                               it); a writer coroutine per connection then sends what the
//                               broadcaster queues. Per message the broadcaster formats one
//                               frame into one shared buffer and appends a pointer to it to
//                               every connection's queue; each writer sends its whole queue in
//                               one gathered async_write (as the hub sends up to max_batch
//                               frames per write) and sleeps on a steady_timer set to the far
//                               future (Asio's own chat-server idiom) when the queue is empty.
//                               A connection whose queue exceeds --max-queue frames is closed.
//
// Fan-out: the same paced publisher as the hub side (bench/http_common.hpp) on the UDP port
// with the listener's number. SIGUSR1 prints memory figures; SIGINT/SIGTERM exit.
//
// --strand=1 puts each connection on its own strand, as patchbay's Server does, --strand=2 on a
// strand over the concrete io_context executor (both for information, see listen()).
//
//   http_bench_raw [--port=0] [--window=256] [--max-queue=8192] [--strand=1|2]
#include "http_common.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

using Frame = std::shared_ptr<const std::string>;

struct Subscriber {
  explicit Subscriber(tcp::socket s) : socket(std::move(s)), wake(socket.get_executor()) {}
  tcp::socket socket;
  std::vector<Frame> queue;  // frames not yet handed to a write
  asio::steady_timer wake;   // cancelled when the queue gets a frame while the writer sleeps
  bool sleeping = false;
  std::size_t index = 0;     // in Broadcaster::subscribers
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

  /// One message to every connection: one frame, shared.
  void broadcast(std::uint64_t seq) {
    const Frame frame = std::make_shared<const std::string>(patchbay::bench::http::sse_frame(seq));
    for (const auto& s : subscribers_) {
      if (s->queue.size() >= max_queue_) {
        boost::system::error_code ec;
        s->socket.close(ec);  // a client that stopped reading: its write fails, the writer ends
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

asio::awaitable<void> sse_writer(std::shared_ptr<Subscriber> s, Broadcaster& hub) {
  std::vector<Frame> sending;
  std::vector<asio::const_buffer> buffers;
  for (;;) {
    if (s->queue.empty()) {
      s->sleeping = true;
      s->wake.expires_at(asio::steady_timer::time_point::max());
      co_await s->wake.async_wait(use_tuple);
      if (!s->socket.is_open()) break;
      continue;
    }
    sending.swap(s->queue);
    buffers.clear();
    for (const auto& f : sending) buffers.emplace_back(f->data(), f->size());
    auto [ec, n] = co_await asio::async_write(s->socket, buffers, use_tuple);
    sending.clear();
    if (ec) break;
  }
  hub.remove(s.get());
  boost::system::error_code ec;
  s->socket.close(ec);
}

bool is_events_target(std::string_view t) {
  constexpr std::string_view prefix = "/topics/", suffix = "/events";
  return t.size() > prefix.size() + suffix.size() && t.substr(0, prefix.size()) == prefix &&
         t.substr(t.size() - suffix.size()) == suffix;
}

/// Starts an event stream on `socket`: header, `retry:`, then the writer takes over.
asio::awaitable<void> start_events(tcp::socket& socket, unsigned version, Broadcaster& hub) {
  http::response<http::empty_body> head{http::status::ok, version};
  head.set(http::field::content_type, "text/event-stream");
  head.set(http::field::cache_control, "no-cache");
  head.set("X-Accel-Buffering", "no");
  head.set(http::field::connection, "close");
  http::response_serializer<http::empty_body> sr{head};
  auto [ec, n] = co_await http::async_write_header(socket, sr, use_tuple);
  if (ec) co_return;
  static constexpr std::string_view retry = "retry: 3000\n\n";
  std::tie(ec, n) = co_await asio::async_write(socket, asio::buffer(retry.data(), retry.size()), use_tuple);
  if (ec) co_return;
  auto s = std::make_shared<Subscriber>(std::move(socket));
  hub.add(s);
  asio::co_spawn(s->socket.get_executor(), sse_writer(s, hub), asio::detached);
}

asio::awaitable<void> session(tcp::socket socket, Broadcaster& hub) {
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> hello{http::status::ok, 11};
  hello.set(http::field::content_type, "text/plain; charset=utf-8");
  hello.body() = "Hello from server!";
  hello.prepare_payload();
  for (;;) {
    http::request<http::string_body> req;
    auto [rec, rn] = co_await http::async_read(socket, buffer, req, use_tuple);
    if (rec) break;
    const auto target = req.target();
    const std::string_view t(target.data(), target.size());
    if (req.method() == http::verb::get && t == "/hello") {
      hello.version(req.version());
      hello.keep_alive(req.keep_alive());
      auto [wec, wn] = co_await http::async_write(socket, hello, use_tuple);
      if (wec || !hello.keep_alive()) break;
    } else if (req.method() == http::verb::get && is_events_target(t)) {
      co_await start_events(socket, req.version(), hub);
      co_return;
    } else {
      http::response<http::string_body> res{http::status::not_found, req.version()};
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "not found\n";
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      auto [wec, wn] = co_await http::async_write(socket, res, use_tuple);
      if (wec || !res.keep_alive()) break;
    }
  }
  socket.shutdown(tcp::socket::shutdown_send, ec);
}

/// `strand` 1: each connection on its own strand over the type-erased executor, as patchbay's
/// Server does (`make_strand(any_io_executor)`); 2: a strand over the concrete
/// io_context::executor_type, which fits in any_io_executor's small-object buffer. For
/// information: the cost of that design on one thread, where a strand protects nothing.
asio::awaitable<void> listen(tcp::acceptor& acceptor, Broadcaster& hub, int strand) {
  const auto concrete = *acceptor.get_executor().target<asio::io_context::executor_type>();
  for (;;) {
    const asio::any_io_executor ex = strand == 1   ? asio::any_io_executor(asio::make_strand(acceptor.get_executor()))
                                     : strand == 2 ? asio::any_io_executor(asio::make_strand(concrete))
                                                   : acceptor.get_executor();
    auto [ec, socket] = co_await acceptor.async_accept(ex, use_tuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;  // e.g. out of file descriptors
    asio::co_spawn(ex, session(std::move(socket), hub), asio::detached);
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
  asio::co_spawn(io, listen(acceptor, hub, static_cast<int>(flags.num("strand", 0))), asio::detached);

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
