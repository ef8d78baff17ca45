// patchbay/impl/stream.hpp — the bodies of Stream<T> and its operators (see stream.hpp).
//
// Every operator is a StreamSource that owns its upstream and forwards close() to it. The
// timed operators (timeout, batch) race upstream->next() against a timer and wait for both
// results (as a parallel_group would): an element that arrived while the timer fired is kept,
// never dropped. An element obtained after the caller's own cancellation was requested
// is kept in the source and handed out by the next call, so a cancelled next() consumes nothing.
#pragma once

#include <patchbay/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <utility>

namespace patchbay {
namespace detail {

/// True when the awaiting coroutine has been asked to stop. Read the state with
/// `co_await asio::this_coro::cancellation_state`, which never throws: co_await on another
/// awaitable throws once cancelled, and an element already taken would be lost.
inline bool is_cancelled(const asio::cancellation_state& state) {
  return state.cancelled() != asio::cancellation_type::none;
}

[[noreturn]] inline void throw_cancelled() {
  throw boost::system::system_error(asio::error::operation_aborted);
}

/// The outcome of waiting for an upstream element with a deadline.
template <typename T>
struct TimedNext {
  bool timed_out = false;
  std::optional<T> value;  ///< when !timed_out: the element, or std::nullopt at end of stream
};

/// Races upstream->next() against a timer, like a parallel_group with wait_for_one, but safe on
/// an io_context run by several threads even when the awaiting coroutine is not on a strand.
/// Asio 1.81's parallel_group can emit a cancellation into an operation that has already
/// finished, after the awaiting coroutine resumed and destroyed its frame-local timer (a
/// use-after-free seen in the stress tests), and cancellation signals must not be used from
/// several threads at once. So the timer lives in this shared state, and the spawned next(), both
/// completions and every cancellation run on a private strand.
template <typename T, typename Handler>
struct TimedRace : std::enable_shared_from_this<TimedRace<T, Handler>> {
  TimedRace(asio::strand<executor> s, deadline until, Handler h)
      : strand(std::move(s)), timer(strand, until), handler(std::move(h)) {}

  void start(std::shared_ptr<StreamSource<T>> upstream) {
    auto self = this->shared_from_this();
    asio::co_spawn(strand, upstream->next(),
                   asio::bind_cancellation_slot(stop_next.slot(), [self](std::exception_ptr e, std::optional<T> v) {
                     self->error = std::move(e);
                     self->value = std::move(v);
                     self->finished(false);
                   }));
    timer.async_wait(asio::bind_cancellation_slot(stop_timer.slot(), [self](boost::system::error_code ec) {
      self->timer_won = !self->decided && !ec;
      self->finished(true);
    }));
  }

  // On the strand. The first operation to finish cancels the other; the caller's handler runs
  // once both have finished, so that the result of each is known.
  void finished(bool is_timer) {
    if (!decided) {
      decided = true;
      (is_timer ? stop_next : stop_timer).emit(asio::cancellation_type::terminal);
    }
    if (--running > 0) return;
    auto ex = asio::get_associated_executor(handler, strand);
    asio::post(ex, [h = std::move(handler), e = std::move(error), v = std::move(value), won = timer_won]() mutable {
      std::move(h)(std::move(e), std::move(v), won);
    });
  }

  // On the strand: the caller was cancelled.
  void cancel(asio::cancellation_type_t type) {
    if (running == 0) return;
    decided = true;
    stop_next.emit(type);
    stop_timer.emit(type);
  }

