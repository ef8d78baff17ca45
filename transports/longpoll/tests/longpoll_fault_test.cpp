// The longpoll transport's fault tests: backoff while the hub is down and recovery when it is
// back (a new epoch: a gap, then the new hub's messages), and 10,000 held long polls answered
// when the hub stops, none left hanging (the hub in a child process: 10,000 sockets on each
// side stay under the 20,000 open files per process).
#include <patchbay/transports/longpoll/longpoll.hpp>

#include "poll_test_rig.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>

namespace patchbay {
namespace {

using namespace std::chrono_literals;
using poll_test::Rig;
namespace bhttp = boost::beast::http;
namespace lp = longpoll_transport;

std::unique_ptr<Rig> make_rig(http::HubOptions options) {
  auto rig = std::make_unique<Rig>(lp::register_transport, "longpoll");
  rig->start_hub(std::move(options));
  return rig;
}

http::HubOptions topics(std::vector<std::string> names, std::size_t history = 1024) {
  http::HubOptions o;
  o.topics = std::move(names);
  o.history = history;
  return o;
}

TEST(LongPollFault, BacksOffWhileTheHubIsDownAndRecoversWhenItIsBack) {
  auto rig = make_rig(topics({"t"}));
  const auto port = rig->port();
  auto feed = rig->transport("wait: 10s\nretry_delay: 10ms\nmax_backoff: 200ms\nclient: { connect_timeout: 1s }");
  rig->run([&]() -> awaitable<void> {
    auto sub = co_await feed->subscribe("t");
    rig->hub().publish("t", Message("before"));
    auto got = co_await poll_test::receive(sub, 1);
    EXPECT_EQ(got.payloads, std::vector<std::string>{"before"});

    // Down: the held poll is cut, and every new attempt is refused.
    const auto errors_before = lp::stats(*feed)->errors;
    rig->stop_hub();
    // Keep reading while the hub is down (the stream is what drives the polls).
    auto quiet = co_await conformance::next_for(sub, 1500ms);
    EXPECT_EQ(quiet.what, conformance::Next::kind::timed_out);
    const auto errors_down = lp::stats(*feed)->errors - errors_before;
    EXPECT_GE(errors_down, 2u) << "it keeps trying (requests " << lp::stats(*feed)->requests << ")";
    // 10 ms doubling to 200 ms: about 10 attempts in 1.5 s; without backoff, 150.
    EXPECT_LE(errors_down, 40u) << "it backs off";

    // Back (a new hub: a new epoch on the same port): a gap says the history changed, then the
    // new hub's messages arrive.
    rig->start_hub(topics({"t"}), port);
    rig->hub().publish("t", Message("after"));
    auto back = co_await poll_test::receive(sub, 1);
    EXPECT_EQ(back.payloads, std::vector<std::string>{"after"});
    CO_ASSERT_TRUE(back.gaps.size() == 1u);
    EXPECT_EQ(back.gaps[0].reason, "epoch changed");
  });
}

// --- 10,000 held polls answered on hub shutdown -------------------------------------------

/// The hub's side, in a child process: serves until told to stop the hub ('s'), reports when
/// `n` polls are held ('H') and when stopped, then exits on 'q'.
[[noreturn]] void hub_child(int to_child, int to_parent, std::size_t n) {
  asio::io_context io(1);
  http::ServerOptions so;
  so.limits.max_connections = 2 * n;
  auto server = *http::Server::create(io.get_executor(), so);
  http::HubOptions ho;
  ho.topics = {"t"};
  ho.heartbeat = duration::zero();
  auto hub = http::Hub::create(io.get_executor(), ho);
  hub->mount(*server);
  server->start();
  const std::uint16_t port = server->port();
  if (::write(to_parent, &port, sizeof port) != sizeof port) std::_Exit(3);
  std::thread control([&] {
    // Held count: reported once reached.
    for (int i = 0; i < 240'000 && hub->held_polls() < n; ++i) std::this_thread::sleep_for(1ms);
    char h = hub->held_polls() >= n ? 'H' : 'h';
    if (::write(to_parent, &h, 1) != 1) std::_Exit(3);
    char c = 0;
    while (::read(to_child, &c, 1) == 1) {
      if (c == 's') {
        hub->stop();
      } else if (c == 'q') {
        break;
      }
    }
    asio::co_spawn(io, server->stop(), [&](std::exception_ptr) { io.stop(); });
  });
  io.run();
  control.join();
  std::_Exit(0);
}

TEST(LongPollFault, TenThousandHeldPollsAreAnsweredWhenTheHubStops) {
  constexpr std::size_t n = 10'000;
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max < n + 200) GTEST_SKIP() << "needs " << n + 200 << " open files, the hard limit is " << rl.rlim_max;
  rl.rlim_cur = rl.rlim_max;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);

