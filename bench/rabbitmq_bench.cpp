// bench_rabbitmq — the rabbitmq transport against a raw rabbitmq-c loop with the same settings, in
// the same run, against the broker of `scripts/brokers start rabbitmq` (PATCHBAY_RABBITMQ_PORT).
//
//   transient:  N non-persistent messages published without confirms and consumed with manual
//               acks (prefetch 256) on one connection; time from the first publish to the last
//               ack. Raw: one thread, one connection, publishing and draining deliveries in turn.
//   confirmed:  N persistent messages published with publisher confirms and a window of 256
//               unconfirmed messages to a durable queue; time until the last confirm. Raw: the same
//               window loop on one connection. patchbay: 256 publisher coroutines (a coroutine
//               awaits its publish; the transport keeps the window).
//
// Each case runs 3 times alternating raw and patchbay; the medians and their ratio are printed
// (target: ratio >= 0.9 for both). The transport is the module, loaded through config `plugins:`.
//
//     bench_rabbitmq [messages=50000] [payload_bytes=64]
#include <patchbay/runtime.hpp>
#include <patchbay/stream.hpp>
#include <patchbay/topic.hpp>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace pb = patchbay;
using clk = std::chrono::steady_clock;

namespace {

const std::string kExchange = "patchbay-bench";
int g_port = 0;

void die(const char* what, amqp_rpc_reply_t r) {
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
  std::fprintf(stderr, "bench_rabbitmq: %s failed (reply type %d, library error %s)\n", what, r.reply_type,
               amqp_error_string2(r.library_error));
  std::exit(1);
}

amqp_connection_state_t raw_connect() {
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* s = amqp_tcp_socket_new(c);
  if (amqp_socket_open(s, "127.0.0.1", g_port) != AMQP_STATUS_OK) {
    std::fprintf(stderr, "bench_rabbitmq: cannot connect to 127.0.0.1:%d\n", g_port);
    std::exit(1);
  }
  die("login", amqp_login(c, "/", 0, 131072, 10, AMQP_SASL_METHOD_PLAIN, "guest", "guest"));
  amqp_channel_open(c, 1);
  die("channel.open", amqp_get_rpc_reply(c));
  amqp_exchange_declare(c, 1, amqp_cstring_bytes(kExchange.c_str()), amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                        amqp_empty_table);
  die("exchange.declare", amqp_get_rpc_reply(c));
  return c;
}

void raw_close(amqp_connection_state_t c) {
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

/// Declares (durable) and purges `queue`, bound to `key`.
void prepare_queue(const std::string& queue, const std::string& key) {
  auto c = raw_connect();
  amqp_queue_declare(c, 1, amqp_cstring_bytes(queue.c_str()), 0, 1, 0, 0, amqp_empty_table);
  die("queue.declare", amqp_get_rpc_reply(c));
  amqp_queue_bind(c, 1, amqp_cstring_bytes(queue.c_str()), amqp_cstring_bytes(kExchange.c_str()),
                  amqp_cstring_bytes(key.c_str()), amqp_empty_table);
  die("queue.bind", amqp_get_rpc_reply(c));
  amqp_queue_purge(c, 1, amqp_cstring_bytes(queue.c_str()));
  die("queue.purge", amqp_get_rpc_reply(c));
  raw_close(c);
}

void delete_queue(const std::string& queue) {
  auto c = raw_connect();
  amqp_queue_delete(c, 1, amqp_cstring_bytes(queue.c_str()), 0, 0);
  die("queue.delete", amqp_get_rpc_reply(c));
  raw_close(c);
}

double raw_transient(std::size_t n, const std::string& payload) {
  const std::string queue = "bench-raw-transient", key = "bench.raw.transient";
  prepare_queue(queue, key);
  auto c = raw_connect();
  amqp_channel_open(c, 2);
  die("channel.open", amqp_get_rpc_reply(c));
  amqp_basic_qos(c, 2, 0, 256, 0);
  die("basic.qos", amqp_get_rpc_reply(c));
  amqp_basic_consume(c, 2, amqp_cstring_bytes(queue.c_str()), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  die("basic.consume", amqp_get_rpc_reply(c));
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.delivery_mode = AMQP_DELIVERY_NONPERSISTENT;
  const std::string id(32, 'a');  // patchbay sends a 32-digit message id too
  props.message_id = amqp_cstring_bytes(id.c_str());
  amqp_bytes_t body{payload.size(), const_cast<char*>(payload.data())};
  std::size_t published = 0, received = 0;
  const auto start = clk::now();
  while (received < n) {
    for (int k = 0; k < 64 && published < n; ++k, ++published)
      amqp_basic_publish(c, 1, amqp_cstring_bytes(kExchange.c_str()), amqp_cstring_bytes(key.c_str()), 0, 0, &props,
                         body);
    for (;;) {
      amqp_envelope_t env;
      timeval zero{0, 0};
      timeval wait{1, 0};
      amqp_maybe_release_buffers(c);
      auto r = amqp_consume_message(c, &env, published < n ? &zero : &wait, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) break;  // nothing ready (timeout)
      amqp_basic_ack(c, 2, env.delivery_tag, 0);
      amqp_destroy_envelope(&env);
      ++received;
    }
  }
  const double secs = std::chrono::duration<double>(clk::now() - start).count();
  raw_close(c);
  delete_queue(queue);
  return n / secs;
}

double raw_confirmed(std::size_t n, const std::string& payload, std::size_t window) {
  const std::string queue = "bench-raw-confirmed", key = "bench.raw.confirmed";
  prepare_queue(queue, key);
  auto c = raw_connect();
  amqp_confirm_select(c, 1);
  die("confirm.select", amqp_get_rpc_reply(c));
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  const std::string id(32, 'a');
  props.message_id = amqp_cstring_bytes(id.c_str());
  amqp_bytes_t body{payload.size(), const_cast<char*>(payload.data())};
  std::uint64_t sent = 0, confirmed = 0;
  const auto start = clk::now();
  while (confirmed < n) {
    while (sent < n && sent - confirmed < window) {
      amqp_basic_publish(c, 1, amqp_cstring_bytes(kExchange.c_str()), amqp_cstring_bytes(key.c_str()), 0, 0, &props,
                         body);
      ++sent;
    }
    amqp_frame_t frame;
    if (amqp_simple_wait_frame(c, &frame) != AMQP_STATUS_OK) {
      std::fprintf(stderr, "bench_rabbitmq: raw confirm wait failed\n");
      std::exit(1);
    }
    if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      auto* a = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
      confirmed = a->multiple ? a->delivery_tag : std::max<std::uint64_t>(confirmed, a->delivery_tag);
    }
    amqp_maybe_release_buffers(c);
  }
  const double secs = std::chrono::duration<double>(clk::now() - start).count();
  raw_close(c);
  delete_queue(queue);
  return n / secs;
}

std::unique_ptr<pb::Runtime> make_runtime(const std::string& settings) {
  pb::RuntimeOptions options;
  options.config_text = std::string("plugins: [") + PATCHBAY_RABBITMQ_MODULE + "]\n" +
                        "threads: 2\n"
                        "default_transport: rabbit\n"
                        "transports:\n"
                        "  rabbit:\n"
                        "    type: rabbitmq\n"
                        "    url: amqp://guest:guest@127.0.0.1:" +
                        std::to_string(g_port) +
                        "/\n"
                        "    exchange: " +
                        kExchange + "\n" + settings;
  options.handle_signals = false;
  auto rt = pb::Runtime::create(std::move(options));
  if (!rt.ok()) {
    std::cerr << "bench_rabbitmq: " << rt.status() << "\n";
    std::exit(1);
  }
  if (auto s = (*rt)->start(); !s.ok()) {
    std::cerr << "bench_rabbitmq: " << s << "\n";
    std::exit(1);
  }
  return std::move(*rt);
}

double patchbay_transient(std::size_t n, const std::string& payload) {
  auto rt = make_runtime("    persistent: false\n    confirms: false\n    mandatory: false\n    prefetch: 256\n");
  auto topic = rt->topic("bench.pb.transient");
  auto t = topic.transport();
  auto run = [&, t]() -> pb::awaitable<double> {
    // A group subscription: the same durable, named queue kind the raw loop uses.
    auto sub = co_await t->subscribe("bench.pb.transient", pb::SubscribeOptions().group("bench"));
    const auto start = clk::now();
    auto publish = [&, t]() -> pb::awaitable<void> {
      for (std::size_t i = 0; i < n; ++i) {
        pb::Message m{pb::Bytes(payload)};
        m.topic = "bench.pb.transient";
        co_await t->publish(std::move(m));
      }
    };
    auto publisher = [&publish] { return publish(); };
    pb::asio::co_spawn(rt->get_executor(), publisher, pb::asio::detached);
    std::size_t received = 0;
    while (received < n) {
      auto d = co_await sub.next();
      if (!d) break;
      d->ack();
      ++received;
    }
    co_return n / std::chrono::duration<double>(clk::now() - start).count();
  };
  double rate = pb::asio::co_spawn(
                    rt->get_executor(), [&run] { return run(); }, pb::asio::use_future)
                    .get();
  rt->stop();
  rt->wait();
  delete_queue(kExchange + ":group:bench.pb.transient:bench");
  return rate;
}

double patchbay_confirmed(std::size_t n, const std::string& payload, std::size_t window) {
  const std::string queue = "bench-pb-confirmed", key = "bench.pb.confirmed";
  prepare_queue(queue, key);
  auto rt = make_runtime("    persistent: true\n    confirms: true\n    mandatory: false\n    confirm_window: " +
                         std::to_string(window) + "\n");
  auto t = rt->topic(key).transport();
  std::atomic<std::size_t> done{0};
  const std::size_t workers = window;
  auto worker = [&, t](std::size_t k) -> pb::awaitable<void> {
    for (std::size_t i = k; i < n; i += workers) {
      pb::Message m{pb::Bytes(payload)};
      m.topic = key;
      co_await t->publish(std::move(m));
    }
    ++done;
  };
  std::vector<std::function<pb::awaitable<void>()>> starts;
  for (std::size_t k = 0; k < workers; ++k) starts.push_back([&worker, k] { return worker(k); });
  const auto start = clk::now();
  for (auto& s : starts) pb::asio::co_spawn(rt->get_executor(), s, pb::asio::detached);
  while (done.load() < workers) std::this_thread::sleep_for(std::chrono::microseconds(200));
  const double rate = n / std::chrono::duration<double>(clk::now() - start).count();
  rt->stop();
  rt->wait();
  delete_queue(queue);
  return rate;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const char* port = std::getenv("PATCHBAY_RABBITMQ_PORT");
  if (!port) {
    std::cout << "bench_rabbitmq: skipped: PATCHBAY_RABBITMQ_PORT is not set (run `scripts/brokers start rabbitmq` "
                 "and source $PATCHBAY_BROKER_DIR/env)\n";
    return 0;
  }
  g_port = std::atoi(port);
  // Positional arguments only; options meant for Google Benchmark binaries (scripts/bench) are ignored.
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') args.emplace_back(argv[i]);
  const std::size_t n = args.size() > 0 ? std::stoul(args[0]) : 50'000;
  const std::string payload(args.size() > 1 ? std::stoul(args[1]) : 64, 'x');
  constexpr std::size_t window = 256;

  std::vector<double> raw_t, pb_t, raw_c, pb_c;
  for (int round = 0; round < 3; ++round) {
    raw_t.push_back(raw_transient(n, payload));
    pb_t.push_back(patchbay_transient(n, payload));
    raw_c.push_back(raw_confirmed(n, payload, window));
    pb_c.push_back(patchbay_confirmed(n, payload, window));
    std::printf("round %d: transient raw %.0f / patchbay %.0f msg/s; confirmed raw %.0f / patchbay %.0f msg/s\n",
                round + 1, raw_t.back(), pb_t.back(), raw_c.back(), pb_c.back());
  }
  const double rt = median(raw_t), pt = median(pb_t), rc = median(raw_c), pc = median(pb_c);
  std::printf("\n%zu messages of %zu bytes, medians of 3\n", n, payload.size());
  std::printf("%-44s %12s %12s %7s %7s\n", "case", "raw msg/s", "patchbay", "ratio", "target");
  std::printf("%-44s %12.0f %12.0f %7.2f %7s\n", "transient publish+consume (prefetch 256, ack)", rt, pt, pt / rt,
              ">=0.90");
  std::printf("%-44s %12.0f %12.0f %7.2f %7s\n", "persistent publish, confirms (window 256)", rc, pc, pc / rc,
              ">=0.90");
  return 0;
}
