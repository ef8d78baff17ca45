// Interop with a client nobody here wrote: Python pika (Debian's python3-pika, which imports only
// under /usr/bin/python3). pika publishes and patchbay consumes, then patchbay publishes and pika
// consumes; payload bytes, message id, content type and header table must survive both ways.
#include "test_support.hpp"

#include <cstdio>
#include <fstream>

namespace patchbay::rabbitmq_test {
namespace {

using conformance::from_config;
using conformance::Next;
using conformance::next_for;

constexpr const char* kPython = "/usr/bin/python3";

bool have_pika() { return std::system((std::string(kPython) + " -c 'import pika' >/dev/null 2>&1").c_str()) == 0; }

std::string write_script(const std::string& name, const std::string& body) {
  const std::string path = std::string(PATCHBAY_TEST_TMPDIR) + "/" + name + "-" + std::to_string(::getpid()) + ".py";
  std::ofstream(path) << body;
  return path;
}

std::string url() { return shared_url(); }

int port() { return std::atoi(std::getenv("PATCHBAY_RABBITMQ_PORT")); }

TEST(RabbitmqInterop, PikaPublishesPatchbayConsumes) {
  PB_NEED_BROKER();
  if (!have_pika()) GTEST_SKIP() << "python3-pika is not installed (scripts/install-deps installs it)";
  const std::string exchange = unique("interop-in");
  auto made = from_config(config_for(url(), "    exchange: " + exchange + "\n"));
  ASSERT_TRUE(made.ok()) << made.status();
  Made m{std::move(*made)};
  auto t = m.inst.transport;
  auto sub = std::make_shared<Stream<Delivery>>(
      run(m.inst, [t]() -> awaitable<Stream<Delivery>> { co_return co_await t->subscribe("from.pika"); }));

  const std::string script = write_script("pika_publish", R"(
import sys, pika
port, exchange = int(sys.argv[1]), sys.argv[2]
conn = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', port))
ch = conn.channel()
ch.confirm_delivery()
props = pika.BasicProperties(message_id='pika-1', content_type='application/octet-stream',
                             headers={'x-lang': 'python', 'x-num': 42}, delivery_mode=2)
ch.basic_publish(exchange=exchange, routing_key='from.pika', body=bytes([0, 1, 2, 255]) + b'pika', properties=props,
                 mandatory=True)
conn.close()
)");
  ASSERT_EQ(std::system((std::string(kPython) + " " + script + " " + std::to_string(port()) + " " + exchange).c_str()),
            0);

  auto got = run(m.inst, [sub]() -> awaitable<std::optional<Message>> {
    Next n = co_await next_for(*sub, 30s);
    if (n.what != Next::kind::item) co_return std::nullopt;
    n.delivery->ack();
    co_return n.delivery->message();
  });
  ASSERT_TRUE(got.has_value()) << "nothing arrived from pika";
  EXPECT_EQ(got->payload.view(), std::string("\x00\x01\x02\xff"
                                             "pika",
                                             8));
  EXPECT_EQ(got->id, "pika-1");
  EXPECT_EQ(got->topic, "from.pika");
  EXPECT_EQ(got->headers.get("x-lang"), "python");
  EXPECT_EQ(got->headers.get("x-num"), "42");
  EXPECT_EQ(got->headers.get("content-type"), "application/octet-stream");
  sub->close();
}

TEST(RabbitmqInterop, PatchbayPublishesPikaConsumes) {
  PB_NEED_BROKER();
  if (!have_pika()) GTEST_SKIP() << "python3-pika is not installed (scripts/install-deps installs it)";
  const std::string exchange = unique("interop-out");
  auto made = from_config(config_for(url(), "    exchange: " + exchange + "\n"));
  ASSERT_TRUE(made.ok()) << made.status();  // start() declared the exchange
  Made m{std::move(*made)};
  auto t = m.inst.transport;

  const std::string script = write_script("pika_consume", R"(
import sys, json, pika
port, exchange = int(sys.argv[1]), sys.argv[2]
conn = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', port))
ch = conn.channel()
q = ch.queue_declare(queue='', exclusive=True).method.queue
ch.queue_bind(queue=q, exchange=exchange, routing_key='to.pika')
print('ready', flush=True)
for method, props, body in ch.consume(q, inactivity_timeout=30):
    if method is None:
        print('timeout', flush=True)
        break
    ch.basic_ack(method.delivery_tag)
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (props.headers or {}).items()}
    print(json.dumps({'id': props.message_id, 'content_type': props.content_type, 'headers': headers,
                      'body': body.hex(), 'persistent': props.delivery_mode == 2,
                      'routing_key': method.routing_key}, sort_keys=True), flush=True)
    break
conn.close()
)");
  FILE* py =
      ::popen((std::string(kPython) + " " + script + " " + std::to_string(port()) + " " + exchange).c_str(), "r");
  ASSERT_NE(py, nullptr);
  auto read_line = [&] {
    char buf[4096];
    std::string s = std::fgets(buf, sizeof buf, py) ? buf : "";
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  };
  ASSERT_EQ(read_line(), "ready");
  Message msg(
      std::string("\x00\xfe"
                  "patchbay",
                  10));
  msg.topic = "to.pika";
  msg.headers.add("content-type", "application/x-test");
  msg.headers.add("x-from", "patchbay");
  msg.headers.add("x-multi", "a");
  msg.headers.add("x-multi", "b");
  msg.stamp();
  const std::string id = msg.id;
  run(m.inst, [t, msg]() mutable -> awaitable<void> { co_await t->publish(std::move(msg)); });
  const std::string line = read_line();
  ::pclose(py);
  EXPECT_NE(line.find("\"id\": \"" + id + "\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"body\": \"00fe7061746368626179\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"content_type\": \"application/x-test\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"x-from\": \"patchbay\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"x-multi\": [\"a\", \"b\"]"), std::string::npos) << line;
  EXPECT_NE(line.find("\"persistent\": true"), std::string::npos) << line;
  EXPECT_NE(line.find("\"routing_key\": \"to.pika\""), std::string::npos) << line;
}

}  // namespace
}  // namespace patchbay::rabbitmq_test
