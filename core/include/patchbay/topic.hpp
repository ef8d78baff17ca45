// patchbay/topic.hpp — the publish/subscribe handle.
//
//     auto ticks = runtime.topic("ticks");
//     co_await ticks.publish(Message("42"));
//     auto sub = co_await ticks.subscribe(SubscribeOptions().group("workers"));
//     while (auto d = co_await sub.next()) { ...; d->ack(); }
//
// A Topic is a cheap, copyable handle bound by name to a transport through the config. The
// guarantees (ordering, at-least-once, replay, groups) are those of the transport: see
// features() and docs/patterns.md.
// Thread safety: a Topic may be copied and used from any thread.
#pragma once

#include <patchbay/transport.hpp>

#include <memory>
#include <string>

namespace patchbay {

class Topic {
 public:
  Topic(std::shared_ptr<Transport> transport, std::string wire_name, std::string binding)
      : transport_(std::move(transport)), name_(std::move(wire_name)), binding_(std::move(binding)) {}

  /// The wire topic name.
  const std::string& name() const noexcept { return name_; }
  /// The binding name the application asked for.
  const std::string& binding() const noexcept { return binding_; }
  Features features() const { return transport_->features(); }
  const std::shared_ptr<Transport>& transport() const noexcept { return transport_; }

  /// Publishes `msg` on this topic (its `topic` is overwritten; `id` and `time` are filled
  /// when empty). Completes when the transport accepted it (see Transport::publish).
  awaitable<void> publish(Message msg) {
    msg.topic = name_;
    msg.stamp();
    return transport_->publish(std::move(msg));
  }
  awaitable<void> publish(std::string_view payload) { return publish(Message(payload)); }

  /// Subscribes; completes once the subscription is established.
  awaitable<Stream<Delivery>> subscribe(SubscribeOptions options = {}) {
    return transport_->subscribe(name_, std::move(options));
  }

 private:
  std::shared_ptr<Transport> transport_;
  std::string name_;
  std::string binding_;
};

}  // namespace patchbay
