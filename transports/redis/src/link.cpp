// Link: one self-healing, pipelined connection to a Redis server (see link.hpp).
#include "link.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <cstdio>
#include <vector>

namespace patchbay::redis {
namespace {

using tcp = asio::ip::tcp;
constexpr std::size_t kMaxBatchBytes = 1u << 20;
constexpr std::size_t kMaxBatchPieces = 1024;
constexpr std::size_t kReadBuffer = 64 * 1024;

[[noreturn]] void fail(errc e, const std::string& what) { throw boost::system::system_error(make_error_code(e), what); }

/// The message of a system_error without the ": <code message> [category:n]" Boost appends.
std::string text_of(const boost::system::system_error& e) {
  std::string what = e.what();
  const std::string suffix = ": " + e.code().message();
  if (auto at = what.rfind(suffix); at != std::string::npos && at > 0) what.resize(at);
  return what;
}

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

Link::Link(executor io, Endpoint endpoint, std::string role, bool subscriber)
    : strand_(asio::make_strand(io)), endpoint_(std::move(endpoint)), role_(std::move(role)),
      subscriber_(subscriber), writer_bell_(strand_) {}

Link::~Link() = default;

void Link::start() {
  if (started_.exchange(true)) return;
  asio::co_spawn(strand_, supervise(), asio::bind_cancellation_slot(cancel_.slot(), asio::detached));
}

std::size_t Link::outstanding() const {
  std::lock_guard lock(mutex_);
  return queued_.size() + inflight_.size();
}

std::string Link::unavailable_text() const {
  return "redis: no connection to " + endpoint_.address() + " (" + role_ + ")" +
         (last_error_.empty() ? std::string() : ": " + last_error_);
}

awaitable<void> Link::wait_connected() {
  // A little longer than one attempt may take, so that the attempt's own error is reported.
  const auto until = clock::now() + endpoint_.connect_timeout + std::chrono::milliseconds(500);
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (closed_) fail(errc::stopped, "redis: " + role_ + " stopped before it connected");
      if (generation_.load() > 0) co_return;
      if (fatal_)
        fail(errc::unavailable, last_error_.rfind("redis: ", 0) == 0 ? last_error_
                                                                     : "redis: " + endpoint_.address() + ": " + last_error_);
      if (clock::now() >= until)
        fail(errc::unavailable, "redis: cannot connect to " + endpoint_.address() + " within " +
                                    ms(endpoint_.connect_timeout) + " (connect_timeout)" +
                                    (last_error_.empty() ? std::string() : ": " + last_error_));
    }
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::use_awaitable_t<executor>{});
  }
}

void Link::enqueue(Pending p, bool front) {
  bool ring = false;
  {
    std::unique_lock lock(mutex_);
    if (!closed_) {
      if (front)
        queued_.push_front(std::move(p));
      else
        queued_.push_back(std::move(p));
      ring = writer_waiting_;
      writer_waiting_ = false;
    } else {
      lock.unlock();
      Reply r;
      r.type = Reply::kind::error;
      r.str = "redis: " + role_ + " is closed";
      complete(p, make_error_code(close_reason_), std::move(r));
      return;
    }
  }
  if (ring) writer_bell_.ring();
}

void Link::complete(Pending& p, boost::system::error_code ec, Reply reply) {
  if (!p.handler) return;
  asio::post(p.ex, [h = std::move(p.handler), ec, r = std::move(reply)]() mutable { h(ec, std::move(r)); });
}

awaitable<Reply> Link::call_raw(Command cmd, bool retry) {
  const auto until = clock::now() + endpoint_.command_timeout;
  // Built before the co_await (GCC 12: see docs/architecture.md).
  auto initiate = [this, &cmd, retry, until](auto handler) {
    executor ex = asio::get_associated_executor(handler, executor(strand_));
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    Handler h = [shared](boost::system::error_code ec, Reply r) { std::move(*shared)(ec, std::move(r)); };
    enqueue(Pending{std::move(cmd), std::move(h), std::move(ex), retry, until}, false);
  };
  auto token = asio::as_tuple(asio::use_awaitable_t<executor>{});
  auto [ec, reply] =
      co_await asio::async_initiate<decltype(token), void(boost::system::error_code, Reply)>(initiate, token);
  if (ec) throw boost::system::system_error(ec, reply.str);
  co_return std::move(reply);
}

