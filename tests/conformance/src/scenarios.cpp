// The conformance scenarios. Each receives a fresh, started transport and unique names; each
// is gated by the features it needs. Waits are bounded by the harness's generous deadlines;
// nothing here asserts how long anything took.
#include "scenarios.hpp"

#include <patchbay/error.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>

namespace patchbay::conformance {
namespace {

using namespace std::chrono_literals;

Message make_message(std::string payload) {
  Message m{Bytes(std::move(payload))};
  m.stamp();
  return m;
}

awaitable<void> publish(Context& ctx, const std::string& topic, Message m) {
  m.topic = topic;
  m.stamp();
  co_await ctx.transport->publish(std::move(m));
}

awaitable<Delivery> expect_next(Context& ctx, Stream<Delivery>& s, const std::string& what) {
  Next n = co_await next_for(s, ctx.harness.delivery_timeout);
  PB_REQUIRE(n.what != Next::kind::timed_out,
             what + ": nothing arrived within " + std::to_string(ctx.harness.delivery_timeout.count()) + " s");
  PB_REQUIRE(n.what == Next::kind::item, what + ": the stream ended");
  co_return std::move(*n.delivery);
}

/// The next message delivery, skipping nothing: a gap here is a failure.
awaitable<Delivery> expect_message(Context& ctx, Stream<Delivery>& s, const std::string& what) {
  Delivery d = co_await expect_next(ctx, s, what);
  PB_REQUIRE(!d.is_gap(), what + ": got a gap (" + (d.is_gap() ? d.gap().reason : "") + ") instead of a message");
  co_return d;
}

awaitable<void> expect_quiet(Context& ctx, Stream<Delivery>& s, const std::string& what) {
  Next n = co_await next_for(s, ctx.harness.quiet_period);
  PB_REQUIRE(n.what != Next::kind::item,
             what + ": an unexpected delivery arrived (id " + n.delivery->message().id + ", payload '" +
                 std::string(n.delivery->message().payload.view().substr(0, 64)) + "')");
}

awaitable<void> sleep_for(duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable_t<executor>{});
}

/// Waits until `cond()` holds, failing when `progress()` has not changed for the delivery timeout.
template <typename Cond, typename Progress>
awaitable<void> wait_until(Context& ctx, Cond cond, Progress progress, const std::string& what) {
  auto last = progress();
  auto last_change = clock::now();
  while (!cond()) {
    co_await sleep_for(5ms);
    auto now_progress = progress();
    if (now_progress != last) {
      last = now_progress;
      last_change = clock::now();
    }
    PB_REQUIRE(clock::now() - last_change < ctx.harness.delivery_timeout,
               what + ": no progress for " + std::to_string(ctx.harness.delivery_timeout.count()) + " s (at " +
                   std::to_string(last) + ")");
  }
}

bool always(const Features& f, const Harness&) { return f.publish_subscribe; }

// --- publish / subscribe ------------------------------------------------------------------

awaitable<void> round_trip(Context& ctx) {
  auto topic = ctx.unique("t");
  auto sub = co_await ctx.transport->subscribe(topic, {});
  Message m = make_message("hello");
  const std::string id = m.id;
  co_await publish(ctx, topic, std::move(m));
  Delivery d = co_await expect_message(ctx, sub, "round trip");
  PB_REQUIRE(d.message().payload.view() == "hello", "payload '" + d.message().payload.str() + "'");
  PB_REQUIRE(d.message().id == id, "id '" + d.message().id + "' differs from the published '" + id + "'");
  PB_REQUIRE(d.message().topic == topic, "topic '" + d.message().topic + "'");
  PB_REQUIRE(!d.redelivered(), "a first delivery is marked redelivered");
  d.ack();
}

awaitable<void> fan_out_to_three(Context& ctx) {
  auto topic = ctx.unique("t");
  std::vector<Stream<Delivery>> subs;
  for (int i = 0; i < 3; ++i) subs.push_back(co_await ctx.transport->subscribe(topic, {}));
  for (int i = 0; i < 3; ++i) co_await publish(ctx, topic, make_message("m" + std::to_string(i)));
  for (int s = 0; s < 3; ++s) {
    std::multiset<std::string> got;
    for (int i = 0; i < 3; ++i) {
      Delivery d = co_await expect_message(ctx, subs[s], "subscriber " + std::to_string(s));
      if (ctx.features.ordered)
        PB_REQUIRE(d.message().payload.view() == "m" + std::to_string(i),
                   "subscriber " + std::to_string(s) + " got '" + d.message().payload.str() + "' at " + std::to_string(i));
      got.insert(d.message().payload.str());
      d.ack();
    }
    PB_REQUIRE((got == std::multiset<std::string>{"m0", "m1", "m2"}), "subscriber " + std::to_string(s) + " got another set");
    co_await expect_quiet(ctx, subs[s], "subscriber " + std::to_string(s) + " after 3 messages");
  }
}

awaitable<void> consumer_group_splits(Context& ctx) {
  auto topic = ctx.unique("t");
  const std::size_t n = ctx.harness.bulk_messages;
  constexpr int members = 3;
  std::vector<Stream<Delivery>> subs;
  for (int i = 0; i < members; ++i) subs.push_back(co_await ctx.transport->subscribe(topic, SubscribeOptions().group("workers")));

  std::mutex mutex;
  std::set<std::string> seen;
  std::size_t duplicates = 0;
  std::atomic<std::size_t> received{0};
  std::atomic<bool> done{false};
  std::atomic<int> running{members};
  std::array<std::size_t, members> per_member{};
  for (int i = 0; i < members; ++i) {
    asio::co_spawn(
        ctx.fresh(),
        [&, i]() -> awaitable<void> {
          while (!done) {
            Next next = co_await next_for(subs[i], 100ms);
            if (next.what == Next::kind::ended) break;
            if (next.what != Next::kind::item || next.delivery->is_gap()) continue;
            {
              std::lock_guard lock(mutex);
              if (!seen.insert(next.delivery->message().id).second) ++duplicates;
              ++per_member[i];
            }
            next.delivery->ack();
            ++received;
          }
          --running;
        },
        asio::detached);
  }
  for (std::size_t i = 0; i < n; ++i) co_await publish(ctx, topic, make_message(std::to_string(i)));
  co_await wait_until(ctx, [&] { return received.load() >= n; }, [&] { return received.load(); }, "group members");
  // Give duplicates a chance to show up before we stop looking.
  co_await sleep_for(ctx.harness.quiet_period);
  done = true;
  co_await wait_until(ctx, [&] { return running.load() == 0; }, [&] { return std::size_t(running.load()); }, "members ending");
  std::lock_guard lock(mutex);
  PB_REQUIRE(duplicates == 0, std::to_string(duplicates) + " duplicates across the group");
  PB_REQUIRE(seen.size() == n, "received " + std::to_string(seen.size()) + " distinct of " + std::to_string(n));
}

awaitable<void> ordered_bulk(Context& ctx) {
  auto topic = ctx.unique("t");
  const std::size_t n = ctx.harness.bulk_messages;
  auto sub = co_await ctx.transport->subscribe(topic, {});
  auto ex = co_await asio::this_coro::executor;
  std::atomic<std::size_t> published{0};
  asio::co_spawn(
      ex,
      [&]() -> awaitable<void> {
        for (std::size_t i = 0; i < n; ++i) {
          co_await publish(ctx, topic, make_message(std::to_string(i)));
          ++published;
        }
      },
      asio::detached);
  for (std::size_t i = 0; i < n; ++i) {
    Delivery d = co_await expect_message(ctx, sub, "message " + std::to_string(i));
    PB_REQUIRE(d.message().payload.view() == std::to_string(i),
               "out of order: expected " + std::to_string(i) + ", got " + d.message().payload.str());
    d.ack();
  }
  co_await wait_until(ctx, [&] { return published.load() == n; }, [&] { return published.load(); }, "publisher");
}

awaitable<void> concurrent_publishers(Context& ctx) {
  auto topic = ctx.unique("t");
  constexpr int publishers = 4;
  const std::size_t per = ctx.harness.bulk_messages / publishers;
  auto sub = co_await ctx.transport->subscribe(topic, {});
  std::atomic<int> finished{0};
  std::atomic<int> failed{0};
  for (int p = 0; p < publishers; ++p) {
    // Each publisher on its own strand: they run on every io thread at once.
    asio::co_spawn(
        ctx.fresh(),
        [&, p]() -> awaitable<void> {
          try {
            for (std::size_t i = 0; i < per; ++i)
              co_await publish(ctx, topic, make_message(std::to_string(p) + ":" + std::to_string(i)));
          } catch (...) {
            ++failed;
          }
          ++finished;
        },
        asio::detached);
  }
  std::array<long, publishers> last{};
  last.fill(-1);
  std::set<std::string> seen;
  for (std::size_t k = 0; k < per * publishers; ++k) {
    Delivery d = co_await expect_message(ctx, sub, "delivery " + std::to_string(k));
    const std::string payload = d.message().payload.str();
    PB_REQUIRE(seen.insert(payload).second, "duplicate " + payload);
    const auto colon = payload.find(':');
    const int p = std::stoi(payload.substr(0, colon));
    const long i = std::stol(payload.substr(colon + 1));
    if (ctx.features.ordered)
      PB_REQUIRE(i == last[p] + 1, "publisher " + std::to_string(p) + " out of order: " + std::to_string(i) +
                                       " after " + std::to_string(last[p]));
    last[p] = i;
    d.ack();
  }
  co_await wait_until(ctx, [&] { return finished.load() == publishers; }, [&] { return std::size_t(finished.load()); }, "publishers");
  PB_REQUIRE(failed.load() == 0, std::to_string(failed.load()) + " publishers failed");
}

// --- acknowledgement ----------------------------------------------------------------------

bool at_least_once(const Features& f, const Harness&) { return f.publish_subscribe && f.at_least_once; }

awaitable<void> nack_redelivers(Context& ctx) {
  auto topic = ctx.unique("t");
  auto sub = co_await ctx.transport->subscribe(topic, {});
  Message m = make_message("retry me");
  const std::string id = m.id;
  co_await publish(ctx, topic, std::move(m));
  Delivery first = co_await expect_message(ctx, sub, "first delivery");
  PB_REQUIRE(first.message().id == id, "wrong message");
  first.nack(true);
  Delivery again = co_await expect_message(ctx, sub, "redelivery after nack");
  PB_REQUIRE(again.message().id == id, "redelivered another message: " + again.message().id);
  PB_REQUIRE(again.redelivered(), "a redelivery is not marked redelivered()");
  PB_REQUIRE(again.message().payload.view() == "retry me", "payload changed on redelivery");
  again.ack();
  co_await expect_quiet(ctx, sub, "after ack");
}

awaitable<void> unsettled_is_redelivered(Context& ctx) {
  auto topic = ctx.unique("t");
  auto sub = co_await ctx.transport->subscribe(topic, {});
  Message m = make_message("dropped on the floor");
  const std::string id = m.id;
  co_await publish(ctx, topic, std::move(m));
  {
    Delivery d = co_await expect_message(ctx, sub, "first delivery");
    // Destroyed without ack or nack: as if the handler threw.
  }
  Delivery again = co_await expect_message(ctx, sub, "redelivery of an unsettled delivery");
  PB_REQUIRE(again.message().id == id, "redelivered another message");
  PB_REQUIRE(again.redelivered(), "not marked redelivered()");
  again.ack();
}

awaitable<void> no_next_before_ack(Context& ctx) {
  auto topic = ctx.unique("t");
  auto sub = co_await ctx.transport->subscribe(topic, SubscribeOptions().max_in_flight(1));
  co_await publish(ctx, topic, make_message("one"));
  co_await publish(ctx, topic, make_message("two"));
  Delivery first = co_await expect_message(ctx, sub, "first");
  co_await expect_quiet(ctx, sub, "second before the first was acked (max_in_flight = 1)");
  const std::string first_payload = first.message().payload.str();
  first.ack();
  Delivery second = co_await expect_message(ctx, sub, "second after ack");
  PB_REQUIRE(second.message().payload.str() != first_payload, "the acked message came again");
  second.ack();
}

// --- payloads and headers -----------------------------------------------------------------

awaitable<void> binary_payloads(Context& ctx) {
  auto topic = ctx.unique("t");
  std::vector<std::string> payloads;
  std::string all(256, '\0');
  for (int i = 0; i < 256; ++i) all[i] = static_cast<char>(i);
  payloads.push_back(all);
  payloads.push_back("");
  payloads.push_back(std::string("\0\0\0", 3));
  const std::size_t big = 4u << 20;
  if (ctx.features.max_payload == 0 || ctx.features.max_payload >= big) {
    std::string large(big, '\0');
    for (std::size_t i = 0; i < big; ++i) large[i] = static_cast<char>((i * 131 + i / 256) & 0xff);
    payloads.push_back(std::move(large));
  }
  auto sub = co_await ctx.transport->subscribe(topic, {});
  std::map<std::string, std::size_t> index_of;
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    Message m = make_message(payloads[i]);
    index_of[m.id] = i;
    co_await publish(ctx, topic, std::move(m));
  }
  for (std::size_t k = 0; k < payloads.size(); ++k) {
    Delivery d = co_await expect_message(ctx, sub, "binary payload " + std::to_string(k));
    auto it = index_of.find(d.message().id);
    PB_REQUIRE(it != index_of.end(), "unknown id " + d.message().id);
    const std::string& want = payloads[it->second];
    PB_REQUIRE(d.message().payload.size() == want.size(),
               "payload " + std::to_string(it->second) + " size " + std::to_string(d.message().payload.size()) +
                   " != " + std::to_string(want.size()));
    PB_REQUIRE(d.message().payload.view() == want, "payload " + std::to_string(it->second) + " bytes differ");
    d.ack();
  }
}

