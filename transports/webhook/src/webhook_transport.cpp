// The `webhook` transport (see patchbay/transports/webhook/webhook.hpp and README.md).
//
// One http::Server per transport receives `POST {path}/{topic}` (static senders, verified with
// the configured `secrets`) and `POST {path}/{topic}/{subscription}` (the hub this transport
// registered a subscription with, verified with that subscription's own secret). A verified
// request becomes one Delivery per target subscription, pushed into the subscription's bounded
// channel (a full channel holds the request: backpressure reaches the sender), and the request
// is held until every Delivery is settled. The Ledger remembers each (subscription, webhook-id)
// for twice the tolerance: an id already processed is answered 200 without delivering it again
// (a replay, or a retry whose earlier 2xx the sender missed), an id that failed before is
// delivered again with redelivered() set, an id still being processed gets 503.
#include <patchbay/transports/webhook/webhook.hpp>

#include <patchbay/channel.hpp>
#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/message_fields.hpp>
#include <patchbay/http/server.hpp>
#include <patchbay/http/status_error.hpp>
#include <patchbay/http/webhook_signature.hpp>
#include <patchbay/plugin.hpp>

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <charconv>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

namespace patchbay::webhook_transport {

namespace {

using namespace patchbay::http;
using namespace std::chrono_literals;
namespace wh = patchbay::http::webhook;
namespace json = boost::json;

struct Settings {
  ServerOptions server;
  std::string path = "/webhooks";  // without a trailing '/'; "" for the root
  std::vector<wh::Secret> secrets;
  std::chrono::seconds tolerance = wh::kDefaultTolerance;
  std::string url;         // a patchbay hub, optional
  std::string public_url;  // how the hub reaches this receiver; default: the listener's URL
  std::string api_token;
  bool ordered = false;
  std::size_t max_concurrency = 0;  // 0: the hub's default
  std::size_t queue = 256;
  std::size_t replay_cache = 100000;
  ClientOptions client;
};

std::string encode_segment(std::string_view s) { return boost::urls::encode(s, boost::urls::pchars); }

std::string_view field(const Request& req, std::string_view name) {
  auto v = req[boost::beast::string_view(name.data(), name.size())];
  return std::string_view(v.data(), v.size());
}

void log_line(std::string_view text) { std::cerr << "patchbay webhook: " << text << "\n"; }

// --- the replay ledger ----------------------------------------------------------------------

/// What the receiver knows about one (subscription, webhook-id).
class Ledger {
 public:
  enum class Seen { fresh, failed_before, processed, in_flight };

  Ledger(duration window, std::size_t max_entries) : window_(window), max_(max_entries) {}

  /// Marks `key` in flight unless it was processed or is in flight already; says what it was.
  Seen begin(const std::string& key) {
    std::lock_guard lock(mu_);
    prune(clock::now());
    auto [it, inserted] = entries_.try_emplace(key);
    if (inserted) return Seen::fresh;
    switch (it->second.state) {
      case State::processed:
        return Seen::processed;
      case State::in_flight:
        return Seen::in_flight;
      case State::failed:
        it->second.state = State::in_flight;
        return Seen::failed_before;
    }
    return Seen::fresh;
  }

  /// Records the outcome of a delivery; it is remembered for the window from now.
  void settle(const std::string& key, bool processed) {
    std::lock_guard lock(mu_);
    const auto expires = clock::now() + window_;
    auto& e = entries_[key];
    e.state = processed ? State::processed : State::failed;
    e.expires = expires;
    order_.emplace_back(expires, key);
  }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    return entries_.size();
  }

 private:
  enum class State { in_flight, processed, failed };
  struct Entry {
    State state = State::in_flight;
    clock::time_point expires = clock::time_point::max();
  };

