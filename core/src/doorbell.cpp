// The Doorbell (see patchbay/doorbell.hpp).
//
// A wait is one Asio operation: its initiation stores the coroutine's completion handler in a
// Waiter node linked into the doorbell, and connects the coroutine's cancellation slot. ring()
// unlinks every Waiter under the mutex and completes each by posting it to the handler's own
// executor (never inline). A cancellation (delivered on the waiter's executor, by whoever emits
// the signal) unlinks its Waiter the same way and completes it with operation_aborted; if a
// ring took it first, the cancellation finds nothing and the ring's completion stands. The
// slot is cleared in the posted completion, on the waiter's executor, before the handler runs.
#include <patchbay/doorbell.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>

#include <memory>
#include <utility>

namespace patchbay {

struct Doorbell::Waiter {
  virtual ~Waiter() = default;
  /// Posts the handler with `ec` to its executor; the Waiter deletes itself there.
  virtual void complete(boost::system::error_code ec) = 0;
  Waiter* next = nullptr;
};

namespace {

template <typename Handler>
struct WaiterFor final : Doorbell::Waiter {
  explicit WaiterFor(Handler&& h) : handler(std::move(h)) {}

  void complete(boost::system::error_code ec) override {
    auto ex = asio::get_associated_executor(handler);
    asio::post(ex, [self = std::unique_ptr<WaiterFor>(this), ec]() mutable {
      auto slot = asio::get_associated_cancellation_slot(self->handler);
      if (slot.is_connected()) slot.clear();
      auto h = std::move(self->handler);
      self.reset();
      std::move(h)(ec);
    });
  }

  Handler handler;
};

}  // namespace

// --- the service: every doorbell of one execution context ----------------------------------

struct Doorbell::Service final : asio::execution_context::service {
  using key_type = Service;
  static asio::execution_context::id id;

  explicit Service(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

  void enlist(Doorbell* d) {
    std::lock_guard lock(mu);
    d->next_ = head;
    if (head) head->prev_ = d;
    head = d;
  }
  void remove(Doorbell* d) {
    std::lock_guard lock(mu);
    if (d->prev_) d->prev_->next_ = d->next_;
    else if (head == d) head = d->next_;
    if (d->next_) d->next_->prev_ = d->prev_;
    d->prev_ = d->next_ = nullptr;
  }

  // The io_context is going away: pending waits are destroyed, never completed (as Asio does
  // with its own operations). Destroying a waiting coroutine may destroy doorbells, which
  // remove themselves from the list: so the waiters are collected first, then destroyed.
  void shutdown() override {
    Waiter* all = nullptr;
    {
      std::lock_guard lock(mu);
      for (auto* d = head; d; d = d->next_) {
        for (auto* w = d->take_all(); w;) {
          auto* next = w->next;
          w->next = all;
          all = w;
          w = next;
        }
      }
    }
    while (all) {
      auto* next = all->next;
      delete all;
      all = next;
    }
  }

  std::mutex mu;
  Doorbell* head = nullptr;
};

asio::execution_context::id Doorbell::Service::id;

// --- Doorbell ---------------------------------------------------------------------------------

Doorbell::Doorbell(executor ex) {
  auto& ctx = asio::query(ex, asio::execution::context);
  service_ = &asio::use_service<Service>(ctx);
  service_->enlist(this);
}

Doorbell::~Doorbell() {
  service_->remove(this);
  // A doorbell destroyed while waited on (its owner's contract says that cannot happen): the
  // waits are destroyed, not resumed.
  for (auto* w = take_all(); w;) {
    auto* next = w->next;
    delete w;
    w = next;
  }
}

Doorbell::Waiter* Doorbell::take_all() {
  std::lock_guard lock(mu_);
  return std::exchange(waiters_, nullptr);
}

void Doorbell::ring() {
  Waiter* woken = nullptr;
  {
    std::lock_guard lock(mu_);
    if (!waiters_) {
      rung_ = true;
      return;
    }
    woken = std::exchange(waiters_, nullptr);
  }
  while (woken) {
    auto* next = woken->next;
    woken->complete({});
    woken = next;
  }
}

bool Doorbell::pending() const {
  std::lock_guard lock(mu_);
  return rung_;
}

void Doorbell::cancel(Waiter* w) {
  {
    std::lock_guard lock(mu_);
    Waiter** p = &waiters_;
    while (*p && *p != w) p = &(*p)->next;
    if (!*p) return;  // a ring took it first: its completion is on its way
    *p = w->next;
  }
  w->complete(asio::error::operation_aborted);
}

awaitable<void> Doorbell::wait() {
  return asio::async_initiate<const asio::use_awaitable_t<executor>&, void(boost::system::error_code)>(
      [this](auto handler) {
        using Handler = decltype(handler);
        auto slot = asio::get_associated_cancellation_slot(handler);
        auto* w = new WaiterFor<Handler>(std::move(handler));
        {
          std::lock_guard lock(mu_);
          if (rung_) {
            rung_ = false;
          } else {
            if (slot.is_connected()) {
              slot.assign([this, w](asio::cancellation_type type) {
                if (type != asio::cancellation_type::none) cancel(w);
              });
            }
            w->next = waiters_;
            waiters_ = w;
            return;
          }
        }
        w->complete({});
      },
      asio::use_awaitable_t<executor>{});
}

}  // namespace patchbay
