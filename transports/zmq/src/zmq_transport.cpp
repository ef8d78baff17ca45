// The `zmq` transport: topics over XPUB/SUB, consumer groups over PUSH/PULL, request/reply
// over DEALER/ROUTER, all driven from the runtime's io_context through ZMQ_FD (AsyncSocket).
//
// Structure. A transport owns one zmq context and, depending on which endpoints its config
// names, one XPUB (publish), one PUSH (publish to groups), one PULL (group members), one
// DEALER (request) and one ROUTER (serve) socket, plus one SUB socket per subscription (each
// subscription filters, buffers and is closed on its own; a slow subscriber holds up nobody
// else's socket). Sockets that several coroutines share are serialized by AsyncSocket's mutex.
//
// Reader loops (one coroutine each, on its own strand, ending when its socket closes):
//   - XPUB: reads subscription messages and answers welcome probes (slow joiners, below);
//   - PULL: demultiplexes pulled messages by topic into the local groups' queues;
//   - DEALER: hands replies to the waiting request() calls by request id;
//   - ROUTER: starts a handler coroutine per request, each on its own strand.
// A subscription reads its own SUB socket directly inside next(): no hop, no extra queue.
//
// Slow joiners. zmq subscriptions travel to the publisher asynchronously, so a message
// published right after a plain SUB connect is lost. subscribe() therefore completes only once
// the subscription is live at every publisher it connects to: the SUB socket also subscribes
// to a probe topic "\0patchbay-welcome\0<topic>", after the topic itself. The XPUB (in verbose
// mode, so that it sees every subscription) answers each probe subscription with a welcome on
// the probe topic, naming its publisher id. Subscriptions travel in order on one connection,
// so when the welcome arrives, the topic subscription is already in the publisher's filter.
// subscribe() waits for welcomes from as many distinct publishers as it has connect endpoints,
// at most `join_timeout` (a publisher that is not running yet, or a foreign one that sends no
// welcomes, does not block it for longer); `handshake: false` turns the probe off.
//
// Lock order: State::mutex (maps of groups, pending requests, handlers, subscriptions), then
// a GroupQueue's mutex or an AsyncSocket's mutex. No lock is held across a suspension point.
#include <patchbay/transports/zmq/zmq.hpp>

#include "async_socket.hpp"
#include "wire.hpp"

#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/plugin.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

namespace patchbay::zeromq {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view welcome_prefix{"\0patchbay-welcome\0", 18};
constexpr auto kAnyRetry = std::chrono::milliseconds(10);

struct Endpoints {
  std::vector<std::string> bind;
  std::vector<std::string> connect;
  bool empty() const { return bind.empty() && connect.empty(); }
};

struct Settings {
  Endpoints publish, subscribe, push, pull, serve, request;
  std::vector<std::string> push_topics{"*"};
  int sndhwm = 1000;
  int rcvhwm = 1000;
  std::chrono::milliseconds linger{1000};
  bool drop_when_full = false;
  bool handshake = true;
  std::chrono::milliseconds join_timeout{5000};
  std::chrono::milliseconds send_timeout{10000};
  std::chrono::milliseconds reconnect_interval{100};
  std::chrono::milliseconds reconnect_interval_max{2000};
  std::size_t group_buffer = 1000;
  std::size_t max_payload = 0;
};

bool topic_matches(const std::vector<std::string>& patterns, std::string_view topic) {
  for (const auto& p : patterns) {
    if (!p.empty() && p.back() == '*') {
      if (topic.starts_with(std::string_view(p).substr(0, p.size() - 1))) return true;
    } else if (p == topic) {
      return true;
    }
  }
  return false;
}

/// Applies the common options and the endpoints; throws zmq::error_t on a bad endpoint.
void configure(AsyncSocket& s, const Settings& st, const Endpoints& ep, zmq::socket_type type) {
  s.io([&](zmq::socket_t& z) {
    z.set(zmq::sockopt::linger, static_cast<int>(st.linger.count()));
    z.set(zmq::sockopt::sndhwm, st.sndhwm);
    z.set(zmq::sockopt::rcvhwm, st.rcvhwm);
    z.set(zmq::sockopt::reconnect_ivl, static_cast<int>(st.reconnect_interval.count()));
    z.set(zmq::sockopt::reconnect_ivl_max, static_cast<int>(st.reconnect_interval_max.count()));
    if (type == zmq::socket_type::xpub) {
      if (!st.drop_when_full) z.set(zmq::sockopt::xpub_nodrop, true);
      if (st.handshake) z.set(zmq::sockopt::xpub_verbose, true);
    }
    if (type == zmq::socket_type::dealer || type == zmq::socket_type::push) {
      // Queue only to peers that are connected: with none, a send waits (and times out)
      // instead of filling a queue nobody reads.
      z.set(zmq::sockopt::immediate, true);
    }
    for (const auto& e : ep.bind) z.bind(e);
    for (const auto& e : ep.connect) z.connect(e);
    return 0;
  });
}

/// Waits on `socket` for `want` until `until`; false when the deadline passed.
awaitable<bool> wait_until(AsyncSocket& socket, int want, deadline until) {
  if (clock::now() >= until) co_return false;
  auto ex = co_await asio::this_coro::executor;
  auto bell = std::make_shared<Doorbell>(ex);
  asio::steady_timer timer(ex, until);
  timer.async_wait([bell](const boost::system::error_code& ec) {
    if (!ec) bell->ring();
  });
  co_await socket.wait(want, bell);
  timer.cancel();
  co_return clock::now() < until;
}

std::string make_publisher_id() {
  std::random_device rd;
  std::mt19937_64 gen((std::uint64_t(rd()) << 32) ^ rd());
  char buf[17];
  auto v = gen();
  for (int i = 15; i >= 0; --i, v >>= 4) buf[i] = "0123456789abcdef"[v & 15];
  return std::string(buf, 16);
}

// --- consumer groups ----------------------------------------------------------------------

/// The in-process queue of one (topic, group): the PULL reader pushes, members take.
struct GroupQueue {
  explicit GroupQueue(std::size_t cap) : capacity(cap) {}
  std::mutex mutex;
  const std::size_t capacity;
  std::deque<Message> messages;
  std::vector<std::shared_ptr<Doorbell>> waiting_members;
  std::shared_ptr<Doorbell> waiting_reader;
  std::size_t members = 0;
  bool closed = false;
};

struct Atomics {
  std::atomic<std::uint64_t> published{0}, received{0}, malformed{0}, oversized{0}, unclaimed{0}, welcomes{0};
};

// --- the shared state ---------------------------------------------------------------------

struct PendingRequest {
  std::shared_ptr<Doorbell> bell;
  bool done = false;
  int status = 0;
  Message reply;
};

class Subscription;
class GroupMember;

struct State : std::enable_shared_from_this<State> {
  State(executor e, Settings s) : ex(std::move(e)), settings(std::move(s)), context(1), publisher_id(make_publisher_id()) {}

