// The `redis` transport: Redis Pub/Sub (at most once) or Redis Streams (at least once), one
// mode per transport entry; a binding chooses its mode by naming the entry. See README.md.
//
// Connections. One command link per transport carries PUBLISH / XADD / XACK / XGROUP (pipelined:
// concurrent publishes share writes). Pub/Sub mode adds one subscriber link shared by every
// subscription (one SUBSCRIBE or PSUBSCRIBE per subscribe call; UNSUBSCRIBE when the last local
// subscriber of a channel leaves). Streams mode gives each subscription its own reader link,
// because XREAD / XREADGROUP ... BLOCK holds its connection until data comes.
//
// Locking. PubSubRouter::mutex (routes) → PubSubSubscription::mutex (its queue); a
// StreamSubscription's mutex guards its queue, unacked map and flags; Transport::mutex_ guards
// the list of live stream subscriptions. No lock is held across a suspension point, and no
// lock is held while another of these is taken, except router → subscription.
#include <patchbay/transports/redis/redis.hpp>

#include "entries.hpp"
#include "link.hpp"

#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/transport.hpp>
#include <patchbay/transports/redis/envelope.hpp>
#include <patchbay/transports/redis/resp.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/url/parse.hpp>

#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>
#include <unordered_set>

namespace patchbay::redis {
namespace {

using namespace std::chrono_literals;
using namespace detail;

enum class Mode { pubsub, streams };

struct Settings {
  Endpoint endpoint;
  Mode mode = Mode::pubsub;
  std::string prefix;
  bool envelope = true;
  bool patterns = true;
  std::size_t buffer = 65536;
  std::size_t max_len = 0;
  bool exact_trim = false;
  std::chrono::milliseconds claim_idle{30000};
  std::chrono::milliseconds block{1000};
  std::size_t batch = 128;
  std::string consumer;
  std::size_t max_payload = 16u << 20;
  std::chrono::milliseconds drain_timeout{5000};
};

std::string random_hex(int digits) {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  while (static_cast<int>(out.size()) < digits) {
    auto v = gen();
    for (int i = 0; i < 16 && static_cast<int>(out.size()) < digits; ++i, v >>= 4) out += hex[v & 15];
  }
  return out;
}

awaitable<void> sleep_for(duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable_t<executor>{});
}

// --- Pub/Sub ------------------------------------------------------------------------------

class PubSubRouter;

/// A Pub/Sub subscription: a bounded queue filled by the subscriber link.
class PubSubSubscription final : public StreamSource<Delivery> {
 public:
  PubSubSubscription(executor ex, std::size_t buffer) : bell_(std::move(ex)), buffer_(buffer) {}
  ~PubSubSubscription() override { close(); }

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (dropped_ != 0) {
          Gap g;
          g.missed = dropped_;
          g.reason = "slow subscriber: more than " + std::to_string(buffer_) +
                     " messages waited (the transport's `buffer`); the oldest were dropped";
          dropped_ = 0;
          co_return Delivery::gap(std::move(g));
        }
        if (!queue_.empty()) {
          Delivery d = std::move(queue_.front());
          queue_.pop_front();
          co_return d;
        }
        if (closed_) co_return std::nullopt;
        waiting_ = true;
      }
      co_await bell_.wait();
    }
  }

  void close() noexcept override;

  /// Router mutex held: ends the stream without calling back into the router.
  void end() noexcept {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    bell_.ring();
  }

  void push(Delivery d) {
    bool ring = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      if (queue_.size() >= buffer_) {
        queue_.pop_front();
        ++dropped_;
      }
      queue_.push_back(std::move(d));
      ring = waiting_;
      waiting_ = false;
    }
    if (ring) bell_.ring();
  }

  void attach(std::shared_ptr<PubSubRouter> router, std::pair<bool, std::string> key) {
    router_ = std::move(router);
    key_ = std::move(key);
  }

 private:
  std::mutex mutex_;
  Doorbell bell_;
  std::deque<Delivery> queue_;
  const std::size_t buffer_;
  std::uint64_t dropped_ = 0;
  bool closed_ = false;
  bool waiting_ = false;
  std::shared_ptr<PubSubRouter> router_;
  std::pair<bool, std::string> key_;  // (pattern?, channel or pattern)
};

/// Channels and patterns → local subscriptions; owns the subscriber link.
class PubSubRouter : public std::enable_shared_from_this<PubSubRouter> {
 public:
  using Key = std::pair<bool, std::string>;

  PubSubRouter(executor ex, Settings s) : ex_(std::move(ex)), settings_(std::move(s)) {}

