// patchbay/webhook/sender.hpp — webhook delivery from a hub: the durable outbox and the
// delivery engine behind the `http` transport's `webhooks:` section (docs/webhooks.md, "Sender").
//
// A Sender watches a Hub's publishes (Hub::set_publish_observer). For every message on a topic
// that endpoints subscribe to, it writes one outbox row per endpoint — in SQLite (WAL,
// synchronous=NORMAL: durable against a process crash) when `outbox` names a file, in an
// in-memory SQLite database otherwise (not durable) — before the publish returns, so an
// acknowledged publish is never lost. Each row is then POSTed to its endpoint with the Standard
// Webhooks headers (webhook-id = the message id on every attempt, webhook-timestamp,
// webhook-signature over every current secret of the endpoint), the message headers as HTTP
// fields and `Patchbay-Topic`.
//
// Delivery rules: 2xx is success (the row is deleted); anything else is a failure retried on
// `schedule` (each step is the delay after the previous failure, ±`jitter`); 3xx is a failure
// (redirects are not followed); 410 disables the endpoint and dead-letters what it had pending;
// 429 and 503 honour Retry-After (seconds or an HTTP-date) in place of the next step, capped at
// that step's longest jittered delay; every attempt is bounded by `timeout`. After the last step
// the message goes to the `dead_letter` topic of the hub with Patchbay-Webhook-* headers (endpoint,
// url, attempts, last error, original topic and id). Connections go only to addresses the SSRF
// policy accepted (patchbay/http/ssrf.hpp; `allow` lists the exceptions).
//
// Guarantees: at-least-once per endpoint (a crash between a 2xx and the row's deletion — deletions
// are committed in groups, within 20 ms — delivers again, with the same webhook-id: receivers
// deduplicate on it). Unordered endpoints have up to
// `max_concurrency` attempts in flight and no order; an `ordered` endpoint has one in flight and
// receives messages in outbox order, a failing message holding back the ones after it until it
// succeeds or is dead-lettered. Pending messages are kept in memory as well as in the outbox
// (payloads shared between endpoints).
//
// Thread safety: every member may be called from any thread. Locks: the hub's topic lock (the
// publish observer runs under it), then the sender's, then the outbox's; the sender never calls
// the hub while holding its own.
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/webhook_signature.hpp>

#include <absl/status/statusor.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace patchbay::http {
class Hub;
class Server;
}  // namespace patchbay::http

namespace patchbay::webhook {

using wall_clock = std::chrono::system_clock;

/// A re-armable wake-up made by a Clock: calls its callback once at (or after) the time last set.
class Alarm {
 public:
  virtual ~Alarm() = default;
  /// Replaces any earlier time. May be called from any thread.
  virtual void set(wall_clock::time_point when) = 0;
  virtual void cancel() = 0;
};

/// The sender's notion of time: the retry schedule and Retry-After run on it, so a test can
/// walk a schedule of hours in an instant (ManualClock). Attempt timeouts use real time.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual wall_clock::time_point now() const = 0;
  /// An alarm that calls `fire` (from any thread; it must only post or ring) when due.
  virtual std::unique_ptr<Alarm> make_alarm(executor ex, std::function<void()> fire) = 0;
};

/// The system clock, with Asio timers.
std::shared_ptr<Clock> system_clock();

/// A clock that moves only when told to (tests).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(wall_clock::time_point start = wall_clock::time_point(std::chrono::hours(24 * 365 * 50)));
  ~ManualClock() override;
  wall_clock::time_point now() const override;
  std::unique_ptr<Alarm> make_alarm(executor ex, std::function<void()> fire) override;
  /// Moves time forward and fires every alarm now due.
  void advance(wall_clock::duration d);
  /// The earliest armed alarm, if any.
  std::optional<wall_clock::time_point> next_alarm() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

/// One static endpoint (config `endpoints:`) or dynamic subscription.
struct EndpointSpec {
  std::string url;
  std::vector<std::string> topics;
  std::vector<http::webhook::Secret> secrets;  ///< signs with every one; the first is the current one
  std::optional<bool> ordered;                  ///< unset: SenderOptions::ordered
  std::size_t max_concurrency = 0;              ///< 0: SenderOptions::max_concurrency
};

