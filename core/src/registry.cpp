// Named factories and plugin loading with Boost.DLL.
//
// Loading checks, in order: the file exists and is readable; it starts with an ELF header
// (a truncated or corrupt file is refused before dlopen sees it); dlopen succeeds; the module
// exports patchbay_plugin_abi and its string equals this core's. Only then does any C++ code
// of the module run (patchbay_plugin_register). Each failure is an error naming the path and
// what to do, never a crash.
#include <patchbay/plugin.hpp>
#include <patchbay/registry.hpp>

#include <patchbay/transports/inproc/inproc.hpp>

#include <boost/dll/shared_library.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

namespace patchbay {

const char* abi_version() noexcept { return PATCHBAY_PLUGIN_ABI; }

namespace {

struct Entry {
  TransportFactory transport;
  MiddlewareFactory middleware;
  std::string origin;
};

// The module whose registration function is running on this thread ("builtin" otherwise).
thread_local const std::string* loading_origin = nullptr;

std::string known_list(const std::map<std::string, Entry, std::less<>>& m) {
  std::string out;
  for (const auto& [name, _] : m) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out.empty() ? std::string("none") : out;
}

}  // namespace

struct Registry::Impl {
  mutable std::recursive_mutex mutex;
  // Declared first so that it is destroyed last: factories (and everything they made) must go
  // before the code that implements them is unmapped.
  std::vector<std::pair<std::string, boost::dll::shared_library>> modules;
  std::map<std::string, Entry, std::less<>> transports;
  std::map<std::string, Entry, std::less<>> middleware;