  /// The subscriber link, started on first use.
  std::shared_ptr<Link> link() {
    std::lock_guard lock(mutex_);
    if (!link_) {
      link_ = std::make_shared<Link>(ex_, settings_.endpoint, "subscriber", true);
      std::weak_ptr<PubSubRouter> weak = weak_from_this();
      link_->on_push = [weak](Reply&& r) {
        if (auto self = weak.lock()) self->dispatch(std::move(r));
      };
      link_->on_connected = [weak](std::uint64_t generation) {
        if (auto self = weak.lock()) self->resubscribe(generation);
      };
      link_->start();
    }
    return link_;
  }

  void add(const Key& key, PubSubSubscription* sub) {
    std::lock_guard lock(mutex_);
    routes_[key].push_back(sub);
  }

  /// Removes a subscription; unsubscribes from Redis when it was the channel's last one.
  void remove(const Key& key, PubSubSubscription* sub) {
    std::shared_ptr<Link> link;
    {
      std::lock_guard lock(mutex_);
      auto it = routes_.find(key);
      if (it == routes_.end()) return;
      std::erase(it->second, sub);
      if (!it->second.empty()) return;
      routes_.erase(it);
      link = link_;
    }
    if (link) link->post(make_command({key.first ? "PUNSUBSCRIBE" : "UNSUBSCRIBE", key.second}), false, ex_, {});
  }

  /// Ends every subscription (stop()) and closes the subscriber link.
  void close_all() {
    std::shared_ptr<Link> link;
    {
      std::lock_guard lock(mutex_);
      for (auto& [_, v] : routes_)
        for (auto* sub : v) sub->end();
      routes_.clear();
      link = link_;
    }
    if (link) link->close(errc::stopped);
  }

  std::string wire(const std::string& topic) const { return settings_.prefix + topic; }

 private:
  void dispatch(Reply&& r) {
    // ["message", channel, payload] or ["pmessage", pattern, channel, payload]
    const bool pattern = r.elements[0].str == "pmessage";
    if (r.elements.size() != (pattern ? 4u : 3u)) return;
    Key key{pattern, r.elements[1].str};
    std::string& channel = r.elements[pattern ? 2 : 1].str;
    std::string& body = r.elements[pattern ? 3 : 2].str;
    std::optional<Message> m;
    if (settings_.envelope) m = decode_envelope(body);
    if (!m) {
      m.emplace();
      m->payload = Bytes(std::move(body));
      m->stamp();
    }
    m->topic = channel.starts_with(settings_.prefix) ? channel.substr(settings_.prefix.size()) : channel;
    std::lock_guard lock(mutex_);
    auto it = routes_.find(key);
    if (it == routes_.end()) return;
    auto& subs = it->second;
    for (std::size_t i = 0; i < subs.size(); ++i) {
      // The payload is shared; the last subscriber gets the message itself.
      if (i + 1 < subs.size())
        subs[i]->push(Delivery(*m, Position()));
      else
        subs[i]->push(Delivery(std::move(*m), Position()));
    }
  }

  // On the subscriber link's strand, after a connection is up. From the second connection on,
  // every channel is subscribed again, and each of its subscriptions gets a gap Delivery once
  // Redis confirmed the subscription: messages published while disconnected are gone.
  void resubscribe(std::uint64_t generation) {
    if (generation <= 1) return;
    std::vector<Key> keys;
    std::shared_ptr<Link> link;
    {
      std::lock_guard lock(mutex_);
      for (auto& [k, v] : routes_)
        if (!v.empty()) keys.push_back(k);
      link = link_;
    }
    if (!link) return;
    std::weak_ptr<PubSubRouter> weak = weak_from_this();
    for (auto it = keys.rbegin(); it != keys.rend(); ++it) {
      Key key = *it;
      link->send_first(make_command({key.first ? "PSUBSCRIBE" : "SUBSCRIBE", key.second}), true, ex_,
                        [weak, key](boost::system::error_code ec, Reply) {
                          auto self = weak.lock();
                          if (!self || ec) return;
                          std::lock_guard lock(self->mutex_);
                          auto r = self->routes_.find(key);
                          if (r == self->routes_.end()) return;
                          for (auto* sub : r->second) {
                            Gap g;
                            g.reason = "reconnected to redis " + self->settings_.endpoint.address() +
                                       ": Pub/Sub messages published while the connection was down are lost "
                                       "(at most once)";
                            sub->push(Delivery::gap(std::move(g)));
                          }
                        });
    }
  }

  executor ex_;
  const Settings settings_;
  std::mutex mutex_;
  std::map<Key, std::vector<PubSubSubscription*>> routes_;
  std::shared_ptr<Link> link_;
};

void PubSubSubscription::close() noexcept {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
  }
  bell_.ring();
  if (auto r = std::move(router_)) r->remove(key_, this);
}

