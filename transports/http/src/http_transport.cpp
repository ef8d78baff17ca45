// The `http` transport (see patchbay/transports/http/http.hpp and README.md).
//
// Server side (`listen:`): one Server, one Hub mounted on it, `POST /services/{name}` and the
// configured routes dispatching to the handlers registered by serve(). Client side: request()
// POSTs to `{url}/services/{name}` through the client core; without `listen:`, publish() POSTs
// to `{url}/topics/{topic}`. Bridges feed hub topics from other transports of the runtime, and
// the hub's publishes on a bridged topic go to that transport (so several hubs behind a load
// balancer share one backbone).
#include <patchbay/transports/http/http.hpp>

#include <patchbay/error.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/hub.hpp>
#include <patchbay/http/message_fields.hpp>
#include <patchbay/doorbell.hpp>
#include <patchbay/http/server.hpp>
#include <patchbay/http/status_error.hpp>
#include <patchbay/http/ssrf.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/webhook/sender.hpp>

#include <absl/strings/str_cat.h>
#include <boost/asio/strand.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <charconv>
#include <map>
#include <mutex>

namespace patchbay::http_transport {

namespace {

using namespace patchbay::http;
using namespace std::chrono_literals;

constexpr std::string_view kError = "Patchbay-Error";
constexpr std::string_view kStatusHeader = "http-status";

struct RouteSpec {
  bhttp::verb method = bhttp::verb::get;
  std::string path;
  std::string service;
};

struct BridgeSpec {
  std::string from;
  std::vector<std::string> topics;
};

struct Settings {
  std::optional<ServerOptions> server;  // set with listen:
  std::string url;
  ClientOptions client;
  HubOptions hub;
  std::vector<RouteSpec> routes;
  std::vector<BridgeSpec> bridges;
  std::size_t max_payload = 0;
  std::optional<patchbay::webhook::SenderOptions> webhooks;  // set with webhooks: (transports/http/webhooks)
};

/// An error answer from a remote service, keeping its HTTP status.
std::string status_text(unsigned status, std::string_view body) {
  std::string text = absl::StrCat("HTTP ", status);
  if (!body.empty()) {
    text += ": ";
    text.append(body.substr(0, 512));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  }
  return text;
}

std::string encode_segment(std::string_view s) { return boost::urls::encode(s, boost::urls::pchars); }

/// The services registered by serve(): name → handlers, used round robin.
class Services {
 public:
  std::uint64_t add(const std::string& name, std::shared_ptr<ServiceHandler> handler) {
    std::lock_guard lock(mu_);
    auto id = ++next_id_;
    by_name_[name].push_back({id, std::move(handler)});
    return id;
  }
  void remove(const std::string& name, std::uint64_t id) {
    std::lock_guard lock(mu_);
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return;
    std::erase_if(it->second, [id](const auto& e) { return e.first == id; });
    if (it->second.empty()) by_name_.erase(it);
  }
  std::shared_ptr<ServiceHandler> pick(std::string_view name) {
    std::lock_guard lock(mu_);
    auto it = by_name_.find(name);
    if (it == by_name_.end() || it->second.empty()) return nullptr;
    return it->second[turn_++ % it->second.size()].second;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<std::pair<std::uint64_t, std::shared_ptr<ServiceHandler>>>, std::less<>> by_name_;
  std::uint64_t next_id_ = 0;
  std::size_t turn_ = 0;
};

class HttpTransport final : public Transport {
 public:
  HttpTransport(executor ex, std::string name, Settings settings,
                std::function<std::shared_ptr<Transport>(std::string_view)> lookup)
      : ex_(std::move(ex)), name_(std::move(name)), settings_(std::move(settings)), lookup_(std::move(lookup)),
        client_(ex_, settings_.client) {
    if (settings_.server) hub_ = Hub::create(ex_, settings_.hub);
  }

  std::string_view type() const noexcept override { return "http"; }

  Features features() const override {
    Features f;
    f.request_reply = true;
    f.headers = true;
    f.publish_subscribe = hub_ != nullptr;
    if (hub_) {
      f.ordered = true;
      f.replay = true;
      f.gap_signal = true;
    }
    f.max_payload = settings_.max_payload;
    return f;
  }

  /// For tests and samples: the listener's URL once started.
  std::string url() const { return server_ ? server_->url() : settings_.url; }

