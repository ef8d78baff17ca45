// The in-process transport: the embedded default and the reference Transport.
//
// Data structures. Each topic keeps one log: a ring of the last `history` messages, each with
// a sequence number, shared by every subscriber: the log holds each message once, and a
// delivery copies only its small fields (topic, id, headers), never the payload bytes.
// A subscriber — or a whole consumer group — is a Cursor into that log: the next sequence to
// deliver, the deliveries nacked for redelivery, and the deliveries handed out but not yet
// settled. Positions are "<epoch>:<seq>"; the epoch is drawn when the topic is created, so a
// position from another run is recognised and answered with a gap.
//
// Slow subscribers. A cursor may fall behind the head by at most `buffer` messages. Then, by
// `slow_subscriber`: `block` makes publishers wait until it catches up; `drop_oldest` moves it
// forward and it receives a gap Delivery saying how many messages it missed.
//
// Locking. One mutex per topic guards its log, cursors and consumers; the transport mutex
// guards the topic and service maps. Order: transport mutex, then a topic mutex. No lock is
// held across a suspension point. Waiting consumers and publishers sleep on a Doorbell:
// ringing never blocks, a ring before the wait is kept, and a
// spurious wake-up only costs a re-check (see patchbay/doorbell.hpp).

#include <patchbay/transports/inproc/inproc.hpp>

#include <patchbay/channel.hpp>
#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/transport.hpp>

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>
#include <vector>

namespace patchbay::inproc {
namespace {

struct Settings {
  std::size_t history = 1024;
  std::size_t buffer = 1024;
  bool drop_oldest = false;
  std::size_t max_payload = 0;
  std::chrono::milliseconds drain_timeout{5000};
};

using MessagePtr = std::shared_ptr<const Message>;

struct LogEntry {
  std::uint64_t seq;
  MessagePtr msg;
};

struct TopicState;
class Consumer;

std::string make_token(std::uint64_t epoch, std::uint64_t seq) {
  char buf[42];  // two 20-digit numbers and a colon
  auto r = std::to_chars(buf, buf + 20, epoch);
  *r.ptr++ = ':';
  r = std::to_chars(r.ptr, buf + sizeof buf, seq);
  return std::string(buf, r.ptr);
}

bool parse_token(const std::string& token, std::uint64_t& epoch, std::uint64_t& seq) {
  auto colon = token.find(':');
  if (colon == std::string::npos) return false;
  const char* b = token.data();
  auto r1 = std::from_chars(b, b + colon, epoch);
  auto r2 = std::from_chars(b + colon + 1, b + token.size(), seq);
  return r1.ec == std::errc{} && r1.ptr == b + colon && r2.ec == std::errc{} && r2.ptr == b + token.size();
}

/// One subscriber, or one consumer group: a position in the topic log plus settlement state.
/// Guarded by the topic mutex (except the immutable members).
class Cursor final : public Acknowledger {
 public:
  Cursor(std::shared_ptr<TopicState> topic, std::string group, std::size_t max_in_flight)
      : topic_(std::move(topic)), group_(std::move(group)), max_in_flight_(max_in_flight) {}

  void ack(std::uint64_t tag) noexcept override;
  void nack(std::uint64_t tag, bool requeue) noexcept override;

  std::shared_ptr<TopicState> topic_;
  const std::string group_;
  const std::size_t max_in_flight_;  // 0: unlimited

  std::uint64_t next = 0;                            // next sequence to deliver from the log
  std::deque<LogEntry> redeliver;                    // nacked, delivered again first
  std::unordered_map<std::uint64_t, MessagePtr> unacked;  // handed out, not settled
  std::optional<Gap> pending_gap;
  std::vector<Consumer*> members;                    // attached consumers (one unless a group)
  std::uint64_t last_delivered = 0;                  // for gap reports; 0: none yet
  bool detached = false;                             // removed from the topic

  bool drained(std::uint64_t head) const { return next >= head && redeliver.empty() && unacked.empty(); }
  void wake_members();  // topic mutex held: rings the members that wait for news
};

struct TopicState {
  TopicState(std::string n, std::uint64_t e) : name(std::move(n)), epoch(e) {}

  std::mutex mutex;
  const std::string name;
  const std::uint64_t epoch;
  std::uint64_t next_seq = 1;      // sequence of the next published message
  std::deque<LogEntry> log;        // contiguous sequences, oldest first
  std::vector<std::shared_ptr<Cursor>> cursors;
  std::map<std::string, std::shared_ptr<Cursor>> groups;
  std::vector<Doorbell*> blocked_publishers;
  bool closed = false;

