// The hub: per-topic rings of messages, cursors over them, and the HTTP endpoints that read
// them (see patchbay/http/hub.hpp).
//
// Waking readers: a cursor with nothing to read registers itself in its topic's `waiting` list
// and waits on its Doorbell; publish() takes the list under the topic lock and rings each bell
// after unlocking. A ring that comes before the wait is kept by the Doorbell, so no wake-up is
// lost, and a publisher never touches a reader that is busy writing. Heartbeats come from one
// ticker per hub that marks every heartbeat cursor and rings the waiting ones.
#include <patchbay/http/hub.hpp>

#include "hub_routes.hpp"

#include <patchbay/error.hpp>
#include <patchbay/http/message_fields.hpp>
#include <patchbay/http/server.hpp>
#include <patchbay/http/sse.hpp>
#include <patchbay/http/websocket.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <map>
#include <mutex>
#include <random>

namespace patchbay::http {

namespace {

std::uint64_t random_epoch() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard lock(mu);
  // Small enough to read comfortably in an SSE id, large enough never to repeat in practice.
  return rng() % 1'000'000'000'000ULL + 1;
}

std::string make_token(std::uint64_t epoch, std::uint64_t seq) {
  char buf[48];
  auto r = std::to_chars(buf, buf + 20, epoch);
  *r.ptr++ = ':';
  r = std::to_chars(r.ptr, buf + sizeof buf, seq);
  return std::string(buf, r.ptr);
}

/// An unsigned 64-bit decimal, digits only (what std::from_chars accepts whole; read by hand,
/// as every poll reads a position).
bool parse_decimal(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, static_cast<std::uint64_t>(c - '0'), &v)) {
      return false;
    }
  }
  out = v;
  return true;
}

bool parse_token(std::string_view token, std::uint64_t& epoch, std::uint64_t& seq) {
  auto colon = token.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == token.size()) return false;
  return parse_decimal(token.substr(0, colon), epoch) && parse_decimal(token.substr(colon + 1), seq);
}

std::uint64_t message_bytes(const Message& m) {
  std::uint64_t n = m.payload.size() + m.id.size() + 32;
  for (const auto& [k, v] : m.headers) n += k.size() + v.size() + 4;
  return n;
}

}  // namespace

struct HubEntry::Frames {
  // The flags let every delivery after the first skip call_once's slower path.
  std::atomic<bool> plain_ready{false}, envelope_ready{false};
  std::once_flag plain_once, envelope_once;
  std::string plain, envelope;
  // The poll answers' message object (hub_poll.cpp).
  std::atomic<bool> poll_ready{false};
  std::once_flag poll_once;
  std::string poll;
  // The WebSocket message (ws_frame(), hub_websocket.cpp).
  std::atomic<bool> ws_ready{false};
  std::once_flag ws_once;
  std::string ws;
};

const std::string& HubEntry::poll_object() const {
  auto& f = *frames_;
  if (!f.poll_ready.load(std::memory_order_acquire)) {
    std::call_once(f.poll_once, [&] {
      // {"position":"<epoch>:<seq>", then the envelope's own members.
      const std::string envelope = sse::encode_envelope(message);
      std::string out;
      out.reserve(envelope.size() + position.size() + 16);
      out += "{\"position\":\"";
      out += position;  // digits and a colon: nothing to escape
      out += '"';
      if (envelope.size() > 2) out += ',';
      out.append(envelope, 1);
      f.poll = std::move(out);
      f.poll_ready.store(true, std::memory_order_release);
    });
  }
  return f.poll;
}

const std::string& HubEntry::sse_frame(bool envelope) const {
  auto& f = *frames_;
  if (envelope) {
    if (!f.envelope_ready.load(std::memory_order_acquire)) {
      std::call_once(f.envelope_once, [&] {
        f.envelope = sse::encode(message, position, sse::Format::envelope);
        f.envelope_ready.store(true, std::memory_order_release);
      });
    }
    return f.envelope;
  }
  if (!f.plain_ready.load(std::memory_order_acquire)) {
    std::call_once(f.plain_once, [&] {
      f.plain = sse::encode(message, position, sse::Format::plain);
      f.plain_ready.store(true, std::memory_order_release);
    });
  }
  return f.plain;
}

