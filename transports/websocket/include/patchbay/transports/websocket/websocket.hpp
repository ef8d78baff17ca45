// patchbay/transports/websocket/websocket.hpp — the `websocket` transport: a WebSocket client
// of patchbay's hub (`GET /topics/{topic}/ws`).
//
// subscribe() opens one WebSocket connection per subscription and yields each message as a
// Delivery whose Position is the hub's position, reconnecting with backoff and resuming after
// the last one (?after=) when the connection drops; publish() sends {"type":"publish",...} on
// one connection per topic and completes when the hub answers "published". See
// transports/websocket/README.md and docs/websocket.md.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::websocket_transport {

/// Registers the factory for `type: websocket`.
absl::Status register_transport(Registry& registry);

}  // namespace patchbay::websocket_transport
