// The webhook sender: publish observer → outbox rows → per-endpoint dispatchers → attempts on
// the HTTP client core (see patchbay/webhook/sender.hpp).
//
// Each endpoint has one dispatcher coroutine on a strand of its own. It starts the attempts
// that are due (unordered: the earliest due first, up to max_concurrency in flight; ordered:
// only the oldest message, one at a time), arms the endpoint's Alarm for the next due time and
// waits on the endpoint's Doorbell, which the observer (new rows), the attempts (a slot freed,
// a retry scheduled), the alarm and stop() ring. Attempts run on the same strand; their I/O
// runs on the client's connection strands.
#include <patchbay/webhook/sender.hpp>

#include "outbox.hpp"

#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/http/hub.hpp>
#include <patchbay/http/message_fields.hpp>
#include <patchbay/http/server.hpp>
#include <patchbay/http/ssrf.hpp>

#include <absl/strings/str_cat.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <ctime>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>

namespace patchbay::webhook {

namespace bhttp = boost::beast::http;
using namespace std::chrono_literals;
using http::webhook::Secret;

namespace {

std::int64_t to_ms(wall_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
wall_clock::time_point from_ms(std::int64_t ms) { return wall_clock::time_point(std::chrono::milliseconds(ms)); }

void log_line(std::string_view text) { std::cerr << "patchbay webhooks: " << text << "\n"; }

std::string hex(const unsigned char* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 15]);
  }
  return out;
}

std::string random_id() {
  unsigned char b[12];
  RAND_bytes(b, sizeof b);
  return "ep_" + hex(b, sizeof b);
}

/// A static endpoint's id: stable across restarts (its pending rows find it again).
std::string static_id(std::string_view url) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(url.data()), url.size(), d);
  return "static_" + hex(d, 8);
}

/// A header value HTTP (and put_message_headers) accepts: no control characters, trimmed, short.
std::string header_safe(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 512)) out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  while (!out.empty() && out.front() == ' ') out.erase(out.begin());
  return out;
}

/// Retry-After: delta seconds or an HTTP-date (IMF-fixdate), relative to `now`.
std::optional<wall_clock::duration> parse_retry_after(std::string_view v, wall_clock::time_point now) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  std::uint64_t seconds = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), seconds);
  if (r.ec == std::errc() && r.ptr == v.data() + v.size()) return std::chrono::seconds(std::min<std::uint64_t>(seconds, 1u << 30));
  std::tm tm{};
  const std::string s(v);
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end) return std::nullopt;
  const auto at = wall_clock::from_time_t(timegm(&tm));
  return at > now ? at - now : wall_clock::duration::zero();
}

// --- clocks ---------------------------------------------------------------------------------

class SystemAlarm final : public Alarm {
 public:
  SystemAlarm(executor ex, std::function<void()> fire) : s_(std::make_shared<S>(std::move(ex), std::move(fire))) {}
  ~SystemAlarm() override { cancel(); }
  void set(wall_clock::time_point when) override {
    asio::post(s_->strand, [s = s_, when] {
      if (s->cancelled) return;
      s->timer.expires_at(when);
      s->timer.async_wait([s](boost::system::error_code ec) {
        if (!ec && !s->cancelled) s->fire();
      });
    });
  }
  void cancel() override {
    asio::post(s_->strand, [s = s_] {
      s->cancelled = true;
      s->timer.cancel();
    });
  }

 private:
  struct S {
    S(executor ex, std::function<void()> f) : strand(asio::make_strand(ex)), timer(strand), fire(std::move(f)) {}
    asio::strand<executor> strand;
    asio::system_timer timer;
    std::function<void()> fire;
    bool cancelled = false;
  };
  std::shared_ptr<S> s_;
};

class SystemClock final : public Clock {
 public:
  wall_clock::time_point now() const override { return wall_clock::now(); }
  std::unique_ptr<Alarm> make_alarm(executor ex, std::function<void()> fire) override {
    return std::make_unique<SystemAlarm>(std::move(ex), std::move(fire));
  }
};

}  // namespace

std::shared_ptr<Clock> system_clock() {
  static auto clock = std::make_shared<SystemClock>();
  return clock;
}

struct ManualClock::State {
  struct AlarmState {
    std::optional<wall_clock::time_point> when;
    std::function<void()> fire;
  };
  mutable std::mutex mu;
  wall_clock::time_point now;
  std::vector<std::weak_ptr<AlarmState>> alarms;
};

namespace {
class ManualAlarm final : public Alarm {
 public:
  ManualAlarm(std::shared_ptr<ManualClock::State> clock, std::shared_ptr<ManualClock::State::AlarmState> a)
      : clock_(std::move(clock)), a_(std::move(a)) {}
  ~ManualAlarm() override { cancel(); }
  void set(wall_clock::time_point when) override {
    bool due = false;
    {
      std::lock_guard lock(clock_->mu);
      if (when <= clock_->now) {
        a_->when.reset();
        due = true;
      } else {
        a_->when = when;
      }
    }
    if (due && a_->fire) a_->fire();
  }
  void cancel() override {
    std::lock_guard lock(clock_->mu);
    a_->when.reset();
  }

 private:
  std::shared_ptr<ManualClock::State> clock_;
  std::shared_ptr<ManualClock::State::AlarmState> a_;
};
}  // namespace

ManualClock::ManualClock(wall_clock::time_point start) : state_(std::make_shared<State>()) { state_->now = start; }
ManualClock::~ManualClock() = default;

wall_clock::time_point ManualClock::now() const {
  std::lock_guard lock(state_->mu);
  return state_->now;
}

std::unique_ptr<Alarm> ManualClock::make_alarm(executor, std::function<void()> fire) {
  auto a = std::make_shared<State::AlarmState>();
  a->fire = std::move(fire);
  std::lock_guard lock(state_->mu);
  std::erase_if(state_->alarms, [](const auto& w) { return w.expired(); });
  state_->alarms.push_back(a);
  return std::make_unique<ManualAlarm>(state_, a);
}

