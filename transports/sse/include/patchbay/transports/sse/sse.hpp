// patchbay/transports/sse/sse.hpp — the `sse` transport: subscribe to server-sent events.
//
// subscribe() opens an EventSource (patchbay/http/event_source.hpp) on
// `{url}/topics/{topic}/events` — patchbay's hub, or any standard event stream through the
// `events_path` setting — and yields each event as a Delivery whose Position is the event id,
// so a later subscribe can resume with Last-Event-ID. publish() POSTs to the hub's
// `/topics/{topic}`. See transports/sse/README.md.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::sse_transport {

/// Registers the factory for `type: sse`.
absl::Status register_transport(Registry& registry);

}  // namespace patchbay::sse_transport