  executor ex;
  const Settings settings;
  zmq::context_t context;
  const std::string publisher_id;
  Atomics counters;

  std::shared_ptr<AsyncSocket> xpub, push, pull, dealer, router;

  std::mutex mutex;
  bool stopped = false;                      // guarded by mutex
  std::atomic<bool> stopped_flag{false};     // the same, for the publish fast path
  std::vector<std::weak_ptr<Subscription>> subscriptions;
  std::map<std::string, std::map<std::string, std::shared_ptr<GroupQueue>>> groups;  // topic → group → queue
  std::unordered_map<std::string, std::shared_ptr<PendingRequest>> pending;
  std::map<std::string, std::shared_ptr<ServiceHandler>> handlers;
  std::vector<std::shared_ptr<Doorbell>> serve_waiters;
  std::atomic<std::uint64_t> next_request{1};
  std::thread terminator;

  std::shared_ptr<AsyncSocket> open(zmq::socket_type type, const Endpoints& ep) {
    auto s = std::make_shared<AsyncSocket>(ex, context, type);
    configure(*s, settings, ep, type);
    return s;
  }

  bool is_stopped() const { return stopped_flag.load(std::memory_order_acquire); }

  /// Closes every socket and wakes every waiter; the context is terminated by the caller.
  void close_all();
};

// --- subscriptions (SUB) ------------------------------------------------------------------

class Subscription final : public StreamSource<Delivery> {
 public:
  Subscription(std::shared_ptr<State> state, std::shared_ptr<AsyncSocket> socket, std::string topic, executor ex)
      : state_(std::move(state)), socket_(std::move(socket)), topic_(std::move(topic)),
        bell_(std::make_shared<Doorbell>(std::move(ex))) {}
  ~Subscription() override { close(); }

  /// Waits for welcomes from `publishers` distinct publishers, at most until `until`.
  /// Topic messages that arrive meanwhile are kept for next().
  awaitable<void> join(std::size_t publishers, deadline until) {
    std::set<std::string> welcomed;
    const std::string probe = std::string(welcome_prefix) + topic_;
    while (welcomed.size() < publishers) {
      bool got_any = false;
      try {
        socket_->io([&](zmq::socket_t& s) {
          std::vector<zmq::message_t> frames;
          while (wire::recv_multipart(s, frames)) {
            got_any = true;
            if (frames.size() == 2 && wire::view(frames[0]) == probe) {
              welcomed.emplace(wire::view(frames[1]));
              continue;
            }
            if (auto m = decode(frames)) early_.push_back(std::move(*m));
          }
          return 0;
        });
      } catch (const boost::system::system_error&) {
        co_return;  // closed while joining
      }
      if (got_any) continue;
      if (bool more_time = co_await wait_until(*socket_, AsyncSocket::want_in, until); !more_time) break;
    }
    // Later welcomes (for later subscribers of the topic) are of no use to us.
    try {
      socket_->io([&](zmq::socket_t& s) {
        s.set(zmq::sockopt::unsubscribe, probe);
        return 0;
      });
    } catch (const boost::system::system_error&) {
    }
  }

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      if (closed_.load(std::memory_order_acquire)) co_return std::nullopt;
      if (!early_.empty()) {
        Message m = std::move(early_.front());
        early_.pop_front();
        co_return Delivery(std::move(m), Position());
      }
      std::optional<Message> got;
      try {
        socket_->io([&](zmq::socket_t& s) {
          // Rule 3: read until a message for us, or EAGAIN.
          while (wire::recv_multipart(s, frames_)) {
            if ((got = decode(frames_))) return 0;
          }
          return 0;
        });
      } catch (const boost::system::system_error&) {
        co_return std::nullopt;  // closed
      }
      if (got) co_return Delivery(std::move(*got), Position());
      co_await socket_->wait(AsyncSocket::want_in, bell_);
    }
  }

  void close() noexcept override {
    if (closed_.exchange(true)) return;
    socket_->close();
    bell_->ring();
  }

 private:
  /// A Message for this subscription, or nullopt for control messages, other topics sharing
  /// our prefix, and malformed messages (counted).
  std::optional<Message> decode(std::vector<zmq::message_t>& frames) {
    if (frames.empty()) return std::nullopt;
    const std::string_view topic = wire::view(frames[0]);
    if (topic != topic_) {
      if (!topic.starts_with(welcome_prefix) && !topic.starts_with(topic_)) ++state_->counters.malformed;
      return std::nullopt;  // a longer topic with our topic as prefix, or a welcome
    }
    Message m;
    if (frames.size() < 2 || !wire::parse_body(frames, 1, m)) {
      ++state_->counters.malformed;
      return std::nullopt;
    }
    if (state_->settings.max_payload != 0 && m.payload.size() > state_->settings.max_payload) {
      ++state_->counters.oversized;
      return std::nullopt;
    }
    m.topic = topic_;
    m.stamp();
    ++state_->counters.received;
    return m;
  }

  std::shared_ptr<State> state_;
  std::shared_ptr<AsyncSocket> socket_;
  const std::string topic_;
  std::shared_ptr<Doorbell> bell_;
  std::atomic<bool> closed_{false};
  std::deque<Message> early_;  // only touched by join() and then next(), one at a time
  std::vector<zmq::message_t> frames_;  // reused by next(); one next() at a time
};

