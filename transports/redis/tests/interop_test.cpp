// Interop with clients nobody here wrote, against the shared redis-server: `redis-cli PUBLISH`
// reaches a patchbay subscriber, and Python's redis client (Debian python3-redis, run with
// /usr/bin/python3) reads a stream that patchbay wrote.
#include "redis_test_support.hpp"

namespace {

using namespace redis_test;

std::string port_of(const std::string& url) { return url.substr(url.rfind(':') + 1); }

TEST(RedisInterop, RedisCliPublishReachesASubscriber) {
  REDIS_TEST_NEEDS_BROKER(url);
  auto inst = make(url, "mode: pubsub");
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string topic = unique("interop.cli");
  auto body = [&]() -> awaitable<void> {
    auto sub = co_await inst->transport->subscribe(topic, {});
    const std::string out = shell("redis-cli -h 127.0.0.1 -p " + port_of(url) + " PUBLISH " + topic + " 'hello from redis-cli'");
    EXPECT_EQ(out, "1") << "redis-cli PUBLISH reached " << out << " subscribers";
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d.has_value()) << "nothing arrived";
    if (!d) co_return;
    EXPECT_FALSE(d->is_gap());
    EXPECT_EQ(d->message().payload.view(), "hello from redis-cli");
    EXPECT_EQ(d->message().topic, topic);
    EXPECT_FALSE(d->message().id.empty()) << "a plain message gets a fresh id";
    EXPECT_TRUE(d->message().headers.empty());
  };
  run(*inst, body);
  inst->shutdown();
}

TEST(RedisInterop, APatternSubscriptionReceivesRedisCliPublishes) {
  REDIS_TEST_NEEDS_BROKER(url);
  auto inst = make(url, "mode: pubsub, envelope: false");
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string base = unique("interop.pattern");
  auto body = [&]() -> awaitable<void> {
    auto sub = co_await inst->transport->subscribe(base + ".*", {});
    shell("redis-cli -h 127.0.0.1 -p " + port_of(url) + " PUBLISH " + base + ".one 'via pattern'");
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d && !d->is_gap());
    if (!d) co_return;
    EXPECT_EQ(d->message().payload.view(), "via pattern");
    EXPECT_EQ(d->message().topic, base + ".one") << "the topic is the channel, not the pattern";
  };
  run(*inst, body);
  inst->shutdown();
}

TEST(RedisInterop, PythonRedisReadsAStreamPatchbayWrote) {
  REDIS_TEST_NEEDS_BROKER(url);
  if (shell("/usr/bin/python3 -c 'import redis; print(1)'") != "1")
    GTEST_SKIP() << "/usr/bin/python3 cannot import redis: apt-get install python3-redis (scripts/install-deps)";
  auto inst = make(url, "mode: streams");
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string topic = unique("interop.python");
  std::vector<std::string> ids;
  auto body = [&]() -> awaitable<void> {
    for (int i = 0; i < 3; ++i) {
      Message m = msg(topic, "payload " + std::to_string(i));
      m.headers.add("content-type", "text/plain");
      ids.push_back(m.id);
      co_await inst->transport->publish(std::move(m));
    }
  };
  run(*inst, body);
  const std::string script =
      "import redis, sys\n"
      "r = redis.Redis(host='127.0.0.1', port=" + port_of(url) + ")\n"
      "for entry_id, fields in r.xrange('" + topic + "'):\n"
      "    print(fields[b'patchbay-id'].decode(), fields[b'payload'].decode(), fields[b'header:content-type'].decode(), sep='|')\n";
  const std::string out = shell("/usr/bin/python3 -c \"" + script + "\" 2>&1");
  std::string want;
  for (int i = 0; i < 3; ++i) want += (i ? "\n" : "") + ids[i] + "|payload " + std::to_string(i) + "|text/plain";
  EXPECT_EQ(out, want);
  inst->shutdown();
}

TEST(RedisInterop, AStreamEntryFromRedisCliIsDelivered) {
  REDIS_TEST_NEEDS_BROKER(url);
  auto inst = make(url, "mode: streams");
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string topic = unique("interop.xadd");
  auto body = [&]() -> awaitable<void> {
    auto sub = co_await inst->transport->subscribe(topic, {});
    const std::string id = shell("redis-cli -h 127.0.0.1 -p " + port_of(url) + " XADD " + topic + " '*' temperature 21.5 payload hot");
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d && !d->is_gap());
    if (!d) co_return;
    EXPECT_EQ(d->message().payload.view(), "hot");
    EXPECT_EQ(d->message().headers.get("temperature"), "21.5") << "other fields become headers";
    EXPECT_EQ(d->position().token(), id);
    d->ack();
  };
  run(*inst, body);
  inst->shutdown();
}

}  // namespace
