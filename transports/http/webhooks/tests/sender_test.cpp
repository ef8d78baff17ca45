// The webhook sender: the outbox (start-up errors naming the file, reopening), the retry
// schedule walked on a simulated clock, status handling (2xx, 3xx, 410, 429/503 Retry-After,
// timeouts) against a real loopback receiver (patchbay's Beast server), ordering and
// concurrency, the SSRF guard, the subscriptions API and the `webhooks:` config of the `http`
// transport (loaded as a module).
#include <patchbay/webhook/sender.hpp>

#include "outbox.hpp"

#include <patchbay/conformance/suite.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/hub.hpp>
#include <patchbay/http/server.hpp>
#include <patchbay/http/webhook_signature.hpp>
#include <patchbay/runtime.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::Message;
using patchbay::executor;
using patchbay::http::Exchange;
using patchbay::http::Hub;
using patchbay::http::Server;
using patchbay::webhook::ManualClock;
using patchbay::webhook::Sender;
using patchbay::webhook::SenderOptions;
namespace wh = patchbay::http::webhook;

const wh::Secret kSecret = *wh::Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");

/// A directory removed at the end of the test.
struct TempDir {
  TempDir() {
    path = fs::temp_directory_path() / ("pb-webhook-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  fs::path path;
  static inline std::atomic<int> counter{0};
};

template <typename Cond>
bool eventually(Cond cond, std::chrono::milliseconds limit = 30s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

awaitable<void> answer_ok(Exchange& ex) {
  ex.respond(bhttp::status::ok, "");
  co_return;
}

/// One received delivery.
struct Received {
  std::string target;
  std::string id, timestamp, signature, topic, content_type, custom;
  std::string body;
  std::size_t signatures = 0;
  bool verified = false;
};

/// An io_context on two threads, a hub, and a loopback receiver whose answer each test scripts.
class Env {
  // First, so that it is destroyed last: the hub, the server and the sender must go before it.
  asio::io_context io_{2};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;

 public:
  explicit Env(std::uint16_t port = 0) : guard_(asio::make_work_guard(io_)) {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    hub = Hub::create(io_.get_executor());
    patchbay::http::ServerOptions so;
    so.port = port;
    auto s = Server::create(io_.get_executor(), so);
    EXPECT_TRUE(s.ok()) << s.status();
    receiver = *s;
    auto self = this;
    receiver->route(bhttp::verb::post, "/hook/{name}", [self](Exchange& ex) -> awaitable<void> { return self->serve(ex); });
    receiver->route(bhttp::verb::post, "/elsewhere", [self](Exchange& ex) -> awaitable<void> {
      ++self->elsewhere;
      return answer_ok(ex);
    });
    receiver->start();
  }
  ~Env() {
    if (sender) run([this]() -> awaitable<void> { co_await sender->stop(1s); });
    sender.reset();
    hub->stop();
    run([this]() -> awaitable<void> { co_await receiver->stop(); });
    guard_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  std::string url(const std::string& name = "a") const { return receiver->url() + "/hook/" + name; }
  executor ex() { return io_.get_executor(); }

  SenderOptions options(const std::string& name = "a") {
    SenderOptions o;
    o.allow = {"127.0.0.0/8"};
    o.clock = clock;
    o.random = [] { return 0.5; };  // no jitter unless a test says otherwise
    patchbay::webhook::EndpointSpec e;
    e.url = url(name);
    e.topics = {"prices"};
    e.secrets = {kSecret};
    o.endpoints.push_back(e);
    return o;
  }

  void start(SenderOptions o) {
    create(std::move(o));
    sender->start();
  }
  /// The sender, not started.
  void create(SenderOptions o) {
    auto s = Sender::create(io_.get_executor(), hub, std::move(o));
    ASSERT_TRUE(s.ok()) << s.status();
    sender = *s;
  }

  std::string publish(const std::string& body, const std::string& topic = "prices") {
    Message m{patchbay::Bytes(body)};
    m.headers.add("content-type", "text/plain");
    m.headers.add("x-custom", "yes");
    m.stamp();
    const auto id = m.id;
    hub->publish(topic, std::move(m));
    return id;
  }

  template <typename F>
  void run(F f) {
    auto fut = asio::co_spawn(io_.get_executor(), f(), asio::use_future);
    ASSERT_EQ(fut.wait_for(60s), std::future_status::ready);
    fut.get();
  }

  /// How the receiver answers: status, extra header fields, and an optional hold before answering.
  struct Script {
    unsigned status = 200;
    std::vector<std::pair<std::string, std::string>> fields;
    std::chrono::milliseconds hold{0};
  };
  void answer(std::function<Script(const Received&)> f) {
    std::lock_guard lock(mu);
    script = std::move(f);
  }
  std::vector<Received> received() {
    std::lock_guard lock(mu);
    return log;
  }
  std::size_t count() {
    std::lock_guard lock(mu);
    return log.size();
  }

  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<Hub> hub;
  std::shared_ptr<Server> receiver;
  std::shared_ptr<Sender> sender;
  std::atomic<int> elsewhere{0};
  std::atomic<int> active{0}, max_active{0};
  std::mutex mu;
  std::vector<Received> log;
  std::function<Script(const Received&)> script;

 private:
  awaitable<void> serve(Exchange& ex) {
    const int now_active = ++active;
    for (int m = max_active.load(); now_active > m && !max_active.compare_exchange_weak(m, now_active);) {
    }
    auto& req = ex.request();
    Received r;
    r.target = std::string(req.target());
    r.id = std::string(req["webhook-id"]);
    r.timestamp = std::string(req["webhook-timestamp"]);
    r.signature = std::string(req["webhook-signature"]);
    r.topic = std::string(req["Patchbay-Topic"]);
    r.content_type = std::string(req[bhttp::field::content_type]);
    r.custom = std::string(req["x-custom"]);
    r.body = req.body();
    r.signatures = r.signature.empty() ? 0 : static_cast<std::size_t>(std::count(r.signature.begin(), r.signature.end(), ' ') + 1);
    // Verified against the sender's clock (simulated in most tests).
    const wh::Secret secrets[] = {kSecret};
    r.verified = !wh::verify(secrets, r.id, r.timestamp, r.signature, r.body, clock->now(), 300s).has_value();
    Script s;
    {
      std::lock_guard lock(mu);
      if (script) s = script(r);
      log.push_back(r);
    }
    if (s.hold > 0ms) {
      asio::steady_timer t(co_await asio::this_coro::executor, s.hold);
      co_await t.async_wait(asio::use_awaitable_t<executor>{});
    }
    auto& res = ex.response();
    res.result(static_cast<bhttp::status>(s.status));
    res.version(req.version());
    for (auto& [k, v] : s.fields) res.set(k, v);
    ex.respond();
    --active;
  }
};

// --- the outbox -------------------------------------------------------------------------------

TEST(WebhookOutbox, CorruptFileIsAStartupErrorNamingIt) {
  TempDir dir;
  const auto path = dir.file("outbox.db");
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 200; ++i) f << "this is not a database, just some bytes on disk\n";
  }
  const auto size = fs::file_size(path);
  auto o = patchbay::webhook::Outbox::open(path);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find(path), std::string::npos) << o.status();
  EXPECT_NE(o.status().message().find("corrupt"), std::string::npos) << o.status();
  // Never a silent reset: the file is as it was.
  EXPECT_EQ(fs::file_size(path), size);
}

TEST(WebhookOutbox, LockedFileIsAStartupErrorNamingIt) {
  TempDir dir;
  const auto path = dir.file("outbox.db");
  auto first = patchbay::webhook::Outbox::open(path);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = patchbay::webhook::Outbox::open(path);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(path), std::string::npos) << second.status();
  EXPECT_NE(second.status().message().find("locked"), std::string::npos) << second.status();
}