// --- group members (PULL) -----------------------------------------------------------------

class GroupMember final : public StreamSource<Delivery> {
 public:
  GroupMember(std::shared_ptr<State> state, std::shared_ptr<GroupQueue> queue, std::string topic, std::string group,
              executor ex)
      : state_(std::move(state)), queue_(std::move(queue)), topic_(std::move(topic)), group_(std::move(group)),
        bell_(std::make_shared<Doorbell>(std::move(ex))) {}
  ~GroupMember() override { close(); }

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      {
        std::lock_guard lock(queue_->mutex);
        if (closed_ || queue_->closed) co_return std::nullopt;
        if (!queue_->messages.empty()) {
          Message m = std::move(queue_->messages.front());
          queue_->messages.pop_front();
          if (auto r = std::move(queue_->waiting_reader)) r->ring();
          co_return Delivery(std::move(m), Position());
        }
        queue_->waiting_members.push_back(bell_);
      }
      co_await bell_->wait();
    }
  }

  void close() noexcept override {
    {
      std::lock_guard state_lock(state_->mutex);
      std::lock_guard lock(queue_->mutex);
      if (closed_) return;
      closed_ = true;
      std::erase(queue_->waiting_members, bell_);
      if (--queue_->members == 0) {
        // The last member leaves: the group is gone (what it still buffered is dropped,
        // as zmq is at-most-once), and the reader must not wait on it.
        queue_->closed = true;
        if (auto r = std::move(queue_->waiting_reader)) r->ring();
        auto t = state_->groups.find(topic_);
        if (t != state_->groups.end()) {
          auto g = t->second.find(group_);
          if (g != t->second.end() && g->second == queue_) t->second.erase(g);
          if (t->second.empty()) state_->groups.erase(t);
        }
      }
    }
    bell_->ring();
  }

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<GroupQueue> queue_;
  const std::string topic_;
  const std::string group_;
  std::shared_ptr<Doorbell> bell_;
  bool closed_ = false;  // guarded by queue_->mutex
};

void State::close_all() {
  std::vector<std::shared_ptr<Subscription>> subs;
  std::vector<std::shared_ptr<GroupQueue>> queues;
  std::vector<std::shared_ptr<PendingRequest>> requests;
  std::vector<std::shared_ptr<Doorbell>> servers;
  {
    std::lock_guard lock(mutex);
    stopped = true;
    stopped_flag.store(true, std::memory_order_release);
    for (auto& w : subscriptions)
      if (auto s = w.lock()) subs.push_back(std::move(s));
    subscriptions.clear();
    for (auto& [topic, gs] : groups)
      for (auto& [name, q] : gs) queues.push_back(q);
    groups.clear();
    for (auto& [id, p] : pending) requests.push_back(p);
    pending.clear();
    servers.swap(serve_waiters);
    handlers.clear();
  }
  for (auto& s : subs) s->close();
  for (auto& q : queues) {
    std::lock_guard lock(q->mutex);
    q->closed = true;
    for (auto& b : q->waiting_members) b->ring();
    q->waiting_members.clear();
    if (auto r = std::move(q->waiting_reader)) r->ring();
  }
  for (auto& p : requests) p->bell->ring();  // they see `stopped`
  for (auto& b : servers) b->ring();
  for (auto* s : {&xpub, &push, &pull, &dealer, &router})
    if (*s) (*s)->close();
}

// --- reader loops -------------------------------------------------------------------------

/// XPUB: answers welcome probes (see the top of this file).
awaitable<void> xpub_loop(std::shared_ptr<State> state) {
  auto bell = std::make_shared<Doorbell>(co_await asio::this_coro::executor);
  std::deque<std::string> to_welcome;
  for (;;) {
    bool blocked = false;
    try {
      state->xpub->io([&](zmq::socket_t& s) {
        zmq::message_t m;
        while (s.recv(m, zmq::recv_flags::dontwait)) {
          const std::string_view v = wire::view(m);
          // 1 = subscribe; the rest is the prefix. Only probes interest us.
          if (v.size() > welcome_prefix.size() && v[0] == 1 && v.substr(1).starts_with(welcome_prefix))
            to_welcome.emplace_back(v.substr(1));
        }
        while (!to_welcome.empty()) {
          std::vector<zmq::message_t> frames;
          frames.emplace_back(to_welcome.front().data(), to_welcome.front().size());
          frames.emplace_back(state->publisher_id.data(), state->publisher_id.size());
          if (!wire::send_multipart(s, frames)) {
            blocked = true;  // a new subscriber's pipe is full already: try again later
            break;
          }
          to_welcome.pop_front();
          ++state->counters.welcomes;
        }
        return 0;
      });
      co_await state->xpub->wait(blocked ? AsyncSocket::want_any : AsyncSocket::want_in, bell);
    } catch (const boost::system::system_error&) {
      co_return;  // closed
    } catch (const zmq::error_t&) {
      co_return;
    }
  }
}

