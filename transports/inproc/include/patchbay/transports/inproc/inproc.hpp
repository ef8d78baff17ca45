// patchbay/transports/inproc/inproc.hpp — the in-process transport.
//
// The embedded default (a Runtime with no config uses it for every name) and the reference
// implementation of the Transport contract: fan-out publish/subscribe, consumer groups,
// at-least-once with ack/nack and redelivery, per-publisher order, request/reply, replay from
// a Position within a bounded per-topic history with a gap Delivery when the position is gone,
// and a configurable policy for slow subscribers. See transports/inproc/README.md.
//
// It is built into libpatchbay and also as the module libpatchbay_inproc.so (a plugin that
// replaces the built-in when listed under `plugins:`).
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::inproc {

/// Registers the factory for `type: inproc`.
absl::Status register_transport(Registry& registry);

}  // namespace patchbay::inproc