void ManualClock::advance(wall_clock::duration d) {
  std::vector<std::shared_ptr<State::AlarmState>> due;
  {
    std::lock_guard lock(state_->mu);
    state_->now += d;
    for (auto& w : state_->alarms) {
      if (auto a = w.lock(); a && a->when && *a->when <= state_->now) {
        a->when.reset();
        due.push_back(std::move(a));
      }
    }
  }
  for (auto& a : due)
    if (a->fire) a->fire();
}

std::optional<wall_clock::time_point> ManualClock::next_alarm() const {
  std::lock_guard lock(state_->mu);
  std::optional<wall_clock::time_point> best;
  for (const auto& w : state_->alarms) {
    if (auto a = w.lock(); a && a->when && (!best || *a->when < *best)) best = a->when;
  }
  return best;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  double value = 0;
  const char* end = text.data() + text.size();
  // from_chars for double is in libstdc++ 12.
  auto r = std::from_chars(text.data(), end, value);
  if (r.ec != std::errc() || value < 0) return std::nullopt;
  const std::string_view unit(r.ptr, static_cast<std::size_t>(end - r.ptr));
  double ms = 0;
  if (unit.empty() || unit == "s") ms = value * 1000;
  else if (unit == "ms") ms = value;
  else if (unit == "m" || unit == "min") ms = value * 60'000;
  else if (unit == "h") ms = value * 3'600'000;
  else if (unit == "d") ms = value * 86'400'000;
  else return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

// --- the sender -------------------------------------------------------------------------------

namespace {

struct Stored {
  std::int64_t id = 0;  // outbox message row
  Message message;
};

struct Pending {
  std::int64_t row = 0;  // outbox delivery row
  std::shared_ptr<const Stored> msg;
  int attempts = 0;
  wall_clock::time_point next_at;
  std::string last_error;
  bool in_flight = false;
};

struct SigningSecret {
  Secret secret;
  std::int64_t until_ms = 0;  // 0: current
};

struct EndpointState {
  explicit EndpointState(executor ex) : strand(asio::make_strand(ex)), bell(strand) {}
  std::string id;
  std::string url;
  std::vector<std::string> topics;
  std::vector<SigningSecret> secrets;  // current first
  bool ordered_set = false;
  bool ordered = false;
  std::size_t max_concurrency = 0;  // as configured (0: default)
  std::size_t limit = 1;            // effective
  bool disabled = false;
  bool is_static = false;
  bool removed = false;
  std::int64_t created_ms = 0;

  std::map<std::int64_t, Pending> items;               // by outbox message row: outbox order
  std::set<std::pair<wall_clock::time_point, std::int64_t>> waiting;  // unordered: not in flight, by due time
  std::size_t in_flight = 0;
  std::map<std::uint64_t, std::shared_ptr<asio::cancellation_signal>> attempts;  // on `strand`

  asio::strand<executor> strand;
  Doorbell bell;
  std::unique_ptr<Alarm> alarm;
  std::optional<wall_clock::time_point> alarm_at;  // on `strand`
  bool dispatching = false;

  bool subscribes(std::string_view topic) const { return std::find(topics.begin(), topics.end(), topic) != topics.end(); }
};
using EndpointPtr = std::shared_ptr<EndpointState>;

std::string secrets_json(const std::vector<SigningSecret>& secrets) {
  boost::json::array a;
  for (const auto& s : secrets) a.push_back(boost::json::object{{"secret", s.secret.to_string()}, {"until_ms", s.until_ms}});
  return boost::json::serialize(a);
}

std::vector<SigningSecret> parse_secrets_json(std::string_view text) {
  std::vector<SigningSecret> out;
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& e : v.as_array()) {
    if (!e.is_object()) continue;
    const auto* s = e.as_object().if_contains("secret");
    const auto* u = e.as_object().if_contains("until_ms");
    if (!s || !s->is_string()) continue;
    auto secret = Secret::parse(std::string_view(s->as_string()));
    if (!secret.ok()) continue;
    out.push_back({*secret, u && u->is_int64() ? u->as_int64() : 0});
  }
  return out;
}

/// ClientOptions::resolve: every address checked against the SSRF policy.
awaitable<std::vector<asio::ip::tcp::endpoint>> resolve_checked_endpoints(std::shared_ptr<const http::ssrf::Policy> policy,
                                                                         std::string host, unsigned short port, bool tls) {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  const std::string url = absl::StrCat(tls ? "https://" : "http://", h, ":", port, "/");
  auto r = co_await http::ssrf::resolve_checked(url, *policy);
  if (!r.ok()) {
    throw boost::system::system_error(make_error_code(errc::unavailable), std::string(r.status().message()));
  }
  co_return *std::move(r);
}

}  // namespace

struct Sender::Impl : std::enable_shared_from_this<Sender::Impl> {
  Impl(executor e, std::shared_ptr<http::Hub> h, SenderOptions o, http::ClientOptions client_options)
      : ex(std::move(e)),
        hub(std::move(h)),
        options(std::move(o)),
        client(ex, std::move(client_options)),
        flush_strand(asio::make_strand(ex)),
        flush_bell(flush_strand) {}

  executor ex;
  std::shared_ptr<http::Hub> hub;
  SenderOptions options;
  std::shared_ptr<Clock> clock;
  std::shared_ptr<const http::ssrf::Policy> policy;
  std::unique_ptr<Outbox> outbox;
  http::Client client;

  mutable std::mutex mu;
  std::map<std::string, EndpointPtr, std::less<>> endpoints;
  std::mt19937_64 rng{std::random_device{}()};  // under mu
  bool started = false;
  std::atomic<bool> stopped{false};

  std::atomic<std::uint64_t> attempts{0}, delivered{0}, failed{0}, dead{0};
  std::atomic<std::size_t> in_flight{0};
  std::atomic<std::uint64_t> next_attempt_id{0};
  std::size_t recovered = 0;
  // Deleting delivered rows is committed in groups (Outbox::remove_deferred): with the next
  // publish's transaction, or by the flusher 20 ms after the first of a group.
  asio::strand<executor> flush_strand;
  Doorbell flush_bell;

