// The `nats` transport: core NATS through nats.c (libnats 3.4), bridged into the io_context.
//
// Connections. Two per transport, made from the same settings: the *data* connection carries
// publish/subscribe with nats.c's default write buffering (throughput), the *rpc* connection
// carries requests, the services' subscriptions and their replies with `send_asap` (latency:
// nats.c's flusher thread yields a millisecond before writing buffered data, which a
// request/reply would pay on each side; nats.c's own Request() bypasses that but blocks).
//
// Bridging nats.c's threads (the design; README.md tells it for users). nats.c calls back from
// its own threads: each subscription's delivery thread calls on_message(), its connection
// threads call on_closed() / on_disconnected() / on_reconnected() / on_error(). A callback
// never waits for the application: it converts the natsMsg, takes the subscription's mutex for
// a push onto a bounded queue, and rings the subscription's Doorbell when next() waits — ring()
// posts the waiter's resumption to its own executor. A full queue drops the message, counts it
// and leaves a gap marker in the queue where the messages are missing. In the other direction,
// no io_context thread waits on nats.c: publish() copies into nats.c's write buffer (or its
// reconnect buffer while disconnected) and returns; the calls that block in nats.c (connect,
// the PING/PONG round trip that establishes a subscription, close) run on a helper thread
// whose result comes back through a Channel. The one wait left is
// the kernel's: when nats.c's 32 KiB write buffer is full it writes it out in the publishing
// thread, bounded by `write_deadline`.
//
// Lifetimes. nats.c holds raw pointers to our objects (the callback closures). A Subscription is
// kept alive by the Core's table until nats.c reports, through its on-complete callback, that
// the subscription's handler will never run again; connection hooks live as long as the Core,
// whose destructor closes both connections and waits for their closed callbacks and for every
// subscription's completion first. The module is linked with -z nodelete, so nats.c's threads
// (and libnats itself, which starts library-wide threads) never outlive the code they run.
//
// Locking. Core::mutex_ guards the tables of subscriptions and services, Core::calls_mutex_ the
// requests waiting for replies, Subscription::mutex_ one queue; none is taken while another is
// held. Callbacks on delivery threads take only their Subscription's mutex (or calls_mutex_);
// no lock is held across a suspension point or while calling into nats.c.

#include <patchbay/transports/nats/nats.hpp>

#include <patchbay/channel.hpp>
#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/transport.hpp>

#include <nats/nats.h>

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

namespace patchbay::nats {
namespace {

using namespace std::chrono_literals;

// Reserved header names (README.md, "Headers").
constexpr const char* kIdHeader = "patchbay-id";
constexpr const char* kTimeHeader = "patchbay-time";          // microseconds since the Unix epoch
constexpr const char* kOrderHeader = "patchbay-header-order"; // names in order, ":"-separated; "name=": empty value
constexpr const char* kErrorHeader = "patchbay-error";        // a failed request: the handler's text
constexpr const char* kErrorCodeHeader = "patchbay-error-code";  // ... and patchbay's errc value

// nats.c reserves room for its own protocol overhead; what we add (id, time, order) is small.
// Declared max_payload = server's max_payload minus this, so that a payload that passes our
// check is never refused by the server for our headers' sake.
constexpr std::size_t kHeaderReserve = 4096;

struct Settings {
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};
  std::string user;
  std::string password;
  std::string token;
  std::string name = "patchbay";
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds reconnect_wait{250};
  int max_reconnects = -1;                     // -1: for ever
  int reconnect_buffer = 8 << 20;              // bytes published while disconnected, at most
  std::chrono::milliseconds write_deadline{10000};
  std::chrono::milliseconds ping_interval{0};  // 0: nats.c's default (2 min)
  int max_pending_messages = 65536;            // per subscription
  std::int64_t max_pending_bytes = 64 << 20;   // per subscription
  std::string serve_group = "patchbay";
  std::size_t max_concurrent_requests = 1024;  // handlers running at once, per transport
  std::size_t max_payload_fallback = 1 << 20;  // declared before the server told us its limit
  std::chrono::milliseconds drain_timeout{5000};
};

struct NatsMsgDeleter {
  void operator()(natsMsg* m) const noexcept { natsMsg_Destroy(m); }
};
using MsgPtr = std::unique_ptr<natsMsg, NatsMsgDeleter>;

/// "status text (detail)", with nats.c's last error of this thread as the detail.
std::string describe(natsStatus s) {
  std::string out = natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  const char* raw = nats_GetLastError(&last);
  std::string_view detail = raw ? raw : "";
  // nats.c prefixes its text with "(file.c:line): ".
  if (detail.starts_with('(')) {
    if (auto end = detail.find("): "); end != std::string_view::npos) detail.remove_prefix(end + 3);
  }
  if (!detail.empty() && detail != out) {
    out += " (";
    out += detail;
    out += ")";
  }
  // nats.c may end a subscription before it reports the connection closed, so a publish can
  // meet the closed connection before check_open() knows: say the same thing it would.
  if (s == NATS_CONNECTION_CLOSED) out += "; the connection is closed for good (reconnect attempts exhausted; see max_reconnects)";
  return out;
}

errc errc_for(natsStatus s) {
  switch (s) {
    case NATS_MAX_PAYLOAD: return errc::payload_too_large;
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_ARG: return errc::bad_message;
    case NATS_NO_RESPONDERS: return errc::no_responders;
    case NATS_TIMEOUT: return errc::timed_out;
    default: return errc::unavailable;
  }
}

[[noreturn]] void fail(natsStatus s, const std::string& what) {
  std::string text = "nats: " + what + ": " + describe(s);
  if (s == NATS_INSUFFICIENT_BUFFER)
    text += "; the reconnect buffer is full while the connection is down (raise reconnect_buffer)";
  throw_error(errc_for(s), text);
}

/// Throws bad_message unless `subject` is a NATS subject: dot-separated non-empty tokens without
/// spaces or control characters; with `wildcards`, `*` as a token and `>` as the last one.
void check_subject(std::string_view subject, bool wildcards, const char* what) {
  auto refuse = [&](const char* why) {
    throw_error(errc::bad_message,
                std::string("nats: ") + what + " '" + std::string(subject) + "' is not a valid NATS subject: " + why);
  };
  if (subject.empty()) refuse("it is empty");
  // One pass (this runs on every publish): tokens between dots, each checked as it ends.
  const char* token = subject.data();
  const char* const end = token + subject.size();
  for (const char* p = token;; ++p) {
    if (p == end || *p == '.') {
      const auto length = p - token;
      if (length == 0) refuse("it has an empty token (leading, trailing or double '.')");
      if (length == 1 && (*token == '*' || *token == '>')) {
        if (!wildcards) refuse("wildcards ('*', '>') are for subscriptions only");
        if (*token == '>' && p != end) refuse("'>' must be the last token");
      }
      if (p == end) break;
      token = p + 1;
    } else if (static_cast<unsigned char>(*p) <= ' ' || *p == 127) {
      refuse("it contains a space or a control character");
    }
  }
}

bool valid_header_name(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name)
    if (c <= ' ' || c == ':' || c == '=' || c == 127) return false;
  return true;
}

