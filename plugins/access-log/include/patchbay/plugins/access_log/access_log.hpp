// patchbay/plugins/access_log/access_log.hpp — the `access-log` middleware.
//
// Writes one JSON object per line for every operation on a binding: publish, request, a
// served call, a delivery received, and its ack or nack:
//
//     {"time":"2026-11-28T00:10:17.123Z","binding":"orders","op":"publish","topic":"orders",
//      "id":"9f..","bytes":12,"outcome":"ok","duration_ms":0.412}
//
//     bindings:
//       orders:
//         transport: bus
//         middleware:
//           - type: access-log
//             path: /var/log/patchbay/access.log   # default: standard error
//             headers: [traceparent]               # header values to include
//
// Lines never interleave: all bindings writing to one path share one sink, and each line is
// written by one write(2) on a file opened with O_APPEND, under the sink's mutex.
// Link patchbay::access_log and call register_middleware(), or list the module
// (lib/patchbay/libpatchbay_access_log.so) under `plugins:`.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::plugins::access_log {

/// Registers the factory for `type: access-log`.
absl::Status register_middleware(Registry& registry);

}  // namespace patchbay::plugins::access_log
