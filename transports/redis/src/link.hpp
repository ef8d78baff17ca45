// A connection to one Redis server that stays up: commands are pipelined, replies matched in
// order, and a lost connection is re-established with backoff.
//
// Pipelining. call() appends the command to a queue and rings the writer; the writer takes
// everything queued (up to 1 MiB / 1024 pieces) and writes it with one gathered write, so many
// commands in flight cost one write and one read each, never one round trip each. Replies come
// back in command order; the reader (hiredis's RESP reader) matches each to the oldest command
// still waiting.
//
// Reconnecting. A supervisor coroutine connects (resolve, TCP connect, AUTH, SELECT, CLIENT
// SETNAME: all bounded by the connect timeout), then runs the reader and the writer until one
// of them fails. Then commands already written are either queued again in front of the others
// (`retry`: idempotent or at-least-once commands: XADD, XACK, SUBSCRIBE, XREADGROUP) or failed
// with errc::unavailable (PUBLISH: at most once, it must not be duplicated). Reconnection starts
// at once and backs off from `reconnect_min` up to `reconnect_max`. Queued commands wait for the
// next connection until their deadline (the command timeout), then fail with
// errc::unavailable and the last connection error.
//
// Subscriber mode (Redis Pub/Sub): arrays starting with "message" or "pmessage" are pushes,
// handed to `on_push` instead of being matched to a command. Every other reply (the
// confirmations of SUBSCRIBE and UNSUBSCRIBE with one channel each, PING) is matched in order.
//
// Bad input: a reply hiredis's reader cannot parse, or a reply nobody asked for, closes the
// connection with errc::bad_message; the link reconnects. Nothing a peer sends can crash it.
//
// Threading: the supervisor, reader and writer run on the link's own strand. call(), post() and
// close() may be called from any thread; the queue is guarded by one mutex that is never held
// across a suspension point. Completions run on the caller's executor (posted there).
#pragma once

#include <patchbay/asio.hpp>
#include <patchbay/doorbell.hpp>
#include <patchbay/error.hpp>
#include <patchbay/transports/redis/resp.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace patchbay::redis {

/// Where and how to connect.
struct Endpoint {
  std::string host = "127.0.0.1";
  std::string port = "6379";
  std::string user;      ///< ACL user (Redis 6+); empty: AUTH with the password only
  std::string password;  ///< empty: no AUTH
  int db = 0;            ///< SELECT db when not 0
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds command_timeout{10000};  ///< how long a command waits for a connection
  std::chrono::milliseconds reconnect_min{50};
  std::chrono::milliseconds reconnect_max{1000};
  std::string client_name;  ///< CLIENT SETNAME (shows in CLIENT LIST)

  std::string address() const { return host + ":" + port; }
};

class Link : public std::enable_shared_from_this<Link> {
 public:
  using Handler = std::function<void(boost::system::error_code, Reply)>;

  /// `role` names the link in errors ("publisher", "subscriber", "reader of orders").
  Link(executor io, Endpoint endpoint, std::string role, bool subscriber = false);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  /// Called on the link's strand with each Pub/Sub push (subscriber mode). Set before start().
  std::function<void(Reply&&)> on_push;
  /// Called on the link's strand after each (re)connection, before any queued command is
  /// written; `generation` counts connections from 1. Commands it sends with send_first() go
  /// out before everything else. Set before start().
  std::function<void(std::uint64_t generation)> on_connected;

  /// Starts connecting (and reconnecting) in the background.
  void start();

  /// Waits until the first connection is up. Throws system_error: errc::unavailable with the
  /// reason (refused, wrong credentials, ...) once the connect timeout has passed or at once
  /// for errors that retrying cannot fix (authentication), errc::stopped when closed.
  awaitable<void> wait_connected();

  /// Sends a command and returns its reply; an error reply is returned as such.
  /// Throws system_error: errc::unavailable (no connection within the command timeout, or the
  /// connection was lost after a non-retry command was written), errc::closed / errc::stopped.
  awaitable<Reply> call_raw(Command cmd, bool retry);

  /// As call_raw, but an error reply throws system_error(errc::remote_error) naming the command.
  awaitable<Reply> call(Command cmd, bool retry);

  /// Sends a command; `handler` (may be empty) receives the outcome on `ex`.
  void post(Command cmd, bool retry, executor ex, std::function<void(boost::system::error_code, Reply)> handler);

  /// Queues `cmd` in front of everything queued (only from on_connected).
  void send_first(Command cmd, bool retry, executor ex, std::function<void(boost::system::error_code, Reply)> handler);

  /// Stops the link: everything waiting fails with `why`; no reconnection. Idempotent.
  void close(errc why = errc::closed);

  bool connected() const noexcept { return connected_.load(); }
  std::uint64_t generation() const noexcept { return generation_.load(); }
  const Endpoint& endpoint() const noexcept { return endpoint_; }
  const std::string& role() const noexcept { return role_; }
  /// Commands queued or in flight (tests, drain).
  std::size_t outstanding() const;

 private:
  struct Pending {
    Command cmd;
    Handler handler;  // posted to `ex` with the outcome
    executor ex;
    bool retry = false;
    deadline until;
  };

  void enqueue(Pending p, bool front);
  void complete(Pending& p, boost::system::error_code ec, Reply reply);
  void fail_expired(clock::time_point now);
  awaitable<void> supervise();
  awaitable<void> connect(asio::ip::tcp::socket& socket);
  awaitable<void> reader(asio::ip::tcp::socket& socket);
  awaitable<void> writer(asio::ip::tcp::socket& socket);
  std::string unavailable_text() const;  // mutex held

  asio::strand<executor> strand_;
  Endpoint endpoint_;
  const std::string role_;
  const bool subscriber_;

  mutable std::mutex mutex_;
  std::deque<Pending> queued_;    // not yet written
  std::deque<Pending> inflight_;  // written, awaiting replies in this order
  bool writer_waiting_ = false;
  bool closed_ = false;
  errc close_reason_ = errc::closed;
  bool fatal_ = false;            // the last attempt failed in a way retrying cannot fix
  bool attempt_fatal_ = false;    // set by connect() (strand only), published with last_error_
  int attempts_ = 0;              // failed attempts since the last connection
  std::string last_error_;

  Doorbell writer_bell_;
  asio::cancellation_signal cancel_;  // emitted on the strand by close()
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> started_{false};
};

}  // namespace patchbay::redis