const std::string& HubEntry::ws_frame() const {
  auto& f = *frames_;
  if (!f.ws_ready.load(std::memory_order_acquire)) {
    std::call_once(f.ws_once, [&] {
      f.ws = websocket::encode_message(message, position);
      f.ws_ready.store(true, std::memory_order_release);
    });
  }
  return f.ws;
}

struct TopicState {
  TopicState(std::string n, std::uint64_t e) : name(std::move(n)), epoch(e) {}
  const std::string name;
  const std::uint64_t epoch;

  std::mutex mu;
  std::deque<HubEntryPtr> ring;
  std::uint64_t next_seq = 1;
  std::uint64_t total_bytes = 0;
  bool closed = false;
  std::vector<std::shared_ptr<Hub::Cursor::State>> waiting;
  std::vector<Hub::Cursor::State*> watched;    // cursors with a backlog limit
  std::vector<Hub::Cursor::State*> heartbeats; // cursors that asked for heartbeats

  std::uint64_t first_seq() const { return ring.empty() ? next_seq : ring.front()->seq; }
  /// Cumulative bytes before the entry `seq` (which must be within the ring or next_seq).
  std::uint64_t bytes_before(std::uint64_t seq) const {
    if (ring.empty() || seq >= next_seq) return total_bytes;
    return ring[seq - ring.front()->seq]->start_bytes;
  }
};

struct Hub::Cursor::State {
  State(std::shared_ptr<TopicState> t, executor ex) : topic(std::move(t)), bell(std::move(ex)) {}
  std::shared_ptr<TopicState> topic;
  Doorbell bell;
  // Guarded by topic->mu:
  std::uint64_t next = 0;
  std::uint64_t read_bytes = 0;
  std::unique_ptr<Gap> pending_gap;  // rare: not inline in every cursor
  bool waiting = false;
  bool heartbeat_due = false;
  std::uint64_t backlog_limit = 0;
  std::function<void()> on_overrun;
  // Owned by the reader:
  std::string position;
  std::atomic<bool> closed{false};
};

struct Hub::Impl {
  Impl(executor e, HubOptions o) : ex(std::move(e)), options(std::move(o)), ticker(asio::make_strand(ex)) {}
  executor ex;
  HubOptions options;
  asio::steady_timer ticker;

  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<TopicState>, std::less<>> topics;
  std::map<std::string, std::function<awaitable<void>(Message)>, std::less<>> upstream;
  std::atomic<bool> stopped{false};  // written under mu; read anywhere
  std::atomic<std::size_t> sse_connections{0};
  std::atomic<std::size_t> held_polls{0};
  // The publish observer (webhook outbox); read on every publish, so no mutex.
  std::atomic<std::shared_ptr<const PublishObserver>> observer;

  std::shared_ptr<TopicState> find(std::string_view name, bool create) {
    std::lock_guard lock(mu);
    if (auto it = topics.find(name); it != topics.end()) return it->second;
    if (!create) return nullptr;
    auto t = std::make_shared<TopicState>(std::string(name), random_epoch());
    if (stopped) t->closed = true;
    topics.emplace(std::string(name), t);
    return t;
  }

  std::vector<std::shared_ptr<TopicState>> all_topics() {
    std::lock_guard lock(mu);
    std::vector<std::shared_ptr<TopicState>> out;
    for (auto& [k, t] : topics) out.push_back(t);
    return out;
  }

  std::string publish(std::string_view topic, Message msg);
  std::unique_ptr<Hub::Cursor> open(std::string_view topic, const Position& from, UnknownPosition unknown, bool create);