/// PULL: hands each pulled message to one member of every local group on its topic. Reads up
/// to `kPullBatch` messages per lock of the socket and hands them over per group under one lock
/// of its queue, ringing its members once: one wake-up per batch, not per message.
awaitable<void> pull_loop(std::shared_ptr<State> state) {
  constexpr std::size_t kPullBatch = 256;
  auto bell = std::make_shared<Doorbell>(co_await asio::this_coro::executor);
  std::vector<Message> batch;
  std::vector<zmq::message_t> frames;
  for (;;) {
    batch.clear();
    try {
      state->pull->io([&](zmq::socket_t& s) {
        while (batch.size() < kPullBatch && wire::recv_multipart(s, frames)) {
          Message m;
          if (frames.size() < 2 || !wire::parse_body(frames, 1, m)) {
            ++state->counters.malformed;
            continue;
          }
          if (state->settings.max_payload != 0 && m.payload.size() > state->settings.max_payload) {
            ++state->counters.oversized;
            continue;
          }
          m.topic.assign(wire::view(frames[0]));
          m.stamp();
          batch.push_back(std::move(m));
        }
        return 0;
      });
    } catch (const boost::system::system_error&) {
      co_return;
    }
    if (batch.empty()) {
      co_await state->pull->wait(AsyncSocket::want_in, bell);
      continue;
    }
    // Group the batch by target queue, keeping each topic's order.
    std::vector<std::pair<std::shared_ptr<GroupQueue>, std::vector<std::size_t>>> targets;
    {
      std::lock_guard lock(state->mutex);
      if (state->stopped) co_return;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        auto t = state->groups.find(batch[i].topic);
        if (t == state->groups.end()) {
          ++state->counters.unclaimed;
          continue;
        }
        for (auto& [name, q] : t->second) {
          auto it = std::find_if(targets.begin(), targets.end(), [&](const auto& e) { return e.first == q; });
          if (it == targets.end()) it = targets.insert(targets.end(), {q, {}});
          it->second.push_back(i);
        }
      }
    }
    for (auto& [q, indices] : targets) {
      const bool last_target = &q == &targets.back().first;
      std::size_t next = 0;
      while (next < indices.size()) {
        std::unique_lock lock(q->mutex);
        if (q->closed) break;
        const std::size_t room = q->capacity > q->messages.size() ? q->capacity - q->messages.size() : 0;
        const std::size_t n = std::min(room, indices.size() - next);
        for (std::size_t k = 0; k < n; ++k, ++next) {
          Message& m = batch[indices[next]];
          // The last group to get a message may take it; the others get copies (shared payload).
          q->messages.push_back(last_target ? std::move(m) : m);
        }
        state->counters.received += n;
        if (n > 0) {
          for (auto& b : q->waiting_members) b->ring();
          q->waiting_members.clear();
        }
        if (next == indices.size()) break;
        // The group is full: stop pulling (zmq's queues and PUSH's high-water mark hold the rest).
        q->waiting_reader = bell;
        lock.unlock();
        co_await bell->wait();
      }
    }
  }
}

/// DEALER: replies to request() calls.
awaitable<void> dealer_loop(std::shared_ptr<State> state) {
  auto bell = std::make_shared<Doorbell>(co_await asio::this_coro::executor);
  for (;;) {
    try {
      state->dealer->io([&](zmq::socket_t& s) {
        std::vector<zmq::message_t> frames;
        while (wire::recv_multipart(s, frames)) {
          // "", request id, status, headers..., payload
          if (frames.size() < 4 || frames[0].size() != 0) {
            ++state->counters.malformed;
            continue;
          }
          int status = 0;
          const auto sv = wire::view(frames[2]);
          auto r = std::from_chars(sv.data(), sv.data() + sv.size(), status);
          Message reply;
          if (r.ec != std::errc{} || !wire::parse_body(frames, 3, reply)) {
            ++state->counters.malformed;
            continue;
          }
          std::shared_ptr<PendingRequest> p;
          {
            std::lock_guard lock(state->mutex);
            auto it = state->pending.find(std::string(wire::view(frames[1])));
            if (it == state->pending.end()) continue;  // its requester gave up
            p = it->second;
            state->pending.erase(it);
            p->done = true;
            p->status = status;
            p->reply = std::move(reply);
          }
          p->bell->ring();
        }
        return 0;
      });
      co_await state->dealer->wait(AsyncSocket::want_in, bell);
    } catch (const boost::system::system_error&) {
      co_return;
    }
  }
}

awaitable<void> send_reply(std::shared_ptr<State> state, std::vector<zmq::message_t> frames) {
  try {
    // ROUTER never blocks: a reply to a vanished or stuck requester is dropped by zmq.
    state->router->io([&](zmq::socket_t& s) { return wire::send_multipart(s, frames); });
  } catch (const boost::system::system_error&) {
  }
  co_return;
}

