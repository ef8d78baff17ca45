// patchbay/registry.hpp — named factories for transports and middleware.
//
// A Registry maps type names ("inproc", "rabbitmq", "headers") to factories. Built-in
// factories are added by `Registry::with_builtins()`; plugin modules add theirs when loaded
// (see plugin.hpp). A plugin may replace a built-in factory of the same name (the registry
// records where each factory came from); two plugins may not register the same name.
//
// Lifetime: a Registry keeps every loaded module mapped until it is destroyed, so objects
// made by a module's factories must be destroyed before the Registry (the Runtime does so).
// Thread safety: all members are safe to call concurrently.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/config.hpp>
#include <patchbay/transport.hpp>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace patchbay {

/// What a transport factory receives.
struct TransportContext {
  std::string name;             ///< the transport's key in `transports:`
  executor ex;                  ///< the runtime's executor
  const config::Node& settings; ///< its settings; read them with the typed getters
  /// The runtime's other transports by name (nullptr when unknown). Valid from start() on —
  /// not inside the factory, where later transports are not built yet — and only while the
  /// Runtime lives. Empty when the transport is made outside a Runtime.
  std::function<std::shared_ptr<Transport>(std::string_view name)> lookup;
};

/// What a middleware factory receives.
struct MiddlewareContext {
  std::string binding;          ///< the binding it wraps
  executor ex;
  const config::Node& settings;
  std::shared_ptr<Transport> inner;
};

using TransportFactory = std::function<absl::StatusOr<std::shared_ptr<Transport>>(const TransportContext&)>;
using MiddlewareFactory = std::function<absl::StatusOr<std::shared_ptr<Transport>>(const MiddlewareContext&)>;

struct FactoryInfo {
  enum class kind { transport, middleware };
  kind what;
  std::string type;
  std::string origin;  ///< "builtin" or the path of the module that registered it
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// A registry holding the built-in factories (the in-process transport).
  static std::unique_ptr<Registry> with_builtins();

  absl::Status add_transport(std::string type, TransportFactory factory);
  absl::Status add_middleware(std::string type, MiddlewareFactory factory);

  /// Loads a plugin module with Boost.DLL, checks its ABI version, and lets it register its
  /// factories. Missing, unreadable, corrupt or mismatched modules give an error, never a crash.
  absl::Status load_plugin(const std::string& path);

  /// Builds a transport; NotFound (listing the known types) when nobody registered `type`.
  absl::StatusOr<std::shared_ptr<Transport>> make_transport(std::string_view type, const TransportContext& ctx) const;
  absl::StatusOr<std::shared_ptr<Transport>> make_middleware(std::string_view type, const MiddlewareContext& ctx) const;

  bool has_transport(std::string_view type) const;
  std::vector<FactoryInfo> list() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace patchbay
