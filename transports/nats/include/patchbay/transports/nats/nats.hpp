// patchbay/transports/nats/nats.hpp — the `nats` transport: core NATS through nats.c.
//
// Publish/subscribe on NATS subjects (wildcards `*` and `>` included), consumer groups as NATS
// queue groups, request/reply over a per-connection inbox with NATS's "no responders" status,
// headers carried as NATS message headers, reconnect with the publishes made while disconnected
// buffered in nats.c's reconnect buffer. At most once: core NATS keeps no history, so there is
// no ack/nack redelivery and no replay; what a subscriber misses (it was too slow, or the
// connection was down) is reported to it as a gap Delivery and counted.
//
// nats.c runs its own threads (a reader, a flusher, one delivery thread per subscription);
// their callbacks only enqueue into bounded queues and ring a Doorbell, so no io_context thread
// waits on nats.c and no nats.c thread waits on the application. transports/nats/README.md
// describes the settings, the guarantees and the threading design.
//
// Built as patchbay_nats (static) and as the module lib/patchbay/libpatchbay_nats.so.
#pragma once

#include <patchbay/registry.hpp>
#include <patchbay/transport.hpp>

#include <absl/status/status.h>

#include <cstdint>
#include <optional>

namespace patchbay::nats {

/// Registers the factory for `type: nats`.
absl::Status register_transport(Registry& registry);

/// A transport's counters since it was made. Every field only grows.
struct Stats {
  std::uint64_t published = 0;           ///< messages handed to nats.c by publish()
  std::uint64_t received = 0;            ///< messages that reached a subscription's queue
  std::uint64_t slow_consumer_drops = 0; ///< messages dropped because a subscriber fell behind
  std::uint64_t disconnects = 0;         ///< times the connection to the server was lost
  std::uint64_t reconnects = 0;          ///< times it was re-established
};

/// Implemented by every `nats` transport. Defined here (inline, no key function) so that a
/// program that loads the transport from the module can still ask for its counters.
class StatsSource {
 public:
  virtual ~StatsSource() = default;
  virtual Stats nats_stats() const noexcept = 0;
};

/// The counters of `transport` when it is a `nats` transport (from the module or linked in).
inline std::optional<Stats> stats_of(const Transport& transport) {
  if (const auto* source = dynamic_cast<const StatsSource*>(&transport)) return source->nats_stats();
  return std::nullopt;
}

}  // namespace patchbay::nats