/// One request: runs the handler on its own strand and sends the reply.
awaitable<void> handle_request(std::shared_ptr<State> state, std::shared_ptr<ServiceHandler> handler,
                               zmq::message_t identity, std::string request_id, Message request) {
  int status = 0;
  Message reply;
  try {
    reply = co_await (*handler)(std::move(request));
  } catch (const boost::system::system_error& e) {
    status = e.code().category() == error_category() ? e.code().value() : static_cast<int>(errc::remote_error);
    reply = Message(Bytes(std::string(e.what())));
  } catch (const std::exception& e) {
    status = static_cast<int>(errc::remote_error);
    reply = Message(Bytes(std::string(e.what())));
  }
  std::vector<zmq::message_t> frames;
  frames.push_back(std::move(identity));
  frames.emplace_back();
  frames.emplace_back(request_id.data(), request_id.size());
  const std::string st = std::to_string(status);
  frames.emplace_back(st.data(), st.size());
  reply.stamp();
  wire::append_headers(reply, frames);
  frames.push_back(wire::payload_frame(reply.payload));
  co_await send_reply(state, std::move(frames));
}

/// ROUTER: dispatches requests to the registered handlers.
awaitable<void> router_loop(std::shared_ptr<State> state) {
  auto bell = std::make_shared<Doorbell>(co_await asio::this_coro::executor);
  for (;;) {
    std::vector<std::vector<zmq::message_t>> batch;
    try {
      state->router->io([&](zmq::socket_t& s) {
        std::vector<zmq::message_t> frames;
        while (wire::recv_multipart(s, frames)) batch.push_back(std::move(frames));
        return 0;
      });
    } catch (const boost::system::system_error&) {
      co_return;
    }
    for (auto& frames : batch) {
      // identity, "", service, request id, headers..., payload
      Message request;
      if (frames.size() < 5 || frames[1].size() != 0 || !wire::parse_body(frames, 4, request)) {
        ++state->counters.malformed;
        continue;
      }
      request.topic.assign(wire::view(frames[2]));
      request.stamp();
      std::string request_id(wire::view(frames[3]));
      std::shared_ptr<ServiceHandler> handler;
      {
        std::lock_guard lock(state->mutex);
        if (auto it = state->handlers.find(request.topic); it != state->handlers.end()) handler = it->second;
      }
      if (!handler) {
        std::vector<zmq::message_t> reply;
        reply.push_back(std::move(frames[0]));
        reply.emplace_back();
        reply.emplace_back(request_id.data(), request_id.size());
        const std::string st = std::to_string(static_cast<int>(errc::no_responders));
        reply.emplace_back(st.data(), st.size());
        const std::string text = "nobody serves '" + request.topic + "' here";
        reply.emplace_back(text.data(), text.size());
        co_await send_reply(state, std::move(reply));
        continue;
      }
      asio::co_spawn(asio::make_strand(state->ex),
                     handle_request(state, std::move(handler), std::move(frames[0]), std::move(request_id),
                                    std::move(request)),
                     asio::detached);
    }
    try {
      co_await state->router->wait(AsyncSocket::want_in, bell);
    } catch (const boost::system::system_error&) {
      co_return;
    }
  }
}

// --- the transport ------------------------------------------------------------------------

class ZmqTransport final : public Transport, public Introspection {
 public:
  ZmqTransport(executor ex, Settings settings) : state_(std::make_shared<State>(std::move(ex), std::move(settings))) {}

  ~ZmqTransport() override {
    state_->close_all();
    if (state_->terminator.joinable()) state_->terminator.join();
    state_->context.close();  // returns at once when stop() terminated it; otherwise within linger
  }

  std::string_view type() const noexcept override { return "zmq"; }

  Features features() const override {
    const Settings& s = state_->settings;
    Features f;
    f.publish_subscribe = !s.publish.empty() || !s.subscribe.empty();
    f.consumer_groups = !s.push.empty() && !s.pull.empty();
    f.request_reply = !s.request.empty() || !s.serve.empty();
    f.ordered = true;
    f.headers = true;
    f.max_payload = s.max_payload;
    return f;
  }

  Counters counters() const override {
    const Atomics& a = state_->counters;
    Counters c;
    c.published = a.published.load();
    c.received = a.received.load();
    c.malformed = a.malformed.load();
    c.oversized = a.oversized.load();
    c.unclaimed = a.unclaimed.load();
    c.welcomes = a.welcomes.load();
    return c;
  }

  /// Opens the sockets of the configured roles; errors (a bad or busy endpoint) name them.
  absl::Status open() {
    const Settings& s = state_->settings;
    struct Role {
      const char* name;
      const Endpoints& ep;
      zmq::socket_type type;
      std::shared_ptr<AsyncSocket>* slot;
    };
    const Role roles[] = {{"publish", s.publish, zmq::socket_type::xpub, &state_->xpub},
                          {"push", s.push, zmq::socket_type::push, &state_->push},
                          {"pull", s.pull, zmq::socket_type::pull, &state_->pull},
                          {"request", s.request, zmq::socket_type::dealer, &state_->dealer},
                          {"serve", s.serve, zmq::socket_type::router, &state_->router}};
    for (const Role& r : roles) {
      if (r.ep.empty()) continue;
      try {
        *r.slot = state_->open(r.type, r.ep);
      } catch (const zmq::error_t& e) {
        state_->close_all();
        return absl::InvalidArgumentError(absl::StrCat("zmq transport: cannot open the '", r.name, "' socket on ",
                                                       describe(r.ep), ": ", e.what()));
      }
    }
    // A subscribe endpoint that does not parse would otherwise fail only at subscribe().
    for (const auto& e : s.subscribe.connect) {
      try {
        zmq::socket_t probe(state_->context, zmq::socket_type::sub);
        probe.set(zmq::sockopt::linger, 0);
        probe.connect(e);
      } catch (const zmq::error_t& err) {
        state_->close_all();
        return absl::InvalidArgumentError(
            absl::StrCat("zmq transport: bad 'subscribe' endpoint '", e, "': ", err.what()));
      }
    }
    return absl::OkStatus();
  }

