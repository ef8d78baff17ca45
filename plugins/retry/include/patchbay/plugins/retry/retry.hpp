// patchbay/plugins/retry/retry.hpp — the `retry` middleware: backoff, per-call timeout, circuit breaker.
//
// Publish and request calls of a binding that fail with a retryable error are tried again,
// after an exponential backoff with jitter, up to `max_attempts` in all. Each attempt may be
// bounded by `timeout`. A circuit breaker watches the attempts: after `failure_threshold`
// consecutive retryable failures it opens, and for `open_for` every call fails at once with
// errc::unavailable ("circuit open ..."); then one trial call is let through (half-open): its
// success closes the circuit, its failure opens it again.
//
//     middleware:
//       - type: retry
//         max_attempts: 4
//         initial_backoff: 100ms
//         max_backoff: 5s
//         multiplier: 2
//         jitter: 0.2                     # each backoff is shortened by up to 20 % at random
//         retry_on: [unavailable, timed_out]
//         timeout: 2s                     # per attempt; 0: none
//         circuit_breaker: { failure_threshold: 5, open_for: 30s }
//
// @warning A retried publish may be delivered twice (the first attempt may have reached the
// broker before it failed or timed out); subscribers recognise duplicates by message id. A
// request is retried only while its deadline allows another attempt.
// Link patchbay::retry and call register_middleware(), or list the module
// (lib/patchbay/libpatchbay_retry.so) under `plugins:`.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::plugins::retry {

/// Registers the factory for `type: retry`.
absl::Status register_middleware(Registry& registry);

}  // namespace patchbay::plugins::retry