  asio::strand<executor> strand;
  asio::steady_timer timer;
  asio::cancellation_signal stop_next, stop_timer;
  Handler handler;
  std::exception_ptr error;
  std::optional<T> value;
  bool timer_won = false;  // the timer fired before next() finished
  bool decided = false;
  int running = 2;
};

template <typename T, typename Handler>
struct TimedRaceCanceller {
  std::weak_ptr<TimedRace<T, Handler>> race;
  void operator()(asio::cancellation_type_t type) {
    if (auto r = race.lock()) asio::post(r->strand, [r, type] { r->cancel(type); });
  }
};

/// upstream->next(), bounded by `until`. Never loses an element: when the element and the
/// timer complete together, the element wins. Throws when upstream->next() fails for another
/// reason than the timer, or when the caller is cancelled before an element arrived.
template <typename T>
awaitable<TimedNext<T>> next_until(std::shared_ptr<StreamSource<T>> upstream, deadline until) {
  auto ex = co_await asio::this_coro::executor;
  auto [error, value, timer_won] =
      co_await asio::async_initiate<const asio::as_tuple_t<asio::use_awaitable_t<executor>>&,
                                    void(std::exception_ptr, std::optional<T>, bool)>(
          [&](auto handler) {
            using Race = TimedRace<T, decltype(handler)>;
            auto slot = asio::get_associated_cancellation_slot(handler);
            auto race = std::make_shared<Race>(asio::make_strand(ex), until, std::move(handler));
            if (slot.is_connected()) slot.template emplace<TimedRaceCanceller<T, decltype(handler)>>(race);
            asio::dispatch(race->strand, [race, upstream] { race->start(upstream); });
          },
          asio::as_tuple(asio::use_awaitable_t<executor>{}));
  if (!error) co_return TimedNext<T>{false, std::move(value)};
  const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  if (timer_won && !is_cancelled(state)) {
    // The timer cancelled next(); anything else next() threw is passed on.
    try {
      std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted && e.code() != asio::experimental::error::channel_cancelled)
        throw;
    }
    co_return TimedNext<T>{true, std::nullopt};
  }
  std::rethrow_exception(error);
}

template <typename T>
class ChannelSource final : public StreamSource<T> {
 public:
  explicit ChannelSource(std::shared_ptr<Channel<T>> channel) : channel_(std::move(channel)) {}
  awaitable<std::optional<T>> next() override { return channel_->receive(); }
  void close() noexcept override { channel_->close(); }

 private:
  std::shared_ptr<Channel<T>> channel_;
};

template <typename T, typename F>
class MapSource final : public StreamSource<std::invoke_result_t<F&, T&&>> {
 public:
  using result_type = std::invoke_result_t<F&, T&&>;
  MapSource(std::shared_ptr<StreamSource<T>> upstream, F f) : upstream_(std::move(upstream)), f_(std::move(f)) {}

  awaitable<std::optional<result_type>> next() override {
    auto v = co_await upstream_->next();
    if (!v) co_return std::nullopt;
    co_return std::optional<result_type>(std::invoke(f_, std::move(*v)));
  }
  void close() noexcept override { upstream_->close(); }

 private:
  std::shared_ptr<StreamSource<T>> upstream_;
  F f_;
};

template <typename T, typename P>
class FilterSource final : public StreamSource<T> {
 public:
  FilterSource(std::shared_ptr<StreamSource<T>> upstream, P p) : upstream_(std::move(upstream)), p_(std::move(p)) {}

  awaitable<std::optional<T>> next() override {
    for (;;) {
      auto v = co_await upstream_->next();
      if (!v || std::invoke(p_, std::as_const(*v))) co_return v;
    }
  }
  void close() noexcept override { upstream_->close(); }

 private:
  std::shared_ptr<StreamSource<T>> upstream_;
  P p_;
};

template <typename T>
class TakeSource final : public StreamSource<T> {
 public:
  TakeSource(std::shared_ptr<StreamSource<T>> upstream, std::size_t n) : upstream_(std::move(upstream)), left_(n) {}

  awaitable<std::optional<T>> next() override {
    if (left_ == 0) {
      upstream_->close();
      co_return std::nullopt;
    }
    auto v = co_await upstream_->next();
    if (!v) {
      left_ = 0;
      co_return std::nullopt;
    }
    // Close as soon as the last element is out, so that the upstream hands nothing more to us.
    if (--left_ == 0) upstream_->close();
    co_return v;
  }
  void close() noexcept override { upstream_->close(); }

 private:
  std::shared_ptr<StreamSource<T>> upstream_;
  std::size_t left_;
};

template <typename T>
class TimeoutSource final : public StreamSource<T> {
 public:
  TimeoutSource(std::shared_ptr<StreamSource<T>> upstream, duration d) : upstream_(std::move(upstream)), limit_(d) {}

