// The hub's routes that live in their own translation units (one Beast-heavy file each, so a
// change to one pattern recompiles one file). Each function adds its routes to `server`; the
// handlers hold the hub weakly and answer 503 once it is gone or stopped.
#pragma once

#include <patchbay/http/hub.hpp>
#include <patchbay/http/server.hpp>

#include <memory>

namespace patchbay::http {

/// GET /topics/{topic}/poll (long polling) and GET /topics/{topic}/messages (short polling).
void mount_polling(const std::weak_ptr<Hub>& hub, Server& server);

/// GET /topics/{topic}/ws (WebSocket upgrade).
void mount_websocket(const std::weak_ptr<Hub>& hub, Server& server);

}  // namespace patchbay::http