bool has_headers(const Features& f, const Harness&) { return f.publish_subscribe && f.headers; }

awaitable<void> headers_round_trip(Context& ctx) {
  auto topic = ctx.unique("t");
  auto sub = co_await ctx.transport->subscribe(topic, {});
  Message m = make_message("with headers");
  m.headers.add("content-type", "application/json");
  m.headers.add("x-repeated", "one");
  m.headers.add("x-repeated", "two");
  m.headers.add("x-empty", "");
  m.headers.add("x-utf8", "gr\xc3\xbc\xc3\x9f dich \xe2\x9c\x93");
  m.headers.add("x-punctuation", "a=b; c=\"d, e\"");
  const Headers want = m.headers;
  co_await publish(ctx, topic, std::move(m));
  Delivery d = co_await expect_message(ctx, sub, "message with headers");
  Headers got;
  for (const auto& [k, v] : d.message().headers)
    if (k.rfind("patchbay-", 0) != 0) got.add(k, v);  // transports may add reserved headers
  std::string dump;
  for (const auto& [k, v] : got) dump += k + "=" + v + "; ";
  PB_REQUIRE(got == want, "headers differ; got: " + dump);
  d.ack();
}

bool bounded_payload(const Features& f, const Harness&) { return f.publish_subscribe && f.max_payload != 0; }