  awaitable<std::optional<T>> next() override {
    if (kept_) co_return std::exchange(kept_, std::nullopt);
    auto r = co_await next_until(upstream_, clock::now() + limit_);
    if (r.timed_out) throw_error(errc::timed_out, "no stream element within the timeout");
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (r.value && is_cancelled(state)) {
      kept_ = std::move(r.value);
      throw_cancelled();
    }
    co_return std::move(r.value);
  }
  void close() noexcept override { upstream_->close(); }

 private:
  std::shared_ptr<StreamSource<T>> upstream_;
  duration limit_;
  std::optional<T> kept_;  // taken from upstream by a next() that was cancelled meanwhile
};

template <typename T>
class BatchSource final : public StreamSource<std::vector<T>> {
 public:
  BatchSource(std::shared_ptr<StreamSource<T>> upstream, std::size_t n, duration max_wait)
      : upstream_(std::move(upstream)), size_(n == 0 ? 1 : n), max_wait_(max_wait) {}

  awaitable<std::optional<std::vector<T>>> next() override {
    // pending_ lives in the source, not in this frame: a cancelled call leaves what it
    // collected for the next one.
    while (!ended_ && pending_.size() < size_) {
      if (pending_.empty()) {
        auto v = co_await upstream_->next();
        if (!v) {
          ended_ = true;
          break;
        }
        pending_.push_back(std::move(*v));
        first_at_ = clock::now();
      } else {
        if (clock::now() >= first_at_ + max_wait_) break;
        auto r = co_await next_until(upstream_, first_at_ + max_wait_);
        if (r.timed_out) break;
        if (!r.value) {
          ended_ = true;
          break;
        }
        pending_.push_back(std::move(*r.value));
      }
      const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
      if (is_cancelled(state)) throw_cancelled();
    }
    if (pending_.empty()) co_return std::nullopt;
    co_return std::exchange(pending_, {});
  }
  void close() noexcept override { upstream_->close(); }

 private:
  std::shared_ptr<StreamSource<T>> upstream_;
  std::size_t size_;
  duration max_wait_;
  std::vector<T> pending_;
  deadline first_at_{};
  bool ended_ = false;
};

template <typename T>
class ThrottleSource final : public StreamSource<T> {
 public:
  ThrottleSource(std::shared_ptr<StreamSource<T>> upstream, duration interval)
      : upstream_(std::move(upstream)), interval_(interval) {}

  awaitable<std::optional<T>> next() override {
    if (ended_) co_return std::nullopt;
    if (last_emit_ && !closed_.load(std::memory_order_acquire)) {
      // Wait before fetching, so that the element is not held while we pace.
      asio::steady_timer timer(co_await asio::this_coro::executor, *last_emit_ + interval_);
      co_await timer.async_wait(asio::use_awaitable_t<executor>{});
    }
    auto v = co_await upstream_->next();
    if (v)
      last_emit_ = clock::now();
    else
      ended_ = true;
    co_return v;
  }
  void close() noexcept override {
    closed_.store(true, std::memory_order_release);
    upstream_->close();
  }

 private:
  std::shared_ptr<StreamSource<T>> upstream_;
  duration interval_;
  std::optional<deadline> last_emit_;
  bool ended_ = false;
  std::atomic<bool> closed_{false};
};

template <typename T>
class MergeSource final : public StreamSource<T> {
 public:
  explicit MergeSource(std::vector<Stream<T>> inputs) : state_(std::make_shared<State>(std::move(inputs))) {}

  awaitable<std::optional<T>> next() override {
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<Channel<T>> channel;
    {
      std::lock_guard lock(state_->mutex);
      if (!state_->channel && !state_->closed) start(ex);
      channel = state_->channel;
    }
    if (!channel) co_return std::nullopt;  // closed before it started
    auto v = co_await channel->receive();
    if (!v) {
      std::lock_guard lock(state_->mutex);
      if (state_->failure) std::rethrow_exception(std::exchange(state_->failure, nullptr));
    }
    co_return v;
  }

  void close() noexcept override {
    std::shared_ptr<Channel<T>> channel;
    {
      std::lock_guard lock(state_->mutex);
      state_->closed = true;
      channel = state_->channel;
    }
    if (channel) channel->close();
    for (auto& input : state_->inputs) input.close();
  }