bool valid_header_value(std::string_view value) { return value.find_first_of("\r\n") == std::string_view::npos; }

/// A natsMsg carrying `m` to `subject` (with `reply` as its reply subject, or none).
MsgPtr to_nats(const Message& m, const char* subject, const char* reply) {
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, subject, reply, m.payload.data(), static_cast<int>(m.payload.size()));
  if (s != NATS_OK) fail(s, "cannot build a message for '" + std::string(subject) + "'");
  MsgPtr msg(raw);
  std::string order;
  bool need_order = false;
  const std::string* first_name = nullptr;
  for (const auto& [name, value] : m.headers) {
    if (!valid_header_name(name))
      throw_error(errc::bad_message, "nats: header name '" + name +
                                         "' is not allowed (empty, or contains ':', '=', a space or a control character)");
    if (!valid_header_value(value))
      throw_error(errc::bad_message, "nats: the value of header '" + name + "' contains a line break");
    if (!order.empty()) order += ':';
    order += name;
    if (value.empty()) {
      // nats.c 3.4 cannot parse a header line with an empty value (it reads the next line as
      // the value): an empty value travels in the order header alone, as "name=".
      order += '=';
      need_order = true;
      continue;
    }
    if ((s = natsMsgHeader_Add(raw, name.c_str(), value.c_str())) != NATS_OK) fail(s, "cannot add header '" + name + "'");
    if (!first_name) first_name = &name;
    else if (name != *first_name) need_order = true;
  }
  // nats.c returns header keys in hash order; the names in order let the receiver rebuild it.
  if (need_order && (s = natsMsgHeader_Set(raw, kOrderHeader, order.c_str())) != NATS_OK) fail(s, "cannot add a header");
  if (!m.id.empty() && (s = natsMsgHeader_Set(raw, kIdHeader, m.id.c_str())) != NATS_OK) fail(s, "cannot add a header");
  if (m.time != Message::time_point{}) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(m.time.time_since_epoch()).count();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf - 1, static_cast<long long>(us));
    *r.ptr = '\0';
    if ((s = natsMsgHeader_Set(raw, kTimeHeader, buf)) != NATS_OK) fail(s, "cannot add a header");
  }
  return msg;
}

/// The patchbay Message a natsMsg carries. Messages from other NATS clients get a fresh id.
Message from_nats(natsMsg* msg) {
  Message m;
  m.topic = natsMsg_GetSubject(msg);
  const int len = natsMsg_GetDataLength(msg);
  if (len > 0) m.payload = Bytes(std::string_view(natsMsg_GetData(msg), static_cast<std::size_t>(len)));
  const char** keys = nullptr;
  int nkeys = 0;
  if (natsMsgHeader_Keys(msg, &keys, &nkeys) == NATS_OK) {
    std::vector<std::pair<std::string, std::deque<std::string>>> by_name;  // in nats.c's (hash) order
    std::string order;
    for (int i = 0; i < nkeys; ++i) {
      const char** vals = nullptr;
      int nvals = 0;
      if (natsMsgHeader_Values(msg, keys[i], &vals, &nvals) != NATS_OK) continue;
      std::string_view key(keys[i]);
      std::string_view first = nvals > 0 && vals[0] ? std::string_view(vals[0]) : std::string_view();
      if (key == kIdHeader) {
        m.id = first;
      } else if (key == kTimeHeader) {
        long long us = 0;
        if (std::from_chars(first.data(), first.data() + first.size(), us).ec == std::errc{})
          m.time = Message::time_point(std::chrono::duration_cast<Message::time_point::duration>(std::chrono::microseconds(us)));
      } else if (key == kOrderHeader) {
        order = first;
      } else {
        auto& [name, values] = by_name.emplace_back(std::string(key), std::deque<std::string>());
        for (int v = 0; v < nvals; ++v) values.emplace_back(vals[v] ? vals[v] : "");
      }
      std::free(static_cast<void*>(vals));
    }
    std::free(static_cast<void*>(keys));
    // The publisher's order from patchbay-header-order; names it does not list (added by another
    // client) follow in nats.c's order.
    std::string_view rest = order;
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      std::string_view name = rest.substr(0, colon);
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
      if (name.ends_with('=')) {
        name.remove_suffix(1);
        if (!name.empty()) m.headers.add(std::string(name), std::string());
        continue;
      }
      for (auto& [n, values] : by_name)
        if (n == name && !values.empty()) {
          m.headers.add(n, std::move(values.front()));
          values.pop_front();
          break;
        }
    }
    for (auto& [n, values] : by_name)
      for (auto& v : values) m.headers.add(n, std::move(v));
  }
  if (m.id.empty()) m.id = Message::generate_id();
  return m;
}

/// nats.c's pending limit for a subscription whose own queue holds `ours`.
int library_limit(std::int64_t ours, std::int64_t floor) {
  return static_cast<int>(std::min<std::int64_t>(std::max(ours * 2, floor), INT32_MAX));
}

struct Counters {
  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> slow_consumer_drops{0};
  std::atomic<std::uint64_t> disconnects{0};
  std::atomic<std::uint64_t> reconnects{0};
};