 protected:
  awaitable<void> do_start() override {
    auto& st = *state_;
    if (st.xpub && st.settings.handshake) asio::co_spawn(asio::make_strand(st.ex), xpub_loop(state_), asio::detached);
    if (st.pull) asio::co_spawn(asio::make_strand(st.ex), pull_loop(state_), asio::detached);
    if (st.dealer) asio::co_spawn(asio::make_strand(st.ex), dealer_loop(state_), asio::detached);
    if (st.router) asio::co_spawn(asio::make_strand(st.ex), router_loop(state_), asio::detached);
    co_return;
  }

  awaitable<void> do_stop() override {
    {
      std::lock_guard lock(state_->mutex);
      if (state_->stopped) co_return;
    }
    state_->close_all();
    // zmq_ctx_term blocks until queued messages are sent or the linger passes: never on an
    // io thread. The terminator thread rings us when it is done.
    auto bell = std::make_shared<Doorbell>(co_await asio::this_coro::executor);
    state_->terminator = std::thread([state = state_, bell] {
      state->context.close();
      bell->ring();
    });
    co_await bell->wait();
    state_->terminator.join();
  }

  awaitable<void> do_publish(Message msg) override {
    auto& st = *state_;
    if (st.is_stopped()) throw_error(errc::stopped, "zmq transport stopped");
    if (st.settings.max_payload != 0 && msg.payload.size() > st.settings.max_payload)
      throw_error(errc::payload_too_large, absl::StrCat("payload of ", msg.payload.size(), " bytes exceeds max_payload ",
                                                        st.settings.max_payload));
    if (auto bad = wire::invalid_header(msg.headers))
      throw_error(errc::bad_message, "header name '" + *bad + "' cannot be carried (empty, NUL, or reserved)");
    const bool to_push = st.push && topic_matches(st.settings.push_topics, msg.topic);
    if (!st.xpub && !to_push) throw_error(errc::not_supported, "zmq transport: no 'publish' or 'push' endpoints");

    std::vector<zmq::message_t> frames;
    frames.reserve(4 + msg.headers.size());
    frames.emplace_back(msg.topic.data(), msg.topic.size());
    wire::append_headers(msg, frames);
    frames.push_back(wire::payload_frame(msg.payload));

    std::vector<zmq::message_t> copy;
    if (st.xpub && to_push) {
      copy.resize(frames.size());
      for (std::size_t i = 0; i < frames.size(); ++i) copy[i].copy(frames[i]);
    }
    if (st.xpub) co_await send(*st.xpub, AsyncSocket::want_any, frames, "publish");
    if (to_push) {
      std::vector<zmq::message_t>& push_frames = st.xpub ? copy : frames;
      co_await send(*st.push, AsyncSocket::want_out, push_frames, "push");
    }
    ++st.counters.published;
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    auto& st = *state_;
    if (st.is_stopped()) throw_error(errc::stopped, "zmq transport stopped");
    if (options.from().where() != Position::kind::latest)
      throw_error(errc::not_supported, "zmq keeps no history: subscribe from 'latest' only");
    auto ex = co_await asio::this_coro::executor;
    if (!options.group().empty()) co_return subscribe_group(std::move(topic), options.group(), ex);

    if (st.settings.subscribe.connect.empty())
      throw_error(errc::not_supported, "zmq transport: no 'subscribe' endpoints to connect to");
    std::shared_ptr<AsyncSocket> socket;
    const bool handshake = st.settings.handshake;
    try {
      socket = std::make_shared<AsyncSocket>(st.ex, st.context, zmq::socket_type::sub);
      socket->io([&](zmq::socket_t& s) {
        // The topic first, then the probe: the publisher sees them in this order.
        s.set(zmq::sockopt::subscribe, topic);
        if (handshake) s.set(zmq::sockopt::subscribe, std::string(welcome_prefix) + topic);
        return 0;
      });
      configure(*socket, st.settings, st.settings.subscribe, zmq::socket_type::sub);
    } catch (const zmq::error_t& e) {
      // ETERM: stop() is terminating the context under us.
      if (e.num() == ETERM) throw_error(errc::stopped, "zmq transport stopped");
      throw_error(errc::unavailable, std::string("zmq subscribe failed: ") + e.what());
    }
    auto sub = std::make_shared<Subscription>(state_, socket, topic, ex);
    {
      std::lock_guard lock(st.mutex);
      if (st.stopped) throw_error(errc::stopped, "zmq transport stopped");
      std::erase_if(st.subscriptions, [](const auto& w) { return w.expired(); });
      st.subscriptions.push_back(sub);
    }
    if (handshake) co_await sub->join(st.settings.subscribe.connect.size(), clock::now() + st.settings.join_timeout);
    co_return Stream<Delivery>(std::move(sub));
  }

  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    auto& st = *state_;
    if (st.is_stopped()) throw_error(errc::stopped, "zmq transport stopped");
    if (!st.dealer) throw_error(errc::not_supported, "zmq transport: no 'request' endpoints");
    if (auto bad = wire::invalid_header(msg.headers))
      throw_error(errc::bad_message, "header name '" + *bad + "' cannot be carried (empty, NUL, or reserved)");
    auto ex = co_await asio::this_coro::executor;
    auto pending = std::make_shared<PendingRequest>();
    pending->bell = std::make_shared<Doorbell>(ex);
    const std::string id = std::to_string(st.next_request.fetch_add(1));
    {
      std::lock_guard lock(st.mutex);
      if (st.stopped) throw_error(errc::stopped, "zmq transport stopped");
      st.pending.emplace(id, pending);
    }
    struct Forget {
      State& st;
      const std::string& id;
      ~Forget() {
        std::lock_guard lock(st.mutex);
        st.pending.erase(id);
      }
    } forget{st, id};

