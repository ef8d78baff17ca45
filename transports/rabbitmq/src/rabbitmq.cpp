// The RabbitMQ transport: AMQP 0-9-1 through rabbitmq-c, bridged to coroutines.
//
// Threading (README.md, "Threading"): a Core owns the amqp_connection_state_t and the one thread
// that ever calls rabbitmq-c with it. Coroutines talk to that thread only through `submit()`: a
// mutex-protected command list plus an eventfd that wakes the thread's poll(). Results travel back
// as Completions — an Asio completion handler and the executor it belongs to — posted, never run
// inline, so no application code runs on the I/O thread and no io_context thread waits on the
// broker. Subscriptions hand deliveries over through a small locked queue and a Doorbell.
//
// Lock order: Sub::mutex, then Core::mutex_ (a Delivery destroyed under a subscription's lock
// nacks, which submits a command). The I/O thread never holds Core::mutex_ while taking a
// Sub::mutex.
#include <patchbay/transports/rabbitmq/rabbitmq.hpp>

#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/transport.hpp>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <absl/strings/str_cat.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

namespace patchbay::rabbitmq {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// --- settings -------------------------------------------------------------------------------

struct Settings {
  std::string name;  // the transport's key in `transports:`
  std::string url;
  std::string host;
  int port = 5672;
  std::string user, password, vhost;
  std::string exchange = "patchbay";
  bool persistent = true;
  bool confirms = true;
  bool mandatory = true;
  std::size_t confirm_window = 1024;
  std::size_t publish_buffer = 4096;  // confirms off: publishes accepted ahead of the socket
  std::uint16_t prefetch = 256;
  std::uint16_t serve_concurrency = 64;
  int heartbeat_s = 10;
  int frame_max = 131072;
  milliseconds connect_timeout{5000};
  milliseconds reconnect_min{100};
  milliseconds reconnect_max{5000};
  milliseconds subscriber_queue_expiry{300000};
  milliseconds drain_timeout{5000};
  milliseconds rpc_timeout{30000};
  std::size_t max_payload = 16u << 20;
};

// --- completions ----------------------------------------------------------------------------

/// A type-erased, move-only completion handler. (Boost 1.81's any_completion_handler recurses
/// without end when one is moved into a posted lambda, so it is not used here.)
struct DoneBase {
  virtual ~DoneBase() = default;
  virtual void invoke(boost::system::error_code ec, std::string text) = 0;
};
template <typename Handler>
struct DoneImpl final : DoneBase {
  explicit DoneImpl(Handler h) : handler(std::move(h)) {}
  void invoke(boost::system::error_code ec, std::string text) override { std::move(handler)(ec, std::move(text)); }
  Handler handler;
};

/// A one-shot completion handed to the I/O thread: the handler and the executor it resumes on.
/// complete() posts; it never runs the handler inline.
struct Completion {
  executor ex;
  std::unique_ptr<DoneBase> handler;
  explicit operator bool() const noexcept { return static_cast<bool>(handler); }
  void complete(boost::system::error_code ec, std::string text = {}) {
    if (!handler) return;
    asio::post(ex, [h = std::move(handler), ec, text = std::move(text)]() mutable { h->invoke(ec, std::move(text)); });
  }
};

/// Suspends until `start(Completion)` has been completed by the I/O thread; throws its error.
template <typename Start>
awaitable<void> await_io(Start& start) {
  auto init = [&start](auto handler) {
    executor ex = asio::get_associated_executor(handler);
    Completion c;
    c.ex = std::move(ex);
    c.handler = std::make_unique<DoneImpl<decltype(handler)>>(std::move(handler));
    start(std::move(c));
  };
  auto [ec, text] = co_await asio::async_initiate<const asio::as_tuple_t<asio::use_awaitable_t<executor>>&,
                                                  void(boost::system::error_code, std::string)>(
      init, asio::as_tuple(asio::use_awaitable_t<executor>{}));
  if (ec) throw boost::system::system_error(ec, text);
}

// --- small helpers --------------------------------------------------------------------------

amqp_bytes_t bytes_of(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

std::string str_of(amqp_bytes_t b) {
  return b.len ? std::string(static_cast<const char*>(b.bytes), b.len) : std::string();
}

std::string describe_reply(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "missing RPC reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return absl::StrCat("connection closed by the broker: ", m->reply_code, " ", str_of(m->reply_text));
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return absl::StrCat("channel closed by the broker: ", m->reply_code, " ", str_of(m->reply_text));
      }
      return absl::StrCat("unexpected server method 0x", absl::Hex(r.reply.id));
  }
  return "unknown reply";
}

/// Delivery tags are per channel and restart when a channel opens again; a Delivery's tag packs
/// the channel's generation (24 bits) with the broker's tag (40 bits), so a settlement that
/// reaches a newer channel is recognised as stale and dropped (the broker redelivers anyway).
constexpr int kTagBits = 40;
constexpr std::uint64_t kTagMask = (std::uint64_t(1) << kTagBits) - 1;
std::uint64_t pack_tag(std::uint64_t generation, std::uint64_t tag) {
  return (generation << kTagBits) | (tag & kTagMask);
}

// --- messages <-> AMQP properties -----------------------------------------------------------

/// Headers that map to AMQP basic properties instead of (or as well as) the header table.
struct PropertyHeader {
  std::string_view name;
  amqp_flags_t flag;
  amqp_bytes_t amqp_basic_properties_t::*field;
  bool also_in_table;  // content-type/-encoding stay in the table too, keeping header order exact
};
const PropertyHeader kPropertyHeaders[] = {
    {"content-type", AMQP_BASIC_CONTENT_TYPE_FLAG, &amqp_basic_properties_t::content_type, true},
    {"content-encoding", AMQP_BASIC_CONTENT_ENCODING_FLAG, &amqp_basic_properties_t::content_encoding, true},
    {"amqp-type", AMQP_BASIC_TYPE_FLAG, &amqp_basic_properties_t::type, false},
    {"amqp-app-id", AMQP_BASIC_APP_ID_FLAG, &amqp_basic_properties_t::app_id, false},
    {"amqp-user-id", AMQP_BASIC_USER_ID_FLAG, &amqp_basic_properties_t::user_id, false},
    {"amqp-expiration", AMQP_BASIC_EXPIRATION_FLAG, &amqp_basic_properties_t::expiration, false},
    {"amqp-correlation-id", AMQP_BASIC_CORRELATION_ID_FLAG, &amqp_basic_properties_t::correlation_id, false},
    {"amqp-reply-to", AMQP_BASIC_REPLY_TO_FLAG, &amqp_basic_properties_t::reply_to, false},
};
const PropertyHeader* property_header(std::string_view name) {
  for (const auto& p : kPropertyHeaders)
    if (p.name == name) return &p;
  return nullptr;
}

/// Storage that must outlive one amqp_basic_publish call.
struct EncodedProperties {
  amqp_basic_properties_t props{};
  std::vector<amqp_table_entry_t> entries;
  std::vector<std::vector<amqp_field_value_t>> arrays;  // moving the inner vectors keeps their data in place
  std::string priority_text, expiration_text;
};