TEST(WebhookOutbox, AnotherDatabaseIsRefused) {
  TempDir dir;
  const auto path = dir.file("other.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto o = patchbay::webhook::Outbox::open(path);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("not a patchbay webhook outbox"), std::string::npos) << o.status();
}

TEST(WebhookOutbox, RowsSurviveReopening) {
  TempDir dir;
  const auto path = dir.file("outbox.db");
  Message m{patchbay::Bytes(std::string("\0binary\xff", 8))};
  m.topic = "t";
  m.headers.add("a", "1");
  m.headers.add("a", "2");
  m.stamp();
  {
    auto o = patchbay::webhook::Outbox::open(path);
    ASSERT_TRUE(o.ok()) << o.status();
    std::vector<std::int64_t> rows;
    const auto id = (*o)->add(m, "1:1", {"e1", "e2"}, 1234, rows);
    ASSERT_EQ(rows.size(), 2u);
    (*o)->remove(rows[0], id);
    (*o)->reschedule(rows[1], 3, 5678, "HTTP 500");
  }
  auto o = patchbay::webhook::Outbox::open(path);
  ASSERT_TRUE(o.ok()) << o.status();
  std::vector<patchbay::webhook::OutboxMessage> messages;
  std::vector<patchbay::webhook::OutboxDelivery> deliveries;
  (*o)->load([&](auto x) { messages.push_back(std::move(x)); }, [&](auto x) { deliveries.push_back(std::move(x)); });
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_EQ(deliveries.size(), 1u);
  EXPECT_EQ(messages[0].message.payload, m.payload);
  EXPECT_EQ(messages[0].message.headers, m.headers);
  EXPECT_EQ(messages[0].message.id, m.id);
  EXPECT_EQ(deliveries[0].endpoint, "e2");
  EXPECT_EQ(deliveries[0].attempts, 3);
  EXPECT_EQ(deliveries[0].next_at_ms, 5678);
  EXPECT_EQ(deliveries[0].last_error, "HTTP 500");
}

// --- delivery ---------------------------------------------------------------------------------

TEST(WebhookSender, DeliversSignedWithTheMessageHeaders) {
  Env env;
  env.start(env.options());
  const auto id = env.publish("hello");
  ASSERT_TRUE(eventually([&] { return env.sender->stats().delivered == 1; }));
  auto r = env.received();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].id, id);
  EXPECT_TRUE(r[0].verified) << r[0].signature;
  EXPECT_EQ(r[0].topic, "prices");
  EXPECT_EQ(r[0].content_type, "text/plain");
  EXPECT_EQ(r[0].custom, "yes");
  EXPECT_EQ(r[0].body, "hello");
  EXPECT_EQ(env.sender->stats().pending, 0u);
  // Binary and empty payloads.
  const std::string binary("\0\x01\xff\r\n", 5);
  env.publish(binary);
  env.publish("");
  ASSERT_TRUE(eventually([&] { return env.sender->stats().delivered == 3; }));
  std::multiset<std::string> bodies;
  for (const auto& x : env.received()) bodies.insert(x.body);
  EXPECT_EQ(bodies, (std::multiset<std::string>{"hello", binary, ""}));
  // A topic nobody subscribes to writes no outbox row and sends nothing.
  env.publish("other", "unrelated");
  EXPECT_EQ(env.sender->stats().pending, 0u);
}

