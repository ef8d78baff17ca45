#include <patchbay/runtime.hpp>

#include <patchbay/error.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace patchbay {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr auto kLimit = std::chrono::seconds(120);

std::unique_ptr<Runtime> make_runtime(std::optional<std::string> config_text = std::nullopt, int threads = 2) {
  RuntimeOptions options;
  options.config_text = std::move(config_text);
  options.threads = threads;
  options.handle_signals = false;
  auto rt = Runtime::create(std::move(options));
  EXPECT_TRUE(rt.ok()) << rt.status();
  if (!rt.ok()) return nullptr;
  return std::move(*rt);
}

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    out.emplace_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

/// Runs `fn()` (a coroutine function) on the runtime's executor and returns its result; throws
/// instead of hanging when it does not finish within `limit`.
template <typename F>
auto run_on(Runtime& rt, F fn, std::chrono::seconds limit = kLimit) {
  auto future = asio::co_spawn(rt.get_executor(), std::move(fn), asio::use_future);
  if (future.wait_for(limit) != std::future_status::ready)
    throw std::runtime_error("the coroutine did not finish within " + std::to_string(limit.count()) + "s");
  return future.get();
}

/// Runs `fn` on its own thread; aborts the process (rather than hang the suite) if it does not
/// return within `limit`.
template <typename F>
void must_return_within(std::chrono::seconds limit, const char* what, F fn) {
  std::promise<void> done;
  auto finished = done.get_future();
  std::thread t([&] {
    fn();
    done.set_value();
  });
  if (finished.wait_for(limit) != std::future_status::ready) {
    std::fprintf(stderr, "FATAL: %s did not return within %llds\n", what, static_cast<long long>(limit.count()));
    std::abort();
  }
  t.join();
}

awaitable<void> sleep_for(duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable_t<executor>{});
}

bool is_hex_id(const std::string& id) {
  if (id.size() != 32) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// No config: the embedded in-process transport

TEST(Runtime, CreateWithoutConfigPublishSubscribeRoundTrip) {
  auto rt = make_runtime();
  ASSERT_TRUE(rt);
  ASSERT_TRUE(rt->start().ok());

  struct Got {
    std::string payload, topic, id, header;
    bool has_time = false;
    bool ended = false;
  };
  Got got = run_on(*rt, [&]() -> awaitable<Got> {
    auto topic = rt->topic("greetings");
    auto sub = co_await topic.subscribe(SubscribeOptions());
    Message m("hello");
    m.headers.add("k", "v");
    co_await topic.publish(std::move(m));
    Got g;
    auto d = co_await sub.next();
    if (!d) {
      g.ended = true;
      co_return g;
    }
    g.payload = d->message().payload.str();
    g.topic = d->message().topic;
    g.id = d->message().id;
    g.has_time = d->message().time != Message::time_point{};
    if (auto h = d->message().headers.get("k")) g.header = std::string(*h);
    d->ack();
    co_return g;
  });
  ASSERT_FALSE(got.ended);
  EXPECT_EQ(got.payload, "hello");
  EXPECT_EQ(got.topic, "greetings");
  EXPECT_TRUE(is_hex_id(got.id)) << got.id;
  EXPECT_TRUE(got.has_time);
  EXPECT_EQ(got.header, "v");

  rt->stop();
  rt->wait();
}

TEST(Runtime, CreateWithoutConfigRequestServe) {
  auto rt = make_runtime();
  ASSERT_TRUE(rt);
  ASSERT_TRUE(rt->start().ok());
  auto echo = rt->service("echo");
  EXPECT_EQ(echo.name(), "echo");
  EXPECT_TRUE(echo.features().request_reply);
  asio::co_spawn(rt->get_executor(),
                 echo.serve([](Message m) -> awaitable<Message> { co_return Message("re:" + m.payload.str()); }),
                 asio::detached);
  std::string reply = run_on(*rt, [&]() -> awaitable<std::string> {
    Message r = co_await echo.request(Message("ping"), std::chrono::seconds(60));
    co_return r.payload.str();
  });
  EXPECT_EQ(reply, "re:ping");

  // A handler that throws fails the request with remote_error.
  auto failing = rt->service("failing");
  asio::co_spawn(rt->get_executor(),
                 failing.serve([](Message) -> awaitable<Message> {
                   throw std::runtime_error("boom");
                   co_return Message();
                 }),
                 asio::detached);
  auto error = run_on(*rt, [&]() -> awaitable<boost::system::error_code> {
    try {
      co_await failing.request(Message("x"), std::chrono::seconds(60));
    } catch (const boost::system::system_error& e) {
      co_return e.code();
    }
    co_return boost::system::error_code();
  });
  EXPECT_EQ(error, errc::remote_error);

  rt->stop();
  rt->wait();
}

TEST(Runtime, EmbeddedDefaultEverythingOnOneTransport) {
  auto rt = make_runtime();
  ASSERT_TRUE(rt);
  EXPECT_TRUE(rt->bindings().empty());
  auto a = rt->topic("a");
  auto b = rt->topic("b");
  EXPECT_EQ(a.transport(), b.transport());
  ASSERT_TRUE(a.transport());
  EXPECT_EQ(a.transport()->type(), "inproc");
  EXPECT_EQ(a.name(), "a");
  EXPECT_EQ(a.binding(), "a");
  EXPECT_EQ(rt->config().file, "<embedded default>");
}

// ---------------------------------------------------------------------------------------------
// Bindings

constexpr const char* kTwoTransports = R"(
transports:
  bus: { type: inproc, max_payload: 100 }
  other: { type: inproc }
bindings:
  ticks: { transport: bus, name: wire.ticks, require: [ordered, replay] }
  jobs: { transport: other }
)";