  std::uint64_t first_seq() const { return log.empty() ? next_seq : log.front().seq; }
};

/// A subscription's stream source; one per subscribe() call.
class Consumer final : public StreamSource<Delivery> {
 public:
  Consumer(executor ex, std::shared_ptr<Cursor> cursor, std::size_t buffer)
      : bell_(std::move(ex)), cursor_(std::move(cursor)), buffer_(buffer) {}
  ~Consumer() override { close(); }

  awaitable<std::optional<Delivery>> next() override {
    TopicState& topic = *cursor_->topic_;
    for (;;) {
      {
        std::lock_guard lock(topic.mutex);
        if (closed_) co_return std::nullopt;
        if (auto d = take(topic)) co_return d;
        if (topic.closed) {
          detach_locked();
          co_return std::nullopt;
        }
        // Nothing to take: ask to be rung. Publishers ring only consumers that asked, so a
        // consumer that keeps up costs no wake-up per message.
        waiting_ = true;
      }
      co_await bell_.wait();
    }
  }

  void close() noexcept override {
    auto& topic = *cursor_->topic_;
    {
      std::lock_guard lock(topic.mutex);
      if (closed_) return;
      detach_locked();
    }
    bell_.ring();
  }

  /// Topic mutex held. Rings the consumer if it is waiting (or about to wait) for news.
  void wake_if_waiting() {
    if (!waiting_) return;
    waiting_ = false;
    bell_.ring();
  }

 private:
  // Called with the topic mutex held.
  std::optional<Delivery> take(TopicState& topic) {
    Cursor& c = *cursor_;
    if (c.pending_gap) {
      Gap g = std::move(*c.pending_gap);
      c.pending_gap.reset();
      return Delivery::gap(std::move(g));
    }
    if (c.max_in_flight_ != 0 && c.unacked.size() >= c.max_in_flight_) return std::nullopt;
    if (!c.redeliver.empty()) {
      LogEntry e = std::move(c.redeliver.front());
      c.redeliver.pop_front();
      c.unacked.emplace(e.seq, e.msg);
      return Delivery(Message(*e.msg), Position::after(make_token(topic.epoch, e.seq)), true, cursor_, e.seq);
    }
    if (c.next >= topic.next_seq) return std::nullopt;
    const LogEntry& e = topic.log[c.next - topic.first_seq()];
    ++c.next;
    c.last_delivered = e.seq;
    c.unacked.emplace(e.seq, e.msg);
    // A cursor that was at its limit may now let blocked publishers go on.
    if (!topic.blocked_publishers.empty() && topic.next_seq - c.next < buffer_) {
      for (auto* b : topic.blocked_publishers) b->ring();
      topic.blocked_publishers.clear();
    }
    return Delivery(Message(*e.msg), Position::after(make_token(topic.epoch, e.seq)), false, cursor_, e.seq);
  }

  // Called with the topic mutex held.
  void detach_locked() {
    closed_ = true;
    auto& c = *cursor_;
    auto& topic = *c.topic_;
    std::erase(c.members, this);
    if (c.members.empty() && !c.detached) {
      // Nobody reads this cursor any more: an in-process subscription (or group) ends with
      // its last member, and must not hold publishers back.
      c.detached = true;
      std::erase(topic.cursors, cursor_);
      if (!c.group_.empty()) topic.groups.erase(c.group_);
      for (auto* b : topic.blocked_publishers) b->ring();
      topic.blocked_publishers.clear();
    }
  }

  Doorbell bell_;
  std::shared_ptr<Cursor> cursor_;
  const std::size_t buffer_;  // the transport's `buffer` setting
  bool closed_ = false;   // guarded by the topic mutex
  bool waiting_ = false;  // guarded by the topic mutex: next() found nothing and waits
};

void Cursor::wake_members() {
  for (auto* m : members) m->wake_if_waiting();
}

void Cursor::ack(std::uint64_t tag) noexcept {
  std::lock_guard lock(topic_->mutex);
  if (unacked.erase(tag) && max_in_flight_ != 0) wake_members();
}

void Cursor::nack(std::uint64_t tag, bool requeue) noexcept {
  std::lock_guard lock(topic_->mutex);
  auto it = unacked.find(tag);
  if (it == unacked.end()) return;
  if (requeue && !detached) redeliver.push_back(LogEntry{tag, std::move(it->second)});
  // Without requeue the message is dropped: the in-process transport has no dead-letter store.
  unacked.erase(it);
  wake_members();
}

/// A request waiting for a server. Destroyed unanswered, it fails the request with
/// errc::stopped, so a requester never waits past shutdown for a reply that cannot come.
struct Call {
  using ReplyChannel = asio::experimental::concurrent_channel<executor, void(boost::system::error_code, Message)>;

