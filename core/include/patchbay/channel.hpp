// patchbay/channel.hpp — a bounded, thread-safe async queue between coroutines.
//
// Channel<T> is a thin layer over Asio's experimental concurrent_channel: `co_await send(v)`
// suspends while the channel is full (backpressure), `co_await receive()` suspends while it
// is empty and yields std::nullopt once the channel is closed. A capacity of 0 makes every
// send a rendezvous with a receive.
//
// Semantics:
//   - order: values are received in the order their sends completed;
//   - close(): every waiting and later send fails with errc::closed, every waiting and later
//     receive yields std::nullopt; values still buffered are destroyed (for Deliveries that
//     means they are nacked and redelivered, never lost);
//   - cancellation: send and receive honour the cancellation slot of the awaiting coroutine
//     (e.g. from `||` or a parallel_group); a cancelled receive consumes nothing and a
//     cancelled send enqueues nothing; both then throw boost::system::system_error.
// Thread safety: every member may be called concurrently from any thread. As with every Asio
// object, the channel must outlive the start of each operation on it: on an io_context run by
// several threads, a coroutine resumed by a completion may run before the thread that started
// the operation has left the channel, so run coroutines on strands there (a coroutine that
// destroys its channel right after receiving from it would race otherwise).
//
// Implementation notes (Boost 1.81's concurrent_channel):
//   - its close() wakes only waiting receives; a send waiting on a full channel would stay
//     suspended for ever, and cancelling it afterwards reads the send as a receive. So close()
//     first cancels every waiter while the channel is still open, then closes it; sends start
//     under `mutex_` so none can slip in between. Waiters woken that way see channel_cancelled
//     and report closed (send) or std::nullopt (receive);
//   - cancelling the last waiting receive of a buffered channel leaves it refusing sends although
//     its buffer is empty (send state "block" instead of "buffer"); a send would then wait, and
//     try_send fail, on an empty channel. Sends detect that state (empty, open, yet refusing)
//     and reset() the channel, which is harmless then: nothing is buffered and nobody waits.
//     reset() is not atomic (it cancels waiters, then rewrites the state), so every send and
//     receive starts under `mutex_`, as the repair does; a receive that a reset() cancels anyway
//     (it was not cancelled itself) simply waits again.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/experimental/channel_error.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <vector>

namespace patchbay {

template <typename T>
class Channel {
 public:
  using native_type = asio::experimental::concurrent_channel<executor, void(boost::system::error_code, T)>;

  Channel(executor ex, std::size_t capacity) : channel_(std::move(ex), capacity) {}

  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  /// Suspends while full. Throws system_error(errc::closed) when the channel is closed.
  awaitable<void> send(T value) {
    auto [ec] = co_await asio::async_initiate<const asio::as_tuple_t<asio::use_awaitable_t<executor>>&,
                                              void(boost::system::error_code)>(
        [this, &value](auto handler) {
          // Under mutex_ so that close() never runs between the start of this send and the
          // channel noticing it (see the notes at the top of this file).
          std::lock_guard lock(mutex_);
          if (try_send_locked(value)) {
            auto ex = asio::get_associated_executor(handler, channel_.get_executor());
            asio::post(ex, [h = std::move(handler)]() mutable { std::move(h)(boost::system::error_code{}); });
            return;
          }
          channel_.async_send(boost::system::error_code{}, std::move(value), std::move(handler));
        },
        asio::as_tuple(asio::use_awaitable_t<executor>{}));
    if (ec) {
      if (ec == asio::experimental::error::channel_closed || closed_.load(std::memory_order_acquire))
        throw_error(errc::closed, "channel closed");
      if (ec == asio::experimental::error::channel_cancelled)
        throw boost::system::system_error(asio::error::operation_aborted);
      throw boost::system::system_error(ec);
    }
  }

  /// Sends without suspending. Returns false, leaving `value` untouched, when the channel is
  /// full or closed; `value` is moved from only on success.
  bool try_send(T& value) {
    std::lock_guard lock(mutex_);
    return try_send_locked(value);
  }

  /// Suspends while empty; std::nullopt once the channel is closed.
  awaitable<std::optional<T>> receive() {
    // Fast path: a value is ready, nothing to wait for.
    if (auto ready_value = try_receive()) co_return ready_value;
    for (;;) {
      auto [ec, value] = co_await asio::async_initiate<const asio::as_tuple_t<asio::use_awaitable_t<executor>>&,
                                                       void(boost::system::error_code, T)>(
          [this](auto handler) {
            // Under mutex_, like every start of a send, so that the repair in try_send_locked()
            // never runs while a receive is being queued (see the notes at the top).
            std::lock_guard lock(mutex_);
            channel_.async_receive(std::move(handler));
          },
          asio::as_tuple(asio::use_awaitable_t<executor>{}));
      if (!ec) co_return std::optional<T>(std::move(value));
      if (ec == asio::experimental::error::channel_closed || closed_.load(std::memory_order_acquire))
        co_return std::nullopt;
      // A receive that nobody cancelled was woken by a send's reset() (see the notes at the
      // top): it consumed nothing, so it simply waits again.
      if (ec == asio::experimental::error::channel_cancelled) {
        auto state = co_await asio::this_coro::cancellation_state;
        if (state.cancelled() == asio::cancellation_type::none) continue;
        // Cancelled by the caller: report it as every other Asio operation does.
        throw boost::system::system_error(asio::error::operation_aborted);
      }
      throw boost::system::system_error(ec);
    }
  }

  /// Receives without suspending; std::nullopt when empty or closed.
  std::optional<T> try_receive() {
    std::optional<T> out;
    channel_.try_receive([&](boost::system::error_code ec, T v) {
      if (!ec) out.emplace(std::move(v));
    });
    return out;
  }

  /// Idempotent. Buffered values are destroyed here, outside the lock.
  void close() {
    std::vector<T> dropped;
    {
      std::lock_guard lock(mutex_);
      if (closed_.exchange(true, std::memory_order_acq_rel)) return;
      channel_.cancel();  // wakes waiting sends and receives while the channel is still open
      while (channel_.try_receive([&](boost::system::error_code ec, T v) {
        if (!ec) dropped.push_back(std::move(v));
      })) {
      }
      channel_.close();
    }
  }
  bool is_open() const { return channel_.is_open(); }
  bool ready() const { return channel_.ready(); }

  executor get_executor() { return channel_.get_executor(); }
  native_type& native() noexcept { return channel_; }

 private:
  bool try_send_locked(T& value) {
    if (channel_.try_send(boost::system::error_code{}, std::move(value))) return true;
    if (closed_.load(std::memory_order_relaxed) || channel_.capacity() == 0 || channel_.ready()) return false;
    // Not ready means: nothing buffered and no send waiting. A buffered, open channel in that
    // state must accept a value; when it does not, it is the state a cancelled receive leaves
    // behind (see the notes at the top). Nobody waits, nothing is buffered: reset() is safe.
    channel_.reset();
    return channel_.try_send(boost::system::error_code{}, std::move(value));
  }

  native_type channel_;
  std::mutex mutex_;  // serialises starting a send or receive with close() and the repair
  std::atomic<bool> closed_{false};
};

}  // namespace patchbay
