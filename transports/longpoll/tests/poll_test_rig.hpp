// A hub on a server in this process and polling transports (built from the static libraries
// through a Registry, so tests can read their Stats) — shared by the longpoll and shortpoll
// transports' own tests.
#pragma once

#include <patchbay/config.hpp>
#include <patchbay/conformance/suite.hpp>
#include <patchbay/conformance/test_support.hpp>
#include <patchbay/http/hub.hpp>
#include <patchbay/http/server.hpp>
#include <patchbay/registry.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include <deque>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// ASSERT_* returns from the enclosing function, which a coroutine cannot do.
#ifndef CO_ASSERT_TRUE
#define CO_ASSERT_TRUE(cond)                        \
  do {                                              \
    if (!(cond)) {                                  \
      ADD_FAILURE() << "assertion failed: " #cond; \
      co_return;                                    \
    }                                               \
  } while (0)
#endif

namespace patchbay::poll_test {

using namespace std::chrono_literals;

class Rig {
 public:
  explicit Rig(std::function<absl::Status(Registry&)> register_transport, std::string type)
      : type_(std::move(type)) {
    EXPECT_TRUE(register_transport(registry_).ok());
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~Rig() {
    for (auto& t : transports_) stop(t);
    transports_.clear();
    stop_hub();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  /// Starts a hub with `options` on `port` (0: any; the last port when restarting).
  void start_hub(http::HubOptions options, std::uint16_t port = 0) {
    http::ServerOptions so;
    so.port = port;
    auto s = http::Server::create(io_.get_executor(), so);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *s;
    options.heartbeat = duration::zero();
    hub_ = http::Hub::create(io_.get_executor(), std::move(options));
    hub_->mount(*server_);
    server_->start();
    port_ = server_->port();
  }

  void stop_hub() {
    if (!server_) return;
    hub_->stop();
    auto done = asio::co_spawn(io_.get_executor(), server_->stop(), asio::use_future);
    done.wait();
    server_.reset();
    hub_.reset();
  }

  /// A started transport of our type on the hub; `settings` adds YAML lines (2-space keys).
  std::shared_ptr<Transport> transport(const std::string& settings = "") {
    std::string yaml = "transports:\n  feed:\n    type: " + type_ + "\n    url: http://127.0.0.1:" + std::to_string(port_) + "\n";
    std::size_t start = 0;
    while (start < settings.size()) {
      auto end = settings.find('\n', start);
      if (end == std::string::npos) end = settings.size();
      yaml += "    " + settings.substr(start, end - start) + "\n";
      start = end + 1;
    }
    auto cfg = config::Config::parse(yaml);
    EXPECT_TRUE(cfg.ok()) << cfg.status();
    if (!cfg.ok()) return nullptr;
    configs_.push_back(std::make_unique<config::Config>(*std::move(cfg)));
    TransportContext ctx{"feed", io_.get_executor(), configs_.back()->transports.at(0).settings, {}};
    auto t = registry_.make_transport(type_, ctx);
    EXPECT_TRUE(t.ok()) << t.status();
    if (!t.ok()) return nullptr;
    auto started = asio::co_spawn(strand(), (*t)->start(), asio::use_future);
    started.get();
    transports_.push_back(*t);
    return *t;
  }

  void stop(const std::shared_ptr<Transport>& t) {
    auto done = asio::co_spawn(strand(), t->stop(), asio::use_future);
    done.get();
  }

  executor strand() { return asio::make_strand(io_); }

  /// Runs `body()` on a strand and waits for it at most `limit`; rethrows its failure.
  template <typename F>
  void run(F body, duration limit = std::chrono::seconds(280)) {
    auto done = asio::co_spawn(strand(), body(), asio::use_future);
    ASSERT_EQ(done.wait_for(limit), std::future_status::ready) << "test coroutine did not finish";
    done.get();
  }

  http::Hub& hub() { return *hub_; }
  std::uint16_t port() const { return port_; }

 private:
  std::string type_;
  Registry registry_;
  asio::io_context io_{2};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{io_.get_executor()};
  std::vector<std::thread> threads_;
  std::shared_ptr<http::Server> server_;
  std::shared_ptr<http::Hub> hub_;
  std::uint16_t port_ = 0;
  std::vector<std::unique_ptr<config::Config>> configs_;
  std::vector<std::shared_ptr<Transport>> transports_;
};

/// Reads deliveries until `n` messages arrived (gaps are collected apart); fails the test on a
/// stall of 60 s.
struct Received {
  std::vector<std::string> payloads;
  std::vector<Gap> gaps;
  std::string last_position;
};

inline awaitable<Received> receive(Stream<Delivery>& s, std::size_t n) {
  Received out;
  while (out.payloads.size() < n) {
    auto d = co_await conformance::next_within(s, std::chrono::seconds(60));
    if (!d) {
      ADD_FAILURE() << "stalled after " << out.payloads.size() << " of " << n << " messages";
      co_return out;
    }
    if (d->is_gap()) {
      out.gaps.push_back(d->gap());
      continue;
    }
    out.payloads.push_back(d->message().payload.str());
    out.last_position = d->position().token();
  }
  co_return out;
}

}  // namespace patchbay::poll_test
