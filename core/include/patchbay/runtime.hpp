// patchbay/runtime.hpp — config → plugins → transports → bindings, and the threads that run them.
//
//     auto rt = patchbay::Runtime::create({.config_file = "patchbay.yaml"});   // or {} for inproc
//     if (!rt.ok()) { std::cerr << rt.status() << "\n"; return 2; }
//     co_spawn((*rt)->get_executor(), my_service(**rt), detached);
//     (*rt)->run();   // until SIGINT/SIGTERM or stop()
//
// Threading model: one io_context run by `threads` threads (config, default: the number of
// cores, at least 2). Application coroutines and transports share it; transports that wrap
// blocking client libraries bridge them to it without blocking its threads.
//
// Graceful stop (stop(), SIGINT, SIGTERM): every transport's stop() runs (they refuse new
// work and drain in-flight deliveries, bounded by `drain_timeout`), then the io_context
// stops and its threads are joined. Coroutines still suspended then are destroyed, which
// nacks any Delivery they held, so no acknowledged message is lost.
// Lifetime: Topic and Service handles must not outlive their Runtime: a transport loaded from
// a plugin module is code of that module, which the Runtime unloads when it is destroyed.
// Thread safety: topic(), service(), stop() and get_executor() may be called from any thread;
// wait() and run() must not be called from one of the runtime's own threads.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/config.hpp>
#include <patchbay/registry.hpp>
#include <patchbay/service.hpp>
#include <patchbay/topic.hpp>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace patchbay {

struct RuntimeOptions {
  /// A YAML file; when neither this nor `config_text` is given: the embedded default.
  std::optional<std::string> config_file;
  /// YAML text (tests); relative plugin paths are taken from the current folder.
  std::optional<std::string> config_text;
  /// Overrides `threads:` from the config when non-zero.
  int threads = 0;
  /// Stop on SIGINT and SIGTERM while run() or wait() is blocking.
  bool handle_signals = true;
  /// Factories to use; default: Registry::with_builtins().
  std::unique_ptr<Registry> registry;
};

/// One binding as resolved at start-up (for `patchbay check`).
struct BindingInfo {
  std::string name;
  std::string wire_name;
  std::string transport;       ///< transport key in the config
  std::string transport_type;  ///< its type
  std::string origin;          ///< "builtin" or the module path its factory came from
  Features features;
  std::vector<std::string> middleware;
};

class Runtime {
 public:
  /// Reads the config, loads plugins, builds transports and bindings and checks every
  /// `require:`. All problems found are reported together, one per line, each with its
  /// file:line:column. Starts nothing yet.
  static absl::StatusOr<std::unique_ptr<Runtime>> create(RuntimeOptions options = {});

  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// A new strand on the runtime's io_context. Spawn each application coroutine on its own
  /// get_executor(): a coroutine is then never resumed on two threads at once, which Asio
  /// requires wherever cancellation is used (deadlines, `||`, Stream::timeout), while separate
  /// coroutines still run in parallel on the runtime's threads.
  executor get_executor() const;

  /// The handle for a binding name. A name without a binding uses the default transport.
  Topic topic(std::string_view name) const;
  Service service(std::string_view name) const;

  /// Starts the io threads and every transport; returns once all have started.
  absl::Status start();
  /// Blocks until stop() or a signal, then stops gracefully (see above).
  void wait();
  /// start() then wait().
  absl::Status run();
  /// Requests a graceful stop; idempotent; callable from any thread or coroutine.
  void stop();

  /// Whether stop() was requested.
  bool stopping() const;

  const Config& config() const;
  std::vector<BindingInfo> bindings() const;
  const Registry& registry() const;

 private:
  struct Impl;
  explicit Runtime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace patchbay
