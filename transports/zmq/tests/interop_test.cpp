// Interop with a client nobody here wrote: pyzmq (Debian's python3-zmq, run with
// /usr/bin/python3) publishes and patchbay consumes, and the reverse; the same for PUSH/PULL,
// and a pyzmq REQ client against patchbay's serve(). The transport is the module loaded
// through `plugins:`; the Python side knows only the documented wire format.
#include <patchbay/transports/zmq/zmq.hpp>

#include "test_support.hpp"

#include <patchbay/conformance/suite.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <cstdio>
#include <future>

namespace {

using namespace std::chrono_literals;
namespace zt = patchbay::zeromq::testing;
using patchbay::awaitable;
using patchbay::Message;

struct Outcome {
  int status = -1;
  std::string output;
};

bool pyzmq_available() {
  return std::system("/usr/bin/python3 -c 'import zmq' >/dev/null 2>&1") == 0;
}

/// Runs the Python peer in the background; its output and exit status arrive in the future.
std::future<Outcome> python(const std::string& mode, const std::string& endpoint, const std::string& topic, int n) {
  const std::string cmd = "/usr/bin/python3 " PATCHBAY_ZMQ_INTEROP_PEER " " + mode + " '" + endpoint + "' '" + topic +
                          "' " + std::to_string(n) + " 2>&1";
  return std::async(std::launch::async, [cmd] {
    Outcome o;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return o;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) o.output += buf;
    const int st = ::pclose(p);
    o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return o;
  });
}

patchbay::conformance::Instance make(const std::string& transport_yaml) {
  auto in = patchbay::conformance::from_config("plugins: [ " PATCHBAY_ZMQ_MODULE " ]\n"
                                               "transports:\n  bus: " + transport_yaml +
                                               "\ndefault_transport: bus\n");
  if (!in.ok()) throw std::runtime_error(std::string(in.status().message()));
  return std::move(*in);
}

template <typename F>
auto run(const patchbay::conformance::Instance& in, F f) {
  auto fut = patchbay::asio::co_spawn(in.ex, std::move(f), patchbay::asio::use_future);
  if (fut.wait_for(90s) != std::future_status::ready) throw std::runtime_error("coroutine did not finish within 90 s");
  return fut.get();
}

/// Receives `n` deliveries and checks what pyzmq sent.
awaitable<std::string> expect_from_python(patchbay::Stream<patchbay::Delivery>& s, int n) {
  for (int i = 0; i < n; ++i) {
    auto next = co_await patchbay::conformance::next_for(s, 60s);
    if (next.what != patchbay::conformance::Next::kind::item) co_return "message " + std::to_string(i) + " never came";
    const Message& m = next.delivery->message();
    if (m.payload.view() != "py:" + std::to_string(i)) co_return "payload '" + m.payload.str() + "' at " + std::to_string(i);
    if (m.id != "py-" + std::to_string(i)) co_return "id '" + m.id + "'";
    if (m.headers.get("x-from") != "pyzmq") co_return "header x-from missing";
    if (m.headers.get("x-binary") != std::string_view("\0\xff", 2)) co_return "binary header value changed";
  }
  co_return "ok";
}

/// Publishes "pb:i" with a header until `done` is ready.
awaitable<void> publish_until(std::shared_ptr<patchbay::Transport> t, std::string topic, std::future<Outcome>& done) {
  patchbay::asio::steady_timer timer(co_await patchbay::asio::this_coro::executor);
  for (long i = 0; done.wait_for(0s) != std::future_status::ready; ++i) {
    Message m{patchbay::Bytes("pb:" + std::to_string(i))};
    m.topic = topic;
    m.headers.add("x-from", "patchbay");
    m.stamp();
    co_await t->publish(std::move(m));
    timer.expires_after(1ms);
    co_await timer.async_wait(patchbay::asio::use_awaitable_t<patchbay::executor>{});
  }
}

class ZmqInterop : public testing::Test {
 protected:
  void SetUp() override {
    if (!pyzmq_available())
      GTEST_SKIP() << "/usr/bin/python3 cannot import zmq: install python3-zmq (scripts/install-deps)";
  }
};