awaitable<Reply> Link::call(Command cmd, bool retry) {
  const std::string name = cmd.name();
  Reply r = co_await call_raw(std::move(cmd), retry);
  if (r.is_error()) fail(errc::remote_error, "redis: " + name + " failed: " + r.str);
  co_return r;
}

void Link::post(Command cmd, bool retry, executor ex, std::function<void(boost::system::error_code, Reply)> handler) {
  enqueue(Pending{std::move(cmd), std::move(handler), std::move(ex), retry, clock::now() + endpoint_.command_timeout}, false);
}

void Link::send_first(Command cmd, bool retry, executor ex,
                      std::function<void(boost::system::error_code, Reply)> handler) {
  enqueue(Pending{std::move(cmd), std::move(handler), std::move(ex), retry, clock::now() + endpoint_.command_timeout}, true);
}

void Link::close(errc why) {
  std::deque<Pending> failed;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    close_reason_ = why;
    failed = std::move(queued_);
    for (auto& p : inflight_) failed.push_back(std::move(p));
    queued_.clear();
    inflight_.clear();
  }
  for (auto& p : failed) {
    Reply r;
    r.type = Reply::kind::error;
    r.str = "redis: " + role_ + " closed before " + p.cmd.name() + " completed";
    complete(p, make_error_code(why), std::move(r));
  }
  asio::post(strand_, [self = shared_from_this()] { self->cancel_.emit(asio::cancellation_type::all); });
}

void Link::fail_expired(clock::time_point now) {
  std::vector<Pending> expired;
  std::string text;
  {
    std::lock_guard lock(mutex_);
    for (auto it = queued_.begin(); it != queued_.end();) {
      if (it->until <= now) {
        expired.push_back(std::move(*it));
        it = queued_.erase(it);
      } else {
        ++it;
      }
    }
    if (!expired.empty()) text = unavailable_text();
  }
  for (auto& p : expired) {
    Reply r;
    r.type = Reply::kind::error;
    r.str = text + " (" + p.cmd.name() + " waited " + ms(endpoint_.command_timeout) + ", the command_timeout)";
    complete(p, make_error_code(errc::unavailable), std::move(r));
  }
}

