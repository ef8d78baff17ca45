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
// Thread safety: every member may be called concurrently from any thread.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/channel_error.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include <cstddef>
#include <optional>

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
    auto [ec] = co_await channel_.async_send(boost::system::error_code{}, std::move(value),
                                             asio::as_tuple(asio::use_awaitable_t<executor>{}));
    if (ec) {
      if (ec == asio::experimental::error::channel_closed) throw_error(errc::closed, "channel closed");
      throw boost::system::system_error(ec);
    }
  }

  /// Sends without suspending. Returns false, leaving `value` untouched, when the channel is
  /// full or closed; `value` is moved from only on success.
  bool try_send(T& value) { return channel_.try_send(boost::system::error_code{}, std::move(value)); }

  /// Suspends while empty; std::nullopt once the channel is closed.
  awaitable<std::optional<T>> receive() {
    auto [ec, value] =
        co_await channel_.async_receive(asio::as_tuple(asio::use_awaitable_t<executor>{}));
    if (!ec) co_return std::optional<T>(std::move(value));
    if (ec == asio::experimental::error::channel_closed) co_return std::nullopt;
    throw boost::system::system_error(ec);
  }

  /// Receives without suspending; std::nullopt when empty or closed.
  std::optional<T> try_receive() {
    std::optional<T> out;
    channel_.try_receive([&](boost::system::error_code ec, T v) {
      if (!ec) out.emplace(std::move(v));
    });
    return out;
  }

  void close() { channel_.close(); }
  bool is_open() const { return channel_.is_open(); }
  bool ready() const { return channel_.ready(); }

  executor get_executor() { return channel_.get_executor(); }
  native_type& native() noexcept { return channel_; }

 private:
  native_type channel_;
};

}  // namespace patchbay