class Core;

/// One subscribe() call: nats.c's subscription, the bounded queue its callback fills, and the
/// stream source the application reads.
class Subscription final : public StreamSource<Delivery> {
 public:
  Subscription(executor ex, Core* core, std::shared_ptr<Counters> counters, std::size_t max_messages,
               std::size_t max_bytes)
      : bell_(std::move(ex)), core_(core), counters_(std::move(counters)), max_messages_(max_messages),
        max_bytes_(max_bytes) {}
  ~Subscription() override {
    if (sub_) natsSubscription_Destroy(sub_);
  }

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (closed_) co_return std::nullopt;
        if (!queue_.empty()) {
          Item item = std::move(queue_.front());
          queue_.pop_front();
          if (auto* gap = std::get_if<Gap>(&item)) co_return Delivery::gap(std::move(*gap));
          Message& m = std::get<Message>(item);
          --queued_messages_;
          queued_bytes_ -= m.payload.size();
          co_return Delivery(std::move(m), Position());
        }
        if (ended_) co_return std::nullopt;
        waiting_ = true;
      }
      co_await bell_.wait();
    }
  }

  void close() noexcept override {
    natsSubscription* sub = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
      queue_.clear();
      sub = sub_;
    }
    // Removes the interest at the server; nats.c then completes the subscription (on_complete).
    if (sub) natsSubscription_Unsubscribe(sub);
    bell_.ring();
  }

  /// The subscription ended on the transport's side (stop, or the connection closed for good):
  /// what is queued is still delivered, then next() yields std::nullopt.
  void end() {
    {
      std::lock_guard lock(mutex_);
      ended_ = true;
      waiting_ = false;
    }
    bell_.ring();
  }

  /// On the delivery thread. Never waits: a full queue drops the message and counts it.
  void deliver(MsgPtr msg) {
    Message m = from_nats(msg.get());
    msg.reset();
    const std::size_t bytes = m.payload.size();
    bool ring = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      if (queued_messages_ >= max_messages_ || (queued_messages_ > 0 && queued_bytes_ + bytes > max_bytes_)) {
        counters_->slow_consumer_drops.fetch_add(1, std::memory_order_relaxed);
        add_gap_locked(1, "slow subscriber: its queue was full (max_pending_messages / max_pending_bytes)");
        ring = std::exchange(waiting_, false);
      } else {
        counters_->received.fetch_add(1, std::memory_order_relaxed);
        queue_.emplace_back(std::move(m));
        ++queued_messages_;
        queued_bytes_ += bytes;
        ring = std::exchange(waiting_, false);
      }
    }
    if (ring) bell_.ring();
  }

  /// A gap at the current end of the queue (from any thread).
  void report_gap(std::uint64_t missed, const std::string& reason) {
    bool ring;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      add_gap_locked(missed, reason);
      ring = std::exchange(waiting_, false);
    }
    if (ring) bell_.ring();
  }

  /// nats.c dropped messages in its own queue (reported through the error handler).
  void library_dropped() {
    natsSubscription* sub;
    {
      std::lock_guard lock(mutex_);
      sub = sub_;
    }
    std::int64_t dropped = 0;
    if (!sub || natsSubscription_GetDropped(sub, &dropped) != NATS_OK) return;
    const std::int64_t seen = library_dropped_seen_.exchange(dropped);
    if (dropped > seen) {
      counters_->slow_consumer_drops.fetch_add(static_cast<std::uint64_t>(dropped - seen), std::memory_order_relaxed);
      report_gap(static_cast<std::uint64_t>(dropped - seen), "slow subscriber: nats.c's pending limit was reached");
    }
  }

  void attach(natsSubscription* sub) {
    std::lock_guard lock(mutex_);
    sub_ = sub;
  }

  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    static_cast<Subscription*>(closure)->deliver(MsgPtr(msg));
  }
  static void on_complete(void* closure);

 private:
  using Item = std::variant<Message, Gap>;

  // mutex_ held. Consecutive drops share one gap.
  void add_gap_locked(std::uint64_t missed, const std::string& reason) {
    if (!queue_.empty()) {
      if (auto* g = std::get_if<Gap>(&queue_.back()); g && g->reason == reason) {
        g->missed += missed;
        return;
      }
    }
    Gap g;
    g.missed = missed;
    g.reason = reason;
    queue_.emplace_back(std::move(g));
  }

  Doorbell bell_;
  Core* const core_;  // outlives the subscription's callbacks (see "Lifetimes")
  std::shared_ptr<Counters> counters_;
  const std::size_t max_messages_;
  const std::size_t max_bytes_;

  std::mutex mutex_;
  natsSubscription* sub_ = nullptr;
  std::deque<Item> queue_;
  std::size_t queued_messages_ = 0;
  std::size_t queued_bytes_ = 0;
  bool waiting_ = false;
  bool closed_ = false;
  bool ended_ = false;
  std::atomic<std::int64_t> library_dropped_seen_{0};
};

using ReplyChannel = asio::experimental::concurrent_channel<executor, void(boost::system::error_code, Message)>;

/// One thread for the nats.c calls that block (connect, flush, close), so that no io_context
/// thread ever does. Jobs run in order; results travel back through a Channel.
class BlockingWorker {
 public:
  BlockingWorker() : thread_([this] { run(); }) {}
  ~BlockingWorker() { shutdown(); }

  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

  /// Runs the jobs still queued, then joins the thread. Idempotent.
  void shutdown() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;
};

/// One serve() call: its subscription on the rpc connection and the doorbell its loop waits on.
struct ServeState {
  ServeState(executor waiter, executor io_executor, Core* c, ServiceHandler h)
      : bell(std::move(waiter)), io(std::move(io_executor)), core(c), handler(std::move(h)) {}
  ~ServeState() {
    if (sub) natsSubscription_Destroy(sub);
  }
  Doorbell bell;            // rung to end the serve loop
  const executor io;        // where handlers run, each on its own strand
  Core* const core;
  const ServiceHandler handler;
  natsSubscription* sub = nullptr;
  std::atomic<bool> stop{false};
};

