// The `websocket` transport (see patchbay/transports/websocket/websocket.hpp and README.md).
//
// One Beast WebSocket connection (`Link`) per subscription, plus one per topic for publishing.
// Each Link lives on its own strand with one reader coroutine (Beast answers the hub's pings
// inside reads and sends keep-alive pings of its own when the connection is quiet); the
// publishing Link also has a writer coroutine, so that publishes from any thread are written
// one at a time. Frames are the JSON objects of patchbay/http/websocket.hpp.
//
// Subscriptions: the first connection is made inside subscribe(), so that it returns once
// the hub's cursor exists. The reader pushes Deliveries into a bounded Channel (a slow
// consumer stops the reader; the hub then cuts the connection at its send_buffer and the
// subscription reconnects and resumes: no loss within the hub's history). After a dropped
// connection (hub restart, 1001, network) it reconnects with exponential backoff and resumes
// after the last position it delivered (?after=), so it sees a gap frame when the hub's
// history no longer reaches it.
//
// Publishing: the publishing Link of the topic is made on first use and reused; publish()
// sends {"type":"publish",...} and completes when the hub's {"type":"published"} with the same
// id arrives; {"type":"error"} and a closed connection fail it (a close code is named in the
// error). Messages the hub sends on that connection (it subscribes from now) are skipped.
#include <patchbay/transports/websocket/websocket.hpp>

#include <patchbay/channel.hpp>
#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/http/status_error.hpp>
#include <patchbay/http/websocket.hpp>
#include <patchbay/plugin.hpp>

#include <absl/strings/str_cat.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <charconv>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <random>

