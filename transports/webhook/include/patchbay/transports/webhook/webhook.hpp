// patchbay/transports/webhook/webhook.hpp — the `webhook` transport: receive Standard Webhooks.
//
// An HTTP endpoint (its own http::Server, `listen:`) that receives `POST {path}/{topic}`
// deliveries, verifies their Standard Webhooks signature (patchbay/http/webhook_signature.hpp)
// in constant time within a timestamp tolerance, refuses a replayed webhook-id, and yields each
// delivery as a Delivery to the subscriptions of that topic. The HTTP request is held until the
// application settles the Delivery: ack() answers 204, nack(true) 503 (the sender retries
// later, redelivered() is then set), nack(false) 202 (the sender stops; the message is dropped).
//
// With `url:` (a patchbay hub), subscribe(topic) also registers a webhook subscription at the
// hub (POST /webhooks/subscriptions, a fresh secret, its own URL {path}/{topic}/{id}) and
// deletes it when the subscription ends; publish() POSTs to the hub's /topics/{topic}. See
// transports/webhook/README.md and docs/webhooks.md.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::webhook_transport {

/// Registers the factory for `type: webhook`.
absl::Status register_transport(Registry& registry);

}  // namespace patchbay::webhook_transport
