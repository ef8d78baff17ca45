// bench_redis — the redis transport (Pub/Sub, pipelined publishing) against redis-benchmark, in
// the same run, on a redis-server of its own.
//
//   baseline:  `redis-benchmark -c 1 -P <window> -n N PUBLISH chan <payload>` (one connection,
//              <window> commands pipelined) while a patchbay subscriber is attached to `chan`
//              and counts the messages. The rate is redis-benchmark's requests per second.
//   patchbay:  <window> publisher coroutines on one transport (one pipelined connection: a
//              coroutine awaits its publish, the transport batches whatever is queued into one
//              write) publish N messages of the same payload to one subscriber of the same
//              transport; the rate is N / (time from the first publish until the subscriber got
//              the last message) — publish *and* deliver.
//   Both with the envelope (id, time, headers: the default) and without (`envelope: false`).
//
// Each runs 3 times alternating baseline and patchbay; the medians and the ratio are printed
// (target: ratio >= 0.9). redis-server is pinned to CPU 0 when taskset exists; run the bench
// itself pinned elsewhere: `taskset -c 1 build/release/bin/bench_redis`. The transport is the
// module, loaded through config `plugins:`.
//
//     bench_redis [messages=200000] [window=64] [payload_bytes=100]
#include <patchbay/runtime.hpp>
#include <patchbay/stream.hpp>
#include <patchbay/topic.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace pb = patchbay;
namespace asio = boost::asio;
using clk = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

std::size_t g_messages = 200000, g_window = 64, g_payload = 100;
int g_port = 0;