awaitable<void> payload_too_large(Context& ctx) {
  auto topic = ctx.unique("t");
  bool refused = false;
  try {
    co_await publish(ctx, topic, make_message(std::string(ctx.features.max_payload + 1, 'x')));
  } catch (const boost::system::system_error& e) {
    refused = e.code() == errc::payload_too_large;
  }
  PB_REQUIRE(refused, "a payload over max_payload was not refused with errc::payload_too_large");
}

// --- positions ----------------------------------------------------------------------------

bool has_replay(const Features& f, const Harness&) { return f.publish_subscribe && f.replay; }

awaitable<void> resume_from_position(Context& ctx) {
  auto topic = ctx.unique("t");
  auto sub = co_await ctx.transport->subscribe(topic, {});
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    Message m = make_message("m" + std::to_string(i));
    ids.push_back(m.id);
    co_await publish(ctx, topic, std::move(m));
  }
  std::vector<Position> positions;
  for (int i = 0; i < 10; ++i) {
    Delivery d = co_await expect_message(ctx, sub, "first pass " + std::to_string(i));
    PB_REQUIRE(d.message().id == ids[i], "first pass out of order at " + std::to_string(i));
    PB_REQUIRE(!d.position().empty(), "delivery without a position");
    positions.push_back(d.position());
    d.ack();
  }
  sub.close();
  auto resumed = co_await ctx.transport->subscribe(topic, SubscribeOptions().from(Position::after(positions[4].token())));
  for (int i = 5; i < 10; ++i) {
    Delivery d = co_await expect_message(ctx, resumed, "resumed " + std::to_string(i));
    PB_REQUIRE(d.message().id == ids[i], "resumed at the wrong message: expected m" + std::to_string(i) + ", got " +
                                             d.message().payload.str());
    PB_REQUIRE(d.position() == positions[i], "a message's position changed between deliveries");
    d.ack();
  }
  co_await expect_quiet(ctx, resumed, "after the last resumed message");
}

