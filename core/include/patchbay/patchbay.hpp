// patchbay/patchbay.hpp — the umbrella header: everything an application needs.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/bytes.hpp>
#include <patchbay/channel.hpp>
#include <patchbay/config.hpp>
#include <patchbay/delivery.hpp>
#include <patchbay/error.hpp>
#include <patchbay/features.hpp>
#include <patchbay/headers.hpp>
#include <patchbay/message.hpp>
#include <patchbay/middleware.hpp>
#include <patchbay/position.hpp>
#include <patchbay/registry.hpp>
#include <patchbay/runtime.hpp>
#include <patchbay/service.hpp>
#include <patchbay/stream.hpp>
#include <patchbay/topic.hpp>
#include <patchbay/transport.hpp>
