// The polling client shared by the `longpoll` and `shortpoll` transports (see their
// README.md). Included by longpoll_transport.cpp and shortpoll_transport.cpp after they define
// PATCHBAY_POLL_NS (their namespace): each transport gets its own copy, in its own namespace,
// so both may be linked into one program.
//
// One HTTP client (keep-alive pool) per transport. A subscription is a loop of GET requests on
// the hub's poll endpoint; each answer carries `next`, the position to pass as `after=` in the
// following request, so a message published between two requests is read by the second one
// (none lost, none read twice). subscribe() returns once the first position is known: for
// `latest` after a first request answered (so every message published afterwards is
// delivered), for `earliest` likewise (its messages are delivered first), for
// `Position::after(token)` at once — the token is where the loop starts.
//
// Long polling: `GET {poll_path}?after=P&wait=S[&limit=N]`, the next request as soon as the
// answer is consumed. Short polling: `GET {poll_path}?after=P[&limit=N]` with
// `If-None-Match: <last ETag>`; after an answer with messages the next request goes out at once
// (catching up), after an empty answer or a 304 it waits `interval` ± `jitter`.
// Errors (network, non-2xx, an unparsable answer): wait retry_delay, doubling per failure up to
// max_backoff, then the same request again; the position is kept, so nothing is skipped.
// close() (from any thread) rings the subscription's doorbell, which cancels the request or
// the pause in progress.
#include <patchbay/error.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/message_fields.hpp>
#include <patchbay/http/sse.hpp>
#include <patchbay/http/status_error.hpp>
#include <patchbay/doorbell.hpp>
#include <patchbay/plugin.hpp>

#include <absl/strings/str_cat.h>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <cmath>
#include <deque>
#include <iostream>
#include <mutex>
#include <random>
#include <variant>

namespace patchbay::PATCHBAY_POLL_NS {

namespace {

using namespace patchbay::http;

struct PollSettings {
  std::string type;  ///< "longpoll" or "shortpoll"
  bool hold = true;  ///< long polling
  std::string url;
  std::string poll_path;
  std::string publish_path = "/topics/{topic}";
  duration wait = std::chrono::seconds(30);          ///< long polls: ?wait=
  std::size_t limit = 0;                             ///< ?limit= (0: the hub's max_batch)
  duration interval = std::chrono::seconds(1);       ///< short polls: between empty answers
  double jitter = 0.1;                               ///< short polls: ± this fraction of interval
  bool conditional = true;                           ///< short polls: If-None-Match
  duration retry_delay = std::chrono::milliseconds(100);
  duration max_backoff = std::chrono::seconds(10);
  std::vector<std::pair<std::string, std::string>> headers;
  ClientOptions client;
};

struct PollCounters {
  std::atomic<std::uint64_t> requests{0}, answers{0}, not_modified{0}, errors{0}, messages{0}, gaps{0};
};

std::string expand(std::string_view path, std::string_view topic) {
  std::string out(path);
  auto at = out.find("{topic}");
  if (at != std::string::npos) out.replace(at, 7, boost::urls::encode(topic, boost::urls::pchars));
  return out;
}

/// Seconds as the hub reads them: "30", "0.25".
std::string seconds_text(duration d) {
  const auto ms = std::max<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count(), 0);
  if (ms % 1000 == 0) return std::to_string(ms / 1000);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
  return buf;
}

/// One subscription: a loop of polls read as a stream of Deliveries.
class PollSubscription final : public StreamSource<Delivery> {
 public:
  PollSubscription(Client& client, const PollSettings& settings, PollCounters& counters, std::string topic,
                   executor ex)
      : client_(client),
        settings_(settings),
        counters_(counters),
        topic_(std::move(topic)),
        endpoint_(settings.url + expand(settings.poll_path, topic_)),
        bell_(std::move(ex)),
        rng_(std::random_device{}()) {}