  absl::Status add(std::map<std::string, Entry, std::less<>>& m, const char* what, std::string type, Entry e) {
    std::lock_guard lock(mutex);
    e.origin = loading_origin ? *loading_origin : std::string("builtin");
    auto it = m.find(type);
    if (it != m.end()) {
      if (it->second.origin != "builtin" && e.origin != "builtin")
        return absl::AlreadyExistsError(std::string(what) + " type '" + type + "' is registered by both " +
                                        it->second.origin + " and " + e.origin + "; list only one of them under plugins:");
      if (e.origin == "builtin") return absl::OkStatus();  // a loaded plugin keeps precedence
      it->second = std::move(e);                           // a plugin replaces the built-in
      return absl::OkStatus();
    }
    m.emplace(std::move(type), std::move(e));
    return absl::OkStatus();
  }
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() {
  // Factories first, then the modules that implement them.
  impl_->transports.clear();
  impl_->middleware.clear();
}

std::unique_ptr<Registry> Registry::with_builtins() {
  auto r = std::make_unique<Registry>();
  auto status = inproc::register_transport(*r);
  (void)status;  // cannot fail on an empty registry
  return r;
}

absl::Status Registry::add_transport(std::string type, TransportFactory factory) {
  return impl_->add(impl_->transports, "transport", std::move(type), Entry{std::move(factory), {}, {}});
}

absl::Status Registry::add_middleware(std::string type, MiddlewareFactory factory) {
  return impl_->add(impl_->middleware, "middleware", std::move(type), Entry{{}, std::move(factory), {}});
}

absl::Status Registry::load_plugin(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code fec;
  const fs::path p(path);
  if (!fs::exists(p, fec))
    return absl::NotFoundError("plugin file '" + path + "' does not exist; build it (cmake --build) or fix the path");
  if (fs::is_directory(p, fec)) return absl::InvalidArgumentError("plugin path '" + path + "' is a folder, not a module");
  const std::string absolute = fs::absolute(p, fec).lexically_normal().string();

  {
    std::ifstream in(p, std::ios::binary);
    char magic[4] = {};
    if (!in || !in.read(magic, 4))
      return absl::InvalidArgumentError("plugin file '" + path + "' is unreadable or too short to be a module; rebuild it");
    if (std::memcmp(magic, "\x7f" "ELF", 4) != 0)
      return absl::InvalidArgumentError("plugin file '" + path +
                                        "' is not a shared library (no ELF header): corrupt or not a module; rebuild it");
  }

  std::lock_guard lock(impl_->mutex);
  for (const auto& [loaded, _] : impl_->modules)
    if (loaded == absolute) return absl::OkStatus();  // already loaded: nothing to do

  boost::dll::shared_library lib;
  boost::dll::fs::error_code ec;
  ::dlerror();  // clear
  lib.load(boost::dll::fs::path(absolute), boost::dll::load_mode::default_mode, ec);
  if (ec || !lib.is_loaded()) {
    const char* why = ::dlerror();
    return absl::InvalidArgumentError("plugin file '" + path + "' could not be loaded: " +
                                      (why ? std::string(why) : ec.message()) + "; rebuild it against this patchbay");
  }
  if (!lib.has("patchbay_plugin_abi") || !lib.has("patchbay_plugin_register"))
    return absl::InvalidArgumentError("'" + path +
                                      "' is a shared library but not a patchbay plugin (it exports no "
                                      "patchbay_plugin_abi/patchbay_plugin_register; see docs/writing-a-transport.md)");
  const char* module_abi = lib.get<const char*()>("patchbay_plugin_abi")();
  if (module_abi == nullptr || std::strcmp(module_abi, abi_version()) != 0)
    return absl::FailedPreconditionError("plugin '" + path + "' was built for ABI '" +
                                         (module_abi ? module_abi : "(null)") + "' but this patchbay is '" +
                                         abi_version() + "'; rebuild the plugin against this patchbay");

  absl::Status status;
  const std::string* previous = loading_origin;
  loading_origin = &absolute;
  try {
    lib.get<void(Registry*, absl::Status*)>("patchbay_plugin_register")(this, &status);
  } catch (const std::exception& e) {
    status = absl::InternalError(std::string("plugin registration threw: ") + e.what());
  }
  loading_origin = previous;
  // Keep the module mapped even when registration failed half-way: some factory may be in.
  impl_->modules.emplace_back(absolute, std::move(lib));
  if (!status.ok())
    return absl::Status(status.code(), "plugin '" + path + "': " + std::string(status.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Transport>> Registry::make_transport(std::string_view type,
                                                                    const TransportContext& ctx) const {
  TransportFactory factory;
  {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->transports.find(type);
    if (it == impl_->transports.end())
      return absl::NotFoundError("unknown transport type '" + std::string(type) + "' (known: " +
                                 known_list(impl_->transports) +
                                 "); list the module that provides it under plugins:, or fix the type");
    factory = it->second.transport;
  }
  try {
    return factory(ctx);
  } catch (const std::exception& e) {
    return absl::InternalError("transport factory '" + std::string(type) + "' failed: " + e.what());
  }
}

absl::StatusOr<std::shared_ptr<Transport>> Registry::make_middleware(std::string_view type,
                                                                     const MiddlewareContext& ctx) const {
  MiddlewareFactory factory;
  {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->middleware.find(type);
    if (it == impl_->middleware.end())
      return absl::NotFoundError("unknown middleware type '" + std::string(type) + "' (known: " +
                                 known_list(impl_->middleware) +
                                 "); list the module that provides it under plugins:, or fix the type");
    factory = it->second.middleware;
  }
  try {
    return factory(ctx);
  } catch (const std::exception& e) {
    return absl::InternalError("middleware factory '" + std::string(type) + "' failed: " + e.what());
  }
}

bool Registry::has_transport(std::string_view type) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->transports.find(type) != impl_->transports.end();
}

std::vector<FactoryInfo> Registry::list() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<FactoryInfo> out;
  for (const auto& [name, e] : impl_->transports) out.push_back({FactoryInfo::kind::transport, name, e.origin});
  for (const auto& [name, e] : impl_->middleware) out.push_back({FactoryInfo::kind::middleware, name, e.origin});
  return out;
}

}  // namespace patchbay
