// The HTTP/1.1 client core (client.hpp): keep-alive pool, deadlines, retries, TLS, streaming.
//
// * Every connection has a strand of its own, and all of its I/O, its deadline timer and any
//   abort run there. A call hands its work to the connection's strand (on_connection) and
//   resumes on its own executor, so a pooled connection can serve callers on any strand.
// * A call uses a connection through a Lease: the response parser, a watchdog timer that closes
//   the connection at the deadline (first the connect deadline, then the call's), and why the
//   lease was cut short. Beast's tcp_stream timer is not used because an expiry that races the
//   completion of an operation still closes the socket afterwards, which could hit a connection
//   already back in the pool; the watchdog is disarmed on the strand before the call resumes.
//   The watchdog also bounds name resolution, which cannot be interrupted: at the deadline the
//   call stops waiting, and the lookup finishes unheeded.
// * Cancelling the awaiting coroutine reaches the lease through the connection's strand and
//   closes the connection, as the watchdog does; a connection goes back to the pool only after
//   a complete keep-alive response.
// * Before a pooled connection is reused, a non-blocking peek checks that the server has not
//   closed it meanwhile (servers drop idle connections after a few seconds), so that a POST is
//   not lost on it. A close that crosses the request is covered by the retry rule instead.
#include <patchbay/error.hpp>
#include <patchbay/http/client.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