  /// Finds the starting position (see the file comment). Throws when the hub cannot be reached
  /// or refuses (for latest and earliest).
  awaitable<void> establish(const Position& from) {
    switch (from.where()) {
      case Position::kind::after:
        next_ = from.token();
        co_return;
      case Position::kind::earliest:
        first_query_ = "from=earliest";
        break;
      case Position::kind::latest:
        break;
    }
    std::string error;
    const auto outcome = co_await poll_once(false, &error);
    if (outcome == Outcome::closed) throw_error(errc::stopped, absl::StrCat(settings_.type, ": subscription closed"));
    if (outcome == Outcome::failed) {
      throw_error(errc::unavailable, absl::StrCat(settings_.type, ": subscribe to '", topic_, "': ", error));
    }
    first_query_.clear();
  }

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      if (!ready_.empty()) {
        auto d = std::move(ready_.front());
        ready_.pop_front();
        co_return std::move(d);
      }
      if (closed_) co_return std::nullopt;
      if (!settings_.hold && !catching_up_) {
        const bool open = co_await pause(jittered_interval());
        if (!open) co_return std::nullopt;
      }
      const auto outcome = co_await poll_once(settings_.hold, nullptr);
      if (outcome == Outcome::closed) co_return std::nullopt;
      if (outcome == Outcome::failed) {
        const bool open = co_await pause(backoff());
        if (!open) co_return std::nullopt;
      }
    }
  }

  void close() noexcept override {
    closed_ = true;
    bell_.ring();
  }

  const std::string& position() const noexcept { return next_; }

 private:
  enum class Outcome { ok, failed, closed };

  struct Attempt {
    std::optional<Response> response;
    std::string error;
  };

  /// client_.request(), with its failure as the result.
  awaitable<Attempt> attempt(std::string url, Request req, deadline until) {
    Attempt out;
    try {
      out.response = co_await client_.request(url, std::move(req), until);
    } catch (const std::exception& e) {
      out.error = e.what();
      if (out.error.empty()) out.error = "the request failed";
    }
    co_return out;
  }

  /// Throws operation_aborted when the awaiting coroutine was cancelled.
  static awaitable<void> rethrow_if_cancelled() {
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
  }

  duration jittered_interval() {
    const double j = std::clamp(settings_.jitter, 0.0, 1.0);
    std::uniform_real_distribution<double> u(1.0 - j, 1.0 + j);
    const double f = j > 0 ? u(rng_) : 1.0;
    return std::chrono::duration_cast<duration>(settings_.interval * f);
  }

  duration backoff() {
    // retry_delay, doubled per consecutive failure, capped at max_backoff.
    duration d = settings_.retry_delay;
    for (unsigned i = 1; i < failures_ && d < settings_.max_backoff; ++i) d *= 2;
    return std::min(d, settings_.max_backoff);
  }

  /// Waits `d` unless closed first; false once closed.
  awaitable<bool> pause(duration d) {
    using namespace boost::asio::experimental::awaitable_operators;
    if (closed_) co_return false;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(d);
    auto sleep = timer.async_wait(asio::use_awaitable_t<executor>{});
    auto closing = bell_.wait();
    bool failed = false;
    try {
      co_await (std::move(sleep) || std::move(closing));
    } catch (const std::exception&) {
      failed = true;  // both cancelled (asio::multiple_exceptions) or one failed
    }
    if (failed) co_await rethrow_if_cancelled();
    co_return !closed_;
  }

  /// One request; its messages (and gap) go to ready_. `error` (when given) receives the reason
  /// of a failure instead of a log line.
  awaitable<Outcome> poll_once(bool hold, std::string* error) {
    using namespace boost::asio::experimental::awaitable_operators;
    if (closed_) co_return Outcome::closed;
    std::string url = endpoint_;
    char sep = url.find('?') == std::string::npos ? '?' : '&';
    auto add = [&](std::string_view key, std::string_view value) {
      url += sep;
      sep = '&';
      url += key;
      url += '=';
      url += boost::urls::encode(value, boost::urls::unreserved_chars);
    };
    if (!next_.empty()) add("after", next_);
    if (!first_query_.empty()) {
      url += sep;
      sep = '&';
      url += first_query_;
    }
    if (settings_.hold) add("wait", hold ? seconds_text(settings_.wait) : "0");
    if (settings_.limit > 0) add("limit", std::to_string(settings_.limit));

    Request req{bhttp::verb::get, "/", 11};
    for (const auto& [k, v] : settings_.headers) req.set(k, v);
    if (!settings_.hold && settings_.conditional && !etag_.empty()) req.set(bhttp::field::if_none_match, etag_);
    const deadline until = clock::now() + (hold ? settings_.wait : duration::zero()) + settings_.client.request_timeout;
    counters_.requests.fetch_add(1, std::memory_order_relaxed);

    // `||` waits for the first *success*: the call never throws (a failure is its result), so
    // that a refused connection ends the wait at once instead of waiting for the doorbell.
    std::string failure;
    std::variant<Attempt, std::monostate> result;
    try {
      auto call = attempt(url, std::move(req), until);
      auto closing = bell_.wait();
      result = co_await (std::move(call) || std::move(closing));
    } catch (const std::exception& e) {
      failure = e.what();  // both ended in failure: we were cancelled (checked below)
      if (failure.empty()) failure = "the request failed";
    }
    if (result.index() == 0 && !std::get<0>(result).response) failure = std::get<0>(result).error;
    // Cancelled by our caller (e.g. a Stream timeout): the position is unchanged, nothing is
    // lost; the next call asks again.
    if (!failure.empty()) co_await rethrow_if_cancelled();
    if (closed_ || result.index() == 1) co_return Outcome::closed;
    if (failure.empty()) {
      auto& res = *std::get<0>(result).response;
      const unsigned status = res.result_int();
      if (status == 304) {
        counters_.not_modified.fetch_add(1, std::memory_order_relaxed);
        catching_up_ = false;
        failures_ = 0;
        co_return Outcome::ok;
      }
      if (status == 200) {
        if (take_answer(res, failure)) {
          counters_.answers.fetch_add(1, std::memory_order_relaxed);
          failures_ = 0;
          co_return Outcome::ok;
        }
      } else {
        std::string body = res.body();
        while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
        failure = absl::StrCat("HTTP ", status, " ", body);
      }
    }
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    ++failures_;
    if (error) {
      *error = failure;
    } else if (failures_ == 1) {
      std::cerr << "patchbay " << settings_.type << ": topic '" << topic_ << "': " << failure << " (retrying with backoff up to "
                << std::chrono::duration_cast<std::chrono::milliseconds>(settings_.max_backoff).count() << " ms)\n";
    }
    co_return Outcome::failed;
  }

  /// Decodes a 200 answer into ready_; false (with the reason) when it does not parse.
  bool take_answer(const Response& res, std::string& failure) {
    boost::system::error_code ec;
    auto value = boost::json::parse(res.body(), ec);
    const auto* obj = ec ? nullptr : value.if_object();
    const auto* next = obj ? obj->if_contains("next") : nullptr;
    const auto* messages = obj ? obj->if_contains("messages") : nullptr;
    if (!next || !next->is_string() || !messages || !messages->is_array()) {
      failure = "the answer is not a poll answer ({\"messages\":[..],\"next\":..})";
      return false;
    }
    std::deque<Delivery> got;
    if (const auto* gap = obj->if_contains("gap")) {
      auto g = sse::decode_gap_json(boost::json::serialize(*gap));
      if (!g) {
        failure = "the answer's gap does not decode";
        return false;
      }
      got.push_back(Delivery::gap(std::move(*g)));
      counters_.gaps.fetch_add(1, std::memory_order_relaxed);
    }
    for (const auto& m : messages->as_array()) {
      const auto* mo = m.if_object();
      const auto* pos = mo ? mo->if_contains("position") : nullptr;
      auto msg = mo ? sse::decode_envelope_json(boost::json::serialize(m)) : std::nullopt;
      if (!pos || !pos->is_string() || !msg) {
        failure = "a message in the answer does not decode";
        return false;
      }
      msg->topic = topic_;
      got.emplace_back(std::move(*msg), Position::after(std::string(pos->as_string())));
    }
    counters_.messages.fetch_add(messages->as_array().size(), std::memory_order_relaxed);
    catching_up_ = !messages->as_array().empty();
    next_ = std::string(next->as_string());
    if (auto etag = res[bhttp::field::etag]; !etag.empty()) etag_ = std::string(etag.data(), etag.size());
    for (auto& d : got) ready_.push_back(std::move(d));
    return true;
  }

  Client& client_;
  const PollSettings& settings_;
  PollCounters& counters_;
  const std::string topic_;
  const std::string endpoint_;
  Doorbell bell_;  // rung by close()
  std::atomic<bool> closed_{false};
  std::string next_;
  std::string first_query_;
  std::string etag_;
  std::deque<Delivery> ready_;
  unsigned failures_ = 0;
  bool catching_up_ = true;  // short polls: the first request goes out at once
  std::minstd_rand rng_;
};