  static awaitable<void> flusher(std::shared_ptr<Impl> self) {
    asio::steady_timer t(self->flush_strand);
    while (!self->stopped) {
      co_await self->flush_bell.wait();
      t.expires_after(std::chrono::milliseconds(20));
      co_await t.async_wait(asio::use_awaitable_t<executor>{});
      self->flush_outbox();
    }
  }
  void flush_outbox() {
    try {
      outbox->flush();
    } catch (const std::exception& e) {
      log_line(e.what());
    }
  }

  double random01() {  // under mu
    if (options.random) return options.random();
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }

  /// The delay before attempt number `attempts` + 1 (attempts >= 1), with jitter.
  wall_clock::duration step_delay(int attempts_made) {  // under mu
    const auto base = options.schedule[static_cast<std::size_t>(attempts_made)];
    const double factor = 1.0 + options.jitter * (2.0 * random01() - 1.0);
    return std::chrono::duration_cast<wall_clock::duration>(
        std::chrono::duration<double, std::milli>(static_cast<double>(base.count()) * factor));
  }
  wall_clock::duration step_max(int attempts_made) const {
    const auto base = options.schedule[static_cast<std::size_t>(attempts_made)];
    return std::chrono::duration_cast<wall_clock::duration>(
        std::chrono::duration<double, std::milli>(static_cast<double>(base.count()) * (1.0 + options.jitter)));
  }

  EndpointPtr make_endpoint() {
    auto ep = std::make_shared<EndpointState>(ex);
    std::weak_ptr<EndpointState> weak = ep;
    ep->alarm = clock->make_alarm(ep->strand, [weak] {
      if (auto e = weak.lock()) e->bell.ring();
    });
    return ep;
  }

  void configure(EndpointState& ep) const {
    ep.ordered = ep.ordered_set ? ep.ordered : options.ordered;
    ep.limit = ep.ordered ? 1 : std::max<std::size_t>(1, ep.max_concurrency ? ep.max_concurrency : options.max_concurrency);
  }

  OutboxEndpoint record(const EndpointState& ep) const {
    OutboxEndpoint r;
    r.id = ep.id;
    r.url = ep.url;
    r.topics = ep.topics;
    r.secrets_json = secrets_json(ep.secrets);
    r.ordered = ep.ordered_set ? (ep.ordered ? 1 : 0) : -1;
    r.max_concurrency = static_cast<std::int64_t>(ep.max_concurrency);
    r.disabled = ep.disabled;
    r.created_ms = ep.created_ms;
    return r;
  }

  EndpointInfo info(const EndpointState& ep) const {
    EndpointInfo i;
    i.id = ep.id;
    i.url = ep.url;
    i.topics = ep.topics;
    i.ordered = ep.ordered;
    i.max_concurrency = ep.limit;
    i.disabled = ep.disabled;
    i.is_static = ep.is_static;
    i.pending = ep.items.size();
    return i;
  }

  // The publish observer: runs under the hub's topic lock.
  void on_publish(const http::HubEntry& entry) {
    const Message& m = entry.message;
    std::lock_guard lock(mu);
    std::vector<EndpointState*> targets;
    std::vector<std::string> ids;
    for (auto& [id, ep] : endpoints) {
      if (!ep->disabled && !ep->removed && ep->subscribes(m.topic)) {
        targets.push_back(ep.get());
        ids.push_back(id);
      }
    }
    if (targets.empty()) return;
    const auto now = clock->now();
    std::vector<std::int64_t> rows;
    auto stored = std::make_shared<Stored>();
    stored->message = m;
    stored->id = outbox->add(m, entry.position, ids, to_ms(now), rows);  // throws: the publish fails
    for (std::size_t i = 0; i < targets.size(); ++i) add_pending(*targets[i], Pending{rows[i], stored, 0, now, {}, false});
  }

  void add_pending(EndpointState& ep, Pending p) {  // under mu
    const auto key = p.msg->id;
    const auto due = p.next_at;
    ep.items.emplace(key, std::move(p));
    if (!ep.ordered) ep.waiting.emplace(due, key);
    ep.bell.ring();
  }

  void spawn_dispatcher(const EndpointPtr& ep) {  // under mu
    if (ep->dispatching || !started || stopped) return;
    ep->dispatching = true;
    // Posted: co_spawn may start the coroutine inline, and it takes mu, which the caller holds.
    asio::post(ep->strand, [self = shared_from_this(), ep] {
      asio::co_spawn(ep->strand, dispatch(self, ep), asio::detached);
    });
  }

  /// What the dispatcher does next (under mu): the attempts to start and when to look again.
  /// False once it should end.
  bool plan(EndpointState& ep, wall_clock::time_point now, std::vector<std::int64_t>& start,
            std::optional<wall_clock::time_point>& wake) {
    std::lock_guard lock(mu);
    if (stopped || ep.removed) {
      ep.dispatching = false;
      return false;
    }
    if (!ep.disabled) {
      if (ep.ordered) {
        if (!ep.items.empty() && ep.in_flight == 0) {
          auto& [key, head] = *ep.items.begin();
          if (head.next_at <= now) {
            head.in_flight = true;
            start.push_back(key);
          } else {
            wake = head.next_at;
          }
        }
      } else {
        while (ep.in_flight + start.size() < ep.limit && !ep.waiting.empty() && ep.waiting.begin()->first <= now) {
          const auto key = ep.waiting.begin()->second;
          ep.waiting.erase(ep.waiting.begin());
          auto it = ep.items.find(key);
          if (it == ep.items.end()) continue;
          it->second.in_flight = true;
          start.push_back(key);
        }
        if (ep.in_flight + start.size() < ep.limit && !ep.waiting.empty()) wake = ep.waiting.begin()->first;
      }
    }
    ep.in_flight += start.size();
    in_flight += start.size();
    return true;
  }