  awaitable<void> tick();
  awaitable<void> serve_events(Exchange& ex);
  awaitable<std::unique_ptr<Hub::Cursor>> open_events(Exchange& ex, bool& envelope);
  /// The next SSE write for `cursor` into `buffers` (empty: nothing to send); false once closed.
  bool next_events(Hub::Cursor& cursor, bool envelope, std::vector<asio::const_buffer>& buffers,
                   std::vector<HubEntryPtr>& entries, std::string& gap_frame);
  awaitable<void> serve_publish(Exchange& ex);
};

// --- Hub ----------------------------------------------------------------------------------

std::shared_ptr<Hub> Hub::create(executor ex, HubOptions options) {
  std::shared_ptr<Hub> hub(new Hub());
  hub->impl_ = std::make_shared<Impl>(std::move(ex), std::move(options));
  if (hub->impl_->options.history == 0) hub->impl_->options.history = 1;
  for (const auto& t : hub->impl_->options.topics) hub->impl_->find(t, true);
  if (hub->impl_->options.heartbeat > duration::zero()) {
    asio::co_spawn(hub->impl_->ticker.get_executor(), hub->impl_->tick(), asio::detached);
  }
  return hub;
}

Hub::~Hub() { stop(); }

awaitable<void> Hub::Impl::tick() {
  // Holds the Impl only through the timer's lifetime: stop() cancels it.
  for (;;) {
    ticker.expires_after(options.heartbeat);
    auto [ec] = co_await ticker.async_wait(asio::as_tuple(asio::use_awaitable_t<executor>{}));
    if (ec) co_return;
    std::vector<std::shared_ptr<Hub::Cursor::State>> wake;
    for (auto& t : all_topics()) {
      std::lock_guard lock(t->mu);
      for (auto* c : t->heartbeats) c->heartbeat_due = true;
      for (auto& w : t->waiting) w->waiting = false;
      wake.insert(wake.end(), t->waiting.begin(), t->waiting.end());
      t->waiting.clear();
    }
    for (auto& w : wake) w->bell.ring();
  }
}

std::string Hub::publish(std::string_view topic, Message msg) { return impl_->publish(topic, std::move(msg)); }

void Hub::set_publish_observer(PublishObserver observer) {
  std::shared_ptr<const PublishObserver> p;
  if (observer) p = std::make_shared<const PublishObserver>(std::move(observer));
  impl_->observer.store(std::move(p), std::memory_order_release);
}

std::unique_ptr<Hub::Cursor> Hub::open(std::string_view topic, const Position& from, UnknownPosition unknown,
                                       bool create) {
  return impl_->open(topic, from, unknown, create);
}

std::string Hub::Impl::publish(std::string_view topic_name, Message msg) {
  auto topic = find(topic_name, true);
  msg.topic = std::string(topic_name);
  msg.stamp();
  auto entry = std::make_shared<HubEntry>();
  entry->frames_ = std::make_shared<HubEntry::Frames>();
  const auto size = message_bytes(msg);
  entry->message = std::move(msg);
  std::vector<std::shared_ptr<Cursor::State>> wake;
  std::string position;
  {
    std::lock_guard lock(topic->mu);
    if (topic->closed) throw_error(errc::stopped, "the hub has stopped");
    entry->seq = topic->next_seq++;
    entry->position = make_token(topic->epoch, entry->seq);
    if (auto observe = observer.load(std::memory_order_acquire)) {
      try {
        (*observe)(*entry);
      } catch (...) {
        --topic->next_seq;  // not stored: the position is given to the next message
        throw;
      }
    }
    entry->start_bytes = topic->total_bytes;
    topic->total_bytes += size;
    entry->end_bytes = topic->total_bytes;
    position = entry->position;
    topic->ring.push_back(std::move(entry));
    if (topic->ring.size() > options.history) topic->ring.pop_front();
    for (auto* c : topic->watched) {
      if (c->on_overrun && topic->total_bytes - c->read_bytes > c->backlog_limit) {
        auto fire = std::move(c->on_overrun);
        c->on_overrun = nullptr;
        fire();
      }
    }
    wake.swap(topic->waiting);
    for (auto& w : wake) w->waiting = false;
  }
  for (auto& w : wake) w->bell.ring();
  return position;
}