/// Everything nats.c may call back into, owned by the transport; see "Lifetimes" above.
class Core {
 public:
  Core(executor ex, Settings settings)
      : ex_(std::move(ex)), settings_(std::move(settings)), counters_(std::make_shared<Counters>()) {}

  ~Core() {
    // Without a stop() (or after one): close here; this thread is not an io thread then.
    for (auto* nc : {data_, rpc_})
      if (nc) natsConnection_Close(nc);
    end_all();
    {
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, 10s, [&] { return closed_count_ >= opened_count_ && subs_.empty() && serves_.empty(); });
    }
    worker_.shutdown();
    if (inbox_sub_) natsSubscription_Destroy(inbox_sub_);
    for (auto* nc : {data_, rpc_})
      if (nc) natsConnection_Destroy(nc);
  }

  const Settings& settings() const noexcept { return settings_; }
  const std::shared_ptr<Counters>& counters() const noexcept { return counters_; }
  natsConnection* data() const noexcept { return data_; }
  natsConnection* rpc() const noexcept { return rpc_; }
  const std::string& inbox() const noexcept { return inbox_; }
  std::size_t server_max_payload() const noexcept { return server_max_payload_.load(); }
  bool closed_for_good() const noexcept { return closed_for_good_.load(); }

  /// Runs `job` on the blocking worker and returns its result.
  template <typename T, typename F>
  awaitable<T> run_blocking(F job) {
    auto result = std::make_shared<Channel<T>>(ex_, 1);
    worker_.post([result, job = std::move(job)]() mutable {
      T value = job();
      result->try_send(value);
    });
    auto value = co_await result->receive();
    co_return std::move(*value);
  }

  /// Connects both connections (on the worker); throws with nats.c's reason.
  awaitable<void> connect() {
    std::string error = co_await run_blocking<std::string>([this] { return connect_blocking(); });
    if (!error.empty()) throw_error(errc::unavailable, error);
  }

  /// A PING/PONG round trip on `nc` (on the worker): the server has then processed every SUB
  /// sent before. While disconnected it returns early; nats.c resends subscriptions on reconnect.
  awaitable<void> flush(natsConnection* nc) {
    const std::int64_t timeout = std::max<std::int64_t>(settings_.connect_timeout.count(), 1);
    co_await run_blocking<int>([nc, timeout] { return static_cast<int>(natsConnection_FlushTimeout(nc, timeout)); });
  }

  /// Drains both connections (nats.c unsubscribes, lets what it holds reach our queues, flushes
  /// what was published, closes), waits for their closed callbacks, then ends every stream.
  awaitable<void> drain_and_close(std::chrono::milliseconds timeout) {
    const auto until = clock::now() + timeout + 1s;
    for (auto* nc : {data_, rpc_}) {
      if (!nc) continue;
      if (natsConnection_DrainTimeout(nc, std::max<std::int64_t>(timeout.count(), 1)) != NATS_OK) {
        // Not connected (reconnecting, or closed already): close without draining.
        co_await run_blocking<int>([nc] {
          natsConnection_Close(nc);
          return 0;
        });
      }
    }
    while (!all_closed() && clock::now() < until) {
      asio::steady_timer t(ex_, 5ms);
      co_await t.async_wait(asio::use_awaitable_t<executor>{});
    }
    if (!all_closed()) {
      co_await run_blocking<int>([this] {
        for (auto* nc : {data_, rpc_})
          if (nc) natsConnection_Close(nc);
        return 0;
      });
    }
    end_all();
  }

  // --- the table of live subscriptions (closures nats.c holds) ---
  void add(natsSubscription* sub, const std::shared_ptr<Subscription>& s) {
    std::lock_guard lock(mutex_);
    subs_.emplace(s.get(), s);
    by_nats_[sub] = s;
  }
  void completed(Subscription* s, natsSubscription* sub) {
    std::shared_ptr<Subscription> keep;  // released outside the lock
    {
      std::lock_guard lock(mutex_);
      by_nats_.erase(sub);
      auto it = subs_.find(s);
      if (it != subs_.end()) {
        keep = std::move(it->second);
        subs_.erase(it);
      }
    }
    cv_.notify_all();
  }
  void add_serve(const std::shared_ptr<ServeState>& s) {
    std::lock_guard lock(mutex_);
    serves_.emplace(s.get(), s);
  }
  void serve_completed(ServeState* s) {
    std::shared_ptr<ServeState> keep;
    {
      std::lock_guard lock(mutex_);
      auto it = serves_.find(s);
      if (it != serves_.end()) {
        keep = std::move(it->second);
        serves_.erase(it);
      }
    }
    cv_.notify_all();
  }
  std::vector<std::shared_ptr<ServeState>> serves() {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<ServeState>> out;
    for (auto& [_, s] : serves_) out.push_back(s);
    return out;
  }

  // --- request/reply: calls waiting for a reply on the inbox ---
  std::uint64_t add_call(std::shared_ptr<ReplyChannel> reply) {
    const std::uint64_t id = next_call_.fetch_add(1) + 1;
    std::lock_guard lock(calls_mutex_);
    calls_.emplace(id, std::move(reply));
    return id;
  }
  void remove_call(std::uint64_t id) {
    std::shared_ptr<ReplyChannel> keep;
    std::lock_guard lock(calls_mutex_);
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    keep = std::move(it->second);
    calls_.erase(it);
  }

  std::atomic<int> in_flight_requests{0};

 private:
  struct Hook {
    Core* core = nullptr;
    bool is_data = false;
  };

  std::shared_ptr<ReplyChannel> take_call(std::uint64_t id) {
    std::lock_guard lock(calls_mutex_);
    auto it = calls_.find(id);
    if (it == calls_.end()) return nullptr;
    auto out = std::move(it->second);
    calls_.erase(it);
    return out;
  }

  std::string connect_blocking() {
    if (auto s = make_connection(data_hook_, false, &data_); s != NATS_OK) return connect_error(s);
    if (auto s = make_connection(rpc_hook_, true, &rpc_); s != NATS_OK) return connect_error(s);
    server_max_payload_ = static_cast<std::size_t>(std::max<std::int64_t>(natsConnection_GetMaxPayload(data_), 0));
    // The inbox for replies to this transport's requests: one wildcard subscription.
    natsInbox* inbox = nullptr;
    if (auto s = natsInbox_Create(&inbox); s != NATS_OK) return "nats: cannot create an inbox: " + describe(s);
    inbox_ = inbox;
    natsInbox_Destroy(inbox);
    const std::string wildcard = inbox_ + ".*";
    if (auto s = natsConnection_Subscribe(&inbox_sub_, rpc_, wildcard.c_str(), &Core::on_reply, this); s != NATS_OK)
      return "nats: cannot subscribe to the reply inbox: " + describe(s);
    natsSubscription_SetPendingLimits(inbox_sub_, -1, -1);  // replies are awaited: never drop one
    if (auto s = natsConnection_FlushTimeout(rpc_, std::max<std::int64_t>(settings_.connect_timeout.count(), 1));
        s != NATS_OK)
      return "nats: the server did not confirm the reply inbox: " + describe(s);
    return {};
  }

  std::string connect_error(natsStatus s) {
    std::string urls;
    for (const auto& u : settings_.servers) urls += (urls.empty() ? "" : ", ") + u;
    std::string text = "nats: cannot connect to " + urls + " within connect_timeout (" +
                       std::to_string(settings_.connect_timeout.count()) + " ms): " + describe(s);
    if (s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED || text.find("uthorization") != std::string::npos)
      text += "; the server refused the credentials: check user/password or token";
    else if (s == NATS_NO_SERVER)
      text += "; is nats-server running there, and is the address right?";
    else if (s == NATS_TIMEOUT)
      text += "; something accepted the connection but did not complete the NATS handshake in time: is it a "
              "NATS server, and is the address right?";
    return text;
  }

  natsStatus make_connection(Hook& hook, bool rpc, natsConnection** out) {
    natsOptions* opts = nullptr;
    natsStatus s = natsOptions_Create(&opts);
    if (s != NATS_OK) return s;
    std::vector<const char*> urls;
    for (const auto& u : settings_.servers) urls.push_back(u.c_str());
    const std::string name = settings_.name + (rpc ? "-rpc" : "");
    hook.core = this;
    hook.is_data = !rpc;
    s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
    if (s == NATS_OK) s = natsOptions_SetNoRandomize(opts, true);
    if (s == NATS_OK) s = natsOptions_SetName(opts, name.c_str());
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts, settings_.connect_timeout.count());
    if (s == NATS_OK && !settings_.user.empty())
      s = natsOptions_SetUserInfo(opts, settings_.user.c_str(), settings_.password.c_str());
    if (s == NATS_OK && !settings_.token.empty()) s = natsOptions_SetToken(opts, settings_.token.c_str());
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, settings_.max_reconnects);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, settings_.reconnect_wait.count());
    if (s == NATS_OK) s = natsOptions_SetReconnectBufSize(opts, settings_.reconnect_buffer);
    if (s == NATS_OK && settings_.write_deadline.count() > 0)
      s = natsOptions_SetWriteDeadline(opts, settings_.write_deadline.count());
    if (s == NATS_OK && settings_.ping_interval.count() > 0)
      s = natsOptions_SetPingInterval(opts, settings_.ping_interval.count());
    if (s == NATS_OK) s = natsOptions_SetMaxPendingMsgs(opts, library_limit(settings_.max_pending_messages, 65536));
    if (s == NATS_OK && rpc) s = natsOptions_SetSendAsap(opts, true);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, &Core::on_closed, &hook);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, &Core::on_disconnected, &hook);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, &Core::on_reconnected, &hook);
    if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts, &Core::on_error, &hook);
    if (s == NATS_OK) s = natsConnection_Connect(out, opts);
    natsOptions_Destroy(opts);
    if (s == NATS_OK) {
      std::lock_guard lock(mutex_);
      ++opened_count_;
    }
    return s;
  }

  bool all_closed() {
    std::lock_guard lock(mutex_);
    return closed_count_ >= opened_count_;
  }

  void end_all() {
    std::vector<std::shared_ptr<Subscription>> subs;
    std::vector<std::shared_ptr<ServeState>> serves;
    {
      std::lock_guard lock(mutex_);
      for (auto& [_, s] : subs_) subs.push_back(s);
      for (auto& [_, s] : serves_) serves.push_back(s);
    }
    for (auto& s : subs) s->end();
    for (auto& s : serves) {
      s->stop = true;
      s->bell.ring();
    }
  }

  std::vector<std::shared_ptr<Subscription>> subscriptions() {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<Subscription>> out;
    for (auto& [_, s] : subs_) out.push_back(s);
    return out;
  }

  // --- nats.c's callbacks (its threads) ---

  static void on_closed(natsConnection*, void* closure) {
    auto* hook = static_cast<Hook*>(closure);
    Core* core = hook->core;
    if (hook->is_data) {
      // Closed for good (stop, or max_reconnects exhausted): streams end after what they hold.
      core->closed_for_good_ = true;
      core->end_all();
    }
    {
      std::lock_guard lock(core->mutex_);
      ++core->closed_count_;
    }
    core->cv_.notify_all();
  }

  static void on_disconnected(natsConnection*, void* closure) {
    auto* hook = static_cast<Hook*>(closure);
    Core* core = hook->core;
    core->counters_->disconnects.fetch_add(1, std::memory_order_relaxed);
    if (!hook->is_data || core->closed_for_good_.load()) return;
    // Core NATS keeps nothing for a subscriber that is away: tell each one, here rather than on
    // reconnect (that callback may run after the first messages of the new connection arrived).
    for (auto& s : core->subscriptions())
      s->report_gap(0, "disconnected from the NATS server: messages published by others until the reconnect "
                       "were not delivered");
  }

  static void on_reconnected(natsConnection*, void* closure) {
    static_cast<Hook*>(closure)->core->counters_->reconnects.fetch_add(1, std::memory_order_relaxed);
  }

  static void on_error(natsConnection*, natsSubscription* sub, natsStatus err, void* closure) {
    if (err != NATS_SLOW_CONSUMER || !sub) return;
    Core* core = static_cast<Hook*>(closure)->core;
    std::shared_ptr<Subscription> found;
    {
      std::lock_guard lock(core->mutex_);
      auto it = core->by_nats_.find(sub);
      if (it != core->by_nats_.end()) found = it->second.lock();
    }
    if (found) found->library_dropped();
  }

  static void on_reply(natsConnection*, natsSubscription*, natsMsg* raw, void* closure) {
    MsgPtr msg(raw);
    auto* core = static_cast<Core*>(closure);
    std::string_view subject = natsMsg_GetSubject(raw);
    const auto dot = subject.rfind('.');
    std::uint64_t id = 0;
    if (dot == std::string_view::npos ||
        std::from_chars(subject.data() + dot + 1, subject.data() + subject.size(), id).ec != std::errc{})
      return;
    auto reply = core->take_call(id);
    if (!reply) return;  // the requester gave up (deadline): a late reply is dropped
    if (natsMsg_IsNoResponders(raw)) {
      reply->try_send(make_error_code(errc::no_responders), Message());
      return;
    }
    Message m = from_nats(raw);
    boost::system::error_code ec;
    if (m.headers.contains(kErrorHeader)) {
      int code = static_cast<int>(errc::remote_error);
      if (auto c = m.headers.get(kErrorCodeHeader)) std::from_chars(c->data(), c->data() + c->size(), code);
      ec = make_error_code(static_cast<errc>(code));
    }
    reply->try_send(ec, std::move(m));
  }

  executor ex_;
  const Settings settings_;
  std::shared_ptr<Counters> counters_;
  Hook data_hook_;
  Hook rpc_hook_;
  natsConnection* data_ = nullptr;
  natsConnection* rpc_ = nullptr;
  natsSubscription* inbox_sub_ = nullptr;
  std::string inbox_;
  std::atomic<std::size_t> server_max_payload_{0};
  std::atomic<bool> closed_for_good_{false};

  std::mutex mutex_;
  std::condition_variable cv_;
  int opened_count_ = 0;
  int closed_count_ = 0;
  std::unordered_map<Subscription*, std::shared_ptr<Subscription>> subs_;
  std::unordered_map<natsSubscription*, std::weak_ptr<Subscription>> by_nats_;
  std::unordered_map<ServeState*, std::shared_ptr<ServeState>> serves_;

  std::mutex calls_mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<ReplyChannel>> calls_;
  std::atomic<std::uint64_t> next_call_{0};

  BlockingWorker worker_;  // last: its thread starts once everything else exists
};