  // order_ lists settled entries by expiry (a re-settled entry appears again, later); the
  // front is dropped when it expired, or — beyond max_ entries — early. In-flight entries are
  // never dropped: their request is still waiting.
  void prune(clock::time_point now) {
    while (!order_.empty() && (order_.front().first <= now || entries_.size() > max_)) {
      auto it = entries_.find(order_.front().second);
      if (it != entries_.end() && it->second.state != State::in_flight && it->second.expires == order_.front().first) {
        entries_.erase(it);
      }
      order_.pop_front();
    }
  }

  mutable std::mutex mu_;
  duration window_;
  std::size_t max_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::pair<clock::time_point, std::string>> order_;
};

// --- one held request's settlement -----------------------------------------------------------

enum class Decision : int { none = 0, ack, retry, drop, stopped };

struct Pending {
  explicit Pending(executor ex) : bell(std::move(ex)) {}
  void decide(Decision d) {
    int expected = 0;
    if (decision.compare_exchange_strong(expected, static_cast<int>(d))) bell.ring();
  }
  Decision get() const { return static_cast<Decision>(decision.load()); }

  Doorbell bell;
  std::atomic<int> decision{0};
};

/// Settles one Delivery: records the outcome in the ledger and wakes the held request.
class Settlement final : public Acknowledger {
 public:
  Settlement(std::shared_ptr<Pending> pending, std::shared_ptr<Ledger> ledger, std::string key)
      : pending_(std::move(pending)), ledger_(std::move(ledger)), key_(std::move(key)) {}

  void ack(std::uint64_t) noexcept override {
    try {
      ledger_->settle(key_, true);
    } catch (...) {
    }
    pending_->decide(Decision::ack);
  }
  void nack(std::uint64_t, bool requeue) noexcept override {
    try {
      ledger_->settle(key_, !requeue);
    } catch (...) {
    }
    pending_->decide(requeue ? Decision::retry : Decision::drop);
  }

 private:
  std::shared_ptr<Pending> pending_;
  std::shared_ptr<Ledger> ledger_;
  std::string key_;
};

class WebhookTransport;

/// One subscription: a bounded channel of Deliveries fed by the request handler.
class Subscription final : public StreamSource<Delivery> {
 public:
  Subscription(executor ex, std::string id, std::string topic, std::size_t capacity, std::optional<wh::Secret> secret,
               std::weak_ptr<WebhookTransport> owner)
      : id_(std::move(id)), topic_(std::move(topic)), secret_(std::move(secret)), owner_(std::move(owner)),
        channel_(std::move(ex), capacity) {}

  awaitable<std::optional<Delivery>> next() override { return channel_.receive(); }

  void close() noexcept override;

  /// Hands a Delivery to the subscriber; suspends while the channel is full. Throws when the
  /// subscription is closed (the Delivery is then nacked by its destructor).
  awaitable<void> offer(Delivery d) { return channel_.send(std::move(d)); }

  const std::string& id() const noexcept { return id_; }
  const std::string& topic() const noexcept { return topic_; }
  const std::optional<wh::Secret>& secret() const noexcept { return secret_; }
  std::string hub_id() const {
    std::lock_guard lock(mu_);
    return hub_id_;
  }
  void set_hub_id(std::string id) {
    std::lock_guard lock(mu_);
    hub_id_ = std::move(id);
  }

 private:
  std::string id_;
  std::string topic_;
  std::optional<wh::Secret> secret_;
  std::weak_ptr<WebhookTransport> owner_;
  Channel<Delivery> channel_;
  mutable std::mutex mu_;
  std::string hub_id_;
  std::atomic<bool> closed_{false};
};

std::string random_hex(std::size_t bytes) {
  auto raw = wh::Secret::generate().key;  // 32 random bytes
  raw.resize(std::min(bytes, raw.size()));
  return absl::BytesToHexString(raw);
}

class WebhookTransport final : public Transport {
 public:
  WebhookTransport(executor ex, Settings settings)
      : ex_(std::move(ex)), settings_(std::move(settings)), client_(ex_, settings_.client),
        ledger_(std::make_shared<Ledger>(2 * settings_.tolerance, settings_.replay_cache)) {}