  /// webhooks: opens the outbox (a corrupt or locked file is a start-up error naming it).
  absl::Status init_webhooks() {
    if (!settings_.webhooks || !hub_) return absl::OkStatus();
    auto sender = patchbay::webhook::Sender::create(ex_, hub_, *settings_.webhooks);
    if (!sender.ok()) return sender.status();
    sender_ = *std::move(sender);
    return absl::OkStatus();
  }

 protected:
  awaitable<void> do_start() override {
    if (started_.exchange(true)) co_return;
    // Every bridge's transport must exist before anything starts listening.
    std::vector<std::shared_ptr<Transport>> bridge_from;
    for (const auto& b : settings_.bridges) {
      auto from = lookup_ ? lookup_(b.from) : nullptr;
      if (!from) {
        throw std::runtime_error(
            absl::StrCat("http transport '", name_, "': bridge from '", b.from, "': no such transport"));
      }
      bridge_from.push_back(std::move(from));
    }
    if (settings_.server) {
      auto server = Server::create(ex_, *settings_.server);
      if (!server.ok()) throw std::runtime_error(absl::StrCat("http transport '", name_, "': ", server.status().message()));
      server_ = *server;
      hub_->mount(*server_);
      // Webhooks (transports/http/webhooks): the subscriptions API, and delivery from the outbox.
      if (sender_) {
        sender_->mount(*server_);
        sender_->start();
      } else {
        patchbay::webhook::mount_disabled_api(*server_);
      }
      auto self = std::static_pointer_cast<HttpTransport>(shared_from_this());
      std::weak_ptr<HttpTransport> weak = self;
      // The handlers are plain functions returning answer()'s awaitable: no coroutine frame of
      // their own per request. answer() holds the transport alive through `self`.
      server_->route(bhttp::verb::post, "/services/{service}", [weak](Exchange& ex) -> awaitable<void> {
        auto self = weak.lock();
        if (!self) throw_error(errc::stopped);
        std::string service(ex.param("service"));
        return answer(std::move(self), ex, std::move(service), true);
      });
      for (const auto& r : settings_.routes) {
        auto service = r.service;
        server_->route(r.method, r.path, [weak, service](Exchange& ex) -> awaitable<void> {
          auto self = weak.lock();
          if (!self) throw_error(errc::stopped);
          return answer(std::move(self), ex, service, false);
        });
      }
      server_->start();
      if (settings_.url.empty()) settings_.url = server_->url();
    }
    for (std::size_t i = 0; i < settings_.bridges.size(); ++i) {
      const auto& from = bridge_from[i];
      for (const auto& topic : settings_.bridges[i].topics) {
        upstream_[topic] = from;
        hub_->set_upstream(topic, [from, topic](Message m) -> awaitable<void> {
          m.topic = topic;
          return from->publish(std::move(m));
        });
        auto sub = co_await from->subscribe(topic, SubscribeOptions());
        asio::co_spawn(asio::make_strand(ex_), feed(topic, std::move(sub)), asio::detached);
      }
    }
  }

  awaitable<void> do_stop() override {
    if (stopped_.exchange(true)) co_return;
    {
      std::lock_guard lock(bridges_mu_);
      for (auto* s : bridge_streams_) s->close();
      for (auto& bell : serving_) bell->ring();
    }
    if (sender_) co_await sender_->stop();
    if (hub_) hub_->stop();
    if (server_) co_await server_->stop();
    client_.close_idle();
  }