// --- Streams ------------------------------------------------------------------------------

/// A Streams subscription: without a group it reads with XREAD (each subscription sees every
/// entry; settling is local), with a group with XREADGROUP (entries split among the group's
/// consumers, acknowledged with XACK, reclaimed with XAUTOCLAIM when a consumer went away).
class StreamSubscription final : public StreamSource<Delivery>,
                                 public Acknowledger,
                                 public std::enable_shared_from_this<StreamSubscription> {
 public:
  struct Config {
    std::string topic, key, group, consumer;
    std::string start_id;  // XREAD: read after this id; XREADGROUP: unused
    std::size_t max_in_flight = 0;
    Settings settings;
  };

  StreamSubscription(executor ex, Config c, std::shared_ptr<Link> commands)
      : ex_(ex), c_(std::move(c)), commands_(std::move(commands)), consumer_bell_(ex), reader_bell_(ex),
        last_id_(c_.start_id) {
    reader_ = std::make_shared<Link>(ex, c_.settings.endpoint, "reader of stream '" + c_.key + "'");
  }
  ~StreamSubscription() override { close(); }

  void set_gap(Gap g) { pending_gap_ = std::move(g); }

  void start() {
    reader_->start();
    asio::co_spawn(asio::make_strand(ex_), run(shared_from_this()), asio::detached);
  }

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (closed_) co_return std::nullopt;
        if (pending_gap_) {
          Gap g = std::move(*pending_gap_);
          pending_gap_.reset();
          co_return Delivery::gap(std::move(g));
        }
        const bool limited = c_.max_in_flight != 0 && unacked_.size() >= c_.max_in_flight;
        if (!limited && !ready_.empty()) {
          Entry e = std::move(ready_.front());
          ready_.pop_front();
          const auto tag = ++next_tag_;
          Delivery d(e.message, Position::after(e.id), e.redelivered, shared_from_this(), tag);
          unacked_.emplace(tag, std::move(e));
          wake_reader_locked();
          co_return d;
        }
        consumer_waiting_ = true;
      }
      co_await consumer_bell_.wait();
    }
  }

  void close() noexcept override {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
    }
    consumer_bell_.ring();
    reader_bell_.ring();
    reader_->close(errc::closed);
  }

  void ack(std::uint64_t tag) noexcept override { settle(tag, false, false); }
  void nack(std::uint64_t tag, bool requeue) noexcept override { settle(tag, true, requeue); }

  /// stop(): read without blocking from now on, so that "caught up" is known quickly.
  void begin_drain() {
    {
      std::lock_guard lock(mutex_);
      draining_ = true;
    }
    reader_bell_.ring();
  }
  bool drained() {
    std::lock_guard lock(mutex_);
    return closed_ || (caught_up_ && ready_.empty() && unacked_.empty());
  }

 private:
  bool grouped() const { return !c_.group.empty(); }

  void settle(std::uint64_t tag, bool negative, bool requeue) noexcept {
    try {
      bool xack = false;
      std::string id;
      {
        std::lock_guard lock(mutex_);
        auto it = unacked_.find(tag);
        if (it == unacked_.end()) return;
        if (negative && requeue && !closed_) {
          it->second.redelivered = true;
          ready_.push_front(std::move(it->second));
          unacked_.erase(it);
          if (consumer_waiting_) {
            consumer_waiting_ = false;
            consumer_bell_.ring();
          }
          return;
        }
        id = it->second.id;
        known_.erase(id);
        unacked_.erase(it);
        xack = grouped() && !(negative && requeue);  // closed + nack(requeue): leave it pending
        wake_reader_locked();
        if (consumer_waiting_ && c_.max_in_flight != 0) {
          consumer_waiting_ = false;
          consumer_bell_.ring();
        }
      }
      // nack(false) on a group: acknowledged away (Redis has no dead-letter of its own).
      if (xack) commands_->post(make_command({"XACK", c_.key, c_.group, id}), true, ex_, {});
    } catch (...) {
      // Settling never throws (allocation failure aside, and then the entry stays pending).
    }
  }

  // mutex_ held
  void wake_reader_locked() {
    if (reader_waiting_) {
      reader_waiting_ = false;
      reader_bell_.ring();
    }
  }

  // mutex_ held: how many entries the reader may fetch now.
  std::size_t room_locked() const {
    const std::size_t limit = c_.max_in_flight != 0 ? c_.max_in_flight : c_.settings.batch;
    const std::size_t used = ready_.size() + (c_.max_in_flight != 0 ? unacked_.size() : 0);
    return used >= limit ? 0 : std::min(limit - used, c_.settings.batch);
  }

  /// Hands entries to the consumer, skipping those it already holds. Returns how many were new.
  std::size_t accept(std::vector<Entry>& entries, bool redelivered) {
    std::size_t fresh = 0;
    std::lock_guard lock(mutex_);
    for (auto& e : entries) {
      if (!grouped()) last_id_ = e.id;
      if (!known_.insert(e.id).second) continue;
      e.redelivered = e.redelivered || redelivered;
      ready_.push_back(std::move(e));
      ++fresh;
    }
    if (fresh && consumer_waiting_) {
      consumer_waiting_ = false;
      consumer_bell_.ring();
    }
    return fresh;
  }

  Command read_command(std::size_t room, bool own_pending, bool block) {
    const auto& s = c_.settings;
    const std::string count = std::to_string(room);
    const std::string block_ms = std::to_string(s.block.count());
    if (grouped()) {
      Command cmd(6 + (block ? 2 : 0) + 3);
      cmd.arg("XREADGROUP").arg("GROUP").arg(c_.group).arg(c_.consumer).arg("COUNT").arg(count);
      if (block) cmd.arg("BLOCK").arg(block_ms);
      cmd.arg("STREAMS").arg(c_.key).arg(own_pending ? own_cursor_ : std::string(">"));
      return cmd;
    }
    Command cmd(4 + (block ? 2 : 0) + 2);
    cmd.arg("XREAD").arg("COUNT").arg(count);
    if (block) cmd.arg("BLOCK").arg(block_ms);
    std::string last;
    {
      std::lock_guard lock(mutex_);
      last = last_id_;
    }
    cmd.arg("STREAMS").arg(c_.key).arg(last);
    return cmd;
  }

  static awaitable<void> run(std::shared_ptr<StreamSubscription> self) { co_await self->read_loop(); }

  awaitable<void> read_loop() {
    const auto& s = c_.settings;
    // Own pending entries first: none for a new consumer name, but after a reconnection those
    // whose XREADGROUP reply was lost with the connection are only there.
    bool own_pending = grouped();
    own_cursor_ = "0";
    std::uint64_t generation = 0;
    const auto claim_every = std::clamp<std::chrono::milliseconds>(s.claim_idle / 2, 100ms, 5000ms);
    auto last_claim = clock::now();
    std::string claim_cursor = "0-0";
    try {
      for (;;) {
        std::size_t room = 0;
        bool draining = false;
        {
          std::lock_guard lock(mutex_);
          if (closed_) co_return;
          room = room_locked();
          draining = draining_;
          if (room == 0) reader_waiting_ = true;
        }
        if (room == 0) {
          co_await reader_bell_.wait();
          continue;
        }
        const bool reading_pending = own_pending;
        Command cmd = read_command(room, reading_pending, !draining && !reading_pending);
        Reply reply = co_await reader_->call(std::move(cmd), true);
        const auto now_generation = reader_->generation();
        if (generation != 0 && now_generation != generation && grouped()) {
          own_pending = true;  // reconnected: look at our pending entries again
          own_cursor_ = "0";
        }
        generation = now_generation;

        auto entries = read_reply_entries(reply, c_.topic);
        if (reading_pending) {
          for (auto& id : deleted_ids(reply))
            commands_->post(make_command({"XACK", c_.key, c_.group, id}), true, ex_, {});
          if (entries.empty() && deleted_ids(reply).empty()) {
            own_pending = false;
          } else if (!entries.empty()) {
            own_cursor_ = entries.back().id;
          } else {
            own_cursor_ = deleted_ids(reply).back();
          }
          accept(entries, true);
        } else {
          accept(entries, false);
          if (entries.empty() && draining) {
            std::lock_guard lock(mutex_);
            caught_up_ = true;
          }
        }

        if (grouped() && clock::now() - last_claim >= claim_every) {
          last_claim = clock::now();
          co_await claim(room, claim_cursor);
        }
        bool idle = false;
        {
          // Draining and nothing left to read: wait for the consumer to settle (or close()).
          std::lock_guard lock(mutex_);
          idle = draining && caught_up_;
          if (idle) reader_waiting_ = true;
        }
        if (idle) co_await reader_bell_.wait();
      }
    } catch (const boost::system::system_error& e) {
      std::lock_guard lock(mutex_);
      if (closed_ || e.code() == errc::closed || e.code() == errc::stopped) co_return;
      std::fprintf(stderr, "patchbay redis: reading stream '%s' failed: %s\n", c_.key.c_str(), e.what());
      closed_ = true;
    }
    consumer_bell_.ring();
  }

  /// XAUTOCLAIM: entries pending longer than claim_idle with any consumer of the group (one
  /// that crashed, or lost its connection for good) are taken over and delivered again.
  awaitable<void> claim(std::size_t room, std::string& cursor) {
    const auto& s = c_.settings;
    Command cmd(8);
    cmd.arg("XAUTOCLAIM").arg(c_.key).arg(c_.group).arg(c_.consumer).arg(std::to_string(s.claim_idle.count()));
    cmd.arg(cursor).arg("COUNT").arg(std::to_string(room));
    Reply r = co_await reader_->call(std::move(cmd), true);
    // [next cursor, [entry, ...], [deleted id, ...]]: deleted entries leave the PEL by themselves.
    if (!r.is_array() || r.elements.size() < 2) co_return;
    cursor = r.elements[0].is_string() ? r.elements[0].str : std::string("0-0");
    auto claimed = entries_from(r.elements[1], c_.topic);
    accept(claimed, true);
  }

  executor ex_;
  Config c_;
  std::shared_ptr<Link> commands_;
  std::shared_ptr<Link> reader_;
  std::mutex mutex_;
  Doorbell consumer_bell_, reader_bell_;
  std::deque<Entry> ready_;
  std::unordered_map<std::uint64_t, Entry> unacked_;
  std::unordered_set<std::string> known_;  // ids in ready_ or unacked_
  std::optional<Gap> pending_gap_;
  std::uint64_t next_tag_ = 0;
  std::string last_id_;     // XREAD: the last id read
  std::string own_cursor_;  // XREADGROUP own-pending scan position (reader coroutine only)
  bool closed_ = false;
  bool consumer_waiting_ = false;
  bool reader_waiting_ = false;
  bool draining_ = false;
  bool caught_up_ = false;
};