class PollTransport final : public Transport {
 public:
  PollTransport(executor ex, PollSettings settings)
      : ex_(std::move(ex)), settings_(std::move(settings)), client_(ex_, settings_.client) {}

  std::string_view type() const noexcept override { return settings_.type; }

  Features features() const override {
    Features f;
    f.publish_subscribe = true;
    f.ordered = true;
    f.replay = true;
    f.gap_signal = true;
    f.headers = true;
    return f;
  }

  const PollCounters& counters() const noexcept { return counters_; }

 protected:
  awaitable<void> do_stop() override {
    if (stopped_.exchange(true)) co_return;
    std::lock_guard lock(mu_);
    for (auto& weak : subscriptions_) {
      if (auto s = weak.lock()) s->close();
    }
    subscriptions_.clear();
    client_.close_idle();
  }

  awaitable<void> do_publish(Message msg) override {
    if (stopped_) throw_error(errc::stopped, absl::StrCat(settings_.type, ": publish after stop"));
    if (settings_.publish_path.empty()) {
      throw_error(errc::not_supported, absl::StrCat(settings_.type, ": publishing is off (publish_path: \"\")"));
    }
    msg.stamp();
    Request req{bhttp::verb::post, "/", 11};
    put_message_headers(msg, req.base());
    for (const auto& [k, v] : settings_.headers) req.set(k, v);
    req.body() = msg.payload.str();
    auto res = co_await client_.request(settings_.url + expand(settings_.publish_path, msg.topic), std::move(req));
    const unsigned status = res.result_int();
    if (status / 100 != 2) {
      std::string body = res.body();
      throw StatusError(status, body,
                        absl::StrCat(settings_.type, ": publish to '", msg.topic, "': HTTP ", status, " ", body));
    }
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    if (stopped_) throw_error(errc::stopped, absl::StrCat(settings_.type, ": subscribe after stop"));
    if (!options.group().empty()) {
      throw_error(errc::not_supported, absl::StrCat(settings_.type, ": no consumer groups over polling"));
    }
    auto sub = std::make_shared<PollSubscription>(client_, settings_, counters_, topic, ex_);
    {
      std::lock_guard lock(mu_);
      std::erase_if(subscriptions_, [](const auto& w) { return w.expired(); });
      subscriptions_.push_back(sub);
    }
    co_await sub->establish(options.from());
    if (stopped_) sub->close();
    co_return Stream<Delivery>(sub);
  }

