// patchbay/plugins/auth/auth.hpp — the `auth` middleware: bearer tokens or HMAC per binding.
//
// Outgoing messages (publish, request) get the binding's credential; incoming deliveries and
// served requests without a valid one are rejected, counted and logged (one line on standard
// error each):
//   - a delivery is nacked without requeue (the transport dead-letters or drops it, see its
//     README) and never reaches the application;
//   - a served request fails without running the handler: the caller gets errc::remote_error
//     whose text starts with "unauthenticated:" (patchbay has no dedicated error code yet).
//
//     middleware:
//       - type: auth
//         tokens: [ "${ORDERS_TOKEN}" ]     # accepted bearer tokens (or token_file:)
//         # token: ...                      # the one sent; default: the first accepted one
//       - type: auth
//         hmac: { secret: "${ORDERS_KEY}", header: x-patchbay-signature }
//
// Bearer: header `authorization: Bearer <token>` (name configurable with `header:`).
// HMAC: header `x-patchbay-signature: sha256=<hex>`, HMAC-SHA256 with the secret over
// "patchbay-hmac-v1\n" + topic or service + "\n" + message id + "\n" + payload — headers are
// not covered (other middleware may add some on the way). Every comparison is constant-time.
// Link patchbay::auth and call register_middleware(), or list the module
// (lib/patchbay/libpatchbay_auth.so) under `plugins:`.
#pragma once

#include <patchbay/message.hpp>
#include <patchbay/registry.hpp>

#include <absl/status/status.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace patchbay::plugins::auth {

/// Registers the factory for `type: auth`.
absl::Status register_middleware(Registry& registry);

/// How many incoming messages the linked-in middleware of `binding` rejected so far.
std::uint64_t rejected(std::string_view binding);

/// The HMAC header value ("sha256=<hex>") for a message on `topic` (exposed for clients in
/// other languages to check their signing against).
std::string hmac_signature(std::string_view secret, std::string_view topic, const Message& msg);

}  // namespace patchbay::plugins::auth
