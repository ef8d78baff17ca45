// The `trace-context` middleware: W3C parsing rules, propagation on inproc (linked in), and one
// trace id carried end to end — a request over a real socket (the `http` transport), its
// handler publishing on inproc, a subscriber continuing the trace with continue_trace() — with both
// modules loaded through config `plugins:`.
#include <patchbay/plugins/trace_context/trace_context.hpp>

#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <plugin_test.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>

#include <functional>
#include <mutex>
#include <set>

namespace {

using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::Message;
using patchbay::plugins::trace_context::TraceContext;
namespace asio = patchbay::asio;
namespace t = patchbay::plugins::testing;
namespace tc = patchbay::plugins::trace_context;

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextParse, AcceptsTheSpecExample) {
  auto c = TraceContext::parse(kValid, "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(c->parent_id_hex(), "00f067aa0ba902b7");
  EXPECT_TRUE(c->sampled());
  EXPECT_EQ(c->traceparent(), kValid);
  EXPECT_EQ(c->tracestate, "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7");
}

TEST(TraceContextParse, RejectsMalformedValues) {
  for (const char* bad : {
           "",                                                          // empty
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      // no flags
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // uppercase
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // forbidden version
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // version 00 with more
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // wrong separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   // not hex
           "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // later version, no '-'
       })
    EXPECT_FALSE(TraceContext::parse(bad)) << bad;
}

TEST(TraceContextParse, AcceptsLaterVersionsAndKeepsOnlyTheSampledFlag) {
  auto c = TraceContext::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->traceparent(), kValid);  // sent on as version 00, unknown flag bits cleared
}

TEST(TraceContextParse, TracestateRules) {
  EXPECT_TRUE(tc::valid_tracestate("rojo=00f067aa0ba902b7"));
  EXPECT_TRUE(tc::valid_tracestate("tenant@system=x, a=b,,c=d"));
  EXPECT_FALSE(tc::valid_tracestate("Rojo=1"));       // uppercase key
  EXPECT_FALSE(tc::valid_tracestate("a=1,a=2"));      // duplicate key
  EXPECT_FALSE(tc::valid_tracestate("a=x=y"));        // '=' in value
  EXPECT_FALSE(tc::valid_tracestate("novalue"));
  std::string many;
  for (int i = 0; i < 33; ++i) many += "k" + std::to_string(i) + "=v,";
  EXPECT_FALSE(tc::valid_tracestate(many));
  // A context with a bad tracestate keeps its traceparent and drops the state.
  auto c = TraceContext::parse(kValid, "BAD");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->tracestate.empty());
}

TEST(TraceContextParse, GenerateAndChild) {
  auto a = TraceContext::generate(true);
  auto b = TraceContext::generate(false);
  EXPECT_NE(a.trace_id, b.trace_id);
  EXPECT_TRUE(a.sampled());
  EXPECT_FALSE(b.sampled());
  EXPECT_TRUE(TraceContext::parse(a.traceparent()));
  auto c = a.child();
  EXPECT_EQ(c.trace_id, a.trace_id);
  EXPECT_NE(c.parent_id, a.parent_id);
}

/// Publishes after a suspension (so that the publish runs after a resumption, possibly on
/// another thread), checking that a context is current there.
awaitable<void> publish_later(patchbay::Topic topic, Message m) {
  asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
  co_await timer.async_wait(asio::use_awaitable_t<patchbay::executor>{});
  EXPECT_TRUE(tc::current());
  co_await topic.publish(std::move(m));
}

/// Reads one delivery of `events` and continues its trace on `audit` with continue_trace().
awaitable<void> consume_one(patchbay::Stream<patchbay::Delivery> sub, patchbay::Topic audit,
                            std::function<void(const Message&)> record) {
  auto d = co_await sub.next();
  if (!d) co_return;
  record(d->message());
  // The middleware is a module here, with its own copy of current(): within() from this
  // program would not reach it, the headers do (see trace_context.hpp).
  Message out("audited");
  tc::continue_trace(d->message(), out);
  co_await audit.publish(std::move(out));
  d->ack();
}

std::string inproc_config(const std::string& plugins) {
  return plugins +
         "transports:\n"
         "  bus: { type: inproc }\n"
         "bindings:\n"
         "  orders:\n"
         "    transport: bus\n"
         "    middleware: [ { type: trace-context } ]\n"
         "  unsampled:\n"
         "    transport: bus\n"
         "    middleware: [ { type: trace-context, sampled: false } ]\n";
}

