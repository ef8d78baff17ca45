// patchbay/doorbell.hpp — wakes one waiting coroutine from any thread.
//
// A Doorbell is the building block for "something changed, look again": a transport's
// consumer checks its state under its own lock, and if there is nothing to do it waits on its
// doorbell; whoever changes the state rings. A ring while nobody waits is kept (once) for the
// next wait, so a ring between the check and the wait is never lost; spurious wake-ups are
// possible and harmless. ring() never blocks and never runs the waiter inline: the waiter
// resumes on its own executor. This is how threads owned by client libraries (nats.c,
// rabbitmq-c) hand work to the io_context.
//
// It is a Channel of capacity 1 holding at most one ring: Channel<T> carries the workarounds
// for Boost 1.81's concurrent_channel (a cancelled wait must not make later rings fail).
//
// Cancellation: wait() honours the awaiting coroutine's cancellation slot (it then throws and
// keeps any ring for the next wait). One coroutine waits at a time.
// Thread safety: ring() from any thread; wait() from one coroutine at a time.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/channel.hpp>

namespace patchbay {

class Doorbell {
 public:
  explicit Doorbell(executor ex) : bell_(std::move(ex), 1) {}

  /// Wakes the waiter, or lets the next wait() return at once. A ring while one is already
  /// pending is absorbed by it.
  void ring() {
    bool ding = true;
    bell_.try_send(ding);
  }

  /// Returns after the next ring (at once if one came since the last wait).
  awaitable<void> wait() { co_await bell_.receive(); }

 private:
  Channel<bool> bell_;
};

}  // namespace patchbay
