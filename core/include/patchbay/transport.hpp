// patchbay/transport.hpp — the plugin interface every transport implements.
//
// Application code never calls a Transport directly: it uses Topic and Service handles from
// the Runtime. The interface is deliberately narrow and virtual so that transports compile
// separately and load from shared libraries; every operation is an awaitable, so application
// code keeps `co_await`.
//
// Contract (the conformance suite in tests/conformance checks it):
//   - publish(msg): completes once the transport has accepted the message — for durable
//     transports, once the broker confirmed it. After that the message is delivered to every
//     matching subscription that existed when publish completed (at least once where
//     `at_least_once`, at most once otherwise). `msg.topic` is the wire topic; `msg.id` is set.
//   - subscribe(topic, options): completes once the subscription is established: a message
//     published after it completes is delivered to it. Members of one `group` share the
//     messages (each delivered to one member); subscriptions without a group each receive all.
//   - request(service, msg, deadline): one reply or an error: errc::timed_out at the deadline,
//     errc::no_responders where the transport knows nobody serves, errc::remote_error when the
//     handler failed.
//   - serve(service, handler): serves until the awaiting coroutine is cancelled or the
//     transport stops; the handler may run concurrently for concurrent requests.
//   - start(): connects / listens. stop(): idempotent; refuses new work with errc::stopped,
//     drains in-flight work (bounded by the transport's drain timeout), ends subscription
//     streams, and loses no message whose publish completed on a durable transport.
// Thread safety: every member may be called concurrently from any thread of the runtime.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/delivery.hpp>
#include <patchbay/features.hpp>
#include <patchbay/message.hpp>
#include <patchbay/position.hpp>
#include <patchbay/stream.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace patchbay {

struct SubscribeOptions {
  /// Consumer group. Empty: this subscription receives every message (fan-out).
  std::string group;
  /// Where to start; `Position::latest()` receives only what is published from now on.
  Position from = Position::latest();
  /// Deliveries handed out but not yet settled, at most. 0: the transport's default.
  /// With 1, the next message is not delivered before the previous one is settled.
  std::size_t max_in_flight = 0;
};

/// Handles one request; its return value is the reply. Throwing fails the request with
/// errc::remote_error and the exception's text.
using ServiceHandler = std::function<awaitable<Message>(Message request)>;

class Transport : public std::enable_shared_from_this<Transport> {
 public:
  virtual ~Transport() = default;

  /// The type name it was registered under ("inproc", "rabbitmq", ...).
  virtual std::string_view type() const noexcept = 0;

  virtual Features features() const = 0;

  virtual awaitable<void> start() { co_return; }
  virtual awaitable<void> stop() = 0;

  virtual awaitable<void> publish(Message msg) = 0;
  virtual awaitable<Stream<Delivery>> subscribe(std::string topic, SubscribeOptions options) = 0;
  virtual awaitable<Message> request(std::string service, Message msg, deadline until) = 0;
  virtual awaitable<void> serve(std::string service, ServiceHandler handler) = 0;
};

}  // namespace patchbay