  std::string_view type() const noexcept override { return "webhook"; }

  Features features() const override {
    Features f;
    f.publish_subscribe = true;
    f.at_least_once = true;
    f.headers = true;
    // What a publish accepted is held by the sender's outbox until this receiver acks it; a
    // receiver that stops answers its held requests 503 and the sender retries (README.md).
    f.durable = true;
    f.ordered = settings_.ordered && !settings_.url.empty();
    return f;
  }

  /// The listener's URL once started (tests, samples, logs).
  std::string url() const { return server_ ? server_->url() : std::string(); }

  /// Removes a closed subscription; unregisters it at the hub unless the transport is stopping.
  void forget(const Subscription& sub) {
    std::string hub_id;
    {
      std::lock_guard lock(mu_);
      by_id_.erase(sub.id());
      if (auto it = by_topic_.find(sub.topic()); it != by_topic_.end()) {
        std::erase_if(it->second, [&](const auto& s) { return s.get() == &sub; });
        if (it->second.empty()) by_topic_.erase(it);
      }
      if (!stopped_) hub_id = sub.hub_id();
    }
    if (!hub_id.empty()) {
      asio::co_spawn(ex_, unregister(std::static_pointer_cast<WebhookTransport>(shared_from_this()), hub_id),
                     asio::detached);
    }
  }

 protected:
  awaitable<void> do_start() override {
    if (started_.exchange(true)) co_return;
    auto server = Server::create(ex_, settings_.server);
    if (!server.ok()) throw std::runtime_error(absl::StrCat("webhook transport: ", server.status().message()));
    server_ = *server;
    std::weak_ptr<WebhookTransport> weak = std::static_pointer_cast<WebhookTransport>(shared_from_this());
    server_->route(bhttp::verb::post, settings_.path + "/{topic}", [weak](Exchange& ex) -> awaitable<void> {
      auto self = weak.lock();
      if (!self) throw_error(errc::stopped);
      return receive(std::move(self), ex, false);
    });
    server_->route(bhttp::verb::post, settings_.path + "/{topic}/{subscription}", [weak](Exchange& ex) -> awaitable<void> {
      auto self = weak.lock();
      if (!self) throw_error(errc::stopped);
      return receive(std::move(self), ex, true);
    });
    server_->start();
    if (settings_.public_url.empty()) settings_.public_url = server_->url();
  }