// A publish the hub acknowledges after the sender was created but before start() (the runtime
// still starting) is recorded, and delivered once delivery starts; nothing is sent before.
TEST(WebhookSender, APublishBeforeStartIsDeliveredAfterStart) {
  Env env;
  env.create(env.options());
  ASSERT_TRUE(env.sender);
  const auto id = env.publish("early");
  EXPECT_EQ(env.sender->stats().pending, 1u);
  EXPECT_EQ(env.count(), 0u);
  env.sender->start();
  ASSERT_TRUE(eventually([&] { return env.sender->stats().delivered == 1; }));
  auto r = env.received();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].id, id);
  EXPECT_EQ(r[0].body, "early");
}

TEST(WebhookSender, RetryScheduleOnASimulatedClock) {
  Env env;
  auto o = env.options();
  env.start(o);
  env.answer([](const Received&) { return Env::Script{500}; });
  auto dead = env.hub->subscribe("webhooks.dead", patchbay::Position());
  const auto id = env.publish("again");
  // Attempt 1 at once (step 0s), then one attempt per step, each after the step's delay: the
  // simulated clock moves exactly to the armed alarm, never further.
  ASSERT_TRUE(eventually([&] { return env.count() == 1; }));
  for (std::size_t step = 1; step < o.schedule.size(); ++step) {
    const auto before = env.clock->now();
    ASSERT_TRUE(eventually([&] { return env.clock->next_alarm().has_value(); })) << "step " << step;
    EXPECT_EQ(*env.clock->next_alarm() - before, o.schedule[step]) << "step " << step;
    // One millisecond early: nothing.
    env.clock->advance(o.schedule[step] - 1ms);
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(env.count(), step) << "step " << step;
    env.clock->advance(1ms);
    ASSERT_TRUE(eventually([&] { return env.count() == step + 1; })) << "step " << step;
  }
  // Exhausted: the dead-letter topic gets it with the endpoint, the attempts and the last error.
  ASSERT_TRUE(eventually([&] { return env.sender->stats().dead_lettered == 1; }));
  for (const auto& r : env.received()) EXPECT_EQ(r.id, id);  // every attempt carries the same webhook-id
  std::optional<patchbay::Delivery> d;
  env.run([&]() -> awaitable<void> { d = co_await dead.next(); });
  ASSERT_TRUE(d && !d->is_gap());
  const auto& m = d->message();
  EXPECT_EQ(m.payload.view(), "again");
  EXPECT_EQ(m.headers.get("Patchbay-Webhook-Attempts").value_or(""), "8");
  EXPECT_EQ(m.headers.get("Patchbay-Webhook-Error").value_or(""), "HTTP 500");
  EXPECT_EQ(m.headers.get("Patchbay-Webhook-Topic").value_or(""), "prices");
  EXPECT_EQ(m.headers.get("Patchbay-Webhook-Message-Id").value_or(""), id);
  EXPECT_EQ(m.headers.get("Patchbay-Webhook-Url").value_or(""), env.url());
  EXPECT_EQ(env.sender->stats().pending, 0u);
}