  Message request;
  deadline until;
  std::shared_ptr<ReplyChannel> reply;

  Call(Message m, deadline d, std::shared_ptr<ReplyChannel> r) : request(std::move(m)), until(d), reply(std::move(r)) {}
  Call(Call&&) = default;
  Call& operator=(Call&&) = default;
  ~Call() { fail(errc::stopped); }

  void answer(Message m) {
    if (auto r = std::move(reply)) r->try_send(boost::system::error_code{}, std::move(m));
  }
  void fail(errc e, std::string text = {}) {
    if (auto r = std::move(reply)) {
      Message m;
      if (!text.empty()) m.headers.add("patchbay-error", std::move(text));
      r->try_send(make_error_code(e), std::move(m));
    }
  }
};

struct ServiceState {
  explicit ServiceState(executor ex) : calls(std::move(ex), 1024) {}
  Channel<std::shared_ptr<Call>> calls;
};

class InprocTransport final : public Transport {
 public:
  InprocTransport(executor ex, Settings settings) : ex_(std::move(ex)), settings_(settings) {
    std::random_device rd;
    epoch_base_ = (static_cast<std::uint64_t>(rd()) << 20) ^ rd();
  }

  std::string_view type() const noexcept override { return "inproc"; }

  Features features() const override {
    Features f;
    f.publish_subscribe = f.request_reply = f.consumer_groups = f.at_least_once = true;
    f.ordered = f.replay = f.gap_signal = f.headers = f.flow_control = true;
    f.durable = false;
    f.max_payload = settings_.max_payload;
    return f;
  }

  awaitable<void> do_stop() override {
    if (stopping_.exchange(true)) {
      // Idempotent: a second stop waits for the first one to finish.
      while (!stopped_.load()) co_await sleep(std::chrono::milliseconds(1));
      co_return;
    }
    // Drain: wait until every subscription has received and settled every message, and every
    // request being handled was answered, or until the drain timeout.
    const auto until = clock::now() + settings_.drain_timeout;
    while (clock::now() < until && !drained()) co_await sleep(std::chrono::milliseconds(2));

    std::vector<std::shared_ptr<TopicState>> topics;
    std::vector<std::shared_ptr<ServiceState>> services;
    {
      std::lock_guard lock(mutex_);
      for (auto& [_, t] : topics_) topics.push_back(t);
      for (auto& [_, s] : services_) services.push_back(s);
    }
    for (auto& t : topics) {
      std::lock_guard lock(t->mutex);
      t->closed = true;
      for (auto& c : t->cursors) c->wake_members();
      for (auto* b : t->blocked_publishers) b->ring();
      t->blocked_publishers.clear();
    }
    for (auto& s : services) s->calls.close();
    stopped_ = true;
  }

