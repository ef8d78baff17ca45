// patchbay/plugins/metrics/metrics.hpp — the `metrics` middleware: Prometheus text exposition.
//
// Counts every operation of a binding and times the slow ones, and serves the numbers in the
// Prometheus text format (version 0.0.4) at `GET /metrics` on an admin HTTP listener (the
// server core of libpatchbay_http_core):
//
//   patchbay_messages_total{binding,operation}    counter    operations started
//   patchbay_bytes_total{binding,operation}       counter    payload bytes they carried
//   patchbay_errors_total{binding,operation}      counter    operations that failed
//   patchbay_deliveries_settled_total{binding,outcome}  counter  ack, nack, nack_drop
//   patchbay_publish_duration_seconds{binding}    histogram  publish until the transport accepted
//   patchbay_request_duration_seconds{binding}    histogram  request until the reply (or error)
//   patchbay_handler_duration_seconds{binding}    histogram  a served call's handler
//
// `operation` is publish, request, receive (a delivery handed to the application) or serve (a
// served call). Every binding (and every Runtime on the same io_context) that names the same
// `listen:` address shares one listener and one /metrics page.
//
//     middleware:
//       - type: metrics
//         listen: 127.0.0.1:9464     # default; port 0 picks a free port
//         port_file: /run/app/metrics.port   # optional: the bound port is written there
//
// Link patchbay::metrics and call register_middleware(), or list the module
// (lib/patchbay/libpatchbay_metrics.so) under `plugins:`.
// Thread safety: counters are atomics; rendering takes a snapshot without blocking operations.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

#include <string>
#include <string_view>
#include <vector>

namespace patchbay::plugins::metrics {

/// Registers the factory for `type: metrics`.
absl::Status register_middleware(Registry& registry);

/// A label value escaped for the text format: backslash, double quote and line feed.
std::string escape_label_value(std::string_view value);

/// The upper bounds (seconds) of the latency histograms' buckets; +Inf is implied.
const std::vector<double>& latency_buckets();

}  // namespace patchbay::plugins::metrics