TEST(WebhookSender, JitterStaysWithinTenPercent) {
  for (double r : {0.0, 0.999}) {
    Env env;
    auto o = env.options();
    o.random = [r] { return r; };
    env.start(o);
    env.answer([](const Received&) { return Env::Script{500}; });
    env.publish("x");
    ASSERT_TRUE(eventually([&] { return env.clock->next_alarm().has_value(); }));
    const auto delay = *env.clock->next_alarm() - env.clock->now();
    const auto expected = std::chrono::duration<double>(5s) * (1.0 + 0.1 * (2 * r - 1));
    EXPECT_NEAR(std::chrono::duration<double>(delay).count(), expected.count(), 0.01) << "random " << r;
  }
}

TEST(WebhookSender, RetryAfterIsHonouredAndCapped) {
  struct Case {
    unsigned status;
    std::string retry_after;
    std::chrono::milliseconds expected;
  };
  const auto http_date = [](std::chrono::seconds ahead, patchbay::webhook::wall_clock::time_point now) {
    const auto t = std::chrono::system_clock::to_time_t(now + ahead);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(buf);
  };
  ManualClock probe;
  const std::vector<Case> cases = {
      {503, "2", 2000ms},                          // sooner than the 5 s step
      {429, "3600", 5500ms},                       // capped at the step's longest (5 s + 10 %)
      {429, http_date(3s, probe.now()), 3000ms},   // an HTTP-date
      {503, "soon", 5000ms},                       // unreadable: the schedule
      {500, "1", 5000ms},                          // only 429 and 503 honour it
  };
  for (const auto& c : cases) {
    Env env;
    env.start(env.options());
    env.answer([&c](const Received&) { return Env::Script{c.status, {{"Retry-After", c.retry_after}}}; });
    env.publish("x");
    ASSERT_TRUE(eventually([&] { return env.clock->next_alarm().has_value(); }));
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(*env.clock->next_alarm() - env.clock->now()),
              c.expected)
        << c.status << " Retry-After: " << c.retry_after;
  }
}

TEST(WebhookSender, GoneDisablesTheEndpoint) {
  Env env;
  env.start(env.options());
  env.answer([](const Received&) { return Env::Script{410}; });
  auto dead = env.hub->subscribe("webhooks.dead", patchbay::Position());
  env.publish("one");
  ASSERT_TRUE(eventually([&] { return env.sender->stats().dead_lettered == 1; }));
  auto eps = env.sender->endpoints();
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_TRUE(eps[0].disabled);
  std::optional<patchbay::Delivery> d;
  env.run([&]() -> awaitable<void> { d = co_await dead.next(); });
  ASSERT_TRUE(d && !d->is_gap());
  EXPECT_NE(std::string(d->message().headers.get("Patchbay-Webhook-Error").value_or("")).find("disabled"),
            std::string::npos);
  // Later messages are not sent to it.
  env.publish("two");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(env.count(), 1u);
  EXPECT_EQ(env.sender->stats().pending, 0u);
}