    std::vector<zmq::message_t> frames;
    frames.emplace_back();
    frames.emplace_back(service.data(), service.size());
    frames.emplace_back(id.data(), id.size());
    wire::append_headers(msg, frames);
    frames.push_back(wire::payload_frame(msg.payload));
    for (;;) {
      if (st.dealer->io([&](zmq::socket_t& s) { return wire::send_multipart(s, frames); })) break;
      if (bool more_time = co_await wait_until(*st.dealer, AsyncSocket::want_out, until); !more_time)
        throw_error(errc::timed_out, "no server connected to take the request for '" + service + "'");
    }

    asio::steady_timer timer(ex, until);
    timer.async_wait([bell = pending->bell](const boost::system::error_code& ec) {
      if (!ec) bell->ring();
    });
    for (;;) {
      {
        std::lock_guard lock(st.mutex);
        if (pending->done) break;
        if (st.stopped) throw_error(errc::stopped, "zmq transport stopped");
      }
      if (clock::now() >= until) throw_error(errc::timed_out, "no reply from '" + service + "' before the deadline");
      co_await pending->bell->wait();
    }
    timer.cancel();
    if (pending->status != 0) {
      const errc code = pending->status > 0 && pending->status <= static_cast<int>(errc::unavailable)
                            ? static_cast<errc>(pending->status)
                            : errc::remote_error;
      throw_error(code, pending->reply.payload.str());
    }
    co_return std::move(pending->reply);
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    auto& st = *state_;
    if (!st.router) throw_error(errc::not_supported, "zmq transport: no 'serve' endpoints");
    auto bell = std::make_shared<Doorbell>(co_await asio::this_coro::executor);
    auto h = std::make_shared<ServiceHandler>(std::move(handler));
    {
      std::lock_guard lock(st.mutex);
      if (st.stopped) throw_error(errc::stopped, "zmq transport stopped");
      st.handlers[service] = h;
      st.serve_waiters.push_back(bell);
    }
    struct Unregister {
      State& st;
      const std::string& service;
      const std::shared_ptr<ServiceHandler>& h;
      const std::shared_ptr<Doorbell>& bell;
      ~Unregister() {
        std::lock_guard lock(st.mutex);
        if (auto it = st.handlers.find(service); it != st.handlers.end() && it->second == h) st.handlers.erase(it);
        std::erase(st.serve_waiters, bell);
      }
    } unregister{st, service, h, bell};
    // Serves until cancelled (wait() throws) or stopped.
    while (!st.is_stopped()) co_await bell->wait();
  }

 private:
  static std::string describe(const Endpoints& ep) {
    std::string out;
    for (const auto& e : ep.bind) absl::StrAppend(&out, out.empty() ? "" : ", ", "bind ", e);
    for (const auto& e : ep.connect) absl::StrAppend(&out, out.empty() ? "" : ", ", "connect ", e);
    return out;
  }

  /// Sends a whole message, waiting for room (bounded by send_timeout).
  awaitable<void> send(AsyncSocket& socket, int want, std::vector<zmq::message_t>& frames, const char* role) {
    std::optional<deadline> until;
    const std::function<bool(zmq::socket_t&)> attempt = [&](zmq::socket_t& s) { return wire::send_multipart(s, frames); };
    for (;;) {
      bool sent = false;
      try {
        sent = socket.io(attempt);
      } catch (const zmq::error_t& e) {
        throw_error(errc::unavailable, absl::StrCat("zmq ", role, " send failed: ", e.what()));
      }
      if (sent) co_return;
      if (!until) until = clock::now() + state_->settings.send_timeout;
      if (clock::now() >= *until) throw_error(errc::unavailable, no_room(role));
      if (want != AsyncSocket::want_any) {
        if (bool more_time = co_await wait_until(socket, want, *until); !more_time)
          throw_error(errc::unavailable, no_room(role));
        continue;
      }
      // XPUB with ZMQ_XPUB_NODROP: no POLLOUT to wait for. Register, then try once more, then
      // wait for mailbox activity — and at most kAnyRetry (see async_socket.hpp).
      auto ex = co_await asio::this_coro::executor;
      auto bell = std::make_shared<Doorbell>(ex);
      asio::steady_timer timer(ex, std::min(*until, clock::now() + kAnyRetry));
      timer.async_wait([bell](const boost::system::error_code& ec) {
        if (!ec) bell->ring();
      });
      bool done = false;
      try {
        done = co_await socket.attempt_or_wait(bell, attempt);
      } catch (const zmq::error_t& e) {
        throw_error(errc::unavailable, absl::StrCat("zmq ", role, " send failed: ", e.what()));
      }
      timer.cancel();
      if (done) co_return;
    }
  }

  std::string no_room(const char* role) const {
    return absl::StrCat("zmq ", role, ": no room for ", state_->settings.send_timeout.count(),
                        " ms (no peer connected, or a peer stopped reading)");
  }

  Stream<Delivery> subscribe_group(std::string topic, const std::string& group, executor ex) {
    auto& st = *state_;
    if (!st.pull)
      throw_error(errc::not_supported, "zmq transport: consumer groups need 'pull' endpoints (and a 'push' peer)");
    std::shared_ptr<GroupQueue> q;
    {
      std::lock_guard lock(st.mutex);
      if (st.stopped) throw_error(errc::stopped, "zmq transport stopped");
      auto& slot = st.groups[topic][group];
      if (!slot) slot = std::make_shared<GroupQueue>(st.settings.group_buffer);
      q = slot;
      std::lock_guard qlock(q->mutex);
      ++q->members;
    }
    return Stream<Delivery>(std::make_shared<GroupMember>(state_, std::move(q), std::move(topic), group, std::move(ex)));
  }

  std::shared_ptr<State> state_;
};

