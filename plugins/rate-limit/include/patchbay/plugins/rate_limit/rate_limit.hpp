// patchbay/plugins/rate_limit/rate_limit.hpp — the `rate-limit` middleware: a token bucket per binding.
//
// Each publish and request of the binding takes one token from a bucket that holds at most
// `burst` tokens and refills at `rate` per second. With `mode: wait` a call that finds the
// bucket empty waits for its token (in arrival order; a call that would wait longer than
// `max_wait`, or past a request's deadline, is refused instead); with `mode: reject` it is
// refused at once. A refused call fails with errc::unavailable whose text starts with
// "rate-limit:". Optionally, served calls coming in are limited by a bucket of their own
// (`serve:`); a refused one fails without running the handler, and its caller gets
// errc::remote_error with that text.
//
//     middleware:
//       - type: rate-limit
//         rate: 100          # tokens per second
//         burst: 20          # bucket size (default: rate, at least 1)
//         mode: wait         # wait | reject
//         max_wait: 5s
//         operations: [publish, request]
//         serve: { rate: 50, burst: 10 }
//
// Link patchbay::rate_limit and call register_middleware(), or list the module
// (lib/patchbay/libpatchbay_rate_limit.so) under `plugins:`.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/registry.hpp>

#include <absl/status/status.h>

#include <mutex>
#include <optional>

namespace patchbay::plugins::rate_limit {

/// A token bucket. take() reserves the next token: the wait until it is available (zero when
/// one is there now), or std::nullopt when that wait would exceed `max_wait` (nothing is taken
/// then). Thread-safe.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst);
  std::optional<duration> take(duration max_wait, clock::time_point now = clock::now());
  double rate() const noexcept { return rate_; }
  double burst() const noexcept { return burst_; }

 private:
  const double rate_;
  const double burst_;
  std::mutex mutex_;
  double tokens_;  // may go negative: tokens promised to callers that are waiting for them
  clock::time_point last_;
};

/// Registers the factory for `type: rate-limit`.
absl::Status register_middleware(Registry& registry);

}  // namespace patchbay::plugins::rate_limit
