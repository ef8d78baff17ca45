// The `access-log` middleware: loaded as a module through config `plugins:` and linked in;
// every operation leaves one parsable JSON line, and concurrent writers never interleave.
#include <patchbay/plugins/access_log/access_log.hpp>

#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <plugin_test.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <map>

namespace {

using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::Message;
namespace json = boost::json;
namespace asio = patchbay::asio;
namespace t = patchbay::plugins::testing;

std::string bindings(const std::string& path) {
  return "transports:\n"
         "  bus: { type: inproc }\n"
         "bindings:\n"
         "  orders:\n"
         "    transport: bus\n"
         "    middleware:\n"
         "      - type: access-log\n"
         "        path: " + path + "\n"
         "        headers: [x-trace]\n"
         "  quotes:\n"
         "    transport: bus\n"
         "    middleware:\n"
         "      - { type: access-log, path: " + path + " }\n";
}

std::vector<json::object> parse_all(const std::string& path) {
  std::vector<json::object> out;
  for (const auto& line : t::read_lines(path)) {
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    EXPECT_FALSE(ec) << "not one JSON object per line: " << line;
    if (!ec && v.is_object()) out.push_back(v.as_object());
  }
  return out;
}

std::string str(const json::object& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? std::string(it->value().as_string()) : std::string();
}

TEST(AccessLog, LogsEveryOperationWhenLoadedAsAModule) {
  const auto path = t::temp_path("access-log");
  auto rt = t::start_runtime(std::string("plugins: [ ") + PATCHBAY_ACCESS_LOG_MODULE + " ]\n" + bindings(path));
  ASSERT_TRUE(rt);
  t::run(*rt, [&]() -> awaitable<void> {
    auto orders = rt->topic("orders");
    auto sub = co_await orders.subscribe();
    Message m("order 1");
    m.headers.add("x-trace", "abc");
    co_await orders.publish(std::move(m));
    auto d = co_await sub.next();
    EXPECT_TRUE(d);
    if (d) d->ack();
    co_await orders.publish(Message("order 2"));
    auto d2 = co_await sub.next();
    if (d2) d2->nack(false);

    auto quotes = rt->service("quotes");
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex,
                   quotes.serve([](Message req) -> awaitable<Message> {
                     if (req.payload.view() == "fail") throw std::runtime_error("no quote for that");
                     co_return Message("42.5");
                   }),
                   asio::detached);
    // The handler may not be registered yet: retry until it answers.
    Message reply;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int i = 0; i < 1000; ++i) {
      bool answered = false;
      try {
        reply = co_await quotes.request(Message("ACME"), 10s);
        answered = true;
      } catch (const boost::system::system_error& e) {
        if (e.code() != patchbay::errc::no_responders) throw;
      }
      if (answered) break;
      timer.expires_after(5ms);
      co_await timer.async_wait(asio::use_awaitable_t<patchbay::executor>{});
    }
    EXPECT_EQ(reply.payload.view(), "42.5");
    bool failed = false;
    try {
      co_await quotes.request(Message("fail"), 10s);
    } catch (const boost::system::system_error&) {
      failed = true;
    }
    EXPECT_TRUE(failed);
  });
  t::stop(rt);

  std::map<std::string, int> ops;
  bool saw_header = false, saw_error = false, saw_serve_error = false;
  for (const auto& o : parse_all(path)) {
    EXPECT_FALSE(str(o, "time").empty());
    const auto op = str(o, "op");
    ++ops[op];
    if (op == "publish") {
      EXPECT_EQ(str(o, "binding"), "orders");
      EXPECT_EQ(str(o, "topic"), "orders");
      EXPECT_FALSE(str(o, "id").empty());
      EXPECT_TRUE(o.contains("bytes"));
      EXPECT_TRUE(o.contains("duration_ms"));
      EXPECT_EQ(str(o, "outcome"), "ok");
      if (str(o, "x-trace") == "abc") saw_header = true;
    }
    if (op == "request" && str(o, "outcome") == "error") {
      saw_error = str(o, "error") == "remote_error" || str(o, "error") == "no_responders";
    }
    if (op == "serve" && str(o, "outcome") == "error") saw_serve_error = str(o, "error_text").find("no quote") != std::string::npos;
  }
  EXPECT_EQ(ops["publish"], 2);
  EXPECT_EQ(ops["receive"], 2);
  EXPECT_EQ(ops["ack"], 1);
  EXPECT_EQ(ops["nack_drop"], 1);
  EXPECT_GE(ops["request"], 2);
  EXPECT_EQ(ops["serve"], 2);
  EXPECT_TRUE(saw_header);
  EXPECT_TRUE(saw_error);
  EXPECT_TRUE(saw_serve_error);
  std::remove(path.c_str());
}

TEST(AccessLog, ConcurrentWritersNeverInterleaveLines) {
  const auto path = t::temp_path("access-log-concurrent");
  auto rt = t::start_runtime(bindings(path), [](patchbay::Registry& r) {
    ASSERT_TRUE(patchbay::plugins::access_log::register_middleware(r).ok());
  });
  ASSERT_TRUE(rt);
  constexpr int writers = 4, each = 250;
  std::vector<std::future<void>> done;
  for (int w = 0; w < writers; ++w) {
    done.push_back(asio::co_spawn(
        rt->get_executor(),
        [&rt, w]() -> awaitable<void> {
          auto topic = rt->topic(w % 2 ? "orders" : "quotes");
          // A long payload makes each line long, so that torn writes would show.
          for (int i = 0; i < each; ++i) co_await topic.publish(Message(std::string(2000, static_cast<char>('a' + w))));
        },
        asio::use_future));
  }
  for (auto& f : done) {
    ASSERT_EQ(f.wait_for(120s), std::future_status::ready);
    f.get();
  }
  t::stop(rt);
  auto all = parse_all(path);
  EXPECT_EQ(all.size(), static_cast<std::size_t>(writers * each));
  std::remove(path.c_str());
}

TEST(AccessLog, AnUnwritablePathIsReportedWithItsPlace) {
  auto error = t::create_error(bindings("/nonexistent-dir/x/access.log"), [](patchbay::Registry& r) {
    ASSERT_TRUE(patchbay::plugins::access_log::register_middleware(r).ok());
  });
  EXPECT_NE(error.find("<string>:"), std::string::npos) << error;
  EXPECT_NE(error.find("cannot open '/nonexistent-dir/x/access.log'"), std::string::npos) << error;
}

}  // namespace