// --- the transport ------------------------------------------------------------------------

class RedisTransport final : public Transport {
 public:
  RedisTransport(executor ex, Settings s) : ex_(std::move(ex)), settings_(std::move(s)) {
    if (settings_.consumer.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      settings_.consumer = std::string(host) + "-" + std::to_string(getpid());
    }
    commands_ = std::make_shared<Link>(ex_, settings_.endpoint, "publisher");
    router_ = std::make_shared<PubSubRouter>(ex_, settings_);
  }

  ~RedisTransport() override {
    for (auto& s : live_streams()) s->close();
    router_->close_all();
    commands_->close(errc::stopped);
  }

  std::string_view type() const noexcept override { return "redis"; }

  Features features() const override {
    Features f;
    f.publish_subscribe = true;
    f.ordered = true;
    f.max_payload = settings_.max_payload;
    if (settings_.mode == Mode::pubsub) {
      f.headers = settings_.envelope;
    } else {
      f.headers = true;
      f.at_least_once = f.consumer_groups = f.replay = f.gap_signal = f.flow_control = true;
    }
    return f;
  }

 protected:
  awaitable<void> do_start() override {
    commands_->start();
    co_await commands_->wait_connected();
  }

  awaitable<void> do_stop() override {
    if (stopping_.exchange(true)) {
      while (!stopped_.load()) co_await sleep_for(1ms);
      co_return;
    }
    const auto until = clock::now() + settings_.drain_timeout;
    auto subs = live_streams();
    for (auto& s : subs) s->begin_drain();
    for (;;) {
      bool done = publishing_.load() == 0;
      for (auto& s : subs) done = done && s->drained();
      if (done || clock::now() >= until) break;
      co_await sleep_for(2ms);
    }
    for (auto& s : subs) s->close();
    router_->close_all();
    // Let acknowledgements already queued reach Redis.
    while (commands_->outstanding() != 0 && clock::now() < until) co_await sleep_for(1ms);
    commands_->close(errc::stopped);
    stopped_ = true;
  }