/// Publishes `m` on `name` and returns the message its subscriber received.
Message round_trip(patchbay::Runtime& rt, const std::string& name, Message m) {
  return t::run(rt, [&rt, &name, m]() mutable -> awaitable<Message> {
    auto topic = rt.topic(name);
    auto sub = co_await topic.subscribe();
    co_await topic.publish(std::move(m));
    auto d = co_await sub.next();
    if (!d) throw std::runtime_error("subscription ended");
    d->ack();
    co_return d->message();
  });
}

TEST(TraceContextMiddleware, StartsContinuesAndReplacesOnPublish) {
  auto rt = t::start_runtime(inproc_config(""), [](patchbay::Registry& r) { ASSERT_TRUE(tc::register_middleware(r).ok()); });
  ASSERT_TRUE(rt);

  // Absent: a new sampled trace.
  auto fresh = TraceContext::from(round_trip(*rt, "orders", Message("a")));
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(fresh->sampled());
  auto unsampled = TraceContext::from(round_trip(*rt, "unsampled", Message("a")));
  ASSERT_TRUE(unsampled);
  EXPECT_FALSE(unsampled->sampled());

  // Valid: the same trace, a new parent id, tracestate kept.
  Message with;
  with.payload = patchbay::Bytes("b");
  with.headers.add("traceparent", kValid);
  with.headers.add("tracestate", "rojo=00f067aa0ba902b7");
  auto continued = TraceContext::from(round_trip(*rt, "orders", std::move(with)));
  ASSERT_TRUE(continued);
  EXPECT_EQ(continued->trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_NE(continued->parent_id_hex(), "00f067aa0ba902b7");
  EXPECT_EQ(continued->tracestate, "rojo=00f067aa0ba902b7");

  // Malformed: replaced by a new trace, its tracestate dropped.
  Message bad;
  bad.headers.add("traceparent", "00-xyz");
  bad.headers.add("tracestate", "rojo=1");
  Message got = round_trip(*rt, "orders", std::move(bad));
  auto replaced = TraceContext::from(got);
  ASSERT_TRUE(replaced);
  EXPECT_EQ(got.headers.get_all("traceparent").size(), 1u);
  EXPECT_FALSE(got.headers.contains("tracestate"));

  // current() inside within() is continued by a publish.
  Message in;
  in.headers.add("traceparent", kValid);
  auto inside = t::run(*rt, [&]() -> awaitable<Message> {
    auto topic = rt->topic("orders");
    auto sub = co_await topic.subscribe();
    co_await tc::within(in, publish_later(topic, Message("from inside")));
    EXPECT_FALSE(tc::current());  // nothing leaks out of within()
    auto d = co_await sub.next();
    if (!d) throw std::runtime_error("subscription ended");
    co_return d->message();
  });
  auto inside_ctx = TraceContext::from(inside);
  ASSERT_TRUE(inside_ctx);
  EXPECT_EQ(inside_ctx->trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  t::stop(rt);
}

TEST(TraceContextMiddleware, ServedCallContextIsCurrentInTheHandler) {
  auto rt = t::start_runtime(inproc_config(""), [](patchbay::Registry& r) { ASSERT_TRUE(tc::register_middleware(r).ok()); });
  ASSERT_TRUE(rt);
  std::mutex mu;
  std::string served;  // the traceparent the handler saw last
  patchbay::ServiceHandler handler = [&mu, &served, events = rt->topic("unsampled")](Message req) mutable -> awaitable<Message> {
    {
      std::lock_guard lock(mu);
      served = std::string(req.headers.get("traceparent").value_or(""));
    }
    // Suspend first: the publish runs after a resumption, possibly on another thread.
    asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
    co_await timer.async_wait(asio::use_awaitable_t<patchbay::executor>{});
    EXPECT_TRUE(tc::current());
    co_await events.publish(Message("from the handler"));
    co_return Message("ok");
  };
  asio::co_spawn(rt->get_executor(), rt->service("orders").serve(handler), asio::detached);
  for (int round = 0; round < 20; ++round) {
    auto published = t::run(*rt, [&]() -> awaitable<std::string> {
      auto ex = co_await asio::this_coro::executor;
      auto sub = co_await rt->topic("unsampled").subscribe();
      auto rpc = rt->service("orders");
      asio::steady_timer timer(ex);
      for (int i = 0; i < 2000; ++i) {  // until the handler is registered
        bool answered = false;
        try {
          co_await rpc.request(Message("call"), 20s);
          answered = true;
        } catch (const boost::system::system_error& e) {
          if (e.code() != patchbay::errc::no_responders) throw;
        }
        if (answered) break;
        timer.expires_after(2ms);
        co_await timer.async_wait(asio::use_awaitable_t<patchbay::executor>{});
      }
      auto d = co_await sub.next();
      if (!d) throw std::runtime_error("subscription ended");
      co_return std::string(d->message().headers.get("traceparent").value_or(""));
    });
    std::lock_guard lock(mu);
    auto in = TraceContext::parse(served), out = TraceContext::parse(published);
    ASSERT_TRUE(in && out) << served << " / " << published;
    EXPECT_EQ(in->trace_id, out->trace_id);
    EXPECT_NE(in->parent_id, out->parent_id);
    EXPECT_TRUE(out->sampled()) << "continued, not a new (unsampled) trace";
  }
  t::stop(rt);
}

TEST(TraceContextMiddleware, OneTraceIdEndToEndAcrossHttpAndInproc) {
  // `rpc` is request/response over a real socket (the http transport calls its own listener);
  // `events` and `audit` are in-process. All three carry the middleware, loaded as a module.
  auto rt = t::start_runtime(std::string("plugins: [ ") + PATCHBAY_HTTP_MODULE + ", " + PATCHBAY_TRACE_CONTEXT_MODULE +
                             " ]\n"
                             "transports:\n"
                             "  web: { type: http, listen: \"127.0.0.1:0\" }\n"
                             "  bus: { type: inproc }\n"
                             "bindings:\n"
                             "  rpc: { transport: web, middleware: [ { type: trace-context } ] }\n"
                             "  events: { transport: bus, middleware: [ { type: trace-context } ] }\n"
                             "  audit: { transport: bus, middleware: [ { type: trace-context } ] }\n");
  ASSERT_TRUE(rt);
  std::mutex mu;
  std::vector<std::string> seen;  // traceparent at each hop, in order
  auto record = [&](const Message& m) {
    std::lock_guard lock(mu);
    seen.push_back(std::string(m.headers.get("traceparent").value_or("")));
  };

  // The handler publishes on `events` after a suspension: the served call's context is current
  // in it at every step.
  // (No temporaries in a full expression that also has a co_await: GCC 12 destroys them twice.)
  patchbay::ServiceHandler handler = [&record, events = rt->topic("events")](Message req) mutable -> awaitable<Message> {
    record(req);
    asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
    co_await timer.async_wait(asio::use_awaitable_t<patchbay::executor>{});
    co_await events.publish(Message("order placed"));
    co_return Message("ok");
  };
  asio::co_spawn(rt->get_executor(), rt->service("rpc").serve(handler), asio::detached);

  for (bool caller_sets_context : {true, false}) {
    {
      std::lock_guard lock(mu);
      seen.clear();
    }
    auto result = t::run(*rt, [&]() -> awaitable<Message> {
      auto ex = co_await asio::this_coro::executor;
      auto rpc = rt->service("rpc");
      auto audit = rt->topic("audit");
      auto audit_sub = co_await audit.subscribe();
      auto events_sub = co_await rt->topic("events").subscribe();
      // A consumer of `events` continues the trace on `audit`.
      asio::co_spawn(ex, consume_one(std::move(events_sub), audit, record), asio::detached);

      Message request("place order");
      if (caller_sets_context) request.headers.add("traceparent", kValid);
      Message reply;
      asio::steady_timer timer(ex);
      for (int i = 0; i < 2000; ++i) {  // until the handler is registered
        bool answered = false;
        try {
          reply = co_await rpc.request(request, 20s);
          answered = true;
        } catch (const boost::system::system_error& e) {
          if (e.code() != patchbay::errc::no_responders) throw;
        }
        if (answered) break;
        timer.expires_after(5ms);
        co_await timer.async_wait(asio::use_awaitable_t<patchbay::executor>{});
      }
      EXPECT_EQ(reply.payload.view(), "ok");
      auto d = co_await audit_sub.next();
      if (!d) throw std::runtime_error("audit subscription ended");
      co_return d->message();
    });
    record(result);

    std::lock_guard lock(mu);
    ASSERT_EQ(seen.size(), 3u) << "served call, events delivery, audit delivery";
    std::set<std::string> parents;
    std::string trace;
    for (const auto& tp : seen) {
      auto c = TraceContext::parse(tp);
      ASSERT_TRUE(c) << tp;
      if (trace.empty()) trace = c->trace_id_hex();
      EXPECT_EQ(c->trace_id_hex(), trace) << "one trace id at every hop: " << tp;
      parents.insert(c->parent_id_hex());
    }
    EXPECT_EQ(parents.size(), 3u) << "a new parent id per hop";
    if (caller_sets_context) {
      EXPECT_EQ(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    }
    EXPECT_FALSE(parents.count("00f067aa0ba902b7"));
  }
  t::stop(rt);
}

}  // namespace