namespace patchbay::websocket_transport {

namespace {

namespace beast = boost::beast;
namespace bws = boost::beast::websocket;
namespace bhttp = boost::beast::http;
namespace wsf = patchbay::http::websocket;
using tcp = asio::ip::tcp;
using asio::use_awaitable_t;
constexpr auto tuple_awaitable = asio::as_tuple(use_awaitable_t<executor>{});
using WsStream = bws::stream<beast::tcp_stream>;

struct Settings {
  std::string host;
  std::string port;
  std::string base_path;  // a path prefix from the url, without the trailing '/'
  std::string ws_path = "/topics/{topic}/ws";
  duration reconnect_delay = std::chrono::seconds(1);
  duration max_backoff = std::chrono::seconds(30);
  duration connect_timeout = std::chrono::seconds(5);
  duration ping_interval = std::chrono::seconds(30);
  std::size_t max_message = 64 * 1024 * 1024;
  std::size_t buffer = 256;  // deliveries read ahead per subscription
  std::vector<std::pair<std::string, std::string>> headers;
};

std::string expand(const Settings& s, std::string_view topic) {
  std::string out = s.base_path + s.ws_path;
  auto at = out.find("{topic}");
  if (at != std::string::npos) out.replace(at, 7, boost::urls::encode(topic, boost::urls::pchars));
  return out;
}

std::string describe(const boost::system::error_code& ec, const WsStream& ws) {
  // The hub's close frame, when one arrived (the error may be another one: a write that failed
  // meanwhile, Beast's own teardown).
  if (ec == bws::error::closed || ws.reason().code != bws::close_code::none) {
    return absl::StrCat("closed by the hub (", static_cast<int>(ws.reason().code), " ", std::string(ws.reason().reason.c_str()), ")");
  }
  return ec.message();
}

/// Connects and performs the handshake on `target`. Throws system_error (or StatusError-like
/// text for a refused upgrade).
struct Accepted {
  std::string start;             // X-Patchbay-Position: where the hub's cursor starts
  std::size_t max_message = 0;   // X-Patchbay-Max-Message: the hub's limit (0: not said)
};

awaitable<void> connect(WsStream& ws, const Settings& s, const std::string& target, Accepted* accepted = nullptr) {
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(s.host, s.port, tuple_awaitable);
  if (rec) throw_error(errc::unavailable, absl::StrCat("websocket: cannot resolve ", s.host, ": ", rec.message()));
  auto& tcp_stream = beast::get_lowest_layer(ws);
  tcp_stream.expires_after(s.connect_timeout);
  auto [cec, endpoint] = co_await tcp_stream.async_connect(results, tuple_awaitable);
  if (cec) {
    throw_error(errc::unavailable, absl::StrCat("websocket: cannot connect to ", s.host, ":", s.port, ": ", cec.message()));
  }
  tcp_stream.socket().set_option(tcp::no_delay(true));
  tcp_stream.expires_never();
  bws::stream_base::timeout t;
  t.handshake_timeout = s.connect_timeout;
  if (s.ping_interval > duration::zero()) {
    // Beast pings when the connection was quiet for half of it, and gives up after all of it.
    t.idle_timeout = s.ping_interval * 2;
    t.keep_alive_pings = true;
  } else {
    t.idle_timeout = bws::stream_base::none();
    t.keep_alive_pings = false;
  }
  ws.set_option(t);
  ws.read_message_max(s.max_message);
  ws.auto_fragment(false);
  ws.set_option(bws::stream_base::decorator([headers = s.headers](bws::request_type& req) {
    req.set(bhttp::field::user_agent, "patchbay-websocket");
    for (const auto& [k, v] : headers) req.set(k, v);
  }));
  bws::response_type res;
  auto [hec] = co_await ws.async_handshake(res, s.host + ":" + s.port, target, tuple_awaitable);
  if (hec) {
    if (hec == bws::error::upgrade_declined) {
      const unsigned status = res.result_int();
      std::string body = res.body();
      while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
      throw http::StatusError(status, body, absl::StrCat("websocket: ", target, ": HTTP ", status, " ", body));
    }
    throw_error(errc::unavailable, absl::StrCat("websocket: handshake with ", s.host, ":", s.port, " failed: ", hec.message()));
  }
  if (accepted) {
    accepted->start = std::string(res["X-Patchbay-Position"]);
    const auto max = res["X-Patchbay-Max-Message"];
    std::size_t v = 0;
    if (std::from_chars(max.data(), max.data() + max.size(), v).ec == std::errc()) accepted->max_message = v;
  }
}

duration jittered(duration d) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> f(0.8, 1.2);
  return std::chrono::duration_cast<duration>(d * f(rng));
}

// --- subscriptions -------------------------------------------------------------------------

class Subscription final : public StreamSource<Delivery>, public std::enable_shared_from_this<Subscription> {
 public:
  Subscription(executor ex, const Settings& s, std::string topic, Position from)
      : strand_(asio::make_strand(ex)), settings_(s), topic_(std::move(topic)), from_(std::move(from)),
        ws_(std::make_unique<WsStream>(strand_)), out_(ex, s.buffer) {}

  /// The first connection: throws when it fails.
  awaitable<void> open() {
    co_await asio::co_spawn(strand_, open_on_strand(shared_from_this()), use_awaitable_t<executor>{});
  }

  awaitable<std::optional<Delivery>> next() override { co_return co_await out_.receive(); }

  void close() noexcept override {
    if (closed_.exchange(true)) return;
    out_.close();
    asio::post(strand_, [self = shared_from_this()] {
      boost::system::error_code ec;
      beast::get_lowest_layer(*self->ws_).socket().close(ec);
      self->wake_.cancel();
    });
  }

 private:
  static awaitable<void> open_on_strand(std::shared_ptr<Subscription> self) {
    co_await self->connect_once();
    asio::co_spawn(self->strand_, run(self), asio::detached);
  }

  std::string target() const {
    std::string t = expand(settings_, topic_);
    if (!position_.empty()) return t + "?after=" + position_;
    switch (from_.where()) {
      case Position::kind::latest:
        return t;
      case Position::kind::earliest:
        return t + "?from=earliest";
      case Position::kind::after:
        return t + "?after=" + boost::urls::encode(from_.token(), boost::urls::unreserved_chars);
    }
    return t;
  }