  awaitable<void> do_publish(Message msg) override {
    if (stopping_) throw_error(errc::stopped, "redis: publish after stop");
    if (settings_.max_payload && msg.payload.size() > settings_.max_payload)
      throw_error(errc::payload_too_large, "redis: payload of " + std::to_string(msg.payload.size()) +
                                               " bytes exceeds max_payload " + std::to_string(settings_.max_payload));
    ++publishing_;
    struct Done {
      std::atomic<int>& n;
      ~Done() { --n; }
    } done{publishing_};
    const std::string key = settings_.prefix + msg.topic;
    if (settings_.mode == Mode::pubsub) {
      Command cmd(3);
      cmd.arg("PUBLISH").arg(key);
      if (settings_.envelope)
        cmd.arg(envelope_head(msg), msg.payload);
      else
        cmd.arg(msg.payload);
      // Not retried after a lost connection: Pub/Sub is at most once.
      Reply r = co_await commands_->call_raw(std::move(cmd), false);
      if (r.is_error()) throw_error(errc::remote_error, "redis: PUBLISH failed: " + r.str);
      co_return;
    }
    const bool trim = settings_.max_len != 0;
    Command cmd(2 + (trim ? 3 : 0) + 1 + 4 + 2 * msg.headers.size() + 2);
    cmd.arg("XADD").arg(key);
    if (trim) cmd.arg("MAXLEN").arg(settings_.exact_trim ? "=" : "~").arg(std::to_string(settings_.max_len));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    cmd.arg("*").arg(kIdField).arg(msg.id).arg(kTimeField).arg(static_cast<long long>(ms));
    for (const auto& [k, v] : msg.headers) {
      std::string field;
      field.reserve(kHeaderPrefix.size() + k.size());
      field.append(kHeaderPrefix).append(k);
      cmd.arg(field).arg(v);
    }
    cmd.arg(kPayloadField).arg(msg.payload);
    // Retried after a lost connection: at least once (a duplicate keeps its patchbay-id).
    Reply r = co_await commands_->call_raw(std::move(cmd), true);
    if (r.is_error()) throw_error(errc::remote_error, "redis: XADD failed: " + r.str);
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    if (stopping_) throw_error(errc::stopped, "redis: subscribe after stop");
    auto ex = co_await asio::this_coro::executor;
    if (settings_.mode == Mode::pubsub) co_return co_await subscribe_pubsub(ex, std::move(topic), std::move(options));
    co_return co_await subscribe_streams(ex, std::move(topic), std::move(options));
  }

