// The hub over long and short polling (see patchbay/http/hub.hpp, hub_routes.hpp and
// docs/polling.md).
//
//   GET /topics/{topic}/poll?after=P&wait=S[&limit=N][&from=earliest]       long poll
//   GET /topics/{topic}/messages?after=P[&limit=N][&from=earliest]          short poll
//
// Both answer 200 application/json {"messages":[..],"next":"<epoch>:<seq>"[,"gap":{..}]}, where
// each message is HubEntry::poll_object() (encoded once per message, shared by every answer
// that carries it) and `next` is the position to pass as `after=` in the next request. `next`
// is taken from the cursor that read the answer, so a message published between two polls is
// read by the second one: none is lost, none is read twice.
//
// Each request reads what follows `after` (Hub::peek: no cursor; a foreign epoch or a position
// the topic has not reached: a gap and then from the oldest message held; a position behind the
// ring: a gap and then from the oldest message held), at most `limit` messages, and answers at
// once when it has something (or for a short poll, or wait=0). Otherwise a long poll opens a
// cursor right after what it read and waits on the
// cursor's doorbell — the same one SSE connections wait on — until a publish rings it, the
// wait ends (PollDeadlines, one timer for every held poll, closes the cursor) or the hub stops
// (every cursor is closed), and then answers what it read (possibly nothing).
//
// Long polls are held routes (RouteOptions::held: no request_timeout, as a poll may be held up
// to PollOptions::max_wait; at Server::stop() they are answered — Hub::stop() wakes them —
// instead of cut) that answer with respond(), so the connection stays open for the next poll. Short polls are ordinary routes.
#include "hub_routes.hpp"

#include <patchbay/http/sse.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <charconv>
#include <cstring>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>

namespace patchbay::http {

namespace {

/// What a poll request asks for, validated.
struct PollQuery {
  Position from;
  duration wait{};
  std::size_t limit = 0;
};

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

/// "<epoch>:<seq>", both unsigned 64-bit decimals; otherwise the reason it is refused.
std::optional<std::string> check_position(std::string_view p) {
  if (p.empty()) return std::string("after must not be empty");
  if (p.front() == '-' || p.find(":-") != std::string_view::npos) return std::string("after must not be negative");
  const auto colon = p.find(':');
  if (colon == std::string_view::npos) return std::string("after must be a position \"<epoch>:<seq>\" from an earlier answer");
  const auto epoch = p.substr(0, colon), seq = p.substr(colon + 1);
  if (!all_digits(epoch) || !all_digits(seq)) {
    return std::string("after must be a position \"<epoch>:<seq>\" from an earlier answer");
  }
  for (auto part : {epoch, seq}) {
    // Above 2^64 - 1 (leading zeros allowed, as std::from_chars reads them)?
    while (part.size() > 1 && part.front() == '0') part.remove_prefix(1);
    if (part.size() > 20 || (part.size() == 20 && part > "18446744073709551615")) {
      return std::string("after is out of range");
    }
  }
  return std::nullopt;
}

/// Characters an origin-form target may hold unescaped (RFC 3986, as Boost.URL's
/// origin_form_rule reads them): in the path pchar and '/', in the query also '?'.
struct TargetChars {
  bool path[256] = {};
  bool query[256] = {};
  constexpr TargetChars() {
    constexpr std::string_view pchar_and_slash =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/";
    for (char c : pchar_and_slash) path[static_cast<unsigned char>(c)] = query[static_cast<unsigned char>(c)] = true;
    query[static_cast<unsigned char>('?')] = true;
  }
};
constexpr TargetChars target_chars;

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Whether `target` is a well-formed origin-form target ("/path[?query]": the characters
/// above, every '%' followed by two hex digits); `query` receives what follows the '?' (empty
/// without one). What fails here is read by Boost.URL instead, which refuses it the same way.
bool split_origin_form(std::string_view target, std::string_view& query) noexcept {
  if (target.empty() || target.front() != '/') return false;
  const bool* allowed = target_chars.path;
  std::size_t question = std::string_view::npos;
  for (std::size_t i = 0; i < target.size(); ++i) {
    const char c = target[i];
    if (c == '%') {
      if (i + 2 >= target.size() || hex_value(target[i + 1]) < 0 || hex_value(target[i + 2]) < 0) return false;
      i += 2;
    } else if (c == '?' && question == std::string_view::npos) {
      question = i;
      allowed = target_chars.query;
    } else if (!allowed[static_cast<unsigned char>(c)]) {
      return false;
    }
  }
  query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  return true;
}

/// `s` percent-decoded, '+' read as a space (as Boost.URL's params() reads a query); `s` was
/// checked by split_origin_form. A view of `s` itself when there is nothing to decode,
/// otherwise of `storage`.
std::string_view decode_param(std::string_view s, std::string& storage) {
  bool plain = true;
  for (char c : s) plain &= c != '%' && c != '+';
  if (plain) return s;
  storage.clear();
  storage.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      storage += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      storage += s[i] == '+' ? ' ' : s[i];
    }
  }
  return storage;
}

/// The query parameters a poll reads (the first of each name), decoded, in one pass over the
/// target (Exchange::query() parses it again per name). The views point into the request's
/// target or into `storage`: a RawQuery is filled in place and never copied.
struct RawQuery {
  std::optional<std::string_view> after, from, limit, wait;
  std::string storage[5];  // decoded values (after, from, limit, wait) and a decoded key
  RawQuery() = default;
  RawQuery(const RawQuery&) = delete;
  RawQuery& operator=(const RawQuery&) = delete;
};

/// Reads the query of an origin-form target that split_origin_form() refused, with Boost.URL
/// (which then usually refuses it too: no parameters).
void read_query_slow(std::string_view target, RawQuery& r) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return;
  std::size_t index = 0;
  for (auto param : url->params()) {
    std::optional<std::string_view>* slot = param.key == "after" ? &r.after
                                            : param.key == "from"  ? &r.from
                                            : param.key == "limit" ? &r.limit
                                            : param.key == "wait"  ? &r.wait
                                                                   : nullptr;
    if (slot && !*slot) {
      auto& stored = r.storage[index++];
      stored = param.has_value ? std::string(param.value) : std::string();
      *slot = stored;
    }
  }
}

