// The rabbitmq transport's own behaviour against the shared broker (scripts/brokers start
// rabbitmq): returned mandatory publishes, wildcard topics, properties, request/reply without a
// server, heartbeats, and bad input — an unreachable broker, refused credentials, a payload over
// the broker's max_message_size (16 MiB in scripts/brokers.d/rabbitmq.sh), bad settings.
#include "test_support.hpp"

#include <patchbay/runtime.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace patchbay::rabbitmq_test {
namespace {

using conformance::from_config;
using conformance::Next;
using conformance::next_for;

Made make(const std::string& extra = {}) {
  auto inst = from_config(config_for(shared_url(), "    exchange: " + unique("rmqtest") + "\n" + extra));
  if (!inst.ok()) ADD_FAILURE() << inst.status();
  Made m;
  if (inst.ok()) m.inst = std::move(*inst);
  return m;
}

boost::system::error_code publish_error(Made& m, std::string topic, Message msg) {
  auto t = m.inst.transport;
  return run(m.inst, [t, topic, msg]() mutable -> awaitable<boost::system::error_code> {
    msg.topic = topic;
    try {
      co_await t->publish(std::move(msg));
    } catch (const boost::system::system_error& e) {
      co_return e.code();
    }
    co_return boost::system::error_code{};
  });
}

int unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // nobody listens there now
  return ntohs(a.sin_port);
}

TEST(RabbitmqTransport, MandatoryPublishWithoutAnyQueueIsAnError) {
  PB_NEED_BROKER();
  Made m = make();
  ASSERT_TRUE(m.inst.transport);
  auto ec = publish_error(m, "nobody.listens", Message("lost?"));
  EXPECT_EQ(ec, errc::no_responders) << ec.message();
  // With mandatory off, the same publish is fine (and the message is dropped by the broker).
  Made relaxed = make("    mandatory: false\n");
  ASSERT_TRUE(relaxed.inst.transport);
  EXPECT_FALSE(publish_error(relaxed, "nobody.listens", Message("dropped")));
}

TEST(RabbitmqTransport, ReturnedPublishDoesNotDisturbTheOthers) {
  PB_NEED_BROKER();
  Made m = make();
  ASSERT_TRUE(m.inst.transport);
  auto t = m.inst.transport;
  auto result = run(m.inst, [t]() -> awaitable<std::string> {
    auto sub = co_await t->subscribe("bound.topic");
    int returned = 0, ok = 0;
    for (int i = 0; i < 20; ++i) {
      Message msg(std::to_string(i));
      msg.topic = (i % 2) ? "bound.topic" : "unbound.topic";
      try {
        co_await t->publish(std::move(msg));
        ++ok;
      } catch (const boost::system::system_error& e) {
        if (e.code() == errc::no_responders) ++returned;
      }
    }
    int got = 0;
    for (int i = 0; i < ok; ++i) {
      auto n = co_await next_for(sub, 30s);
      if (n.what != Next::kind::item) break;
      ++got;
      n.delivery->ack();
    }
    co_return std::to_string(ok) + "/" + std::to_string(returned) + "/" + std::to_string(got);
  });
  EXPECT_EQ(result, "10/10/10");
}

TEST(RabbitmqTransport, WildcardSubscriptionSeesTheRealTopic) {
  PB_NEED_BROKER();
  Made m = make();
  ASSERT_TRUE(m.inst.transport);
  auto t = m.inst.transport;
  auto topic = run(m.inst, [t]() -> awaitable<std::string> {
    auto sub = co_await t->subscribe("orders.*");
    Message msg("x");
    msg.topic = "orders.created";
    co_await t->publish(std::move(msg));
    auto n = co_await next_for(sub, 30s);
    if (n.what != Next::kind::item) co_return std::string("nothing");
    n.delivery->ack();
    co_return n.delivery->message().topic;
  });
  EXPECT_EQ(topic, "orders.created");
}

