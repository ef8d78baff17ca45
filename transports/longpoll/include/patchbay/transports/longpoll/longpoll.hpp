// patchbay/transports/longpoll/longpoll.hpp — the `longpoll` transport: subscribe by long
// polling a hub.
//
// subscribe() loops on `GET {url}/topics/{topic}/poll?after=P&wait=S`: the hub answers at once
// with what follows P (a bounded batch and the next position) or holds the request until a
// message arrives or the wait ends. A Delivery's Position is the message's hub position, so a
// later subscribe (also after a restart of the client) resumes with Position::after(token).
// Errors back off exponentially up to `max_backoff`. publish() POSTs to the hub's
// `/topics/{topic}`. See transports/longpoll/README.md and docs/polling.md.
#pragma once

#include <patchbay/registry.hpp>
#include <patchbay/transport.hpp>

#include <absl/status/status.h>

#include <cstdint>
#include <optional>

namespace patchbay::longpoll_transport {

/// Registers the factory for `type: longpoll`.
absl::Status register_transport(Registry& registry);

/// What a longpoll transport has done so far (all its subscriptions), for tests and metrics.
struct Stats {
  std::uint64_t requests = 0;      ///< poll requests sent
  std::uint64_t answers = 0;       ///< 200 answers taken
  std::uint64_t not_modified = 0;  ///< 304 answers (short polling only)
  std::uint64_t errors = 0;        ///< failed requests (network, non-2xx, unparsable answer)
  std::uint64_t messages = 0;      ///< messages received
  std::uint64_t gaps = 0;          ///< gap signals received
};

/// The stats of `transport` when it is a longpoll transport of this library; std::nullopt
/// otherwise.
std::optional<Stats> stats(const Transport& transport);

}  // namespace patchbay::longpoll_transport
