// Fault tests on private redis-server instances: the server killed with SIGKILL while a Streams
// consumer group is consuming (nothing acknowledged is lost: pending entries are read again or
// reclaimed with XAUTOCLAIM), and a Pub/Sub subscriber across a server restart (it resubscribes
// and receives a gap Delivery).
#include "redis_test_support.hpp"

#include <mutex>
#include <set>

namespace {

using namespace redis_test;
using patchbay::SubscribeOptions;

TEST(RedisFault, KillDuringStreamsConsumeLosesNothingAndReclaimsPending) {
  RedisServer server(/*aof=*/true);
  server.start();
  auto inst = make(server.url(), "mode: streams, claim_idle: 500ms, block: 200ms, reconnect_max: 200ms, "
                                 "command_timeout: 60s, batch: 32");
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string topic = unique("fault.streams");
  constexpr std::size_t total = 1200;  // each XADD is fsynced: about 1-5 ms each

  std::mutex mutex;
  std::set<std::string> published;      // publish() completed: Redis has it (AOF, fsync always)
  std::set<std::string> received;       // acknowledged by a consumer
  std::size_t redelivered = 0, duplicates = 0, publish_failures = 0;
  std::atomic<bool> publishing_done{false}, stop_consuming{false}, a_abandoned{false};
  std::atomic<int> running{3};  // member loops and the publisher still running

  auto body = [&]() -> awaitable<void> {
    auto transport = inst->transport;
    // Member A takes deliveries and, from its 50th on, never settles them: a consumer that
    // hangs and then goes away. Member B acknowledges everything it gets.
    auto a = co_await transport->subscribe(topic, SubscribeOptions().group("workers"));
    auto b = co_await transport->subscribe(topic, SubscribeOptions().group("workers"));
    std::vector<Delivery> held;
    auto member_a = [&]() -> awaitable<void> {
      std::size_t n = 0;
      while (!a_abandoned) {
        auto d = co_await next_within(a, 100ms);
        if (!d || d->is_gap()) continue;
        if (++n < 50) {
          std::lock_guard lock(mutex);
          if (!received.insert(d->message().id).second) ++duplicates;
          d->ack();
        } else {
          held.push_back(std::move(*d));
        }
      }
      held.clear();  // destroyed unsettled after its subscription closed: they stay pending
      --running;
    };
    auto member_b = [&]() -> awaitable<void> {
      while (!stop_consuming) {
        auto d = co_await next_within(b, 100ms);
        if (!d || d->is_gap()) continue;
        {
          std::lock_guard lock(mutex);
          if (!received.insert(d->message().id).second) ++duplicates;
          if (d->redelivered()) ++redelivered;
        }
        d->ack();
      }
      --running;
    };
    auto publisher = [&]() -> awaitable<void> {
      for (std::size_t i = 0; i < total; ++i) {
        Message m = msg(topic, "m" + std::to_string(i));
        const std::string id = m.id;
        try {
          co_await transport->publish(std::move(m));
          std::lock_guard lock(mutex);
          published.insert(id);
        } catch (const boost::system::system_error&) {
          std::lock_guard lock(mutex);
          ++publish_failures;  // not acknowledged: may be lost
        }
        if (i % 8 == 0) co_await sleep_for(1ms);  // keep the publishing going across the kill
      }
      publishing_done = true;
      --running;
    };
    asio::co_spawn(inst->fresh(), member_a, asio::detached);
    asio::co_spawn(inst->fresh(), member_b, asio::detached);
    asio::co_spawn(inst->fresh(), publisher, asio::detached);

    // Kill the server in the middle of it, and bring it back on the same port and AOF.
    const bool halfway = co_await eventually([&] { std::lock_guard l(mutex); return received.size() >= 250; }, 60s);
    EXPECT_TRUE(halfway) << "consumers did not get going";
    server.kill(SIGKILL);
    co_await sleep_for(300ms);
    server.start();

    // Member A goes away for good; its pending entries must be reclaimed by B (XAUTOCLAIM).
    co_await sleep_for(200ms);
    a_abandoned = true;
    a.close();

    const bool all = co_await eventually(
        [&] {
          std::lock_guard l(mutex);
          if (!publishing_done) return false;
          for (const auto& id : published)
            if (!received.count(id)) return false;
          return true;
        },
        90s);
    stop_consuming = true;
    {
      std::lock_guard lock(mutex);
      std::size_t lost = 0;
      for (const auto& id : published) lost += received.count(id) ? 0 : 1;
      EXPECT_TRUE(all) << lost << " acknowledged publishes were never delivered";
      EXPECT_EQ(lost, 0u);
      EXPECT_GT(published.size(), total / 2) << publish_failures << " publishes failed";
      EXPECT_GT(redelivered, 0u) << "nothing was reclaimed from the abandoned member";
      std::printf("streams kill -9: %zu published (%zu failed), %zu received, %zu redelivered, %zu duplicates, %zu lost\n",
                  published.size(), publish_failures, received.size(), redelivered, duplicates, lost);
    }  // no lock across the suspension below
    // The member loops use this frame's streams: wait until they are done with them.
    const bool ended = co_await eventually([&] { return running.load() == 0; }, 60s);
    EXPECT_TRUE(ended) << "consumer loops did not end";
  };
  run(*inst, body);
  inst->shutdown();
}

TEST(RedisFault, PubSubResubscribesAfterRestartWithAGap) {
  RedisServer server;
  server.start();
  auto inst = make(server.url(), "mode: pubsub, reconnect_max: 1s");
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string topic = unique("fault.pubsub");

  auto body = [&]() -> awaitable<void> {
    auto transport = inst->transport;
    auto sub = co_await transport->subscribe(topic, {});
    co_await transport->publish(msg(topic, "before"));
    auto first = co_await next_within(sub);
    EXPECT_TRUE(first && !first->is_gap() && first->message().payload.view() == "before");

    server.kill(SIGKILL);
    co_await sleep_for(200ms);
    server.start();
    const auto back = patchbay::clock::now();

    auto gap = co_await next_within(sub, 60s);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(patchbay::clock::now() - back);
    EXPECT_TRUE(gap.has_value()) << "no gap Delivery after the restart";
    if (gap) {
      EXPECT_TRUE(gap->is_gap()) << "got '" << gap->message().payload.str() << "' instead of a gap";
      if (gap->is_gap()) {
        EXPECT_NE(gap->gap().reason.find("reconnected"), std::string::npos) << gap->gap().reason;
      }
    }
    // The design bound is reconnect_max (1 s) after the server is back; printed, not asserted
    // (a busy CI machine must not fail on timing).
    std::printf("pubsub: resubscribed with a gap %lld ms after the server was back\n", static_cast<long long>(took.count()));

    // The publisher's connection comes back too (a publish waits for it).
    bool delivered = false;
    for (int attempt = 0; attempt < 50 && !delivered; ++attempt) {
      bool published = true;
      try {
        co_await transport->publish(msg(topic, "after"));
      } catch (const boost::system::system_error&) {
        published = false;
      }
      if (!published) {
        co_await sleep_for(100ms);
        continue;
      }
      auto after = co_await next_within(sub, 5s);
      delivered = after && !after->is_gap() && after->message().payload.view() == "after";
    }
    EXPECT_TRUE(delivered) << "nothing published after the restart arrived";
  };
  run(*inst, body);
  inst->shutdown();
}

// --- errors a person can act on -----------------------------------------------------------

/// Start-up of a runtime whose transport cannot connect: the error, and how long it took.
std::pair<std::string, std::chrono::milliseconds> start_error(const std::string& url, const std::string& settings) {
  const auto began = std::chrono::steady_clock::now();
  auto inst = make(url, settings);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
  EXPECT_FALSE(inst.ok()) << "connected to " << url << " with " << settings;
  if (inst.ok()) {
    inst->shutdown();
    return {"", took};
  }
  std::printf("start error after %lld ms: %s\n", static_cast<long long>(took.count()), std::string(inst.status().message()).c_str());
  return {std::string(inst.status().message()), took};
}

TEST(RedisErrors, WrongCredentialsAreAClearErrorWithinTheConnectDeadline) {
  RedisServer server(false, {"--requirepass", "right"});
  server.start();
  server.cli("ACL SETUSER alice on '>alices-secret' '~*' '&*' '+@all'", "-a right");
  const std::string host = "127.0.0.1:" + std::to_string(server.port());

  auto [wrong, took] = start_error("redis://:wrong@" + host, "connect_timeout: 3s");
  EXPECT_NE(wrong.find("authentication failed"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("WRONGPASS"), std::string::npos) << wrong;
  EXPECT_LT(took, 3s + 5s) << "not answered within the connect deadline";  // generous: a loaded machine

  auto [user, took_user] = start_error("redis://alice:nope@" + host, "connect_timeout: 3s");
  EXPECT_NE(user.find("for user 'alice'"), std::string::npos) << user;
  EXPECT_LT(took_user, 3s + 5s);

  auto [none, took_none] = start_error("redis://" + host, "connect_timeout: 3s");
  EXPECT_NE(none.find("requires authentication"), std::string::npos) << none;

  // The right ACL user works, and SELECT puts a stream into the chosen database.
  auto inst = make("redis://alice:alices-secret@" + host + "/3", "mode: streams");
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string topic = unique("acl.stream");
  auto body = [&]() -> awaitable<void> { co_await inst->transport->publish(msg(topic, "in db 3")); };
  run(*inst, body);
  inst->shutdown();
  EXPECT_EQ(server.cli("-n 3 XLEN " + topic, "-a right"), "1");
  EXPECT_EQ(server.cli("-n 0 XLEN " + topic, "-a right"), "0");
}

TEST(RedisErrors, AnUnreachableServerIsAClearErrorWithinTheConnectDeadline) {
  const int port = free_port();  // nobody listens there
  auto [refused, took] = start_error("redis://127.0.0.1:" + std::to_string(port), "connect_timeout: 2s");
  EXPECT_NE(refused.find("cannot connect to 127.0.0.1:" + std::to_string(port)), std::string::npos) << refused;
  EXPECT_NE(refused.find("refused"), std::string::npos) << refused;
  EXPECT_LT(took, 2s + 5s);

  auto [unknown, took_unknown] = start_error("redis://no-such-host.invalid:6379", "connect_timeout: 2s");
  EXPECT_NE(unknown.find("no-such-host.invalid"), std::string::npos) << unknown;
  EXPECT_LT(took_unknown, 2s + 5s);
}

TEST(RedisErrors, AnErrorReplyNamesTheCommand) {
  RedisServer server;
  server.start();
  const std::string topic = unique("wrongtype");
  server.cli("SET " + topic + " a-string");
  auto inst = make(server.url(), "mode: streams");
  ASSERT_TRUE(inst.ok()) << inst.status();
  auto body = [&]() -> awaitable<void> {
    boost::system::error_code code;
    std::string what;
    try {
      co_await inst->transport->publish(msg(topic, "into a string key"));
    } catch (const boost::system::system_error& e) {
      code = e.code();
      what = e.what();
    }
    EXPECT_EQ(code, patchbay::errc::remote_error) << what;
    EXPECT_NE(what.find("XADD failed"), std::string::npos) << what;
    EXPECT_NE(what.find("WRONGTYPE"), std::string::npos) << what;
    // The connection stays usable.
    co_await inst->transport->publish(msg(unique("fine"), "ok"));
  };
  run(*inst, body);
  inst->shutdown();
}

TEST(RedisErrors, CommandsWaitingForALostServerFailAfterTheCommandTimeout) {
  RedisServer server;
  server.start();
  auto inst = make(server.url(), "mode: streams, command_timeout: 1s, reconnect_max: 100ms");
  ASSERT_TRUE(inst.ok()) << inst.status();
  server.kill(SIGKILL);
  auto body = [&]() -> awaitable<void> {
    boost::system::error_code code;
    std::string what;
    try {
      co_await inst->transport->publish(msg(unique("nowhere"), "lost"));
    } catch (const boost::system::system_error& e) {
      code = e.code();
      what = e.what();
    }
    EXPECT_EQ(code, patchbay::errc::unavailable) << what;
    EXPECT_NE(what.find("no connection to 127.0.0.1:" + std::to_string(server.port())), std::string::npos) << what;
  };
  run(*inst, body);
  inst->shutdown();
}

}  // namespace