TEST(RabbitmqTransport, IdAndTimeSurvive) {
  PB_NEED_BROKER();
  Made m = make();
  ASSERT_TRUE(m.inst.transport);
  auto t = m.inst.transport;
  Message sent("payload");
  sent.stamp();
  auto got = run(m.inst, [t, sent]() -> awaitable<Message> {
    auto sub = co_await t->subscribe("ids");
    Message copy = sent;
    copy.topic = "ids";
    co_await t->publish(std::move(copy));
    auto n = co_await next_for(sub, 30s);
    if (n.what != Next::kind::item) co_return Message();
    n.delivery->ack();
    co_return n.delivery->message();
  });
  EXPECT_EQ(got.id, sent.id);
  // AMQP timestamps have one-second resolution.
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(got.time.time_since_epoch()),
            std::chrono::duration_cast<std::chrono::seconds>(sent.time.time_since_epoch()));
}

TEST(RabbitmqTransport, RequestWithoutServerIsNoResponders) {
  PB_NEED_BROKER();
  Made m = make();
  ASSERT_TRUE(m.inst.transport);
  auto t = m.inst.transport;
  auto ec = run(m.inst, [t]() -> awaitable<boost::system::error_code> {
    try {
      co_await t->request("nobody-serves", Message("hello?"), clock::now() + 30s);
    } catch (const boost::system::system_error& e) {
      co_return e.code();
    }
    co_return boost::system::error_code{};
  });
  EXPECT_EQ(ec, errc::no_responders) << ec.message();
}

TEST(RabbitmqTransport, HeartbeatsKeepAnIdleConnection) {
  PB_NEED_BROKER();
  // With a 1 s heartbeat the broker closes a connection that misses two; idling 3.5 s proves the
  // I/O thread sends them while nothing else happens.
  Made m = make("    heartbeat: 1s\n");
  ASSERT_TRUE(m.inst.transport);
  auto t = m.inst.transport;
  auto ok = run(m.inst, [t]() -> awaitable<bool> {
    auto sub = co_await t->subscribe("idle");
    asio::steady_timer timer(co_await asio::this_coro::executor, 3500ms);
    co_await timer.async_wait(asio::use_awaitable_t<executor>{});
    Message msg("still there");
    msg.topic = "idle";
    co_await t->publish(std::move(msg));
    auto n = co_await next_for(sub, 30s);
    if (n.what != Next::kind::item) co_return false;
    n.delivery->ack();
    co_return !n.delivery->redelivered();  // the same connection: no redelivery after a reconnect
  });
  EXPECT_TRUE(ok);
}

// --- bad input ----------------------------------------------------------------------------

TEST(RabbitmqTransport, UnreachableBrokerFailsAtStartWithAClearError) {
  const auto started = clock::now();
  auto inst = from_config(
      config_for("amqp://guest:guest@127.0.0.1:" + std::to_string(unused_port()) + "/", "    connect_timeout: 1s\n"));
  ASSERT_FALSE(inst.ok());
  const std::string text(inst.status().message());
  EXPECT_NE(text.find("cannot connect to 127.0.0.1:"), std::string::npos) << text;
  EXPECT_NE(text.find("rabbitmq transport 'bus'"), std::string::npos) << text;
  // It retried until connect_timeout and then gave up (a generous bound, not a timing test).
  EXPECT_LT(clock::now() - started, 60s);
}

TEST(RabbitmqTransport, WrongCredentialsFailAtOnceWithoutRetrying) {
  PB_NEED_BROKER();
  const auto started = clock::now();
  // connect_timeout is long: a failure well before it shows the refusal is not retried.
  auto inst = from_config(
      config_for("amqp://guest:wrong-password@127.0.0.1:${PATCHBAY_RABBITMQ_PORT}/", "    connect_timeout: 120s\n"));
  ASSERT_FALSE(inst.ok());
  const std::string text(inst.status().message());
  EXPECT_NE(text.find("ACCESS_REFUSED"), std::string::npos) << text;
  EXPECT_NE(text.find("check user, password and vhost"), std::string::npos) << text;
  EXPECT_LT(clock::now() - started, 60s);
}

TEST(RabbitmqTransport, PayloadOverMaxPayloadIsRefusedLocally) {
  PB_NEED_BROKER();
  Made m = make("    max_payload: 1000\n");
  ASSERT_TRUE(m.inst.transport);
  EXPECT_EQ(publish_error(m, "big", Message(std::string(1001, 'x'))), errc::payload_too_large);
}