std::unique_ptr<Hub::Cursor> Hub::Impl::open(std::string_view topic_name, const Position& from,
                                             UnknownPosition unknown, bool create) {
  auto topic = find(topic_name, create);
  if (!topic) return nullptr;
  auto state = std::make_shared<Cursor::State>(topic, ex);
  std::lock_guard lock(topic->mu);
  const auto first = topic->first_seq();
  switch (from.where()) {
    case Position::kind::latest:
      state->next = topic->next_seq;
      break;
    case Position::kind::earliest:
      state->next = first;
      break;
    case Position::kind::after: {
      std::uint64_t epoch = 0, seq = 0;
      const bool parsed = parse_token(from.token(), epoch, seq);
      if (parsed && epoch == topic->epoch && seq < topic->next_seq) {
        state->next = seq + 1;  // behind the ring: read() reports the gap
        if (state->next < first) {
          state->position = from.token();
        }
      } else {
        state->next = unknown == UnknownPosition::from_latest ? topic->next_seq : first;
        Gap gap;
        gap.last_seen = from;
        gap.resumes_at = Position::after(make_token(topic->epoch, state->next));
        gap.reason = !parsed ? "unknown position" : epoch != topic->epoch ? "epoch changed" : "position not reached yet";
        state->pending_gap = std::make_unique<Gap>(std::move(gap));
      }
      break;
    }
  }
  if (state->next < first) {
    state->read_bytes = topic->bytes_before(first);
  } else {
    state->read_bytes = topic->bytes_before(state->next);
  }
  if (topic->closed) state->closed = true;
  return std::unique_ptr<Cursor>(new Cursor(std::move(state)));
}

std::optional<HubBatch> Hub::peek(std::string_view topic_name, const Position& from, UnknownPosition unknown,
                                  bool create, std::size_t max, std::string& next) {
  // The same rules as open() and Cursor::read(), for one read.
  auto topic = impl_->find(topic_name, create);
  if (!topic) return std::nullopt;
  HubBatch out;
  auto& t = *topic;
  std::lock_guard lock(t.mu);
  if (t.closed) {
    out.closed = true;
    next = make_token(t.epoch, t.next_seq - 1);
    return out;
  }
  const auto first = t.first_seq();
  std::uint64_t at = t.next_seq;  // the next sequence to read
  std::string last_seen;          // behind the ring: the position given
  switch (from.where()) {
    case Position::kind::latest:
      break;
    case Position::kind::earliest:
      at = first;
      break;
    case Position::kind::after: {
      std::uint64_t epoch = 0, seq = 0;
      const bool parsed = parse_token(from.token(), epoch, seq);
      if (parsed && epoch == t.epoch && seq < t.next_seq) {
        at = seq + 1;
        if (at < first) last_seen = from.token();
      } else {
        at = unknown == UnknownPosition::from_latest ? t.next_seq : first;
        Gap gap;
        gap.last_seen = from;
        gap.resumes_at = Position::after(make_token(t.epoch, at));
        gap.reason = !parsed ? "unknown position" : epoch != t.epoch ? "epoch changed" : "position not reached yet";
        out.gap = std::move(gap);
      }
      break;
    }
  }
  if (at < first) {
    Gap gap;
    if (!last_seen.empty()) gap.last_seen = Position::after(last_seen);
    gap.resumes_at = Position::after(make_token(t.epoch, first));
    gap.missed = first - at;
    gap.reason = "history trimmed";
    if (!out.gap) out.gap = std::move(gap);
    at = first;
  }
  if (at < t.next_seq && max > 0) {
    auto idx = static_cast<std::size_t>(at - first);
    const auto n = std::min<std::size_t>(max, t.ring.size() - idx);
    out.entries.assign(t.ring.begin() + static_cast<std::ptrdiff_t>(idx),
                       t.ring.begin() + static_cast<std::ptrdiff_t>(idx + n));
    at += n;
  }
  next = make_token(t.epoch, at == 0 ? 0 : at - 1);
  return out;
}