TEST(WebhookSender, RedirectIsAFailureAndNotFollowed) {
  Env env;
  env.start(env.options());
  const auto elsewhere = env.receiver->url() + "/elsewhere";
  env.answer([elsewhere](const Received&) { return Env::Script{307, {{"Location", elsewhere}}}; });
  env.publish("x");
  ASSERT_TRUE(eventually([&] { return env.sender->stats().failed_attempts == 1; }));
  ASSERT_TRUE(eventually([&] { return env.clock->next_alarm().has_value(); }));
  EXPECT_EQ(env.elsewhere.load(), 0);
  EXPECT_EQ(env.sender->stats().delivered, 0u);
  EXPECT_EQ(env.sender->stats().pending, 1u);
}

TEST(WebhookSender, AReceiverThatNeverAnswersTimesOutAndIsRetried) {
  Env env;
  auto o = env.options();
  o.timeout = 300ms;
  env.start(o);
  std::atomic<int> calls{0};
  env.answer([&calls](const Received&) {
    return ++calls == 1 ? Env::Script{200, {}, 1000ms} : Env::Script{200};
  });
  const auto id = env.publish("slow");
  ASSERT_TRUE(eventually([&] { return env.sender->stats().failed_attempts == 1; }));
  // Retried at the next step (again, should a busy machine make a retry time out too).
  ASSERT_TRUE(eventually([&] {
    if (env.sender->stats().delivered == 1) return true;
    if (auto at = env.clock->next_alarm()) env.clock->advance(*at - env.clock->now());
    return false;
  }));
  const auto r = env.received();
  ASSERT_GE(r.size(), 2u);
  for (const auto& x : r) EXPECT_EQ(x.id, id);
}

TEST(WebhookSender, OrderedEndpointHasOneInFlightInOrder) {
  Env env;
  auto o = env.options();
  o.endpoints[0].ordered = true;
  env.start(o);
  std::atomic<int> n{0};
  // Every third attempt fails once: the failing message holds back the ones after it.
  env.answer([&n](const Received&) { return ++n % 3 == 0 ? Env::Script{503, {{"Retry-After", "0"}}} : Env::Script{200}; });
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(env.publish("m" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return env.sender->stats().delivered == 30; }));
  EXPECT_EQ(env.max_active.load(), 1);
  std::vector<std::string> order;
  for (const auto& r : env.received())
    if (order.empty() || order.back() != r.id) order.push_back(r.id);
  EXPECT_EQ(order, ids);
}

TEST(WebhookSender, UnorderedEndpointRespectsMaxConcurrency) {
  Env env;
  auto o = env.options();
  o.endpoints[0].max_concurrency = 3;
  env.start(o);
  env.answer([](const Received&) { return Env::Script{200, {}, 20ms}; });
  for (int i = 0; i < 40; ++i) env.publish("m" + std::to_string(i));
  ASSERT_TRUE(eventually([&] { return env.sender->stats().delivered == 40; }));
  EXPECT_LE(env.max_active.load(), 3);
  EXPECT_GE(env.max_active.load(), 2);  // they did overlap
}

TEST(WebhookSender, LoopbackIsRefusedWithoutAnAllowlistAndNothingConnects) {
  Env env;
  auto o = env.options();
  o.allow.clear();
  env.start(o);
  env.publish("x");
  ASSERT_TRUE(eventually([&] { return env.sender->stats().failed_attempts == 1; }));
  EXPECT_EQ(env.receiver->stats().connections_accepted, 0u);
  EXPECT_EQ(env.count(), 0u);
}

TEST(WebhookSender, RestartDeliversWhatTheOutboxHolds) {
  TempDir dir;
  std::string id;
  std::uint16_t port = 0;
  {
    Env env;
    port = env.receiver->port();
    auto o = env.options();
    o.outbox = dir.file("outbox.db");
    env.start(o);
    env.answer([](const Received&) { return Env::Script{500}; });
    id = env.publish("kept");
    ASSERT_TRUE(eventually([&] { return env.sender->stats().failed_attempts == 1; }));
  }
  Env env(port);  // the static endpoint's URL (and so its id) is the same
  auto o = env.options();
  o.outbox = dir.file("outbox.db");
  o.clock = std::make_shared<ManualClock>(std::chrono::system_clock::now() + 24h);  // the retry is due
  env.clock = std::static_pointer_cast<ManualClock>(o.clock);
  env.start(o);
  ASSERT_TRUE(eventually([&] { return env.sender->stats().delivered == 1; }));
  EXPECT_EQ(env.sender->stats().recovered, 1u);
  EXPECT_EQ(env.received().at(0).id, id);
}

