// A ZeroMQ socket driven from coroutines on an Asio io_context, through ZMQ_FD.
//
// ZMQ_FD is not a data descriptor: it signals (becomes readable) when commands reach the
// socket's mailbox, and it is *edge-triggered* in effect — any zmq call on the socket
// (send, recv, getsockopt(ZMQ_EVENTS)) may process those commands and clear the signal while
// messages are still waiting. Waiting on the descriptor alone therefore loses wake-ups. The
// rules this class follows (libzmq's zmq_getsockopt(3), ZMQ_FD section):
//
//   1. Never wait on the descriptor without looking at ZMQ_EVENTS first. A waiter first *arms*
//      an async_wait on the descriptor and only then checks ZMQ_EVENTS: a signal that arrives
//      after the arming completes the wait; one that came before it is seen by the check
//      (zmq processes pending commands inside getsockopt). No window is left in between.
//   2. After every send and receive, while anybody waits, re-check ZMQ_EVENTS and wake the
//      waiters whose condition now holds: the send or receive may have processed the commands
//      — and drained the descriptor — that they were waiting for, and epoll does not report an
//      edge whose descriptor is no longer readable when it is collected. The re-check runs as
//      one task posted after the I/O, shared by every I/O until it runs: a publisher sending
//      while a reader loop waits on the same socket pays for one ZMQ_EVENTS per batch of
//      sends, not per message.
//   3. Readers drain until EAGAIN before they wait (Subscription::next and the reader loops
//      read one message per call and only wait after a receive returned EAGAIN).
//
// A third kind of waiter waits for *any* mailbox activity (`want_any`): an XPUB with
// ZMQ_XPUB_NODROP reports ZMQ_POLLOUT even when a subscriber's pipe is full, so a publisher
// that got EAGAIN waits for the next command (a subscriber reading, which sends the XPUB an
// activate_write) and retries. Such waiters are woken by a descriptor edge, or by the re-check
// after another caller's I/O when the descriptor was readable (commands pending) before that
// I/O. A command that arrives *during* another caller's I/O and is processed by it leaves no
// trace at all; callers that wait for want_any therefore also retry on a short timer (see
// ZmqTransport::send).
//
// Thread safety: every member may be called from any thread; a mutex serializes all access
// to the zmq socket (zmq allows a socket to move between threads across a full memory
// barrier, which the mutex provides). Waiters sleep on their own Doorbell; the mutex is
// never held across a suspension point.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/doorbell.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <zmq.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace patchbay::zeromq {

class AsyncSocket : public std::enable_shared_from_this<AsyncSocket> {
 public:
  static constexpr int want_in = ZMQ_POLLIN;
  static constexpr int want_out = ZMQ_POLLOUT;
  static constexpr int want_any = 0;

  AsyncSocket(executor ex, zmq::context_t& context, zmq::socket_type type);
  ~AsyncSocket();
  AsyncSocket(const AsyncSocket&) = delete;
  AsyncSocket& operator=(const AsyncSocket&) = delete;

  /// Runs `f(zmq::socket_t&)` under the socket's lock; while anybody waits, a re-check of
  /// ZMQ_EVENTS follows (rule 2). Returns what `f` returns. Throws system_error(errc::stopped)
  /// when the socket is closed.
  template <typename F>
  auto io(F&& f) {
    std::unique_lock lock(mutex_);
    check_open_locked();
    // Commands pending before this I/O may be processed by it: a want_any waiter must hear of it.
    if (any_waiters_ > 0 && descriptor_readable()) any_pending_ = true;
    struct Recheck {
      AsyncSocket* self;
      ~Recheck() {
        if (!self->waiters_.empty() && !self->closed_) self->schedule_recheck_locked();
      }
    } recheck{this};
    return f(socket_);
  }

  /// Suspends until the socket may have what `want` asks for (ZMQ_POLLIN, ZMQ_POLLOUT, or
  /// want_any: any mailbox activity), or until `bell` rings for another reason (a timer, a
  /// close). Spurious returns are possible: callers retry their I/O and wait again.
  /// Cancellation: honours the awaiting coroutine's cancellation slot (throws).
  awaitable<void> wait(int want, const std::shared_ptr<Doorbell>& bell);

  /// For want_any, where no readiness flag tells whether retrying helps: registers `bell` as a
  /// want_any waiter, arms the descriptor, and only then calls `attempt(socket)` once more under
  /// the lock (what other callers' I/O changed before the registration is seen by the attempt;
  /// what changes after it rings the bell). Returns true when the attempt succeeded; otherwise
  /// waits like wait() and returns false.
  awaitable<bool> attempt_or_wait(const std::shared_ptr<Doorbell>& bell,
                                  const std::function<bool(zmq::socket_t&)>& attempt);

  /// Closes the zmq socket (its linger applies) and wakes every waiter. Idempotent.
  void close() noexcept;
  bool closed() const;

 private:
  struct Waiter {
    int want;
    std::shared_ptr<Doorbell> bell;
  };

  void check_open_locked() const;
  bool descriptor_readable() const noexcept;
  void arm_locked();
  void recheck_locked(bool ring_any);
  void schedule_recheck_locked();
  void forget(const std::shared_ptr<Doorbell>& bell) noexcept;
  void on_descriptor(const boost::system::error_code& ec);

  mutable std::mutex mutex_;
  zmq::socket_t socket_;
  asio::posix::stream_descriptor descriptor_;
  int fd_ = -1;
  std::vector<Waiter> waiters_;
  executor ex_;
  bool armed_ = false;
  bool recheck_scheduled_ = false;
  std::size_t any_waiters_ = 0;  // how many of waiters_ are want_any
  bool any_pending_ = false;     // an I/O may have processed commands since the last re-check
  bool closed_ = false;
};

}  // namespace patchbay::zeromq