TEST(RabbitmqTransport, PayloadOverTheBrokersLimitIsAClearErrorAndTheTransportGoesOn) {
  PB_NEED_BROKER();
  // max_payload: 0 skips the local check, so the broker (max_message_size 16 MiB) refuses it.
  Made m = make("    max_payload: 0\n");
  ASSERT_TRUE(m.inst.transport);
  auto t = m.inst.transport;
  auto result = run(m.inst, [t]() -> awaitable<std::string> {
    auto sub = co_await t->subscribe("limit");
    std::string out;
    Message big(std::string((16u << 20) + 1, 'x'));
    big.topic = "limit";
    try {
      co_await t->publish(std::move(big));
      out += "accepted;";
    } catch (const boost::system::system_error& e) {
      out += e.code() == errc::payload_too_large ? "too large;" : "other error: " + std::string(e.what()) + ";";
      if (std::string(e.what()).find("max size") == std::string::npos) out += "no reason given;";
    }
    Message small("fine");
    small.topic = "limit";
    co_await t->publish(std::move(small));
    auto n = co_await next_for(sub, 30s);
    if (n.what == Next::kind::item) {
      out += n.delivery->message().payload.str();
      n.delivery->ack();
    }
    co_return out;
  });
  EXPECT_EQ(result, "too large;fine");
}

TEST(RabbitmqTransport, BadSettingsAreStartupErrors) {
  auto bad_url = from_config(config_for("http://nope/"));
  ASSERT_FALSE(bad_url.ok());
  EXPECT_NE(std::string(bad_url.status().message()).find("is not an AMQP URL"), std::string::npos) << bad_url.status();
  auto unknown = from_config(config_for("amqp://127.0.0.1:1/", "    prefetch_count: 3\n"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(std::string(unknown.status().message()).find("prefetch_count"), std::string::npos) << unknown.status();
  auto window = from_config(config_for("amqp://127.0.0.1:1/", "    confirm_window: 0\n"));
  ASSERT_FALSE(window.ok());
}

TEST(RabbitmqTransport, GroupMembersInTwoTransportsShareOneQueue) {
  PB_NEED_BROKER();
  const std::string exchange = unique("rmqshare");
  auto a = from_config(config_for(shared_url(), "    exchange: " + exchange + "\n"));
  auto b = from_config(config_for(shared_url(), "    exchange: " + exchange + "\n"));
  ASSERT_TRUE(a.ok() && b.ok());
  Made ma{std::move(*a)}, mb{std::move(*b)};
  auto ta = ma.inst.transport, tb = mb.inst.transport;
  // Both subscribe in group "g" (prefetch 1, so the broker splits), then a publishes 20.
  auto sub_b = std::make_shared<Stream<Delivery>>(run(mb.inst, [tb]() -> awaitable<Stream<Delivery>> {
    co_return co_await tb->subscribe("work", SubscribeOptions().group("g").max_in_flight(1));
  }));
  auto counts = run(ma.inst, [ta, sub_b]() -> awaitable<std::pair<int, int>> {
    auto sub_a = co_await ta->subscribe("work", SubscribeOptions().group("g").max_in_flight(1));
    for (int i = 0; i < 20; ++i) {
      Message msg(std::to_string(i));
      msg.topic = "work";
      co_await ta->publish(std::move(msg));
    }
    int got_a = 0, got_b = 0;
    while (got_a + got_b < 20) {
      auto na = co_await next_for(sub_a, 200ms);
      if (na.what == Next::kind::item) {
        ++got_a;
        na.delivery->ack();
      }
      auto nb = co_await next_for(*sub_b, 200ms);
      if (nb.what == Next::kind::item) {
        ++got_b;
        nb.delivery->ack();
      }
      if (na.what != Next::kind::item && nb.what != Next::kind::item) {
        // Both idle for a while: stop if nothing arrives for long (the assertion below reports it).
        auto again = co_await next_for(sub_a, 30s);
        if (again.what != Next::kind::item) break;
        ++got_a;
        again.delivery->ack();
      }
    }
    co_return std::make_pair(got_a, got_b);
  });
  EXPECT_EQ(counts.first + counts.second, 20);
  EXPECT_GT(counts.first, 0);
  EXPECT_GT(counts.second, 0);
  sub_b->close();
}

}  // namespace
}  // namespace patchbay::rabbitmq_test
