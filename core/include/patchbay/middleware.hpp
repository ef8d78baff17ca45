// patchbay/middleware.hpp — decorators around a Transport.
//
// A middleware wraps the transport of one binding: logging, metrics, auth, retry, rate
// limits, trace propagation. It is itself a Transport, so middlewares stack in the order the
// binding lists them (the first listed is outermost). Derive from Middleware and override
// only what you change; publish, subscribe, request and serve forward to the inner transport.
#pragma once

#include <patchbay/transport.hpp>

#include <memory>
#include <string>

namespace patchbay {

class Middleware : public Transport {
 public:
  explicit Middleware(std::shared_ptr<Transport> inner) : inner_(std::move(inner)) {}

  std::string_view type() const noexcept override { return inner_->type(); }
  Features features() const override { return inner_->features(); }

  const std::shared_ptr<Transport>& inner() const noexcept { return inner_; }

 protected:
  /// The runtime starts and stops the wrapped transport itself (it may serve several
  /// bindings); a middleware's start/stop concern only its own resources.
  awaitable<void> do_start() override { co_return; }
  awaitable<void> do_stop() override { co_return; }
  awaitable<void> do_publish(Message msg) override { return inner_->publish(std::move(msg)); }
  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    return inner_->subscribe(std::move(topic), std::move(options));
  }
  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    return inner_->request(std::move(service), std::move(msg), until);
  }
  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    return inner_->serve(std::move(service), std::move(handler));
  }

 private:
  std::shared_ptr<Transport> inner_;
};

}  // namespace patchbay