namespace patchbay::http {
namespace {

namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Strand = asio::strand<executor>;
using Parser = bhttp::response_parser<bhttp::string_body>;

constexpr asio::use_awaitable_t<executor> use_awaitable;

[[noreturn]] void throw_bad_url(std::string_view url, const char* why) {
  throw boost::system::system_error(make_error_code(errc::bad_message),
                                    "invalid URL '" + std::string(url) + "': " + why);
}

// Where a URL points.
struct Target {
  bool tls = false;
  std::string host;  // decoded name or address: what is resolved, sent as SNI and verified
  bool host_is_address = false;
  unsigned short port = 0;
  std::string authority;  // the Host header
  std::string target;     // path and query
  std::string origin;     // the pool's key
};

Target parse_target(std::string_view url) {
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed) throw_bad_url(url, "not an absolute URL");
  const auto& u = *parsed;
  Target t;
  if (u.scheme_id() == boost::urls::scheme::https)
    t.tls = true;
  else if (u.scheme_id() != boost::urls::scheme::http)
    throw_bad_url(url, "the scheme is not http or https");
  switch (u.host_type()) {
    case boost::urls::host_type::name:
      t.host = u.host_name();
      break;
    case boost::urls::host_type::ipv4:
      t.host = u.host_ipv4_address().to_string();
      t.host_is_address = true;
      break;
    case boost::urls::host_type::ipv6:
      t.host = u.host_ipv6_address().to_string();
      t.host_is_address = true;
      break;
    default:
      break;
  }
  if (t.host.empty()) throw_bad_url(url, "no host");
  t.port = u.port_number() != 0 ? u.port_number() : (t.tls ? 443 : 80);
  t.authority = std::string(u.encoded_host_and_port());
  t.target = std::string(u.encoded_target());
  if (t.target.empty()) t.target = "/";
  t.origin = std::string(t.tls ? "https://" : "http://") + t.host + ":" + std::to_string(t.port);
  return t;
}

void prepare(Request& req, const Target& t, const std::string& user_agent) {
  req.target(t.target);
  req.set(bhttp::field::host, t.authority);
  if (!user_agent.empty() && req.find(bhttp::field::user_agent) == req.end())
    req.set(bhttp::field::user_agent, user_agent);
  req.prepare_payload();
}

bool idempotent(bhttp::verb method) {
  switch (method) {
    case bhttp::verb::get:
    case bhttp::verb::head:
    case bhttp::verb::put:
    case bhttp::verb::delete_:
    case bhttp::verb::options:
    case bhttp::verb::trace:
      return true;
    default:
      return false;
  }
}

// Failures that mean the server closed or refused the connection, so that a request may not
// have been processed at all.
bool retryable(const error_code& ec) {
  return ec == asio::error::eof || ec == bhttp::error::end_of_stream || ec == asio::error::connection_reset ||
         ec == asio::error::connection_refused || ec == asio::error::connection_aborted ||
         ec == asio::error::broken_pipe || ec == ssl::error::stream_truncated;
}

// Connections get strands of their own on the underlying io_context: strands made on the
// caller's strand would serialize every connection behind it.
executor base_executor(const executor& ex) {
  if (const auto* strand = ex.target<asio::strand<asio::io_context::executor_type>>())
    return strand->get_inner_executor();
  return ex;
}

// One keep-alive connection. Used only on its strand, or, while no operation is pending, by
// whoever holds it alone (the pool under its mutex, or the one call using it).
struct Connection {
  Connection(Strand s, std::string origin_key, ssl::context* tls) : strand(std::move(s)), origin(std::move(origin_key)) {
    if (tls)
      secure.emplace(strand, *tls);
    else
      plain.emplace(strand);
  }
  tcp::socket& socket() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  Strand strand;
  std::string origin;
  std::optional<tcp::socket> plain;
  std::optional<beast::ssl_stream<tcp::socket>> secure;
  beast::flat_buffer buffer;
  bool connected = false;
  clock::time_point idle_since;
};

// True when a pooled connection is still open and quiet: the server has neither closed it nor
// sent anything unasked.
bool still_usable(Connection& c) {
  char byte;
  const auto n = ::recv(c.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// A connection in use by one call attempt, or by one ResponseStream. Its members are used on
// the connection's strand, except `running_op`, and except what the caller reads after the
// strand finished an operation (the parser).
struct Lease : std::enable_shared_from_this<Lease> {
  explicit Lease(std::shared_ptr<Connection> c)
      : conn(std::move(c)), watchdog(conn->strand), resolve_wait(conn->strand) {}

  // The lease fails with timed_out at `when`, unless re-armed or disarmed before.
  void arm(deadline when) {
    const auto generation = ++armed;
    watchdog.expires_at(when);
    watchdog.async_wait([self = shared_from_this(), generation](error_code ec) {
      // A stale expiry (re-armed or disarmed meanwhile) can still arrive without an error.
      if (!ec && generation == self->armed) self->abort(make_error_code(errc::timed_out));
    });
  }
  void disarm() {
    ++armed;
    watchdog.cancel();
  }

  // Closes the connection: the pending operation and every later one of this lease fail with `why`.
  void abort(error_code why) {
    if (aborted) return;
    aborted = why;
    error_code ignored;
    conn->socket().close(ignored);
    resolve_wait.cancel();
  }

  std::shared_ptr<Connection> conn;
  Parser parser;
  asio::steady_timer watchdog;
  asio::steady_timer resolve_wait;  // woken by the lookup or by abort()
  std::uint64_t armed = 0;
  error_code aborted;
  std::atomic<std::uint64_t> running_op{0};  // which on_connection() may be cancelled; 0: none
};

std::atomic<std::uint64_t> last_op_id{0};

// Forwards the caller's cancellation to the lease, on the connection's strand. The caller's
// slot keeps this handler until the caller's next operation, so it aborts only the operation
// it was installed for.
struct Canceller {
  Canceller(std::weak_ptr<Lease> l, std::uint64_t id) : lease(std::move(l)), op(id) {}
  void operator()(asio::cancellation_type_t) const {
    auto l = lease.lock();
    if (!l) return;
    asio::post(l->conn->strand, [l, id = op] {
      if (l->running_op.load() == id) l->abort(asio::error::operation_aborted);
    });
  }
  std::weak_ptr<Lease> lease;
  std::uint64_t op;
};

template <typename T>
awaitable<T> tracked(std::shared_ptr<Lease> lease, std::uint64_t op, awaitable<T> work) {
  T result = co_await std::move(work);
  lease->running_op.compare_exchange_strong(op, 0);
  lease->disarm();
  co_return result;
}

// Runs `work` on the lease's connection strand and resumes the caller on its own executor.
template <typename T>
awaitable<T> on_connection(std::shared_ptr<Lease> lease, awaitable<T> work) {
  const auto op = ++last_op_id;
  lease->running_op.store(op);
  return asio::async_initiate<const asio::use_awaitable_t<executor>&, void(std::exception_ptr, T)>(
      [](auto handler, std::shared_ptr<Lease> lease, std::uint64_t op, awaitable<T> work) {
        // Installed before the work starts, so that the caller cannot resume (on another thread)
        // and reuse its slot while this still writes to it.
        auto slot = asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected()) slot.template emplace<Canceller>(lease, op);
        auto strand = lease->conn->strand;
        asio::co_spawn(strand, tracked(std::move(lease), op, std::move(work)),
                       [handler = std::move(handler)](std::exception_ptr e, T result) mutable {
                         auto ex = asio::get_associated_executor(handler);
                         asio::post(ex, [handler = std::move(handler), e, result = std::move(result)]() mutable {
                           std::move(handler)(e, std::move(result));
                         });
                       });
      },
      use_awaitable, std::move(lease), op, std::move(work));
}

// How an attempt ended: on failure, the error, the step that failed, and whether any response
// byte had arrived (a request is never retried after that).
struct Outcome {
  error_code ec;
  std::string step;
  bool response_started = false;
};

Outcome failure(const Lease& l, error_code ec, std::string step, bool response_started = false) {
  Outcome o;
  o.ec = l.aborted ? l.aborted : ec;  // closing the socket surfaces as some other error
  o.step = std::move(step);
  o.response_started = response_started;
  return o;
}

// The lookup's result, shared with its handler, which outlives an abandoned wait.
struct Lookup {
  explicit Lookup(const Strand& s) : resolver(s) {}
  tcp::resolver resolver;
  error_code ec;
  tcp::resolver::results_type results;
  bool done = false;
};

// ClientOptions::resolve, waited for like a lookup (abort() ends the wait).
awaitable<Outcome> resolve_with(std::shared_ptr<Lease> l, const Target& t, const ClientOptions& options,
                                tcp::resolver::results_type& endpoints) {
  struct Result {
    std::vector<tcp::endpoint> endpoints;
    error_code ec;
    std::string what;
    bool done = false;
  };
  auto result = std::make_shared<Result>();
  asio::co_spawn(l->conn->strand, options.resolve(t.host, t.port, t.tls),
                 [result, l](std::exception_ptr e, std::vector<tcp::endpoint> found) {
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const boost::system::system_error& x) {
                       result->ec = x.code();
                       result->what = x.what();
                     } catch (const std::exception& x) {
                       result->ec = make_error_code(errc::unavailable);
                       result->what = x.what();
                     }
                   } else if (found.empty()) {
                     result->ec = asio::error::host_not_found;
                     result->what = "no address";
                   }
                   result->endpoints = std::move(found);
                   result->done = true;
                   l->resolve_wait.cancel();
                 });
  error_code ignored;
  l->resolve_wait.expires_at(deadline::max());
  co_await l->resolve_wait.async_wait(asio::redirect_error(use_awaitable, ignored));
  if (!result->done) co_return failure(*l, l->aborted, "resolve " + t.host);
  if (result->ec) co_return failure(*l, result->ec, "resolve " + t.host + ": " + result->what);
  endpoints = tcp::resolver::results_type::create(result->endpoints.begin(), result->endpoints.end(), t.host,
                                                  std::to_string(t.port));
  co_return Outcome();
}

