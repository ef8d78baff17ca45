// The `sse` transport (see patchbay/transports/sse/sse.hpp and README.md).
//
// One HTTP client (keep-alive pool) per transport. Each subscription owns one EventSource;
// subscribe() returns once the stream is open, which on patchbay's hub means the server-side
// cursor exists, so every message published afterwards reaches it. Events become Deliveries
// through sse::decode(): with the envelope format (our hub) they carry headers, the message
// id and binary payloads; from any other server, the event data is the payload and a
// non-default event type arrives as the header `sse-event`.
#include <patchbay/transports/sse/sse.hpp>

#include <patchbay/error.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/event_source.hpp>
#include <patchbay/http/message_fields.hpp>
#include <patchbay/http/sse.hpp>
#include <patchbay/http/status_error.hpp>
#include <patchbay/plugin.hpp>

#include <absl/strings/str_cat.h>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <iostream>
#include <mutex>
#include <set>

namespace patchbay::sse_transport {

namespace {

using namespace patchbay::http;

struct Settings {
  std::string url;
  std::string events_path = "/topics/{topic}/events";
  std::string publish_path = "/topics/{topic}";
  bool envelope = true;
  EventSourceOptions source;
  ClientOptions client;
};

std::string expand(std::string_view path, std::string_view topic) {
  std::string out(path);
  auto at = out.find("{topic}");
  if (at != std::string::npos) out.replace(at, 7, boost::urls::encode(topic, boost::urls::pchars));
  return out;
}

class SseTransport;

/// One subscription: an EventSource read as a stream of Deliveries.
class Subscription final : public StreamSource<Delivery> {
 public:
  Subscription(std::unique_ptr<EventSource> source, std::string topic)
      : source_(std::move(source)), topic_(std::move(topic)) {}

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      ReceivedEvent received;
      try {
        received = co_await source_->next();
      } catch (const boost::system::system_error& e) {
        if (e.code() == errc::closed) co_return std::nullopt;
        throw;
      }
      auto decoded = sse::decode(received.event, received.envelope);
      if (!decoded) {
        // Not ours to judge a foreign server's data, but an envelope that does not parse is a
        // broken hub: say so once per event and go on.
        std::cerr << "patchbay sse: topic '" << topic_ << "': dropped an event that does not decode (id '"
                  << received.event.last_event_id << "')\n";
        continue;
      }
      if (decoded->gap) co_return Delivery::gap(std::move(*decoded->gap));
      if (!decoded->message) continue;
      Message msg = std::move(*decoded->message);
      msg.topic = topic_;
      co_return Delivery(std::move(msg), Position::after(received.event.last_event_id));
    }
  }

  void close() noexcept override { source_->close(); }

  EventSource& source() { return *source_; }

 private:
  std::unique_ptr<EventSource> source_;
  std::string topic_;
};

class SseTransport final : public Transport {
 public:
  SseTransport(executor ex, Settings settings)
      : ex_(std::move(ex)), settings_(std::move(settings)), client_(ex_, settings_.client) {}

  std::string_view type() const noexcept override { return "sse"; }

  Features features() const override {
    Features f;
    f.publish_subscribe = true;
    f.ordered = true;
    f.replay = true;
    f.gap_signal = true;
    f.headers = settings_.envelope;
    return f;
  }

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
    if (stopped_) throw_error(errc::stopped, "sse: publish after stop");
    if (settings_.publish_path.empty()) throw_error(errc::not_supported, "sse: publishing is off (publish_path: \"\")");
    msg.stamp();
    Request req{bhttp::verb::post, "/", 11};
    put_message_headers(msg, req.base());
    req.body() = msg.payload.str();
    auto res = co_await client_.request(settings_.url + expand(settings_.publish_path, msg.topic), std::move(req));
    const unsigned status = res.result_int();
    if (status / 100 != 2) {
      std::string body = res.body();
      throw StatusError(status, body, absl::StrCat("sse: publish to '", msg.topic, "': HTTP ", status, " ", body));
    }
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    if (stopped_) throw_error(errc::stopped, "sse: subscribe after stop");
    if (!options.group().empty()) throw_error(errc::not_supported, "sse: no consumer groups over server-sent events");
    auto source_options = settings_.source;
    source_options.envelope = settings_.envelope;
    std::string url = settings_.url + expand(settings_.events_path, topic);
    switch (options.from().where()) {
      case Position::kind::latest:
        break;
      case Position::kind::earliest:
        url += url.find('?') == std::string::npos ? "?from=earliest" : "&from=earliest";
        break;
      case Position::kind::after:
        source_options.last_event_id = options.from().token();
        break;
    }
    auto sub = std::make_shared<Subscription>(std::make_unique<EventSource>(client_, url, source_options), topic);
    // Established once the server answered with its event stream.
    co_await sub->source().open();
    {
      std::lock_guard lock(mu_);
      std::erase_if(subscriptions_, [](const auto& w) { return w.expired(); });
      subscriptions_.push_back(sub);
    }
    if (stopped_) sub->close();
    co_return Stream<Delivery>(sub);
  }

  awaitable<Message> do_request(std::string, Message, deadline) override {
    throw_error(errc::not_supported, "sse: no request/reply over server-sent events (use type: http)");
    co_return Message();
  }

  awaitable<void> do_serve(std::string, ServiceHandler) override {
    throw_error(errc::not_supported, "sse: no request/reply over server-sent events (use type: http)");
    co_return;
  }

 private:
  executor ex_;
  Settings settings_;
  Client client_;
  std::mutex mu_;
  std::vector<std::weak_ptr<Subscription>> subscriptions_;
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

absl::StatusOr<std::shared_ptr<Transport>> make_sse(const TransportContext& ctx) {
  const auto& s = ctx.settings;
  Settings out;
  PB_TRY(take(s.require_string("url"), out.url));
  while (!out.url.empty() && out.url.back() == '/') out.url.pop_back();
  if (out.url.rfind("http://", 0) != 0 && out.url.rfind("https://", 0) != 0) {
    return config::error_at(s.mark_of("url"), s.context() + ": url must start with http:// or https://");
  }
  PB_TRY(take(s.get_string("events_path", out.events_path), out.events_path));
  PB_TRY(take(s.get_string("publish_path", out.publish_path), out.publish_path));
  for (auto key : {"events_path", "publish_path"}) {
    std::string v = key == std::string_view("events_path") ? out.events_path : out.publish_path;
    if (!v.empty() && v.front() != '/') {
      return config::error_at(s.mark_of(key), s.context() + ": " + key + " must start with '/'");
    }
  }
  PB_TRY(take(s.get_bool("envelope", true), out.envelope));
  PB_TRY(read_duration(s, "reconnect_delay", out.source.reconnect_delay));
  PB_TRY(read_duration(s, "max_backoff", out.source.max_backoff));
  config::Node headers;
  PB_TRY(take(s.get_map("headers"), headers));
  if (s.has("headers")) {
    for (auto it = headers.yaml().begin(); it != headers.yaml().end(); ++it) {
      const YAML::Node key = it->first, value = it->second;
      out.source.headers.add(key.as<std::string>(), value.as<std::string>());
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
  return std::shared_ptr<Transport>(std::make_shared<SseTransport>(ctx.ex, std::move(out)));
}

absl::Status register_sse(Registry& registry) { return registry.add_transport("sse", make_sse); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_transport(Registry& registry) { return register_sse(registry); }
#endif

}  // namespace patchbay::sse_transport

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::sse_transport::register_sse)
#endif
