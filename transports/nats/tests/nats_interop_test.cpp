// Interop with a NATS client nobody here wrote: nats_raw_client.py speaks the NATS text protocol
// over a plain socket from /usr/bin/python3 (Debian ships no Python NATS package). Both
// directions: patchbay publishes and the script receives (payload and headers); the script
// publishes and patchbay receives; the script requests and a patchbay service answers.
#include "nats_test_support.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstdio>
#include <memory>

namespace {

using namespace nats_test;

/// The script, running; its stdout read line by line (each read bounded by its own 30 s timeout).
class Script {
 public:
  explicit Script(const std::string& args) {
    const std::string cmd = "/usr/bin/python3 " PATCHBAY_NATS_RAW_CLIENT " " + args + " 2>&1";
    pipe_ = ::popen(cmd.c_str(), "r");
  }
  ~Script() {
    if (pipe_) ::pclose(pipe_);
  }
  bool running() const { return pipe_ != nullptr; }
  std::string line() {
    char buf[1 << 16];
    if (!pipe_ || !std::fgets(buf, sizeof buf, pipe_)) return "<eof>";
    std::string out(buf);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  }
  int wait() {
    const int status = ::pclose(pipe_);
    pipe_ = nullptr;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  FILE* pipe_ = nullptr;
};

std::string port_of(const std::string& url) { return url.substr(url.rfind(':') + 1); }

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

/// The values of header `name` in a message the script printed.
std::vector<std::string> header_values(const boost::json::value& m, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& h : m.at("headers").as_array())
    if (h.as_array().at(0).as_string() == name) out.emplace_back(h.as_array().at(1).as_string());
  return out;
}

TEST(NatsInterop, ARawProtocolClientReceivesWhatPatchbayPublishes) {
  NATS_TEST_NEEDS_BROKER(url);
  auto inst = make(url);
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string topic = unique("interop.out");
  Script script("sub " + port_of(url) + " " + topic + " 2");
  ASSERT_TRUE(script.running());
  ASSERT_EQ(script.line(), "ready");
  std::string id;
  const std::string binary("\x00\x01\xff\r\n", 5);
  run(*inst, [&]() -> awaitable<void> {
    Message m = msg(topic, "hello from patchbay");
    m.headers.add("content-type", "text/plain");
    m.headers.add("x-trace", "abc");
    id = m.id;
    co_await inst->transport->publish(std::move(m));
    co_await inst->transport->publish(msg(topic, binary));
  });
  const auto first = boost::json::parse(script.line());
  EXPECT_EQ(first.at("subject").as_string(), topic);
  EXPECT_EQ(first.at("payload_hex").as_string(), hex("hello from patchbay"));
  EXPECT_EQ(header_values(first, "content-type"), std::vector<std::string>{"text/plain"});
  EXPECT_EQ(header_values(first, "x-trace"), std::vector<std::string>{"abc"});
  EXPECT_EQ(header_values(first, "patchbay-id"), std::vector<std::string>{id}) << "the id travels as a header";
  const auto second = boost::json::parse(script.line());
  EXPECT_EQ(second.at("payload_hex").as_string(), hex(binary));
  EXPECT_EQ(script.wait(), 0);
  inst->shutdown();
}

TEST(NatsInterop, PatchbayReceivesWhatARawProtocolClientPublishes) {
  NATS_TEST_NEEDS_BROKER(url);
  auto inst = make(url);
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string topic = unique("interop.in");
  run(*inst, [&]() -> awaitable<void> {
    auto sub = co_await inst->transport->subscribe(topic, {});
    {
      Script plain("pub " + port_of(url) + " " + topic + " plain");
      EXPECT_EQ(plain.line(), "published");
      EXPECT_EQ(plain.wait(), 0);
    }
    {
      Script with_headers("pub " + port_of(url) + " " + topic + " with-headers x-a=1 x-b=two x-a=3");
      EXPECT_EQ(with_headers.line(), "published");
      EXPECT_EQ(with_headers.wait(), 0);
    }
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d && !d->is_gap());
    if (!d || d->is_gap()) co_return;
    EXPECT_EQ(d->message().payload.str(), "plain");
    EXPECT_EQ(d->message().topic, topic);
    EXPECT_EQ(d->message().id.size(), 32u) << "a message from another client gets a fresh id";
    auto e = co_await next_within(sub);
    EXPECT_TRUE(e && !e->is_gap());
    if (!e || e->is_gap()) co_return;
    EXPECT_EQ(e->message().payload.str(), "with-headers");
    const auto& h = e->message().headers;
    EXPECT_EQ(h.get_all("x-a"), (std::vector<std::string_view>{"1", "3"}));
    EXPECT_EQ(h.get("x-b"), "two");
  });
  inst->shutdown();
}

TEST(NatsInterop, ARawProtocolClientCallsAPatchbayService) {
  NATS_TEST_NEEDS_BROKER(url);
  auto inst = make(url);
  ASSERT_TRUE(inst.ok()) << inst.status();
  const std::string service = unique("interop.svc");
  asio::cancellation_signal stop_serving;
  auto serve = [&]() -> awaitable<void> {
    co_await inst->transport->serve(service, [](Message m) -> awaitable<Message> {
      Message reply(std::string_view("echo:" + m.payload.str()));
      if (auto from = m.headers.get("x-from")) reply.headers.add("x-to", std::string(*from));
      co_return reply;
    });
  };
  asio::co_spawn(inst->fresh(), serve(), asio::bind_cancellation_slot(stop_serving.slot(), asio::detached));
  // serve() is established asynchronously: until then the server answers "no responders"
  // (an HMSG with status 503), so the script is retried until it gets an echo.
  std::string payload_hex;
  boost::json::value reply;
  for (int attempt = 0; attempt < 100 && payload_hex != hex("echo:ping"); ++attempt) {
    Script script("request " + port_of(url) + " " + service + " ping");
    const std::string line = script.line();
    script.wait();
    if (line.empty() || line[0] != '{') continue;
    reply = boost::json::parse(line);
    payload_hex = std::string(reply.at("payload_hex").as_string());
    if (payload_hex != hex("echo:ping")) std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(payload_hex, hex("echo:ping"));
  if (payload_hex == hex("echo:ping")) {
    EXPECT_EQ(header_values(reply, "x-to"), std::vector<std::string>{"python"});
  }
  asio::post(inst->ex, [&] { stop_serving.emit(asio::cancellation_type::all); });
  inst->shutdown();
}

}  // namespace