  // No lock_guard in coroutine scopes (GCC 12): the locked parts are plain functions.
  static awaitable<void> dispatch(std::shared_ptr<Impl> self, EndpointPtr ep) {
    for (;;) {
      std::vector<std::int64_t> start;
      std::optional<wall_clock::time_point> wake;
      const auto now = self->clock->now();
      if (!self->plan(*ep, now, start, wake)) break;
      for (auto key : start) {
        const auto id = ++self->next_attempt_id;
        auto signal = std::make_shared<asio::cancellation_signal>();
        ep->attempts.emplace(id, signal);
        asio::co_spawn(ep->strand, attempt(self, ep, key, id), asio::bind_cancellation_slot(signal->slot(), asio::detached));
      }
      if (wake && (!ep->alarm_at || *ep->alarm_at != *wake || *ep->alarm_at <= now)) {
        ep->alarm_at = wake;
        ep->alarm->set(*wake);
      }
      co_await ep->bell.wait();
    }
    ep->alarm->cancel();
  }

  /// The delivery as it stands, and the secrets that sign now (under mu).
  void snapshot(EndpointState& ep, std::int64_t key, wall_clock::time_point now, Pending& p, std::string& url,
                std::vector<Secret>& secrets) {
    std::lock_guard lock(mu);
    auto it = ep.items.find(key);
    if (it != ep.items.end()) p = it->second;
    url = ep.url;
    for (const auto& s : ep.secrets)
      if (s.until_ms == 0 || s.until_ms > to_ms(now)) secrets.push_back(s.secret);
  }

  /// Signs and POSTs one delivery; then success, retry, dead letter or disable.
  static awaitable<void> attempt(std::shared_ptr<Impl> self, EndpointPtr ep, std::int64_t key, std::uint64_t id) {
    Pending p;
    std::string url;
    std::vector<Secret> secrets;
    const auto now = self->clock->now();
    self->snapshot(*ep, key, now, p, url, secrets);
    unsigned status = 0;
    std::string error;
    std::string retry_after;
    bool permanent = false;
    bool aborted = false;
    if (p.msg) {
      const Message& m = p.msg->message;
      http::Request req{bhttp::verb::post, "/", 11};
      try {
        http::put_message_headers(m, req.base());
      } catch (const std::exception& e) {
        error = absl::StrCat("the message's headers cannot be sent over HTTP: ", e.what());
        permanent = true;
      }
      if (!permanent) {
        for (std::string_view f : {http::webhook::kIdField, http::webhook::kTimestampField, http::webhook::kSignatureField,
                                   std::string_view("Patchbay-Topic")})
          req.erase(f);
        if (req.find(bhttp::field::content_type) == req.end()) req.set(bhttp::field::content_type, "application/octet-stream");
        const auto ts = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
        req.set(http::webhook::kIdField, m.id);
        req.set(http::webhook::kTimestampField, std::to_string(ts));
        req.set(http::webhook::kSignatureField, http::webhook::signature_header(secrets, m.id, ts, m.payload.view()));
        req.set("Patchbay-Topic", m.topic);
        req.body() = m.payload.str();
        self->attempts.fetch_add(1, std::memory_order_relaxed);
        try {
          auto res = co_await self->client.request(url, std::move(req), clock::now() + self->options.timeout);
          status = res.result_int();
          retry_after = std::string(res[bhttp::field::retry_after]);
          if (status / 100 != 2) {
            error = absl::StrCat("HTTP ", status);
            if (!res.body().empty()) absl::StrAppend(&error, ": ", res.body().substr(0, 200));
          }
        } catch (const boost::system::system_error& e) {
          if (e.code() == asio::error::operation_aborted) aborted = true;
          error = e.code() == make_error_code(errc::timed_out)
                      ? absl::StrCat("timed out after ",
                                     std::chrono::duration_cast<std::chrono::milliseconds>(self->options.timeout).count(),
                                     " ms (", e.what(), ")")
                      : std::string(e.what());
        } catch (const std::exception& e) {
          error = e.what();
        }
      }
    }
    self->finish(ep, key, id, std::move(p), status, std::move(error), retry_after, permanent, aborted);
  }

  void finish(const EndpointPtr& ep, std::int64_t key, std::uint64_t id, Pending p, unsigned status,
                         std::string error, const std::string& retry_after, bool permanent, bool aborted) {
    ep->attempts.erase(id);
    std::vector<Pending> dead_letters;
    std::string dead_reason;
    {
      std::lock_guard lock(mu);
      --ep->in_flight;
      --in_flight;
      auto it = ep->items.find(key);
      if (!p.msg || it == ep->items.end()) {
        // Unsubscribed meanwhile.
      } else if (aborted && stopped) {
        it->second.in_flight = false;  // cut by stop(): the row stays as it was, retried at the next start
      } else if (!permanent && status / 100 == 2) {
        ep->items.erase(it);
        delivered.fetch_add(1, std::memory_order_relaxed);
        try {
          outbox->remove_deferred(p.row, p.msg->id);
        } catch (const std::exception& e) {
          log_line(e.what());
        }
        flush_bell.ring();
      } else if (status == 410) {
        failed.fetch_add(1, std::memory_order_relaxed);
        ep->disabled = true;
        dead_reason = absl::StrCat("endpoint disabled: ", error);
        if (!ep->is_static) {
          try {
            outbox->save_endpoint(record(*ep));
          } catch (const std::exception& e) {
            log_line(e.what());
          }
        }
        log_line(absl::StrCat("endpoint ", ep->id, " (", ep->url, ") answered 410 Gone: disabled"));
        it->second.attempts = p.attempts + 1;
        it->second.last_error = error;
        // Everything it had that is not in flight goes to the dead letters with this one.
        for (auto i = ep->items.begin(); i != ep->items.end();) {
          if (i->second.in_flight && i != it) {
            ++i;
            continue;
          }
          dead_letters.push_back(i->second);
          i = ep->items.erase(i);
        }
        ep->waiting.clear();
      } else {
        failed.fetch_add(1, std::memory_order_relaxed);
        auto& item = it->second;
        item.in_flight = false;
        item.attempts = p.attempts + 1;
        item.last_error = error;
        if (permanent || ep->disabled || static_cast<std::size_t>(item.attempts) >= options.schedule.size()) {
          dead_reason = ep->disabled ? absl::StrCat("endpoint disabled; last error: ", error) : error;
          dead_letters.push_back(item);
          ep->items.erase(it);
        } else {
          const auto now = clock->now();
          auto delay = step_delay(item.attempts);
          if (status == 429 || status == 503) {
            if (auto ra = parse_retry_after(retry_after, now)) delay = std::min(*ra, step_max(item.attempts));
          }
          item.next_at = now + delay;
          if (!ep->ordered) ep->waiting.emplace(item.next_at, key);
          try {
            outbox->reschedule(item.row, item.attempts, to_ms(item.next_at), header_safe(error));
          } catch (const std::exception& e) {
            log_line(e.what());
          }
        }
      }
      ep->bell.ring();
    }
    for (auto& d : dead_letters) dead_letter(*ep, d, dead_reason.empty() ? d.last_error : dead_reason);
  }