  static awaitable<void> run(std::shared_ptr<Subscription> self) {
    auto delay = self->settings_.reconnect_delay;
    for (;;) {
      co_await self->read_all();
      if (self->closed_) break;
      // Reconnect with backoff, resuming after the last delivered position.
      for (;;) {
        self->wake_.expires_after(jittered(delay));
        auto [ec] = co_await self->wake_.async_wait(tuple_awaitable);
        (void)ec;
        if (self->closed_) break;
        delay = std::min(delay * 2, self->settings_.max_backoff);
        self->ws_ = std::make_unique<WsStream>(self->strand_);
        try {
          co_await self->connect_once();
          delay = self->settings_.reconnect_delay;
          if (self->closed_) {
            // close() came while connecting: its socket close may have missed this one.
            boost::system::error_code ignored;
            beast::get_lowest_layer(*self->ws_).socket().close(ignored);
          }
          break;
        } catch (const http::StatusError& e) {
          // The hub answered, but not with an upgrade: 503 (stopping, busy) is worth another
          // try; anything else (404: the topic is gone) ends the subscription.
          if (e.status() != 503) {
            std::cerr << "patchbay websocket: topic '" << self->topic_ << "': " << e.what() << "; the subscription ends\n";
            self->closed_ = true;
            break;
          }
        } catch (const boost::system::system_error&) {
          // Not reachable yet: try again after the next delay.
        }
      }
      if (self->closed_) break;
    }
    self->out_.close();
  }

  /// Connects; before the first message, the hub's X-Patchbay-Position (where its cursor
  /// starts) becomes the position to resume after, so that nothing published after subscribe()
  /// is lost when the connection drops before the first message.
  awaitable<void> connect_once() {
    Accepted accepted;
    co_await connect(*ws_, settings_, target(), &accepted);
    if (position_.empty() && !accepted.start.empty()) position_ = std::move(accepted.start);
  }

  /// Reads frames until the connection ends.
  awaitable<void> read_all() {
    auto& ws = *ws_;
    beast::flat_buffer buffer;
    for (;;) {
      buffer.clear();
      auto [ec, n] = co_await ws.async_read(buffer, tuple_awaitable);
      if (ec) {
        if (!closed_ && ec == bws::error::closed && ws.reason().code != bws::close_code::going_away) {
          std::cerr << "patchbay websocket: topic '" << topic_ << "': " << describe(ec, ws) << "; reconnecting\n";
        }
        boost::system::error_code ignored;
        beast::get_lowest_layer(ws).socket().close(ignored);
        co_return;
      }
      const auto data = buffer.cdata();
      auto frame = wsf::decode(std::string_view(static_cast<const char*>(data.data()), data.size()));
      if (!frame) {
        std::cerr << "patchbay websocket: topic '" << topic_ << "': dropped a frame that does not decode\n";
        continue;
      }
      std::optional<Delivery> d;
      if (frame->type == wsf::Frame::Type::message) {
        Message msg = std::move(*frame->message);
        msg.topic = topic_;
        position_ = frame->position;
        d.emplace(std::move(msg), Position::after(frame->position));
      } else if (frame->type == wsf::Frame::Type::gap) {
        // The hub continues at resumes_at ("<epoch>:<seq>" of the next message): a reconnection
        // before that message arrives resumes just before it.
        if (frame->gap->resumes_at.where() == Position::kind::after) {
          const auto& token = frame->gap->resumes_at.token();
          const auto colon = token.find(':');
          std::uint64_t seq = 0;
          if (colon != std::string::npos) {
            auto r = std::from_chars(token.data() + colon + 1, token.data() + token.size(), seq);
            if (r.ec == std::errc() && seq > 0) position_ = token.substr(0, colon + 1) + std::to_string(seq - 1);
          }
        }
        d.emplace(Delivery::gap(std::move(*frame->gap)));
      } else {
        continue;
      }
      try {
        co_await out_.send(std::move(*d));
      } catch (const boost::system::system_error&) {
        co_return;  // closed
      }
    }
  }

