// Faults as the `websocket` transport sees them, against a hub run by the test (Hub + Server on
// their own io_context) and the transport loaded as a module through config `plugins:`:
//   * the hub drops every connection again and again while messages are published: each
//     subscription reconnects and resumes after its last position — every message exactly
//     once, in order (the hub's history holds them all);
//   * the hub restarts on the same port (a new epoch, an empty history): the subscription
//     reconnects, reports a gap ("epoch changed") and receives what is published afterwards;
//   * close codes: a publish above the hub's max_message fails naming 1009 (and the next
//     publish works on a new connection); a publish while the hub stops fails;
//   * a subscription to an unknown topic fails at once with the hub's 404.
#include <patchbay/conformance/test_support.hpp>
#include <patchbay/error.hpp>
#include <patchbay/http/hub.hpp>
#include <patchbay/http/server.hpp>
#include <patchbay/runtime.hpp>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace patchbay {
namespace {

using namespace std::chrono_literals;
using conformance::eventually;
using conformance::msg;
using conformance::next_within;

/// A hub on a server, on its own io_context; restartable on the same port.
class TestHub {
 public:
  explicit TestHub(http::HubOptions options) : options_(std::move(options)) {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    start(0);
  }
  ~TestHub() {
    stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  void start(std::uint16_t port) {
    http::ServerOptions so;
    so.port = port;
    auto s = http::Server::create(io_.get_executor(), so);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *s;
    hub_ = http::Hub::create(io_.get_executor(), options_);
    hub_->mount(*server_);
    server_->start();
    port_ = server_->port();
  }
  void stop() {
    if (!server_) return;
    hub_->stop();
    std::promise<void> done;
    asio::co_spawn(io_, server_->stop(), [&](std::exception_ptr) { done.set_value(); });
    done.get_future().wait();
    server_.reset();
  }
  void restart() {
    stop();
    start(port_);
  }

  http::Hub& hub() { return *hub_; }
  std::uint16_t port() const { return port_; }

 private:
  http::HubOptions options_;
  asio::io_context io_{2};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  std::shared_ptr<http::Server> server_;
  std::shared_ptr<http::Hub> hub_;
  std::uint16_t port_ = 0;
};

http::HubOptions hub_options() {
  http::HubOptions o;
  o.topics = {"t"};
  o.history = 100'000;
  o.websocket.max_message = 64 * 1024;
  return o;
}

conformance::Instance client(std::uint16_t port) {
  auto inst = conformance::from_config(std::string("plugins: [") + PATCHBAY_WEBSOCKET_MODULE + "]\n" + R"(
default_transport: ws
transports:
  ws:
    type: websocket
    url: ws://127.0.0.1:)" + std::to_string(port) + R"(
    reconnect_delay: 20ms
    max_backoff: 200ms
)");
  EXPECT_TRUE(inst.ok()) << inst.status();
  return *std::move(inst);
}

TEST(WebSocketFault, DroppedConnectionsResumeWithoutLossOrDuplicates) {
  TestHub hub(hub_options());
  auto inst = client(hub.port());
  conformance::run(inst, [&]() -> awaitable<void> {
    auto sub = co_await inst.transport->subscribe("t", SubscribeOptions());
    const int n = 3000;
    std::thread publisher([&] {
      for (int i = 0; i < n; ++i) {
        hub.hub().publish("t", Message("m" + std::to_string(i)));
        if (i % 300 == 150) hub.hub().drop_connections();
      }
    });
    int expected = 0;
    std::string last;
    while (expected < n) {
      auto d = co_await next_within(sub, 60s);
      if (!d) break;
      EXPECT_FALSE(d->is_gap()) << "no gap within the history";
      if (d->is_gap()) continue;
      EXPECT_EQ(d->message().payload.str(), "m" + std::to_string(expected));
      if (d->message().payload.str() != "m" + std::to_string(expected)) break;
      ++expected;
    }
    publisher.join();
    EXPECT_EQ(expected, n);
    // Nothing more (no duplicate after the last).
    auto extra = co_await conformance::next_for(sub, 300ms);
    EXPECT_NE(extra.what, conformance::Next::kind::item);
  });
}

TEST(WebSocketFault, AHubRestartIsAGapThenNewMessagesFlow) {
  TestHub hub(hub_options());
  auto inst = client(hub.port());
  conformance::run(inst, [&]() -> awaitable<void> {
    auto sub = co_await inst.transport->subscribe("t", SubscribeOptions());
    hub.hub().publish("t", Message("before"));
    auto first = co_await next_within(sub);
    EXPECT_TRUE(first && !first->is_gap() && first->message().payload.str() == "before");
    hub.restart();
    // Publish until the resubscribed connection sees it (it reconnects on its own schedule).
    std::optional<Delivery> gap;
    bool got_after = false;
    for (int i = 0; i < 200 && !got_after; ++i) {
      hub.hub().publish("t", Message("after"));
      auto n = co_await conformance::next_for(sub, 100ms);
      while (n.what == conformance::Next::kind::item) {
        if (n.delivery->is_gap()) {
          gap = std::move(n.delivery);
        } else if (n.delivery->message().payload.str() == "after") {
          got_after = true;
        }
        n = co_await conformance::next_for(sub, 10ms);
      }
    }
    EXPECT_TRUE(got_after);
    EXPECT_TRUE(gap.has_value()) << "the restart is reported as a gap";
    if (gap) {
      EXPECT_EQ(gap->gap().reason, "epoch changed");
    }
  });
}

TEST(WebSocketFault, PublishFailuresNameTheCloseCode) {
  TestHub hub(hub_options());
  auto inst = client(hub.port());
  conformance::run(inst, [&]() -> awaitable<void> {
    co_await inst.transport->publish(msg("t", "small"));
    std::string error;
    try {
      co_await inst.transport->publish(msg("t", std::string(100 * 1024, 'x')));
    } catch (const std::exception& e) {
      error = e.what();
    }
    EXPECT_NE(error.find("1009"), std::string::npos) << "error: " << error;
    // A later publish uses a new connection.
    co_await inst.transport->publish(msg("t", "again"));

    // An unknown topic: the hub's 404 (topics are not open).
    std::string sub_error;
    try {
      auto s = co_await inst.transport->subscribe("nope", SubscribeOptions());
    } catch (const std::exception& e) {
      sub_error = e.what();
    }
    EXPECT_NE(sub_error.find("404"), std::string::npos) << sub_error;

    hub.stop();
    std::string stopped;
    try {
      co_await inst.transport->publish(msg("t", "late"));
    } catch (const std::exception& e) {
      stopped = e.what();
    }
    EXPECT_FALSE(stopped.empty()) << "a publish to a stopped hub fails";
  });
}

// Bad config: each url is refused at start-up with file:line and the reason.
TEST(WebSocketFault, BadUrlsAreStartUpErrors) {
  const std::pair<const char*, const char*> cases[] = {
      {"not a url", "not an absolute URL"},
      {"wss://127.0.0.1:1", "wss:// and https:// are not supported yet"},
      {"ftp://127.0.0.1:1", "must start with ws://"},
      {"ws://user:pw@127.0.0.1:1", "no user info"},
      {"ws://127.0.0.1:1/?x=1", "no user info, query or fragment"},
      {"ws://[::1", "not an absolute URL"},
  };
  for (const auto& [url, reason] : cases) {
    RuntimeOptions options;
    options.handle_signals = false;
    options.config_text = std::string("plugins: [") + PATCHBAY_WEBSOCKET_MODULE + "]\n" +
                          "default_transport: ws\ntransports:\n  ws:\n    type: websocket\n    url: \"" + url + "\"\n";
    auto rt = Runtime::create(std::move(options));
    ASSERT_FALSE(rt.ok()) << url;
    EXPECT_NE(rt.status().message().find("<string>:6:"), std::string_view::npos) << url << ": " << rt.status();
    EXPECT_NE(rt.status().message().find(reason), std::string_view::npos) << url << ": " << rt.status();
  }
  // A bracketed IPv6 host, a path prefix and the default port are accepted.
  RuntimeOptions options;
  options.handle_signals = false;
  options.config_text = std::string("plugins: [") + PATCHBAY_WEBSOCKET_MODULE + "]\n" +
                        "default_transport: ws\ntransports:\n  ws:\n    type: websocket\n    url: \"ws://[::1]/prefix/\"\n";
  auto rt = Runtime::create(std::move(options));
  EXPECT_TRUE(rt.ok()) << rt.status();
}

}  // namespace
}  // namespace patchbay