  awaitable<Message> do_request(std::string, Message, deadline) override {
    throw_error(errc::not_supported, "redis: request/reply is not supported (use a transport with request_reply)");
    co_return Message();
  }

  awaitable<void> do_serve(std::string, ServiceHandler) override {
    throw_error(errc::not_supported, "redis: serve is not supported (use a transport with request_reply)");
    co_return;
  }

 private:
  awaitable<Stream<Delivery>> subscribe_pubsub(executor ex, std::string topic, SubscribeOptions options) {
    if (!options.group().empty())
      throw_error(errc::not_supported, "redis: consumer groups need `mode: streams` (Pub/Sub delivers every message "
                                       "to every subscriber)");
    if (options.from().where() != Position::kind::latest)
      throw_error(errc::not_supported, "redis: subscribing from a position needs `mode: streams` (Pub/Sub keeps no history)");
    const bool pattern = settings_.patterns && topic.find_first_of("*?[") != std::string::npos;
    PubSubRouter::Key key{pattern, router_->wire(topic)};
    auto sub = std::make_shared<PubSubSubscription>(ex, settings_.buffer);
    auto link = router_->link();
    router_->add(key, sub.get());
    sub->attach(router_, key);
    // Each subscribe sends its own SUBSCRIBE (Redis ignores a repeated one): it completes once
    // Redis confirmed, so a message published afterwards reaches this subscription.
    const std::string_view verb = pattern ? "PSUBSCRIBE" : "SUBSCRIBE";
    Command subscribe = make_command({verb, key.second});
    Reply r = co_await link->call_raw(std::move(subscribe), true);
    if (r.is_error()) {
      sub->close();
      throw_error(errc::remote_error, std::string("redis: ") + (pattern ? "PSUBSCRIBE" : "SUBSCRIBE") + " " +
                                          key.second + " failed: " + r.str);
    }
    co_return Stream<Delivery>(std::move(sub));
  }

  awaitable<Stream<Delivery>> subscribe_streams(executor ex, std::string topic, SubscribeOptions options) {
    StreamSubscription::Config c;
    c.topic = topic;
    c.key = settings_.prefix + topic;
    c.group = options.group();
    c.max_in_flight = options.max_in_flight();
    c.settings = settings_;
    c.consumer = settings_.consumer + "-" + random_hex(8);
    std::optional<Gap> gap;
    const Position& from = options.from();
    std::string start = "$";
    if (from.where() == Position::kind::earliest) {
      start = "0-0";
    } else if (from.where() == Position::kind::after) {
      auto wanted = parse_id(from.token());
      if (!wanted) {
        gap = Gap{from, Position(), 0, "'" + from.token() + "' is not a Redis stream entry id; reading from the oldest entry"};
        start = "0-0";
      } else {
        start = from.token();
        gap = co_await trimmed_after(c.key, *wanted, from);
      }
    }
    if (c.group.empty()) {
      if (start == "$") {
        // Resolved now, so that an entry added after subscribe() returns is read.
        Command newest = make_command({"XREVRANGE", c.key, "+", "-", "COUNT", "1"});
        Reply last = co_await commands_->call(std::move(newest), true);
        start = "0-0";
        if (last.is_array() && !last.elements.empty() && last.elements[0].is_array() &&
            !last.elements[0].elements.empty())
          start = last.elements[0].elements[0].str;
      }
      c.start_id = start;
    } else {
      // The group starts where the first of its subscribers asked; later ones join it.
      if (start == "0-0") start = "0";
      Command create = make_command({"XGROUP", "CREATE", c.key, c.group, start, "MKSTREAM"});
      Reply r = co_await commands_->call_raw(std::move(create), true);
      if (r.is_error() && r.str.rfind("BUSYGROUP", 0) != 0)
        throw_error(errc::remote_error, "redis: XGROUP CREATE " + c.key + " " + c.group + " failed: " + r.str);
    }
    auto sub = std::make_shared<StreamSubscription>(ex, std::move(c), commands_);
    if (gap) sub->set_gap(std::move(*gap));
    {
      std::lock_guard lock(mutex_);
      std::erase_if(streams_, [](auto& w) { return w.expired(); });
      streams_.push_back(sub);
    }
    sub->start();
    co_return Stream<Delivery>(std::move(sub));
  }

