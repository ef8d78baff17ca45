// patchbay/transports/rabbitmq/rabbitmq.hpp — the RabbitMQ transport (AMQP 0-9-1 over rabbitmq-c).
//
// `type: rabbitmq`. Topics are routing keys on a topic exchange (one per transport, `exchange:`);
// a subscription without a group gets its own durable queue (deleted when it closes, expiring
// after `subscriber_queue_expiry` if its process vanished), members of a group share one durable
// queue. Publishes are persistent and confirmed by the broker within a window of unconfirmed
// messages; `mandatory` publishes that no queue takes fail with errc::no_responders. Deliveries are
// acked, nacked or requeued by hand, bounded by basic.qos (`prefetch`, or `max_in_flight`).
// Request/reply uses RabbitMQ's direct reply-to. A lost connection is re-established with backoff;
// exchange, queues, bindings and consumers are declared again and unconfirmed publishes are sent
// again (at-least-once: a duplicate carries the same message id).
//
// Threading: rabbitmq-c is blocking and not thread-safe, so each transport owns one I/O thread that
// alone touches its amqp_connection_state_t; coroutines hand it commands through a queue and get
// results back posted to their own executors. No io_context thread ever calls rabbitmq-c. See
// transports/rabbitmq/README.md.
//
// Built as patchbay_rabbitmq (static) and as the module lib/patchbay/libpatchbay_rabbitmq.so.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::rabbitmq {

/// Registers the factory for `type: rabbitmq`.
absl::Status register_transport(Registry& registry);

}  // namespace patchbay::rabbitmq