void Subscription::on_complete(void* closure) {
  auto* self = static_cast<Subscription*>(closure);
  Core* core = self->core_;
  natsSubscription* sub;
  {
    std::lock_guard lock(self->mutex_);
    sub = self->sub_;
  }
  self->end();
  core->completed(self, sub);  // may release the last reference: `self` is gone after this
}

void serve_on_complete(void* closure) {
  auto* state = static_cast<ServeState*>(closure);
  state->stop = true;
  state->bell.ring();
  state->core->serve_completed(state);  // may release the last reference
}

void send_error(natsConnection* nc, const std::string& subject, errc code, const std::string& text) {
  natsMsg* raw = nullptr;
  if (natsMsg_Create(&raw, subject.c_str(), nullptr, nullptr, 0) != NATS_OK) return;
  MsgPtr m(raw);
  std::string clean = text;
  std::replace(clean.begin(), clean.end(), '\r', ' ');
  std::replace(clean.begin(), clean.end(), '\n', ' ');
  natsMsgHeader_Set(raw, kErrorHeader, clean.c_str());
  natsMsgHeader_Set(raw, kErrorCodeHeader, std::to_string(static_cast<int>(code)).c_str());
  natsConnection_PublishMsg(nc, raw);
}

awaitable<void> handle_request(Core* core, natsConnection* nc, ServiceHandler handler, Message request,
                               std::string reply_subject) {
  try {
    Message reply = co_await handler(std::move(request));
    reply.stamp();
    MsgPtr m = to_nats(reply, reply_subject.c_str(), nullptr);
    if (auto s = natsConnection_PublishMsg(nc, m.get()); s != NATS_OK)
      send_error(nc, reply_subject, errc::remote_error, "the reply could not be sent: " + describe(s));
  } catch (const std::exception& e) {
    send_error(nc, reply_subject, errc::remote_error, e.what());
  }
  core->in_flight_requests.fetch_sub(1);
}