// --- the subscriptions API --------------------------------------------------------------------

struct Api {
  Env& env;
  patchbay::http::Client client;
  std::string base;
  std::string token;
  explicit Api(Env& e) : env(e), client(e.ex()) {}

  patchbay::http::Response call(bhttp::verb method, const std::string& path, const std::string& body = "") {
    patchbay::http::Response out;
    env.run([&]() -> awaitable<void> {
      patchbay::http::Request req{method, "/", 11};
      if (!token.empty()) req.set(bhttp::field::authorization, "Bearer " + token);
      if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
      req.body() = body;
      out = co_await client.request(base + path, std::move(req));
    });
    return out;
  }
};

TEST(WebhookApi, SubscribeListRotateDelete) {
  Env env;
  auto o = env.options();
  o.endpoints.clear();
  o.api_token = "t0ken";
  env.start(o);
  env.sender->mount(*env.receiver);
  Api api(env);
  api.base = env.receiver->url();

  // Without the token: 401.
  EXPECT_EQ(api.call(bhttp::verb::get, "/webhooks/subscriptions").result_int(), 401);
  api.token = "t0ken";

  // 400 naming the reason.
  struct Bad {
    std::string body, reason;
  };
  const std::vector<Bad> bad = {
      {"{not json", "bad JSON"},
      {"[1,2]", "bad JSON"},
      {R"({"topics":["prices"]})", "url"},
      {R"({"url":"not a url","topics":["prices"]})", "URL"},
      {R"({"url":"ftp://127.0.0.1/x","topics":["prices"]})", "scheme"},
      {R"({"url":"http://10.1.2.3/hook","topics":["prices"]})", "10.1.2.3"},
      {R"({"url":"http://[::ffff:169.254.169.254]/","topics":["prices"]})", "169.254.169.254"},
      {R"({"url":")" + env.url() + R"(","topics":[]})", "topics"},
      {R"({"url":")" + env.url() + R"(","topics":["prices"],"secret":"whsec_!!!"})", "secret"},
      {R"({"url":")" + env.url() + R"(","topics":["prices"],"ordered":"yes"})", "ordered"},
      {R"({"url":")" + env.url() + R"(","topics":["prices"],"max_concurrency":0})", "max_concurrency"},
      {R"({"url":")" + env.url() + R"(","topics":["prices"],"colour":"blue"})", "colour"},
  };
  for (const auto& b : bad) {
    auto res = api.call(bhttp::verb::post, "/webhooks/subscriptions", b.body);
    EXPECT_EQ(res.result_int(), 400) << b.body;
    EXPECT_NE(res.body().find(b.reason), std::string::npos) << b.body << " → " << res.body();
  }

  auto created = api.call(bhttp::verb::post, "/webhooks/subscriptions",
                          R"({"url":")" + env.url() + R"(","topics":["prices"],"secret":")" + kSecret.to_string() + R"("})");
  ASSERT_EQ(created.result_int(), 201) << created.body();
  auto json = boost::json::parse(created.body()).as_object();
  const std::string id(json["id"].as_string());
  EXPECT_EQ(json["secret"].as_string(), kSecret.to_string());
  EXPECT_EQ(json["disabled"].as_bool(), false);

  auto list = api.call(bhttp::verb::get, "/webhooks/subscriptions");
  ASSERT_EQ(list.result_int(), 200);
  EXPECT_NE(list.body().find(id), std::string::npos);
  EXPECT_EQ(list.body().find("whsec_"), std::string::npos) << "the list shows no secret";
  EXPECT_EQ(api.call(bhttp::verb::get, "/webhooks/subscriptions/" + id).result_int(), 200);
  EXPECT_EQ(api.call(bhttp::verb::get, "/webhooks/subscriptions/nope").result_int(), 404);

  // Rotation: both the new and the old secret sign.
  auto rotated = api.call(bhttp::verb::post, "/webhooks/subscriptions/" + id + "/rotate");
  ASSERT_EQ(rotated.result_int(), 200) << rotated.body();
  const auto fresh = *wh::Secret::parse(std::string(boost::json::parse(rotated.body()).as_object()["secret"].as_string()));
  env.publish("after rotation");
  ASSERT_TRUE(eventually([&] { return env.count() == 1; }));
  const auto r = env.received()[0];
  EXPECT_EQ(r.signatures, 2u) << r.signature;
  EXPECT_TRUE(r.verified) << "the old secret still verifies";
  const wh::Secret only_new[] = {fresh};
  EXPECT_FALSE(wh::verify(only_new, r.id, r.timestamp, r.signature, r.body, env.clock->now(), 300s).has_value());
  // After the overlap only the new one signs.
  env.clock->advance(25h);
  env.publish("later");
  ASSERT_TRUE(eventually([&] { return env.count() == 2; }));
  EXPECT_EQ(env.received()[1].signatures, 1u);

  EXPECT_EQ(api.call(bhttp::verb::delete_, "/webhooks/subscriptions/" + id).result_int(), 204);
  EXPECT_EQ(api.call(bhttp::verb::get, "/webhooks/subscriptions/" + id).result_int(), 404);
  EXPECT_EQ(api.call(bhttp::verb::delete_, "/webhooks/subscriptions/" + id).result_int(), 404);
}

TEST(WebhookApi, DynamicSubscriptionsSurviveARestart) {
  TempDir dir;
  std::string id;
  {
    Env env;
    auto o = env.options();
    o.endpoints.clear();
    o.outbox = dir.file("outbox.db");
    env.start(o);
    patchbay::webhook::EndpointSpec spec;
    spec.url = env.url();
    spec.topics = {"prices"};
    env.run([&]() -> awaitable<void> {
      auto c = co_await env.sender->subscribe(spec);
      EXPECT_TRUE(c.ok()) << c.status();
      if (c.ok()) id = c->info.id;
    });
  }
  Env env;
  auto o = env.options();
  o.endpoints.clear();
  o.outbox = dir.file("outbox.db");
  env.start(o);
  auto e = env.sender->endpoint(id);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->topics, std::vector<std::string>{"prices"});
}

TEST(WebhookApi, EveryRouteIsInOpenApi) {
  Env env;
  auto o = env.options();
  env.start(o);
  env.sender->mount(*env.receiver);
  std::ifstream f(PATCHBAY_SOURCE_DIR "/docs/openapi.yaml");
  const std::string spec((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::size_t webhook_routes = 0;
  for (const auto& route : env.receiver->routes()) {
    const auto path = route.substr(route.find(' ') + 1);
    if (path.rfind("/webhooks", 0) != 0) continue;
    ++webhook_routes;
    EXPECT_NE(spec.find("\n  " + path + ":\n"), std::string::npos) << "docs/openapi.yaml does not describe " << route;
  }
  EXPECT_EQ(webhook_routes, 5u);
}

// --- the hub's publish observer ----------------------------------------------------------------

TEST(WebhookHubObserver, SeesEveryPublishWithItsPositionAndCanRefuseIt) {
  asio::io_context io;
  auto hub = Hub::create(io.get_executor());
  std::vector<std::string> seen;
  bool refuse = false;
  hub->set_publish_observer([&](const patchbay::http::HubEntry& e) {
    if (refuse) throw std::runtime_error("disk full");
    seen.push_back(e.message.topic + "@" + e.position + "=" + e.message.payload.str());
  });
  const auto p1 = hub->publish("t", Message(std::string_view("a")));
  EXPECT_EQ(seen, std::vector<std::string>{"t@" + p1 + "=a"});
  refuse = true;
  EXPECT_THROW(hub->publish("t", Message(std::string_view("b"))), std::runtime_error);
  refuse = false;
  const auto p3 = hub->publish("t", Message(std::string_view("c")));
  // The refused message took no position and is not in the ring.
  EXPECT_EQ(std::stoull(p3.substr(p3.find(':') + 1)), std::stoull(p1.substr(p1.find(':') + 1)) + 1);
  std::string next;
  auto batch = hub->peek("t", patchbay::Position::earliest(), patchbay::http::UnknownPosition::from_earliest, false, 10, next);
  ASSERT_TRUE(batch.has_value());
  ASSERT_EQ(batch->entries.size(), 2u);
  EXPECT_EQ(batch->entries[1]->message.payload.view(), "c");
  hub->set_publish_observer(nullptr);
  hub->publish("t", Message(std::string_view("d")));
  EXPECT_EQ(seen.size(), 2u);
  hub->stop();
}

// --- config (`webhooks:` of the http transport, loaded as a module) ----------------------------

absl::Status load(const std::string& webhooks) {
  const std::string text = std::string("plugins: [") + PATCHBAY_HTTP_MODULE + "]\n" + R"(
default_transport: hub
transports:
  hub:
    type: http
    listen: 127.0.0.1:0
    webhooks:
)" + webhooks;
  auto inst = patchbay::conformance::from_config(text);
  if (inst.ok() && inst->shutdown) inst->shutdown();
  return inst.status();
}

TEST(WebhookConfig, ErrorsNameFileAndLine) {
  struct Case {
    std::string yaml, expect;
  };
  const std::vector<Case> cases = {
      {"      schedule: [0s, 5s, soon]\n", ":9:"},
      {"      schedule: [0s, 5s, soon]\n", "soon"},
      {"      allow: [not-a-cidr]\n", "allow"},
      {"      timeout: 0s\n", "timeout"},
      {"      colour: blue\n", "colour"},
      {"      endpoints:\n        - { url: ftp://x/y, topics: [a], secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }\n", ":10:"},
      {"      endpoints:\n        - { url: http://x/y, topics: [a] }\n", "secret"},
      {"      endpoints:\n        - { url: http://x/y, topics: [a], secret: nope! }\n", "secret"},
  };
  for (const auto& c : cases) {
    auto s = load(c.yaml);
    EXPECT_FALSE(s.ok()) << c.yaml;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << c.yaml << " → " << s;
  }
  EXPECT_TRUE(load("      allow: [127.0.0.0/8]\n      schedule: [0s, 1s]\n").ok());
}

TEST(WebhookConfig, TheHttpTransportDeliversAndServesTheApi) {
  Env env;  // its receiver only
  TempDir dir;
  std::uint16_t port = 0;
  {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();  // free a moment ago; the kernel hands out ports in sequence
  }
  const std::string text = std::string("plugins: [") + PATCHBAY_HTTP_MODULE + "]\n" + R"(
default_transport: hub
transports:
  hub:
    type: http
    listen: 127.0.0.1:)" + std::to_string(port) + R"(
    topics: [prices]
    webhooks:
      outbox: )" + dir.file("outbox.db") + R"(
      allow: [127.0.0.0/8]
      api_token: s3cret
      endpoints:
        - { url: ")" + env.url() + R"(", topics: [prices], secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }
)";
  auto inst = patchbay::conformance::from_config(text);
  ASSERT_TRUE(inst.ok()) << inst.status();
  Message m{patchbay::Bytes(std::string("via the runtime"))};
  m.topic = "prices";
  auto done = asio::co_spawn(inst->ex, inst->transport->publish(std::move(m)), asio::use_future);
  ASSERT_EQ(done.wait_for(30s), std::future_status::ready);
  done.get();
  ASSERT_TRUE(eventually([&] { return env.count() == 1; }));
  const auto r = env.received()[0];
  EXPECT_EQ(r.body, "via the runtime");
  EXPECT_EQ(r.topic, "prices");
  EXPECT_EQ(r.signatures, 1u);
  const wh::Secret secrets[] = {kSecret};
  EXPECT_FALSE(wh::verify(secrets, r.id, r.timestamp, r.signature, r.body, std::chrono::system_clock::now(), 300s));
  // The API on the hub's listener, behind the token.
  Api api(env);
  api.base = "http://127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(api.call(bhttp::verb::get, "/webhooks/subscriptions").result_int(), 401);
  api.token = "s3cret";
  auto list = api.call(bhttp::verb::get, "/webhooks/subscriptions");
  EXPECT_EQ(list.result_int(), 200);
  EXPECT_NE(list.body().find("\"static\":true"), std::string::npos) << list.body();
  if (inst->shutdown) inst->shutdown();
}

TEST(WebhookConfig, CorruptOutboxFailsTheStartNamingTheFile) {
  TempDir dir;
  const auto path = dir.file("outbox.db");
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 100; ++i) f << "garbage garbage garbage garbage\n";
  }
  auto s = load("      outbox: " + path + "\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_NE(s.message().find("corrupt"), std::string::npos) << s;
}

}  // namespace
