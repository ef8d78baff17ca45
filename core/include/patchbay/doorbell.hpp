// patchbay/doorbell.hpp — wakes a waiting coroutine from any thread.
//
// A Doorbell is the building block for "something changed, look again": a transport's
// consumer checks its state under its own lock, and if there is nothing to do it waits on its
// doorbell; whoever changes the state rings. A ring while nobody waits is kept (once) for the
// next wait, so a ring between the check and the wait is never lost; spurious wake-ups are
// possible and harmless. ring() never blocks and never runs the waiter inline: the waiter
// resumes on its own executor. This is how threads owned by client libraries (nats.c,
// rabbitmq-c) hand work to the io_context.
//
// Cancellation: wait() honours the awaiting coroutine's cancellation slot (it then throws
// operation_aborted and keeps any later ring for the next wait).
// Waiters: meant for one at a time; if several wait, a ring wakes them all (each looks again).
// Thread safety: ring() from any thread; wait() from any coroutine.
//
// Cost: this is on the path of every idle connection a hub holds, so it is small — a mutex, a
// flag and a list of waiting handlers — rather than a channel (Boost 1.81's concurrent_channel
// brings a std::deque, 576 bytes even when empty, and two coroutine frames per wait). wait()
// is one Asio operation with no coroutine frame of its own. Waiters still pending when their
// io_context shuts down are destroyed then (a service per execution context keeps the list),
// as Asio does for its own operations, so a coroutine waiting for ever is not leaked.
#pragma once

#include <patchbay/asio.hpp>

#include <mutex>

namespace patchbay {

class Doorbell {
 public:
  explicit Doorbell(executor ex);
  ~Doorbell();
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;

  /// Wakes the waiter, or lets the next wait() return at once. A ring while one is already
  /// pending is absorbed by it.
  void ring();

  /// Returns after the next ring (at once if one came since the last wait). Throws
  /// system_error(operation_aborted) when cancelled.
  awaitable<void> wait();

  /// Whether a ring is pending (for tests).
  bool pending() const;

  struct Waiter;   ///< one suspended wait (doorbell.cpp)
  struct Service;  ///< per execution context: destroys pending waiters at shutdown

 private:
  friend struct Service;
  void add(Waiter* w);
  void cancel(Waiter* w);
  Waiter* take_all();

  mutable std::mutex mu_;
  bool rung_ = false;
  Waiter* waiters_ = nullptr;  // singly linked, newest first
  Service* service_ = nullptr;
  Doorbell* prev_ = nullptr;   // the service's list of doorbells (guarded by its mutex)
  Doorbell* next_ = nullptr;
};

}  // namespace patchbay
