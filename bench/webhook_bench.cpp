// webhook_bench — webhook delivery throughput against a raw Beast POST loop (bench/webhook_bench.sh,
// docs/benchmarks.md "Webhooks").
//
//   webhook_bench receiver                 a raw Beast HTTP/1.1 server on one thread that answers
//                                          every request 204 (keep-alive); prints "listening PORT"
//   webhook_bench raw URL N C              the baseline: C keep-alive connections, each a coroutine
//                                          POSTing (100-byte body, the same header fields a
//                                          delivery carries, precomputed) and reading the answer,
//                                          N requests in all, on one io thread
//   webhook_bench sender URL N C OUTBOX    a Hub with a webhook Sender (one static endpoint,
//                                          max_concurrency C, outbox file OUTBOX or "memory"), one
//                                          io thread; publishes N messages from the main thread
//                                          and waits until all are delivered
// Each client mode prints "rate <per second>".
#include <patchbay/http/client.hpp>
#include <patchbay/http/hub.hpp>
#include <patchbay/http/webhook_signature.hpp>
#include <patchbay/webhook/sender.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

const std::string kBody(100, 'x');
const char* kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

asio::awaitable<void> serve(tcp::socket socket) {
  beast::flat_buffer buffer;
  bhttp::response<bhttp::empty_body> res{bhttp::status::no_content, 11};
  boost::system::error_code ec;
  for (;;) {
    bhttp::request<bhttp::string_body> req;
    co_await bhttp::async_read(socket, buffer, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    res.keep_alive(req.keep_alive());
    co_await bhttp::async_write(socket, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !req.keep_alive()) co_return;
  }
}

asio::awaitable<void> accept(tcp::acceptor& acceptor) {
  for (;;) {
    auto socket = co_await acceptor.async_accept(asio::use_awaitable);
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
  }
}

int receiver() {
  asio::io_context io{1};
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::printf("listening %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  asio::co_spawn(io, accept(acceptor), asio::detached);
  io.run();
  return 0;
}

asio::awaitable<void> post_loop(tcp::endpoint to, std::string target, std::string host, std::atomic<long>& left) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(to, asio::use_awaitable);
  socket.set_option(tcp::no_delay(true));
  beast::flat_buffer buffer;
  // What a delivery carries, computed once: the loop measures HTTP, not signing.
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
  req.set(bhttp::field::host, host);
  req.set(bhttp::field::content_type, "application/octet-stream");
  req.set("webhook-id", "0123456789abcdef0123456789abcdef");
  req.set("webhook-timestamp", "1764290000");
  const patchbay::http::webhook::Secret secrets[] = {*patchbay::http::webhook::Secret::parse(kSecret)};
  req.set("webhook-signature", patchbay::http::webhook::signature_header(secrets, "id", 1764290000, kBody));
  req.set("Patchbay-Topic", "bench");
  req.set("Patchbay-Message-Id", "0123456789abcdef0123456789abcdef");
  req.body() = kBody;
  req.prepare_payload();
  while (left.fetch_sub(1) > 0) {
    co_await bhttp::async_write(socket, req, asio::use_awaitable);
    bhttp::response<bhttp::string_body> res;
    co_await bhttp::async_read(socket, buffer, res, asio::use_awaitable);
    if (res.result_int() / 100 != 2) throw std::runtime_error("raw: answer " + std::to_string(res.result_int()));
  }
}

int raw(const std::string& url, long n, int c) {
  auto u = boost::urls::parse_uri(url).value();
  asio::io_context io{1};
  const tcp::endpoint to(asio::ip::make_address(u.host()), u.port_number());
  std::atomic<long> left{n};
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < c; ++i)
    asio::co_spawn(io, post_loop(to, std::string(u.encoded_target()), std::string(u.encoded_host_and_port()), left),
                   [](std::exception_ptr e) {
                     if (e) std::rethrow_exception(e);
                   });
  io.run();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("rate %.0f\n", static_cast<double>(n) / s);
  return 0;
}

// For information: the HTTP client core alone (what the sender's attempts run on), C coroutines.
asio::awaitable<void> client_loop(patchbay::http::Client& client, std::string url, std::atomic<long>& left) {
  while (left.fetch_sub(1) > 0) {
    patchbay::http::Request req{bhttp::verb::post, "/", 11};
    req.set(bhttp::field::content_type, "application/octet-stream");
    req.set("webhook-id", "0123456789abcdef0123456789abcdef");
    req.body() = kBody;
    auto res = co_await client.request(url, std::move(req));
    if (res.result_int() / 100 != 2) throw std::runtime_error("client: answer " + std::to_string(res.result_int()));
  }
}

int client(const std::string& url, long n, int c) {
  asio::io_context io{1};
  patchbay::http::ClientOptions o;
  o.max_idle_per_origin = static_cast<std::size_t>(c) * 2;
  patchbay::http::Client client(io.get_executor(), o);
  std::atomic<long> left{n};
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < c; ++i)
    asio::co_spawn(io, client_loop(client, url, left), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  io.run();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("rate %.0f\n", static_cast<double>(n) / s);
  return 0;
}

int sender(const std::string& url, long n, int c, const std::string& outbox) {
  asio::io_context io{1};
  auto guard = asio::make_work_guard(io);
  std::thread thread([&io] { io.run(); });
  auto hub = patchbay::http::Hub::create(io.get_executor());
  patchbay::webhook::SenderOptions o;
  if (outbox != "memory") {
    std::filesystem::remove(outbox);
    std::filesystem::remove(outbox + "-wal");
    o.outbox = outbox;
  }
  o.allow = {"127.0.0.0/8"};
  o.max_concurrency = static_cast<std::size_t>(c);
  patchbay::webhook::EndpointSpec e;
  e.url = url;
  e.topics = {"bench"};
  e.secrets = {*patchbay::http::webhook::Secret::parse(kSecret)};
  o.endpoints.push_back(e);
  auto s = patchbay::webhook::Sender::create(io.get_executor(), hub, o);
  if (!s.ok()) {
    std::cerr << s.status() << "\n";
    return 1;
  }
  auto& snd = *s;
  snd->start();
  const auto start = std::chrono::steady_clock::now();
  const patchbay::Bytes body(kBody);
  for (long i = 0; i < n; ++i) {
    patchbay::Message m{body};
    hub->publish("bench", std::move(m));
  }
  while (snd->stats().delivered < static_cast<std::uint64_t>(n)) std::this_thread::sleep_for(200us);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto st = snd->stats();
  std::printf("rate %.0f\n", static_cast<double>(n) / secs);
  if (st.failed_attempts) std::fprintf(stderr, "failed attempts: %llu\n", static_cast<unsigned long long>(st.failed_attempts));
  auto stopped = asio::co_spawn(io.get_executor(), snd->stop(), asio::use_future);
  stopped.get();
  hub->stop();
  guard.reset();
  io.stop();
  thread.join();
  if (outbox != "memory") {
    snd.reset();
    std::filesystem::remove(outbox);
    std::filesystem::remove(outbox + "-wal");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "receiver") return receiver();
    if (mode == "raw" && argc >= 5) return raw(argv[2], std::stol(argv[3]), std::stoi(argv[4]));
    if (mode == "client" && argc >= 5) return client(argv[2], std::stol(argv[3]), std::stoi(argv[4]));
    if (mode == "sender" && argc >= 6) return sender(argv[2], std::stol(argv[3]), std::stoi(argv[4]), argv[5]);
  } catch (const std::exception& e) {
    std::cerr << "webhook_bench: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: webhook_bench receiver | raw URL N C | sender URL N C OUTBOX|memory\n";
  return 2;
}