awaitable<Outcome> resolve(std::shared_ptr<Lease> l, const Target& t, tcp::resolver::results_type& endpoints) {
  if (t.host_is_address) {
    const tcp::endpoint endpoint(asio::ip::make_address(t.host), t.port);
    endpoints = tcp::resolver::results_type::create(endpoint, t.host, std::to_string(t.port));
    co_return Outcome();
  }
  auto lookup = std::make_shared<Lookup>(l->conn->strand);
  lookup->resolver.async_resolve(t.host, std::to_string(t.port),
                                 [lookup, l](error_code ec, tcp::resolver::results_type results) {
                                   lookup->ec = ec;
                                   lookup->results = std::move(results);
                                   lookup->done = true;
                                   l->resolve_wait.cancel();
                                 });
  error_code ignored;
  l->resolve_wait.expires_at(deadline::max());
  co_await l->resolve_wait.async_wait(asio::redirect_error(use_awaitable, ignored));
  // Woken without a result only by abort(), whose reason failure() reports.
  if (!lookup->done || lookup->ec) co_return failure(*l, lookup->ec, "resolve " + t.host);
  endpoints = std::move(lookup->results);
  co_return Outcome();
}

// Resolves, connects and (for https) completes the TLS handshake, checking the host name.
awaitable<Outcome> establish(std::shared_ptr<Lease> l, const Target& t, bool verify_peer,
                             const ClientOptions* options) {
  tcp::resolver::results_type endpoints;
  Outcome resolved;  // no ternary around co_await (GCC 12 destroys its temporaries twice)
  if (options && options->resolve)
    resolved = co_await resolve_with(l, t, *options, endpoints);
  else
    resolved = co_await resolve(l, t, endpoints);
  if (resolved.ec) co_return resolved;
  // abort() closes the socket, but cannot stop a connect that has not opened it yet.
  if (l->aborted) co_return failure(*l, l->aborted, "connect");
  error_code ec;
  co_await asio::async_connect(l->conn->socket(), endpoints, asio::redirect_error(use_awaitable, ec));
  const std::string where = t.host + ":" + std::to_string(t.port);
  if (ec) co_return failure(*l, ec, "connect to " + where);
  l->conn->socket().set_option(tcp::no_delay(true), ec);
  if (!l->conn->secure) co_return Outcome();

  auto& stream = *l->conn->secure;
  SSL* ssl = stream.native_handle();
  if (!t.host_is_address) SSL_set_tlsext_host_name(ssl, t.host.c_str());
  // OpenSSL's own check rather than asio's host_name_verification callback: a mismatch then
  // shows in the verify result ("hostname mismatch") instead of an unexplained failure.
  if (verify_peer) {
    if (t.host_is_address)
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t.host.c_str());
    else
      SSL_set1_host(ssl, t.host.c_str());
  }
  co_await stream.async_handshake(ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    std::string step = "TLS handshake with " + where;
    if (const long result = SSL_get_verify_result(ssl); verify_peer && result != X509_V_OK)
      step += " (certificate verification failed: " + std::string(X509_verify_cert_error_string(result)) + ")";
    co_return failure(*l, ec, std::move(step));
  }
  co_return Outcome();
}