  awaitable<Message> do_request(std::string, Message, deadline) override {
    throw_error(errc::not_supported, absl::StrCat(settings_.type, ": no request/reply over polling (use type: http)"));
    co_return Message();
  }

  awaitable<void> do_serve(std::string, ServiceHandler) override {
    throw_error(errc::not_supported, absl::StrCat(settings_.type, ": no request/reply over polling (use type: http)"));
    co_return;
  }

 private:
  executor ex_;
  PollSettings settings_;
  Client client_;
  PollCounters counters_;
  std::mutex mu_;
  std::vector<std::weak_ptr<PollSubscription>> subscriptions_;
  std::atomic<bool> stopped_{false};
};

template <typename T>
absl::Status take(absl::StatusOr<T> v, T& out) {
  if (!v.ok()) return v.status();
  out = *std::move(v);
  return absl::OkStatus();
}

#define PB_TRY(expr)                           \
  do {                                         \
    if (auto _s = (expr); !_s.ok()) return _s; \
  } while (0)

absl::Status read_duration(const config::Node& s, std::string_view key, duration& out) {
  auto v = s.get_duration(key, std::chrono::duration_cast<std::chrono::milliseconds>(out));
  if (!v.ok()) return v.status();
  out = *v;
  return absl::OkStatus();
}

