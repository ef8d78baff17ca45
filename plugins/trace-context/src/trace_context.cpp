// The `trace-context` middleware (see the header): W3C traceparent/tracestate on every message.
//
// Making a context current for a coroutine: a thread-local alone is not enough, since a
// coroutine may suspend and resume on another thread (and others run on this one meanwhile).
// So a served call's handler is spawned on ContextExecutor, an executor adapter that installs
// the context around every function it runs: each resumption of the handler goes through its
// executor, so the handler always sees its own context and never another's.
#include <patchbay/plugins/trace_context/trace_context.hpp>

#include <patchbay/middleware.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/plugins/support.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <random>
#include <type_traits>
#include <vector>
#include <utility>

namespace patchbay::plugins::trace_context {
namespace {

thread_local std::optional<TraceContext> current_context;

std::uint64_t random64() {
  thread_local std::mt19937_64 engine([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }());
  return engine();
}

template <std::size_t N>
void fill_random(std::array<std::uint8_t, N>& out) {
  do {
    for (std::size_t i = 0; i < N; i += 8) {
      std::uint64_t r = random64();
      for (std::size_t j = 0; j < 8 && i + j < N; ++j) out[i + j] = static_cast<std::uint8_t>(r >> (8 * j));
    }
  } while (std::all_of(out.begin(), out.end(), [](std::uint8_t b) { return b == 0; }));
}

template <std::size_t N>
std::string to_hex(const std::array<std::uint8_t, N>& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s(2 * N, '0');
  for (std::size_t i = 0; i < N; ++i) {
    s[2 * i] = digits[bytes[i] >> 4];
    s[2 * i + 1] = digits[bytes[i] & 0xf];
  }
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is invalid in traceparent
}

template <std::size_t N>
bool from_hex(std::string_view s, std::array<std::uint8_t, N>& out) {
  if (s.size() != 2 * N) return false;
  bool all_zero = true;
  for (std::size_t i = 0; i < N; ++i) {
    int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    all_zero = all_zero && out[i] == 0;
  }
  return !all_zero;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool valid_key(std::string_view key) {
  // simple-key = lcalpha 0*255(lcalpha / DIGIT / "_" / "-"/ "*" / "/")
  // multi-tenant-key = tenant-id "@" system-id; tenant-id = (lcalpha / DIGIT) 0*240(...);
  // system-id = lcalpha 0*13(...)
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
  };
  auto at = key.find('@');
  if (at == std::string_view::npos) {
    if (key.empty() || key.size() > 256 || !(key[0] >= 'a' && key[0] <= 'z')) return false;
    return std::all_of(key.begin(), key.end(), allowed);
  }
  auto tenant = key.substr(0, at), system = key.substr(at + 1);
  if (tenant.empty() || tenant.size() > 241 || system.empty() || system.size() > 14) return false;
  if (!((tenant[0] >= 'a' && tenant[0] <= 'z') || (tenant[0] >= '0' && tenant[0] <= '9'))) return false;
  if (!(system[0] >= 'a' && system[0] <= 'z')) return false;
  return std::all_of(tenant.begin(), tenant.end(), allowed) && std::all_of(system.begin(), system.end(), allowed);
}

bool valid_value(std::string_view value) {
  // value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
  if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
  for (char c : value)
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
  return true;
}

/// An executor that makes a trace context current around everything it runs.
template <typename Inner>
class ContextExecutor {
 public:
  ContextExecutor(Inner inner, std::shared_ptr<const TraceContext> ctx) noexcept
      : inner_(std::move(inner)), ctx_(std::move(ctx)) {}

  template <typename F>
  void execute(F&& f) const {
    inner_.execute(Bound<std::decay_t<F>>{ctx_, std::forward<F>(f)});
  }

  template <typename Property>
    requires requires(const Inner& i, const Property& p) { asio::query(i, p); }
  decltype(auto) query(const Property& p) const {
    return asio::query(inner_, p);
  }

  template <typename Property>
    requires requires(const Inner& i, const Property& p) { asio::require(i, p); }
  auto require(const Property& p) const {
    using Next = std::decay_t<decltype(asio::require(inner_, p))>;
    return ContextExecutor<Next>(asio::require(inner_, p), ctx_);
  }

  template <typename Property>
    requires requires(const Inner& i, const Property& p) { asio::prefer(i, p); }
  auto prefer(const Property& p) const {
    using Next = std::decay_t<decltype(asio::prefer(inner_, p))>;
    return ContextExecutor<Next>(asio::prefer(inner_, p), ctx_);
  }