TEST(Runtime, NamesWithoutBindingUseTheDefaultTransport) {
  auto rt = make_runtime(kTwoTransports);
  ASSERT_TRUE(rt);
  auto ticks = rt->topic("ticks");
  auto jobs = rt->topic("jobs");
  auto unbound = rt->topic("unbound");
  auto unbound2 = rt->topic("unbound.too");
  EXPECT_EQ(ticks.name(), "wire.ticks");
  EXPECT_EQ(ticks.binding(), "ticks");
  EXPECT_EQ(ticks.features().max_payload, 100u);
  EXPECT_EQ(unbound.name(), "unbound");
  EXPECT_EQ(unbound.binding(), "unbound");
  EXPECT_NE(ticks.transport(), jobs.transport());
  EXPECT_NE(unbound.transport(), ticks.transport());
  EXPECT_NE(unbound.transport(), jobs.transport());
  EXPECT_EQ(unbound.transport(), unbound2.transport());
  EXPECT_EQ(unbound.features().max_payload, 0u) << "the embedded default, not 'bus'";

  auto svc = rt->service("ticks");
  EXPECT_EQ(svc.name(), "wire.ticks");
  EXPECT_EQ(svc.binding(), "ticks");
  EXPECT_EQ(rt->service("unbound").name(), "unbound");
}

TEST(Runtime, DefaultTransportFromConfig) {
  auto rt = make_runtime(R"(
default_transport: bus
transports:
  bus: { type: inproc, max_payload: 7 }
bindings:
  ticks: { transport: bus }
)");
  ASSERT_TRUE(rt);
  EXPECT_EQ(rt->topic("anything").features().max_payload, 7u);
  EXPECT_EQ(rt->topic("anything").transport(), rt->topic("ticks").transport());
}

TEST(Runtime, UnboundNameWorksEndToEndOnDefault) {
  auto rt = make_runtime(kTwoTransports);
  ASSERT_TRUE(rt);
  ASSERT_TRUE(rt->start().ok());
  std::string got = run_on(*rt, [&]() -> awaitable<std::string> {
    auto t = rt->topic("free");
    auto sub = co_await t.subscribe(SubscribeOptions());
    co_await t.publish("on default");
    auto d = co_await sub.next();
    if (!d) co_return std::string("<ended>");
    d->ack();
    co_return d->message().payload.str();
  });
  EXPECT_EQ(got, "on default");
}