void read_query(const Exchange& ex, RawQuery& r) {
  const auto t = ex.request().target();
  const std::string_view target(t.data(), t.size());
  std::string_view query;
  if (!split_origin_form(target, query)) return read_query_slow(target, r);
  if (query.empty()) return;  // no parameters, or one with an empty name
  for (;;) {
    const auto amp = query.find('&');
    const auto param = query.substr(0, amp);
    const auto eq = param.find('=');
    const auto key = decode_param(param.substr(0, eq), r.storage[4]);
    const int index = key == "after" ? 0 : key == "from" ? 1 : key == "limit" ? 2 : key == "wait" ? 3 : -1;
    if (index >= 0) {
      std::optional<std::string_view>& slot = index == 0 ? r.after : index == 1 ? r.from : index == 2 ? r.limit : r.wait;
      if (!slot) {
        slot = eq == std::string_view::npos ? std::string_view()
                                            : decode_param(param.substr(eq + 1), r.storage[index]);
      }
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
}

/// Parses the query; the text of a 400 answer on error.
std::optional<std::string> parse_query(const Exchange& ex, const PollOptions& options, bool hold, PollQuery& q) {
  RawQuery raw;
  read_query(ex, raw);
  const auto& after = raw.after;
  const auto& from = raw.from;
  if (from && *from != "earliest" && *from != "latest") return std::string("from must be \"earliest\" or \"latest\"");
  if (after) {
    if (auto bad = check_position(*after)) return bad;
    q.from = Position::after(std::string(*after));
  } else {
    q.from = from && *from == "earliest" ? Position::earliest() : Position::latest();
  }

  q.limit = options.max_batch;
  if (const auto& limit = raw.limit) {
    if (!limit->empty() && limit->front() == '-') return std::string("limit must not be negative");
    std::uint64_t n = 0;
    auto r = std::from_chars(limit->data(), limit->data() + limit->size(), n);
    if (limit->empty() || r.ec == std::errc::invalid_argument || r.ptr != limit->data() + limit->size()) {
      return std::string("limit must be a whole number of messages");
    }
    if (r.ec == std::errc() && n == 0) return std::string("limit must be at least 1");
    // Above max_batch (or beyond 64 bits): clamped.
    if (r.ec == std::errc() && n < q.limit) q.limit = static_cast<std::size_t>(n);
  }
  if (q.limit == 0) q.limit = 1;

  q.wait = duration::zero();
  if (hold) {
    q.wait = options.default_wait;
    if (const auto& wait = raw.wait) {
      if (!wait->empty() && wait->front() == '-') return std::string("wait must not be negative");
      double seconds = 0;
      auto r = std::from_chars(wait->data(), wait->data() + wait->size(), seconds, std::chars_format::fixed);
      if (wait->empty() || r.ec == std::errc::invalid_argument || r.ptr != wait->data() + wait->size() ||
          std::isnan(seconds)) {
        return std::string("wait must be a number of seconds (e.g. 30 or 2.5)");
      }
      if (r.ec == std::errc::result_out_of_range || seconds > 1e9) seconds = 1e9;  // clamped below
      q.wait = std::chrono::duration_cast<duration>(std::chrono::duration<double>(seconds));
    }
    q.wait = std::clamp(q.wait, duration::zero(), std::max(options.max_wait, duration::zero()));
  }
  return std::nullopt;
}

void add_cors(const HubOptions& options, bhttp::fields& fields, bool etag) {
  if (options.cors_origin.empty()) return;
  fields.set(bhttp::field::access_control_allow_origin, options.cors_origin);
  // Lets a page's script read the validator it sends back as If-None-Match.
  if (etag) fields.set(bhttp::field::access_control_expose_headers, "ETag");
}

void answer_text(Exchange& ex, const HubOptions* options, bhttp::status status, std::string text) {
  Response res{status, ex.request().version()};
  res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  res.set(bhttp::field::cache_control, "no-store");
  if (options) add_cors(*options, res.base(), false);
  res.body() = std::move(text);
  ex.respond(std::move(res));
}

/// Whether an If-None-Match value names `etag` (a strong validator "\"<next>\""), or is "*".
bool if_none_match(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    const auto comma = header.find(',');
    auto item = header.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);  // weak comparison, as RFC 9110 asks for GET
    if (item == "*" || item == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

/// Appends the JSON answer for `batch`, read by a cursor now standing at `next`, to `body`.
void encode_answer(const HubBatch& batch, std::string_view next, std::string& body) {
  static constexpr std::string_view head = "{\"messages\":[", mid = "],\"next\":\"", tail = "\"}\n";
  std::size_t size = head.size() + mid.size() + next.size() + tail.size();
  for (const auto& e : batch.entries) size += e->poll_object().size() + 1;
  body.reserve(body.size() + size + (batch.gap ? 256 : 0));
  body += head;
  bool first = true;
  for (const auto& e : batch.entries) {
    if (!first) body += ',';
    first = false;
    body += e->poll_object();
  }
  body += mid;
  body += next;  // digits and a colon
  if (batch.gap) {
    body += "\",\"gap\":";
    body += sse::encode_gap_json(*batch.gap);
    body += "}\n";
  } else {
    body += tail;
  }
}

/// Writes the answer for `batch`, read by a cursor now standing at `next`, into the exchange's
/// response (built in place). `hub` is null once the hub is gone; `stopping`: the hub stopped
/// while the poll was held.
void answer(Exchange& ex, const Hub* hub, bool hold, const HubBatch& batch, std::string_view next, bool stopping) {
  Response& res = ex.response();  // fresh: insert() rather than set(), which looks for the field first
  res.insert(bhttp::field::cache_control, "no-cache");
  if (hub) add_cors(hub->options(), res.base(), !hold);
  if (stopping) res.keep_alive(false);  // the hub is stopping: the client should go elsewhere
  if (!hold) {
    // "\"<next>\"": a position is two 64-bit decimals and a colon (41 characters at most).
    char buf[64];
    const std::size_t n = std::min(next.size(), sizeof buf - 2);
    buf[0] = '"';
    std::memcpy(buf + 1, next.data(), n);
    buf[n + 1] = '"';
    const std::string_view etag(buf, n + 2);
    res.insert(bhttp::field::etag, etag);
    if (batch.entries.empty() && !batch.gap) {
      const auto inm = ex.request()[bhttp::field::if_none_match];
      if (!inm.empty() && if_none_match(std::string_view(inm.data(), inm.size()), etag)) {
        res.result(bhttp::status::not_modified);
        ex.respond();
        return;
      }
    }
  }
  res.result(bhttp::status::ok);
  res.insert(bhttp::field::content_type, "application/json");
  encode_answer(batch, next, res.body());
  ex.respond();
}

struct HeldPoll;

/// Ends held long polls when their wait is over: one timer per execution context serves every
/// held poll, where a timer of its own and its pending wait would cost each idle connection
/// ~360 bytes. The polls wait in a map ordered by deadline; the timer is set to the earliest.
/// A poll whose deadline passed gets its cursor closed, which wakes it (it then answers).
class PollDeadlines final : public asio::execution_context::service {
 public:
  static asio::execution_context::id id;
  using Map = std::multimap<clock::time_point, std::weak_ptr<HeldPoll>>;

  explicit PollDeadlines(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

  /// Registers `poll` (whose `entry` and `registered` this sets, under the lock).
  void add(const std::shared_ptr<HeldPoll>& poll, clock::time_point when, const executor& ex);
  /// Unregisters `poll` if it still is (from its destructor).
  void remove(HeldPoll& poll) noexcept;

 private:
  void shutdown() override {
    std::lock_guard lock(mu_);
    shut_down_ = true;  // polls destroyed from now on (with their frames) no longer unregister
    polls_.clear();
    timer_.reset();
  }
  void rearm();  // on strand_
  void expire(boost::system::error_code ec);

  std::mutex mu_;
  bool shut_down_ = false;
  Map polls_;
  clock::time_point armed_ = clock::time_point::max();  // where the timer is (to be) set
  std::optional<asio::strand<executor>> strand_;
  std::optional<asio::steady_timer> timer_;
};

asio::execution_context::id PollDeadlines::id;

/// A long poll being held: everything it needs while it waits, in one allocation, so that the
/// coroutine frame that waits stays small (an idle long poll costs its connection, this, its
/// cursor and that frame).
struct HeldPoll {
  HeldPoll(std::unique_ptr<Hub::Cursor> c, const std::shared_ptr<Hub>& h, std::size_t n)
      : cursor(std::move(c)), hub(h), limit(n) {
    h->count_held_poll(1);
  }
  ~HeldPoll() {
    if (deadlines) deadlines->remove(*this);
    if (auto h = hub.lock()) h->count_held_poll(-1);
  }

  /// After a wake-up: answers and returns true when there is something to answer (messages, a
  /// gap, the end of the wait or of the hub); false to wait again.
  bool try_finish(Exchange& ex) {
    auto batch = cursor->read(limit);
    if (!batch.closed && !batch.gap && batch.entries.empty()) return false;  // a spurious wake-up
    const auto h = hub.lock();
    answer(ex, h.get(), true, batch, cursor->next_position(), !h || h->stopped());
    return true;
  }

  std::unique_ptr<Hub::Cursor> cursor;
  std::weak_ptr<Hub> hub;
  std::size_t limit;
  PollDeadlines* deadlines = nullptr;
  // Guarded by the PollDeadlines' mutex:
  PollDeadlines::Map::iterator entry;
  bool registered = false;
};

void PollDeadlines::add(const std::shared_ptr<HeldPoll>& poll, clock::time_point when, const executor& ex) {
  bool earlier = false;
  {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    if (!strand_) strand_.emplace(asio::make_strand(ex));
    poll->deadlines = this;
    poll->entry = polls_.emplace(when, poll);
    poll->registered = true;
    if (when < armed_) {
      armed_ = when;
      earlier = true;
    }
  }
  if (earlier) asio::post(*strand_, [this] { rearm(); });
}

void PollDeadlines::remove(HeldPoll& poll) noexcept {
  std::lock_guard lock(mu_);
  if (poll.registered && !shut_down_) polls_.erase(poll.entry);
  poll.registered = false;
}

void PollDeadlines::rearm() {
  clock::time_point when;
  {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    when = armed_;
    if (!timer_) timer_.emplace(*strand_);
  }
  if (when == clock::time_point::max()) return;
  timer_->expires_at(when);  // cancels a wait for a later deadline
  timer_->async_wait([this](boost::system::error_code ec) { expire(ec); });
}

void PollDeadlines::expire(boost::system::error_code ec) {
  if (ec) return;  // re-armed (or shut down)
  std::vector<std::shared_ptr<HeldPoll>> due;
  {
    std::lock_guard lock(mu_);
    const auto now = clock::now();
    for (auto it = polls_.begin(); it != polls_.end() && it->first <= now;) {
      if (auto p = it->second.lock()) {
        p->registered = false;
        due.push_back(std::move(p));
        it = polls_.erase(it);
      } else {
        ++it;  // being destroyed: its destructor erases it
      }
    }
    auto next = polls_.begin();
    while (next != polls_.end() && next->first <= now) ++next;
    armed_ = next == polls_.end() ? clock::time_point::max() : next->first;
  }
  for (auto& p : due) p->cursor->close();
  due.clear();
  rearm();
}

/// Validates the request and reads what follows its position; answers at once (returns null)
/// unless a long poll has to wait, in which case the returned poll is armed (its timer closes
/// the cursor when the wait ends).
std::shared_ptr<HeldPoll> start_poll(const std::weak_ptr<Hub>& weak, Exchange& ex, bool hold, const executor* exec) {
  std::shared_ptr<Hub> hub = weak.lock();
  if (!hub || hub->stopped()) {
    answer_text(ex, hub ? &hub->options() : nullptr, bhttp::status::service_unavailable, "the hub is stopping\n");
    return nullptr;
  }
  const HubOptions& options = hub->options();
  PollQuery q;
  if (auto bad = parse_query(ex, options.poll, hold, q)) {
    answer_text(ex, &options, bhttp::status::bad_request, *bad + "\n");
    return nullptr;
  }
  // A foreign epoch (the hub restarted) or a position not reached yet: a gap, then every
  // message held — the hub's new history is all new to this client. A first read without a
  // cursor: most polls are answered from it.
  std::string next;
  auto batch = hub->peek(ex.param("topic"), q.from, UnknownPosition::from_earliest, options.open_topics, q.limit, next);
  if (!batch) {
    answer_text(ex, &options, bhttp::status::not_found, "unknown topic\n");
    return nullptr;
  }
  if (!hold || batch->closed || batch->gap || !batch->entries.empty() || q.wait <= duration::zero()) {
    answer(ex, hub.get(), hold, *batch, next, false);
    return nullptr;
  }
  // Nothing yet: a cursor right after what the peek saw (so a message published meanwhile is
  // read at once), held until a publish rings it.
  auto cursor = hub->open(ex.param("topic"), Position::after(next), UnknownPosition::from_earliest, false);
  if (!cursor) {
    answer_text(ex, &options, bhttp::status::not_found, "unknown topic\n");
    return nullptr;
  }
  auto held = std::make_shared<HeldPoll>(std::move(cursor), hub, q.limit);
  auto& ctx = asio::query(*exec, asio::execution::context);
  asio::use_service<PollDeadlines>(ctx).add(held, clock::now() + q.wait, *exec);
  ex.request() = Request();  // a held poll keeps nothing of its request (the server kept its version)
  return held;
}

/// Serves one long poll. Only what a held poll needs lives in this frame.
awaitable<void> serve_long_poll(std::weak_ptr<Hub> weak, Exchange& ex) {
  const executor exec = co_await asio::this_coro::executor;
  const std::shared_ptr<HeldPoll> held = start_poll(weak, ex, true, &exec);
  if (!held) co_return;
  for (;;) {
    co_await held->cursor->wait();
    if (held->try_finish(ex)) co_return;
  }
}

/// Serves one short poll: answered at once, without suspending. `weak` is the route's own
/// (the server holds the route while its handler runs).
awaitable<void> serve_short_poll(const std::weak_ptr<Hub>& weak, Exchange& ex) {
  start_poll(weak, ex, false, nullptr);
  co_return;
}

}  // namespace

void mount_polling(const std::weak_ptr<Hub>& hub, Server& server) {
  RouteOptions held;
  held.held = true;  // no request_timeout while held; at Server::stop() answered, not cut
  server.route(
      bhttp::verb::get, "/topics/{topic}/poll",
      [hub](Exchange& ex) -> awaitable<void> { return serve_long_poll(hub, ex); }, held);
  server.route(bhttp::verb::get, "/topics/{topic}/messages",
               [hub](Exchange& ex) -> awaitable<void> { return serve_short_poll(hub, ex); });
}

}  // namespace patchbay::http