  friend bool operator==(const ContextExecutor& a, const ContextExecutor& b) noexcept {
    return a.inner_ == b.inner_ && a.ctx_ == b.ctx_;
  }
  friend bool operator!=(const ContextExecutor& a, const ContextExecutor& b) noexcept { return !(a == b); }

 private:
  template <typename F>
  struct Bound {
    std::shared_ptr<const TraceContext> ctx;
    F f;
    void operator()() {
      Scope scope(*ctx);
      f();
    }
  };

  Inner inner_;
  std::shared_ptr<const TraceContext> ctx_;
};

// The spawned work's completion resumes the caller inline, still inside the context
// executor's scope; the caller therefore hops once through its own executor (a post) before it
// goes on, so that the context never leaks into it.
awaitable<void> run_within(TraceContext ctx, awaitable<void> work) {
  executor here = co_await asio::this_coro::executor;
  executor with_context(ContextExecutor<executor>(here, std::make_shared<const TraceContext>(std::move(ctx))));
  std::exception_ptr failure;
  try {
    co_await asio::co_spawn(with_context, std::move(work), asio::use_awaitable_t<executor>{});
  } catch (...) {
    failure = std::current_exception();
  }
  co_await asio::post(here, asio::use_awaitable_t<executor>{});
  if (failure) std::rethrow_exception(failure);
}

awaitable<Message> run_within(TraceContext ctx, awaitable<Message> work) {
  executor here = co_await asio::this_coro::executor;
  executor with_context(ContextExecutor<executor>(here, std::make_shared<const TraceContext>(std::move(ctx))));
  std::exception_ptr failure;
  Message result;
  try {
    result = co_await asio::co_spawn(with_context, std::move(work), asio::use_awaitable_t<executor>{});
  } catch (...) {
    failure = std::current_exception();
  }
  co_await asio::post(here, asio::use_awaitable_t<executor>{});
  if (failure) std::rethrow_exception(failure);
  co_return result;
}

/// The context an incoming message carries; a new trace (written into its headers) when it
/// carries none or a malformed one.
TraceContext adopt(Message& msg, bool sampled) {
  if (auto ctx = TraceContext::from(msg)) return *ctx;
  TraceContext fresh = TraceContext::generate(sampled);
  msg.headers.set(kTraceparent, fresh.traceparent());
  msg.headers.remove(kTracestate);
  return fresh;
}

class TraceContextMiddleware final : public Middleware {
 public:
  TraceContextMiddleware(std::shared_ptr<Transport> inner, bool sampled) : Middleware(std::move(inner)), sampled_(sampled) {}

 protected:
  // Coroutines, so that stamping happens when the call is awaited — inside the awaiting
  // coroutine, where its current context is installed — not when the awaitable is made:
  // `within(ctx, topic.publish(m))` continues `ctx`.
  awaitable<void> do_publish(Message msg) override {
    stamp(msg);
    co_await inner()->publish(std::move(msg));
  }
  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    stamp(msg);
    co_return co_await inner()->request(std::move(service), std::move(msg), until);
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    const bool sampled = sampled_;
    Stream<Delivery> inner_stream = co_await inner()->subscribe(std::move(topic), std::move(options));
    co_return support::wrap_deliveries(std::move(inner_stream), [sampled](Delivery d) -> std::optional<Delivery> {
      if (!d.is_gap()) adopt(d.message(), sampled);
      return d;
    });
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    auto h = std::make_shared<ServiceHandler>(std::move(handler));
    const bool sampled = sampled_;
    ServiceHandler wrapped = [h, sampled](Message request) { return serve_one(h, sampled, std::move(request)); };
    return inner()->serve(std::move(service), std::move(wrapped));
  }

 private:
  static awaitable<Message> serve_one(std::shared_ptr<ServiceHandler> handler, bool sampled, Message request) {
    TraceContext ctx = adopt(request, sampled);
    co_return co_await run_within(std::move(ctx), (*handler)(std::move(request)));
  }

  void stamp(Message& msg) const {
    std::optional<TraceContext> parent = TraceContext::from(msg);
    if (!parent) parent = current();
    TraceContext next = parent ? parent->child() : TraceContext::generate(sampled_);
    msg.headers.set(kTraceparent, next.traceparent());
    if (next.tracestate.empty())
      msg.headers.remove(kTracestate);
    else
      msg.headers.set(kTracestate, next.tracestate);
  }

  bool sampled_;
};

absl::StatusOr<std::shared_ptr<Transport>> make_trace_context(const MiddlewareContext& ctx) {
  auto sampled = ctx.settings.get_bool("sampled", true);
  if (!sampled.ok()) return sampled.status();
  return std::make_shared<TraceContextMiddleware>(ctx.inner, *sampled);
}

absl::Status register_trace_context(Registry& registry) {
  return registry.add_middleware("trace-context", make_trace_context);
}

}  // namespace