absl::Status read_endpoints(const config::Node& settings, std::string_view key, Endpoints& out, bool bind_allowed) {
  auto node = settings.get_map(key);
  if (!node.ok()) return node.status();
  auto b = node->get_string_list("bind", {});
  if (!b.ok()) return b.status();
  auto c = node->get_string_list("connect", {});
  if (!c.ok()) return c.status();
  if (!bind_allowed && !b->empty())
    return config::error_at(node->mark_of("bind"),
                            "'subscribe' endpoints are connected, never bound: each subscription has its own SUB "
                            "socket. Bind the publishers (publish: {bind: ...}) and list them under subscribe: {connect: ...}");
  out.bind = std::move(*b);
  out.connect = std::move(*c);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<Transport>> make_transport(const TransportContext& ctx) {
  const config::Node& n = ctx.settings;
  Settings s;
  for (auto [key, ep, bind_ok] : {std::tuple{"publish", &s.publish, true}, std::tuple{"subscribe", &s.subscribe, false},
                                  std::tuple{"push", &s.push, true}, std::tuple{"pull", &s.pull, true},
                                  std::tuple{"serve", &s.serve, true}, std::tuple{"request", &s.request, true}}) {
    if (auto st = read_endpoints(n, key, *ep, bind_ok); !st.ok()) return st;
  }
  {
    auto push = n.get_map("push");
    if (!push.ok()) return push.status();
    auto topics = push->get_string_list("topics", s.push_topics);
    if (!topics.ok()) return topics.status();
    s.push_topics = std::move(*topics);
  }
  auto sndhwm = n.get_int("sndhwm", s.sndhwm, 0, 1 << 30);
  if (!sndhwm.ok()) return sndhwm.status();
  auto rcvhwm = n.get_int("rcvhwm", s.rcvhwm, 0, 1 << 30);
  if (!rcvhwm.ok()) return rcvhwm.status();
  auto linger = n.get_duration("linger", s.linger);
  if (!linger.ok()) return linger.status();
  auto when_full = n.get_choice("when_full", "block", {"block", "drop"});
  if (!when_full.ok()) return when_full.status();
  auto handshake = n.get_bool("handshake", s.handshake);
  if (!handshake.ok()) return handshake.status();
  auto join_timeout = n.get_duration("join_timeout", s.join_timeout);
  if (!join_timeout.ok()) return join_timeout.status();
  auto send_timeout = n.get_duration("send_timeout", s.send_timeout);
  if (!send_timeout.ok()) return send_timeout.status();
  auto reconnect = n.get_duration("reconnect_interval", s.reconnect_interval);
  if (!reconnect.ok()) return reconnect.status();
  auto reconnect_max = n.get_duration("reconnect_interval_max", s.reconnect_interval_max);
  if (!reconnect_max.ok()) return reconnect_max.status();
  auto group_buffer = n.get_int("group_buffer", static_cast<std::int64_t>(s.group_buffer), 1, 1 << 24);
  if (!group_buffer.ok()) return group_buffer.status();
  auto max_payload = n.get_int("max_payload", 0, 0);
  if (!max_payload.ok()) return max_payload.status();
  s.sndhwm = static_cast<int>(*sndhwm);
  s.rcvhwm = static_cast<int>(*rcvhwm);
  s.linger = *linger;
  s.drop_when_full = *when_full == "drop";
  s.handshake = *handshake;
  s.join_timeout = *join_timeout;
  s.send_timeout = *send_timeout;
  s.reconnect_interval = *reconnect;
  s.reconnect_interval_max = *reconnect_max;
  s.group_buffer = static_cast<std::size_t>(*group_buffer);
  s.max_payload = static_cast<std::size_t>(*max_payload);
  if (s.publish.empty() && s.subscribe.empty() && s.push.empty() && s.pull.empty() && s.serve.empty() &&
      s.request.empty())
    return config::error_at(n.mark(), ctx.name.empty() ? "zmq transport: no endpoints"
                                                        : "transport '" + ctx.name +
                                                              "': no endpoints; give at least one of publish, "
                                                              "subscribe, push, pull, serve, request");
  auto t = std::make_shared<ZmqTransport>(ctx.ex, std::move(s));
  if (auto st = t->open(); !st.ok())
    return config::error_at(n.mark(), std::string("transport '") + ctx.name + "': " + std::string(st.message()));
  return std::shared_ptr<Transport>(std::move(t));
}

absl::Status register_transport(Registry& registry) { return registry.add_transport("zmq", make_transport); }

}  // namespace patchbay::zeromq

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::zeromq::register_transport)
#endif