TEST(Runtime, BindingsDescribeTheConfig) {
  auto rt = make_runtime(kTwoTransports);
  ASSERT_TRUE(rt);
  auto infos = rt->bindings();
  ASSERT_EQ(infos.size(), 2u);
  const BindingInfo* ticks = nullptr;
  const BindingInfo* jobs = nullptr;
  for (const auto& b : infos) {
    if (b.name == "ticks") ticks = &b;
    if (b.name == "jobs") jobs = &b;
  }
  ASSERT_TRUE(ticks);
  ASSERT_TRUE(jobs);
  EXPECT_EQ(ticks->wire_name, "wire.ticks");
  EXPECT_EQ(ticks->transport, "bus");
  EXPECT_EQ(ticks->transport_type, "inproc");
  EXPECT_EQ(ticks->origin, "builtin");
  EXPECT_TRUE(ticks->features.ordered);
  EXPECT_TRUE(ticks->features.replay);
  EXPECT_EQ(ticks->features.max_payload, 100u);
  EXPECT_TRUE(ticks->middleware.empty());
  EXPECT_EQ(jobs->wire_name, "jobs");
  EXPECT_EQ(jobs->transport, "other");
  EXPECT_EQ(jobs->transport_type, "inproc");
  EXPECT_EQ(jobs->features.max_payload, 0u);
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Whether `line` reads "<string>:LINE:COLUMN: what" (std::regex trips GCC 12 warnings at -O1).
bool is_located(std::string_view line) {
  constexpr std::string_view prefix = "<string>:";
  if (line.substr(0, prefix.size()) != prefix) return false;
  line.remove_prefix(prefix.size());
  for (int field = 0; field < 2; ++field) {
    std::size_t digits = 0;
    while (digits < line.size() && line[digits] >= '0' && line[digits] <= '9') ++digits;
    if (digits == 0 || line.substr(0, digits) == "0") return false;
    line.remove_prefix(digits);
    if (line.empty() || line.front() != ':') return false;
    line.remove_prefix(1);
  }
  return line.size() > 1 && line.front() == ' ';
}

void expect_located_lines(const std::vector<std::string>& ls) {
  for (const auto& l : ls) EXPECT_TRUE(is_located(l)) << "not located: " << l;
}

TEST(Runtime, SeveralProblemsReportedTogether) {
  RuntimeOptions options;
  options.handle_signals = false;
  options.config_text = R"(transports:
  a: { type: nosuch }
  b: { type: inproc, histroy: 5 }
  c: { type: inproc }
  d: { type: inproc, history: 5, buffer: 10 }
bindings:
  x: { transport: c, require: [durable] }
)";
  auto rt = Runtime::create(std::move(options));
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(rt.status().message());
  auto ls = lines(message);
  ASSERT_EQ(ls.size(), 4u) << message;
  expect_located_lines(ls);
  EXPECT_THAT(message, HasSubstr("<string>:2:3: transport 'a'"));
  EXPECT_THAT(message, HasSubstr("unknown transport type 'nosuch'"));
  EXPECT_THAT(message, HasSubstr("<string>:3:"));
  EXPECT_THAT(message, HasSubstr("'histroy'"));
  EXPECT_THAT(message, HasSubstr("did you mean 'history'"));
  EXPECT_THAT(message, HasSubstr("<string>:5:"));
  EXPECT_THAT(message, HasSubstr("buffer (10) may not exceed history (5)"));
  EXPECT_THAT(message, HasSubstr("<string>:7:"));
  EXPECT_THAT(message, HasSubstr("binding 'x': transport 'c' (type inproc) lacks required feature 'durable'"));
}