TEST_F(ZmqInterop, PyzmqPublishesPatchbaySubscribes) {
  const std::string endpoint = zt::tcp_endpoint();
  auto py = python("pub", endpoint, "interop.py", 100);
  // pyzmq sends no welcomes: do not wait long for them; pyzmq itself waits for our subscription.
  auto in = make("{ type: zmq, subscribe: { connect: [ '" + endpoint + "' ] }, join_timeout: 100ms }");
  auto result = run(in, [&]() -> awaitable<std::string> {
    auto sub = co_await in.transport->subscribe("interop.py");
    co_return co_await expect_from_python(sub, 100);
  });
  EXPECT_EQ(result, "ok");
  auto out = py.get();
  EXPECT_EQ(out.status, 0) << out.output;
  in.shutdown();
}

TEST_F(ZmqInterop, PatchbayPublishesPyzmqSubscribes) {
  const std::string endpoint = zt::tcp_endpoint();
  auto in = make("{ type: zmq, publish: { bind: [ '" + endpoint + "' ] } }");
  auto py = python("sub", endpoint, "interop.pb", 200);
  run(in, [&]() -> awaitable<void> { co_await publish_until(in.transport, "interop.pb", py); });
  auto out = py.get();
  EXPECT_EQ(out.status, 0) << out.output;
  EXPECT_NE(out.output.find("ok received"), std::string::npos) << out.output;
  in.shutdown();
}

TEST_F(ZmqInterop, PyzmqPushesToAPatchbayGroup) {
  const std::string endpoint = zt::tcp_endpoint();
  auto py = python("push", endpoint, "interop.jobs", 100);
  auto in = make("{ type: zmq, pull: { connect: [ '" + endpoint + "' ] } }");
  auto result = run(in, [&]() -> awaitable<std::string> {
    auto sub = co_await in.transport->subscribe("interop.jobs", patchbay::SubscribeOptions().group("workers"));
    co_return co_await expect_from_python(sub, 100);
  });
  EXPECT_EQ(result, "ok");
  auto out = py.get();
  EXPECT_EQ(out.status, 0) << out.output;
  in.shutdown();
}

TEST_F(ZmqInterop, PatchbayPushesToPyzmq) {
  const std::string endpoint = zt::tcp_endpoint();
  auto py = python("pull", endpoint, "interop.work", 100);
  auto in = make("{ type: zmq, push: { connect: [ '" + endpoint + "' ] }, send_timeout: 60s }");
  run(in, [&]() -> awaitable<void> {
    for (int i = 0; i < 100; ++i) {
      Message m{patchbay::Bytes("pb:" + std::to_string(i))};
      m.topic = "interop.work";
      m.headers.add("x-from", "patchbay");
      m.stamp();
      co_await in.transport->publish(std::move(m));
    }
  });
  auto out = py.get();
  EXPECT_EQ(out.status, 0) << out.output;
  EXPECT_NE(out.output.find("ok received 0..99"), std::string::npos) << out.output;
  in.shutdown();
}

TEST_F(ZmqInterop, PyzmqRequestsPatchbayServes) {
  const std::string endpoint = zt::tcp_endpoint();
  auto in = make("{ type: zmq, serve: { bind: [ '" + endpoint + "' ] } }");
  patchbay::asio::cancellation_signal stop;
  auto transport = in.transport;
  auto served = patchbay::asio::co_spawn(
      in.ex,
      transport->serve("interop.echo",
                       [](Message req) -> awaitable<Message> {
                         Message reply{patchbay::Bytes("echo:" + req.payload.str())};
                         for (const auto& [k, v] : req.headers) reply.headers.add(k, v);
                         co_return reply;
                       }),
      patchbay::asio::bind_cancellation_slot(stop.slot(), patchbay::asio::use_future));
  auto out = python("req", endpoint, "interop.echo", 20).get();
  EXPECT_EQ(out.status, 0) << out.output;
  patchbay::asio::post(in.ex, [&] { stop.emit(patchbay::asio::cancellation_type::all); });
  EXPECT_EQ(served.wait_for(30s), std::future_status::ready);
  in.shutdown();
}

}  // namespace