template <typename Stream>
awaitable<Outcome> exchange(Lease& l, Stream& stream, const Request& req, bool whole) {
  error_code ec;
  co_await bhttp::async_write(stream, req, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return failure(l, ec, "send the request");
  co_await bhttp::async_read_header(stream, l.conn->buffer, l.parser, asio::redirect_error(use_awaitable, ec));
  if (!ec && whole)
    co_await bhttp::async_read(stream, l.conn->buffer, l.parser, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return failure(l, ec, "read the response", l.parser.got_some() || l.conn->buffer.size() > 0);
  co_return Outcome();
}

struct Plan {
  deadline connect_until;
  deadline until;
  bool verify_peer = true;
  bool whole = true;  // read the body too, not only the header
  const ClientOptions* options = nullptr;  // for ClientOptions::resolve; outlives the attempt
};

// One attempt, on the connection's strand.
awaitable<Outcome> attempt(std::shared_ptr<Lease> l, const Target& t, const Request& req, Plan plan) {
  if (l->aborted) co_return failure(*l, l->aborted, "start");
  if (!l->conn->connected) {
    l->arm(plan.connect_until);
    Outcome established = co_await establish(l, t, plan.verify_peer, plan.options);
    if (established.ec) co_return established;
    l->conn->connected = true;
  }
  l->arm(plan.until);
  if (l->conn->secure) co_return co_await exchange(*l, *l->conn->secure, req, plan.whole);
  co_return co_await exchange(*l, *l->conn->plain, req, plan.whole);
}

[[noreturn]] void throw_failure(const Request& req, const std::string& url, const Outcome& o) {
  error_code code = o.ec;
  std::string what = std::string(req.method_string()) + " " + url + ": " + o.step;
  if (code == bhttp::error::body_limit || code == bhttp::error::header_limit) {
    what += code == bhttp::error::body_limit ? " (body beyond body_limit)" : " (header beyond header_limit)";
    code = make_error_code(errc::payload_too_large);
  } else if (code.category() == bhttp::make_error_code(bhttp::error::bad_version).category() &&
             code != bhttp::error::end_of_stream && code != bhttp::error::partial_message) {
    code = make_error_code(errc::bad_message);
  } else if (!idempotent(req.method()) && !o.response_started && retryable(code)) {
    what += " (not retried: " + std::string(req.method_string()) + " is not idempotent)";
  }
  throw boost::system::system_error(code, what);
}

// The body of an open() response as it arrives, read on the connection's strand.
struct Piece {
  error_code ec;
  std::string bytes;  // empty at the end of the body
};

awaitable<Piece> read_piece(std::shared_ptr<Lease> l) {
  Piece piece;
  auto& body = l->parser.get().body();
  error_code ec;
  while (!ec && !l->aborted && !l->parser.is_done()) {
    if (l->conn->secure)
      co_await bhttp::async_read_some(*l->conn->secure, l->conn->buffer, l->parser, asio::redirect_error(use_awaitable, ec));
    else
      co_await bhttp::async_read_some(*l->conn->plain, l->conn->buffer, l->parser, asio::redirect_error(use_awaitable, ec));
    // A read may consume framing only (a chunk header): read on until body bytes arrive.
    if (!ec && !body.empty()) {
      piece.bytes = std::move(body);
      body.clear();
      co_return piece;
    }
  }
  piece.ec = l->aborted ? l->aborted : ec;
  co_return piece;
}

class OpenStream final : public ResponseStream {
 public:
  explicit OpenStream(std::shared_ptr<Lease> lease) : lease_(std::move(lease)), head_(lease_->parser.get().base()) {}

  const bhttp::response_header<>& head() const noexcept override { return head_; }

  awaitable<std::string_view> read_some() override {
    Piece piece = co_await on_connection(lease_, read_piece(lease_));
    if (piece.ec) throw boost::system::system_error(piece.ec, "read the response body");
    piece_ = std::move(piece.bytes);
    co_return std::string_view(piece_);
  }

  void close() noexcept override {
    asio::post(lease_->conn->strand, [lease = lease_] { lease->abort(asio::error::operation_aborted); });
  }

 private:
  std::shared_ptr<Lease> lease_;
  bhttp::response_header<> head_;  // a copy: trailers are parsed into the parser's header
  std::string piece_;
};

}  // namespace

struct Client::Impl {
  Impl(executor ex, ClientOptions o) : io(base_executor(ex)), options(std::move(o)) {}

  static awaitable<std::shared_ptr<Lease>> perform(std::shared_ptr<Impl> self, const std::string& url, Request& req,
                                                   deadline until, bool whole);
  static awaitable<Response> request(std::shared_ptr<Impl> self, std::string url, Request req, deadline until);
  static awaitable<std::unique_ptr<ResponseStream>> open(std::shared_ptr<Impl> self, std::string url, Request req,
                                                         deadline until);
  std::shared_ptr<Connection> connection_for(const Target& t);
  void release(std::shared_ptr<Connection> c);
  std::shared_ptr<ssl::context> tls_context();

  const executor io;
  const ClientOptions options;
  std::mutex mutex;  // guards idle and tls
  std::map<std::string, std::vector<std::shared_ptr<Connection>>> idle;  // per origin, oldest first
  std::shared_ptr<ssl::context> tls;                                     // made on first use
};

std::shared_ptr<ssl::context> Client::Impl::tls_context() {
  std::lock_guard lock(mutex);
  if (!tls) {
    auto made = make_client_tls(options.tls);
    if (!made.ok())
      throw boost::system::system_error(make_error_code(boost::system::errc::invalid_argument),
                                        "TLS client settings: " + std::string(made.status().message()));
    tls = *std::move(made);
  }
  return tls;
}

std::shared_ptr<Connection> Client::Impl::connection_for(const Target& t) {
  const auto now = clock::now();
  for (;;) {
    std::shared_ptr<Connection> c;
    {
      std::lock_guard lock(mutex);
      auto it = idle.find(t.origin);
      if (it == idle.end() || it->second.empty()) break;
      c = std::move(it->second.back());
      it->second.pop_back();
    }
    if (now - c->idle_since <= options.idle_timeout && still_usable(*c)) return c;
  }
  auto context = t.tls ? tls_context() : nullptr;
  return std::make_shared<Connection>(asio::make_strand(io), t.origin, context.get());
}

void Client::Impl::release(std::shared_ptr<Connection> c) {
  c->idle_since = clock::now();
  std::lock_guard lock(mutex);
  auto& list = idle[c->origin];
  const auto fresh = std::find_if(list.begin(), list.end(),
                                  [&](const auto& other) { return c->idle_since - other->idle_since <= options.idle_timeout; });
  list.erase(list.begin(), fresh);
  list.push_back(std::move(c));
  if (list.size() > options.max_idle_per_origin)
    list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(list.size() - options.max_idle_per_origin));
}