  asio::strand<executor> strand_;
  const Settings settings_;
  std::string topic_;
  Position from_;
  std::string position_;  // the last delivered (strand)
  std::unique_ptr<WsStream> ws_;
  asio::steady_timer wake_{strand_};
  Channel<Delivery> out_;
  std::atomic<bool> closed_{false};
};

// --- publishing ----------------------------------------------------------------------------

/// The publishing connection of one topic.
class Publisher : public std::enable_shared_from_this<Publisher> {
 public:
  Publisher(executor ex, const Settings& s, std::string topic)
      : strand_(asio::make_strand(ex)), settings_(s), topic_(std::move(topic)), ws_(strand_), writer_bell_(strand_) {}

  struct Pending {
    explicit Pending(executor ex) : bell(std::move(ex)) {}
    Doorbell bell;
    bool done = false;
    std::string error;  // empty: published
    errc code = errc::unavailable;
  };

  awaitable<void> open() {
    co_await asio::co_spawn(strand_, open_on_strand(shared_from_this()), use_awaitable_t<executor>{});
  }

  bool alive() const { return !dead_.load(); }

  /// Sends `msg` and waits for the hub's answer.
  awaitable<void> publish(const Message& msg) {
    auto pending = std::make_shared<Pending>(co_await asio::this_coro::executor);
    auto frame = wsf::encode_publish(msg);
    if (max_message_ > 0 && frame.size() > max_message_) {
      // The hub would close the connection with 1009; say so without losing the connection.
      throw_error(errc::payload_too_large,
                  absl::StrCat("websocket: publish on '", topic_, "': the message (", frame.size(),
                               " bytes as a frame) is above the hub's max_message (", max_message_,
                               " bytes): the hub would close with 1009 (message too big)"));
    }
    {
      std::lock_guard lock(mu_);
      if (dead_) throw_error(errc::unavailable, "websocket: " + death_);
      pending_[msg.id] = pending;
      queue_.push_back(std::move(frame));
    }
    writer_bell_.ring();
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (pending->done) break;
      }
      co_await pending->bell.wait();
    }
    if (!pending->error.empty()) throw_error(pending->code, pending->error);
  }

  void close() {
    asio::post(strand_, [self = shared_from_this()] {
      boost::system::error_code ec;
      beast::get_lowest_layer(self->ws_).socket().close(ec);
      self->writer_bell_.ring();
    });
  }

 private:
  static awaitable<void> open_on_strand(std::shared_ptr<Publisher> self) {
    // The hub also sends this connection what is published from now on; the reader skips it.
    Accepted accepted;
    co_await connect(self->ws_, self->settings_, expand(self->settings_, self->topic_), &accepted);
    self->max_message_ = accepted.max_message;
    asio::co_spawn(self->strand_, read_loop(self), asio::detached);
    asio::co_spawn(self->strand_, write_loop(self), asio::detached);
  }

  static awaitable<void> write_loop(std::shared_ptr<Publisher> self) {
    for (;;) {
      std::deque<std::string> batch;
      {
        std::lock_guard lock(self->mu_);
        if (self->dead_) co_return;
        batch.swap(self->queue_);
      }
      if (batch.empty()) {
        co_await self->writer_bell_.wait();
        continue;
      }
      for (const auto& text : batch) {
        auto [ec, n] = co_await self->ws_.async_write(asio::buffer(text), tuple_awaitable);
        if (ec) {
          // The reader reports why (the hub's close frame, e.g. 1009, is still to be read) and
          // fails every pending publish.
          boost::system::error_code ignored;
          beast::get_lowest_layer(self->ws_).socket().shutdown(tcp::socket::shutdown_send, ignored);
          co_return;
        }
      }
    }
  }

  static awaitable<void> read_loop(std::shared_ptr<Publisher> self) {
    beast::flat_buffer buffer;
    for (;;) {
      buffer.clear();
      auto [ec, n] = co_await self->ws_.async_read(buffer, tuple_awaitable);
      if (ec) {
        self->fail(absl::StrCat("publish on '", self->topic_, "': ", describe(ec, self->ws_)), errc::unavailable);
        boost::system::error_code ignored;
        beast::get_lowest_layer(self->ws_).socket().close(ignored);
        self->writer_bell_.ring();
        co_return;
      }
      const auto data = buffer.cdata();
      std::string_view text(static_cast<const char*>(data.data()), data.size());
      if (text.rfind("{\"type\":\"message\"", 0) == 0 || text.rfind("{\"type\":\"gap\"", 0) == 0) continue;
      auto frame = wsf::decode(text);
      if (!frame) continue;
      if (frame->type != wsf::Frame::Type::published && frame->type != wsf::Frame::Type::error) continue;
      std::shared_ptr<Pending> p;
      {
        std::lock_guard lock(self->mu_);
        auto it = self->pending_.find(frame->id);
        if (it == self->pending_.end()) continue;
        p = std::move(it->second);
        self->pending_.erase(it);
        p->done = true;
        if (frame->type == wsf::Frame::Type::error) {
          p->error = absl::StrCat("websocket: the hub refused the message: ", frame->error);
          p->code = errc::unavailable;
        }
      }
      p->bell.ring();
    }
  }

  void fail(std::string why, errc code) {
    std::map<std::string, std::shared_ptr<Pending>> failed;
    {
      std::lock_guard lock(mu_);
      if (!dead_) {
        dead_ = true;
        death_ = why;
      }
      failed.swap(pending_);
      queue_.clear();
      for (auto& [id, p] : failed) {
        p->done = true;
        p->error = "websocket: " + why;
        p->code = code;
      }
    }
    for (auto& [id, p] : failed) p->bell.ring();
  }

  asio::strand<executor> strand_;
  const Settings settings_;
  std::string topic_;
  WsStream ws_;
  Doorbell writer_bell_;
  std::mutex mu_;
  std::deque<std::string> queue_;
  std::map<std::string, std::shared_ptr<Pending>> pending_;
  std::atomic<bool> dead_{false};
  std::string death_;
  std::size_t max_message_ = 0;  // set before publish() is first called
};

