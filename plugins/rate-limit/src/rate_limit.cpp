// The `rate-limit` middleware (see the header).
#include <patchbay/plugins/rate_limit/rate_limit.hpp>

#include <patchbay/error.hpp>
#include <patchbay/middleware.hpp>
#include <patchbay/plugin.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace patchbay::plugins::rate_limit {

TokenBucket::TokenBucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst), last_(clock::now()) {}

std::optional<duration> TokenBucket::take(duration max_wait, clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return duration::zero();
  }
  const auto wait = std::chrono::duration_cast<duration>(std::chrono::duration<double>((1.0 - tokens_) / rate_));
  if (wait > max_wait) return std::nullopt;
  tokens_ -= 1.0;  // promised to this caller: later callers queue behind it
  return wait;
}

namespace {

struct Limits {
  double rate = 0;
  double burst = 0;
  bool wait = true;
  duration max_wait = std::chrono::seconds(5);
  bool publish = true;
  bool request = true;
  std::optional<std::pair<double, double>> serve;  // rate, burst
};

std::string describe(const std::string& binding, const TokenBucket& b) {
  std::ostringstream s;
  s << "rate-limit: binding '" << binding << "' is over its limit of " << b.rate() << "/s (burst " << b.burst() << ")";
  return s.str();
}

class RateLimitMiddleware final : public Middleware {
 public:
  RateLimitMiddleware(std::shared_ptr<Transport> inner, std::string binding, Limits l)
      : Middleware(std::move(inner)), binding_(std::move(binding)), limits_(l), bucket_(l.rate, l.burst) {
    if (l.serve) serve_bucket_ = std::make_shared<TokenBucket>(l.serve->first, l.serve->second);
  }

 protected:
  awaitable<void> do_publish(Message msg) override {
    if (limits_.publish) co_await admit(clock::time_point::max());
    co_await inner()->publish(std::move(msg));
  }

  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    if (limits_.request) co_await admit(until);
    co_return co_await inner()->request(std::move(service), std::move(msg), until);
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    if (!serve_bucket_) return inner()->serve(std::move(service), std::move(handler));
    auto h = std::make_shared<ServiceHandler>(std::move(handler));
    ServiceHandler wrapped = [h, bucket = serve_bucket_, binding = binding_](Message request) -> awaitable<Message> {
      if (!bucket->take(duration::zero())) return refuse(describe(binding, *bucket));
      return (*h)(std::move(request));
    };
    return inner()->serve(std::move(service), std::move(wrapped));
  }

 private:
  static awaitable<Message> refuse(std::string why) {
    throw std::runtime_error(why);
    co_return Message();
  }

  awaitable<void> admit(deadline until) {
    const auto now = clock::now();
    duration max_wait = limits_.wait ? limits_.max_wait : duration::zero();
    if (until != clock::time_point::max()) max_wait = std::min(max_wait, std::max(duration::zero(), until - now));
    auto wait = bucket_.take(max_wait, now);
    if (!wait) throw_error(errc::unavailable, describe(binding_, bucket_));
    if (*wait > duration::zero()) {
      asio::steady_timer timer(co_await asio::this_coro::executor, *wait);
      co_await timer.async_wait(asio::use_awaitable_t<executor>{});
    }
  }

  std::string binding_;
  Limits limits_;
  TokenBucket bucket_;
  std::shared_ptr<TokenBucket> serve_bucket_;
};

absl::StatusOr<std::shared_ptr<Transport>> make_rate_limit(const MiddlewareContext& ctx) {
  const auto& s = ctx.settings;
  auto fail = [&](std::string_view key, const std::string& what) {
    return config::error_at(s.mark_of(key), s.context() + ": " + what);
  };
  Limits l;
  if (!s.has("rate")) return fail("rate", "`rate:` (tokens per second) is required");
  auto rate = s.get_double("rate", 0);
  if (!rate.ok()) return rate.status();
  if (*rate <= 0) return fail("rate", "rate must be above 0");
  auto burst = s.get_double("burst", std::max(1.0, *rate));
  if (!burst.ok()) return burst.status();
  if (*burst < 1) return fail("burst", "burst must be at least 1");
  auto mode = s.get_choice("mode", "wait", {"wait", "reject"});
  if (!mode.ok()) return mode.status();
  auto max_wait = s.get_duration("max_wait", std::chrono::milliseconds(5000));
  if (!max_wait.ok()) return max_wait.status();
  auto operations = s.get_string_list("operations", {"publish", "request"});
  if (!operations.ok()) return operations.status();
  l.publish = l.request = false;
  for (const auto& op : *operations) {
    if (op == "publish")
      l.publish = true;
    else if (op == "request")
      l.request = true;
    else
      return fail("operations", "'" + op + "' is not an outgoing operation (publish, request); limit served calls with `serve:`");
  }
  if (s.has("serve")) {
    auto serve = s.get_map("serve");
    if (!serve.ok()) return serve.status();
    auto serve_rate = serve->get_double("rate", 0);
    if (!serve_rate.ok()) return serve_rate.status();
    if (*serve_rate <= 0) return fail("serve", "serve.rate must be above 0");
    auto serve_burst = serve->get_double("burst", std::max(1.0, *serve_rate));
    if (!serve_burst.ok()) return serve_burst.status();
    if (*serve_burst < 1) return fail("serve", "serve.burst must be at least 1");
    if (auto unknown = serve->check_unknown_keys(); !unknown.ok()) return unknown;
    l.serve = std::make_pair(*serve_rate, *serve_burst);
  }
  l.rate = *rate;
  l.burst = *burst;
  l.wait = *mode == "wait";
  l.max_wait = *max_wait;
  return std::make_shared<RateLimitMiddleware>(ctx.inner, ctx.binding, l);
}

absl::Status register_rate_limit(Registry& registry) { return registry.add_middleware("rate-limit", make_rate_limit); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_middleware(Registry& registry) { return register_rate_limit(registry); }
#endif

}  // namespace patchbay::plugins::rate_limit

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::plugins::rate_limit::register_rate_limit)
#endif