awaitable<std::shared_ptr<Lease>> Client::Impl::perform(std::shared_ptr<Impl> self, const std::string& url, Request& req,
                                                        deadline until, bool whole) {
  const Target t = parse_target(url);
  const auto& options = self->options;
  prepare(req, t, options.user_agent);
  if (until == deadline()) until = clock::now() + options.request_timeout;
  for (unsigned retries = 0;; ++retries) {
    auto lease = std::make_shared<Lease>(self->connection_for(t));
    lease->parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(options.header_limit, UINT32_MAX)));
    if (whole)
      lease->parser.body_limit(options.body_limit);
    else
      lease->parser.body_limit(boost::none);  // a stream (SSE) may never end
    if (req.method() == bhttp::verb::head) lease->parser.skip(true);
    Plan plan;
    plan.connect_until = std::min(clock::now() + options.connect_timeout, until);
    plan.until = until;
    plan.verify_peer = options.tls.verify_peer;
    plan.whole = whole;
    plan.options = &options;
    const Outcome outcome = co_await on_connection(lease, attempt(lease, t, req, plan));
    if (!outcome.ec) co_return lease;
    const bool retry = idempotent(req.method()) && !outcome.response_started && retries < options.max_retries &&
                       retryable(outcome.ec) && clock::now() < until;
    if (!retry) throw_failure(req, url, outcome);
  }
}

