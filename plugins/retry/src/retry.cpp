// The `retry` middleware (see the header).
//
// The per-attempt timeout of a publish races the inner publish against a timer on a private
// strand (as Stream::timeout does; Asio 1.81's `||` can cancel an operation that has already
// finished): whichever ends first decides, the timer cancels the publish, and a publish that
// ignores cancellation is left to finish on its own while the caller moves on.
#include <patchbay/plugins/retry/retry.hpp>

#include <patchbay/error.hpp>
#include <patchbay/middleware.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/plugins/support.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

namespace patchbay::plugins::retry {
namespace {

struct Policy {
  int max_attempts = 3;
  duration initial_backoff = std::chrono::milliseconds(100);
  duration max_backoff = std::chrono::seconds(5);
  double multiplier = 2.0;
  double jitter = 0.2;
  std::set<errc> retry_on{errc::unavailable, errc::timed_out};
  duration timeout{0};
  bool publish = true;
  bool request = true;
  int failure_threshold = 5;  // 0: no circuit breaker
  duration open_for = std::chrono::seconds(30);
};

double seconds(duration d) { return std::chrono::duration<double>(d).count(); }

/// Closed → open after `threshold` consecutive failures → half-open after `open_for` (one trial
/// call) → closed on its success, open again on its failure. Thread-safe.
class CircuitBreaker {
 public:
  CircuitBreaker(int threshold, duration open_for) : threshold_(threshold), open_for_(open_for) {}

  /// Whether a call may go ahead now; otherwise why not.
  std::optional<std::string> admit() {
    if (threshold_ == 0) return std::nullopt;
    std::lock_guard lock(mutex_);
    const auto now = clock::now();
    if (state_ == state::open) {
      if (now < opened_at_ + open_for_) {
        std::ostringstream why;
        why.precision(3);
        why << "circuit open after " << failures_ << " consecutive failures; next trial in "
            << seconds(opened_at_ + open_for_ - now) << " s";
        return why.str();
      }
      state_ = state::half_open;
      trial_in_flight_ = false;
    }
    if (state_ == state::half_open) {
      if (trial_in_flight_) return std::string("circuit half-open: a trial call is in flight");
      trial_in_flight_ = true;
    }
    return std::nullopt;
  }

  void record(bool failed) {
    if (threshold_ == 0) return;
    std::lock_guard lock(mutex_);
    if (!failed) {
      state_ = state::closed;
      failures_ = 0;
      trial_in_flight_ = false;
      return;
    }
    ++failures_;
    if (state_ == state::half_open || failures_ >= threshold_) {
      state_ = state::open;
      opened_at_ = clock::now();
      trial_in_flight_ = false;
    }
  }

 private:
  enum class state { closed, open, half_open };
  const int threshold_;
  const duration open_for_;
  std::mutex mutex_;
  state state_ = state::closed;
  int failures_ = 0;
  deadline opened_at_{};
  bool trial_in_flight_ = false;
};

/// Races `op` against a timer (see the file comment). Completes `handler` once, with the
/// op's outcome or errc::timed_out.
template <typename Handler>
class TimedAttempt : public std::enable_shared_from_this<TimedAttempt<Handler>> {
 public:
  TimedAttempt(Handler handler, asio::strand<executor> strand, duration timeout)
      : handler_(std::move(handler)), strand_(std::move(strand)), timer_(strand_, timeout) {}

  void start(awaitable<void> op) {
    auto self = this->shared_from_this();
    asio::co_spawn(strand_, std::move(op),
                   asio::bind_cancellation_slot(stop_op_.slot(), [self](std::exception_ptr e) { self->finish(std::move(e), false); }));
    timer_.async_wait(asio::bind_executor(strand_, [self](boost::system::error_code ec) {
      if (!ec) self->finish(nullptr, true);
    }));
  }