awaitable<void> replay_from_earliest(Context& ctx) {
  auto topic = ctx.unique("t");
  {
    // Make sure the topic exists before publishing (some transports keep history only then).
    auto warm = co_await ctx.transport->subscribe(topic, {});
    for (int i = 0; i < 5; ++i) co_await publish(ctx, topic, make_message("e" + std::to_string(i)));
    for (int i = 0; i < 5; ++i) (co_await expect_message(ctx, warm, "warm-up")).ack();
  }
  auto sub = co_await ctx.transport->subscribe(topic, SubscribeOptions().from(Position::earliest()));
  for (int i = 0; i < 5; ++i) {
    Delivery d = co_await expect_message(ctx, sub, "replayed " + std::to_string(i));
    PB_REQUIRE(d.message().payload.view() == "e" + std::to_string(i), "replayed out of order: " + d.message().payload.str());
    d.ack();
  }
}

bool has_gap_signal(const Features& f, const Harness& h) {
  return f.publish_subscribe && f.replay && f.gap_signal && h.history_limit != 0;
}

awaitable<void> gap_when_history_gone(Context& ctx) {
  auto topic = ctx.unique("t");
  Position first;
  {
    auto sub = co_await ctx.transport->subscribe(topic, {});
    co_await publish(ctx, topic, make_message("first"));
    Delivery d = co_await expect_message(ctx, sub, "first");
    first = d.position();
    d.ack();
  }
  const std::size_t more = ctx.harness.history_limit + 10;
  for (std::size_t i = 0; i < more; ++i) co_await publish(ctx, topic, make_message("later " + std::to_string(i)));
  auto resumed = co_await ctx.transport->subscribe(topic, SubscribeOptions().from(Position::after(first.token())));
  Delivery gap = co_await expect_next(ctx, resumed, "gap signal");
  PB_REQUIRE(gap.is_gap(), "resuming from a position beyond the history delivered '" + gap.message().payload.str() +
                               "' without a gap signal");
  PB_REQUIRE(!gap.gap().reason.empty(), "a gap without a reason");
  Delivery next = co_await expect_message(ctx, resumed, "first message after the gap");
  PB_REQUIRE(next.message().payload.view().starts_with("later "), "after the gap: " + next.message().payload.str());
  next.ack();
}