bool Hub::has_topic(std::string_view topic) const {
  std::lock_guard lock(impl_->mu);
  return impl_->topics.find(topic) != impl_->topics.end();
}

void Hub::declare(std::string_view topic) { impl_->find(topic, true); }

void Hub::set_upstream(std::string_view topic, std::function<awaitable<void>(Message)> publish) {
  impl_->find(topic, true);
  std::lock_guard lock(impl_->mu);
  impl_->upstream[std::string(topic)] = std::move(publish);
}

std::function<awaitable<void>(Message)> Hub::upstream(std::string_view topic) const {
  std::lock_guard lock(impl_->mu);
  if (auto it = impl_->upstream.find(topic); it != impl_->upstream.end()) return it->second;
  return nullptr;
}

std::vector<std::string> Hub::topics() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [k, t] : impl_->topics) out.push_back(k);
  return out;
}

void Hub::stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  asio::post(impl_->ticker.get_executor(), [impl = impl_] { impl->ticker.cancel(); });
  for (auto& t : impl_->all_topics()) {
    std::vector<std::shared_ptr<Cursor::State>> wake;
    {
      std::lock_guard lock(t->mu);
      t->closed = true;
      wake.swap(t->waiting);
    }
    for (auto& w : wake) w->bell.ring();
  }
}

void Hub::drop_connections() {
  for (auto& t : impl_->all_topics()) {
    std::vector<std::shared_ptr<Cursor::State>> wake;
    {
      std::lock_guard lock(t->mu);
      for (auto* c : t->watched) c->closed = true;
      wake.swap(t->waiting);
      for (auto& w : wake) w->waiting = false;
    }
    for (auto& w : wake) w->bell.ring();
  }
}

const HubOptions& Hub::options() const noexcept { return impl_->options; }
bool Hub::stopped() const noexcept { return impl_->stopped.load(); }
std::size_t Hub::sse_connections() const noexcept { return impl_->sse_connections.load(); }
std::size_t Hub::held_polls() const noexcept { return impl_->held_polls.load(); }
void Hub::count_held_poll(int delta) noexcept {
  if (delta >= 0) {
    impl_->held_polls.fetch_add(static_cast<std::size_t>(delta), std::memory_order_relaxed);
  } else {
    impl_->held_polls.fetch_sub(static_cast<std::size_t>(-delta), std::memory_order_relaxed);
  }
}

// --- Cursor -------------------------------------------------------------------------------

Hub::Cursor::~Cursor() {
  auto& t = *state_->topic;
  std::lock_guard lock(t.mu);
  std::erase(t.watched, state_.get());
  std::erase(t.heartbeats, state_.get());
  std::erase(t.waiting, state_);
}

HubBatch Hub::Cursor::read(std::size_t max) {
  HubBatch out;
  auto& s = *state_;
  auto& t = *s.topic;
  std::lock_guard lock(t.mu);
  out.heartbeat = std::exchange(s.heartbeat_due, false);
  if (s.closed.load(std::memory_order_relaxed) || t.closed) {
    out.closed = true;
    return out;
  }
  if (s.pending_gap) {
    out.gap = std::move(*s.pending_gap);
    s.pending_gap.reset();
  }
  const auto first = t.first_seq();
  if (s.next < first) {
    Gap gap;
    if (!s.position.empty()) gap.last_seen = Position::after(s.position);
    gap.resumes_at = Position::after(make_token(t.epoch, first));
    gap.missed = first - s.next;
    gap.reason = "history trimmed";
    if (!out.gap) out.gap = std::move(gap);
    s.next = first;
    s.read_bytes = t.bytes_before(first);
  }
  if (s.next < t.next_seq && max > 0) {
    auto idx = static_cast<std::size_t>(s.next - first);
    const auto n = std::min<std::size_t>(max, t.ring.size() - idx);
    out.entries.assign(t.ring.begin() + static_cast<std::ptrdiff_t>(idx),
                       t.ring.begin() + static_cast<std::ptrdiff_t>(idx + n));
    s.next += n;
    s.read_bytes = out.entries.back()->end_bytes;
    s.position = out.entries.back()->position;
  }
  return out;
}