awaitable<void> Link::supervise() {
  auto self = shared_from_this();
  asio::steady_timer backoff(strand_);
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (closed_) break;
    }
    fail_expired(clock::now());
    tcp::socket socket(strand_);
    std::string what;
    attempt_fatal_ = false;
    try {
      co_await connect(socket);
    } catch (const boost::system::system_error& e) {
      what = text_of(e);
    } catch (const std::exception& e) {
      what = e.what();
    }
    if (!what.empty()) {
      int attempts = 0;
      {
        std::lock_guard lock(mutex_);
        if (closed_) break;
        last_error_ = what;
        fatal_ = attempt_fatal_;  // published together with its error text
        attempt_fatal_ = false;
        attempts = ++attempts_;
      }
      fail_expired(clock::now());
      // The first retry comes at once, then reconnect_min doubling up to reconnect_max.
      auto delay = std::chrono::milliseconds(0);
      if (attempts > 1)
        delay = std::min(endpoint_.reconnect_max,
                         std::chrono::milliseconds(endpoint_.reconnect_min.count() << std::min(attempts - 2, 20)));
      backoff.expires_after(delay);
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable_t<executor>{}));
      continue;
    }

    {
      std::lock_guard lock(mutex_);
      attempts_ = 0;
      fatal_ = false;
      last_error_.clear();
    }
    const auto generation = ++generation_;
    connected_ = true;
    if (generation > 1) std::fprintf(stderr, "patchbay redis: %s reconnected to %s\n", role_.c_str(), endpoint_.address().c_str());
    if (on_connected) on_connected(generation);
    {
      // Reader and writer until the first of them fails (or close() cancels both); the other
      // one is cancelled. (Not `||`: that waits for one to *succeed*.)
      using namespace asio::experimental;
      auto [order, reader_error, writer_error] =
          co_await make_parallel_group(asio::co_spawn(strand_, reader(socket), asio::deferred),
                                       asio::co_spawn(strand_, writer(socket), asio::deferred))
              .async_wait(wait_for_one(), asio::use_awaitable_t<executor>{});
      std::exception_ptr first = order[0] == 0 ? reader_error : writer_error;
      try {
        if (first) std::rethrow_exception(first);
        what = "connection closed";
      } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::eof)
          what = "connection closed by " + endpoint_.address();
        else if (e.code().category() == patchbay::error_category())
          what = text_of(e);
        else
          what = e.code().message();
      } catch (const std::exception& e) {
        what = e.what();
      }
    }
    connected_ = false;
    boost::system::error_code ignored;
    socket.close(ignored);

    std::vector<Pending> lost;
    bool closed = false;
    {
      std::lock_guard lock(mutex_);
      closed = closed_;
      last_error_ = what;
      // Written but unanswered: again first, in their order, if they may be repeated.
      while (!inflight_.empty()) {
        Pending p = std::move(inflight_.back());
        inflight_.pop_back();
        if (p.retry && !closed_)
          queued_.push_front(std::move(p));
        else
          lost.push_back(std::move(p));
      }
    }
    for (auto it = lost.rbegin(); it != lost.rend(); ++it) {
      Reply r;
      r.type = Reply::kind::error;
      r.str = "redis: connection to " + endpoint_.address() + " (" + role_ + ") lost after " + it->cmd.name() +
              " was sent, before its reply (it may or may not have taken effect): " + what;
      complete(*it, make_error_code(closed ? close_reason_ : errc::unavailable), std::move(r));
    }
    if (closed) break;
    std::fprintf(stderr, "patchbay redis: %s lost its connection to %s: %s; reconnecting\n", role_.c_str(),
                 endpoint_.address().c_str(), what.c_str());
  }

  // Closed: nothing may wait forever.
  std::deque<Pending> rest;
  {
    std::lock_guard lock(mutex_);
    rest = std::move(queued_);
    queued_.clear();
    for (auto& p : inflight_) rest.push_back(std::move(p));
    inflight_.clear();
  }
  for (auto& p : rest) {
    Reply r;
    r.type = Reply::kind::error;
    r.str = "redis: " + role_ + " closed";
    complete(p, make_error_code(close_reason_), std::move(r));
  }
}