void encode_properties(const Message& msg, bool persistent, EncodedProperties& out) {
  auto& p = out.props;
  p._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  p.message_id = bytes_of(msg.id);
  p.timestamp =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(msg.time.time_since_epoch()).count());
  p.delivery_mode = persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
  // Header table: names in order of first appearance; a repeated name becomes an array.
  if (!msg.headers.empty()) out.entries.reserve(msg.headers.size());
  for (auto it = msg.headers.begin(); it != msg.headers.end(); ++it) {
    const auto& [name, value] = *it;
    if (name == "amqp-priority") {
      int prio = 0;
      if (std::from_chars(value.data(), value.data() + value.size(), prio).ec == std::errc{} && prio >= 0 &&
          prio <= 255) {
        p._flags |= AMQP_BASIC_PRIORITY_FLAG;
        p.priority = static_cast<std::uint8_t>(prio);
      }
      continue;
    }
    if (const auto* ph = property_header(name)) {
      if (!(p._flags & ph->flag)) {
        p._flags |= ph->flag;
        p.*(ph->field) = bytes_of(value);
      }
      if (!ph->also_in_table) continue;
    }
    bool seen = false;
    for (auto& e : out.entries) {
      if (e.key.len == name.size() && std::memcmp(e.key.bytes, name.data(), name.size()) == 0) {
        seen = true;
        break;
      }
    }
    if (seen) continue;
    amqp_table_entry_t e{};
    e.key = bytes_of(name);
    std::size_t count = 0;
    for (auto j = it; j != msg.headers.end(); ++j)
      if (j->first == name) ++count;
    if (count == 1) {
      e.value.kind = AMQP_FIELD_KIND_UTF8;
      e.value.value.bytes = bytes_of(value);
    } else {
      auto& arr = out.arrays.emplace_back();
      for (auto j = it; j != msg.headers.end(); ++j) {
        if (j->first != name) continue;
        amqp_field_value_t v{};
        v.kind = AMQP_FIELD_KIND_UTF8;
        v.value.bytes = bytes_of(j->second);
        arr.push_back(v);
      }
      e.value.kind = AMQP_FIELD_KIND_ARRAY;
      e.value.value.array.num_entries = static_cast<int>(arr.size());
      e.value.value.array.entries = arr.data();
    }
    out.entries.push_back(e);
  }
  if (!out.entries.empty()) {
    p._flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers.num_entries = static_cast<int>(out.entries.size());
    p.headers.entries = out.entries.data();
  }
}

std::string field_text(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
      return str_of(v.value.bytes);
    case AMQP_FIELD_KIND_BOOLEAN:
      return v.value.boolean ? "true" : "false";
    case AMQP_FIELD_KIND_I8:
      return std::to_string(v.value.i8);
    case AMQP_FIELD_KIND_U8:
      return std::to_string(v.value.u8);
    case AMQP_FIELD_KIND_I16:
      return std::to_string(v.value.i16);
    case AMQP_FIELD_KIND_U16:
      return std::to_string(v.value.u16);
    case AMQP_FIELD_KIND_I32:
      return std::to_string(v.value.i32);
    case AMQP_FIELD_KIND_U32:
      return std::to_string(v.value.u32);
    case AMQP_FIELD_KIND_I64:
      return std::to_string(v.value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
      return std::to_string(v.value.u64);
    case AMQP_FIELD_KIND_F32:
      return std::to_string(v.value.f32);
    case AMQP_FIELD_KIND_F64:
      return std::to_string(v.value.f64);
    default:
      return {};  // tables, decimals, void: not representable as one string
  }
}

Message decode_message(const amqp_basic_properties_t& p, amqp_bytes_t body, std::string topic) {
  Message m{Bytes(std::string(static_cast<const char*>(body.bytes), body.len))};
  m.topic = std::move(topic);
  if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) m.id = str_of(p.message_id);
  if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG)
    m.time = Message::time_point(std::chrono::seconds(static_cast<std::int64_t>(p.timestamp)));
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < p.headers.num_entries; ++i) {
      const auto& e = p.headers.entries[i];
      std::string key = str_of(e.key);
      if (e.value.kind == AMQP_FIELD_KIND_ARRAY) {
        for (int j = 0; j < e.value.value.array.num_entries; ++j)
          m.headers.add(key, field_text(e.value.value.array.entries[j]));
      } else {
        m.headers.add(std::move(key), field_text(e.value));
      }
    }
  }
  for (const auto& ph : kPropertyHeaders) {
    if ((p._flags & ph.flag) && !m.headers.contains(ph.name))
      m.headers.add(std::string(ph.name), str_of(p.*(ph.field)));
  }
  if ((p._flags & AMQP_BASIC_PRIORITY_FLAG) && !m.headers.contains("amqp-priority"))
    m.headers.add("amqp-priority", std::to_string(p.priority));
  if (m.id.empty()) m.id = Message::generate_id();  // a foreign publisher that sent no message-id
  return m;
}

// --- shared state between the I/O thread and coroutines -------------------------------------

class Core;

/// A message received for a subscription, not yet handed to the application.
struct Incoming {
  Message msg;
  bool redelivered = false;
  std::uint64_t tag = 0;                 // packed (generation, delivery tag)
  std::string reply_to, correlation_id;  // services
};

/// One subscription (or one serve()): its queue and channel on the broker, and the deliveries
/// waiting for its consumer. Also the Acknowledger of its deliveries.
class Sub final : public Acknowledger {
 public:
  Sub(std::weak_ptr<Core> core, executor ex) : bell(std::move(ex)), core_(std::move(core)) {}

  void ack(std::uint64_t tag) noexcept override;
  void nack(std::uint64_t tag, bool requeue) noexcept override;

  // Immutable after construction.
  std::uint64_t id = 0;
  std::string topic;     // binding key (subscriptions) or service name
  std::string queue;     // broker queue name
  bool fanout = false;   // a private queue, deleted when the subscription closes
  bool service = false;  // serve(): requests arrive on the default exchange
  std::uint16_t prefetch = 0;

  // I/O thread only.
  amqp_channel_t channel = 0;
  std::uint64_t generation = 0;
  std::uint64_t outstanding = 0;  // delivered on this channel generation, not yet acked or nacked
  bool open = false;
  Completion established;  // subscribe() waiting for the first successful open

  // Guarded by mutex.
  std::mutex mutex;
  std::deque<Incoming> ready;
  bool closed = false;
  bool waiting = false;
  std::string end_reason;  // why the broker ended it (empty: closed by the application)
  Doorbell bell;

  std::weak_ptr<Core> core_;

  /// Called by the I/O thread.
  void push(Incoming in) {
    bool ring = false;
    {
      std::lock_guard lock(mutex);
      if (closed) return;
      ready.push_back(std::move(in));
      ring = waiting;
      waiting = false;
    }
    if (ring) bell.ring();
  }
  /// Ends the stream (stop(), broker-side cancel). Buffered deliveries are dropped: the broker
  /// gets them back when the channel closes.
  void end(std::string reason) {
    std::deque<Incoming> dropped;
    {
      std::lock_guard lock(mutex);
      if (closed) return;
      closed = true;
      end_reason = std::move(reason);
      dropped.swap(ready);
    }
    bell.ring();
  }
  /// Drops the deliveries buffered from a connection that is gone: their tags are stale.
  void drop_buffered() {
    std::deque<Incoming> dropped;
    std::lock_guard lock(mutex);
    dropped.swap(ready);
  }
};

/// An outgoing basic.publish.
struct Publish {
  enum class Kind { topic, request, reply } kind = Kind::topic;
  std::string exchange, routing_key;
  Message msg;
  bool mandatory = false;
  bool persistent = false;
  Completion done;        // topic: when confirmed (or written, without confirms)
  std::uint64_t seq = 0;  // publisher-confirm sequence number on the current channel
  bool returned = false;
  std::string return_text;
  std::string reply_to, correlation_id, expiration;
  bool counted = false;  // confirms off: counted in Core::buffered_
};

/// A request waiting for its reply.
struct Call {
  Completion done;
  std::shared_ptr<Message> reply;
  deadline until;
  bool sent = false;
};

struct Command {
  enum class Kind { publish, ack, nack, call } kind = Kind::call;
  std::uint64_t sub = 0;
  std::uint64_t tag = 0;
  bool requeue = false;
  std::unique_ptr<Publish> publish;
  /// Runs on the I/O thread with `alive` true; with false (inline, on the submitting thread)
  /// when the thread has already ended: it must then only complete what it carries.
  std::function<void(bool alive)> call;
};

// --- the I/O thread -------------------------------------------------------------------------

class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(executor ex, Settings s) : ex_(std::move(ex)), s_(std::move(s)) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  ~Core() {
    join();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  const Settings& settings() const noexcept { return s_; }
  executor io_executor() const { return ex_; }
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> buffered{0};  // confirms off: accepted, not yet written