awaitable<void> Hub::Cursor::wait() {
  // No coroutine of its own (an idle connection waits here, so its frame would be held for
  // as long as the connection lives): register, then wait on the bell directly. When there
  // is something to read already, ring our own bell so that the wait returns at once.
  auto& s = *state_;
  {
    auto& t = *s.topic;
    std::lock_guard lock(t.mu);
    if (s.closed.load() || t.closed || s.pending_gap || s.heartbeat_due || s.next < t.next_seq) {
      s.bell.ring();
    } else if (!s.waiting) {
      s.waiting = true;
      t.waiting.push_back(state_);
    }
  }
  return s.bell.wait();
}

void Hub::Cursor::watch_backlog(std::uint64_t limit, std::function<void()> on_overrun) {
  auto& t = *state_->topic;
  std::lock_guard lock(t.mu);
  state_->backlog_limit = limit;
  state_->on_overrun = std::move(on_overrun);
  if (std::find(t.watched.begin(), t.watched.end(), state_.get()) == t.watched.end()) t.watched.push_back(state_.get());
}

void Hub::Cursor::enable_heartbeat() {
  auto& t = *state_->topic;
  std::lock_guard lock(t.mu);
  if (std::find(t.heartbeats.begin(), t.heartbeats.end(), state_.get()) == t.heartbeats.end()) {
    t.heartbeats.push_back(state_.get());
  }
}

const std::string& Hub::Cursor::position() const noexcept { return state_->position; }
const std::string& Hub::Cursor::topic() const noexcept { return state_->topic->name; }

std::string Hub::Cursor::next_position() const {
  auto& t = *state_->topic;
  std::lock_guard lock(t.mu);
  return make_token(t.epoch, state_->next == 0 ? 0 : state_->next - 1);
}

void Hub::Cursor::close() noexcept {
  state_->closed = true;
  state_->bell.ring();
}

void Hub::Cursor::wake() noexcept { state_->bell.ring(); }

// --- local subscriptions ------------------------------------------------------------------

namespace {

class LocalSubscription final : public StreamSource<Delivery> {
 public:
  explicit LocalSubscription(std::unique_ptr<Hub::Cursor> cursor) : cursor_(std::move(cursor)) {}

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      if (!ready_.empty()) {
        auto d = std::move(ready_.front());
        ready_.pop_front();
        co_return std::move(d);
      }
      auto batch = cursor_->read(64);
      if (batch.gap) ready_.push_back(Delivery::gap(std::move(*batch.gap)));
      for (auto& e : batch.entries) ready_.emplace_back(Message(e->message), Position::after(e->position));
      if (!ready_.empty()) continue;
      if (batch.closed) co_return std::nullopt;
      co_await cursor_->wait();
    }
  }

  void close() noexcept override { cursor_->close(); }

 private:
  std::unique_ptr<Hub::Cursor> cursor_;
  std::deque<Delivery> ready_;
};

}  // namespace

Stream<Delivery> Hub::subscribe(std::string_view topic, const Position& from) {
  auto cursor = open(topic, from, UnknownPosition::from_earliest, true);
  return Stream<Delivery>(std::make_shared<LocalSubscription>(std::move(cursor)));
}

// --- HTTP endpoints -----------------------------------------------------------------------

namespace {

std::string json_string(std::string_view s) { return boost::json::serialize(boost::json::value(boost::json::string(s))); }

void add_cors(const HubOptions& options, bhttp::fields& fields) {
  if (!options.cors_origin.empty()) fields.set(bhttp::field::access_control_allow_origin, options.cors_origin);
}

}  // namespace

