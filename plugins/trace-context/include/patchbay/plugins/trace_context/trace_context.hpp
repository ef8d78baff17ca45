// patchbay/plugins/trace_context/trace_context.hpp — W3C trace-context propagation.
//
// The `trace-context` middleware carries a W3C `traceparent` header (and `tracestate`) on
// every message of a binding, end to end across every transport that carries headers:
//
//   - outgoing (publish, request): a valid `traceparent` already on the message is continued
//     (same trace id, a new parent id for this hop); otherwise the current context (below) is
//     continued; otherwise a new trace starts (version 00, random trace id and parent id, the
//     sampled flag as configured). A malformed `traceparent` is replaced, and a `tracestate`
//     that is malformed or belongs to a replaced `traceparent` is dropped (W3C rules).
//   - incoming (deliveries, served calls): the message's context is validated the same way (a
//     malformed or missing one is replaced by a new trace, written into the message's headers)
//     and made current for the handler: a served call's handler runs with it as `current()` on
//     every thread it resumes on (its coroutine is run on an executor that installs it), so a
//     publish or request from inside the handler continues the same trace. For a delivery, run
//     the work with `within(delivery.message(), work)` for the same effect, or copy the headers
//     with `continue_trace(delivery.message(), out)`.
//
//     bindings:
//       orders:
//         transport: bus
//         middleware:
//           - type: trace-context
//             sampled: true     # flag of traces this binding starts (default true)
//
// `current()`, `Scope` and `within()` act on the middleware's code in this program: with the
// middleware loaded as a module, the module has its own copy of them (still used by the
// middleware itself for the handler → publish continuation), and the application's calls to
// this header see only linked-in middleware.
// Thread safety: TraceContext is a value; current() is per thread.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/message.hpp>
#include <patchbay/registry.hpp>

#include <absl/status/status.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace patchbay::plugins::trace_context {

inline constexpr std::string_view kTraceparent = "traceparent";
inline constexpr std::string_view kTracestate = "tracestate";

struct TraceContext {
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> parent_id{};
  std::uint8_t flags = 0;   ///< bit 0: sampled (the only flag version 00 defines)
  std::string tracestate;   ///< validated, or empty

  bool sampled() const noexcept { return flags & 1; }
  std::string trace_id_hex() const;
  std::string parent_id_hex() const;
  /// "00-<trace id>-<parent id>-<flags>".
  std::string traceparent() const;

  /// A new trace: random trace id and parent id.
  static TraceContext generate(bool sampled);
  /// The same trace and flags with a new random parent id (the next hop).
  TraceContext child() const;

  /// Parses a `traceparent` value per W3C Trace Context level 1: version 00 exactly, or a
  /// later version (not ff) whose first four fields have the version-00 shape; lowercase hex;
  /// trace id and parent id not all zero. std::nullopt when invalid. `tracestate` is kept only
  /// when valid (at most 32 list members of key=value).
  static std::optional<TraceContext> parse(std::string_view traceparent, std::string_view tracestate = {});
  /// The context a message carries, if its headers hold a valid one.
  static std::optional<TraceContext> from(const Message& msg);

  friend bool operator==(const TraceContext&, const TraceContext&) = default;
};

/// Whether `tracestate` is a valid W3C tracestate list.
bool valid_tracestate(std::string_view tracestate);

/// The context of the call or delivery being handled on this thread (see the file comment).
std::optional<TraceContext> current();

/// Makes `ctx` current on this thread until destroyed. Do not keep one across a co_await (the
/// coroutine may resume on another thread); use within() for that.
class Scope {
 public:
  explicit Scope(std::optional<TraceContext> ctx);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  std::optional<TraceContext> previous_;
};

/// Runs `work` with `ctx` current at every step (on an executor that installs it around each
/// resumption of the coroutine) and returns its result.
awaitable<void> within(TraceContext ctx, awaitable<void> work);
awaitable<Message> within(TraceContext ctx, awaitable<Message> work);
/// The same with the context `incoming` carries (a new trace when it has none).
awaitable<void> within(const Message& incoming, awaitable<void> work);

/// Copies the trace-context headers of `from` onto `to` (the middleware then makes the next hop).
void continue_trace(const Message& from, Message& to);

/// Registers the factory for `type: trace-context`.
absl::Status register_middleware(Registry& registry);

}  // namespace patchbay::plugins::trace_context