// --- request / reply ----------------------------------------------------------------------

bool has_request_reply(const Features& f, const Harness&) { return f.request_reply; }

struct Server {
  asio::cancellation_signal stop;
  std::atomic<bool> ended{false};
};

std::shared_ptr<Server> start_echo(Context& ctx, const executor& ex, const std::string& service) {
  auto server = std::make_shared<Server>();
  auto transport = ctx.transport;
  asio::co_spawn(
      ex,
      [transport, service]() -> awaitable<void> {
        co_await transport->serve(service, [](Message req) -> awaitable<Message> {
          if (req.payload.view() == "fail") throw std::runtime_error("handler refused 'fail'");
          Message reply{Bytes("echo:" + req.payload.str())};
          for (const auto& [k, v] : req.headers)
            if (k.rfind("patchbay-", 0) != 0) reply.headers.add(k, v);
          co_return reply;
        });
      },
      asio::bind_cancellation_slot(server->stop.slot(), [server](std::exception_ptr) { server->ended = true; }));
  return server;
}

awaitable<void> request_reply(Context& ctx) {
  auto ex = co_await asio::this_coro::executor;
  const auto service = ctx.unique("svc");
  auto server = start_echo(ctx, ex, service);
  Message req = make_message("ping");
  if (ctx.features.headers) req.headers.add("x-trace", "abc");
  Message reply = co_await ctx.transport->request(service, std::move(req), clock::now() + ctx.harness.delivery_timeout);
  PB_REQUIRE(reply.payload.view() == "echo:ping", "reply '" + reply.payload.str() + "'");
  if (ctx.features.headers) PB_REQUIRE(reply.headers.get("x-trace") == "abc", "a header did not make the round trip");

  // Fifty requests at once, each answered with its own reply.
  std::atomic<int> ok{0}, bad{0}, finished{0};
  for (int i = 0; i < 50; ++i) {
    asio::co_spawn(
        ex,
        [&, i]() -> awaitable<void> {
          try {
            Message r = co_await ctx.transport->request(service, make_message("n" + std::to_string(i)),
                                                        clock::now() + ctx.harness.delivery_timeout);
            (r.payload.view() == "echo:n" + std::to_string(i) ? ok : bad)++;
          } catch (...) {
            ++bad;
          }
          ++finished;
        },
        asio::detached);
  }
  co_await wait_until(ctx, [&] { return finished.load() == 50; }, [&] { return std::size_t(finished.load()); }, "concurrent requests");
  PB_REQUIRE(ok.load() == 50, std::to_string(bad.load()) + " of 50 concurrent requests failed or crossed");

  // A handler that throws is an error for the requester, not a hang.
  bool remote_failed = false;
  try {
    co_await ctx.transport->request(service, make_message("fail"), clock::now() + ctx.harness.delivery_timeout);
  } catch (const boost::system::system_error& e) {
    remote_failed = e.code() == errc::remote_error;
  }
  PB_REQUIRE(remote_failed, "a throwing handler did not give errc::remote_error");

  server->stop.emit(asio::cancellation_type::all);
  co_await wait_until(ctx, [&] { return server->ended.load(); }, [] { return std::size_t(0); }, "serve() ending on cancellation");
}