awaitable<void> Link::connect(tcp::socket& socket) {
  const Endpoint& e = endpoint_;
  auto steps = [this, &socket]() -> awaitable<void> {
    const Endpoint& e = endpoint_;
    tcp::resolver resolver(strand_);
    auto [rec, endpoints] = co_await resolver.async_resolve(e.host, e.port, asio::as_tuple(asio::use_awaitable_t<executor>{}));
    if (rec) fail(errc::unavailable, "cannot resolve " + e.host + ": " + rec.message());
    auto [cec, ep] = co_await asio::async_connect(socket, endpoints, asio::as_tuple(asio::use_awaitable_t<executor>{}));
    if (cec) fail(errc::unavailable, cec.message());
    socket.set_option(tcp::no_delay(true));

    // Handshake: everything at once, then one reply per command, in order.
    std::vector<Command> commands;
    if (!e.password.empty())
      commands.push_back(e.user.empty() ? make_command({"AUTH", e.password}) : make_command({"AUTH", e.user, e.password}));
    if (e.db != 0) commands.push_back(make_command({"SELECT", std::to_string(e.db)}));
    if (!e.client_name.empty()) commands.push_back(make_command({"CLIENT", "SETNAME", e.client_name}));
    commands.push_back(make_command({"PING"}));
    std::vector<asio::const_buffer> buffers;
    for (auto& c : commands)
      for (const auto& p : c.pieces()) buffers.emplace_back(p.data(), p.size());
    co_await asio::async_write(socket, buffers, asio::use_awaitable_t<executor>{});

    RespReader reader;
    std::vector<char> buf(4096);
    std::size_t answered = 0;
    while (answered < commands.size()) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable_t<executor>{}));
      if (ec)
        fail(errc::unavailable, "the server closed the connection during the handshake (" + ec.message() + ")");
      reader.feed(buf.data(), n);
      while (auto r = reader.next()) {
        Command& c = commands[answered++];
        if (r->is_error()) {
          const bool auth = c.name() == "AUTH";
          const bool noauth = r->str.rfind("NOAUTH", 0) == 0;
          attempt_fatal_ = auth || noauth || c.name() == "SELECT" || r->str.rfind("WRONGPASS", 0) == 0;
          if (auth)
            fail(errc::unavailable, "redis: authentication failed at " + e.address() +
                                        (e.user.empty() ? std::string() : " for user '" + e.user + "'") + ": " + r->str);
          if (noauth)
            fail(errc::unavailable, "redis: " + e.address() + " requires authentication (set `password`, and `user` for an ACL user): " + r->str);
          fail(errc::unavailable, c.name() + " failed: " + r->str);
        }
        if (answered == commands.size()) break;
      }
      if (!reader.error().empty()) {
        attempt_fatal_ = true;  // not a Redis server (or not one we can talk to): retrying will not help
        fail(errc::bad_message, e.address() + " is not speaking RESP (" + reader.error() + ")");
      }
    }
    // Nothing may come that was not asked for.
    if (auto extra = reader.next(); extra || reader.buffered() != 0 || !reader.error().empty())
      fail(errc::bad_message, e.address() + " sent more than the handshake's replies" +
                                  (extra ? " (" + extra->describe(60) + ")" : std::string()));
  };
  asio::steady_timer timer(strand_, e.connect_timeout);
  using namespace asio::experimental;
  auto [order, steps_error, timer_ec] =
      co_await make_parallel_group(asio::co_spawn(strand_, steps(), asio::deferred), timer.async_wait(asio::deferred))
          .async_wait(wait_for_one(), asio::use_awaitable_t<executor>{});
  if (order[0] == 1)
    fail(errc::unavailable, "no answer within " + ms(e.connect_timeout) + " (connect_timeout)");
  if (steps_error) std::rethrow_exception(steps_error);
}

awaitable<void> Link::writer(tcp::socket& socket) {
  std::vector<Bytes> batch;
  std::vector<asio::const_buffer> buffers;
  for (;;) {
    batch.clear();
    {
      std::lock_guard lock(mutex_);
      std::size_t bytes = 0;
      while (!queued_.empty() && batch.size() < kMaxBatchPieces && bytes < kMaxBatchBytes) {
        Pending& p = queued_.front();
        for (const auto& piece : p.cmd.pieces()) {
          batch.push_back(piece);
          bytes += piece.size();
        }
        if (!p.retry) p.cmd.drop_bytes();  // the batch holds the bytes; the name stays for errors
        inflight_.push_back(std::move(p));
        queued_.pop_front();
      }
      if (batch.empty()) writer_waiting_ = true;
    }
    if (batch.empty()) {
      co_await writer_bell_.wait();
      continue;
    }
    buffers.clear();
    for (const auto& b : batch) buffers.emplace_back(b.data(), b.size());
    co_await asio::async_write(socket, buffers, asio::use_awaitable_t<executor>{});
  }
}

awaitable<void> Link::reader(tcp::socket& socket) {
  RespReader resp;
  std::vector<char> buf(kReadBuffer);
  for (;;) {
    std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable_t<executor>{});
    resp.feed(buf.data(), n);
    while (auto r = resp.next()) {
      if (subscriber_ && r->is_array() && !r->elements.empty() &&
          (r->elements[0].str == "message" || r->elements[0].str == "pmessage")) {
        if (on_push) on_push(std::move(*r));
        continue;
      }
      Pending p;
      {
        std::lock_guard lock(mutex_);
        if (inflight_.empty())
          fail(errc::bad_message, "redis: " + endpoint_.address() + " sent a reply nobody asked for (" + r->describe(80) +
                                      "); connection closed");
        p = std::move(inflight_.front());
        inflight_.pop_front();
      }
      complete(p, {}, std::move(*r));
    }
    if (!resp.error().empty())
      fail(errc::bad_message, "redis: malformed reply from " + endpoint_.address() + " (" + resp.error() + "); connection closed");
  }
}

}  // namespace patchbay::redis
