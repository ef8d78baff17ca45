// The hub over WebSocket (see patchbay/http/hub.hpp and hub_routes.hpp).
#include "hub_routes.hpp"

namespace patchbay::http {

void mount_websocket(const std::weak_ptr<Hub>&, Server&) {}

}  // namespace patchbay::http