  /// Publishes an exhausted delivery to the dead-letter topic, then deletes its row (a crash in
  /// between dead-letters it twice; a hub that stopped keeps the row for the next start).
  void dead_letter(const EndpointState& ep, const Pending& p, const std::string& reason) {
    const Message& m = p.msg->message;
    if (!options.dead_letter.empty() && m.topic != options.dead_letter) {
      Message d(m.payload);
      d.headers = m.headers;
      d.headers.set("Patchbay-Webhook-Endpoint", ep.id);
      d.headers.set("Patchbay-Webhook-Url", header_safe(ep.url));
      d.headers.set("Patchbay-Webhook-Attempts", std::to_string(p.attempts));
      d.headers.set("Patchbay-Webhook-Error", header_safe(reason));
      d.headers.set("Patchbay-Webhook-Topic", header_safe(m.topic));
      d.headers.set("Patchbay-Webhook-Message-Id", header_safe(m.id));
      try {
        hub->publish(options.dead_letter, std::move(d));
      } catch (const std::exception& e) {
        log_line(absl::StrCat("dead letter for ", ep.id, " not published (", e.what(), "): kept for the next start"));
        return;
      }
    } else {
      log_line(absl::StrCat("dropped message ", m.id, " of '", m.topic, "' for ", ep.id, " after ", p.attempts,
                            " attempts: ", reason));
    }
    dead.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mu);
    try {
      outbox->remove(p.row, p.msg->id);
    } catch (const std::exception& e) {
      log_line(e.what());
    }
  }

  // --- API ------------------------------------------------------------------------------------

  static awaitable<absl::StatusOr<Created>> subscribe(std::shared_ptr<Impl> impl, EndpointSpec spec);
  absl::StatusOr<Created> add_endpoint(const EndpointPtr& ep);
  bool unsubscribe(std::string_view id);
  absl::StatusOr<std::string> rotate(std::string_view id);
  std::vector<EndpointInfo> list() const;
  std::optional<EndpointInfo> find(std::string_view id) const;
  enum class ApiOp { create, list, get, remove, rotate };
  static awaitable<void> serve_api(std::shared_ptr<Impl> self, http::Exchange& ex, ApiOp op);
  void mount(http::Server& server);
  awaitable<void> serve_create(http::Exchange& ex);
  bool authorized(http::Exchange& ex) const;
  boost::json::object to_json(const EndpointInfo& i) const;
};

// --- Sender -----------------------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<Sender>> Sender::create(executor ex, std::shared_ptr<http::Hub> hub, SenderOptions options) {
  if (!hub) return absl::InvalidArgumentError("webhooks: no hub");
  if (options.schedule.empty()) return absl::InvalidArgumentError("webhooks: schedule must have at least one step");
  if (options.jitter < 0 || options.jitter >= 1) return absl::InvalidArgumentError("webhooks: jitter must be in [0, 1)");
  if (options.timeout <= duration::zero()) return absl::InvalidArgumentError("webhooks: timeout must be positive");
  auto policy = http::ssrf::Policy::parse(options.allow);
  if (!policy.ok()) return absl::InvalidArgumentError(absl::StrCat("webhooks: allow: ", policy.status().message()));
  auto outbox = Outbox::open(options.outbox);
  if (!outbox.ok()) return outbox.status();

  auto shared_policy = std::make_shared<const http::ssrf::Policy>(*std::move(policy));
  http::ClientOptions client;
  client.request_timeout = options.timeout;
  client.connect_timeout = std::min<duration>(options.timeout, std::chrono::seconds(5));
  client.max_idle_per_origin = std::max<std::size_t>(16, options.max_concurrency);
  client.max_retries = 0;
  client.body_limit = 1024 * 1024;
  client.user_agent = "patchbay-webhooks/0.1";
  client.resolve = [shared_policy](std::string host, unsigned short port, bool tls) {
    return resolve_checked_endpoints(shared_policy, std::move(host), port, tls);
  };

  std::shared_ptr<Sender> sender(new Sender());
  auto clock = options.clock ? options.clock : system_clock();
  auto statics = options.endpoints;
  sender->impl_ = std::make_shared<Impl>(ex, std::move(hub), std::move(options), std::move(client));
  auto& impl = *sender->impl_;
  impl.clock = std::move(clock);
  impl.policy = shared_policy;
  impl.outbox = *std::move(outbox);

  try {
    for (const auto& r : impl.outbox->endpoints()) {
      auto ep = impl.make_endpoint();
      ep->id = r.id;
      ep->url = r.url;
      ep->topics = r.topics;
      ep->secrets = parse_secrets_json(r.secrets_json);
      ep->ordered_set = r.ordered >= 0;
      ep->ordered = r.ordered == 1;
      ep->max_concurrency = static_cast<std::size_t>(std::max<std::int64_t>(0, r.max_concurrency));
      ep->disabled = r.disabled;
      ep->created_ms = r.created_ms;
      impl.configure(*ep);
      impl.endpoints.emplace(ep->id, ep);
    }
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(e.what());
  }
  for (auto& spec : statics) {
    if (auto s = http::ssrf::check_url_syntax(spec.url); !s.ok())
      return absl::InvalidArgumentError(absl::StrCat("webhooks: endpoint ", spec.url, ": ", s.message()));
    if (spec.topics.empty()) return absl::InvalidArgumentError(absl::StrCat("webhooks: endpoint ", spec.url, ": no topics"));
    if (spec.secrets.empty())
      return absl::InvalidArgumentError(absl::StrCat("webhooks: endpoint ", spec.url, ": needs a secret"));
    auto ep = impl.make_endpoint();
    ep->id = static_id(spec.url);
    if (impl.endpoints.count(ep->id))
      return absl::InvalidArgumentError(absl::StrCat("webhooks: endpoint ", spec.url, " is listed twice"));
    ep->url = spec.url;
    ep->topics = spec.topics;
    for (auto& s : spec.secrets) ep->secrets.push_back({s, 0});
    ep->ordered_set = spec.ordered.has_value();
    ep->ordered = spec.ordered.value_or(false);
    ep->max_concurrency = spec.max_concurrency;
    ep->is_static = true;
    impl.configure(*ep);
    impl.endpoints.emplace(ep->id, ep);
  }
  sender->recover();
  return sender;
}