 private:
  // Shared with the pumps, which hold it until they finish.
  struct State {
    explicit State(std::vector<Stream<T>> in) : inputs(std::move(in)), running(inputs.size()) {}
    std::vector<Stream<T>> inputs;  // fixed after construction; input i is read by pump i only
    std::atomic<std::size_t> running;
    std::mutex mutex;
    std::shared_ptr<Channel<T>> channel;  // created by the first next(), on its executor
    std::exception_ptr failure;           // the first input failure, rethrown at the end
    bool closed = false;
  };

  // Called with state_->mutex held.
  void start(executor ex) {
    // Capacity 0: a pump's send completes only once a next() has taken the element, so when the
    // last pump ends and closes the channel, nothing is left in it to be dropped by close().
    state_->channel = std::make_shared<Channel<T>>(ex, 0);
    if (state_->inputs.empty()) state_->channel->close();
    for (std::size_t i = 0; i < state_->inputs.size(); ++i)
      asio::co_spawn(ex, pump(state_, i), asio::detached);
  }

  static awaitable<void> pump(std::shared_ptr<State> state, std::size_t i) {
    auto& channel = *state->channel;
    try {
      while (auto v = co_await state->inputs[i].next()) co_await channel.send(std::move(*v));
    } catch (const boost::system::system_error& e) {
      if (e.code() != make_error_code(errc::closed)) record_failure(*state, std::current_exception());
    } catch (...) {
      record_failure(*state, std::current_exception());
    }
    if (state->running.fetch_sub(1, std::memory_order_acq_rel) == 1) channel.close();
  }

  // An input failed: end the merged stream, which rethrows the failure once drained.
  static void record_failure(State& state, std::exception_ptr e) {
    {
      std::lock_guard lock(state.mutex);
      if (!state.failure) state.failure = std::move(e);
    }
    state.channel->close();
    for (auto& input : state.inputs) input.close();
  }

  std::shared_ptr<State> state_;
};

}  // namespace detail

template <typename T>
Stream<T> Stream<T>::from_channel(std::shared_ptr<Channel<T>> channel) {
  return Stream(std::make_shared<detail::ChannelSource<T>>(std::move(channel)));
}

template <typename T>
awaitable<std::optional<T>> Stream<T>::next() {
  // Hold the source for the whole wait, whatever happens to this handle meanwhile.
  auto source = source_;
  if (!source) co_return std::nullopt;
  co_return co_await source->next();
}

template <typename T>
template <typename F>
auto Stream<T>::map(F f) && -> Stream<std::invoke_result_t<F&, T&&>> {
  using U = std::invoke_result_t<F&, T&&>;
  if (!source_) return Stream<U>();
  return Stream<U>(std::make_shared<detail::MapSource<T, F>>(std::move(source_), std::move(f)));
}

template <typename T>
template <typename P>
Stream<T> Stream<T>::filter(P predicate) && {
  if (!source_) return Stream();
  return Stream(std::make_shared<detail::FilterSource<T, P>>(std::move(source_), std::move(predicate)));
}

template <typename T>
Stream<T> Stream<T>::take(std::size_t n) && {
  if (!source_) return Stream();
  return Stream(std::make_shared<detail::TakeSource<T>>(std::move(source_), n));
}

template <typename T>
Stream<std::vector<T>> Stream<T>::batch(std::size_t n, duration max_wait) && {
  if (!source_) return Stream<std::vector<T>>();
  return Stream<std::vector<T>>(std::make_shared<detail::BatchSource<T>>(std::move(source_), n, max_wait));
}

template <typename T>
Stream<T> Stream<T>::timeout(duration d) && {
  if (!source_) return Stream();
  return Stream(std::make_shared<detail::TimeoutSource<T>>(std::move(source_), d));
}

template <typename T>
Stream<T> Stream<T>::throttle(duration interval) && {
  if (!source_) return Stream();
  return Stream(std::make_shared<detail::ThrottleSource<T>>(std::move(source_), interval));
}

template <typename T>
Stream<T> merge(std::vector<Stream<T>> streams) {
  return Stream<T>(std::make_shared<detail::MergeSource<T>>(std::move(streams)));
}

}  // namespace patchbay