TEST(Runtime, SeveralConfigProblemsReportedTogether) {
  RuntimeOptions options;
  options.handle_signals = false;
  options.config_text = R"(threads: lots
colour: blue
bindings:
  x: { transport: missing, require: [oredred] }
)";
  auto rt = Runtime::create(std::move(options));
  ASSERT_FALSE(rt.ok());
  const std::string message(rt.status().message());
  auto ls = lines(message);
  EXPECT_GE(ls.size(), 4u) << message;
  expect_located_lines(ls);
  EXPECT_THAT(message, HasSubstr("<string>:1:"));
  EXPECT_THAT(message, HasSubstr("'colour'"));
  EXPECT_THAT(message, HasSubstr("'missing'"));
  EXPECT_THAT(message, HasSubstr("'oredred'"));
}

TEST(Runtime, MissingConfigFileIsAnError) {
  RuntimeOptions options;
  options.handle_signals = false;
  options.config_file = "/nonexistent/patchbay-runtime-test.yaml";
  auto rt = Runtime::create(std::move(options));
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(rt.status().message()), HasSubstr("/nonexistent/patchbay-runtime-test.yaml"));
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

TEST(Runtime, StartStopWaitAreIdempotent) {
  auto rt = make_runtime();
  ASSERT_TRUE(rt);
  EXPECT_FALSE(rt->stopping());
  rt->wait();  // not started: returns at once
  EXPECT_TRUE(rt->start().ok());
  EXPECT_TRUE(rt->start().ok());
  EXPECT_FALSE(rt->stopping());
  rt->stop();
  EXPECT_TRUE(rt->stopping());
  rt->stop();
  EXPECT_TRUE(rt->stopping());
  must_return_within(kLimit, "wait()", [&] { rt->wait(); });
  must_return_within(kLimit, "second wait()", [&] { rt->wait(); });
  rt->stop();
  EXPECT_TRUE(rt->stopping());
}

TEST(Runtime, ConcurrentWaitsAllReturn) {
  // wait() may be called from any thread that is not one of the runtime's: several threads
  // waiting at once (say run() on one, and an explicit wait() on another) must all return after
  // one graceful stop.
  for (int round = 0; round < 20; ++round) {
    auto rt = make_runtime();
    ASSERT_TRUE(rt);
    ASSERT_TRUE(rt->start().ok());
    std::atomic<int> returned{0};
    std::vector<std::thread> waiters;
    for (int i = 0; i < 3; ++i)
      waiters.emplace_back([&] {
        rt->wait();
        ++returned;
      });
    rt->stop();
    must_return_within(kLimit, "concurrent wait()", [&] {
      for (auto& w : waiters) w.join();
    });
    EXPECT_EQ(returned.load(), 3);
  }
}

TEST(Runtime, StopBeforeRunMakesRunReturn) {
  auto rt = make_runtime();
  ASSERT_TRUE(rt);
  rt->stop();
  must_return_within(kLimit, "run()", [&] { EXPECT_TRUE(rt->run().ok()); });
}

TEST(Runtime, StopFromAnotherThreadEndsRun) {
  auto rt = make_runtime();
  ASSERT_TRUE(rt);
  std::promise<void> running;
  asio::post(rt->get_executor(), [&] { running.set_value(); });
  std::thread stopper([&] {
    running.get_future().wait();
    rt->stop();
  });
  must_return_within(kLimit, "run()", [&] { EXPECT_TRUE(rt->run().ok()); });
  stopper.join();
  EXPECT_TRUE(rt->stopping());
}

TEST(Runtime, StopFromInsideACoroutine) {
  auto rt = make_runtime();
  ASSERT_TRUE(rt);
  std::atomic<bool> after_stop{false};
  asio::co_spawn(
      rt->get_executor(),
      [&]() -> awaitable<void> {
        co_await sleep_for(1ms);
        rt->stop();  // must not block or deadlock on an io thread
        after_stop = true;
      },
      asio::detached);
  must_return_within(kLimit, "run()", [&] { EXPECT_TRUE(rt->run().ok()); });
  EXPECT_TRUE(after_stop.load());
  EXPECT_TRUE(rt->stopping());
}

// A subscriber that takes its time over each delivery.
struct SlowConsumer {
  std::mutex mutex;
  std::vector<std::string> received;
  std::atomic<bool> ended{false};
};