  int down[2], up[2];
  ASSERT_EQ(::pipe(down), 0);
  ASSERT_EQ(::pipe(up), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(down[1]);
    ::close(up[0]);
    hub_child(down[0], up[1], n);
  }
  ::close(down[0]);
  ::close(up[1]);
  auto tell = [&](char c) { return ::write(down[1], &c, 1) == 1; };
  std::uint16_t port = 0;
  ASSERT_EQ(::read(up[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));

  asio::io_context io(1);
  using tcp = asio::ip::tcp;
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  std::atomic<std::size_t> connected{0}, answered{0}, empty_ok{0}, failed{0};
  // One coroutine connects the sockets one after another (no listen-backlog overflow); each
  // socket then waits for its answer in its own coroutine.
  auto read_answer = [&](std::shared_ptr<tcp::socket> s) -> awaitable<void> {
    boost::beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> res;
    auto [ec, bytes] = co_await bhttp::async_read(*s, buffer, res, asio::as_tuple(asio::use_awaitable_t<executor>{}));
    if (ec) {
      ++failed;
      co_return;
    }
    ++answered;
    if (res.result_int() == 200 && res.body().find("\"messages\":[]") != std::string::npos) ++empty_ok;
  };
  auto connect_all = [&]() -> awaitable<void> {
    static const std::string req = "GET /topics/t/poll?wait=600 HTTP/1.1\r\nHost: x\r\n\r\n";
    for (std::size_t i = 0; i < n; ++i) {
      auto s = std::make_shared<tcp::socket>(co_await asio::this_coro::executor);
      auto [ec] = co_await s->async_connect(ep, asio::as_tuple(asio::use_awaitable_t<executor>{}));
      if (!ec) {
        auto [wec, w] = co_await asio::async_write(*s, asio::buffer(req), asio::as_tuple(asio::use_awaitable_t<executor>{}));
        ec = wec;
      }
      if (ec) {
        ++failed;
        continue;
      }
      ++connected;
      asio::co_spawn(io, read_answer(std::move(s)), asio::detached);
    }
  };
  asio::co_spawn(io, connect_all(), asio::detached);
  std::thread runner([&] { io.run(); });

  char held = 0;
  const bool reported = ::read(up[0], &held, 1) == 1;
  EXPECT_TRUE(reported && held == 'H') << "the hub did not hold " << n << " polls (connected " << connected.load()
                                       << ", failed " << failed.load() << ")";
  EXPECT_EQ(answered.load(), 0u) << "held polls were answered before the hub stopped";
  EXPECT_TRUE(tell('s'));
  for (int i = 0; i < 120'000 && answered.load() + failed.load() < n; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(answered.load(), n) << "left hanging: " << n - answered.load() - failed.load() << ", failed " << failed.load();
  EXPECT_EQ(empty_ok.load(), n);
  EXPECT_EQ(failed.load(), 0u);

  EXPECT_TRUE(tell('q'));
  io.stop();  // drops the sockets still open, if any (a failure above)
  runner.join();
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "hub process status " << status;
  ::close(down[1]);
  ::close(up[0]);
}

}  // namespace
}  // namespace patchbay