  awaitable<void> do_publish(Message msg) override {
    if (stopped_) throw_error(errc::stopped, "http: publish after stop");
    if (settings_.max_payload && msg.payload.size() > settings_.max_payload) {
      throw_error(errc::payload_too_large, absl::StrCat("payload of ", msg.payload.size(), " bytes over max_payload ",
                                                        settings_.max_payload));
    }
    msg.stamp();
    if (hub_) {
      if (auto it = upstream_.find(msg.topic); it != upstream_.end()) {
        co_await it->second->publish(std::move(msg));
      } else {
        const std::string topic = msg.topic;  // not msg.topic itself: msg is moved in the same call
        hub_->publish(topic, std::move(msg));
      }
      co_return;
    }
    if (settings_.url.empty()) throw_error(errc::not_supported, "http: publish needs listen: or url:");
    Request req{bhttp::verb::post, "/", 11};
    put_message_headers(msg, req.base());
    req.body() = msg.payload.str();
    auto res = co_await client_.request(settings_.url + "/topics/" + encode_segment(msg.topic), std::move(req));
    if (res.result_int() / 100 != 2) {
      throw_error(res.result_int() == 404 ? errc::unavailable : errc::remote_error,
                  absl::StrCat("publish to '", msg.topic, "': ", status_text(res.result_int(), res.body())));
    }
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    if (stopped_) throw_error(errc::stopped, "http: subscribe after stop");
    if (!hub_) {
      throw_error(errc::not_supported, "http: subscribe needs listen: (a hub); use type: sse for a remote hub");
    }
    if (!options.group().empty()) throw_error(errc::not_supported, "http: the hub has no consumer groups");
    co_return hub_->subscribe(topic, options.from());
  }

  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    if (stopped_) throw_error(errc::stopped, "http: request after stop");
    if (settings_.url.empty()) throw_error(errc::not_supported, "http: request needs url: or listen:");
    msg.stamp();
    Request req{bhttp::verb::post, "/", 11};
    put_message_headers(msg, req.base());
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now()).count();
    if (left <= 0) throw_error(errc::timed_out, absl::StrCat("request to '", service, "': deadline already passed"));
    req.set("Patchbay-Timeout-Ms", std::to_string(left));
    req.body() = msg.payload.str();
    auto res = co_await client_.request(settings_.url + "/services/" + encode_segment(service), std::move(req), until);
    const unsigned status = res.result_int();
    auto error = res[kError];
    if (status / 100 == 2) {
      Message reply(Bytes(std::move(res.body())));
      take_message_headers(res.base(), reply, {kError});
      reply.topic = service;
      co_return reply;
    }
    const std::string what = absl::StrCat("request to '", service, "': ", status_text(status, res.body()));
    if (error == "no-responders") throw_error(errc::no_responders, what);
    if (error == "timed-out") throw_error(errc::timed_out, what);
    throw StatusError(status, std::string(res.body()), what);
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    if (stopped_) throw_error(errc::stopped, "http: serve after stop");
    if (!settings_.server) throw_error(errc::not_supported, "http: serve needs listen:");
    auto id = services_.add(service, std::make_shared<ServiceHandler>(std::move(handler)));
    // Serves until cancelled or stopped: wait on a doorbell nobody rings but stop().
    auto bell = std::make_shared<Doorbell>(co_await asio::this_coro::executor);
    {
      std::lock_guard lock(bridges_mu_);
      serving_.push_back(bell);
    }
    auto forget = [&] {
      services_.remove(service, id);
      std::lock_guard lock(bridges_mu_);
      std::erase(serving_, bell);
    };
    try {
      while (!stopped_) co_await bell->wait();
    } catch (...) {
      forget();
      throw;
    }
    forget();
  }

 private:
  /// Answers one request to `service` (POST /services/{name}, or a configured route).
  static awaitable<void> answer(std::shared_ptr<HttpTransport> self, Exchange& ex, std::string service, bool rpc) {
    auto& req = ex.request();
    auto handler = self->services_.pick(service);
    if (!handler) {
      Response res{rpc ? bhttp::status::not_found : bhttp::status::service_unavailable, req.version()};
      res.set(kError, "no-responders");
      res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res.body() = absl::StrCat("no server for service '", service, "'\n");
      ex.respond(std::move(res));
      co_return;
    }
    Message msg(Bytes(std::move(req.body())));
    msg.headers.reserve(static_cast<std::size_t>(std::distance(req.base().begin(), req.base().end())) +
                        ex.params().size() + 2);
    take_message_headers(req.base(), msg, {"Patchbay-Timeout-Ms"});
    for (const auto& [k, v] : ex.params()) msg.headers.set(k, v);
    if (!rpc) {
      auto m = bhttp::to_string(req.method());
      msg.headers.set("http-method", std::string(m.data(), m.size()));
      auto t = req.target();
      msg.headers.set("http-target", std::string(t.data(), t.size()));
    }
    msg.topic = service;
    msg.stamp();
    Message reply;
    try {
      reply = co_await (*handler)(std::move(msg));
    } catch (const boost::system::system_error& e) {
      if (e.code() == asio::error::operation_aborted) throw;  // the server cancelled us
      fail(ex, e.what());
      co_return;
    } catch (const std::exception& e) {
      fail(ex, e.what());
      co_return;
    }
    unsigned status = 200;
    if (auto s = reply.headers.get(kStatusHeader)) {
      unsigned v = 0;
      auto r = std::from_chars(s->data(), s->data() + s->size(), v);
      if (r.ec == std::errc() && v >= 200 && v <= 599) status = v;
      reply.headers.remove(kStatusHeader);
    }
    // Built in place: the Session's response object is fresh for every request.
    auto& res = ex.response();
    res.result(static_cast<bhttp::status>(status));
    res.version(req.version());
    try {
      put_message_headers(reply, res.base());
    } catch (const std::exception& e) {
      res = Response();
      fail(ex, e.what());
      co_return;
    }
    if (!rpc && res.find(bhttp::field::content_type) == res.end()) {
      res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    }
    res.body() = reply.payload.str();
    ex.respond();
  }

