// patchbay/transports/shortpoll/shortpoll.hpp — the `shortpoll` transport: subscribe by short
// polling a hub.
//
// subscribe() polls `GET {url}/topics/{topic}/messages?after=P` every `interval` (± `jitter`),
// with `If-None-Match` carrying the last ETag so that an unchanged topic costs a 304 and no
// body. Each answer carries the next position; a Delivery's Position is the message's hub
// position, so a later subscribe resumes with Position::after(token). Errors back off
// exponentially up to `max_backoff`. publish() POSTs to the hub's `/topics/{topic}`. See
// transports/shortpoll/README.md and docs/polling.md.
#pragma once

#include <patchbay/registry.hpp>
#include <patchbay/transport.hpp>

#include <absl/status/status.h>

#include <cstdint>
#include <optional>

namespace patchbay::shortpoll_transport {

/// Registers the factory for `type: shortpoll`.
absl::Status register_transport(Registry& registry);

/// What a shortpoll transport has done so far (all its subscriptions), for tests and metrics.
struct Stats {
  std::uint64_t requests = 0;      ///< poll requests sent
  std::uint64_t answers = 0;       ///< 200 answers taken
  std::uint64_t not_modified = 0;  ///< 304 answers (conditional requests, nothing new)
  std::uint64_t errors = 0;        ///< failed requests (network, non-2xx, unparsable answer)
  std::uint64_t messages = 0;      ///< messages received
  std::uint64_t gaps = 0;          ///< gap signals received
};

/// The stats of `transport` when it is a shortpoll transport of this library; std::nullopt
/// otherwise.
std::optional<Stats> stats(const Transport& transport);

}  // namespace patchbay::shortpoll_transport
