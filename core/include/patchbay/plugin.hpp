// patchbay/plugin.hpp — what a loadable module exports.
//
// A transport or middleware module defines one registration function and names it with
// PATCHBAY_PLUGIN. The module exports two C symbols: `patchbay_plugin_abi`, checked by the
// loader *before* any of the module's C++ code runs, and `patchbay_plugin_register`.
//
//     absl::Status register_all(patchbay::Registry& r) { return r.add_transport("x", make_x); }
//     PATCHBAY_PLUGIN(register_all)
//
// The ABI string names the patchbay ABI revision, the Boost version and the compiler, so a
// module built against another core is refused with a clear error instead of crashing.
// Modules link the patchbay core shared library (which carries the one copy of Asio).
#pragma once

#include <patchbay/registry.hpp>

#include <absl/status/status.h>
#include <boost/config.hpp>
#include <boost/version.hpp>

#define PATCHBAY_ABI_REVISION "4"

#define PATCHBAY_ABI_STRINGIFY2(x) #x
#define PATCHBAY_ABI_STRINGIFY(x) PATCHBAY_ABI_STRINGIFY2(x)

#ifndef PATCHBAY_PLUGIN_ABI
#define PATCHBAY_PLUGIN_ABI                                                                       \
  "patchbay-abi-" PATCHBAY_ABI_REVISION " boost-" PATCHBAY_ABI_STRINGIFY(BOOST_VERSION) " " \
  BOOST_COMPILER
#endif

namespace patchbay {

/// The ABI string of the running core; a module must report exactly this.
const char* abi_version() noexcept;

}  // namespace patchbay

#define PATCHBAY_PLUGIN(register_function)                                                            \
  extern "C" BOOST_SYMBOL_EXPORT const char* patchbay_plugin_abi() { return PATCHBAY_PLUGIN_ABI; } \
  extern "C" BOOST_SYMBOL_EXPORT void patchbay_plugin_register(::patchbay::Registry* registry,      \
                                                               ::absl::Status* status) {           \
    *status = register_function(*registry);                                                         \
  }
