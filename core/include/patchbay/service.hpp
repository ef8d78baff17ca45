// patchbay/service.hpp — the request/response handle.
//
//     auto echo = runtime.service("echo");
//     co_spawn(ex, echo.serve([](Message m) -> awaitable<Message> { co_return m; }), detached);
//     Message reply = co_await echo.request(Message("hi"), std::chrono::seconds(2));
//
// request() always ends: with a reply, errc::timed_out at the deadline, errc::no_responders
// where the transport can tell that nobody serves, or errc::remote_error when the handler
// failed (the reply's `patchbay-error` header holds the handler's message).
// Thread safety: a Service may be copied and used from any thread.
#pragma once

#include <patchbay/transport.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace patchbay {

class Service {
 public:
  Service(std::shared_ptr<Transport> transport, std::string wire_name, std::string binding)
      : transport_(std::move(transport)), name_(std::move(wire_name)), binding_(std::move(binding)) {}

  const std::string& name() const noexcept { return name_; }
  const std::string& binding() const noexcept { return binding_; }
  Features features() const { return transport_->features(); }

  awaitable<Message> request(Message msg, deadline until) {
    msg.topic = name_;
    msg.stamp();
    return transport_->request(name_, std::move(msg), until);
  }
  awaitable<Message> request(Message msg, duration timeout = std::chrono::seconds(30)) {
    return request(std::move(msg), clock::now() + timeout);
  }

  /// Serves requests until the awaiting coroutine is cancelled or the transport stops.
  awaitable<void> serve(ServiceHandler handler) { return transport_->serve(name_, std::move(handler)); }

 private:
  std::shared_ptr<Transport> transport_;
  std::string name_;
  std::string binding_;
};

}  // namespace patchbay
