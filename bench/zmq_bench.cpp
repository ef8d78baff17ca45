// bench_zmq — the zmq transport's throughput against a raw cppzmq loop, in the same run.
//
// Two patterns, two payload sizes (64 B and 1 KiB), over tcp loopback:
//   - pubsub:   patchbay publish() on an XPUB → a subscription's next() (SUB);
//               raw: an XPUB (ZMQ_XPUB_NODROP, as the transport's default `when_full: block`)
//               and a SUB, sender and receiver each on their own thread, blocking calls;
//   - pushpull: patchbay publish() on a PUSH → a consumer-group member's next() (PULL);
//               raw: PUSH and PULL, sender and receiver each on their own thread.
// The raw loops send the very frames the transport sends for the same Message — topic,
// `patchbay-id` and `patchbay-time` header frames, payload — so the comparison is the cost of
// patchbay itself (coroutines, the ZMQ_FD integration, building and parsing Messages), not of
// a different wire format. patchbay runs on an io_context with two threads, as the raw loop
// has two threads.
//
// One iteration is a batch of kBatch messages, published and received end to end. The summary
// prints ns per batch; the throughput ratio is raw / patchbay = 1 / ratio. Targets (issue 5):
// throughput ratio >= 0.85 at 64 B (time ratio <= 1.176) and >= 0.95 at 1 KiB (<= 1.053).
// Run pinned, e.g. `taskset -c 1 build/release/bin/bench_zmq --benchmark_repetitions=3`.
#include "report.hpp"

#include <patchbay/config.hpp>
#include <patchbay/registry.hpp>
#include <patchbay/transports/zmq/zmq.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include <yaml-cpp/yaml.h>
#include <zmq.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <future>
#include <map>
#include <stdexcept>
#include <thread>

namespace {

using namespace patchbay;

constexpr int kBatch = 20'000;

// Process CPU time (every thread: ours, the io threads, zmq's I/O thread) per message, per run
// name: on a shared, loaded machine the real time mostly measures how long the process waited
// for a core; the CPU time it burnt does not depend on that.
std::map<std::string, std::vector<double>> cpu_per_msg;

double process_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

struct CpuMeter {
  std::string name;
  benchmark::State& state;
  double start = process_cpu_ns();
  ~CpuMeter() {
    const double per = (process_cpu_ns() - start) / (static_cast<double>(state.iterations()) * kBatch);
    cpu_per_msg[name].push_back(per);
    state.counters["proc_cpu_ns/msg"] = per;
  }
};

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free port");
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string endpoint() { return "tcp://127.0.0.1:" + std::to_string(free_port()); }

Message prototype(std::size_t size) {
  Message m{Bytes(std::string(size, 'x'))};
  m.topic = "bench";
  m.stamp();
  return m;
}

/// The frames the transport sends for `m` (see transports/zmq/src/wire.hpp).
std::vector<zmq::message_t> frames_of(const Message& m) {
  std::vector<zmq::message_t> f;
  auto header = [](std::string_view name, std::string_view value) {
    std::string s(name);
    s.push_back('\0');
    s.append(value);
    return zmq::message_t(s.data(), s.size());
  };
  f.emplace_back(m.topic.data(), m.topic.size());
  f.push_back(header("patchbay-id", m.id));
  f.push_back(header("patchbay-time",
                     std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(m.time.time_since_epoch()).count())));
  f.emplace_back(m.payload.data(), m.payload.size());
  return f;
}

// --- patchbay -----------------------------------------------------------------------------

struct Patchbay {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::vector<std::thread> threads;
  std::unique_ptr<Registry> registry = Registry::with_builtins();
  std::shared_ptr<Transport> transport;
  Stream<Delivery> sub;

  Patchbay(const std::string& yaml, bool group) {
    if (auto s = zeromq::register_transport(*registry); !s.ok()) throw std::runtime_error(std::string(s.message()));
    config::Node settings(YAML::Load(yaml), "bench", "transport 'bench'");
    auto made = registry->make_transport("zmq", TransportContext{"bench", io.get_executor(), settings});
    if (!made.ok()) throw std::runtime_error(std::string(made.status().message()));
    transport = std::move(*made);
    for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
    asio::co_spawn(asio::make_strand(io), transport->start(), asio::use_future).get();
    auto subscribe = [this, group]() -> awaitable<Stream<Delivery>> {
      SubscribeOptions o;
      if (group) o.group("bench");
      co_return co_await transport->subscribe("bench", o);
    };
    sub = asio::co_spawn(asio::make_strand(io), subscribe, asio::use_future).get();
  }
  ~Patchbay() {
    sub.close();
    asio::co_spawn(asio::make_strand(io), transport->stop(), asio::use_future).get();
    transport.reset();
    work.reset();
    for (auto& t : threads) t.join();
  }

  static awaitable<void> publish_batch(std::shared_ptr<Transport> t, Message proto) {
    for (int i = 0; i < kBatch; ++i) co_await t->publish(proto);
  }
  static awaitable<std::size_t> receive_batch(Stream<Delivery>* sub) {
    std::size_t bytes = 0;
    for (int i = 0; i < kBatch; ++i) {
      auto d = co_await sub->next();
      if (!d) throw std::runtime_error("subscription ended");
      bytes += d->message().payload.size();
    }
    co_return bytes;
  }