Sender::~Sender() {
  if (impl_) {
    impl_->stopped = true;
    impl_->flush_bell.ring();
    std::lock_guard lock(impl_->mu);
    for (auto& [id, ep] : impl_->endpoints) {
      ep->alarm->cancel();
      ep->bell.ring();
    }
  }
}

void Sender::recover() {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  // What the outbox holds: pending deliveries from an earlier run.
  std::map<std::int64_t, std::shared_ptr<Stored>> messages;
  std::size_t orphans = 0;
  try {
    impl.outbox->load(
        [&](OutboxMessage m) {
          auto s = std::make_shared<Stored>();
          s->id = m.id;
          s->message = std::move(m.message);
          messages.emplace(s->id, std::move(s));
        },
        [&](OutboxDelivery d) {
          auto ep = impl.endpoints.find(d.endpoint);
          auto msg = messages.find(d.message);
          if (ep == impl.endpoints.end() || msg == messages.end() || ep->second->disabled) {
            ++orphans;
            return;
          }
          impl.add_pending(*ep->second, Pending{d.id, msg->second, d.attempts, from_ms(d.next_at_ms), d.last_error, false});
          ++impl.recovered;
        });
  } catch (const std::exception& e) {
    log_line(e.what());
  }
  if (orphans) {
    log_line(absl::StrCat(orphans, " pending deliveries in the outbox belong to endpoints no longer configured "
                                   "or disabled: left in the outbox"));
  }
  // From now on every publish on the hub is recorded, also before start(): a message the hub
  // acknowledged while the transport was still starting is delivered once delivery starts.
  std::weak_ptr<Impl> weak = impl_;
  impl.hub->set_publish_observer([weak](const http::HubEntry& e) {
    if (auto s = weak.lock()) s->on_publish(e);
  });
}

void Sender::start() {
  auto& impl = *impl_;
  // The dead-letter topic exists from the start, so readers can subscribe to it before the
  // first dead letter. Before taking mu: the hub's locks come before the sender's.
  if (!impl.options.dead_letter.empty()) impl.hub->declare(impl.options.dead_letter);
  std::lock_guard lock(impl.mu);
  if (impl.started) return;
  impl.started = true;
  for (auto& [id, ep] : impl.endpoints) impl.spawn_dispatcher(ep);
  asio::post(impl.flush_strand, [self = impl_] { asio::co_spawn(self->flush_strand, Impl::flusher(self), asio::detached); });
}

awaitable<void> Sender::stop(duration drain) {
  auto impl = impl_;
  if (impl->stopped.exchange(true)) co_return;
  {
    std::lock_guard lock(impl->mu);
    for (auto& [id, ep] : impl->endpoints) {
      ep->alarm->cancel();
      ep->bell.ring();
    }
  }
  impl->flush_bell.ring();
  const auto until = clock::now() + drain;
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (impl->in_flight.load() > 0 && clock::now() < until) {
    t.expires_after(10ms);
    co_await t.async_wait(asio::use_awaitable_t<executor>{});
  }
  // Cut what is left (each on its endpoint's strand); the rows stay for the next start.
  if (impl->in_flight.load() > 0) {
    std::vector<EndpointPtr> eps;
    {
      std::lock_guard lock(impl->mu);
      for (auto& [id, ep] : impl->endpoints) eps.push_back(ep);
    }
    for (auto& ep : eps) {
      asio::post(ep->strand, [ep] {
        for (auto& [id, signal] : ep->attempts) signal->emit(asio::cancellation_type::terminal);
      });
    }
    const auto cut = clock::now() + 2s;
    while (impl->in_flight.load() > 0 && clock::now() < cut) {
      t.expires_after(10ms);
      co_await t.async_wait(asio::use_awaitable_t<executor>{});
    }
  }
  impl->flush_outbox();
  impl->client.close_idle();
}

void Sender::mount(http::Server& server) { impl_->mount(server); }

awaitable<absl::StatusOr<Sender::Created>> Sender::subscribe(EndpointSpec spec) {
  return Impl::subscribe(impl_, std::move(spec));
}

awaitable<absl::StatusOr<Sender::Created>> Sender::Impl::subscribe(std::shared_ptr<Impl> impl, EndpointSpec spec) {
  if (auto s = http::ssrf::check_url_syntax(spec.url); !s.ok()) co_return absl::InvalidArgumentError(s.message());
  if (spec.topics.empty()) co_return absl::InvalidArgumentError("topics must name at least one topic");
  for (const auto& t : spec.topics)
    if (t.empty()) co_return absl::InvalidArgumentError("a topic name is empty");
  auto checked = co_await http::ssrf::resolve_checked(spec.url, *impl->policy);
  if (!checked.ok()) co_return absl::InvalidArgumentError(checked.status().message());
  if (spec.secrets.empty()) spec.secrets.push_back(Secret::generate());
  auto ep = impl->make_endpoint();
  ep->id = random_id();
  ep->url = spec.url;
  ep->topics = spec.topics;
  for (auto& s : spec.secrets) ep->secrets.push_back({s, 0});
  ep->ordered_set = spec.ordered.has_value();
  ep->ordered = spec.ordered.value_or(false);
  ep->max_concurrency = spec.max_concurrency;
  ep->created_ms = to_ms(wall_clock::now());
  impl->configure(*ep);
  co_return impl->add_endpoint(ep);
}

