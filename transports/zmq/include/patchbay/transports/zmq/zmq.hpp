// patchbay/transports/zmq/zmq.hpp — the `zmq` transport: brokerless messaging over ZeroMQ.
//
// Built on libzmq 4.3 through cppzmq (no draft API). Topics are PUB/SUB (an XPUB socket per
// transport, a SUB socket per subscription), consumer groups are PUSH/PULL, request/reply is
// DEALER/ROUTER. Every socket is driven from the runtime's io_context through ZMQ_FD; no
// thread of ours ever blocks in zmq. The transport's README has the settings, the wire
// format, the guarantees and the design.
//
// Guarantees (see Features): at-most-once; one publisher's messages arrive in order; a
// subscription is live when subscribe() completes (the welcome handshake, below); headers are
// carried; nothing survives a restart.
//
// Thread safety: every member may be called concurrently from any thread.
#pragma once

#include <patchbay/registry.hpp>
#include <patchbay/transport.hpp>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>

namespace patchbay::zeromq {

/// What the transport counted since it started.
struct Counters {
  std::uint64_t published = 0;    ///< messages accepted by publish()
  std::uint64_t received = 0;     ///< messages delivered to subscriptions
  std::uint64_t malformed = 0;    ///< messages dropped because their frames were malformed
  std::uint64_t oversized = 0;    ///< messages dropped because their payload passed max_payload
  std::uint64_t unclaimed = 0;    ///< pulled messages for a topic no local group consumes
  std::uint64_t welcomes = 0;     ///< subscription handshakes answered by this publisher
};

/// Implemented by the zmq transport, for tests and operators: `dynamic_cast` a Transport to it.
class Introspection {
 public:
  virtual ~Introspection() = default;
  virtual Counters counters() const = 0;
};

/// The factory registered as "zmq".
absl::StatusOr<std::shared_ptr<Transport>> make_transport(const TransportContext& ctx);

/// Registers the "zmq" factory.
absl::Status register_transport(Registry& registry);

}  // namespace patchbay::zeromq