awaitable<void> Hub::Impl::serve_publish(Exchange& ex) {
  std::string topic(ex.param("topic"));
  if (stopped) {
    ex.respond(bhttp::status::service_unavailable, "the hub is stopping\n");
    co_return;
  }
  if (!options.open_topics && !find(topic, false)) {
    ex.respond(bhttp::status::not_found, "unknown topic\n");
    co_return;
  }
  auto& req = ex.request();
  Message msg(Bytes(std::move(req.body())));
  take_message_headers(req.base(), msg);
  msg.topic = topic;
  msg.stamp();
  std::string id = msg.id;
  std::function<awaitable<void>(Message)> forward;
  {
    std::lock_guard lock(mu);
    if (auto it = upstream.find(topic); it != upstream.end()) forward = it->second;
  }
  if (forward) {
    std::string error;
    try {
      co_await forward(std::move(msg));
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      ex.respond(bhttp::status::bad_gateway, "the backbone refused the message: " + error + "\n");
      co_return;
    }
    Response res{bhttp::status::accepted, ex.request().version()};
    res.set(bhttp::field::content_type, "application/json");
    add_cors(options, res.base());
    res.body() = "{\"id\":" + json_string(id) + "}\n";
    ex.respond(std::move(res));
    co_return;
  }
  std::string position;
  try {
    position = publish(topic, std::move(msg));
  } catch (const boost::system::system_error& e) {
    // Stopped, or the publish observer refused the message (the webhook outbox could not record it).
    ex.respond(bhttp::status::service_unavailable,
               stopped ? std::string("the hub is stopping\n") : std::string("the message was not stored: ") + e.what() + "\n");
    co_return;
  }
  Response res{bhttp::status::ok, ex.request().version()};
  res.set(bhttp::field::content_type, "application/json");
  add_cors(options, res.base());
  res.body() = "{\"id\":" + json_string(id) + ",\"position\":" + json_string(position) + "}\n";
  ex.respond(std::move(res));
}

// An SSE connection in two coroutines: open_events() answers the request and returns the
// cursor; serve_events() then holds the connection. Its frame is what an idle connection keeps
// for as long as it lives, so it holds only what the loop needs: the request, its header and
// the batch being assembled live in other frames or in next_events().
awaitable<void> Hub::Impl::serve_events(Exchange& ex) {
  bool envelope = false;
  auto cursor = co_await open_events(ex, envelope);
  if (!cursor) co_return;
  sse_connections.fetch_add(1, std::memory_order_relaxed);
  struct Count {
    std::atomic<std::size_t>& n;
    ~Count() { n.fetch_sub(1, std::memory_order_relaxed); }
  } count{sse_connections};

  // A client that stops reading: its backlog grows past send_buffer and the connection is cut,
  // from the publisher's side, even while our write to it is blocked.
  cursor->watch_backlog(options.send_buffer, [&ex] { ex.close(); });
  if (options.heartbeat > duration::zero()) cursor->enable_heartbeat();

  std::vector<asio::const_buffer> buffers;
  std::vector<HubEntryPtr> entries;  // keep the frames alive while they are written
  std::string gap_frame;
  for (;;) {
    if (!next_events(*cursor, envelope, buffers, entries, gap_frame)) co_return;
    if (!buffers.empty()) {
      co_await ex.write(std::span<const asio::const_buffer>(buffers));
      continue;
    }
    co_await cursor->wait();
  }
}

bool Hub::Impl::next_events(Hub::Cursor& cursor, bool envelope, std::vector<asio::const_buffer>& buffers,
                            std::vector<HubEntryPtr>& entries, std::string& gap_frame) {
  static const std::string heartbeat = sse::encode_comment("heartbeat");
  auto batch = cursor.read(options.max_batch);
  buffers.clear();
  entries.clear();
  if (batch.closed) return false;
  if (batch.gap) {
    gap_frame = sse::encode_gap(*batch.gap);
    buffers.emplace_back(gap_frame.data(), gap_frame.size());
  }
  for (const auto& e : batch.entries) {
    const auto& frame = e->sse_frame(envelope);
    buffers.emplace_back(frame.data(), frame.size());
  }
  entries = std::move(batch.entries);
  if (buffers.empty() && batch.heartbeat) buffers.emplace_back(heartbeat.data(), heartbeat.size());
  return true;
}