std::string shell(const std::string& command) {
  std::string out;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// redis-server on a free port, pinned to CPU 0, unlimited Pub/Sub output buffers (a
/// subscriber that lags behind a pipelined publisher must not be disconnected).
pid_t start_redis(const std::filesystem::path& dir) {
  g_port = free_port();
  const bool taskset = !shell("command -v taskset").empty();
  std::vector<std::string> args;
  if (taskset) args = {"taskset", "-c", "0"};
  for (const char* a : {"redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--client-output-buffer-limit", "pubsub 0 0 0"})
    args.emplace_back(a);
  args.push_back("--port");
  args.push_back(std::to_string(g_port));
  args.push_back("--dir");
  args.push_back(dir.string());
  args.push_back("--logfile");
  args.push_back((dir / "redis.log").string());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  const auto until = clk::now() + 20s;
  while (shell("redis-cli -p " + std::to_string(g_port) + " ping 2>/dev/null").rfind("PONG", 0) != 0) {
    if (clk::now() > until) {
      std::fprintf(stderr, "bench_redis: redis-server did not start; see %s\n", (dir / "redis.log").c_str());
      std::exit(1);
    }
    std::this_thread::sleep_for(20ms);
  }
  return pid;
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double g_cpu_us_per_msg = 0;  // CPU time of this process per message in the last measurement

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Counts deliveries on a subscription until `n` arrived; returns when they did.
pb::awaitable<void> count(pb::Stream<pb::Delivery>& sub, std::size_t n, std::atomic<std::size_t>& got) {
  while (got.load(std::memory_order_relaxed) < n) {
    auto d = co_await sub.next();
    if (!d) break;
    if (!d->is_gap()) got.fetch_add(1, std::memory_order_relaxed);
  }
}

struct Result {
  double raw_rps = 0;       // redis-benchmark's requests per second
  double raw_delivered = 0; // messages per second until the subscriber had them all
  double ours = 0;          // patchbay publish + deliver, messages per second
  double cpu_us = 0;        // CPU time of this process per message (publish + deliver)
};

Result run_once(pb::Runtime& rt, const std::string& binding, int rep) {
  Result r;
  const std::string payload(g_payload, 'x');
  // Baseline: redis-benchmark publishes, a patchbay subscriber of the same transport counts.
  {
    const std::string channel = "bench.base." + binding + "." + std::to_string(rep);
    auto topic = rt.topic(binding);
    std::atomic<std::size_t> got{0};
    std::promise<void> subscribed;
    auto body = [&]() -> pb::awaitable<void> {
      auto sub = co_await topic.transport()->subscribe(channel, {});
      subscribed.set_value();
      co_await count(sub, g_messages, got);
    };
    auto done = asio::co_spawn(rt.get_executor(), body, asio::use_future);
    subscribed.get_future().wait();
    const auto began = clk::now();
    const std::string out = shell("redis-benchmark -p " + std::to_string(g_port) + " -c 1 -P " + std::to_string(g_window) +
                                  " -n " + std::to_string(g_messages) + " -q PUBLISH " + channel + " " + payload + " 2>&1");
    if (done.wait_for(120s) != std::future_status::ready) {
      std::fprintf(stderr, "bench_redis: the subscriber got %zu of %zu from redis-benchmark\n", got.load(), g_messages);
      std::exit(1);
    }
    done.get();
    r.raw_delivered = g_messages / std::chrono::duration<double>(clk::now() - began).count();
    const auto rps_at = out.rfind(" requests per second");
    const auto colon = out.rfind(": ", rps_at);
    if (rps_at == std::string::npos || colon == std::string::npos) {
      std::fprintf(stderr, "bench_redis: cannot read redis-benchmark's output:\n%s\n", out.c_str());
      std::exit(1);
    }
    r.raw_rps = std::atof(out.substr(colon + 2, rps_at - colon - 2).c_str());
  }
  // patchbay: `window` publishers, one subscriber, one transport.
  {
    const std::string channel = "bench.ours." + binding + "." + std::to_string(rep);
    auto topic = rt.topic(binding);
    std::atomic<std::size_t> got{0};
    std::atomic<std::size_t> next{0};
    std::atomic<int> failures{0};
    std::promise<void> subscribed;
    auto consumer = [&]() -> pb::awaitable<void> {
      auto sub = co_await topic.transport()->subscribe(channel, {});
      subscribed.set_value();
      co_await count(sub, g_messages, got);
    };
    auto publisher = [&]() -> pb::awaitable<void> {
      auto transport = topic.transport();
      while (next.fetch_add(1, std::memory_order_relaxed) < g_messages) {
        pb::Message m{pb::Bytes(payload)};
        m.topic = channel;
        m.stamp();
        try {
          co_await transport->publish(std::move(m));
        } catch (...) {
          ++failures;
        }
      }
    };
    auto done = asio::co_spawn(rt.get_executor(), consumer, asio::use_future);
    subscribed.get_future().wait();
    const auto began = clk::now();
    const double cpu = cpu_seconds();
    std::vector<std::future<void>> publishers;
    for (std::size_t i = 0; i < g_window; ++i)
      publishers.push_back(asio::co_spawn(rt.get_executor(), publisher, asio::use_future));
    for (auto& p : publishers) p.get();
    if (done.wait_for(120s) != std::future_status::ready) {
      std::fprintf(stderr, "bench_redis: the subscriber got %zu of %zu (%d publishes failed)\n", got.load(), g_messages,
                   failures.load());
      std::exit(1);
    }
    done.get();
    r.ours = g_messages / std::chrono::duration<double>(clk::now() - began).count();
    r.cpu_us = (cpu_seconds() - cpu) * 1e6 / g_messages;
  }
  return r;
}

/// patchbay publish only (nobody subscribed): where the time of publish+deliver goes.
double publish_only(pb::Runtime& rt, const std::string& binding) {
  const std::string payload(g_payload, 'x');
  auto topic = rt.topic(binding);
  std::atomic<std::size_t> next{0};
  auto publisher = [&]() -> pb::awaitable<void> {
    auto transport = topic.transport();
    while (next.fetch_add(1, std::memory_order_relaxed) < g_messages) {
      pb::Message m{pb::Bytes(payload)};
      m.topic = "bench.nobody";
      m.stamp();
      co_await transport->publish(std::move(m));
    }
  };
  const auto began = clk::now();
  const double cpu = cpu_seconds();
  std::vector<std::future<void>> publishers;
  for (std::size_t i = 0; i < g_window; ++i)
    publishers.push_back(asio::co_spawn(rt.get_executor(), publisher, asio::use_future));
  for (auto& p : publishers) p.get();
  g_cpu_us_per_msg = (cpu_seconds() - cpu) * 1e6 / g_messages;
  return g_messages / std::chrono::duration<double>(clk::now() - began).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]).rfind("--", 0) != 0) positional.emplace_back(argv[i]);  // --benchmark_*: ignored
  if (positional.size() > 0) g_messages = std::stoul(positional[0]);
  if (positional.size() > 1) g_window = std::stoul(positional[1]);
  if (positional.size() > 2) g_payload = std::stoul(positional[2]);
  if (shell("command -v redis-benchmark").empty()) {
    std::printf("bench_redis: redis-benchmark not installed (apt-get install redis-tools); skipped\n");
    return 0;
  }
  const auto dir = std::filesystem::temp_directory_path() / ("patchbay-bench-redis-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const pid_t server = start_redis(dir);

  pb::RuntimeOptions options;
  options.handle_signals = false;
  options.threads = 1;
  const std::string url = "redis://127.0.0.1:" + std::to_string(g_port);
  options.config_text = std::string("plugins: [") + PATCHBAY_REDIS_MODULE + "]\n" +
                        "transports:\n"
                        "  envelope: { type: redis, url: '" + url + "', mode: pubsub, buffer: 100000000 }\n"
                        "  bare: { type: redis, url: '" + url + "', mode: pubsub, envelope: false, buffer: 100000000 }\n"
                        "bindings:\n"
                        "  envelope: { transport: envelope }\n"
                        "  bare: { transport: bare }\n";
  auto rt = pb::Runtime::create(std::move(options));
  if (!rt.ok()) {
    std::fprintf(stderr, "bench_redis: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  if (auto s = (*rt)->start(); !s.ok()) {
    std::fprintf(stderr, "bench_redis: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("bench_redis: %zu messages of %zu bytes, window %zu, redis-server on 127.0.0.1:%d, 3 runs each\n", g_messages,
              g_payload, g_window, g_port);
  for (const std::string binding : {"envelope", "bare"}) {
    std::vector<double> raw, raw_delivered, ours, cpu;
    for (int rep = 0; rep < 3; ++rep) {
      Result r = run_once(**rt, binding, rep);
      raw.push_back(r.raw_rps);
      raw_delivered.push_back(r.raw_delivered);
      ours.push_back(r.ours);
      cpu.push_back(r.cpu_us);
      std::printf("  run %d (%s): redis-benchmark %.0f msg/s (delivered %.0f msg/s), patchbay %.0f msg/s (%.2f us CPU/msg)\n",
                  rep, binding.c_str(), r.raw_rps, r.raw_delivered, r.ours, r.cpu_us);
      std::fflush(stdout);
    }
    std::vector<double> alone, alone_cpu;
    for (int rep = 0; rep < 3; ++rep) {
      alone.push_back(publish_only(**rt, binding));
      alone_cpu.push_back(g_cpu_us_per_msg);
    }
    std::printf("  (%s) patchbay publish only, nobody subscribed: %.0f msg/s (%.2f us CPU/msg); publish+deliver: %.2f us CPU/msg\n",
                binding.c_str(), median(alone), median(alone_cpu), median(cpu));
    const double ratio = median(ours) / median(raw);
    std::printf("redis pubsub publish+deliver (%s): patchbay %.0f msg/s, redis-benchmark PUBLISH -P %zu %.0f msg/s "
                "(subscriber attached; delivered %.0f msg/s), ratio %.2f (target >= 0.90) %s\n",
                binding == "bare" ? "bare payload" : "envelope", median(ours), g_window, median(raw),
                median(raw_delivered), ratio, ratio >= 0.9 ? "OK" : "MISSED");
  }
  (*rt)->stop();
  (*rt)->wait();
  rt->reset();
  ::kill(server, SIGTERM);
  int status = 0;
  ::waitpid(server, &status, 0);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