/// Settles nothing until `rt` is stopping, then takes `per_message` over each delivery.
awaitable<void> consume_slowly(Stream<Delivery> sub, std::shared_ptr<SlowConsumer> state, const Runtime* rt,
                               duration per_message) {
  while (auto d = co_await sub.next()) {
    while (!rt->stopping()) co_await sleep_for(1ms);
    co_await sleep_for(per_message);
    {
      std::lock_guard lock(state->mutex);
      state->received.push_back(d->message().payload.str());
    }
    d->ack();
  }
  state->ended = true;
}

TEST(Runtime, GracefulStopDrainsSlowSubscriber) {
  // The drain timeouts are generous: the test checks that stop() waits for the subscriber,
  // not how fast it is.
  auto rt = make_runtime(R"(
drain_timeout: 100s
default_transport: bus
transports:
  bus: { type: inproc, drain_timeout: 100s }
)");
  ASSERT_TRUE(rt);
  ASSERT_TRUE(rt->start().ok());
  constexpr int kMessages = 50;
  auto state = std::make_shared<SlowConsumer>();
  run_on(*rt, [&]() -> awaitable<void> {
    auto topic = rt->topic("work");
    auto sub = co_await topic.subscribe(SubscribeOptions());
    asio::co_spawn(co_await asio::this_coro::executor, consume_slowly(std::move(sub), state, rt.get(), 5ms), asio::detached);
    for (int i = 0; i < kMessages; ++i) co_await topic.publish(std::to_string(i));
  });
  {
    std::lock_guard lock(state->mutex);
    EXPECT_TRUE(state->received.empty()) << "the subscriber settles nothing before stop()";
  }
  rt->stop();
  must_return_within(std::chrono::seconds(200), "wait()", [&] { rt->wait(); });
  std::vector<std::string> expected;
  for (int i = 0; i < kMessages; ++i) expected.push_back(std::to_string(i));
  std::lock_guard lock(state->mutex);
  EXPECT_EQ(state->received, expected) << "every message published before stop() is delivered, in order";
  // Whether the consumer saw its stream end before the io_context stopped is not specified: the
  // drain ends when everything is settled, and a coroutine still suspended then is destroyed.
}

awaitable<void> hold_one_delivery(Stream<Delivery> sub, std::shared_ptr<std::atomic<bool>> holding) {
  auto d = co_await sub.next();
  holding->store(d.has_value());
  // Never settles it: the runtime stops (after the drain timeout) with this coroutine suspended,
  // and destroying it nacks the delivery.
  co_await sleep_for(std::chrono::hours(1));
}

TEST(Runtime, DestroyStartedRuntimeWithoutWait) {
  auto rt = make_runtime(R"(
default_transport: bus
transports:
  bus: { type: inproc, drain_timeout: 200ms }
)");
  ASSERT_TRUE(rt);
  ASSERT_TRUE(rt->start().ok());
  auto holding = std::make_shared<std::atomic<bool>>(false);
  {
    // Leave work suspended: a subscriber waiting for messages, a server waiting for requests and
    // a delivery held unsettled. (Handles must not outlive the runtime: this block ends first.)
    auto echo = rt->service("echo");
    asio::co_spawn(rt->get_executor(), echo.serve([](Message m) -> awaitable<Message> { co_return m; }),
                   asio::detached);
    run_on(*rt, [&]() -> awaitable<void> {
      auto ex = co_await asio::this_coro::executor;
      auto idle = rt->topic("idle");
      auto sub = co_await idle.subscribe(SubscribeOptions());
      asio::co_spawn(
          ex,
          [](Stream<Delivery> s) -> awaitable<void> {
            while (auto d = co_await s.next()) d->ack();
          }(std::move(sub)),
          asio::detached);

      auto held = rt->topic("held");
      auto held_sub = co_await held.subscribe(SubscribeOptions());
      asio::co_spawn(ex, hold_one_delivery(std::move(held_sub), holding), asio::detached);
      co_await held.publish("keep me");

      Message reply = co_await echo.request(Message("hi"), std::chrono::seconds(60));
      EXPECT_EQ(reply.payload.view(), "hi");
      for (auto until = clock::now() + kLimit; !holding->load() && clock::now() < until;) co_await sleep_for(1ms);
    });
  }
  EXPECT_TRUE(holding->load());
  must_return_within(kLimit, "~Runtime()", [&] { rt.reset(); });
  EXPECT_FALSE(rt);
}

