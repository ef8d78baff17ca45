// patchbay/transports/http/http.hpp — the `http` transport: request-response over HTTP, and
// the hub that serves topics to browsers.
//
// With `listen:` the transport runs an HTTP server (patchbay/http/server.hpp) with a hub
// (patchbay/http/hub.hpp) on it: serve() exposes `POST /services/{name}` and the configured
// routes (`GET /users/{id}`), publish()/subscribe() use the hub's topics, which browsers read
// as server-sent events. With `url:` request() calls a remote server's `POST /services/{name}`
// (without `url:` it calls its own listener, over real sockets). See transports/http/README.md.
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>

namespace patchbay::http_transport {

/// Registers the factory for `type: http`.
absl::Status register_transport(Registry& registry);

}  // namespace patchbay::http_transport