// Not a coroutine: GCC 12 can leave a lock_guard of a coroutine scope held (a co_return in the
// scope).
absl::StatusOr<Sender::Created> Sender::Impl::add_endpoint(const EndpointPtr& ep) {
  std::lock_guard lock(mu);
  try {
    outbox->save_endpoint(record(*ep));
  } catch (const std::exception& e) {
    return absl::UnavailableError(e.what());
  }
  endpoints.emplace(ep->id, ep);
  spawn_dispatcher(ep);
  Created out;
  out.info = info(*ep);
  out.secret = ep->secrets.front().secret.to_string();
  return out;
}

bool Sender::unsubscribe(std::string_view id) { return impl_->unsubscribe(id); }

bool Sender::Impl::unsubscribe(std::string_view id) {
  auto& impl = *this;
  std::lock_guard lock(impl.mu);
  auto it = impl.endpoints.find(id);
  if (it == impl.endpoints.end() || it->second->is_static) return false;
  auto ep = it->second;
  ep->removed = true;
  ep->items.clear();
  ep->waiting.clear();
  ep->alarm->cancel();
  ep->bell.ring();
  impl.endpoints.erase(it);
  try {
    impl.outbox->delete_endpoint(ep->id);
  } catch (const std::exception& e) {
    log_line(e.what());
  }
  return true;
}

absl::StatusOr<std::string> Sender::rotate(std::string_view id) { return impl_->rotate(id); }

absl::StatusOr<std::string> Sender::Impl::rotate(std::string_view id) {
  auto& impl = *this;
  std::lock_guard lock(impl.mu);
  auto it = impl.endpoints.find(id);
  if (it == impl.endpoints.end()) return absl::NotFoundError("no such subscription");
  auto& ep = *it->second;
  if (ep.is_static) return absl::FailedPreconditionError("a static endpoint's secrets are set in the config file");
  const auto now = to_ms(impl.clock->now());
  const auto until = now + std::chrono::duration_cast<std::chrono::milliseconds>(impl.options.rotation_overlap).count();
  std::erase_if(ep.secrets, [now](const SigningSecret& s) { return s.until_ms != 0 && s.until_ms <= now; });
  for (auto& s : ep.secrets)
    if (s.until_ms == 0) s.until_ms = until;
  auto fresh = Secret::generate();
  ep.secrets.insert(ep.secrets.begin(), SigningSecret{fresh, 0});
  try {
    impl.outbox->save_endpoint(impl.record(ep));
  } catch (const std::exception& e) {
    return absl::UnavailableError(e.what());
  }
  return fresh.to_string();
}

std::vector<EndpointInfo> Sender::endpoints() const { return impl_->list(); }
std::optional<EndpointInfo> Sender::endpoint(std::string_view id) const { return impl_->find(id); }

std::vector<EndpointInfo> Sender::Impl::list() const {
  std::lock_guard lock(mu);
  std::vector<EndpointInfo> out;
  for (const auto& [id, ep] : endpoints) out.push_back(info(*ep));
  return out;
}

std::optional<EndpointInfo> Sender::Impl::find(std::string_view id) const {
  std::lock_guard lock(mu);
  auto it = endpoints.find(id);
  if (it == endpoints.end()) return std::nullopt;
  return info(*it->second);
}

SenderStats Sender::stats() const {
  SenderStats s;
  s.attempts = impl_->attempts.load();
  s.delivered = impl_->delivered.load();
  s.failed_attempts = impl_->failed.load();
  s.dead_lettered = impl_->dead.load();
  s.in_flight = impl_->in_flight.load();
  std::lock_guard lock(impl_->mu);
  for (const auto& [id, ep] : impl_->endpoints) s.pending += ep->items.size();
  s.recovered = impl_->recovered;
  return s;
}

const SenderOptions& Sender::options() const noexcept { return impl_->options; }

// --- the subscriptions API ----------------------------------------------------------------------

namespace {

void respond_json(http::Exchange& ex, bhttp::status status, const boost::json::value& v) {
  http::Response res{status, ex.request().version()};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = boost::json::serialize(v) + "\n";
  ex.respond(std::move(res));
}

}  // namespace

bool Sender::Impl::authorized(http::Exchange& ex) const {
  if (options.api_token.empty()) return true;
  const auto given = ex.request()[bhttp::field::authorization];
  const std::string expected = "Bearer " + options.api_token;
  if (given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0) return true;
  http::Response res{bhttp::status::unauthorized, ex.request().version()};
  res.set(bhttp::field::www_authenticate, "Bearer");
  res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  res.body() = given.empty() ? "missing Authorization: Bearer <api_token>\n" : "wrong api token\n";
  ex.respond(std::move(res));
  return false;
}

boost::json::object Sender::Impl::to_json(const EndpointInfo& i) const {
  boost::json::array topics;
  for (const auto& t : i.topics) topics.emplace_back(t);
  return boost::json::object{{"id", i.id},
                             {"url", i.url},
                             {"topics", std::move(topics)},
                             {"ordered", i.ordered},
                             {"max_concurrency", i.max_concurrency},
                             {"disabled", i.disabled},
                             {"static", i.is_static},
                             {"pending", i.pending}};
}

