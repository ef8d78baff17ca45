// AsyncSocket: see async_socket.hpp for the rules this follows.
#include "async_socket.hpp"

#include <patchbay/error.hpp>

#include <boost/asio/post.hpp>

#include <poll.h>

#include <utility>

namespace patchbay::zeromq {

AsyncSocket::AsyncSocket(executor ex, zmq::context_t& context, zmq::socket_type type)
    : socket_(context, type), descriptor_(ex), ex_(ex) {
  fd_ = socket_.get(zmq::sockopt::fd);
  // The descriptor belongs to zmq: released (never closed by Asio) in close().
  descriptor_.assign(fd_);
}

AsyncSocket::~AsyncSocket() { close(); }

void AsyncSocket::check_open_locked() const {
  if (closed_) throw_error(errc::stopped, "zmq socket closed");
}

bool AsyncSocket::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

bool AsyncSocket::descriptor_readable() const noexcept {
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0;
}

awaitable<void> AsyncSocket::wait(int want, const std::shared_ptr<Doorbell>& bell) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) co_return;
    waiters_.push_back(Waiter{want, bell});
    if (want == want_any) ++any_waiters_;
    // Rule 1: arm first, then look.
    arm_locked();
    recheck_locked(want == want_any && descriptor_readable());
  }
  // Woken by a ring, a timer or a cancellation: either way this wait is over.
  struct Forget {
    AsyncSocket* self;
    const std::shared_ptr<Doorbell>& bell;
    ~Forget() { self->forget(bell); }
  } forget{this, bell};
  co_await bell->wait();
}

awaitable<bool> AsyncSocket::attempt_or_wait(const std::shared_ptr<Doorbell>& bell,
                                             const std::function<bool(zmq::socket_t&)>& attempt) {
  {
    std::lock_guard lock(mutex_);
    check_open_locked();
    waiters_.push_back(Waiter{want_any, bell});
    ++any_waiters_;
    arm_locked();
    bool done = false;
    try {
      done = attempt(socket_);
    } catch (...) {
      std::erase_if(waiters_, [&](const Waiter& w) { return w.bell == bell; });
      --any_waiters_;
      throw;
    }
    if (done) {
      std::erase_if(waiters_, [&](const Waiter& w) { return w.bell == bell; });
      --any_waiters_;
      if (!waiters_.empty()) schedule_recheck_locked();  // rule 2, for the others
      co_return true;
    }
    if (!waiters_.empty()) schedule_recheck_locked();
  }
  struct Forget {
    AsyncSocket* self;
    const std::shared_ptr<Doorbell>& bell;
    ~Forget() { self->forget(bell); }
  } forget{this, bell};
  co_await bell->wait();
  co_return false;
}

void AsyncSocket::forget(const std::shared_ptr<Doorbell>& bell) noexcept {
  std::lock_guard lock(mutex_);
  std::erase_if(waiters_, [&](const Waiter& w) {
    if (w.bell != bell) return false;
    if (w.want == want_any) --any_waiters_;
    return true;
  });
}

void AsyncSocket::arm_locked() {
  if (armed_ || closed_) return;
  armed_ = true;
  descriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                         [self = shared_from_this()](const boost::system::error_code& ec) { self->on_descriptor(ec); });
}

void AsyncSocket::recheck_locked(bool ring_any) {
  int events = 0;
  bool need_events = false;
  for (const auto& w : waiters_) need_events |= w.want != want_any;
  if (need_events) {
    try {
      events = socket_.get(zmq::sockopt::events);
    } catch (const zmq::error_t&) {
      events = ZMQ_POLLIN | ZMQ_POLLOUT;  // let the waiters find out from their own I/O
    }
  }
  std::erase_if(waiters_, [&](const Waiter& w) {
    const bool ready = w.want == want_any ? ring_any : (events & w.want) != 0;
    if (ready) {
      w.bell->ring();
      if (w.want == want_any) --any_waiters_;
    }
    return ready;
  });
}

void AsyncSocket::schedule_recheck_locked() {
  if (recheck_scheduled_) return;
  recheck_scheduled_ = true;
  asio::post(ex_, [self = shared_from_this()] {
    std::lock_guard lock(self->mutex_);
    self->recheck_scheduled_ = false;
    if (self->closed_ || self->waiters_.empty()) return;
    const bool ring_any = std::exchange(self->any_pending_, false);
    self->recheck_locked(ring_any);
  });
}

void AsyncSocket::on_descriptor(const boost::system::error_code& ec) {
  std::lock_guard lock(mutex_);
  armed_ = false;
  if (closed_) return;
  if (ec && ec != asio::error::operation_aborted) {
    // Should not happen for an eventfd; wake everyone so that nobody hangs.
    for (auto& w : waiters_) w.bell->ring();
    waiters_.clear();
    any_waiters_ = 0;
    return;
  }
  if (waiters_.empty()) return;
  // An edge: mailbox activity. Re-arm before looking (rule 1), then wake whoever is ready.
  arm_locked();
  recheck_locked(true);
}

void AsyncSocket::close() noexcept {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  descriptor_.cancel(ignored);
  descriptor_.release();
  socket_.close();
  for (auto& w : waiters_) w.bell->ring();
  waiters_.clear();
  any_waiters_ = 0;
}

}  // namespace patchbay::zeromq