  /// A gap when the stream no longer reaches `after`: its oldest entry is newer than `after`
  /// (MAXLEN trimmed the entry at `after`, and perhaps entries after it — Redis does not record
  /// which ids a trim removed, so this errs on the side of a gap: when exactly the entries up
  /// to `after` were trimmed, the gap reports 0 missed), or it is empty but has grown past
  /// `after`.
  awaitable<std::optional<Gap>> trimmed_after(const std::string& key, EntryId after, const Position& from) {
    Command xinfo = make_command({"XINFO", "STREAM", key});
    Reply info = co_await commands_->call_raw(std::move(xinfo), true);
    if (!info.is_array()) co_return std::nullopt;  // no such key: nothing was lost
    std::optional<EntryId> first, last_generated;
    std::string first_text;
    long long length = 0;
    for (std::size_t i = 0; i + 1 < info.elements.size(); i += 2) {
      const auto& k = info.elements[i].str;
      auto& v = info.elements[i + 1];
      if (k == "length") length = v.integer;
      if (k == "last-generated-id" && v.is_string()) last_generated = parse_id(v.str);
      if (k == "first-entry" && v.is_array() && !v.elements.empty()) {
        first_text = v.elements[0].str;
        first = parse_id(first_text);
      }
    }
    const bool emptied = length == 0 && last_generated && *last_generated > after;
    const bool behind = first && *first > after && !(first->ms == after.ms && first->seq == after.seq + 1);
    if (!emptied && !behind) co_return std::nullopt;
    Gap g;
    g.last_seen = from;
    if (!first_text.empty()) {
      // The oldest entry is delivered next: resumes_at is the position just before it.
      g.resumes_at = Position::after(first->seq > 0 ? std::to_string(first->ms) + "-" + std::to_string(first->seq - 1)
                                                    : std::to_string(first->ms - 1) + "-18446744073709551615");
    }
    g.reason = "history trimmed: the stream's oldest entry is newer than this position (max_len); entries after "
               "it may be gone";
    co_return g;
  }

  std::vector<std::shared_ptr<StreamSubscription>> live_streams() {
    std::vector<std::shared_ptr<StreamSubscription>> out;
    std::lock_guard lock(mutex_);
    for (auto& w : streams_)
      if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
  }

  executor ex_;
  Settings settings_;
  std::shared_ptr<Link> commands_;
  std::shared_ptr<PubSubRouter> router_;
  std::mutex mutex_;
  std::vector<std::weak_ptr<StreamSubscription>> streams_;
  std::atomic<int> publishing_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
};