/// A request for a served service, on the rpc subscription's delivery thread.
void on_request(natsConnection* nc, natsSubscription*, natsMsg* raw, void* closure) {
  MsgPtr msg(raw);
  auto* state = static_cast<ServeState*>(closure);
  Core* core = state->core;
  const char* reply_to = natsMsg_GetReply(raw);
  if (!reply_to || !*reply_to) return;  // a plain publish: nobody to answer
  std::string reply_subject = reply_to;
  if (state->stop.load()) {
    send_error(nc, reply_subject, errc::stopped, "the service is stopping");
    return;
  }
  if (core->in_flight_requests.fetch_add(1) >= static_cast<int>(core->settings().max_concurrent_requests)) {
    core->in_flight_requests.fetch_sub(1);
    send_error(nc, reply_subject, errc::unavailable, "busy: max_concurrent_requests handlers are running");
    return;
  }
  Message request = from_nats(raw);
  msg.reset();
  // Each request on its own strand: handlers run in parallel on the io threads, each serialized.
  asio::co_spawn(asio::make_strand(state->io),
                 handle_request(core, nc, state->handler, std::move(request), std::move(reply_subject)),
                 asio::detached);
}

class NatsTransport final : public Transport, public StatsSource {
 public:
  NatsTransport(executor ex, Settings settings) : ex_(std::move(ex)), core_(std::make_unique<Core>(ex_, std::move(settings))) {}

  std::string_view type() const noexcept override { return "nats"; }

  Features features() const override {
    Features f;
    f.publish_subscribe = f.request_reply = f.consumer_groups = true;
    f.ordered = true;     // per publisher: one connection carries a transport's publishes in order
    f.headers = true;
    f.gap_signal = true;  // slow-subscriber drops and reconnects are reported to the subscriber
    f.max_payload = max_payload();
    return f;
  }