  static void fail(Exchange& ex, std::string_view what) {
    Response res{bhttp::status::internal_server_error, ex.request().version()};
    res.set(kError, "remote-error");
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::string(what);
    ex.respond(std::move(res));
  }

  /// Feeds one bridged topic from its backbone subscription into the hub.
  awaitable<void> feed(std::string topic, Stream<Delivery> sub) {
    {
      std::lock_guard lock(bridges_mu_);
      bridge_streams_.push_back(&sub);
    }
    try {
      while (auto d = co_await sub.next()) {
        if (d->is_gap()) continue;  // the hub's own positions continue; its readers see no hole
        try {
          hub_->publish(topic, Message(d->message()));
        } catch (const std::exception&) {
          d->nack(true);
          break;  // the hub stopped
        }
        d->ack();
      }
    } catch (const std::exception&) {
      // The backbone ended the subscription with an error; stop() or its own reconnection
      // handles the rest.
    }
    std::lock_guard lock(bridges_mu_);
    std::erase(bridge_streams_, &sub);
  }

  executor ex_;
  std::string name_;
  Settings settings_;
  std::function<std::shared_ptr<Transport>(std::string_view)> lookup_;
  Client client_;
  std::shared_ptr<Hub> hub_;
  std::shared_ptr<patchbay::webhook::Sender> sender_;
  std::shared_ptr<Server> server_;
  Services services_;
  std::map<std::string, std::shared_ptr<Transport>, std::less<>> upstream_;  // bridged topics
  std::mutex bridges_mu_;
  std::vector<Stream<Delivery>*> bridge_streams_;
  std::vector<std::shared_ptr<Doorbell>> serving_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
};

// --- settings -----------------------------------------------------------------------------

template <typename T>
absl::Status take(absl::StatusOr<T> v, T& out) {
  if (!v.ok()) return v.status();
  out = *std::move(v);
  return absl::OkStatus();
}

absl::Status read_duration(const config::Node& s, std::string_view key, duration& out) {
  auto v = s.get_duration(key, std::chrono::duration_cast<std::chrono::milliseconds>(out));
  if (!v.ok()) return v.status();
  out = *v;
  return absl::OkStatus();
}

absl::Status read_size(const config::Node& s, std::string_view key, std::size_t& out, std::int64_t min = 0) {
  auto v = s.get_int(key, static_cast<std::int64_t>(out), min);
  if (!v.ok()) return v.status();
  out = static_cast<std::size_t>(*v);
  return absl::OkStatus();
}

#define PB_TRY(expr)                   \
  do {                                 \
    if (auto _s = (expr); !_s.ok()) return _s; \
  } while (0)

absl::Status parse_listen(const config::Node& s, std::string text, ServerOptions& out) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    return config::error_at(s.mark_of("listen"), s.context() + ": listen must be host:port, e.g. 127.0.0.1:8080");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto ps = text.substr(colon + 1);
  auto r = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (r.ec != std::errc() || r.ptr != ps.data() + ps.size() || port > 65535) {
    return config::error_at(s.mark_of("listen"), s.context() + ": listen port '" + ps + "' is not a number 0..65535");
  }
  out.host = host.empty() ? "0.0.0.0" : host;
  out.port = static_cast<std::uint16_t>(port);
  return absl::OkStatus();
}

// --- webhooks: (the sender, transports/http/webhooks) ------------------------------------------

config::Mark mark_of_item(const YAML::Node& item, const std::string& file) {
  config::Mark m;
  m.file = file;
  m.line = item.Mark().line + 1;
  m.column = item.Mark().column + 1;
  return m;
}