std::string TraceContext::trace_id_hex() const { return to_hex(trace_id); }
std::string TraceContext::parent_id_hex() const { return to_hex(parent_id); }

std::string TraceContext::traceparent() const {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s = "00-" + trace_id_hex() + "-" + parent_id_hex() + "-";
  const std::uint8_t f = flags & 1;  // version 00 defines only `sampled`; other bits go out as zero
  s += digits[f >> 4];
  s += digits[f & 0xf];
  return s;
}

TraceContext TraceContext::generate(bool sampled) {
  TraceContext c;
  fill_random(c.trace_id);
  fill_random(c.parent_id);
  c.flags = sampled ? 1 : 0;
  return c;
}

TraceContext TraceContext::child() const {
  TraceContext c = *this;
  fill_random(c.parent_id);
  return c;
}

std::optional<TraceContext> TraceContext::parse(std::string_view traceparent, std::string_view tracestate) {
  std::string_view v = trim(traceparent);
  if (v.size() < 55) return std::nullopt;
  int version_hi = hex_value(v[0]), version_lo = hex_value(v[1]);
  if (version_hi < 0 || version_lo < 0 || v[2] != '-') return std::nullopt;
  const int version = version_hi << 4 | version_lo;
  if (version == 0xff) return std::nullopt;
  if (version == 0 && v.size() != 55) return std::nullopt;
  if (version > 0 && v.size() > 55 && v[55] != '-') return std::nullopt;  // later versions may append fields
  if (v[35] != '-' || v[52] != '-') return std::nullopt;
  TraceContext c;
  if (!from_hex(v.substr(3, 32), c.trace_id) || !from_hex(v.substr(36, 16), c.parent_id)) return std::nullopt;
  int f_hi = hex_value(v[53]), f_lo = hex_value(v[54]);
  if (f_hi < 0 || f_lo < 0) return std::nullopt;
  c.flags = static_cast<std::uint8_t>((f_hi << 4 | f_lo) & 1);
  if (valid_tracestate(tracestate)) c.tracestate = std::string(trim(tracestate));
  return c;
}

std::optional<TraceContext> TraceContext::from(const Message& msg) {
  auto parents = msg.headers.get_all(kTraceparent);
  if (parents.size() != 1) return std::nullopt;  // none, or ambiguous: both are replaced
  std::string state;
  for (auto s : msg.headers.get_all(kTracestate)) {  // several tracestate fields form one list
    if (!state.empty()) state += ',';
    state += s;
  }
  return parse(parents.front(), state);
}

bool valid_tracestate(std::string_view tracestate) {
  std::string_view rest = tracestate;
  int members = 0;
  std::vector<std::string_view> keys;
  while (true) {
    auto comma = rest.find(',');
    std::string_view member = trim(rest.substr(0, comma));
    if (!member.empty()) {
      auto eq = member.find('=');
      if (eq == std::string_view::npos || !valid_key(member.substr(0, eq)) || !valid_value(member.substr(eq + 1)))
        return false;
      auto key = member.substr(0, eq);
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) return false;  // keys are unique
      keys.push_back(key);
      if (++members > 32) return false;
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return members > 0;
}

std::optional<TraceContext> current() { return current_context; }

Scope::Scope(std::optional<TraceContext> ctx) : previous_(std::move(current_context)) {
  current_context = std::move(ctx);
}
Scope::~Scope() { current_context = std::move(previous_); }

awaitable<void> within(TraceContext ctx, awaitable<void> work) { return run_within(std::move(ctx), std::move(work)); }
awaitable<Message> within(TraceContext ctx, awaitable<Message> work) {
  return run_within(std::move(ctx), std::move(work));
}
awaitable<void> within(const Message& incoming, awaitable<void> work) {
  auto ctx = TraceContext::from(incoming);
  return run_within(ctx ? *ctx : TraceContext::generate(true), std::move(work));
}

void continue_trace(const Message& from, Message& to) {
  auto ctx = TraceContext::from(from);
  if (!ctx) return;
  to.headers.set(kTraceparent, ctx->traceparent());
  if (ctx->tracestate.empty())
    to.headers.remove(kTracestate);
  else
    to.headers.set(kTracestate, ctx->tracestate);
}

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_middleware(Registry& registry) { return register_trace_context(registry); }
#endif

}  // namespace patchbay::plugins::trace_context

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::plugins::trace_context::register_trace_context)
#endif