awaitable<std::unique_ptr<Hub::Cursor>> Hub::Impl::open_events(Exchange& ex, bool& envelope) {
  std::string topic(ex.param("topic"));
  const auto& req = ex.request();
  envelope = ex.query("envelope").value_or("") == "1";
  std::string last_id(req["Last-Event-ID"]);
  if (last_id.empty()) last_id = ex.query("last_event_id").value_or("");
  const Position from = !last_id.empty()                          ? Position::after(last_id)
                        : ex.query("from").value_or("") == "earliest" ? Position::earliest()
                                                                      : Position::latest();
  auto cursor = stopped ? nullptr : open(topic, from, UnknownPosition::from_latest, options.open_topics);
  if (!cursor) {
    Response res{stopped ? bhttp::status::service_unavailable : bhttp::status::not_found, req.version()};
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    add_cors(options, res.base());
    res.body() = stopped ? "the hub is stopping\n" : "unknown topic\n";
    ex.respond(std::move(res));
    co_return nullptr;
  }
  bhttp::response_header<> head;
  head.result(bhttp::status::ok);
  head.set(bhttp::field::content_type, "text/event-stream");
  head.set(bhttp::field::cache_control, "no-cache");
  head.set("X-Accel-Buffering", "no");  // tells reverse proxies not to buffer the stream
  if (envelope) head.set("X-Patchbay-Envelope", "1");
  add_cors(options, head);
  co_await ex.write_head(std::move(head));
  const auto retry_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options.sse_retry).count();
  co_await ex.write(sse::encode_retry(static_cast<std::uint64_t>(std::max<std::int64_t>(retry_ms, 0))));
  ex.request() = Request();  // an idle stream keeps nothing of its request
  co_return cursor;
}

void Hub::mount(Server& server) {
  auto impl = impl_;
  if (impl->options.http_publish) {
    server.route(bhttp::verb::post, "/topics/{topic}",
                 [impl](Exchange& ex) -> awaitable<void> { return impl->serve_publish(ex); });
  }
  server.route(
      bhttp::verb::get, "/topics/{topic}/events",
      [impl](Exchange& ex) -> awaitable<void> { return impl->serve_events(ex); },
      [] {
        RouteOptions o;
        o.streaming = true;
        return o;
      }());
  std::weak_ptr<Hub> self = weak_from_this();
  mount_polling(self, server);
  mount_websocket(self, server);

  // CORS preflight: a page on another origin that sends a header beyond the CORS-safelisted
  // ones (If-None-Match for short polls, Last-Event-ID, Patchbay-Message-Id, a JSON
  // Content-Type on publish) asks with OPTIONS first. Served only when cors_origin is set.
  if (!impl->options.cors_origin.empty()) {
    auto preflight = [impl](Exchange& ex) -> awaitable<void> {
      auto& res = ex.response();
      res.result(bhttp::status::no_content);
      res.version(ex.request().version());
      res.set(bhttp::field::access_control_allow_origin, impl->options.cors_origin);
      res.set(bhttp::field::access_control_allow_methods, "GET, POST, OPTIONS");
      // Echo what the page asks for: message headers are free-form (each becomes a header field).
      const auto asked = ex.request()[bhttp::field::access_control_request_headers];
      res.set(bhttp::field::access_control_allow_headers,
              asked.empty() ? std::string_view("Content-Type, If-None-Match, Last-Event-ID, Patchbay-Message-Id")
                            : std::string_view(asked.data(), asked.size()));
      res.set(bhttp::field::access_control_expose_headers, "ETag");
      res.set(bhttp::field::access_control_max_age, "600");
      res.set(bhttp::field::vary, "Origin, Access-Control-Request-Headers");
      ex.respond();
      co_return;
    };
    for (const char* path : {"/topics/{topic}", "/topics/{topic}/events", "/topics/{topic}/poll",
                             "/topics/{topic}/messages"}) {
      server.route(bhttp::verb::options, path, preflight);
    }
  }
}

}  // namespace patchbay::http