awaitable<void> Sender::Impl::serve_create(http::Exchange& ex) {
  if (!authorized(ex)) co_return;
  boost::system::error_code ec;
  auto body = boost::json::parse(ex.request().body(), ec);
  auto bad = [&ex](std::string why) { ex.respond(bhttp::status::bad_request, why + "\n"); };
  if (ec || !body.is_object()) {
    bad(absl::StrCat("bad JSON: the body must be an object {\"url\":..,\"topics\":[..]}",
                     ec ? absl::StrCat(" (", ec.message(), ")") : std::string()));
    co_return;
  }
  const auto& o = body.as_object();
  for (const auto& kv : o) {
    const std::string_view k = kv.key();
    if (k != "url" && k != "topics" && k != "secret" && k != "ordered" && k != "max_concurrency") {
      bad(absl::StrCat("unknown member '", std::string(k), "' (known: url, topics, secret, ordered, max_concurrency)"));
      co_return;
    }
  }
  EndpointSpec spec;
  const auto* url = o.if_contains("url");
  if (!url || !url->is_string()) {
    bad("url must be a string");
    co_return;
  }
  spec.url = std::string(url->as_string());
  const auto* topics = o.if_contains("topics");
  if (!topics || !topics->is_array()) {
    bad("topics must be an array of topic names");
    co_return;
  }
  for (const auto& t : topics->as_array()) {
    if (!t.is_string()) {
      bad("topics must be an array of topic names");
      co_return;
    }
    spec.topics.emplace_back(t.as_string());
  }
  if (const auto* s = o.if_contains("secret")) {
    if (!s->is_string()) {
      bad("secret must be a string whsec_<base64>");
      co_return;
    }
    auto secret = Secret::parse(std::string_view(s->as_string()));
    if (!secret.ok()) {
      bad(absl::StrCat("secret: ", secret.status().message()));
      co_return;
    }
    spec.secrets.push_back(*secret);
  }
  if (const auto* v = o.if_contains("ordered")) {
    if (!v->is_bool()) {
      bad("ordered must be true or false");
      co_return;
    }
    spec.ordered = v->as_bool();
  }
  if (const auto* v = o.if_contains("max_concurrency")) {
    if (!v->is_int64() || v->as_int64() < 1 || v->as_int64() > 1024) {
      bad("max_concurrency must be an integer 1..1024");
      co_return;
    }
    spec.max_concurrency = static_cast<std::size_t>(v->as_int64());
  }
  auto created = co_await subscribe(shared_from_this(), std::move(spec));
  if (!created.ok()) {
    if (created.status().code() == absl::StatusCode::kInvalidArgument) {
      bad(std::string(created.status().message()));
    } else {
      ex.respond(bhttp::status::service_unavailable, std::string(created.status().message()) + "\n");
    }
    co_return;
  }
  auto json = to_json(created->info);
  json["secret"] = created->secret;
  http::Response res{bhttp::status::created, ex.request().version()};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::location, "/webhooks/subscriptions/" + created->info.id);
  res.body() = boost::json::serialize(json) + "\n";
  ex.respond(std::move(res));
}

awaitable<void> Sender::Impl::serve_api(std::shared_ptr<Impl> self, http::Exchange& ex, ApiOp op) {
  if (op == ApiOp::create) {
    co_await self->serve_create(ex);
    co_return;
  }
  if (!self->authorized(ex)) co_return;
  const std::string id(ex.param("id"));
  switch (op) {
    case ApiOp::list: {
      boost::json::array list;
      for (const auto& i : self->list()) list.push_back(self->to_json(i));
      respond_json(ex, bhttp::status::ok, list);
      break;
    }
    case ApiOp::get: {
      auto info = self->find(id);
      if (info)
        respond_json(ex, bhttp::status::ok, self->to_json(*info));
      else
        ex.respond(bhttp::status::not_found, "no such subscription\n");
      break;
    }
    case ApiOp::remove: {
      const auto info = self->find(id);
      if (self->unsubscribe(id)) {
        http::Response res{bhttp::status::no_content, ex.request().version()};
        ex.respond(std::move(res));
      } else if (info && info->is_static) {
        ex.respond(bhttp::status::conflict, "a static endpoint is removed from the config file, not through the API\n");
      } else {
        ex.respond(bhttp::status::not_found, "no such subscription\n");
      }
      break;
    }
    case ApiOp::rotate: {
      auto secret = self->rotate(id);
      if (secret.ok()) {
        const auto overlap = std::chrono::duration_cast<std::chrono::seconds>(self->options.rotation_overlap).count();
        respond_json(ex, bhttp::status::ok, boost::json::object{{"secret", *secret}, {"previous_valid_seconds", overlap}});
      } else if (secret.status().code() == absl::StatusCode::kNotFound) {
        ex.respond(bhttp::status::not_found, "no such subscription\n");
      } else if (secret.status().code() == absl::StatusCode::kFailedPrecondition) {
        ex.respond(bhttp::status::conflict, std::string(secret.status().message()) + "\n");
      } else {
        ex.respond(bhttp::status::service_unavailable, std::string(secret.status().message()) + "\n");
      }
      break;
    }
    case ApiOp::create:
      break;
  }
}

void Sender::Impl::mount(http::Server& server) {
  std::weak_ptr<Impl> weak = weak_from_this();
  // Plain lambdas returning serve_api()'s awaitable: a lambda coroutine would keep a pointer to
  // its closure, which the server need not keep alive while the request runs.
  auto route = [&server, weak](bhttp::verb method, const char* pattern, ApiOp op) {
    server.route(method, pattern, [weak, op](http::Exchange& ex) -> awaitable<void> {
      auto self = weak.lock();
      if (!self) throw_error(errc::stopped);
      return serve_api(std::move(self), ex, op);
    });
  };
  route(bhttp::verb::post, "/webhooks/subscriptions", ApiOp::create);
  route(bhttp::verb::get, "/webhooks/subscriptions", ApiOp::list);
  route(bhttp::verb::get, "/webhooks/subscriptions/{id}", ApiOp::get);
  route(bhttp::verb::delete_, "/webhooks/subscriptions/{id}", ApiOp::remove);
  route(bhttp::verb::post, "/webhooks/subscriptions/{id}/rotate", ApiOp::rotate);
}

namespace {
awaitable<void> answer_disabled(http::Exchange& ex) {
  ex.respond(bhttp::status::not_found, "webhooks are not enabled on this hub (add a webhooks: section to its config)\n");
  co_return;
}
}  // namespace

void mount_disabled_api(http::Server& server) {
  auto disabled = [](http::Exchange& ex) -> awaitable<void> { return answer_disabled(ex); };
  server.route(bhttp::verb::post, "/webhooks/subscriptions", disabled);
  server.route(bhttp::verb::get, "/webhooks/subscriptions", disabled);
  server.route(bhttp::verb::get, "/webhooks/subscriptions/{id}", disabled);
  server.route(bhttp::verb::delete_, "/webhooks/subscriptions/{id}", disabled);
  server.route(bhttp::verb::post, "/webhooks/subscriptions/{id}/rotate", disabled);
}

}  // namespace patchbay::webhook
