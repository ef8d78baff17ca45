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
// Why not a concurrent_channel of capacity 1: in Boost 1.81 cancelling the only waiting
// receive of a buffered channel leaves the channel refusing try_send although its buffer is
// empty, so a cancelled wait would make every later ring fail silently.
//
// Cancellation: wait() honours the awaiting coroutine's cancellation slot (it then throws
// operation_aborted and keeps any ring for the next wait). One coroutine waits at a time.
// Thread safety: ring() from any thread; wait() from one coroutine at a time, running on the
// executor the Doorbell was made with.
#pragma once

#include <patchbay/asio.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <memory>
#include <mutex>
#include <optional>

namespace patchbay {

class Doorbell {
 public:
  explicit Doorbell(executor ex) : state_(std::make_shared<State>(std::move(ex))) {}

  /// Wakes the waiter, or lets the next wait() return at once.
  void ring() {
    std::optional<Handler> h;
    {
      std::lock_guard lock(state_->mutex);
      if (!state_->waiter) {
        state_->rung = true;
        return;
      }
      h = state_->take_waiter();
    }
    state_->complete(std::move(*h), {});
  }

  /// Returns after the next ring (at once if one came since the last wait).
  awaitable<void> wait() {
    return asio::async_initiate<const asio::use_awaitable_t<executor>&, void(boost::system::error_code)>(
        [state = state_](auto handler) {
          std::unique_lock lock(state->mutex);
          if (state->rung) {
            state->rung = false;
            lock.unlock();
            state->complete(Handler(std::move(handler)), {});
            return;
          }
          state->waiter.emplace(std::move(handler));
          // The type-erased handler interposes its own cancellation state between the caller's
          // slot and ours, so listen on the slot it exposes.
          auto slot = state->waiter->get_cancellation_slot();
          if (slot.is_connected()) {
            slot.assign([weak = std::weak_ptr<State>(state)](asio::cancellation_type) {
              auto s = weak.lock();
              if (!s) return;
              std::optional<Handler> h;
              {
                std::lock_guard l(s->mutex);
                if (s->waiter) h = s->take_waiter();
              }
              if (h) s->complete(std::move(*h), asio::error::operation_aborted);
            });
          }
        },
        asio::use_awaitable_t<executor>{});
  }

 private:
  using Handler = asio::any_completion_handler<void(boost::system::error_code)>;

  struct State {
    explicit State(executor e) : ex(std::move(e)) {}
    std::mutex mutex;
    bool rung = false;
    // std::optional because Boost 1.81's any_completion_handler move-assignment wraps the
    // handler in another one instead of moving it: only construct and reset, never assign.
    std::optional<Handler> waiter;
    executor ex;  // the waiter's executor: the doorbell is made on it

    std::optional<Handler> take_waiter() {
      std::optional<Handler> out;
      out.emplace(std::move(*waiter));
      waiter.reset();
      return out;
    }

    void complete(Handler h, boost::system::error_code ec) {
      // The waiter resumes on its executor, never inside ring()'s caller. The cancellation slot
      // is left alone: it may be emitted on another thread right now, and its handler only holds
      // a weak reference and finds no waiter once this one is gone.
      asio::post(ex, [h = std::move(h), ec]() mutable { std::move(h)(ec); });
    }
  };

  std::shared_ptr<State> state_;
};

}  // namespace patchbay