  awaitable<void> do_stop() override {
    if (stopped_.exchange(true)) co_return;
    std::vector<std::shared_ptr<Subscription>> subs;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, s] : by_id_) subs.push_back(s);
    }
    std::vector<std::string> hub_ids;
    for (auto& s : subs) {
      if (auto h = s->hub_id(); !h.empty()) hub_ids.push_back(std::move(h));
      s->close();  // buffered deliveries are nacked: their requests answer 503
    }
    {
      std::lock_guard lock(mu_);
      for (auto& p : pending_) p->decide(Decision::stopped);
    }
    auto self = std::static_pointer_cast<WebhookTransport>(shared_from_this());
    for (auto& h : hub_ids) co_await unregister(self, h);
    if (server_) co_await server_->stop();
    client_.close_idle();
  }

  awaitable<void> do_publish(Message msg) override {
    if (stopped_) throw_error(errc::stopped, "webhook: publish after stop");
    if (settings_.url.empty()) {
      throw_error(errc::not_supported, "webhook: publish needs url: (a patchbay hub to publish to)");
    }
    msg.stamp();
    Request req{bhttp::verb::post, "/", 11};
    put_message_headers(msg, req.base());
    req.body() = msg.payload.str();
    auto res = co_await client_.request(settings_.url + "/topics/" + encode_segment(msg.topic), std::move(req));
    const unsigned status = res.result_int();
    if (status / 100 != 2) {
      std::string body = res.body();
      throw StatusError(status, body, absl::StrCat("webhook: publish to '", msg.topic, "': HTTP ", status, " ", body));
    }
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    if (stopped_) throw_error(errc::stopped, "webhook: subscribe after stop");
    if (!options.group().empty()) throw_error(errc::not_supported, "webhook: no consumer groups");
    if (options.from().where() != Position::kind::latest) {
      throw_error(errc::not_supported, "webhook: no replay (deliveries start when the subscription exists)");
    }
    auto self = std::static_pointer_cast<WebhookTransport>(shared_from_this());
    std::optional<wh::Secret> secret;
    if (!settings_.url.empty()) secret = wh::Secret::generate();
    auto sub = std::make_shared<Subscription>(ex_, random_hex(12), topic, settings_.queue, secret, self);
    {
      std::lock_guard lock(mu_);
      by_id_[sub->id()] = sub;
      by_topic_[topic].push_back(sub);
    }
    if (secret) {
      // Registered locally first: the hub may deliver before its 201 reaches us.
      try {
        sub->set_hub_id(co_await register_at_hub(topic, sub->id(), *secret));
      } catch (...) {
        sub->close();
        throw;
      }
    }
    if (stopped_) sub->close();
    co_return Stream<Delivery>(sub);
  }

  awaitable<Message> do_request(std::string, Message, deadline) override {
    throw_error(errc::not_supported, "webhook: no request/reply over webhooks (use type: http)");
    co_return Message();
  }

  awaitable<void> do_serve(std::string, ServiceHandler) override {
    throw_error(errc::not_supported, "webhook: no request/reply over webhooks (use type: http)");
    co_return;
  }

 private:
  void authorize(Request& req) const {
    if (!settings_.api_token.empty()) req.set(bhttp::field::authorization, "Bearer " + settings_.api_token);
  }

  /// POST {url}/webhooks/subscriptions; returns the hub's id for the subscription.
  awaitable<std::string> register_at_hub(std::string topic, std::string sub_id, wh::Secret secret) {
    json::object body;
    body["url"] = settings_.public_url + settings_.path + "/" + encode_segment(topic) + "/" + sub_id;
    json::array topics;
    topics.emplace_back(json::string(topic));
    body["topics"] = std::move(topics);
    body["secret"] = secret.to_string();
    body["ordered"] = settings_.ordered;
    if (settings_.max_concurrency) body["max_concurrency"] = settings_.max_concurrency;
    Request req{bhttp::verb::post, "/", 11};
    req.set(bhttp::field::content_type, "application/json");
    authorize(req);
    req.body() = json::serialize(body);
    auto res = co_await client_.request(settings_.url + "/webhooks/subscriptions", std::move(req));
    const unsigned status = res.result_int();
    if (status / 100 != 2) {
      std::string text = res.body();
      throw StatusError(status, text,
                        absl::StrCat("webhook: registering a subscription to '", topic, "' at ", settings_.url,
                                     ": HTTP ", status, " ", text));
    }
    boost::system::error_code ec;
    auto answer = json::parse(res.body(), ec);
    const json::string* id = nullptr;
    if (!ec && answer.is_object()) {
      if (auto* v = answer.as_object().if_contains("id"); v && v->is_string()) id = &v->get_string();
    }
    if (!id) {
      throw_error(errc::bad_message, absl::StrCat("webhook: the hub's answer to a subscription has no id: ", res.body()));
    }
    co_return std::string(id->data(), id->size());
  }

  /// DELETE {url}/webhooks/subscriptions/{id}, best effort (a failure is logged).
  static awaitable<void> unregister(std::shared_ptr<WebhookTransport> self, std::string hub_id) {
    Request req{bhttp::verb::delete_, "/", 11};
    self->authorize(req);
    try {
      auto res = co_await self->client_.request(
          self->settings_.url + "/webhooks/subscriptions/" + encode_segment(hub_id), std::move(req), clock::now() + 5s);
      if (res.result_int() / 100 != 2 && res.result_int() != 404) {
        log_line(absl::StrCat("deleting subscription ", hub_id, " at ", self->settings_.url, ": HTTP ",
                              res.result_int()));
      }
    } catch (const std::exception& e) {
      log_line(absl::StrCat("deleting subscription ", hub_id, " at ", self->settings_.url, ": ", e.what()));
    }
  }

  static void answer(Exchange& ex, bhttp::status status, std::string text) {
    ex.respond(status, std::move(text) + "\n");
  }

  /// One delivery request: verify, hand to the target subscriptions, answer when settled.
  static awaitable<void> receive(std::shared_ptr<WebhookTransport> self, Exchange& ex, bool by_subscription) {
    auto& req = ex.request();
    if (self->stopped_) {
      Response res{bhttp::status::service_unavailable, req.version()};
      res.set(bhttp::field::retry_after, "1");
      res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res.body() = "receiver stopping\n";
      ex.respond(std::move(res));
      co_return;
    }
    const std::string topic(ex.param("topic"));
    std::vector<std::shared_ptr<Subscription>> targets;
    std::vector<wh::Secret> own;
    std::span<const wh::Secret> secrets = self->settings_.secrets;
    if (by_subscription) {
      auto sub = self->find(ex.param("subscription"));
      if (!sub || sub->topic() != topic || !sub->secret()) {
        // The subscription ended: 410 tells a patchbay hub to disable the endpoint.
        answer(ex, bhttp::status::gone, "no such subscription (it ended)");
        co_return;
      }
      own.push_back(*sub->secret());
      secrets = own;
      targets.push_back(std::move(sub));
    }
    const std::string id(field(req, wh::kIdField));
    if (auto error = wh::verify(secrets, id, field(req, wh::kTimestampField), field(req, wh::kSignatureField),
                                req.body(), std::chrono::system_clock::now(), self->settings_.tolerance)) {
      answer(ex, bhttp::status::unauthorized, std::string(wh::to_string(*error)));
      co_return;
    }
    if (!by_subscription) targets = self->subscribers(topic);
    if (targets.empty()) {
      Response res{bhttp::status::service_unavailable, req.version()};
      res.set(bhttp::field::retry_after, "1");
      res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res.body() = absl::StrCat("no subscription for topic '", topic, "' yet\n");
      ex.respond(std::move(res));
      co_return;
    }

    Message msg(Bytes(std::move(req.body())));
    take_message_headers(req.base(), msg,
                         {wh::kIdField, wh::kTimestampField, wh::kSignatureField, "Patchbay-Topic", "User-Agent"});
    // A patchbay sender adds `Content-Type: application/octet-stream` (Beast's spelling) to a
    // message that had no content-type header; it is not a header of the message. A message's
    // own content-type header arrives under the name it was given (usually lower case).
    if (auto ct = msg.headers.get("Content-Type"); ct && *ct == "application/octet-stream") {
      msg.headers.remove("Content-Type");
    }
    msg.id = id;
    msg.topic = topic;
    msg.stamp();

    std::size_t already = 0;
    bool busy = false;
    std::vector<std::shared_ptr<Pending>> waits;
    struct Untrack {
      WebhookTransport& t;
      std::vector<std::shared_ptr<Pending>>& waits;
      ~Untrack() {
        std::lock_guard lock(t.mu_);
        for (auto& p : waits) t.pending_.erase(p);
      }
    } untrack{*self, waits};
    const auto ex_here = co_await asio::this_coro::executor;
    for (auto& sub : targets) {
      std::string key = absl::StrCat(sub->id(), "\n", id);
      const auto seen = self->ledger_->begin(key);
      if (seen == Ledger::Seen::processed) {
        ++already;
        continue;
      }
      if (seen == Ledger::Seen::in_flight) {
        busy = true;
        continue;
      }
      auto pending = std::make_shared<Pending>(ex_here);
      {
        std::lock_guard lock(self->mu_);
        self->pending_.insert(pending);
        if (self->stopped_) pending->decide(Decision::stopped);
      }
      waits.push_back(pending);
      auto settlement = std::make_shared<Settlement>(pending, self->ledger_, std::move(key));
      Delivery d(Message(msg), Position(), seen == Ledger::Seen::failed_before, std::move(settlement), 0);
      try {
        co_await sub->offer(std::move(d));
      } catch (const boost::system::system_error& e) {
        if (e.code() != errc::closed) throw;  // cancelled (request deadline): the Delivery was nacked
        // Closed meanwhile: the Delivery was destroyed, hence nacked (Decision::retry).
      }
    }
    for (auto& p : waits) {
      while (p->get() == Decision::none) co_await p->bell.wait();
    }

    bool acked = false, retry = busy, dropped = false;
    for (auto& p : waits) {
      switch (p->get()) {
        case Decision::ack:
          acked = true;
          break;
        case Decision::drop:
          dropped = true;
          break;
        default:
          retry = true;
          break;
      }
    }
    if (retry) {
      answer(ex, bhttp::status::service_unavailable,
             busy ? "this webhook-id is being processed; retry later" : "not processed (nack); retry later");
    } else if (acked) {
      ex.respond(Response{bhttp::status::no_content, req.version()});
    } else if (dropped) {
      answer(ex, bhttp::status::accepted, "dropped by the receiver (nack without requeue)");
    } else {
      (void)already;
      answer(ex, bhttp::status::ok, "already processed (replayed webhook-id)");
    }
  }

  std::shared_ptr<Subscription> find(std::string_view id) {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(std::string(id));
    return it == by_id_.end() ? nullptr : it->second;
  }

  std::vector<std::shared_ptr<Subscription>> subscribers(const std::string& topic) {
    std::lock_guard lock(mu_);
    auto it = by_topic_.find(topic);
    return it == by_topic_.end() ? std::vector<std::shared_ptr<Subscription>>() : it->second;
  }

  executor ex_;
  Settings settings_;
  Client client_;
  std::shared_ptr<Ledger> ledger_;
  std::shared_ptr<Server> server_;
  std::mutex mu_;  // guards by_id_, by_topic_, pending_
  std::map<std::string, std::shared_ptr<Subscription>, std::less<>> by_id_;
  std::map<std::string, std::vector<std::shared_ptr<Subscription>>, std::less<>> by_topic_;
  std::set<std::shared_ptr<Pending>> pending_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
};

