// The `metrics` middleware: counts and latency histograms of two bindings on one shared
// listener, read with curl as Prometheus would (loaded as a module through config `plugins:`),
// and the text format's escaping rules (linked in).
#include <patchbay/plugins/metrics/metrics.hpp>

#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <plugin_test.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <sstream>

namespace {

using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::Message;
namespace asio = patchbay::asio;
namespace t = patchbay::plugins::testing;
namespace metrics = patchbay::plugins::metrics;

/// Runs `command` and returns what it printed.
std::string run_command(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ::pclose(p);
  return out;
}

/// Sample lines ("name{labels} value") of an exposition, by "name{labels}".
std::map<std::string, double> samples(const std::string& body) {
  std::map<std::string, double> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

TEST(Metrics, CountsAndHistogramsOnOneSharedEndpointReadWithCurl) {
  const auto port_file = t::temp_path("metrics-port");
  auto rt = t::start_runtime(std::string("plugins: [ ") + PATCHBAY_METRICS_MODULE + " ]\n" +
                             "transports:\n"
                             "  bus: { type: inproc }\n"
                             "bindings:\n"
                             "  orders:\n"
                             "    transport: bus\n"
                             "    middleware: [ { type: metrics, listen: \"127.0.0.1:0\", port_file: " + port_file + " } ]\n"
                             "  quotes:\n"
                             "    transport: bus\n"
                             "    middleware: [ { type: metrics, listen: \"127.0.0.1:0\" } ]\n");
  ASSERT_TRUE(rt);
  t::run(*rt, [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto orders = rt->topic("orders");
    auto sub = co_await orders.subscribe();
    for (int i = 0; i < 3; ++i) co_await orders.publish(Message("12345"));  // 5 bytes each
    for (int i = 0; i < 3; ++i) {
      auto d = co_await sub.next();
      if (!d) break;
      if (i == 2)
        d->nack(false);
      else
        d->ack();
    }
    auto quotes = rt->service("quotes");
    asio::co_spawn(ex,
                   quotes.serve([](Message m) -> awaitable<Message> {
                     if (m.payload.view() == "fail") throw std::runtime_error("no");
                     co_return Message("ok");
                   }),
                   asio::detached);
    asio::steady_timer timer(ex);
    for (int i = 0; i < 2000; ++i) {  // until the handler is registered
      bool answered = false;
      try {
        co_await quotes.request(Message("ACME"), 10s);
        answered = true;
      } catch (const boost::system::system_error& e) {
        if (e.code() != patchbay::errc::no_responders) throw;
      }
      if (answered) break;
      timer.expires_after(2ms);
      co_await timer.async_wait(asio::use_awaitable_t<patchbay::executor>{});
    }
    bool failed = false;
    try {
      co_await quotes.request(Message("fail"), 10s);
    } catch (const boost::system::system_error&) {
      failed = true;
    }
    EXPECT_TRUE(failed);
  });

  const auto lines = t::read_lines(port_file);
  ASSERT_EQ(lines.size(), 1u);
  const std::string url = "http://127.0.0.1:" + lines[0] + "/metrics";
  const std::string response = run_command("curl -s -S -i --max-time 60 " + url);
  const auto split = response.find("\r\n\r\n");
  ASSERT_NE(split, std::string::npos) << response;
  const std::string head = response.substr(0, split), body = response.substr(split + 4);
  EXPECT_NE(head.find("200"), std::string::npos) << head;
  EXPECT_NE(head.find("text/plain; version=0.0.4"), std::string::npos) << head;

  EXPECT_NE(body.find("# TYPE patchbay_messages_total counter\n"), std::string::npos);
  EXPECT_NE(body.find("# HELP patchbay_messages_total "), std::string::npos);
  EXPECT_NE(body.find("# TYPE patchbay_publish_duration_seconds histogram\n"), std::string::npos);
  auto s = samples(body);
  EXPECT_EQ(s["patchbay_messages_total{binding=\"orders\",operation=\"publish\"}"], 3);
  EXPECT_EQ(s["patchbay_bytes_total{binding=\"orders\",operation=\"publish\"}"], 15);
  EXPECT_EQ(s["patchbay_messages_total{binding=\"orders\",operation=\"receive\"}"], 3);
  EXPECT_EQ(s["patchbay_deliveries_settled_total{binding=\"orders\",outcome=\"ack\"}"], 2);
  EXPECT_EQ(s["patchbay_deliveries_settled_total{binding=\"orders\",outcome=\"nack_drop\"}"], 1);
  EXPECT_EQ(s["patchbay_publish_duration_seconds_count{binding=\"orders\"}"], 3);
  EXPECT_EQ(s["patchbay_publish_duration_seconds_bucket{binding=\"orders\",le=\"+Inf\"}"], 3);
  // The other binding is on the same page (one listener per address).
  EXPECT_EQ(s["patchbay_messages_total{binding=\"quotes\",operation=\"serve\"}"], 2);
  EXPECT_EQ(s["patchbay_errors_total{binding=\"quotes\",operation=\"serve\"}"], 1);
  EXPECT_EQ(s["patchbay_errors_total{binding=\"quotes\",operation=\"request\"}"], 1);
  EXPECT_EQ(s["patchbay_handler_duration_seconds_count{binding=\"quotes\"}"], 2);
  EXPECT_GE(s["patchbay_request_duration_seconds_count{binding=\"quotes\"}"], 2);
  // Buckets are cumulative.
  double previous = 0;
  for (double le : metrics::latency_buckets()) {
    std::ostringstream key;
    key << "patchbay_request_duration_seconds_bucket{binding=\"quotes\",le=\"" << le << "\"}";
    ASSERT_TRUE(s.count(key.str())) << key.str() << "\n" << body;
    EXPECT_GE(s[key.str()], previous);
    previous = s[key.str()];
  }
  EXPECT_LE(previous, s["patchbay_request_duration_seconds_bucket{binding=\"quotes\",le=\"+Inf\"}"]);

  const std::string missing = run_command("curl -s -o /dev/null -w '%{http_code}' --max-time 60 http://127.0.0.1:" + lines[0] + "/nothing");
  EXPECT_EQ(missing, "404");
  t::stop(rt);
  std::remove(port_file.c_str());
}

TEST(Metrics, LabelValuesAreEscaped) {
  EXPECT_EQ(metrics::escape_label_value("plain"), "plain");
  EXPECT_EQ(metrics::escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(Metrics, ABadListenAddressIsReportedWithItsPlace) {
  auto link = [](patchbay::Registry& r) { ASSERT_TRUE(metrics::register_middleware(r).ok()); };
  auto error = t::create_error(
      "transports: { bus: { type: inproc } }\nbindings:\n  b:\n    transport: bus\n    middleware:\n"
      "      - { type: metrics, listen: \"127.0.0.1:http\" }\n",
      link);
  EXPECT_NE(error.find("<string>:6:"), std::string::npos) << error;
  EXPECT_NE(error.find("not a port number"), std::string::npos) << error;
}

}  // namespace
