// patchbay/config.hpp — the YAML configuration and its strict, located validation.
//
// One YAML file describes plugins, transports and bindings (docs/config.md has the reference):
//
//     plugins: [ ./libpatchbay_inproc_module.so ]
//     threads: 2
//     transports:
//       bus: { type: inproc, history: 1024 }
//     bindings:
//       ticks: { transport: bus, require: [ordered, replay] }
//
// `${VAR}` and `${VAR:-default}` in any scalar are replaced from the environment. Every error
// names file:line:column and what to do. Unknown keys are errors: a transport or middleware
// factory reads its settings through config::Node, which records each key it asks for; any
// key it did not ask for is reported afterwards as unknown, with the keys it knows.
//
// Thread safety: none; configuration is read at start-up on one thread.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace YAML {
class Node;
}

namespace patchbay::config {

/// A place in a config file; line and column are 1-based (0 when unknown).
struct Mark {
  std::string file;
  int line = 0;
  int column = 0;
  /// "file:line:column" (or just the file name when the place is unknown).
  std::string str() const;
};

/// Builds "file:line:column: what" as an InvalidArgument status.
absl::Status error_at(const Mark& mark, std::string_view what);

/// A mapping in the config (a transport's or middleware's settings) that remembers which
/// keys were read. Copies share that record.
class Node {
 public:
  Node();  // an empty mapping with no place
  Node(const YAML::Node& yaml, std::string file, std::string context);
  ~Node();
  Node(const Node&);
  Node& operator=(const Node&);

  /// Where this mapping starts, and the place of one of its keys (of the mapping if absent).
  Mark mark() const;
  Mark mark_of(std::string_view key) const;

  /// "transport 'bus'", "middleware 'headers' of binding 'ticks'": used in error messages.
  const std::string& context() const noexcept { return context_; }

  /// Whether the key is present (and marks it as known).
  bool has(std::string_view key) const;

  /// Typed reads: a missing key gives `fallback`; a value of the wrong type gives an error at
  /// the value's place. Durations are written as "250ms", "5s", "2m", "1h" or plain seconds.
  absl::StatusOr<std::string> get_string(std::string_view key, std::string fallback) const;
  absl::StatusOr<bool> get_bool(std::string_view key, bool fallback) const;
  absl::StatusOr<std::int64_t> get_int(std::string_view key, std::int64_t fallback, std::int64_t min = INT64_MIN,
                                       std::int64_t max = INT64_MAX) const;
  absl::StatusOr<double> get_double(std::string_view key, double fallback) const;
  absl::StatusOr<std::chrono::milliseconds> get_duration(std::string_view key, std::chrono::milliseconds fallback) const;
  absl::StatusOr<std::vector<std::string>> get_string_list(std::string_view key, std::vector<std::string> fallback) const;
  /// One of `choices`; anything else is an error listing them.
  absl::StatusOr<std::string> get_choice(std::string_view key, std::string fallback,
                                         const std::vector<std::string>& choices) const;
  /// A required string.
  absl::StatusOr<std::string> require_string(std::string_view key) const;
  /// A nested mapping (empty Node when absent).
  absl::StatusOr<Node> get_map(std::string_view key) const;

  /// Keys present in the mapping that nobody asked for, each as an error naming the keys
  /// that were asked for. OK when there are none.
  absl::Status check_unknown_keys() const;

  /// Marks keys as known without reading them (e.g. `type`, read by the runtime).
  void accept(std::initializer_list<std::string_view> keys) const;

  /// The underlying YAML (for factories with structured settings).
  const YAML::Node& yaml() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::string context_;
};

struct PluginSpec {
  std::string path;  ///< as written, after ${VAR} substitution
  std::string resolved_path;  ///< relative paths are taken from the config file's folder
  Mark mark;
};

struct MiddlewareSpec {
  std::string type;
  Node settings;  ///< the middleware's mapping, with `type` accepted
  Mark mark;
};

struct TransportSpec {
  std::string name;
  std::string type;
  Node settings;  ///< the transport's mapping, with `type` accepted
  Mark mark;
};

struct BindingSpec {
  std::string name;       ///< what the application asks for: runtime.topic(name)
  std::string wire_name;  ///< the topic or service name on the wire (`name:`; defaults to name)
  std::string transport;  ///< a key of `transports`
  std::vector<std::string> require;
  std::vector<MiddlewareSpec> middleware;
  Mark mark;
  Mark transport_mark;
  Mark require_mark;
};

struct Config {
  std::string file;                    ///< "<embedded default>" when there is no file
  std::vector<PluginSpec> plugins;
  std::vector<TransportSpec> transports;
  std::vector<BindingSpec> bindings;
  std::string default_transport;       ///< transport for names without a binding; empty: embedded inproc
  Mark default_transport_mark;
  int threads = 0;                     ///< io_context threads; 0: the number of cores (at least 2)
  std::chrono::milliseconds drain_timeout{5000};  ///< how long stop() waits for in-flight work

  /// No config at all: every name on one in-process transport.
  static Config embedded_default();

  /// Parses and validates the structure (unknown keys, wrong types, env substitution).
  /// Every structural problem is reported, one per line, in the returned status.
  static absl::StatusOr<Config> load_file(const std::string& path);
  static absl::StatusOr<Config> parse(std::string_view text, std::string file_name = "<string>",
                                      std::string base_dir = ".");
};

/// Replaces ${VAR} and ${VAR:-default} in `text` from the environment. An unset VAR without a
/// default is an error; `$${` is a literal `${`.
absl::StatusOr<std::string> expand_env(std::string_view text);

}  // namespace patchbay::config

namespace patchbay {
using Config = config::Config;
}  // namespace patchbay
