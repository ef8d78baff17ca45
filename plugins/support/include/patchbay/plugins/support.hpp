// patchbay/plugins/support.hpp — pieces the middleware plugins share (header-only, internal).
//
// A middleware sees outgoing calls directly (do_publish, do_request), but incoming traffic
// arrives later: deliveries through the Stream a subscribe() returned, served calls through the
// ServiceHandler given to serve(). These helpers wrap both:
//
//   - `wrap_deliveries(stream, fn)`: a Stream whose next() passes each delivery through `fn`,
//     which returns it (possibly changed) or std::nullopt to swallow it (after settling it);
//   - `observe_settlement(delivery, fn)`: the same delivery, whose ack()/nack() call `fn` first
//     (the application's decision still reaches the transport unchanged);
//   - `describe(std::exception_ptr)`: a short code ("timed_out", "remote_error", ...) and text.
//
// Every module compiles its own copy (there is no shared plugin library to load).
// Thread safety: as for Stream and Delivery (one consumer at a time; settle from any thread).
#pragma once

#include <patchbay/delivery.hpp>
#include <patchbay/error.hpp>
#include <patchbay/stream.hpp>

#include <boost/system/system_error.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace patchbay::plugins::support {

/// How a delivery was settled.
enum class Settlement { ack, nack_requeue, nack_drop };

inline const char* settlement_name(Settlement s) noexcept {
  switch (s) {
    case Settlement::ack: return "ack";
    case Settlement::nack_requeue: return "nack";
    case Settlement::nack_drop: return "nack_drop";
  }
  return "?";
}

namespace detail {

/// Holds the transport's own Delivery and settles it when the application settles the copy.
class ObservingAcknowledger final : public Acknowledger {
 public:
  ObservingAcknowledger(Delivery original, std::function<void(Settlement)> observe)
      : original_(std::move(original)), observe_(std::move(observe)) {}

  void ack(std::uint64_t) noexcept override {
    notify(Settlement::ack);
    original_.ack();
  }
  void nack(std::uint64_t, bool requeue) noexcept override {
    notify(requeue ? Settlement::nack_requeue : Settlement::nack_drop);
    original_.nack(requeue);
  }

 private:
  void notify(Settlement s) noexcept {
    try {
      if (observe_) observe_(s);
    } catch (...) {  // an observer never stops the decision from reaching the transport
    }
  }
  Delivery original_;
  std::function<void(Settlement)> observe_;
};

template <typename F>
class WrappedDeliveries final : public StreamSource<Delivery> {
 public:
  WrappedDeliveries(Stream<Delivery> inner, F fn) : inner_(std::move(inner)), fn_(std::move(fn)) {}

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      std::optional<Delivery> d = co_await inner_.next();
      if (!d) co_return std::nullopt;
      std::optional<Delivery> out = fn_(std::move(*d));
      if (out) co_return out;
    }
  }
  void close() noexcept override { inner_.close(); }

 private:
  Stream<Delivery> inner_;
  F fn_;
};

}  // namespace detail

/// The same delivery (message, position, redelivered flag) whose settlement first calls
/// `observe`. Gap deliveries and deliveries with nothing to settle are returned unchanged.
inline Delivery observe_settlement(Delivery d, std::function<void(Settlement)> observe) {
  if (d.is_gap() || d.settled()) return d;
  Message msg = d.message();  // shares the payload
  Position pos = d.position();
  const bool redelivered = d.redelivered();
  auto acker = std::make_shared<detail::ObservingAcknowledger>(std::move(d), std::move(observe));
  return Delivery(std::move(msg), std::move(pos), redelivered, std::move(acker), 0);
}

/// A stream that hands each delivery of `inner` to `fn(Delivery) -> std::optional<Delivery>`:
/// what it returns is yielded, std::nullopt skips to the next one (`fn` settles what it
/// swallows). Cancellation-safe as `inner` is: a cancelled next() consumes nothing.
template <typename F>
Stream<Delivery> wrap_deliveries(Stream<Delivery> inner, F fn) {
  return Stream<Delivery>(std::make_shared<detail::WrappedDeliveries<F>>(std::move(inner), std::move(fn)));
}

/// What went wrong, for logs and metrics: `code` is the patchbay error name for patchbay
/// errors ("timed_out"), "<category>:<value>" for other error codes, "exception" otherwise.
struct ErrorInfo {
  std::string code;
  std::string text;
};

inline const char* errc_name(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::timed_out: return "timed_out";
    case errc::no_responders: return "no_responders";
    case errc::stopped: return "stopped";
    case errc::closed: return "closed";
    case errc::payload_too_large: return "payload_too_large";
    case errc::not_supported: return "not_supported";
    case errc::remote_error: return "remote_error";
    case errc::bad_message: return "bad_message";
    case errc::unavailable: return "unavailable";
  }
  return "unknown";
}

inline ErrorInfo describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(std::move(e));
  } catch (const boost::system::system_error& x) {
    const auto& ec = x.code();
    if (ec.category() == error_category()) return {errc_name(static_cast<errc>(ec.value())), x.what()};
    return {std::string(ec.category().name()) + ":" + std::to_string(ec.value()), x.what()};
  } catch (const std::exception& x) {
    return {"exception", x.what()};
  } catch (...) {
    return {"exception", "unknown exception"};
  }
}

}  // namespace patchbay::plugins::support
