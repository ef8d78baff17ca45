// EventSource: the browser's reconnecting server-sent events client, on the HTTP client core
// (see event_source.hpp for the behaviour).
//
// next() does all the work in the calling coroutine, on its executor: it waits out a
// reconnection delay, opens the stream, reads and parses it. Each of those waits runs as a
// co_spawned operation behind guarded(), which connects it to two ways of stopping:
//   * the caller's cancellation (a timeout around next()), and
//   * close() from any thread, which posts the same abort to the caller's executor.
// An abort emits `cancel` (bound to the operation) and closes the response stream, so it ends
// the wait whether or not the client core honours per-operation cancellation for that call.
// Everything but the `mutex`-guarded members is touched only on the caller's executor.
#include <patchbay/http/event_source.hpp>

#include <patchbay/error.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>

namespace patchbay::http {
namespace {

using use_awaitable_t = asio::use_awaitable_t<executor>;
constexpr use_awaitable_t use_awaitable;

// A `retry:` beyond a year means "practically never"; capping it keeps deadlines in range.
constexpr std::uint64_t max_retry_ms = 365ull * 24 * 3600 * 1000;

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

// The MIME type essence is text/event-stream (case-insensitive, parameters ignored).
bool is_event_stream(std::string_view content_type) {
  const std::string_view essence = trim(content_type.substr(0, content_type.find(';')));
  constexpr std::string_view wanted = "text/event-stream";
  return std::equal(essence.begin(), essence.end(), wanted.begin(), wanted.end(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

std::string with_envelope_query(const std::string& url, bool envelope) {
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https"))
    throw_error(errc::bad_message, "EventSource: not an absolute http(s) URL: " + url);
  if (!envelope) return url;
  boost::urls::url u(*parsed);
  u.params().set("envelope", "1");
  return std::string(u.buffer());
}

awaitable<bool> sleep_until(deadline when) {
  asio::steady_timer timer(co_await asio::this_coro::executor, when);
  co_await timer.async_wait(use_awaitable);
  co_return true;
}

awaitable<std::string_view> read_from(std::shared_ptr<ResponseStream> stream) {
  co_return co_await stream->read_some();
}

duration jittered(duration d) {
  thread_local std::minstd_rand random{std::random_device{}()};
  const auto tenth = std::max<duration::rep>(d.count() / 10, 0);
  return d + duration(std::uniform_int_distribution<duration::rep>(0, tenth)(random));
}

}  // namespace

struct EventSource::State : std::enable_shared_from_this<State> {
  State(Client& c, std::string u, EventSourceOptions o)
      : client(c), url(with_envelope_query(u, o.envelope)), options(std::move(o)),
        reconnection_time(options.reconnect_delay) {
    parser.set_last_event_id(options.last_event_id);
    parser.on_event = [this](sse::Event&& e) {
      ready.emplace_back(std::move(e), envelope);
      delivered = true;
      failures = 0;
    };
    parser.on_retry = [this](std::uint64_t ms) {
      reconnection_time = std::chrono::milliseconds(std::min(ms, max_retry_ms));
    };
  }

  Client& client;
  const std::string url;  // with ?envelope=1 when asked for
  const EventSourceOptions options;

  // On the caller's executor only.
  sse::Parser parser;
  std::deque<ReceivedEvent> ready;  // parsed, not yet returned by next()
  duration reconnection_time;
  unsigned failures = 0;             // consecutive attempts that delivered no event
  bool delivered = false;            // the current connection delivered an event
  std::optional<deadline> reconnect_at;
  bool envelope = false;
  std::string failure;               // set once the source failed for good
  asio::cancellation_signal cancel;  // bound to the operation in flight
  bool in_flight = false;
  bool reading = false;
  bool caller_cancelled = false;

  std::atomic<std::uint64_t> connections{0};

  std::mutex mutex;
  bool closed = false;                      // guarded by mutex
  bool next_pending = false;                // guarded by mutex
  std::optional<executor> caller;           // guarded by mutex: where next() runs
  std::shared_ptr<ResponseStream> stream;   // guarded by mutex (set and reset on the caller's executor)

  bool is_closed() {
    std::lock_guard lock(mutex);
    return closed;
  }

  // On the caller's executor: ends the operation in flight, if any.
  void abort() {
    if (!in_flight) return;
    cancel.emit(asio::cancellation_type::terminal);
    if (reading) {
      std::shared_ptr<ResponseStream> s;
      {
        std::lock_guard lock(mutex);
        s = stream;
      }
      if (s) s->close();
    }
  }

  // Awaits `op`, spawned on `ex` (the caller's executor) and bound to `cancel`, with the
  // caller's cancellation slot turned into abort(). Not a coroutine itself: g++ 12 would
  // byte-copy the capturing lambdas of a co_await expression into the frame (see
  // docs/architecture.md), so the state travels as initiation arguments instead.
  template <typename T>
  awaitable<T> guarded(executor ex, awaitable<T> op) {
    caller_cancelled = false;
    in_flight = true;
    return asio::async_initiate<const use_awaitable_t&, void(std::exception_ptr, T)>(
        [](auto handler, std::shared_ptr<State> self, executor ex, awaitable<T> op) {
          auto caller_slot = asio::get_associated_cancellation_slot(handler);
          if (caller_slot.is_connected()) {
            caller_slot.assign([self](asio::cancellation_type) {
              self->caller_cancelled = true;
              self->abort();
            });
          }
          auto slot = self->cancel.slot();
          asio::co_spawn(
              ex, std::move(op),
              asio::bind_cancellation_slot(
                  slot, [self, ex, caller_slot, handler = std::move(handler)](std::exception_ptr e, T value) mutable {
                    self->in_flight = false;
                    if (caller_slot.is_connected()) caller_slot.clear();
                    // Resume the caller only once the spawned coroutine has ended: its
                    // cancellation handler stays in `cancel`'s slot until the caller's next
                    // operation replaces it.
                    asio::post(ex, [handler = std::move(handler), e, value = std::move(value)]() mutable {
                      std::move(handler)(e, std::move(value));
                    });
                  }));
        },
        use_awaitable, shared_from_this(), std::move(ex), std::move(op));
  }

  // After a failed operation: close() and the caller's cancellation end next(); anything else
  // is a network problem that the caller does not see.
  void rethrow_if_stopped() {
    if (is_closed()) throw_error(errc::closed, "EventSource closed");
    if (caller_cancelled) {
      caller_cancelled = false;
      throw boost::system::system_error(asio::error::operation_aborted);
    }
  }

  void set_stream(std::shared_ptr<ResponseStream> s) {
    std::lock_guard lock(mutex);
    stream = std::move(s);
  }

  // Closes the connection in use, if any, and forgets its partial event.
  void drop_connection() {
    std::shared_ptr<ResponseStream> s;
    {
      std::lock_guard lock(mutex);
      s = std::move(stream);
    }
    if (s) s->close();
    parser.finish();
    reading = false;
  }

  // The connection ended or could not be made: plan the next attempt.
  void schedule_reconnect() {
    duration delay = reconnection_time;
    if (delivered) {
      failures = 0;
    } else {
      // From at least 1 ms, so that `retry: 0` cannot make failing attempts spin.
      const duration base = std::max<duration>(reconnection_time, std::chrono::milliseconds(1));
      const double grown = std::chrono::duration<double>(base).count() *
                           std::pow(options.backoff_factor, std::min(failures, 64u));
      const double cap = std::chrono::duration<double>(std::max(options.max_backoff, reconnection_time)).count();
      delay = std::chrono::duration_cast<duration>(std::chrono::duration<double>(std::min(grown, cap)));
      ++failures;
    }
    delivered = false;
    reconnect_at = clock::now() + jittered(delay);
  }

  [[noreturn]] void fail(std::string why) {
    failure = "EventSource " + url + ": " + why;
    std::shared_ptr<ResponseStream> s;
    {
      std::lock_guard lock(mutex);
      s = std::move(stream);
    }
    if (s) s->close();
    throw_error(errc::unavailable, failure);
  }

  Request make_request() const {
    Request req(bhttp::verb::get, "/", 11);
    req.set(bhttp::field::accept, "text/event-stream");
    req.set(bhttp::field::cache_control, "no-cache");
    if (!parser.last_event_id().empty()) req.set("Last-Event-ID", parser.last_event_id());
    std::set<std::string, std::less<>> replaced;
    for (const auto& [name, value] : options.headers) {
      if (replaced.insert(name).second) req.erase(name);
      req.insert(name, value);
    }
    return req;
  }

  awaitable<void> connect(executor ex) {
    if (reconnect_at && *reconnect_at > clock::now()) {
      try {
        co_await guarded(ex, sleep_until(*reconnect_at));
      } catch (const boost::system::system_error&) {
        rethrow_if_stopped();
        throw;
      }
    }
    if (is_closed()) co_return;

    std::unique_ptr<ResponseStream> opened;
    Request req = make_request();
    try {
      opened = co_await guarded(ex, client.open(url, std::move(req)));
    } catch (const boost::system::system_error&) {
      rethrow_if_stopped();
      schedule_reconnect();
      co_return;
    }
    std::shared_ptr<ResponseStream> s(std::move(opened));
    set_stream(s);
    reconnect_at.reset();

    if (s->status() != 200) fail("the server answered HTTP " + std::to_string(s->status()) + " (expected 200)");
    const auto content_type = s->head()[bhttp::field::content_type];
    if (!is_event_stream({content_type.data(), content_type.size()}))
      fail("Content-Type \"" + std::string(content_type.data(), content_type.size()) + "\" is not text/event-stream");

    const auto flag = s->head()["X-Patchbay-Envelope"];
    envelope = options.envelope && std::string_view(flag.data(), flag.size()) == "1";
    parser.reset_stream();
    delivered = false;
    ++connections;
  }

  awaitable<void> read(executor ex) {
    std::shared_ptr<ResponseStream> s;
    {
      std::lock_guard lock(mutex);
      s = stream;
    }
    std::string_view data;
    reading = true;
    try {
      data = co_await guarded(ex, read_from(s));
    } catch (const boost::system::system_error&) {
      // Also when the caller cancelled: the read may have been cut anywhere, so the next call
      // reconnects (at once; it is no failure of the server's).
      drop_connection();
      rethrow_if_stopped();
      schedule_reconnect();
      co_return;
    }
    reading = false;
    if (data.empty()) {  // the server ended the stream
      drop_connection();
      schedule_reconnect();
      co_return;
    }
    parser.feed(data);
  }
};

EventSource::EventSource(Client& client, std::string url, EventSourceOptions options)
    : state_(std::make_shared<State>(client, std::move(url), std::move(options))) {}

EventSource::~EventSource() { close(); }

/// A call in progress (next() or open()): close() aborts it on `caller`. Releasing it on
/// destruction also covers a coroutine destroyed while suspended.
class EventSource::PendingCall {
 public:
  PendingCall(State& st, const executor& ex) : st_(st) {
    std::lock_guard lock(st_.mutex);
    if (st_.closed) throw_error(errc::closed, "EventSource closed");
    st_.caller = ex;
    st_.next_pending = true;
  }
  ~PendingCall() {
    std::lock_guard lock(st_.mutex);
    st_.next_pending = false;
  }
  PendingCall(const PendingCall&) = delete;
  PendingCall& operator=(const PendingCall&) = delete;

  /// Throws once the source was closed or has failed.
  void check() const {
    if (st_.is_closed()) throw_error(errc::closed, "EventSource closed");
    if (!st_.failure.empty()) throw_error(errc::unavailable, st_.failure);
  }
  bool connected() const {
    std::lock_guard lock(st_.mutex);
    return st_.stream != nullptr;
  }

 private:
  State& st_;
};

awaitable<ReceivedEvent> EventSource::next() {
  auto st = state_;
  const executor ex = co_await asio::this_coro::executor;
  const PendingCall call(*st, ex);
  for (;;) {
    call.check();
    if (!st->ready.empty()) {
      ReceivedEvent event = std::move(st->ready.front());
      st->ready.pop_front();
      co_return event;
    }
    if (call.connected())
      co_await st->read(ex);
    else
      co_await st->connect(ex);
  }
}

awaitable<void> EventSource::open() {
  auto st = state_;
  const executor ex = co_await asio::this_coro::executor;
  const PendingCall call(*st, ex);
  for (;;) {
    call.check();
    if (call.connected()) co_return;
    co_await st->connect(ex);
  }
}

void EventSource::close() noexcept {
  std::shared_ptr<ResponseStream> stream;
  std::optional<executor> caller;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->closed) return;
    state_->closed = true;
    stream = state_->stream;
    if (state_->next_pending) caller = state_->caller;
  }
  if (stream) stream->close();
  if (caller) asio::post(*caller, [st = state_] { st->abort(); });
}

const std::string& EventSource::last_event_id() const noexcept { return state_->parser.last_event_id(); }

bool EventSource::envelope() const noexcept { return state_->envelope; }

std::uint64_t EventSource::connections() const noexcept { return state_->connections; }

duration EventSource::reconnection_time() const noexcept { return state_->reconnection_time; }

}  // namespace patchbay::http