// --- the transport -------------------------------------------------------------------------

class WebSocketTransport final : public Transport {
 public:
  WebSocketTransport(executor ex, Settings settings) : ex_(std::move(ex)), settings_(std::move(settings)) {}

  std::string_view type() const noexcept override { return "websocket"; }

  Features features() const override {
    Features f;
    f.publish_subscribe = true;
    f.ordered = true;
    f.replay = true;
    f.gap_signal = true;
    f.headers = true;
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
    for (auto& [topic, p] : publishers_) p->close();
    publishers_.clear();
  }

  awaitable<void> do_publish(Message msg) override {
    if (stopped_) throw_error(errc::stopped, "websocket: publish after stop");
    msg.stamp();
    std::shared_ptr<Publisher> p;
    {
      std::lock_guard lock(mu_);
      if (auto it = publishers_.find(msg.topic); it != publishers_.end() && it->second->alive()) p = it->second;
    }
    if (!p) {
      // Two first publishes may both connect; the later one replaces the earlier (which ends
      // with its last answer).
      auto fresh = std::make_shared<Publisher>(ex_, settings_, msg.topic);
      co_await fresh->open();
      std::lock_guard lock(mu_);
      auto& slot = publishers_[msg.topic];
      if (slot && slot->alive()) {
        fresh->close();
      } else {
        if (slot) slot->close();
        slot = fresh;
      }
      p = slot;
    }
    co_await p->publish(msg);
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    if (stopped_) throw_error(errc::stopped, "websocket: subscribe after stop");
    if (!options.group().empty()) throw_error(errc::not_supported, "websocket: no consumer groups");
    auto sub = std::make_shared<Subscription>(ex_, settings_, topic, options.from());
    co_await sub->open();
    {
      std::lock_guard lock(mu_);
      std::erase_if(subscriptions_, [](const auto& w) { return w.expired(); });
      subscriptions_.push_back(sub);
    }
    if (stopped_) sub->close();
    co_return Stream<Delivery>(sub);
  }

  awaitable<Message> do_request(std::string, Message, deadline) override {
    throw_error(errc::not_supported, "websocket: no request/reply (use type: http)");
    co_return Message();
  }