TEST(Runtime, DestroyNeverStartedRuntime) {
  auto rt = make_runtime();
  ASSERT_TRUE(rt);
  must_return_within(kLimit, "~Runtime()", [&] { rt.reset(); });
}

// Records the distinct threads that run posted work; each handler waits (bounded) until
// `expected` distinct threads have checked in, so that all io threads are shown to take part.
std::size_t distinct_io_threads(Runtime& rt, std::size_t expected, int handlers) {
  std::mutex mutex;
  std::condition_variable cv;
  std::set<std::thread::id> ids;
  int done = 0;
  for (int i = 0; i < handlers; ++i) {
    asio::post(rt.get_executor(), [&] {
      std::unique_lock lock(mutex);
      ids.insert(std::this_thread::get_id());
      cv.notify_all();
      cv.wait_for(lock, 30s, [&] { return ids.size() >= expected; });
      ++done;
      cv.notify_all();
    });
  }
  std::unique_lock lock(mutex);
  cv.wait_for(lock, kLimit, [&] { return done == handlers; });
  EXPECT_EQ(done, handlers);
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 0u) << "work ran on the caller's thread";
  return ids.size();
}

TEST(Runtime, ThreadsOptionIsHonoured) {
  for (int n : {1, 3}) {
    SCOPED_TRACE("threads = " + std::to_string(n));
    auto rt = make_runtime(std::nullopt, n);
    ASSERT_TRUE(rt);
    ASSERT_TRUE(rt->start().ok());
    EXPECT_EQ(distinct_io_threads(*rt, static_cast<std::size_t>(n), 4 * n), static_cast<std::size_t>(n));
    rt->stop();
    rt->wait();
  }
}

TEST(Runtime, ThreadsFromConfigAndOverride) {
  {
    auto rt = make_runtime("threads: 3\n", 0);
    ASSERT_TRUE(rt);
    ASSERT_TRUE(rt->start().ok());
    EXPECT_EQ(distinct_io_threads(*rt, 3, 12), 3u) << "threads: from the config";
  }
  {
    auto rt = make_runtime("threads: 3\n", 1);
    ASSERT_TRUE(rt);
    ASSERT_TRUE(rt->start().ok());
    EXPECT_EQ(distinct_io_threads(*rt, 1, 8), 1u) << "RuntimeOptions.threads overrides the config";
  }
}

// The only test that lets the runtime handle signals. Nothing else installs a SIGTERM handler.
TEST(Runtime, SigtermStopsRun) {
  RuntimeOptions options;
  options.threads = 2;
  options.handle_signals = true;
  auto created = Runtime::create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status();
  auto rt = std::move(*created);

  // The io threads start after run() installed the signal handlers: once this handler ran,
  // SIGTERM goes to the runtime rather than killing the process.
  std::promise<void> running;
  asio::post(rt->get_executor(), [&] { running.set_value(); });
  std::promise<absl::Status> returned;
  auto run_result = returned.get_future();
  std::thread runner([&] { returned.set_value(rt->run()); });
  auto is_running = running.get_future();
  if (is_running.wait_for(kLimit) != std::future_status::ready) {
    std::fprintf(stderr, "FATAL: the runtime did not start\n");
    std::abort();
  }
  ASSERT_EQ(std::raise(SIGTERM), 0);
  if (run_result.wait_for(kLimit) != std::future_status::ready) {
    std::fprintf(stderr, "FATAL: run() did not return after SIGTERM\n");
    std::abort();
  }
  runner.join();
  EXPECT_TRUE(run_result.get().ok());
  EXPECT_TRUE(rt->stopping());
}

}  // namespace
}  // namespace patchbay