/// The settings both transports share; `path_key` names the poll path setting.
absl::Status read_common(const config::Node& s, const char* path_key, PollSettings& out) {
  PB_TRY(take(s.require_string("url"), out.url));
  while (!out.url.empty() && out.url.back() == '/') out.url.pop_back();
  if (out.url.rfind("http://", 0) != 0 && out.url.rfind("https://", 0) != 0) {
    return config::error_at(s.mark_of("url"), s.context() + ": url must start with http:// or https://");
  }
  PB_TRY(take(s.get_string(path_key, out.poll_path), out.poll_path));
  PB_TRY(take(s.get_string("publish_path", out.publish_path), out.publish_path));
  for (auto key : {std::string(path_key), std::string("publish_path")}) {
    const std::string& v = key == path_key ? out.poll_path : out.publish_path;
    if (!v.empty() && v.front() != '/') {
      return config::error_at(s.mark_of(key), s.context() + ": " + key + " must start with '/'");
    }
  }
  if (out.poll_path.empty()) return config::error_at(s.mark_of(path_key), s.context() + ": " + path_key + " must not be empty");
  std::int64_t limit = 0;
  PB_TRY(take(s.get_int("limit", 0, 0), limit));
  out.limit = static_cast<std::size_t>(limit);
  PB_TRY(read_duration(s, "retry_delay", out.retry_delay));
  PB_TRY(read_duration(s, "max_backoff", out.max_backoff));
  if (out.retry_delay <= duration::zero()) out.retry_delay = std::chrono::milliseconds(1);
  if (out.max_backoff < out.retry_delay) out.max_backoff = out.retry_delay;
  config::Node headers;
  PB_TRY(take(s.get_map("headers"), headers));
  if (s.has("headers")) {
    for (auto it = headers.yaml().begin(); it != headers.yaml().end(); ++it) {
      const YAML::Node key = it->first, value = it->second;
      out.headers.emplace_back(key.as<std::string>(), value.as<std::string>());
    }
  }
  config::Node client;
  PB_TRY(take(s.get_map("client"), client));
  PB_TRY(read_duration(client, "connect_timeout", out.client.connect_timeout));
  PB_TRY(read_duration(client, "request_timeout", out.client.request_timeout));
  PB_TRY(take(client.get_bool("verify_peer", true), out.client.tls.verify_peer));
  PB_TRY(take(client.get_string("ca_file", ""), out.client.tls.ca_file));
  PB_TRY(client.check_unknown_keys());
  // No User-Agent of our own: every header field of a publish becomes a message header.
  out.client.user_agent.clear();
  return absl::OkStatus();
}

}  // namespace

}  // namespace patchbay::PATCHBAY_POLL_NS