 private:
  // On the strand.
  void finish(std::exception_ptr e, bool timer_fired) {
    if (done_) return;
    done_ = true;
    if (timer_fired) {
      stop_op_.emit(asio::cancellation_type::terminal);
      e = std::make_exception_ptr(boost::system::system_error(make_error_code(errc::timed_out), "retry: attempt timed out"));
    } else {
      timer_.cancel();
    }
    auto ex = asio::get_associated_executor(handler_, strand_);
    asio::post(ex, [h = std::move(handler_), e]() mutable { std::move(h)(e); });
  }

  Handler handler_;
  asio::strand<executor> strand_;
  asio::steady_timer timer_;
  asio::cancellation_signal stop_op_;
  bool done_ = false;
};

awaitable<void> publish_within(std::shared_ptr<Transport> inner, Message msg, duration timeout) {
  executor ex = co_await asio::this_coro::executor;
  auto strand = asio::make_strand(ex);
  co_await asio::async_initiate<const asio::use_awaitable_t<executor>&, void(std::exception_ptr)>(
      [&](auto handler) {
        using H = decltype(handler);
        auto attempt = std::make_shared<TimedAttempt<H>>(std::move(handler), strand, timeout);
        attempt->start(inner->publish(std::move(msg)));
      },
      asio::use_awaitable_t<executor>{});
}

class RetryMiddleware final : public Middleware {
 public:
  RetryMiddleware(std::shared_ptr<Transport> inner, std::string binding, Policy p)
      : Middleware(std::move(inner)), binding_(std::move(binding)), policy_(std::move(p)),
        breaker_(policy_.failure_threshold, policy_.open_for) {}

 protected:
  awaitable<void> do_publish(Message msg) override {
    if (!policy_.publish) {
      co_await inner()->publish(std::move(msg));
      co_return;
    }
    for (int attempt = 1;; ++attempt) {
      admit_or_throw();
      std::exception_ptr failure;
      try {
        if (policy_.timeout.count() > 0)
          co_await publish_within(inner(), msg, policy_.timeout);
        else
          co_await inner()->publish(msg);  // a copy: shares the payload
      } catch (...) {
        failure = std::current_exception();
      }
      const bool retryable = failure && is_retryable(failure);
      breaker_.record(retryable);
      if (!failure) co_return;
      if (!retryable || attempt >= policy_.max_attempts) std::rethrow_exception(failure);
      co_await sleep(backoff(attempt));
    }
  }

  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    if (!policy_.request) co_return co_await inner()->request(std::move(service), std::move(msg), until);
    for (int attempt = 1;; ++attempt) {
      admit_or_throw();
      deadline attempt_until = until;
      if (policy_.timeout.count() > 0) attempt_until = std::min(until, clock::now() + policy_.timeout);
      std::exception_ptr failure;
      Message reply;
      try {
        reply = co_await inner()->request(service, msg, attempt_until);
      } catch (...) {
        failure = std::current_exception();
      }
      const bool retryable = failure && is_retryable(failure);
      breaker_.record(retryable);
      if (!failure) co_return reply;
      const duration wait = backoff(attempt);
      // Another attempt only while the caller's deadline leaves room for it.
      if (!retryable || attempt >= policy_.max_attempts || clock::now() + wait >= until) std::rethrow_exception(failure);
      co_await sleep(wait);
    }
  }

 private:
  void admit_or_throw() {
    if (auto why = breaker_.admit()) throw_error(errc::unavailable, "retry: binding '" + binding_ + "': " + *why);
  }

  bool is_retryable(const std::exception_ptr& e) const {
    try {
      std::rethrow_exception(e);
    } catch (const boost::system::system_error& x) {
      if (x.code().category() != error_category()) return false;  // operation_aborted (cancellation) included
      return policy_.retry_on.count(static_cast<errc>(x.code().value())) > 0;
    } catch (...) {
      return false;
    }
  }

  duration backoff(int attempt) const {
    double d = seconds(policy_.initial_backoff) * std::pow(policy_.multiplier, attempt - 1);
    d = std::min(d, seconds(policy_.max_backoff));
    thread_local std::mt19937_64 engine{std::random_device{}()};
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    d *= 1.0 - policy_.jitter * unit(engine);
    return std::chrono::duration_cast<duration>(std::chrono::duration<double>(d));
  }