// --- configuration ------------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<Transport>> make_redis(const TransportContext& ctx) {
  const auto& s = ctx.settings;
  Settings out;
  auto url = s.get_string("url", "redis://127.0.0.1:6379");
  if (!url.ok()) return url.status();
  auto parsed = boost::urls::parse_uri(*url);
  if (!parsed || parsed->scheme() != "redis")
    return config::error_at(s.mark_of("url"), s.context() + ": url '" + *url +
                                                  "' is not a redis:// URL (redis://[user[:password]@]host[:port][/db])");
  out.endpoint.host = parsed->host();
  if (out.endpoint.host.empty()) out.endpoint.host = "127.0.0.1";
  if (parsed->has_port()) out.endpoint.port = parsed->port();
  if (parsed->has_userinfo()) {
    out.endpoint.user = parsed->user();
    out.endpoint.password = parsed->password();
    // redis://:secret@host — a password without an ACL user
  }
  std::string path = parsed->path();
  if (!path.empty() && path != "/") {
    int db = -1;
    auto r = std::from_chars(path.data() + 1, path.data() + path.size(), db);
    if (r.ec != std::errc{} || r.ptr != path.data() + path.size() || db < 0)
      return config::error_at(s.mark_of("url"), s.context() + ": url path '" + path + "' is not a database number");
    out.endpoint.db = db;
  }
  auto user = s.get_string("user", out.endpoint.user);
  if (!user.ok()) return user.status();
  out.endpoint.user = *user;
  auto password = s.get_string("password", out.endpoint.password);
  if (!password.ok()) return password.status();
  out.endpoint.password = *password;
  auto db = s.get_int("db", out.endpoint.db, 0, 1 << 20);
  if (!db.ok()) return db.status();
  out.endpoint.db = static_cast<int>(*db);
  if (!out.endpoint.user.empty() && out.endpoint.password.empty())
    return config::error_at(s.mark_of("user"), s.context() + ": user '" + out.endpoint.user + "' needs a password");

  auto mode = s.get_choice("mode", "pubsub", {"pubsub", "streams"});
  if (!mode.ok()) return mode.status();
  out.mode = *mode == "streams" ? Mode::streams : Mode::pubsub;
  auto prefix = s.get_string("prefix", "");
  if (!prefix.ok()) return prefix.status();
  out.prefix = *prefix;

  auto durations = [&](std::string_view key, std::chrono::milliseconds& into) -> absl::Status {
    auto d = s.get_duration(key, into);
    if (!d.ok()) return d.status();
    into = *d;
    return absl::OkStatus();
  };
  for (auto [key, into] : {std::pair<std::string_view, std::chrono::milliseconds*>{"connect_timeout", &out.endpoint.connect_timeout},
                           {"command_timeout", &out.endpoint.command_timeout},
                           {"reconnect_min", &out.endpoint.reconnect_min},
                           {"reconnect_max", &out.endpoint.reconnect_max},
                           {"drain_timeout", &out.drain_timeout}}) {
    if (auto st = durations(key, *into); !st.ok()) return st;
  }
  if (out.endpoint.connect_timeout.count() == 0)
    return config::error_at(s.mark_of("connect_timeout"), s.context() + ": connect_timeout must be positive");
  if (out.endpoint.reconnect_min.count() == 0) out.endpoint.reconnect_min = 1ms;
  auto client_name = s.get_string("client_name", "patchbay-" + ctx.name);
  if (!client_name.ok()) return client_name.status();
  out.endpoint.client_name = *client_name;
  if (out.endpoint.client_name.find_first_of(" \r\n") != std::string::npos)
    return config::error_at(s.mark_of("client_name"), s.context() + ": client_name may not contain spaces");
  auto max_payload = s.get_int("max_payload", static_cast<std::int64_t>(out.max_payload), 1, 512ll << 20);
  if (!max_payload.ok()) return max_payload.status();
  out.max_payload = static_cast<std::size_t>(*max_payload);

  if (out.mode == Mode::pubsub) {
    auto envelope = s.get_bool("envelope", true);
    if (!envelope.ok()) return envelope.status();
    out.envelope = *envelope;
    auto patterns = s.get_bool("patterns", true);
    if (!patterns.ok()) return patterns.status();
    out.patterns = *patterns;
    auto buffer = s.get_int("buffer", 65536, 1, 100'000'000);
    if (!buffer.ok()) return buffer.status();
    out.buffer = static_cast<std::size_t>(*buffer);
  } else {
    auto max_len = s.get_int("max_len", 0, 0);
    if (!max_len.ok()) return max_len.status();
    out.max_len = static_cast<std::size_t>(*max_len);
    auto trim = s.get_choice("trim", "approximate", {"approximate", "exact"});
    if (!trim.ok()) return trim.status();
    out.exact_trim = *trim == "exact";
    if (auto st = durations("claim_idle", out.claim_idle); !st.ok()) return st;
    if (auto st = durations("block", out.block); !st.ok()) return st;
    if (out.block.count() == 0) out.block = 1ms;
    auto batch = s.get_int("batch", 128, 1, 100'000);
    if (!batch.ok()) return batch.status();
    out.batch = static_cast<std::size_t>(*batch);
    auto consumer = s.get_string("consumer", "");
    if (!consumer.ok()) return consumer.status();
    out.consumer = *consumer;
  }
  return std::make_shared<RedisTransport>(ctx.ex, std::move(out));
}

absl::Status register_redis(Registry& registry) { return registry.add_transport("redis", make_redis); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_transport(Registry& registry) { return register_redis(registry); }
#endif

}  // namespace patchbay::redis

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::redis::register_redis)
#endif
