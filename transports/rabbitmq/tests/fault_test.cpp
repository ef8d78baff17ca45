// Fault tests for the rabbitmq transport (ctest label `fault`).
//
// 1. A private broker (its own node name, port, data and epmd, started with
//    scripts/brokers under this test's own PATCHBAY_BROKER_DIR) is killed with SIGKILL while
//    100,000 persistent messages are being published with confirms, and started again on the same
//    data. Every publish must complete, and every message whose publish completed must reach the
//    consumer group at least once: 0 lost, and a duplicate only ever with the id of its original.
// 2. A consumer process holding 100 unacknowledged messages is killed with SIGKILL; another
//    member of its group must then receive all 100, marked redelivered. The consumer is this very
//    binary started again in "child" mode (PATCHBAY_RMQ_CHILD), so it uses the real module.
#include "test_support.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

extern char** environ;

namespace patchbay::rabbitmq_test {
namespace {

using conformance::from_config;
using conformance::Next;
using conformance::next_for;

/// Runs `command` through bash with `env` prepended; returns its exit status.
int shell(const std::string& command) { return std::system(("bash -c '" + command + "' >/dev/null 2>&1").c_str()); }

/// A private RabbitMQ node driven through scripts/brokers.
class PrivateBroker {
 public:
  PrivateBroker() {
    dir_ = std::string(PATCHBAY_TEST_TMPDIR) + "/fault-broker-" + std::to_string(::getpid());
    ok_ = run("start") == 0;
  }
  ~PrivateBroker() {
    run("stop");
    shell("rm -rf " + dir_);
  }
  bool ok() const { return ok_; }
  int port() const {
    std::ifstream in(dir_ + "/rabbitmq/port");
    int p = 0;
    in >> p;
    return p;
  }
  void kill9() {
    std::ifstream in(dir_ + "/rabbitmq/rabbit.pid");
    pid_t pid = 0;
    in >> pid;
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      // Wait until it is gone (it is not our child: poll).
      for (int i = 0; i < 600 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(50ms);
    }
  }
  bool restart() { return run("start", "PATCHBAY_RABBITMQ_RESTART=1 ") == 0; }