awaitable<void> request_times_out(Context& ctx) {
  const auto service = ctx.unique("nobody");
  boost::system::error_code code;
  try {
    co_await ctx.transport->request(service, make_message("anyone?"), clock::now() + 500ms);
  } catch (const boost::system::system_error& e) {
    code = e.code();
  }
  PB_REQUIRE(code == errc::timed_out || code == errc::no_responders,
             "a request nobody serves ended with '" + code.message() + "' instead of timed_out or no_responders");
}

// --- lifecycle ----------------------------------------------------------------------------

awaitable<void> close_while_receive_waits(Context& ctx) {
  auto topic = ctx.unique("t");
  auto sub = co_await ctx.transport->subscribe(topic, {});
  auto ex = co_await asio::this_coro::executor;
  std::atomic<int> outcome{0};  // 1: ended, 2: got a message, 3: threw
  asio::co_spawn(
      ex,
      [&]() -> awaitable<void> {
        try {
          auto d = co_await sub.next();
          outcome = d ? 2 : 1;
        } catch (...) {
          outcome = 3;
        }
      },
      asio::detached);
  co_await sleep_for(50ms);  // let the receive start waiting (the outcome does not depend on it)
  sub.close();
  co_await wait_until(ctx, [&] { return outcome.load() != 0; }, [] { return std::size_t(0); }, "receive after close()");
  PB_REQUIRE(outcome.load() == 1, "a receive waiting during close() did not end cleanly (outcome " +
                                      std::to_string(outcome.load()) + ")");
  auto after = co_await sub.next();
  PB_REQUIRE(!after.has_value(), "next() after close() returned a message");
}