  void batch(const Message& proto) {
    auto got = asio::co_spawn(asio::make_strand(io), receive_batch(&sub), asio::use_future);
    auto sent = asio::co_spawn(asio::make_strand(io), publish_batch(transport, proto), asio::use_future);
    sent.get();
    if (got.get() != kBatch * proto.payload.size()) throw std::runtime_error("lost bytes");
  }
};

void patchbay_pubsub(benchmark::State& state) {
  const std::string ep = endpoint();
  Patchbay p("{ publish: { bind: [ '" + ep + "' ] }, subscribe: { connect: [ '" + ep + "' ] } }", false);
  const Message proto = prototype(state.range(0));
  {
    CpuMeter meter{"pubsub/patchbay/" + std::to_string(state.range(0)), state};
    for (auto _ : state) p.batch(proto);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void patchbay_pushpull(benchmark::State& state) {
  const std::string ep = endpoint();
  Patchbay p("{ push: { bind: [ '" + ep + "' ] }, pull: { connect: [ '" + ep + "' ] } }", true);
  const Message proto = prototype(state.range(0));
  CpuMeter meter{"pushpull/patchbay/" + std::to_string(state.range(0)), state};
  for (auto _ : state) p.batch(proto);
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// --- raw cppzmq ---------------------------------------------------------------------------

void raw_loop(benchmark::State& state, zmq::socket_type out_type, zmq::socket_type in_type, const std::string& name) {
  zmq::context_t ctx(1);
  zmq::socket_t out(ctx, out_type), in(ctx, in_type);
  const std::string ep = endpoint();
  out.set(zmq::sockopt::linger, 0);
  in.set(zmq::sockopt::linger, 0);
  if (out_type == zmq::socket_type::xpub) out.set(zmq::sockopt::xpub_nodrop, true);
  if (in_type == zmq::socket_type::sub) in.set(zmq::sockopt::subscribe, "bench");
  out.bind(ep);
  in.connect(ep);
  if (out_type == zmq::socket_type::xpub) {
    zmq::message_t sub;
    (void)out.recv(sub);  // the subscription is live
  }
  const Message proto = prototype(state.range(0));
  const auto templ = frames_of(proto);
  CpuMeter meter{name + "/raw/" + std::to_string(state.range(0)), state};
  for (auto _ : state) {
    std::thread sender([&] {
      for (int i = 0; i < kBatch; ++i) {
        for (std::size_t f = 0; f < templ.size(); ++f) {
          zmq::message_t m(templ[f].data(), templ[f].size());
          (void)out.send(m, f + 1 < templ.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
        }
      }
    });
    std::size_t bytes = 0;
    for (int i = 0; i < kBatch; ++i) {
      zmq::message_t m;
      do {
        (void)in.recv(m);
      } while (m.more());
      bytes += m.size();
    }
    sender.join();
    if (bytes != kBatch * proto.payload.size()) throw std::runtime_error("lost bytes");
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void raw_pubsub(benchmark::State& state) { raw_loop(state, zmq::socket_type::xpub, zmq::socket_type::sub, "pubsub"); }
void raw_pushpull(benchmark::State& state) {
  raw_loop(state, zmq::socket_type::push, zmq::socket_type::pull, "pushpull");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  using patchbay::bench::add;
  using patchbay::bench::Comparison;
  std::vector<Comparison> comparisons;
  for (const char* pattern : {"pubsub", "pushpull"}) {
    for (int size : {64, 1024}) {
      const std::string p = pattern;
      const std::string s = std::to_string(size);
      const bool pubsub = p == "pubsub";
      add("zmq_" + p + "/patchbay", pubsub ? patchbay_pubsub : patchbay_pushpull)->Arg(size)->UseRealTime();
      add("zmq_" + p + "/raw_cppzmq", pubsub ? raw_pubsub : raw_pushpull)->Arg(size)->UseRealTime();
      comparisons.push_back({"zmq " + p + " " + s + " B (" + std::to_string(kBatch) + " msgs)",
                             "zmq_" + p + "/patchbay/" + s, "zmq_" + p + "/raw_cppzmq/" + s, "cppzmq",
                             size == 64 ? 1 / 0.85 : 1 / 0.95, 0, "batch"});
    }
  }
  const int rc = patchbay::bench::run_and_compare(argc, argv, comparisons);
  std::printf("\nProcess CPU time per message (all threads; median of the runs), throughput-per-CPU ratio = raw / patchbay:\n");
  for (const char* pattern : {"pubsub", "pushpull"}) {
    for (int size : {64, 1024}) {
      const std::string s = std::to_string(size);
      const auto ours = cpu_per_msg.find(std::string(pattern) + "/patchbay/" + s);
      const auto raw = cpu_per_msg.find(std::string(pattern) + "/raw/" + s);
      if (ours == cpu_per_msg.end() || raw == cpu_per_msg.end()) continue;
      const double o = median(ours->second), r = median(raw->second);
      std::printf("zmq %s %s B: patchbay %.0f ns/msg, raw cppzmq %.0f ns/msg, ratio %.2f (target >= %.2f)\n", pattern,
                  s.c_str(), o, r, r / o, size == 64 ? 0.85 : 0.95);
    }
  }
  return rc;
}
