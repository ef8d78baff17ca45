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

/// How to subscribe. Chain the setters: `SubscribeOptions().group("workers").max_in_flight(1)`.
///
/// This is a class with a constructor rather than an aggregate on purpose: GCC 12 miscompiles a
/// braced aggregate temporary inside a co_await expression (`co_await t.subscribe({.group = "g"})`
/// frees its strings twice). A type with a user-provided constructor is not affected.
class SubscribeOptions {
 public:
  SubscribeOptions() noexcept {}

  /// Consumer group. Empty (the default): this subscription receives every message (fan-out).
  SubscribeOptions& group(std::string name) {
    group_ = std::move(name);
    return *this;
  }
  const std::string& group() const noexcept { return group_; }

  /// Where to start; `Position::latest()` (the default) receives only what is published from now on.
  SubscribeOptions& from(Position position) {
    from_ = std::move(position);
    return *this;
  }
  const Position& from() const noexcept { return from_; }

  /// Deliveries handed out but not yet settled, at most; 0 (the default): the transport's
  /// default. With 1, the next message is not delivered before the previous one is settled.
  SubscribeOptions& max_in_flight(std::size_t n) noexcept {
    max_in_flight_ = n;
    return *this;
  }
  std::size_t max_in_flight() const noexcept { return max_in_flight_; }

 private:
  std::string group_;
  Position from_ = Position::latest();
  std::size_t max_in_flight_ = 0;
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

  // The public operations are plain functions that forward to the protected do_* coroutines,
  // which transports implement: the interface a caller sees stays fixed while implementations
  // are free to be coroutines.
  awaitable<void> start() { return do_start(); }
  awaitable<void> stop() { return do_stop(); }
  awaitable<void> publish(Message msg) { return do_publish(std::move(msg)); }
  awaitable<Stream<Delivery>> subscribe(std::string topic, SubscribeOptions options = {}) {
    return do_subscribe(std::move(topic), std::move(options));
  }
  awaitable<Message> request(std::string service, Message msg, deadline until) {
    return do_request(std::move(service), std::move(msg), until);
  }
  awaitable<void> serve(std::string service, ServiceHandler handler) {
    return do_serve(std::move(service), std::move(handler));
  }

 protected:
  virtual awaitable<void> do_start() { co_return; }
  virtual awaitable<void> do_stop() = 0;
  virtual awaitable<void> do_publish(Message msg) = 0;
  virtual awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) = 0;
  virtual awaitable<Message> do_request(std::string service, Message msg, deadline until) = 0;
  virtual awaitable<void> do_serve(std::string service, ServiceHandler handler) = 0;
};

}  // namespace patchbay