  static awaitable<void> sleep(duration d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::use_awaitable_t<executor>{});
  }

  std::string binding_;
  Policy policy_;
  CircuitBreaker breaker_;
};

std::optional<errc> errc_by_name(std::string_view name) {
  for (int i = 1; i <= static_cast<int>(errc::unavailable); ++i)
    if (name == support::errc_name(static_cast<errc>(i))) return static_cast<errc>(i);
  return std::nullopt;
}

absl::StatusOr<std::shared_ptr<Transport>> make_retry(const MiddlewareContext& ctx) {
  const auto& s = ctx.settings;
  Policy p;
  auto fail = [&](std::string_view key, const std::string& what) {
    return config::error_at(s.mark_of(key), s.context() + ": " + what);
  };
  auto max_attempts = s.get_int("max_attempts", p.max_attempts, 1, 1000);
  if (!max_attempts.ok()) return max_attempts.status();
  auto initial = s.get_duration("initial_backoff", std::chrono::milliseconds(100));
  if (!initial.ok()) return initial.status();
  auto max_backoff = s.get_duration("max_backoff", std::chrono::milliseconds(5000));
  if (!max_backoff.ok()) return max_backoff.status();
  auto multiplier = s.get_double("multiplier", p.multiplier);
  if (!multiplier.ok()) return multiplier.status();
  if (*multiplier < 1.0) return fail("multiplier", "multiplier must be at least 1");
  auto jitter = s.get_double("jitter", p.jitter);
  if (!jitter.ok()) return jitter.status();
  if (*jitter < 0.0 || *jitter > 1.0) return fail("jitter", "jitter is a fraction between 0 and 1");
  auto timeout = s.get_duration("timeout", std::chrono::milliseconds(0));
  if (!timeout.ok()) return timeout.status();
  auto retry_on = s.get_string_list("retry_on", {"unavailable", "timed_out"});
  if (!retry_on.ok()) return retry_on.status();
  p.retry_on.clear();
  for (const auto& name : *retry_on) {
    auto e = errc_by_name(name);
    if (!e)
      return fail("retry_on", "'" + name + "' is not a patchbay error; use timed_out, no_responders, stopped, closed, "
                                           "payload_too_large, not_supported, remote_error, bad_message or unavailable");
    p.retry_on.insert(*e);
  }
  auto operations = s.get_string_list("operations", {"publish", "request"});
  if (!operations.ok()) return operations.status();
  p.publish = p.request = false;
  for (const auto& op : *operations) {
    if (op == "publish")
      p.publish = true;
    else if (op == "request")
      p.request = true;
    else
      return fail("operations", "'" + op + "' is not an operation this middleware retries (publish, request)");
  }
  auto breaker = s.get_map("circuit_breaker");
  if (!breaker.ok()) return breaker.status();
  auto threshold = breaker->get_int("failure_threshold", p.failure_threshold, 0, 1000000);
  if (!threshold.ok()) return threshold.status();
  auto open_for = breaker->get_duration("open_for", std::chrono::milliseconds(30000));
  if (!open_for.ok()) return open_for.status();
  if (auto unknown = breaker->check_unknown_keys(); !unknown.ok()) return unknown;

  p.max_attempts = static_cast<int>(*max_attempts);
  p.initial_backoff = *initial;
  p.max_backoff = std::max<duration>(*max_backoff, *initial);
  p.multiplier = *multiplier;
  p.jitter = *jitter;
  p.timeout = *timeout;
  p.failure_threshold = static_cast<int>(*threshold);
  p.open_for = *open_for;
  return std::make_shared<RetryMiddleware>(ctx.inner, ctx.binding, std::move(p));
}

absl::Status register_retry(Registry& registry) { return registry.add_middleware("retry", make_retry); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_middleware(Registry& registry) { return register_retry(registry); }
#endif

}  // namespace patchbay::plugins::retry

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::plugins::retry::register_retry)
#endif