bool drains_on_stop(const Features& f, const Harness&) { return f.publish_subscribe && f.at_least_once && !f.durable; }

awaitable<void> stop_loses_no_acknowledged_message(Context& ctx) {
  auto topic = ctx.unique("t");
  const std::size_t n = 1000;
  auto sub = co_await ctx.transport->subscribe(topic, {});
  auto ex = co_await asio::this_coro::executor;
  std::set<std::string> published_ids;
  std::mutex mutex;
  std::set<std::string> acked;
  std::atomic<bool> ended{false};
  asio::co_spawn(
      ex,
      [&]() -> awaitable<void> {
        // A slow consumer: it yields between messages, so messages are in flight at stop().
        while (auto d = co_await sub.next()) {
          if (d->is_gap()) continue;
          co_await sleep_for(std::chrono::microseconds(100));
          {
            std::lock_guard lock(mutex);
            acked.insert(d->message().id);
          }
          d->ack();
        }
        ended = true;
      },
      asio::detached);
  for (std::size_t i = 0; i < n; ++i) {
    Message m = make_message(std::to_string(i));
    published_ids.insert(m.id);
    co_await publish(ctx, topic, std::move(m));
  }
  co_await ctx.transport->stop();
  bool refused = false;
  try {
    co_await publish(ctx, topic, make_message("after stop"));
  } catch (const boost::system::system_error& e) {
    refused = e.code() == errc::stopped;
  }
  PB_REQUIRE(refused, "publish after stop() did not fail with errc::stopped");
  co_await wait_until(ctx, [&] { return ended.load(); }, [&] { std::lock_guard l(mutex); return acked.size(); }, "subscription ending after stop()");
  std::lock_guard lock(mutex);
  PB_REQUIRE(acked == published_ids, std::to_string(published_ids.size() - acked.size()) + " of " + std::to_string(n) +
                                         " published messages were not delivered before stop() completed");
}

const std::vector<Scenario> kScenarios = {
    {"publish_subscribe_round_trip", always, round_trip},
    {"fan_out_to_three_subscribers", always, fan_out_to_three},
    {"consumer_group_splits_without_loss_or_duplicates",
     [](const Features& f, const Harness&) { return f.publish_subscribe && f.consumer_groups; }, consumer_group_splits},
    {"ordered_bulk", [](const Features& f, const Harness&) { return f.publish_subscribe && f.ordered; }, ordered_bulk},
    {"concurrent_publishers_on_several_threads", always, concurrent_publishers},
    {"nack_redelivers", at_least_once, nack_redelivers},
    {"unsettled_delivery_is_redelivered", at_least_once, unsettled_is_redelivered},
    {"no_next_message_before_ack", [](const Features& f, const Harness&) { return f.publish_subscribe && f.flow_control; },
     no_next_before_ack},
    {"binary_payloads", always, binary_payloads},
    {"headers_round_trip", has_headers, headers_round_trip},
    {"payload_over_max_is_refused", bounded_payload, payload_too_large},
    {"subscribe_from_position_resumes_exactly", has_replay, resume_from_position},
    {"replay_from_earliest", has_replay, replay_from_earliest},
    {"gap_signal_when_history_is_gone", has_gap_signal, gap_when_history_gone},
    {"request_reply", has_request_reply, request_reply},
    {"request_times_out_when_nobody_serves", has_request_reply, request_times_out},
    {"close_while_receive_waits", always, close_while_receive_waits},
    {"stop_loses_no_acknowledged_message", drains_on_stop, stop_loses_no_acknowledged_message},
};

}  // namespace

const std::vector<Scenario>& scenarios() { return kScenarios; }

}  // namespace patchbay::conformance