  awaitable<void> do_publish(Message msg) override {
    if (stopping_) throw_error(errc::stopped, "inproc: publish after stop");
    if (settings_.max_payload && msg.payload.size() > settings_.max_payload)
      throw_error(errc::payload_too_large, "inproc: payload of " + std::to_string(msg.payload.size()) +
                                               " bytes exceeds max_payload " + std::to_string(settings_.max_payload));
    auto topic = topic_state(msg.topic);
    auto shared = std::make_shared<const Message>(std::move(msg));
    std::unique_ptr<Doorbell> bell;  // made only when the publisher must wait
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      {
        std::lock_guard lock(topic->mutex);
        if (topic->closed) throw_error(errc::stopped, "inproc: publish after stop");
        if (settings_.drop_oldest || !any_cursor_full(*topic)) {
          append(*topic, std::move(shared));
          co_return;
        }
        if (!bell) bell = std::make_unique<Doorbell>(ex);
        topic->blocked_publishers.push_back(bell.get());
      }
      try {
        co_await bell->wait();
      } catch (...) {
        std::lock_guard lock(topic->mutex);
        std::erase(topic->blocked_publishers, bell.get());
        throw;
      }
    }
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic_name, SubscribeOptions options) override {
    if (stopping_) throw_error(errc::stopped, "inproc: subscribe after stop");
    auto topic = topic_state(topic_name);
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<Consumer> consumer;
    {
      std::lock_guard lock(topic->mutex);
      std::shared_ptr<Cursor> cursor;
      if (!options.group().empty()) {
        auto it = topic->groups.find(options.group());
        if (it != topic->groups.end()) cursor = it->second;
      }
      if (!cursor) {
        cursor = std::make_shared<Cursor>(topic, options.group(), options.max_in_flight());
        place(*topic, *cursor, options.from());
        topic->cursors.push_back(cursor);
        if (!options.group().empty()) topic->groups.emplace(options.group(), cursor);
      }
      consumer = std::make_shared<Consumer>(ex, cursor, settings_.buffer);
      cursor->members.push_back(consumer.get());
    }
    co_return Stream<Delivery>(std::move(consumer));
  }

  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    if (stopping_) throw_error(errc::stopped, "inproc: request after stop");
    if (settings_.max_payload && msg.payload.size() > settings_.max_payload)
      throw_error(errc::payload_too_large, "inproc: request payload exceeds max_payload");
    auto ex = co_await asio::this_coro::executor;
    auto state = service_state(service);
    auto reply = std::make_shared<Call::ReplyChannel>(ex, 1);
    auto call = std::make_shared<Call>(std::move(msg), until, reply);
    // Nobody serving yet is not an error: the request waits in the queue until a server
    // takes it or the deadline passes (servers may start after clients).
    if (!state->calls.try_send(call)) co_await state->calls.send(std::move(call));
    call.reset();

    asio::steady_timer timer(ex, until);
    using namespace asio::experimental;
    auto [order, reply_ec, reply_msg, timer_ec] =
        co_await make_parallel_group(reply->async_receive(asio::deferred), timer.async_wait(asio::deferred))
            .async_wait(wait_for_one(), asio::use_awaitable_t<executor>{});
    if (order[0] == 1 && reply_ec) throw_error(errc::timed_out, "inproc: no reply from '" + service + "' before the deadline");
    if (reply_ec == asio::experimental::error::channel_cancelled || reply_ec == asio::error::operation_aborted)
      throw_error(errc::timed_out, "inproc: no reply from '" + service + "' before the deadline");
    if (reply_ec) {
      auto text = reply_msg.headers.get("patchbay-error");
      throw boost::system::system_error(reply_ec, text ? std::string(*text) : std::string("inproc: request failed"));
    }
    co_return std::move(reply_msg);
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    if (stopping_) throw_error(errc::stopped, "inproc: serve after stop");
    auto state = service_state(service);
    auto shared_handler = std::make_shared<ServiceHandler>(std::move(handler));
    while (auto call = co_await state->calls.receive()) {
      if (clock::now() >= (*call)->until) {
        (*call)->fail(errc::timed_out);
        continue;
      }
      ++in_flight_requests_;
      // Each request on its own strand: handlers run in parallel, each one serialized.
      asio::co_spawn(asio::make_strand(ex_), handle(std::move(*call), shared_handler), asio::detached);
    }
  }

 private:
  awaitable<void> handle(std::shared_ptr<Call> call, std::shared_ptr<ServiceHandler> handler) {
    try {
      Message reply = co_await (*handler)(std::move(call->request));
      call->answer(std::move(reply));
    } catch (const std::exception& e) {
      call->fail(errc::remote_error, e.what());
    }
    --in_flight_requests_;
  }