  Stats nats_stats() const noexcept override {
    const Counters& c = *core_->counters();
    Stats s;
    s.published = c.published.load();
    s.received = c.received.load();
    s.slow_consumer_drops = c.slow_consumer_drops.load();
    s.disconnects = c.disconnects.load();
    s.reconnects = c.reconnects.load();
    return s;
  }

 protected:
  awaitable<void> do_start() override {
    if (started_.load()) co_return;
    co_await core_->connect();
    started_ = true;
  }

  awaitable<void> do_stop() override {
    if (stopping_.exchange(true)) {
      // Idempotent: a second stop waits for the first to finish.
      while (!stopped_.load()) {
        asio::steady_timer t(ex_, 2ms);
        co_await t.async_wait(asio::use_awaitable_t<executor>{});
      }
      co_return;
    }
    const auto timeout = core_->settings().drain_timeout;
    const auto until = clock::now() + timeout;
    // Services take no new requests; those being handled may still reply.
    for (auto& s : core_->serves()) {
      s->stop = true;
      s->bell.ring();
    }
    while (core_->in_flight_requests.load() > 0 && clock::now() < until) {
      asio::steady_timer t(ex_, 2ms);
      co_await t.async_wait(asio::use_awaitable_t<executor>{});
    }
    if (started_.load()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
      co_await core_->drain_and_close(std::max<std::chrono::milliseconds>(left, 100ms));
    }
    stopped_ = true;
  }

  awaitable<void> do_publish(Message msg) override {
    check_open("publish");
    check_subject(msg.topic, false, "topic");
    check_payload(msg);
    MsgPtr m = to_nats(msg, msg.topic.c_str(), nullptr);
    if (auto s = natsConnection_PublishMsg(core_->data(), m.get()); s != NATS_OK)
      fail(s, "publish to '" + msg.topic + "' failed");
    core_->counters()->published.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    check_open("subscribe");
    if (options.from().where() != Position::kind::latest)
      throw_error(errc::not_supported, "nats: core NATS keeps no history, so a subscription cannot start from a "
                                       "Position (that needs JetStream); subscribe from Position::latest()");
    check_subject(topic, true, "topic");
    if (!options.group().empty()) check_subject(options.group(), false, "group");
    const Settings& st = core_->settings();
    auto ex = co_await asio::this_coro::executor;
    auto sub = std::make_shared<Subscription>(ex, core_.get(), core_->counters(),
                                              static_cast<std::size_t>(st.max_pending_messages),
                                              static_cast<std::size_t>(st.max_pending_bytes));
    natsSubscription* raw = nullptr;
    natsStatus s;
    if (options.group().empty())
      s = natsConnection_Subscribe(&raw, core_->data(), topic.c_str(), &Subscription::on_message, sub.get());
    else
      s = natsConnection_QueueSubscribe(&raw, core_->data(), topic.c_str(), options.group().c_str(),
                                        &Subscription::on_message, sub.get());
    if (s != NATS_OK) fail(s, "subscribe to '" + topic + "' failed");
    sub->attach(raw);
    core_->add(raw, sub);
    // nats.c's own queue (between its reader and this subscription's delivery thread) is only a
    // safety net: our callback never waits, so it stays short. Larger than ours, so that drops
    // are normally ours, counted one by one (nats.c reports its own only once per episode).
    natsSubscription_SetPendingLimits(raw, library_limit(st.max_pending_messages, 65536),
                                      library_limit(st.max_pending_bytes, 64 << 20));
    if ((s = natsSubscription_SetOnCompleteCB(raw, &Subscription::on_complete, sub.get())) != NATS_OK) {
      // Closed already (the connection closed meanwhile): nothing will call back any more.
      core_->completed(sub.get(), raw);
      fail(s, "subscribe to '" + topic + "' failed");
    }
    // Established means the server knows: nats.c sends the SUB before any later PUB of this
    // connection, and the round trip makes it true for every other client's publishes too.
    co_await core_->flush(core_->data());
    co_return Stream<Delivery>(std::move(sub));
  }

  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    check_open("request");
    check_subject(service, false, "service");
    check_payload(msg);
    auto ex = co_await asio::this_coro::executor;
    auto reply = std::make_shared<ReplyChannel>(ex, 1);
    const std::uint64_t call = core_->add_call(reply);
    struct Forget {
      Core* core;
      std::uint64_t call;
      ~Forget() { core->remove_call(call); }
    } forget{core_.get(), call};
    const std::string reply_to = core_->inbox() + "." + std::to_string(call);
    {
      MsgPtr m = to_nats(msg, service.c_str(), reply_to.c_str());
      if (auto s = natsConnection_PublishMsg(core_->rpc(), m.get()); s != NATS_OK)
        fail(s, "request to '" + service + "' failed");
    }
    asio::steady_timer timer(ex, until);
    using namespace asio::experimental;
    auto [order, reply_ec, reply_msg, timer_ec] =
        co_await make_parallel_group(reply->async_receive(asio::deferred), timer.async_wait(asio::deferred))
            .async_wait(wait_for_one(), asio::use_awaitable_t<executor>{});
    (void)timer_ec;
    if (order[0] == 1 || reply_ec == asio::experimental::error::channel_cancelled ||
        reply_ec == asio::error::operation_aborted)
      throw_error(errc::timed_out, "nats: no reply from '" + service + "' before the deadline");
    if (reply_ec == make_error_code(errc::no_responders))
      throw_error(errc::no_responders, "nats: no responders: nobody serves '" + service + "'");
    if (reply_ec) {
      auto text = reply_msg.headers.get(kErrorHeader);
      throw boost::system::system_error(
          reply_ec, "nats: '" + service + "' failed: " + (text ? std::string(*text) : std::string("remote error")));
    }
    co_return std::move(reply_msg);
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    check_open("serve");
    check_subject(service, true, "service");
    auto ex = co_await asio::this_coro::executor;
    auto state = std::make_shared<ServeState>(ex, ex_, core_.get(), std::move(handler));
    core_->add_serve(state);
    natsSubscription* raw = nullptr;
    natsStatus s = natsConnection_QueueSubscribe(&raw, core_->rpc(), service.c_str(), core_->settings().serve_group.c_str(),
                                                 &on_request, state.get());
    if (s != NATS_OK) {
      core_->serve_completed(state.get());
      fail(s, "serve '" + service + "' failed");
    }
    state->sub = raw;
    natsSubscription_SetPendingLimits(raw, core_->settings().max_pending_messages, -1);
    if ((s = natsSubscription_SetOnCompleteCB(raw, &serve_on_complete, state.get())) != NATS_OK) {
      core_->serve_completed(state.get());
      fail(s, "serve '" + service + "' failed");
    }
    co_await core_->flush(core_->rpc());
    // Serve until cancelled or stopped; requests are handled on their own strands meanwhile.
    std::exception_ptr cancelled;
    try {
      while (!state->stop.load()) co_await state->bell.wait();
    } catch (...) {
      cancelled = std::current_exception();
    }
    natsSubscription_Unsubscribe(raw);  // then nats.c completes it and serve_on_complete releases the state
    if (cancelled) std::rethrow_exception(cancelled);
  }

 private:
  void check_open(const char* what) const {
    if (stopping_.load()) throw_error(errc::stopped, std::string("nats: ") + what + " after stop");
    if (!started_.load()) throw_error(errc::unavailable, std::string("nats: ") + what + " before start");
    if (core_->closed_for_good())
      throw_error(errc::unavailable, std::string("nats: ") + what +
                                         ": the connection is closed for good (reconnect attempts exhausted; see max_reconnects)");
  }

  std::size_t max_payload() const {
    const std::size_t server = core_->server_max_payload();
    const std::size_t limit = server ? server : core_->settings().max_payload_fallback;
    return limit > 2 * kHeaderReserve ? limit - kHeaderReserve : limit / 2;
  }

  void check_payload(const Message& m) const {
    const std::size_t max = max_payload();
    if (m.payload.size() > max)
      throw_error(errc::payload_too_large, "nats: a payload of " + std::to_string(m.payload.size()) +
                                               " bytes exceeds the server's max_payload (" + std::to_string(max) +
                                               " bytes usable); raise max_payload in nats-server's configuration");
  }

  executor ex_;
  std::unique_ptr<Core> core_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
};