  /// Starts the thread (once) and connects; completes when connected or when the connect
  /// deadline passed (errc::unavailable), or at once for refused credentials.
  void start(Completion c) {
    std::lock_guard lock(mutex_);
    if (exited_) {
      c.complete(make_error_code(errc::stopped), "the rabbitmq transport has stopped");
      return;
    }
    if (thread_.joinable()) {
      c.complete(make_error_code(errc::ok));
      return;
    }
    start_done_ = std::move(c);
    thread_ = std::thread([this] { run(); });
  }

  /// Any thread. Completes what it carries with errc::stopped once the thread is gone.
  void submit(Command c) {
    bool was_empty;
    {
      std::lock_guard lock(mutex_);
      if (!exited_) {
        was_empty = commands_.empty();
        commands_.push_back(std::move(c));
        if (was_empty) wake();
        return;
      }
    }
    reject(c);
  }

  /// Any thread: stop (drain, end streams, close) and end the thread; completes at once when
  /// no thread runs.
  void request_stop(Completion c) {
    auto slot = std::make_shared<Completion>(std::move(c));
    {
      std::lock_guard lock(mutex_);
      if (thread_.joinable() && !exited_) {
        Command cmd;
        cmd.kind = Command::Kind::call;
        cmd.call = [this, slot](bool alive) {
          if (alive)
            stop(std::move(*slot));
          else
            slot->complete(make_error_code(errc::ok));
        };
        const bool was_empty = commands_.empty();
        commands_.push_back(std::move(cmd));
        if (was_empty) wake();
        return;
      }
      exited_ = true;
    }
    slot->complete(make_error_code(errc::ok));
  }

  void run_on_thread(std::function<void(bool)> f) {
    Command c;
    c.kind = Command::Kind::call;
    c.call = std::move(f);
    submit(std::move(c));
  }

  void join() {
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

  std::uint64_t next_sub_id() { return ++sub_ids_; }

  // I/O thread only (called through run_on_thread):
  void add_sub(std::shared_ptr<Sub> sub);
  void remove_sub(std::uint64_t id);
  void stop(Completion c) {
    stop_done_ = std::move(c);
    stop_requested_ = true;
    drain_until_ = clock::now() + s_.drain_timeout;
  }
  void add_request(std::unique_ptr<Publish> p, Call call) {
    calls_[p->correlation_id] = std::move(call);
    rpc_outbox_.push_back(std::move(p));
  }

 private:
  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
  static void reject(Command& c) {
    if (c.publish) c.publish->done.complete(make_error_code(errc::stopped), "the rabbitmq transport has stopped");
    if (c.kind == Command::Kind::call && c.call) c.call(false);
  }

  void run();
  bool connect(std::string& error, bool& fatal);
  void lost(const std::string& why);
  void close_connection();
  void process_commands();
  void handle(Command& c);
  bool pump();
  bool handle_frame(const amqp_frame_t& frame);
  bool send_outbox();
  bool open_publish_channel();
  bool open_sub(Sub& sub);
  void settle(std::uint64_t tag, bool multiple, bool ok);
  void fail_expired_calls();
  bool rpc_ok(const char* what, std::string* error = nullptr);
  amqp_channel_t allocate_channel();
  bool channel_refused(amqp_channel_t ch);
  void shutdown();
  bool subscriptions_drained();
  void publish_reply(const Publish& p);

  executor ex_;
  Settings s_;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<std::uint64_t> sub_ids_{0};

  std::mutex mutex_;  // guards commands_ and exited_
  std::vector<Command> commands_;
  bool exited_ = false;

  // I/O thread only.
  amqp_connection_state_t conn_ = nullptr;
  bool connected_ = false;
  Completion start_done_;
  Completion stop_done_;
  bool stop_requested_ = false;
  deadline drain_until_{};
  deadline next_drain_check_{};
  std::deque<std::unique_ptr<Publish>> outbox_;       // topic publishes not yet sent
  std::deque<std::unique_ptr<Publish>> unconfirmed_;  // sent, awaiting basic.ack, in seq order
  std::deque<std::unique_ptr<Publish>> rpc_outbox_;   // requests and replies not yet sent
  std::uint64_t next_seq_ = 1;
  std::map<std::uint64_t, std::shared_ptr<Sub>> subs_;
  std::unordered_map<amqp_channel_t, Sub*> by_channel_;
  std::vector<amqp_channel_t> free_channels_;
  amqp_channel_t next_channel_ = 3;
  std::uint64_t generation_ = 0;
  std::unordered_map<std::string, Call> calls_;
  std::string last_error_;

  static constexpr amqp_channel_t kPublishChannel = 1;
  static constexpr amqp_channel_t kRpcChannel = 2;
};

void Sub::ack(std::uint64_t tag) noexcept {
  if (auto core = core_.lock()) {
    Command c;
    c.kind = Command::Kind::ack;
    c.sub = id;
    c.tag = tag;
    try {
      core->submit(std::move(c));
    } catch (...) {
    }
  }
}

void Sub::nack(std::uint64_t tag, bool requeue) noexcept {
  if (auto core = core_.lock()) {
    Command c;
    c.kind = Command::Kind::nack;
    c.sub = id;
    c.tag = tag;
    c.requeue = requeue;
    try {
      core->submit(std::move(c));
    } catch (...) {
    }
  }
}

bool Core::rpc_ok(const char* what, std::string* error) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
  std::string text = absl::StrCat(what, ": ", describe_reply(r));
  if (error) *error = text;
  last_error_ = std::move(text);
  return false;
}

amqp_channel_t Core::allocate_channel() {
  if (!free_channels_.empty()) {
    auto ch = free_channels_.back();
    free_channels_.pop_back();
    return ch;
  }
  return next_channel_++;
}

/// After a failed synchronous call on `ch`: when the broker closed just that channel, answer it
/// (channel.close-ok), free the number and return true; the connection is fine.
bool Core::channel_refused(amqp_channel_t ch) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
  if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD) return false;
  amqp_channel_close_ok_t ok{};
  if (amqp_send_method(conn_, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) return false;
  by_channel_.erase(ch);
  free_channels_.push_back(ch);
  return true;
}

bool Core::connect(std::string& error, bool& fatal) {
  fatal = false;
  conn_ = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
  if (!socket) {
    error = "cannot create a socket";
    close_connection();
    return false;
  }
  const auto to_tv = [](milliseconds d) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(d.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
    return tv;
  };
  timeval connect_tv = to_tv(s_.connect_timeout);
  int status = amqp_socket_open_noblock(socket, s_.host.c_str(), s_.port, &connect_tv);
  if (status != AMQP_STATUS_OK) {
    error = absl::StrCat("cannot connect to ", s_.host, ":", s_.port, ": ", amqp_error_string2(status));
    close_connection();
    return false;
  }
  timeval handshake_tv = to_tv(s_.connect_timeout);
  amqp_set_handshake_timeout(conn_, &handshake_tv);
  timeval rpc_tv = to_tv(s_.rpc_timeout);
  amqp_set_rpc_timeout(conn_, &rpc_tv);
  amqp_rpc_reply_t login = amqp_login(conn_, s_.vhost.c_str(), 0, s_.frame_max, s_.heartbeat_s, AMQP_SASL_METHOD_PLAIN,
                                      s_.user.c_str(), s_.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    const bool refused =
        (login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && login.reply.id == AMQP_CONNECTION_CLOSE_METHOD &&
         (static_cast<amqp_connection_close_t*>(login.reply.decoded)->reply_code == AMQP_ACCESS_REFUSED ||
          static_cast<amqp_connection_close_t*>(login.reply.decoded)->reply_code == AMQP_NOT_ALLOWED)) ||
        (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && login.library_error == AMQP_STATUS_CONNECTION_CLOSED);
    error = absl::StrCat("login to ", s_.host, ":", s_.port, " vhost '", s_.vhost, "' as '", s_.user,
                         "' failed: ", describe_reply(login));
    if (refused) {
      fatal = true;
      error += " (check user, password and vhost)";
    }
    close_connection();
    return false;
  }
  connected_ = true;
  // Channel 1: topic publishes (confirm mode) and declarations.
  if (!open_publish_channel()) {
    error = last_error_;
    close_connection();
    return false;
  }
  // Channel 2: request/reply over direct reply-to. Requests must be published on the channel
  // that consumes from amq.rabbitmq.reply-to; replies go out on it too.
  amqp_channel_open(conn_, kRpcChannel);
  if (!rpc_ok("opening the request channel", &error)) {
    close_connection();
    return false;
  }
  amqp_basic_consume(conn_, kRpcChannel, amqp_cstring_bytes("amq.rabbitmq.reply-to"), amqp_cstring_bytes("replies"), 0,
                     1, 0, amqp_empty_table);
  if (!rpc_ok("consuming from amq.rabbitmq.reply-to", &error)) {
    close_connection();
    return false;
  }
  // Resubscribe: every subscription gets its channel, queue, binding and consumer again.
  by_channel_.clear();
  free_channels_.clear();
  next_channel_ = 3;
  for (auto it = subs_.begin(); it != subs_.end();) {
    Sub& sub = *it->second;
    sub.open = false;
    if (open_sub(sub)) {
      ++it;
      continue;
    }
    if (!channel_refused(sub.channel)) {
      error = last_error_;
      close_connection();
      return false;
    }
    sub.established.complete(make_error_code(errc::remote_error), "rabbitmq: " + last_error_);
    sub.end("rabbitmq: resubscribing failed: " + last_error_);
    it = subs_.erase(it);
  }
  return true;
}