  awaitable<void> do_serve(std::string, ServiceHandler) override {
    throw_error(errc::not_supported, "websocket: no request/reply (use type: http)");
    co_return;
  }

 private:
  executor ex_;
  Settings settings_;
  std::mutex mu_;
  std::vector<std::weak_ptr<Subscription>> subscriptions_;
  std::map<std::string, std::shared_ptr<Publisher>, std::less<>> publishers_;
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

absl::StatusOr<std::shared_ptr<Transport>> make_websocket(const TransportContext& ctx) {
  const auto& s = ctx.settings;
  Settings out;
  std::string url;
  PB_TRY(take(s.require_string("url"), url));
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed) {
    return config::error_at(s.mark_of("url"), s.context() + ": url is not an absolute URL (" + parsed.error().message() + ")");
  }
  const boost::urls::url_view& u = *parsed;
  const std::string scheme = u.scheme();
  if (scheme != "ws" && scheme != "http") {
    return config::error_at(s.mark_of("url"),
                            s.context() + ": url must start with ws:// or http:// (wss:// and https:// are not supported yet)");
  }
  if (u.has_userinfo() || u.has_query() || u.has_fragment()) {
    return config::error_at(s.mark_of("url"), s.context() + ": url must have no user info, query or fragment");
  }
  switch (u.host_type()) {
    case boost::urls::host_type::ipv4:
      out.host = u.host_ipv4_address().to_string();
      break;
    case boost::urls::host_type::ipv6:
      out.host = u.host_ipv6_address().to_string();
      break;
    case boost::urls::host_type::name:
      out.host = u.host_name();
      break;
    default:
      return config::error_at(s.mark_of("url"), s.context() + ": url has an unsupported host");
  }
  out.port = u.has_port() && !u.port().empty() ? std::string(u.port()) : std::string("80");
  out.base_path = std::string(u.encoded_path());  // kept encoded: it goes into the request target
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  if (out.host.empty()) return config::error_at(s.mark_of("url"), s.context() + ": url has no host");
  PB_TRY(take(s.get_string("ws_path", out.ws_path), out.ws_path));
  if (out.ws_path.empty() || out.ws_path.front() != '/') {
    return config::error_at(s.mark_of("ws_path"), s.context() + ": ws_path must start with '/'");
  }
  PB_TRY(read_duration(s, "reconnect_delay", out.reconnect_delay));
  PB_TRY(read_duration(s, "max_backoff", out.max_backoff));
  PB_TRY(read_duration(s, "connect_timeout", out.connect_timeout));
  PB_TRY(read_duration(s, "ping_interval", out.ping_interval));
  if (out.reconnect_delay <= duration::zero()) out.reconnect_delay = std::chrono::milliseconds(1);
  if (out.max_backoff < out.reconnect_delay) out.max_backoff = out.reconnect_delay;
  std::int64_t max_message = static_cast<std::int64_t>(out.max_message);
  PB_TRY(take(s.get_int("max_message", max_message, 1024), max_message));
  out.max_message = static_cast<std::size_t>(max_message);
  std::int64_t buffer = static_cast<std::int64_t>(out.buffer);
  PB_TRY(take(s.get_int("buffer", buffer, 1, 1'000'000), buffer));
  out.buffer = static_cast<std::size_t>(buffer);
  config::Node headers;
  PB_TRY(take(s.get_map("headers"), headers));
  if (s.has("headers")) {
    for (auto it = headers.yaml().begin(); it != headers.yaml().end(); ++it) {
      const YAML::Node key = it->first, value = it->second;
      out.headers.emplace_back(key.as<std::string>(), value.as<std::string>());
    }
  }
  return std::shared_ptr<Transport>(std::make_shared<WebSocketTransport>(ctx.ex, std::move(out)));
}

absl::Status register_websocket(Registry& registry) { return registry.add_transport("websocket", make_websocket); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_transport(Registry& registry) { return register_websocket(registry); }
#endif

}  // namespace patchbay::websocket_transport

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::websocket_transport::register_websocket)
#endif