absl::Status parse_secret(const config::Node& at, std::string_view key, const std::string& text,
                          std::vector<http::webhook::Secret>& out) {
  auto secret = http::webhook::Secret::parse(text);
  if (!secret.ok()) {
    return config::error_at(at.mark_of(key), at.context() + ": " + std::string(key) + ": " +
                                                 std::string(secret.status().message()));
  }
  out.push_back(*secret);
  return absl::OkStatus();
}

absl::Status parse_webhooks(const config::Node& s, patchbay::webhook::SenderOptions& w) {
  config::Node n;
  PB_TRY(take(s.get_map("webhooks"), n));
  const auto file = s.mark().file;
  const auto& yaml = n.yaml();
  PB_TRY(take(n.get_string("outbox", ""), w.outbox));
  if (n.has("schedule")) {
    const YAML::Node list = yaml["schedule"];
    if (!list.IsSequence() || list.size() == 0) {
      return config::error_at(n.mark_of("schedule"), n.context() + ": schedule must be a non-empty list of delays, e.g. [0s, 5s, 5m]");
    }
    w.schedule.clear();
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto text = list[i].IsScalar() ? list[i].Scalar() : std::string();
      auto d = patchbay::webhook::parse_duration(text);
      if (!d) {
        return config::error_at(mark_of_item(list[i], file),
                                n.context() + ": schedule step '" + text + "' is not a delay like 250ms, 5s, 5m, 2h");
      }
      w.schedule.push_back(*d);
    }
  }
  PB_TRY(take(n.get_double("jitter", w.jitter), w.jitter));
  if (w.jitter < 0 || w.jitter >= 1) return config::error_at(n.mark_of("jitter"), n.context() + ": jitter must be in [0, 1)");
  PB_TRY(read_duration(n, "timeout", w.timeout));
  if (w.timeout <= duration::zero()) return config::error_at(n.mark_of("timeout"), n.context() + ": timeout must be positive");
  PB_TRY(read_size(n, "max_concurrency", w.max_concurrency, 1));
  PB_TRY(take(n.get_bool("ordered", w.ordered), w.ordered));
  PB_TRY(take(n.get_string("dead_letter", w.dead_letter), w.dead_letter));
  PB_TRY(take(n.get_string_list("allow", {}), w.allow));
  if (auto p = http::ssrf::Policy::parse(w.allow); !p.ok()) {
    return config::error_at(n.mark_of("allow"), n.context() + ": allow: " + std::string(p.status().message()));
  }
  PB_TRY(take(n.get_string("api_token", ""), w.api_token));
  std::chrono::milliseconds overlap = std::chrono::duration_cast<std::chrono::milliseconds>(w.rotation_overlap);
  {
    auto v = n.get_duration("rotation_overlap", overlap);
    if (!v.ok()) return v.status();
    w.rotation_overlap = std::chrono::duration_cast<std::chrono::seconds>(*v);
  }
  if (n.has("endpoints")) {
    const YAML::Node list = yaml["endpoints"];
    if (!list.IsSequence()) return config::error_at(n.mark_of("endpoints"), n.context() + ": endpoints must be a list");
    for (std::size_t i = 0; i < list.size(); ++i) {
      config::Node e(list[i], file, absl::StrCat(n.context(), " endpoint ", i + 1));
      patchbay::webhook::EndpointSpec spec;
      PB_TRY(take(e.require_string("url"), spec.url));
      if (auto st = http::ssrf::check_url_syntax(spec.url); !st.ok()) {
        return config::error_at(e.mark_of("url"), e.context() + ": " + std::string(st.message()));
      }
      PB_TRY(take(e.get_string_list("topics", {}), spec.topics));
      if (spec.topics.empty()) return config::error_at(e.mark(), e.context() + ": topics must name at least one topic");
      std::string secret;
      PB_TRY(take(e.get_string("secret", ""), secret));
      if (!secret.empty()) PB_TRY(parse_secret(e, "secret", secret, spec.secrets));
      std::vector<std::string> more;
      PB_TRY(take(e.get_string_list("secrets", {}), more));
      for (const auto& m : more) PB_TRY(parse_secret(e, "secrets", m, spec.secrets));
      if (spec.secrets.empty()) {
        return config::error_at(e.mark(), e.context() + ": needs secret: whsec_<base64> (the receiver verifies with it)");
      }
      if (e.has("ordered")) {
        bool ordered = false;
        PB_TRY(take(e.get_bool("ordered", false), ordered));
        spec.ordered = ordered;
      }
      PB_TRY(read_size(e, "max_concurrency", spec.max_concurrency, 1));
      PB_TRY(e.check_unknown_keys());
      w.endpoints.push_back(std::move(spec));
    }
  }
  return n.check_unknown_keys();
}