  awaitable<void> sleep(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable_t<executor>{});
  }

  std::shared_ptr<TopicState> topic_state(const std::string& name) {
    std::lock_guard lock(mutex_);
    auto& slot = topics_[name];
    if (!slot) slot = std::make_shared<TopicState>(name, epoch_base_ + topics_.size());
    return slot;
  }

  std::shared_ptr<ServiceState> service_state(const std::string& name) {
    std::lock_guard lock(mutex_);
    auto& slot = services_[name];
    if (!slot) {
      slot = std::make_shared<ServiceState>(ex_);
      if (stopping_) slot->calls.close();
    }
    return slot;
  }

  bool drained() {
    if (in_flight_requests_.load() != 0) return false;
    std::lock_guard lock(mutex_);
    for (auto& [_, t] : topics_) {
      std::lock_guard tl(t->mutex);
      for (auto& c : t->cursors)
        if (!c->drained(t->next_seq)) return false;
    }
    return true;
  }

  // Topic mutex held. Whether some cursor is `buffer` messages behind (block policy).
  bool any_cursor_full(const TopicState& t) const {
    for (auto& c : t.cursors)
      if (t.next_seq - c->next >= settings_.buffer) return true;
    return false;
  }

  // Topic mutex held.
  void append(TopicState& t, MessagePtr msg) {
    const std::uint64_t seq = t.next_seq++;
    t.log.push_back(LogEntry{seq, std::move(msg)});
    if (t.log.size() > settings_.history) t.log.pop_front();
    for (auto& c : t.cursors) {
      if (settings_.drop_oldest && t.next_seq - c->next > settings_.buffer) {
        // Overtaken: skip ahead to keep `buffer` messages and tell the subscriber.
        const std::uint64_t resume = t.next_seq - settings_.buffer;
        const std::uint64_t missed = resume - c->next;
        if (c->pending_gap) {
          c->pending_gap->missed += missed;
        } else {
          c->pending_gap = Gap{c->last_delivered ? Position::after(make_token(t.epoch, c->last_delivered)) : Position(),
                               Position(), missed, "slow subscriber overtaken (slow_subscriber: drop_oldest)"};
        }
        c->pending_gap->resumes_at = Position::after(make_token(t.epoch, resume - 1));
        c->next = resume;
      }
      c->wake_members();
    }
  }

  // Topic mutex held. Sets where a new cursor starts, with a gap when the position is gone.
  void place(TopicState& t, Cursor& c, const Position& from) {
    switch (from.where()) {
      case Position::kind::latest: c.next = t.next_seq; return;
      case Position::kind::earliest: c.next = t.first_seq(); return;
      case Position::kind::after: break;
    }
    std::uint64_t epoch = 0, seq = 0;
    const std::uint64_t first = t.first_seq();
    if (!parse_token(from.token(), epoch, seq) || epoch != t.epoch) {
      c.next = first;
      c.pending_gap = Gap{from, Position::after(make_token(t.epoch, first - 1)), 0,
                          "position is from another history (epoch changed or foreign token)"};
      return;
    }
    if (seq + 1 < first) {
      c.next = first;
      c.pending_gap = Gap{from, Position::after(make_token(t.epoch, first - 1)), first - (seq + 1), "history trimmed"};
      return;
    }
    c.next = std::min(seq + 1, t.next_seq);
  }

  executor ex_;
  Settings settings_;
  std::uint64_t epoch_base_ = 0;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<TopicState>> topics_;
  std::map<std::string, std::shared_ptr<ServiceState>> services_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<int> in_flight_requests_{0};
};

absl::StatusOr<std::shared_ptr<Transport>> make_inproc(const TransportContext& ctx) {
  const auto& s = ctx.settings;
  Settings out;
  auto history = s.get_int("history", 1024, 1, 100'000'000);
  if (!history.ok()) return history.status();
  out.history = static_cast<std::size_t>(*history);
  auto buffer = s.get_int("buffer", *history, 1, 100'000'000);
  if (!buffer.ok()) return buffer.status();
  if (*buffer > *history)
    return config::error_at(s.mark_of("buffer"), ctx.settings.context() + ": buffer (" + std::to_string(*buffer) +
                                                     ") may not exceed history (" + std::to_string(*history) +
                                                     "); raise history or lower buffer");
  out.buffer = static_cast<std::size_t>(*buffer);
  auto policy = s.get_choice("slow_subscriber", "block", {"block", "drop_oldest"});
  if (!policy.ok()) return policy.status();
  out.drop_oldest = *policy == "drop_oldest";
  auto max_payload = s.get_int("max_payload", 0, 0);
  if (!max_payload.ok()) return max_payload.status();
  out.max_payload = static_cast<std::size_t>(*max_payload);
  auto drain = s.get_duration("drain_timeout", std::chrono::milliseconds(5000));
  if (!drain.ok()) return drain.status();
  out.drain_timeout = *drain;
  return std::make_shared<InprocTransport>(ctx.ex, out);
}

absl::Status register_inproc(Registry& registry) { return registry.add_transport("inproc", make_inproc); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_transport(Registry& registry) { return register_inproc(registry); }
#endif

}  // namespace patchbay::inproc

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::inproc::register_inproc)
#endif