bool Core::open_publish_channel() {
  amqp_channel_open(conn_, kPublishChannel);
  if (!rpc_ok("opening the publish channel")) return false;
  if (s_.confirms) {
    amqp_confirm_select(conn_, kPublishChannel);
    if (!rpc_ok("enabling publisher confirms")) return false;
  }
  next_seq_ = 1;
  amqp_exchange_declare(conn_, kPublishChannel, bytes_of(s_.exchange), amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                        amqp_empty_table);
  return rpc_ok(absl::StrCat("declaring the topic exchange '", s_.exchange, "'").c_str());
}

bool Core::open_sub(Sub& sub) {
  sub.channel = allocate_channel();
  sub.generation = ++generation_ & ((std::uint64_t(1) << (64 - kTagBits)) - 1);
  sub.outstanding = 0;
  amqp_channel_open(conn_, sub.channel);
  if (!rpc_ok("opening a subscription channel")) return false;
  std::string what = absl::StrCat("declaring queue '", sub.queue, "'");
  if (sub.service) {
    // Servers of one service share an auto-delete queue on the default exchange: it goes when
    // the last server goes, so a request nobody serves is returned (no_responders).
    amqp_queue_declare(conn_, sub.channel, bytes_of(sub.queue), 0, 0, 0, 1, amqp_empty_table);
    if (!rpc_ok(what.c_str())) return false;
  } else {
    amqp_table_entry_t args[1];
    amqp_table_t table = amqp_empty_table;
    if (sub.fanout) {
      args[0].key = amqp_cstring_bytes("x-expires");
      args[0].value.kind = AMQP_FIELD_KIND_I32;
      args[0].value.value.i32 = static_cast<std::int32_t>(s_.subscriber_queue_expiry.count());
      table.num_entries = 1;
      table.entries = args;
    }
    amqp_queue_declare(conn_, sub.channel, bytes_of(sub.queue), 0, 1, 0, 0, table);
    if (!rpc_ok(what.c_str())) return false;
    amqp_queue_bind(conn_, sub.channel, bytes_of(sub.queue), bytes_of(s_.exchange), bytes_of(sub.topic),
                    amqp_empty_table);
    if (!rpc_ok(absl::StrCat("binding queue '", sub.queue, "' to '", sub.topic, "'").c_str())) return false;
  }
  amqp_basic_qos(conn_, sub.channel, 0, sub.prefetch, 0);
  if (!rpc_ok("setting the prefetch (basic.qos)")) return false;
  amqp_basic_consume(conn_, sub.channel, bytes_of(sub.queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  if (!rpc_ok(absl::StrCat("consuming from queue '", sub.queue, "'").c_str())) return false;
  by_channel_[sub.channel] = &sub;
  sub.open = true;
  sub.established.complete(make_error_code(errc::ok));
  return true;
}

void Core::add_sub(std::shared_ptr<Sub> sub) {
  Sub& s = *sub;
  subs_[s.id] = std::move(sub);
  if (stop_requested_) {
    s.established.complete(make_error_code(errc::stopped), "the rabbitmq transport is stopping");
    subs_.erase(s.id);
    return;
  }
  if (connected_) {
    if (!open_sub(s)) {
      // A channel-level refusal (e.g. a queue declared elsewhere with other arguments) fails
      // this subscribe only; a connection-level one is a lost connection.
      std::string why = last_error_;
      auto keep = subs_[s.id];
      subs_.erase(s.id);
      if (channel_refused(s.channel)) {
        s.established.complete(make_error_code(errc::remote_error), "rabbitmq: " + why);
      } else {
        s.established.complete(make_error_code(errc::unavailable), "rabbitmq: " + why);
        lost(why);
      }
    }
  }
  // Not connected: established once the connection is back.
}

void Core::remove_sub(std::uint64_t id) {
  auto it = subs_.find(id);
  if (it == subs_.end()) return;
  auto sub = it->second;
  subs_.erase(it);
  sub->established.complete(make_error_code(errc::closed), "subscription closed");
  if (!connected_ || !sub->open) return;
  by_channel_.erase(sub->channel);
  if (sub->fanout) {
    amqp_queue_delete(conn_, sub->channel, bytes_of(sub->queue), 0, 0);
    if (!rpc_ok("deleting a subscriber queue")) {
      lost(last_error_);
      return;
    }
  }
  amqp_channel_close(conn_, sub->channel, AMQP_REPLY_SUCCESS);
  if (!rpc_ok("closing a subscription channel")) {
    lost(last_error_);
    return;
  }
  free_channels_.push_back(sub->channel);
  sub->open = false;
}

void Core::close_connection() {
  if (conn_) {
    if (connected_) amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn_);
    conn_ = nullptr;
  }
  connected_ = false;
}

/// The connection is gone: keep everything needed to carry on after a reconnect.
void Core::lost(const std::string& why) {
  if (!conn_) return;
  last_error_ = why;
  // Frames already read are useless now; skip connection.close (the socket is likely dead).
  amqp_destroy_connection(conn_);
  conn_ = nullptr;
  connected_ = false;
  std::cerr << "patchbay: rabbitmq transport '" << s_.name << "': connection lost (" << why << "); reconnecting\n";
  // Unconfirmed publishes go out again, first, in their order (at-least-once).
  while (!unconfirmed_.empty()) {
    if (unconfirmed_.back()) {
      unconfirmed_.back()->returned = false;
      outbox_.push_front(std::move(unconfirmed_.back()));
    }
    unconfirmed_.pop_back();
  }
  for (auto& [id, sub] : subs_) {
    sub->open = false;
    sub->drop_buffered();
  }
  by_channel_.clear();
  // Replies to requests in flight would go to a reply queue that no longer exists.
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (it->second.sent) {
      it->second.done.complete(make_error_code(errc::unavailable),
                               "rabbitmq: connection lost before the reply came: " + why);
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
  // Replies not yet sent cannot reach their requesters any more.
  std::erase_if(rpc_outbox_, [](const auto& p) { return p->kind == Publish::Kind::reply; });
}

void Core::process_commands() {
  std::uint64_t counter;
  [[maybe_unused]] auto n = ::read(wake_fd_, &counter, sizeof counter);
  std::vector<Command> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(commands_);
  }
  for (auto& c : batch) handle(c);
}

void Core::handle(Command& c) {
  switch (c.kind) {
    case Command::Kind::publish:
      if (c.publish->kind == Publish::Kind::topic)
        outbox_.push_back(std::move(c.publish));
      else
        rpc_outbox_.push_back(std::move(c.publish));
      return;
    case Command::Kind::ack:
    case Command::Kind::nack: {
      auto it = subs_.find(c.sub);
      if (it == subs_.end() || !connected_) return;  // closed or reconnected: the broker redelivers
      Sub& sub = *it->second;
      if (!sub.open || (c.tag >> kTagBits) != sub.generation) return;  // stale tag
      if (sub.outstanding) --sub.outstanding;
      const std::uint64_t tag = c.tag & kTagMask;
      int rc = c.kind == Command::Kind::ack ? amqp_basic_ack(conn_, sub.channel, tag, 0)
                                            : amqp_basic_nack(conn_, sub.channel, tag, 0, c.requeue ? 1 : 0);
      if (rc != AMQP_STATUS_OK) lost(absl::StrCat("sending an ack: ", amqp_error_string2(rc)));
      return;
    }
    case Command::Kind::call:
      c.call(true);
      return;
  }
}

bool Core::send_outbox() {
  // Topic publishes, keeping at most confirm_window unconfirmed.
  while (!outbox_.empty() && (!s_.confirms || unconfirmed_.size() < s_.confirm_window)) {
    auto& p = *outbox_.front();
    EncodedProperties enc;
    encode_properties(p.msg, p.persistent, enc);
    int rc = amqp_basic_publish(conn_, kPublishChannel, bytes_of(p.exchange), bytes_of(p.routing_key),
                                p.mandatory ? 1 : 0, 0, &enc.props, bytes_of(p.msg.payload.view()));
    if (rc != AMQP_STATUS_OK) {
      lost(absl::StrCat("publishing: ", amqp_error_string2(rc)));
      return false;
    }
    auto sent = std::move(outbox_.front());
    outbox_.pop_front();
    if (s_.confirms) {
      sent->seq = next_seq_++;
      unconfirmed_.push_back(std::move(sent));
    } else {
      if (sent->counted) buffered.fetch_sub(1, std::memory_order_relaxed);
      sent->done.complete(make_error_code(errc::ok));
    }
  }
  while (!rpc_outbox_.empty()) {
    auto p = std::move(rpc_outbox_.front());
    rpc_outbox_.pop_front();
    if (p->kind == Publish::Kind::request) {
      auto it = calls_.find(p->correlation_id);
      if (it == calls_.end()) continue;  // timed out while waiting for the connection
      // The broker drops a request nobody took before its deadline.
      auto left = std::chrono::duration_cast<milliseconds>(it->second.until - clock::now()).count();
      p->expiration = std::to_string(std::max<long long>(left, 1));
      it->second.sent = true;
    }
    EncodedProperties enc;
    encode_properties(p->msg, false, enc);
    enc.props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    enc.props.correlation_id = bytes_of(p->correlation_id);
    if (!p->reply_to.empty()) {
      enc.props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
      enc.props.reply_to = bytes_of(p->reply_to);
    }
    if (!p->expiration.empty()) {
      enc.props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
      enc.props.expiration = bytes_of(p->expiration);
    }
    int rc = amqp_basic_publish(conn_, kRpcChannel, amqp_empty_bytes, bytes_of(p->routing_key), p->mandatory ? 1 : 0, 0,
                                &enc.props, bytes_of(p->msg.payload.view()));
    if (rc != AMQP_STATUS_OK) {
      lost(absl::StrCat("publishing a request or reply: ", amqp_error_string2(rc)));
      return false;
    }
  }
  return true;
}

void Core::settle(std::uint64_t tag, bool multiple, bool ok) {
  auto finish = [&](std::unique_ptr<Publish>& p) {
    if (!p) return;
    if (!ok)
      p->done.complete(make_error_code(errc::unavailable), "rabbitmq: the broker refused the message (basic.nack)");
    else if (p->returned)
      p->done.complete(make_error_code(errc::no_responders), p->return_text);
    else
      p->done.complete(make_error_code(errc::ok));
    p.reset();
  };
  if (multiple) {
    for (auto& p : unconfirmed_) {
      if (p && p->seq > tag) break;
      finish(p);
    }
  } else if (!unconfirmed_.empty()) {
    // Sequence numbers are contiguous from the front's (settled entries stay as nullptr).
    std::uint64_t front_seq = 0;
    for (std::size_t i = 0; i < unconfirmed_.size(); ++i)
      if (unconfirmed_[i]) {
        front_seq = unconfirmed_[i]->seq - i;
        break;
      }
    if (front_seq && tag >= front_seq && tag - front_seq < unconfirmed_.size()) finish(unconfirmed_[tag - front_seq]);
  }
  while (!unconfirmed_.empty() && !unconfirmed_.front()) unconfirmed_.pop_front();
}

bool Core::handle_frame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD) return true;  // stray content of a closed channel
  const amqp_channel_t ch = frame.channel;
  switch (frame.payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD: {
      auto* d = static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded);
      const std::uint64_t tag = d->delivery_tag;
      const bool redelivered = d->redelivered != 0;
      std::string routing_key = str_of(d->routing_key);
      amqp_message_t message;
      amqp_rpc_reply_t r = amqp_read_message(conn_, ch, &message, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        lost(absl::StrCat("reading a delivery: ", describe_reply(r)));
        return false;
      }
      Incoming in;
      in.msg = decode_message(message.properties, message.body, std::move(routing_key));
      if (message.properties._flags & AMQP_BASIC_REPLY_TO_FLAG) in.reply_to = str_of(message.properties.reply_to);
      if (message.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        in.correlation_id = str_of(message.properties.correlation_id);
      amqp_destroy_message(&message);
      if (ch == kRpcChannel) {
        auto it = calls_.find(in.correlation_id);
        if (it != calls_.end()) {
          *it->second.reply = std::move(in.msg);
          it->second.done.complete(make_error_code(errc::ok));
          calls_.erase(it);
        }
        return true;
      }
      auto it = by_channel_.find(ch);
      if (it == by_channel_.end()) return true;  // a channel being closed: the broker requeues
      Sub& sub = *it->second;
      in.redelivered = redelivered;
      in.tag = pack_tag(sub.generation, tag);
      ++sub.outstanding;
      sub.push(std::move(in));
      return true;
    }
    case AMQP_BASIC_ACK_METHOD: {
      auto* a = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
      if (ch == kPublishChannel) settle(a->delivery_tag, a->multiple != 0, true);
      return true;
    }
    case AMQP_BASIC_NACK_METHOD: {
      auto* a = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
      if (ch == kPublishChannel) settle(a->delivery_tag, a->multiple != 0, false);
      return true;
    }
    case AMQP_BASIC_RETURN_METHOD: {
      auto* ret = static_cast<amqp_basic_return_t*>(frame.payload.method.decoded);
      std::string text = absl::StrCat(str_of(ret->reply_text), " (", ret->reply_code, ")");
      std::string exchange = str_of(ret->exchange), routing_key = str_of(ret->routing_key);
      amqp_message_t message;
      amqp_rpc_reply_t r = amqp_read_message(conn_, ch, &message, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        lost(absl::StrCat("reading a returned message: ", describe_reply(r)));
        return false;
      }
      std::string id =
          (message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? str_of(message.properties.message_id) : "";
      std::string corr =
          (message.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG) ? str_of(message.properties.correlation_id) : "";
      amqp_destroy_message(&message);
      if (ch == kRpcChannel) {
        auto it = calls_.find(corr);
        if (it != calls_.end()) {
          it->second.done.complete(make_error_code(errc::no_responders),
                                   absl::StrCat("rabbitmq: nobody serves '", routing_key, "'"));
          calls_.erase(it);
        }
        return true;
      }
      // basic.return precedes the basic.ack of the same message: mark it, fail it on the ack.
      for (auto& p : unconfirmed_) {
        if (p && !p->returned && p->msg.id == id) {
          p->returned = true;
          p->return_text = absl::StrCat("rabbitmq: no queue took the message on exchange '", exchange, "' with topic '",
                                        routing_key, "' (mandatory publish returned: ", text, ")");
          break;
        }
      }
      return true;
    }
    case AMQP_BASIC_CANCEL_METHOD: {
      // The broker cancelled a consumer (its queue was deleted): that subscription ends.
      auto it = by_channel_.find(ch);
      if (it != by_channel_.end()) it->second->end("the broker cancelled the consumer (queue deleted?)");
      return true;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      const std::string text = str_of(m->reply_text);
      const int code = m->reply_code;
      amqp_channel_close_ok_t ok{};
      if (amqp_send_method(conn_, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) {
        lost("answering channel.close");
        return false;
      }
      if (ch == kPublishChannel) {
        // The broker refused something it was sent: a message over its max_message_size is the
        // usual cause. Fail what it names, send the rest again on a fresh channel.
        std::size_t limit = 0;
        if (auto pos = text.find("max size "); pos != std::string::npos) {
          const char* b = text.data() + pos + 9;
          std::from_chars(b, text.data() + text.size(), limit);
        }
        bool failed_one = false;
        for (auto& p : unconfirmed_) {
          if (!p) continue;
          if (limit ? p->msg.payload.size() > limit : !failed_one) {
            p->done.complete(make_error_code(limit ? errc::payload_too_large : errc::remote_error),
                             absl::StrCat("rabbitmq: the broker refused a message of ", p->msg.payload.size(),
                                          " bytes: ", code, " ", text));
            p.reset();
            failed_one = true;
          }
        }
        while (!unconfirmed_.empty()) {
          if (unconfirmed_.back()) outbox_.push_front(std::move(unconfirmed_.back()));
          unconfirmed_.pop_back();
        }
        if (!open_publish_channel()) {
          lost(last_error_);
          return false;
        }
        return true;
      }
      if (ch == kRpcChannel) {
        lost(absl::StrCat("the request channel was closed: ", code, " ", text));
        return false;
      }
      auto it = by_channel_.find(ch);
      if (it != by_channel_.end()) {
        Sub* sub = it->second;
        by_channel_.erase(it);
        sub->open = false;
        free_channels_.push_back(ch);
        sub->end(absl::StrCat("the broker closed the subscription: ", code, " ", text));
      }
      return true;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
      std::string why = absl::StrCat("the broker closed the connection: ", m->reply_code, " ", str_of(m->reply_text));
      amqp_connection_close_ok_t ok{};
      amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      lost(why);
      return false;
    }
    default:
      return true;
  }
}

/// Reads and handles every frame available without blocking. False when the connection is lost.
bool Core::pump() {
  for (int handled = 0; handled < 1024; ++handled) {
    amqp_frame_t frame;
    timeval zero{0, 0};
    int rc = amqp_simple_wait_frame_noblock(conn_, &frame, &zero);
    if (rc == AMQP_STATUS_TIMEOUT) break;
    if (rc != AMQP_STATUS_OK) {
      lost(amqp_error_string2(rc));
      return false;
    }
    if (!handle_frame(frame)) return false;
  }
  amqp_maybe_release_buffers(conn_);
  return true;
}

void Core::fail_expired_calls() {
  if (calls_.empty()) return;
  const auto now = clock::now();
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (it->second.until <= now) {
      it->second.done.complete(make_error_code(errc::timed_out), "rabbitmq: no reply before the deadline");
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
}

/// stop(): true once every subscription has settled what it was given and its queue holds
/// nothing more for it (checked with a passive queue.declare, at most every 50 ms).
bool Core::subscriptions_drained() {
  if (!connected_) return true;  // nothing can be delivered now; durable queues keep the rest
  for (auto& [id, sub] : subs_) {
    if (!sub->open || sub->service) continue;
    if (sub->outstanding) return false;
    {
      std::lock_guard lock(sub->mutex);
      if (sub->closed) continue;
    }
  }
  const auto now = clock::now();
  if (now < next_drain_check_) return false;
  next_drain_check_ = now + 50ms;
  for (auto& [id, sub] : subs_) {
    if (!sub->open || sub->service) continue;
    {
      std::lock_guard lock(sub->mutex);
      if (sub->closed) continue;
    }
    auto* ok = amqp_queue_declare(conn_, sub->channel, bytes_of(sub->queue), 1, 0, 0, 0, amqp_empty_table);
    if (!ok) {
      rpc_ok("checking a subscription's queue");
      if (!channel_refused(sub->channel)) lost(last_error_);
      return true;
    }
    if (ok->message_count > 0) return false;
  }
  return true;
}

void Core::shutdown() {
  for (auto& [id, sub] : subs_) {
    sub->established.complete(make_error_code(errc::stopped), "the rabbitmq transport stopped");
    sub->end({});
  }
  subs_.clear();
  by_channel_.clear();
  close_connection();
  const auto stopped = make_error_code(errc::stopped);
  for (auto& p : outbox_) p->done.complete(stopped, "rabbitmq: stopped before the message was sent");
  for (auto& p : unconfirmed_)
    if (p) p->done.complete(stopped, "rabbitmq: stopped before the broker confirmed the message");
  outbox_.clear();
  unconfirmed_.clear();
  rpc_outbox_.clear();
  for (auto& [id, call] : calls_) call.done.complete(stopped, "rabbitmq: the transport stopped");
  calls_.clear();
  std::vector<Command> rest;
  {
    std::lock_guard lock(mutex_);
    exited_ = true;
    rest.swap(commands_);
  }
  for (auto& c : rest) reject(c);
  start_done_.complete(make_error_code(errc::stopped), "rabbitmq: stopped while connecting");
  stop_done_.complete(make_error_code(errc::ok));
}

void Core::run() {
  std::string error;
  bool fatal = false;
  milliseconds backoff = s_.reconnect_min;
  std::mt19937_64 rng(std::random_device{}());
  const auto started = clock::now();
  deadline retry_at = started;
  int failed_attempts = 0;

  for (;;) {
    process_commands();
    if (!connected_ && clock::now() >= retry_at && !(stop_requested_ && (start_done_ || outbox_.empty()))) {
      if (connect(error, fatal)) {
        if (failed_attempts)
          std::cerr << "patchbay: rabbitmq transport '" << s_.name << "': reconnected after " << failed_attempts
                    << " failed attempts\n";
        failed_attempts = 0;
        backoff = s_.reconnect_min;
        if (start_done_) start_done_.complete(make_error_code(errc::ok));
      } else if (start_done_ && (fatal || clock::now() - started >= s_.connect_timeout)) {
        // Start-up fails clearly: refused credentials at once (no retry storm), an unreachable
        // broker once connect_timeout has passed.
        start_done_.complete(make_error_code(errc::unavailable),
                             absl::StrCat("rabbitmq transport '", s_.name, "': ", error));
        stop_requested_ = true;
      } else {
        if (fatal) backoff = s_.reconnect_max;  // refused credentials after a reconnect: go slowly
        // Exponential backoff with jitter (between half and the whole of the current step).
        std::uniform_int_distribution<long long> jitter(backoff.count() / 2, backoff.count());
        retry_at = clock::now() + milliseconds(jitter(rng));
        if (start_done_) retry_at = std::min(retry_at, started + s_.connect_timeout);  // one last try at the deadline
        // One line per outage and then one per backoff doubling, not one per attempt.
        if (!start_done_ && backoff < s_.reconnect_max)
          std::cerr << "patchbay: rabbitmq transport '" << s_.name << "': " << error << "; retrying in "
                    << std::chrono::duration_cast<milliseconds>(retry_at - clock::now()).count() << " ms\n";
        ++failed_attempts;
        backoff = std::min(backoff * 2, s_.reconnect_max);
      }
    }
    if (connected_) {
      if (pump() && send_outbox()) pump();
      if (!connected_) retry_at = clock::now() + s_.reconnect_min / 2;
    }
    fail_expired_calls();

    if (stop_requested_) {
      const bool drained =
          outbox_.empty() && unconfirmed_.empty() && rpc_outbox_.empty() && (start_done_ || subscriptions_drained());
      if (drained || clock::now() >= drain_until_ || start_done_) {
        shutdown();
        return;
      }
    }

    // Sleep until the socket has data, a command arrives, a timer is due, or a heartbeat is due.
    if (connected_ && (amqp_frames_enqueued(conn_) || amqp_data_in_buffer(conn_))) continue;
    int timeout_ms = 200;
    if (s_.heartbeat_s > 0) timeout_ms = std::min(timeout_ms, s_.heartbeat_s * 250);
    if (!connected_)
      timeout_ms = static_cast<int>(std::clamp<long long>(
          std::chrono::duration_cast<milliseconds>(retry_at - clock::now()).count(), 0, timeout_ms));
    if (!calls_.empty()) timeout_ms = std::min(timeout_ms, 20);
    if (stop_requested_) timeout_ms = std::min(timeout_ms, 50);
    pollfd fds[2];
    fds[0].fd = wake_fd_;
    fds[0].events = POLLIN;
    int nfds = 1;
    if (connected_) {
      fds[1].fd = amqp_get_sockfd(conn_);
      fds[1].events = POLLIN;
      // With a full window and publishes waiting, nothing but the socket can make progress.
      nfds = 2;
    }
    ::poll(fds, nfds, timeout_ms);
  }
}

// --- the subscription stream ----------------------------------------------------------------

class Subscription final : public StreamSource<Delivery> {
 public:
  explicit Subscription(std::shared_ptr<Sub> sub) : sub_(std::move(sub)) {}
  ~Subscription() override { close(); }

  awaitable<std::optional<Delivery>> next() override {
    for (;;) {
      {
        std::lock_guard lock(sub_->mutex);
        if (!sub_->ready.empty()) {
          Incoming in = std::move(sub_->ready.front());
          sub_->ready.pop_front();
          co_return std::optional<Delivery>(Delivery(std::move(in.msg), Position(), in.redelivered, sub_, in.tag));
        }
        if (sub_->closed) co_return std::nullopt;
        sub_->waiting = true;
      }
      co_await sub_->bell.wait();
    }
  }

  void close() noexcept override {
    {
      std::lock_guard lock(sub_->mutex);
      if (sub_->closed && closed_by_us_) return;
      closed_by_us_ = true;
    }
    sub_->end({});
    if (auto core = sub_->core_.lock()) {
      const std::uint64_t id = sub_->id;
      try {
        Core* raw = core.get();
        core->run_on_thread([raw, id](bool alive) {
          if (alive) raw->remove_sub(id);
        });
      } catch (...) {
      }
    }
  }

 private:
  std::shared_ptr<Sub> sub_;
  bool closed_by_us_ = false;
};

// --- the transport --------------------------------------------------------------------------

std::string queue_name(const Settings& s, std::string_view kind, std::string_view topic, std::string_view suffix) {
  std::string out = s.exchange + ":";
  out.append(kind).append(":").append(topic);
  if (!suffix.empty()) out.append(":").append(suffix);
  return out;
}

awaitable<void> handle_request(std::shared_ptr<Core> core, std::shared_ptr<Sub> sub,
                               std::shared_ptr<ServiceHandler> handler, Incoming in) {
  const std::uint64_t tag = in.tag;
  const std::string reply_to = std::move(in.reply_to);
  const std::string correlation_id = std::move(in.correlation_id);
  Message reply;
  try {
    reply = co_await (*handler)(std::move(in.msg));
  } catch (const std::exception& e) {
    reply = Message();
    reply.headers.add("patchbay-error", e.what()[0] ? e.what() : "handler failed");
  } catch (...) {
    reply = Message();
    reply.headers.add("patchbay-error", "handler failed");
  }
  if (reply.id.empty()) reply.id = Message::generate_id();
  if (!reply_to.empty()) {
    auto p = std::make_unique<Publish>();
    p->kind = Publish::Kind::reply;
    p->routing_key = reply_to;
    p->correlation_id = correlation_id;
    p->msg = std::move(reply);
    Command c;
    c.kind = Command::Kind::publish;
    c.publish = std::move(p);
    core->submit(std::move(c));
  }
  sub->ack(tag);  // after the reply was handed over: a server that dies first gets the request again
}

class RabbitTransport final : public Transport {
 public:
  RabbitTransport(executor ex, Settings s) : ex_(ex), core_(std::make_shared<Core>(ex, std::move(s))) {}
  ~RabbitTransport() override {
    // Without stop(): end the thread anyway (no drain).
    if (!stopped_.exchange(true)) {
      core_->stopping = true;
      core_->request_stop(Completion());
    }
    core_->join();
  }

  std::string_view type() const noexcept override { return "rabbitmq"; }

  Features features() const override {
    const auto& s = core_->settings();
    Features f;
    f.publish_subscribe = true;
    f.request_reply = true;
    f.consumer_groups = true;
    f.at_least_once = true;
    f.ordered = true;  // per publisher, on one connection; see README for reconnects and requeues
    f.headers = true;
    f.flow_control = true;
    f.durable = s.persistent && s.confirms;
    f.max_payload = s.max_payload;
    return f;
  }

 protected:
  awaitable<void> do_start() override {
    auto start = [this](Completion c) { core_->start(std::move(c)); };
    co_await await_io(start);
  }

  awaitable<void> do_stop() override {
    if (stop_started_.exchange(true)) {
      co_return;
    }
    core_->stopping = true;
    Core* core = core_.get();
    auto stop = [core](Completion c) { core->request_stop(std::move(c)); };
    try {
      co_await await_io(stop);
    } catch (const boost::system::system_error&) {
    }
    stopped_ = true;
    core_->join();
  }

  awaitable<void> do_publish(Message msg) override {
    if (core_->stopping.load()) throw_error(errc::stopped, "rabbitmq transport stopped");
    const auto& s = core_->settings();
    if (s.max_payload && msg.payload.size() > s.max_payload)
      throw_error(errc::payload_too_large, absl::StrCat("rabbitmq: a payload of ", msg.payload.size(),
                                                        " bytes exceeds max_payload (", s.max_payload, ")"));
    msg.stamp();
    auto p = std::make_unique<Publish>();
    p->kind = Publish::Kind::topic;
    p->exchange = s.exchange;
    p->routing_key = msg.topic;
    p->mandatory = s.mandatory;
    p->persistent = s.persistent;
    p->msg = std::move(msg);
    if (!s.confirms && core_->buffered.fetch_add(1, std::memory_order_relaxed) < s.publish_buffer) {
      // Without confirms a publish is accepted once queued for the socket (bounded).
      p->counted = true;
      Command c;
      c.kind = Command::Kind::publish;
      c.publish = std::move(p);
      core_->submit(std::move(c));
      co_return;
    }
    if (!s.confirms) p->counted = true;
    Publish* raw = p.release();
    Core* core = core_.get();
    auto start = [core, raw](Completion c) {
      raw->done = std::move(c);
      Command cmd;
      cmd.kind = Command::Kind::publish;
      cmd.publish.reset(raw);
      core->submit(std::move(cmd));
    };
    co_await await_io(start);
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    if (core_->stopping.load()) throw_error(errc::stopped, "rabbitmq transport stopped");
    if (options.from().where() != Position::kind::latest)
      throw_error(errc::not_supported, "rabbitmq: subscriptions start at the latest message (no replay)");
    const auto& s = core_->settings();
    auto ex = co_await asio::this_coro::executor;
    auto sub = std::make_shared<Sub>(core_, ex);
    sub->id = core_->next_sub_id();
    sub->topic = topic;
    sub->fanout = options.group().empty();
    sub->queue = sub->fanout ? queue_name(s, "sub", topic, Message::generate_id())
                             : queue_name(s, "group", topic, options.group());
    sub->prefetch = static_cast<std::uint16_t>(
        options.max_in_flight() ? std::min<std::size_t>(options.max_in_flight(), 65535) : s.prefetch);
    co_await establish(sub);
    co_return Stream<Delivery>(std::make_shared<Subscription>(sub));
  }

  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    if (core_->stopping.load()) throw_error(errc::stopped, "rabbitmq transport stopped");
    const auto& s = core_->settings();
    if (s.max_payload && msg.payload.size() > s.max_payload)
      throw_error(errc::payload_too_large, absl::StrCat("rabbitmq: a payload of ", msg.payload.size(),
                                                        " bytes exceeds max_payload (", s.max_payload, ")"));
    msg.stamp();
    auto reply = std::make_shared<Message>();
    auto p = std::make_unique<Publish>();
    p->kind = Publish::Kind::request;
    p->routing_key = queue_name(s, "svc", service, "");
    p->mandatory = true;
    p->reply_to = "amq.rabbitmq.reply-to";
    p->correlation_id = Message::generate_id();
    p->msg = std::move(msg);
    Core* core = core_.get();
    Publish* raw = p.release();
    auto start = [core, raw, reply, until](Completion c) {
      auto owned = std::shared_ptr<Publish>(raw);
      core->run_on_thread([core, owned, reply, until, c = std::make_shared<Completion>(std::move(c))](bool alive) {
        if (!alive) {
          c->complete(make_error_code(errc::stopped), "the rabbitmq transport has stopped");
          return;
        }
        Call call;
        call.done = std::move(*c);
        call.reply = reply;
        call.until = until;
        auto p = std::make_unique<Publish>(std::move(*owned));
        core->add_request(std::move(p), std::move(call));
      });
    };
    co_await await_io(start);
    if (auto err = reply->headers.get("patchbay-error"))
      throw_error(errc::remote_error, "rabbitmq: the service failed: " + std::string(*err));
    co_return std::move(*reply);
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    if (core_->stopping.load()) throw_error(errc::stopped, "rabbitmq transport stopped");
    const auto& s = core_->settings();
    auto ex = co_await asio::this_coro::executor;
    auto sub = std::make_shared<Sub>(core_, ex);
    sub->id = core_->next_sub_id();
    sub->topic = service;
    sub->service = true;
    sub->queue = queue_name(s, "svc", service, "");
    sub->prefetch = s.serve_concurrency;
    co_await establish(sub);
    Subscription stream(sub);  // closes (cancels the consumer) however serve() ends
    auto shared_handler = std::make_shared<ServiceHandler>(std::move(handler));
    for (;;) {
      std::optional<Incoming> in;
      {
        std::lock_guard lock(sub->mutex);
        if (!sub->ready.empty()) {
          in.emplace(std::move(sub->ready.front()));
          sub->ready.pop_front();
        } else if (sub->closed) {
          co_return;
        } else {
          sub->waiting = true;
        }
      }
      if (in) {
        asio::co_spawn(asio::make_strand(ex_), handle_request(core_, sub, shared_handler, std::move(*in)),
                       asio::detached);
        continue;
      }
      co_await sub->bell.wait();  // cancellation ends serve() here
    }
  }

 private:
  awaitable<void> establish(const std::shared_ptr<Sub>& sub) {
    Core* core = core_.get();
    Sub* raw = sub.get();
    auto keep = sub;
    auto start = [core, raw, keep](Completion c) {
      raw->established = std::move(c);
      core->run_on_thread([core, keep](bool alive) {
        if (alive)
          core->add_sub(keep);
        else
          keep->established.complete(make_error_code(errc::stopped), "the rabbitmq transport has stopped");
      });
    };
    co_await await_io(start);
  }

  executor ex_;
  std::shared_ptr<Core> core_;
  std::atomic<bool> stop_started_{false};
  std::atomic<bool> stopped_{false};
};

// --- the factory ----------------------------------------------------------------------------

#define PB_TRY_ASSIGN(var, expr)      \
  do {                                \
    auto _v = (expr);                 \
    if (!_v.ok()) return _v.status(); \
    var = *_v;                        \
  } while (0)

absl::StatusOr<std::shared_ptr<Transport>> make_rabbitmq(const TransportContext& ctx) {
  const auto& n = ctx.settings;
  Settings s;
  s.name = ctx.name;
  PB_TRY_ASSIGN(s.url, n.get_string("url", "amqp://guest:guest@127.0.0.1:5672/"));
  {
    std::string buf = s.url;
    amqp_connection_info info;
    amqp_default_connection_info(&info);
    if (amqp_parse_url(buf.data(), &info) != AMQP_STATUS_OK)
      return config::error_at(n.mark_of("url"), ctx.settings.context() + ": url '" + s.url +
                                                    "' is not an AMQP URL (amqp://user:password@host:port/vhost)");
    if (info.ssl)
      return config::error_at(n.mark_of("url"), ctx.settings.context() + ": amqps:// (TLS) is not supported yet");
    s.host = info.host;
    s.port = info.port;
    s.user = info.user;
    s.password = info.password;
    s.vhost = info.vhost;
    if (s.host == "localhost") s.host = "127.0.0.1";
    if (s.vhost.empty()) s.vhost = "/";  // "amqp://host:port/" names the default vhost, as most clients read it
  }
  PB_TRY_ASSIGN(s.exchange, n.get_string("exchange", s.exchange));
  if (s.exchange.empty())
    return config::error_at(n.mark_of("exchange"), ctx.settings.context() + ": exchange may not be empty");
  PB_TRY_ASSIGN(s.persistent, n.get_bool("persistent", s.persistent));
  PB_TRY_ASSIGN(s.confirms, n.get_bool("confirms", s.confirms));
  PB_TRY_ASSIGN(s.mandatory, n.get_bool("mandatory", s.mandatory));
  std::int64_t v = 0;
  PB_TRY_ASSIGN(v, n.get_int("confirm_window", static_cast<std::int64_t>(s.confirm_window), 1, 1'000'000));
  s.confirm_window = static_cast<std::size_t>(v);
  PB_TRY_ASSIGN(v, n.get_int("publish_buffer", static_cast<std::int64_t>(s.publish_buffer), 1, 10'000'000));
  s.publish_buffer = static_cast<std::size_t>(v);
  PB_TRY_ASSIGN(v, n.get_int("prefetch", s.prefetch, 1, 65535));
  s.prefetch = static_cast<std::uint16_t>(v);
  PB_TRY_ASSIGN(v, n.get_int("serve_concurrency", s.serve_concurrency, 1, 65535));
  s.serve_concurrency = static_cast<std::uint16_t>(v);
  PB_TRY_ASSIGN(v, n.get_int("frame_max", s.frame_max, 4096, 1 << 24));
  s.frame_max = static_cast<int>(v);
  PB_TRY_ASSIGN(v, n.get_int("max_payload", static_cast<std::int64_t>(s.max_payload), 0));
  s.max_payload = static_cast<std::size_t>(v);
  milliseconds hb{};
  PB_TRY_ASSIGN(hb, n.get_duration("heartbeat", milliseconds(10000)));
  s.heartbeat_s = static_cast<int>((hb.count() + 999) / 1000);
  PB_TRY_ASSIGN(s.connect_timeout, n.get_duration("connect_timeout", s.connect_timeout));
  PB_TRY_ASSIGN(s.reconnect_min, n.get_duration("reconnect_min_backoff", s.reconnect_min));
  PB_TRY_ASSIGN(s.reconnect_max, n.get_duration("reconnect_max_backoff", s.reconnect_max));
  PB_TRY_ASSIGN(s.subscriber_queue_expiry, n.get_duration("subscriber_queue_expiry", s.subscriber_queue_expiry));
  PB_TRY_ASSIGN(s.drain_timeout, n.get_duration("drain_timeout", s.drain_timeout));
  PB_TRY_ASSIGN(s.rpc_timeout, n.get_duration("rpc_timeout", s.rpc_timeout));
  if (s.reconnect_min.count() <= 0 || s.reconnect_max < s.reconnect_min)
    return config::error_at(n.mark_of("reconnect_max_backoff"),
                            ctx.settings.context() + ": need 0 < reconnect_min_backoff <= reconnect_max_backoff");
  if (s.subscriber_queue_expiry < milliseconds(1000) || s.subscriber_queue_expiry.count() > INT32_MAX)
    return config::error_at(n.mark_of("subscriber_queue_expiry"),
                            ctx.settings.context() + ": subscriber_queue_expiry must be between 1s and 24d");
  return std::make_shared<RabbitTransport>(ctx.ex, std::move(s));
}

absl::Status register_rabbitmq(Registry& registry) { return registry.add_transport("rabbitmq", make_rabbitmq); }

}  // namespace

absl::Status register_transport(Registry& registry) { return register_rabbitmq(registry); }

}  // namespace patchbay::rabbitmq

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::rabbitmq::register_rabbitmq)
#endif