// --- settings -------------------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<Transport>> make_nats(const TransportContext& ctx) {
  const auto& s = ctx.settings;
  Settings out;
  const bool has_url = s.has("url");
  const bool has_servers = s.has("servers");
  if (has_url && has_servers)
    return config::error_at(s.mark_of("servers"), s.context() + ": give either url or servers, not both");
  if (has_servers) {
    auto servers = s.get_string_list("servers", {});
    if (!servers.ok()) return servers.status();
    if (servers->empty()) return config::error_at(s.mark_of("servers"), s.context() + ": servers is empty");
    out.servers = *servers;
  } else {
    auto url = s.get_string("url", "nats://127.0.0.1:4222");
    if (!url.ok()) return url.status();
    out.servers = {*url};
  }
  for (const auto& u : out.servers)
    if (u.rfind("nats://", 0) != 0 && u.rfind("tls://", 0) != 0)
      return config::error_at(s.mark_of(has_servers ? "servers" : "url"),
                              s.context() + ": '" + u + "' is not a NATS URL (nats://host:port)");
  auto str = [&](std::string_view key, std::string& field) -> absl::Status {
    auto v = s.get_string(key, field);
    if (!v.ok()) return v.status();
    field = *v;
    return absl::OkStatus();
  };
  auto dur = [&](std::string_view key, std::chrono::milliseconds& field) -> absl::Status {
    auto v = s.get_duration(key, field);
    if (!v.ok()) return v.status();
    field = *v;
    return absl::OkStatus();
  };
  for (auto st : {str("user", out.user), str("password", out.password), str("token", out.token), str("name", out.name),
                  str("serve_group", out.serve_group), dur("connect_timeout", out.connect_timeout),
                  dur("reconnect_wait", out.reconnect_wait), dur("write_deadline", out.write_deadline),
                  dur("ping_interval", out.ping_interval), dur("drain_timeout", out.drain_timeout)})
    if (!st.ok()) return st;
  if (!out.token.empty() && !out.user.empty())
    return config::error_at(s.mark_of("token"), s.context() + ": give either user/password or token, not both");
  if (out.connect_timeout.count() <= 0)
    return config::error_at(s.mark_of("connect_timeout"), s.context() + ": connect_timeout must be positive");
  if (out.serve_group.empty())
    return config::error_at(s.mark_of("serve_group"), s.context() + ": serve_group may not be empty");
  auto max_reconnects = s.get_int("max_reconnects", out.max_reconnects, -1, INT32_MAX);
  if (!max_reconnects.ok()) return max_reconnects.status();
  out.max_reconnects = static_cast<int>(*max_reconnects);
  auto reconnect_buffer = s.get_int("reconnect_buffer", out.reconnect_buffer, 1, INT32_MAX);
  if (!reconnect_buffer.ok()) return reconnect_buffer.status();
  out.reconnect_buffer = static_cast<int>(*reconnect_buffer);
  auto pending = s.get_int("max_pending_messages", out.max_pending_messages, 1, INT32_MAX);
  if (!pending.ok()) return pending.status();
  out.max_pending_messages = static_cast<int>(*pending);
  auto pending_bytes = s.get_int("max_pending_bytes", out.max_pending_bytes, 1);
  if (!pending_bytes.ok()) return pending_bytes.status();
  out.max_pending_bytes = *pending_bytes;
  auto concurrent = s.get_int("max_concurrent_requests", static_cast<std::int64_t>(out.max_concurrent_requests), 1, INT32_MAX);
  if (!concurrent.ok()) return concurrent.status();
  out.max_concurrent_requests = static_cast<std::size_t>(*concurrent);
  return std::make_shared<NatsTransport>(ctx.ex, std::move(out));
}

absl::Status register_nats(Registry& registry) { return registry.add_transport("nats", make_nats); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_transport(Registry& registry) { return register_nats(registry); }
#endif

}  // namespace patchbay::nats

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::nats::register_nats)
#endif