absl::StatusOr<std::shared_ptr<Transport>> make_http(const TransportContext& ctx) {
  const auto& s = ctx.settings;
  Settings out;
  std::string listen, url;
  PB_TRY(take(s.get_string("listen", ""), listen));
  PB_TRY(take(s.get_string("url", ""), url));
  while (!url.empty() && url.back() == '/') url.pop_back();
  out.url = url;
  if (!url.empty() && url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    return config::error_at(s.mark_of("url"), s.context() + ": url must start with http:// or https://");
  }
  PB_TRY(read_size(s, "max_payload", out.max_payload));

  if (!listen.empty()) {
    ServerOptions server;
    PB_TRY(parse_listen(s, listen, server));
    config::Node limits;
    PB_TRY(take(s.get_map("limits"), limits));
    auto& l = server.limits;
    PB_TRY(read_size(limits, "header_limit", l.header_limit, 256));
    PB_TRY(read_size(limits, "body_limit", l.body_limit, 0));
    PB_TRY(read_duration(limits, "header_timeout", l.header_timeout));
    PB_TRY(read_duration(limits, "idle_timeout", l.idle_timeout));
    PB_TRY(read_duration(limits, "request_timeout", l.request_timeout));
    PB_TRY(read_duration(limits, "send_timeout", l.send_timeout));
    PB_TRY(read_size(limits, "max_connections", l.max_connections, 1));
    PB_TRY(read_duration(limits, "shutdown_timeout", l.shutdown_timeout));
    PB_TRY(limits.check_unknown_keys());
    if (s.has("tls")) {
      config::Node tls;
      PB_TRY(take(s.get_map("tls"), tls));
      TlsServerOptions t;
      PB_TRY(take(tls.require_string("certificate"), t.certificate_file));
      PB_TRY(take(tls.require_string("private_key"), t.private_key_file));
      PB_TRY(tls.check_unknown_keys());
      server.tls = t;
    }
    if (out.max_payload && out.max_payload > l.body_limit) l.body_limit = out.max_payload;
    out.server = server;

    auto& h = out.hub;
    PB_TRY(read_size(s, "history", h.history, 1));
    PB_TRY(take(s.get_string_list("topics", {}), h.topics));
    PB_TRY(take(s.get_bool("open_topics", false), h.open_topics));
    PB_TRY(take(s.get_bool("http_publish", true), h.http_publish));
    PB_TRY(take(s.get_string("cors_origin", ""), h.cors_origin));
    config::Node sse;
    PB_TRY(take(s.get_map("sse"), sse));
    PB_TRY(read_duration(sse, "retry", h.sse_retry));
    PB_TRY(read_duration(sse, "heartbeat", h.heartbeat));
    PB_TRY(read_size(sse, "send_buffer", h.send_buffer, 1024));
    PB_TRY(read_size(sse, "max_batch", h.max_batch, 1));
    PB_TRY(sse.check_unknown_keys());
    // Long and short polling (GET /topics/{topic}/poll, GET /topics/{topic}/messages).
    config::Node poll;
    PB_TRY(take(s.get_map("poll"), poll));
    PB_TRY(read_duration(poll, "default_wait", h.poll.default_wait));
    PB_TRY(read_duration(poll, "max_wait", h.poll.max_wait));
    PB_TRY(read_size(poll, "max_batch", h.poll.max_batch, 1));
    PB_TRY(poll.check_unknown_keys());
    // WebSocket (GET /topics/{topic}/ws).
    config::Node websocket;
    PB_TRY(take(s.get_map("websocket"), websocket));
    PB_TRY(read_size(websocket, "max_message", h.websocket.max_message, 1));
    PB_TRY(read_duration(websocket, "ping_interval", h.websocket.ping_interval));
    PB_TRY(read_size(websocket, "send_buffer", h.websocket.send_buffer, 1024));
    PB_TRY(websocket.check_unknown_keys());

    const auto& yaml = s.yaml();
    const auto file = s.mark().file;
    if (s.has("routes")) {
      const YAML::Node list = yaml["routes"];
      if (!list.IsSequence()) return config::error_at(s.mark_of("routes"), s.context() + ": routes must be a list");
      for (std::size_t i = 0; i < list.size(); ++i) {
        config::Node r(list[i], file, absl::StrCat(s.context(), " route ", i + 1));
        RouteSpec spec;
        std::string method;
        PB_TRY(take(r.get_string("method", "GET"), method));
        spec.method = bhttp::string_to_verb(method);
        if (spec.method == bhttp::verb::unknown) {
          return config::error_at(r.mark_of("method"), r.context() + ": unknown HTTP method '" + method + "'");
        }
        PB_TRY(take(r.require_string("path"), spec.path));
        if (auto p = parse_route_pattern(spec.path); !p.ok()) {
          return config::error_at(r.mark_of("path"), r.context() + ": " + std::string(p.status().message()));
        }
        PB_TRY(take(r.require_string("service"), spec.service));
        PB_TRY(r.check_unknown_keys());
        out.routes.push_back(std::move(spec));
      }
    }
    if (s.has("webhooks")) {
      patchbay::webhook::SenderOptions w;
      PB_TRY(parse_webhooks(s, w));
      out.webhooks = std::move(w);
    }
    if (s.has("bridges")) {
      const YAML::Node list = yaml["bridges"];
      if (!list.IsSequence()) return config::error_at(s.mark_of("bridges"), s.context() + ": bridges must be a list");
      for (std::size_t i = 0; i < list.size(); ++i) {
        config::Node b(list[i], file, absl::StrCat(s.context(), " bridge ", i + 1));
        BridgeSpec spec;
        PB_TRY(take(b.require_string("from"), spec.from));
        PB_TRY(take(b.get_string_list("topics", {}), spec.topics));
        if (spec.topics.empty()) return config::error_at(b.mark(), b.context() + ": topics must name at least one topic");
        if (spec.from == ctx.name) return config::error_at(b.mark_of("from"), b.context() + ": a hub cannot bridge from itself");
        PB_TRY(b.check_unknown_keys());
        out.bridges.push_back(std::move(spec));
      }
    }
  } else {
    for (auto key : {"limits", "tls", "history", "topics", "open_topics", "http_publish", "cors_origin", "sse", "poll", "websocket", "routes",
                     "bridges", "webhooks"}) {
      if (s.has(key)) {
        return config::error_at(s.mark_of(key), s.context() + ": '" + key + "' needs listen: (it configures the server)");
      }
    }
    if (url.empty()) {
      return config::error_at(s.mark(), s.context() + ": set listen: (serve, host a hub) and/or url: (call a remote one)");
    }
  }

  config::Node client;
  PB_TRY(take(s.get_map("client"), client));
  auto& c = out.client;
  PB_TRY(read_duration(client, "connect_timeout", c.connect_timeout));
  PB_TRY(read_duration(client, "request_timeout", c.request_timeout));
  PB_TRY(read_size(client, "max_idle", c.max_idle_per_origin));
  PB_TRY(take(client.get_bool("verify_peer", true), c.tls.verify_peer));
  PB_TRY(take(client.get_string("ca_file", ""), c.tls.ca_file));
  std::int64_t retries = c.max_retries;
  PB_TRY(take(client.get_int("max_retries", retries, 0, 10), retries));
  c.max_retries = static_cast<unsigned>(retries);
  PB_TRY(client.check_unknown_keys());
  // No User-Agent of our own: every header field of a request becomes a message header.
  c.user_agent.clear();

  const bool webhooks = out.webhooks.has_value();
  auto transport = std::make_shared<HttpTransport>(ctx.ex, ctx.name, std::move(out), ctx.lookup);
  if (webhooks) {
    if (auto st = transport->init_webhooks(); !st.ok()) {
      return config::error_at(s.mark_of("webhooks"), s.context() + ": webhooks: " + std::string(st.message()));
    }
  }
  return std::shared_ptr<Transport>(std::move(transport));
}

absl::Status register_http(Registry& registry) { return registry.add_transport("http", make_http); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_transport(Registry& registry) { return register_http(registry); }
#endif

}  // namespace patchbay::http_transport

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::http_transport::register_http)
#endif
