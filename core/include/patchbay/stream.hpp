// patchbay/stream.hpp — an async sequence with composable operators.
//
//     while (auto d = co_await stream.next()) { ... }
//
// A Stream<T> is a move-only handle to a StreamSource<T>. `next()` yields the next element,
// or std::nullopt once the stream has ended (closed, or its source is exhausted). Operators
// consume the stream and return a new one; they run on the awaiting coroutine's executor and
// start no threads:
//   map(f)               f(T) -> U, applied to each element
//   filter(p)            keeps elements for which p(const T&) is true
//   take(n)              ends after n elements (and closes the upstream)
//   merge(a, b, ...)     interleaves several streams; ends when all have ended
//   batch(n, max_wait)   vectors of up to n elements; a batch is emitted when full or when
//                        max_wait has passed since its first element
//   timeout(d)           next() throws system_error(errc::timed_out) when no element arrives
//                        within d; the stream stays usable
//   throttle(interval)   at most one element per interval; it paces, never drops (elements
//                        often carry an ack duty)
//
// Cancellation: next() honours the awaiting coroutine's cancellation slot (`||`, deadlines).
// Every source is cancellation-safe: a cancelled next() consumes no element, so timeouts never
// lose a Delivery. close() ends the stream: a waiting next() yields std::nullopt (after at most
// one throttle interval where throttle is used) and later calls do too.
//
// Thread safety: one consumer awaits next() at a time; close() may be called from any thread.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/channel.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

namespace patchbay {

/// What a Stream reads from. Transports implement this for subscriptions.
template <typename T>
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  /// The next element, or std::nullopt when the stream has ended. Must be cancellation-safe:
  /// when cancelled, throw and consume nothing.
  virtual awaitable<std::optional<T>> next() = 0;
  /// Ends the stream; wakes a waiting next(). Idempotent, thread-safe.
  virtual void close() noexcept = 0;
};

template <typename T>
class Stream {
 public:
  using value_type = T;

  Stream() = default;
  explicit Stream(std::shared_ptr<StreamSource<T>> source) : source_(std::move(source)) {}

  /// A stream that reads a channel until it is closed. close() closes the channel.
  static Stream from_channel(std::shared_ptr<Channel<T>> channel);

  Stream(Stream&&) noexcept = default;
  Stream& operator=(Stream&&) noexcept = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { close(); }

  /// The next element; std::nullopt when the stream has ended (or is empty-handed).
  awaitable<std::optional<T>> next();

  void close() noexcept {
    if (source_) source_->close();
  }

  explicit operator bool() const noexcept { return source_ != nullptr; }
  const std::shared_ptr<StreamSource<T>>& source() const noexcept { return source_; }

  template <typename F>
  auto map(F f) && -> Stream<std::invoke_result_t<F&, T&&>>;

  template <typename P>
  Stream filter(P predicate) &&;

  Stream take(std::size_t n) &&;

  Stream<std::vector<T>> batch(std::size_t n, duration max_wait) &&;

  Stream timeout(duration d) &&;

  Stream throttle(duration interval) &&;

 private:
  std::shared_ptr<StreamSource<T>> source_;
};

/// Interleaves the given streams in arrival order; ends when every one of them has ended.
template <typename T>
Stream<T> merge(std::vector<Stream<T>> streams);

template <typename T, typename... More>
Stream<T> merge(Stream<T> first, Stream<T> second, More... more) {
  std::vector<Stream<T>> all;
  all.push_back(std::move(first));
  all.push_back(std::move(second));
  (all.push_back(std::move(more)), ...);
  return merge(std::move(all));
}

}  // namespace patchbay

#include <patchbay/impl/stream.hpp>
