// patchbay/transports/redis/redis.hpp — the `redis` transport.
//
// Two modes, one per transport entry (a binding picks its mode by naming the entry):
//   - `mode: pubsub` (the default): Redis Pub/Sub. PUBLISH / SUBSCRIBE, PSUBSCRIBE for topics
//     with glob characters. At most once: a subscriber receives what is published while it is
//     connected; after a reconnection it receives a gap Delivery. Headers travel in an
//     envelope (envelope.hpp).
//   - `mode: streams`: Redis Streams. XADD / XREAD / XREADGROUP / XACK / XAUTOCLAIM. At least
//     once, consumer groups, replay from a Position (an entry id), a gap Delivery when MAXLEN
//     trimmed what a position needs.
// Both pipeline publishing, authenticate (password or ACL user), select a database, and
// reconnect with backoff. RESP is parsed by hiredis's reader (resp.hpp). See
// transports/redis/README.md for the settings and guarantees.
//
// Built as patchbay_redis (static) and as the module lib/patchbay/libpatchbay_redis.so.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::redis {

/// Registers the factory for `type: redis`.
absl::Status register_transport(Registry& registry);

}  // namespace patchbay::redis
