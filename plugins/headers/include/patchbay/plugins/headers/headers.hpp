// patchbay/plugins/headers/headers.hpp — the `headers` middleware.
//
// Adds fixed headers to every message a binding publishes and every request it sends, e.g. to
// tag traffic with its environment or origin:
//
//     bindings:
//       orders:
//         transport: bus
//         middleware:
//           - type: headers
//             set: { x-env: "${DEPLOY_ENV:-dev}", x-origin: billing }
//             overwrite: false      # keep a header the application set itself (default)
//
// Link patchbay::headers and call register_middleware(), or list the module
// (lib/patchbay/libpatchbay_headers.so) under `plugins:`.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::plugins::headers {

/// Registers the factory for `type: headers`.
absl::Status register_middleware(Registry& registry);

}  // namespace patchbay::plugins::headers