awaitable<Response> Client::Impl::request(std::shared_ptr<Impl> self, std::string url, Request req, deadline until) {
  auto lease = co_await perform(self, url, req, until, true);
  Response response = lease->parser.release();
  if (response.keep_alive() && req.keep_alive() && lease->conn->buffer.size() == 0) self->release(lease->conn);
  co_return response;
}

awaitable<std::unique_ptr<ResponseStream>> Client::Impl::open(std::shared_ptr<Impl> self, std::string url, Request req,
                                                              deadline until) {
  auto lease = co_await perform(self, url, req, until, false);
  co_return std::make_unique<OpenStream>(std::move(lease));
}

Client::Client(executor ex, ClientOptions options) : impl_(std::make_shared<Impl>(std::move(ex), std::move(options))) {}

Client::~Client() = default;

// Not coroutines themselves: `url` is copied before the caller's string can go away.
awaitable<Response> Client::request(std::string_view url, Request req, deadline until) {
  return Impl::request(impl_, std::string(url), std::move(req), until);
}

awaitable<std::unique_ptr<ResponseStream>> Client::open(std::string_view url, Request req, deadline header_until) {
  return Impl::open(impl_, std::string(url), std::move(req), header_until);
}

void Client::close_idle() {
  decltype(impl_->idle) closing;  // closed outside the lock
  std::lock_guard lock(impl_->mutex);
  closing.swap(impl_->idle);
}

const ClientOptions& Client::options() const noexcept { return impl_->options; }

}  // namespace patchbay::http