void Subscription::close() noexcept {
  if (closed_.exchange(true)) return;
  channel_.close();  // buffered Deliveries are destroyed, hence nacked: their requests answer 503
  if (auto owner = owner_.lock()) {
    try {
      owner->forget(*this);
    } catch (...) {
    }
  }
}

// --- settings ---------------------------------------------------------------------------------

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

absl::Status read_size(const config::Node& s, std::string_view key, std::size_t& out, std::int64_t min = 0) {
  auto v = s.get_int(key, static_cast<std::int64_t>(out), min);
  if (!v.ok()) return v.status();
  out = static_cast<std::size_t>(*v);
  return absl::OkStatus();
}

absl::Status parse_listen(const config::Node& s, const std::string& text, ServerOptions& out) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    return config::error_at(s.mark_of("listen"), s.context() + ": listen must be host:port, e.g. 127.0.0.1:8090");
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

absl::StatusOr<std::shared_ptr<Transport>> make_webhook(const TransportContext& ctx) {
  const auto& s = ctx.settings;
  Settings out;
  std::string listen;
  PB_TRY(take(s.require_string("listen"), listen));
  PB_TRY(parse_listen(s, listen, out.server));

  PB_TRY(take(s.get_string("path", out.path), out.path));
  if (out.path.empty() || out.path.front() != '/') {
    return config::error_at(s.mark_of("path"), s.context() + ": path must start with '/'");
  }
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  if (!out.path.empty()) {
    if (auto p = parse_route_pattern(out.path + "/{topic}"); !p.ok() || out.path.find('{') != std::string::npos) {
      return config::error_at(s.mark_of("path"), s.context() + ": path must be literal segments, e.g. /webhooks");
    }
  }

  std::vector<std::string> secrets;
  PB_TRY(take(s.get_string_list("secrets", {}), secrets));
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    auto secret = wh::Secret::parse(secrets[i]);
    if (!secret.ok()) {
      return config::error_at(s.mark_of("secrets"),
                              absl::StrCat(s.context(), ": secrets entry ", i + 1, ": ", secret.status().message()));
    }
    out.secrets.push_back(*std::move(secret));
  }
  auto tolerance = s.get_duration("tolerance", std::chrono::duration_cast<std::chrono::milliseconds>(out.tolerance));
  if (!tolerance.ok()) return tolerance.status();
  if (*tolerance < std::chrono::seconds(1)) {
    return config::error_at(s.mark_of("tolerance"), s.context() + ": tolerance must be at least 1s");
  }
  out.tolerance = std::chrono::duration_cast<std::chrono::seconds>(*tolerance);

  PB_TRY(take(s.get_string("url", ""), out.url));
  while (!out.url.empty() && out.url.back() == '/') out.url.pop_back();
  if (!out.url.empty() && out.url.rfind("http://", 0) != 0 && out.url.rfind("https://", 0) != 0) {
    return config::error_at(s.mark_of("url"), s.context() + ": url must start with http:// or https://");
  }
  PB_TRY(take(s.get_string("public_url", ""), out.public_url));
  while (!out.public_url.empty() && out.public_url.back() == '/') out.public_url.pop_back();
  if (!out.public_url.empty() && out.public_url.rfind("http://", 0) != 0 && out.public_url.rfind("https://", 0) != 0) {
    return config::error_at(s.mark_of("public_url"), s.context() + ": public_url must start with http:// or https://");
  }
  PB_TRY(take(s.get_string("api_token", ""), out.api_token));
  PB_TRY(take(s.get_bool("ordered", false), out.ordered));
  PB_TRY(read_size(s, "max_concurrency", out.max_concurrency, 0));
  PB_TRY(read_size(s, "queue", out.queue, 1));
  PB_TRY(read_size(s, "replay_cache", out.replay_cache, 1));
  if (out.url.empty()) {
    for (auto key : {"public_url", "api_token", "ordered", "max_concurrency"}) {
      if (s.has(key)) return config::error_at(s.mark_of(key), s.context() + ": '" + key + "' needs url: (a hub)");
    }
    if (out.secrets.empty()) {
      return config::error_at(s.mark(), s.context() + ": set secrets: (for static senders) and/or url: (a hub to "
                                                      "register subscriptions with)");
    }
  } else if (out.public_url.empty() && (out.server.host == "0.0.0.0" || out.server.host == "::")) {
    return config::error_at(s.mark_of("listen"), s.context() + ": listening on all interfaces, set public_url: (the "
                                                               "URL the hub delivers to)");
  }

  config::Node limits;
  PB_TRY(take(s.get_map("limits"), limits));
  auto& l = out.server.limits;
  PB_TRY(read_size(limits, "header_limit", l.header_limit, 256));
  PB_TRY(read_size(limits, "body_limit", l.body_limit, 0));
  PB_TRY(read_duration(limits, "header_timeout", l.header_timeout));
  PB_TRY(read_duration(limits, "idle_timeout", l.idle_timeout));
  PB_TRY(read_duration(limits, "request_timeout", l.request_timeout));
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
    out.server.tls = t;
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
  return std::shared_ptr<Transport>(std::make_shared<WebhookTransport>(ctx.ex, std::move(out)));
}

absl::Status register_webhook(Registry& registry) { return registry.add_transport("webhook", make_webhook); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_transport(Registry& registry) { return register_webhook(registry); }
#endif

}  // namespace patchbay::webhook_transport

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::webhook_transport::register_webhook)
#endif