struct SenderOptions {
  std::string outbox;  ///< SQLite file; empty: in memory (not durable)
  std::vector<std::chrono::milliseconds> schedule = {
      std::chrono::seconds(0),  std::chrono::seconds(5), std::chrono::minutes(5), std::chrono::minutes(30),
      std::chrono::hours(2),    std::chrono::hours(5),   std::chrono::hours(10),  std::chrono::hours(10)};
  double jitter = 0.1;                                  ///< each delay × (1 ± jitter), uniformly
  duration timeout = std::chrono::seconds(15);          ///< per attempt
  std::size_t max_concurrency = 8;                      ///< per endpoint
  bool ordered = false;                                 ///< per-endpoint default
  std::string dead_letter = "webhooks.dead";            ///< hub topic; empty: exhausted messages are dropped (logged)
  std::vector<std::string> allow;                       ///< SSRF allowlist (CIDRs)
  std::string api_token;                                ///< set: the API needs Authorization: Bearer <token>
  std::chrono::seconds rotation_overlap = std::chrono::hours(24);  ///< old secret keeps signing after a rotate
  std::vector<EndpointSpec> endpoints;                  ///< static subscriptions
  std::shared_ptr<Clock> clock;                         ///< null: system_clock()
  std::function<double()> random;                       ///< uniform in [0, 1); null: a seeded PRNG
  SenderOptions() {}
};

/// What the API and tests see of an endpoint.
struct EndpointInfo {
  std::string id;
  std::string url;
  std::vector<std::string> topics;
  bool ordered = false;
  std::size_t max_concurrency = 0;
  bool disabled = false;  ///< after a 410
  bool is_static = false; ///< from config
  std::size_t pending = 0;
};

struct SenderStats {
  std::uint64_t attempts = 0;
  std::uint64_t delivered = 0;
  std::uint64_t failed_attempts = 0;
  std::uint64_t dead_lettered = 0;
  std::size_t pending = 0;    ///< rows in the outbox
  std::size_t in_flight = 0;
  std::size_t recovered = 0;  ///< rows found in the outbox at start
};

class Outbox;

class Sender : public std::enable_shared_from_this<Sender> {
 public:
  /// Opens the outbox (errors name the file: corrupt, locked by another process, not an outbox,
  /// newer schema), checks the options and the static endpoints, reads the pending deliveries
  /// the outbox holds and starts recording the hub's publishes (so a publish acknowledged before
  /// start() is delivered too). Nothing is sent before start().
  static absl::StatusOr<std::shared_ptr<Sender>> create(executor ex, std::shared_ptr<http::Hub> hub,
                                                        SenderOptions options);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  /// Starts delivering, beginning with what the outbox holds.
  void start();
  /// Stops delivering (idempotent). Attempts in flight get up to `drain` to finish; the rows of
  /// those that do not are retried at the next start. Publishes keep being recorded until the
  /// hub stops.
  awaitable<void> stop(duration drain = std::chrono::seconds(5));

  /// Adds the subscriptions API (POST/GET /webhooks/subscriptions, GET/DELETE
  /// /webhooks/subscriptions/{id}, POST /webhooks/subscriptions/{id}/rotate) to `server`.
  void mount(http::Server& server);

  // The API as functions (tests, applications).
  struct Created {
    EndpointInfo info;
    std::string secret;  ///< whsec_...
  };
  /// Checks the URL (syntax, scheme, every resolved address against the SSRF policy) and stores
  /// the subscription. InvalidArgument naming the reason.
  awaitable<absl::StatusOr<Created>> subscribe(EndpointSpec spec);
  bool unsubscribe(std::string_view id);
  /// A new current secret; the old ones keep signing for rotation_overlap. NotFound for an unknown id.
  absl::StatusOr<std::string> rotate(std::string_view id);
  std::vector<EndpointInfo> endpoints() const;
  std::optional<EndpointInfo> endpoint(std::string_view id) const;

  SenderStats stats() const;
  const SenderOptions& options() const noexcept;

  struct Impl;

 private:
  void recover();  // create(): the outbox's pending deliveries, then the publish observer
  Sender() = default;
  std::shared_ptr<Impl> impl_;
};

/// For a hub without `webhooks:`: the API routes, answering 404 with a reason (so the
/// documented routes exist on every hub).
void mount_disabled_api(http::Server& server);

/// "5s", "250ms", "2m", "1h", "1d" or plain seconds (config lists such as `schedule:`).
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace patchbay::webhook