 private:
  int run(const std::string& what, const std::string& extra_env = {}) {
    return shell(extra_env + "PATCHBAY_BROKER_DIR=" + dir_ + " " + PATCHBAY_SOURCE_DIR + "/scripts/brokers " + what +
                 " rabbitmq");
  }
  std::string dir_;
  bool ok_ = false;
};

template <typename Cond>
bool wait_for(Cond cond, std::chrono::seconds limit) {
  const auto until = clock::now() + limit;
  while (!cond()) {
    if (clock::now() > until) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

TEST(RabbitmqFault, BrokerKilledDuringConfirmedPublishLosesNothing) {
  // Its own node: it needs rabbitmq-server installed, not the shared broker.
  if (::access("/usr/lib/rabbitmq/bin/rabbitmq-server", X_OK) != 0)
    GTEST_SKIP() << "needs rabbitmq-server (scripts/install-deps installs it)";
  PrivateBroker broker;
  ASSERT_TRUE(broker.ok()) << "could not start a private rabbitmq node";
  const std::string url = "amqp://guest:guest@127.0.0.1:" + std::to_string(broker.port()) + "/";

  constexpr std::size_t total = 100'000;
  constexpr int publishers = 256;
  std::vector<std::string> ids(total);
  for (auto& id : ids) id = Message::generate_id();

  struct State {
    std::mutex mutex;
    std::set<std::string> confirmed;
    std::set<std::string> received;
    std::size_t deliveries = 0;
    std::size_t mismatched = 0;  // a delivery whose id is not the id its payload was sent with
    std::atomic<std::size_t> confirmed_count{0};
    std::atomic<std::size_t> received_count{0};
    std::atomic<int> publishers_done{0};
    std::atomic<int> failures{0};
    std::atomic<bool> stop{false};
    std::atomic<bool> consumer_done{false};
    std::string first_failure;
  } st;

  // Declared after the state the coroutines use: the runtime (and its coroutines) goes first.
  auto made = from_config(config_for(url,
                                     "    exchange: fault\n"
                                     "    heartbeat: 2s\n"
                                     "    reconnect_min_backoff: 100ms\n"
                                     "    reconnect_max_backoff: 1s\n"
                                     "    confirm_window: 1024\n"
                                     "    prefetch: 1000\n"));
  ASSERT_TRUE(made.ok()) << made.status();
  Made m{std::move(*made)};
  auto t = m.inst.transport;

  // The group's queue is durable: subscribe first, so every message has a queue to go to.
  auto sub = std::make_shared<Stream<Delivery>>(run(m.inst, [t]() -> awaitable<Stream<Delivery>> {
    co_return co_await t->subscribe("load", SubscribeOptions().group("survivors"));
  }));

  auto consume = [&]() -> awaitable<void> {
    while (!st.stop.load()) {
      Next n = co_await next_for(*sub, 200ms);
      if (n.what == Next::kind::ended) break;
      if (n.what != Next::kind::item) continue;
      const Message& msg = n.delivery->message();
      const std::size_t index = std::stoul(msg.payload.str());
      {
        std::lock_guard lock(st.mutex);
        ++st.deliveries;
        if (index >= total || ids[index] != msg.id) ++st.mismatched;
        if (st.received.insert(msg.id).second) ++st.received_count;
      }
      n.delivery->ack();
    }
    st.consumer_done = true;
  };
  auto start_consumer = [&consume] { return consume(); };
  asio::co_spawn(m.inst.fresh(), start_consumer, asio::detached);

  auto publish_slice = [&](int k) -> awaitable<void> {
    for (std::size_t i = k; i < total; i += publishers) {
      Message msg(std::to_string(i));
      msg.id = ids[i];
      msg.topic = "load";
      try {
        co_await t->publish(std::move(msg));
        std::lock_guard lock(st.mutex);
        st.confirmed.insert(ids[i]);
        ++st.confirmed_count;
      } catch (const std::exception& e) {
        std::lock_guard lock(st.mutex);
        if (st.failures++ == 0) st.first_failure = e.what();
      }
    }
    ++st.publishers_done;
  };
  std::vector<std::function<awaitable<void>()>> slices;
  for (int k = 0; k < publishers; ++k) slices.push_back([&publish_slice, k] { return publish_slice(k); });
  for (auto& slice : slices) asio::co_spawn(m.inst.fresh(), slice, asio::detached);

  // Kill the broker a fifth of the way through, then bring it back on the same data.
  ASSERT_TRUE(wait_for([&] { return st.confirmed_count.load() >= total / 5; }, 300s))
      << "only " << st.confirmed_count.load() << " confirmed before the kill";
  broker.kill9();
  const std::size_t confirmed_at_kill = st.confirmed_count.load();
  ASSERT_TRUE(broker.restart()) << "the private broker did not start again";

  EXPECT_TRUE(wait_for([&] { return st.publishers_done.load() == publishers; }, 400s))
      << st.publishers_done.load() << " of " << publishers << " publishers finished; " << st.confirmed_count.load()
      << " confirmed";
  EXPECT_TRUE(wait_for([&] { return st.received_count.load() >= st.confirmed_count.load(); }, 300s))
      << "received " << st.received_count.load() << " distinct of " << st.confirmed_count.load() << " confirmed";
  st.stop = true;
  EXPECT_TRUE(wait_for([&] { return st.consumer_done.load(); }, 60s));

  std::lock_guard lock(st.mutex);
  EXPECT_EQ(st.failures.load(), 0) << "publishes failed; the first: " << st.first_failure;
  EXPECT_GT(confirmed_at_kill, 0u);
  std::size_t lost = 0;
  for (const auto& id : st.confirmed)
    if (!st.received.count(id)) ++lost;
  EXPECT_EQ(lost, 0u) << "confirmed messages never delivered";
  EXPECT_EQ(st.mismatched, 0u) << "deliveries whose id differs from the id their payload was published with";
  EXPECT_EQ(st.confirmed.size(), total);
  std::cout << "[ fault    ] confirmed " << st.confirmed.size() << ", delivered " << st.deliveries << " ("
            << st.received.size() << " distinct, " << st.deliveries - st.received.size()
            << " duplicates with their original id); " << confirmed_at_kill
            << " confirmed when the broker was killed\n";
  sub->close();
}

// --- a consumer process killed while holding unacked messages -------------------------------

/// Child mode: subscribe to `topic` in group "holders" on `exchange`, receive `count` messages
/// without settling any, say so on stdout, and wait to be killed.
int child_main(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string exchange = spec.substr(0, colon), topic = spec.substr(colon + 1);
  auto made = from_config(config_for(shared_url(), "    exchange: " + exchange + "\n"));
  if (!made.ok()) {
    std::cerr << "child: " << made.status() << "\n";
    return 2;
  }
  Made m{std::move(*made)};
  auto t = m.inst.transport;
  auto sub = std::make_shared<Stream<Delivery>>(run(m.inst, [t, topic]() -> awaitable<Stream<Delivery>> {
    co_return co_await t->subscribe(topic, SubscribeOptions().group("holders").max_in_flight(500));
  }));
  std::cout << "subscribed" << std::endl;
  auto held = run(m.inst, [sub]() -> awaitable<std::size_t> {
    std::vector<Delivery> keep;  // never settled: the process dies with them
    while (keep.size() < 100) {
      Next n = co_await next_for(*sub, 60s);
      if (n.what != Next::kind::item) break;
      keep.push_back(std::move(*n.delivery));
    }
    const std::size_t count = keep.size();
    std::cout << "holding " << count << std::endl;
    asio::steady_timer forever(co_await asio::this_coro::executor, 10min);
    co_await forever.async_wait(asio::use_awaitable_t<executor>{});
    co_return count;
  });
  return held == 100 ? 0 : 1;
}

TEST(RabbitmqFault, KilledConsumersUnackedMessagesAreRedelivered) {
  if (!std::getenv("PATCHBAY_RABBITMQ_PORT"))
    GTEST_SKIP() << "needs rabbitmq-server (scripts/brokers start rabbitmq; scripts/test does it)";
  const std::string exchange = unique("killed-consumer");
  const std::string topic = "jobs";

  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) env_storage.emplace_back(*e);
  env_storage.push_back("PATCHBAY_RMQ_CHILD=" + exchange + ":" + topic);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string self = "/proc/self/exe";
  char* argv[] = {self.data(), nullptr};
  pid_t child = 0;
  ASSERT_EQ(posix_spawn(&child, "/proc/self/exe", &actions, nullptr, argv, envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  FILE* child_out = ::fdopen(out[0], "r");
  auto read_line = [&]() -> std::string {
    char buf[256];
    if (!std::fgets(buf, sizeof buf, child_out)) return {};
    std::string s(buf);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  };
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reaper{child};

  ASSERT_EQ(read_line(), "subscribed");
  auto made = from_config(config_for(shared_url(), "    exchange: " + exchange + "\n"));
  ASSERT_TRUE(made.ok()) << made.status();
  Made m{std::move(*made)};
  auto t = m.inst.transport;
  auto published = run(m.inst, [t, topic]() -> awaitable<std::set<std::string>> {
    std::set<std::string> ids;
    for (int i = 0; i < 100; ++i) {
      Message msg("job " + std::to_string(i));
      msg.topic = topic;
      msg.stamp();
      ids.insert(msg.id);
      co_await t->publish(std::move(msg));
    }
    co_return ids;
  });
  ASSERT_EQ(read_line(), "holding 100");
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  std::fclose(child_out);

  auto result = run(m.inst, [t, topic]() -> awaitable<std::pair<std::set<std::string>, int>> {
    auto sub = co_await t->subscribe(topic, SubscribeOptions().group("holders"));
    std::set<std::string> ids;
    int not_marked = 0;
    while (ids.size() < 100) {
      Next n = co_await next_for(sub, 30s);
      if (n.what != Next::kind::item) break;
      if (!n.delivery->redelivered()) ++not_marked;
      ids.insert(n.delivery->message().id);
      n.delivery->ack();
    }
    co_return std::make_pair(ids, not_marked);
  });
  EXPECT_EQ(result.first, published) << result.first.size() << " of 100 came back";
  EXPECT_EQ(result.second, 0) << "redeliveries not marked redelivered()";
}

}  // namespace
}  // namespace patchbay::rabbitmq_test

int main(int argc, char** argv) {
  if (const char* spec = std::getenv("PATCHBAY_RMQ_CHILD")) return patchbay::rabbitmq_test::child_main(spec);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
