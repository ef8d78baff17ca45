// fake_transport.hpp — a scripted inner transport for middleware tests: each publish or
// request fails with the next error of a script (then succeeds), or hangs until cancelled;
// it counts the attempts it saw. Plus a helper that builds one middleware over it from YAML.
#pragma once

#include <patchbay/config.hpp>
#include <patchbay/error.hpp>
#include <patchbay/registry.hpp>
#include <patchbay/transport.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <deque>
#include <mutex>

namespace patchbay::plugins::testing {

class FakeTransport final : public Transport {
 public:
  std::string_view type() const noexcept override { return "fake"; }
  Features features() const override {
    Features f;
    f.publish_subscribe = f.request_reply = f.headers = true;
    return f;
  }

  /// The next calls fail with these errors, in order (errc::ok: succeed once).
  void script(std::initializer_list<errc> errors) {
    std::lock_guard lock(mutex_);
    script_.insert(script_.end(), errors);
  }
  /// Every call fails with `e` (errc::ok: every call succeeds) once the script is used up.
  void otherwise(errc e) { otherwise_ = e; }
  /// Calls hang until cancelled.
  void hang(bool on) { hang_ = on; }

  std::atomic<int> attempts{0};

 protected:
  awaitable<void> do_stop() override { co_return; }
  awaitable<void> do_publish(Message) override { co_await step(); }
  awaitable<Message> do_request(std::string, Message msg, deadline) override {
    co_await step();
    co_return Message("reply to " + msg.payload.str());
  }
  awaitable<Stream<Delivery>> do_subscribe(std::string, SubscribeOptions) override {
    throw_error(errc::not_supported, "fake: subscribe");
  }
  awaitable<void> do_serve(std::string, ServiceHandler) override { throw_error(errc::not_supported, "fake: serve"); }

 private:
  awaitable<void> step() {
    ++attempts;
    if (hang_) {
      asio::steady_timer forever(co_await asio::this_coro::executor, std::chrono::hours(1));
      co_await forever.async_wait(asio::use_awaitable_t<executor>{});
    }
    errc e = otherwise_;
    {
      std::lock_guard lock(mutex_);
      if (!script_.empty()) {
        e = script_.front();
        script_.pop_front();
      }
    }
    if (e != errc::ok) throw_error(e, "fake: scripted failure");
  }

  std::mutex mutex_;
  std::deque<errc> script_;
  std::atomic<errc> otherwise_{errc::ok};
  std::atomic<bool> hang_{false};
};

/// The middleware of `type` with YAML `settings` (a flow mapping) around `inner`.
inline absl::StatusOr<std::shared_ptr<Transport>> make_middleware(Registry& registry, const std::string& type,
                                                                    const std::string& settings, executor ex,
                                                                    std::shared_ptr<Transport> inner,
                                                                    const std::string& binding = "b") {
  config::Node node(YAML::Load(settings), "<test>", "middleware '" + type + "' of binding '" + binding + "'");
  MiddlewareContext ctx{binding, std::move(ex), node, std::move(inner)};
  auto made = registry.make_middleware(type, ctx);
  if (made.ok()) {
    if (auto unknown = node.check_unknown_keys(); !unknown.ok()) return unknown;
  }
  return made;
}

}  // namespace patchbay::plugins::testing
