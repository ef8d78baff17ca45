// bench_nats — the `nats` transport against raw nats.c loops, measured in the same run against
// the same nats-server (a private one this program starts on a free loopback port; when the
// benchmark is pinned to one core with taskset, the server gets another core).
//
//   publish:  patchbay publish() of a stamped Message (16-byte payload, no subscriber) on a
//             single-threaded io_context, ÷ a raw nats.c loop publishing the same bytes: a natsMsg
//             with the same payload and the same two headers (patchbay-id, patchbay-time) that
//             patchbay puts on the wire. Each run ends with a flush (PING/PONG), so both include
//             getting the data to the server. Informational: raw natsConnection_Publish of the
//             bare payload without headers.
//   request:  one request → reply round trip, patchbay request() to a patchbay serve() on the
//             same transport, ÷ raw nats.c: natsConnection_RequestMsg (blocking) to a nats.c
//             responder replying from its subscription callback on a send-asap connection (what
//             nats.c's documentation recommends for responders), with the same headers.
//
// Targets: publish ratio >= 0.9 in rate, i.e. time ratio <= 1/0.9 = 1.11; request ratio <= 1.1.

#include "report.hpp"

#include <patchbay/config.hpp>
#include <patchbay/registry.hpp>
#include <patchbay/transports/nats/nats.hpp>

#include <nats/nats.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using namespace patchbay;

// --- a private nats-server -------------------------------------------------------------------

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

bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

struct Server {
  int port = free_port();
  pid_t pid = -1;

  Server() {
    std::vector<std::string> args;
    // Pinned to one core (taskset -c N bench_nats): give the server another one.
    cpu_set_t mine;
    if (::sched_getaffinity(0, sizeof mine, &mine) == 0 && CPU_COUNT(&mine) == 1) {
      const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
      for (int c = 0; c < cpus; ++c)
        if (!CPU_ISSET(c, &mine)) {
          args = {"taskset", "-c", std::to_string(c)};
          std::printf("nats-server pinned to cpu %d\n", c);
          break;
        }
    }
    for (const char* a : {"nats-server", "-a", "127.0.0.1", "-p"}) args.emplace_back(a);
    args.push_back(std::to_string(port));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Its log (stderr) goes to /dev/null: the report is this program's output.
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&quiet, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    const int spawned = ::posix_spawnp(&pid, argv[0], &quiet, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&quiet);
    if (spawned != 0) throw std::runtime_error("cannot run nats-server");
    for (int i = 0; i < 2000 && !accepts(port); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!accepts(port)) throw std::runtime_error("nats-server did not start");
  }
  ~Server() {
    ::kill(pid, SIGINT);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port); }
};

Server* server = nullptr;

Message prototype(const char* topic) {
  Message m("hello, patchbay!");
  m.topic = topic;
  m.stamp();
  return m;
}

// --- patchbay --------------------------------------------------------------------------------

/// A `nats` transport made by the registry from config, on `ctx` (not started yet).
struct Nats {
  std::unique_ptr<Registry> registry = std::make_unique<Registry>();
  std::shared_ptr<Transport> transport;

  explicit Nats(asio::io_context& ctx) {
    if (auto s = nats::register_transport(*registry); !s.ok()) throw std::runtime_error(std::string(s.message()));
    auto cfg = Config::parse("transports: { bus: { type: nats, url: '" + server->url() + "' } }\n");
    if (!cfg.ok()) throw std::runtime_error(std::string(cfg.status().message()));
    auto made = registry->make_transport("nats", TransportContext{"bench", ctx.get_executor(), cfg->transports[0].settings, {}});
    if (!made.ok()) throw std::runtime_error(std::string(made.status().message()));
    transport = std::move(*made);
  }
};

awaitable<void> patchbay_publish_loop(benchmark::State& state, Transport& t) {
  co_await t.start();
  const Message proto = prototype("bench.publish");
  for (auto _ : state) co_await t.publish(proto);
  co_await t.stop();  // drains: the published data reaches the server
}

void publish_patchbay(benchmark::State& state) {
  asio::io_context ctx(1);
  Nats n(ctx);
  asio::co_spawn(ctx, patchbay_publish_loop(state, *n.transport), asio::detached);
  ctx.run();
  state.SetItemsProcessed(state.iterations());
}

awaitable<void> patchbay_request_loop(benchmark::State& state, Transport& t) {
  co_await t.start();
  auto ex = co_await asio::this_coro::executor;
  auto serve = [&t]() -> awaitable<void> {
    co_await t.serve("bench.service", [](Message req) -> awaitable<Message> { co_return Message(req.payload); });
  };
  asio::co_spawn(ex, serve(), asio::detached);
  const Message proto = prototype("bench.service");
  // serve() subscribes asynchronously: the first requests may find nobody yet.
  for (int i = 0; i < 1000; ++i) {
    try {
      co_await t.request("bench.service", proto, clock::now() + std::chrono::seconds(5));
      break;
    } catch (const boost::system::system_error&) {
    }
  }
  for (auto _ : state) {
    Message reply = co_await t.request("bench.service", proto, clock::now() + std::chrono::seconds(10));
    benchmark::DoNotOptimize(reply.payload.data());
  }
  co_await t.stop();
}

void request_patchbay(benchmark::State& state) {
  asio::io_context ctx(1);
  Nats n(ctx);
  asio::co_spawn(ctx, patchbay_request_loop(state, *n.transport), asio::detached);
  ctx.run();
  state.SetItemsProcessed(state.iterations());
}

// --- raw nats.c ------------------------------------------------------------------------------

natsConnection* raw_connect(bool send_asap) {
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  natsOptions_Create(&opts);
  natsOptions_SetURL(opts, server->url().c_str());
  natsOptions_SetSendAsap(opts, send_asap);
  if (natsConnection_Connect(&nc, opts) != NATS_OK) throw std::runtime_error("raw nats.c: cannot connect");
  natsOptions_Destroy(opts);
  return nc;
}

/// The natsMsg patchbay puts on the wire for `m`: payload plus the id and time headers.
natsMsg* raw_message(const Message& m, const char* subject) {
  natsMsg* msg = nullptr;
  natsMsg_Create(&msg, subject, nullptr, m.payload.data(), static_cast<int>(m.payload.size()));
  natsMsgHeader_Set(msg, "patchbay-id", m.id.c_str());
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(m.time.time_since_epoch()).count();
  natsMsgHeader_Set(msg, "patchbay-time", std::to_string(us).c_str());
  return msg;
}

void publish_raw(benchmark::State& state) {
  natsConnection* nc = raw_connect(false);
  const Message proto = prototype("bench.publish");
  for (auto _ : state) {
    natsMsg* msg = raw_message(proto, "bench.publish");
    if (natsConnection_PublishMsg(nc, msg) != NATS_OK) state.SkipWithError("publish failed");
    natsMsg_Destroy(msg);
  }
  natsConnection_FlushTimeout(nc, 10000);
  natsConnection_Destroy(nc);
  state.SetItemsProcessed(state.iterations());
}

void publish_raw_bare(benchmark::State& state) {
  natsConnection* nc = raw_connect(false);
  const Message proto = prototype("bench.publish");
  for (auto _ : state)
    if (natsConnection_Publish(nc, "bench.publish", proto.payload.data(), static_cast<int>(proto.payload.size())) != NATS_OK)
      state.SkipWithError("publish failed");
  natsConnection_FlushTimeout(nc, 10000);
  natsConnection_Destroy(nc);
  state.SetItemsProcessed(state.iterations());
}

void raw_responder(natsConnection* nc, natsSubscription*, natsMsg* req, void*) {
  natsMsg* reply = nullptr;
  natsMsg_Create(&reply, natsMsg_GetReply(req), nullptr, natsMsg_GetData(req), natsMsg_GetDataLength(req));
  const char* id = nullptr;
  if (natsMsgHeader_Get(req, "patchbay-id", &id) == NATS_OK) natsMsgHeader_Set(reply, "patchbay-id", id);
  const char* time = nullptr;
  if (natsMsgHeader_Get(req, "patchbay-time", &time) == NATS_OK) natsMsgHeader_Set(reply, "patchbay-time", time);
  natsConnection_PublishMsg(nc, reply);
  natsMsg_Destroy(reply);
  natsMsg_Destroy(req);
}

void request_raw(benchmark::State& state) {
  natsConnection* responder = raw_connect(true);
  natsConnection* requester = raw_connect(false);
  natsSubscription* sub = nullptr;
  natsConnection_Subscribe(&sub, responder, "bench.raw.service", raw_responder, nullptr);
  natsConnection_Flush(responder);
  const Message proto = prototype("bench.raw.service");
  for (auto _ : state) {
    natsMsg* req = raw_message(proto, "bench.raw.service");
    natsMsg* reply = nullptr;
    if (natsConnection_RequestMsg(&reply, requester, req, 10000) != NATS_OK) state.SkipWithError("request failed");
    benchmark::DoNotOptimize(reply);
    natsMsg_Destroy(reply);
    natsMsg_Destroy(req);
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(requester);
  natsConnection_Destroy(responder);
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  using patchbay::bench::Comparison;
  Server s;
  server = &s;
  patchbay::bench::add("nats_publish/patchbay", publish_patchbay)->UseRealTime();
  patchbay::bench::add("nats_publish/raw_natsc", publish_raw)->UseRealTime();
  patchbay::bench::add("nats_publish/raw_natsc_bare", publish_raw_bare)->UseRealTime();
  patchbay::bench::add("nats_request/patchbay", request_patchbay)->UseRealTime();
  patchbay::bench::add("nats_request/raw_natsc", request_raw)->UseRealTime();
  std::vector<Comparison> comparisons;
  // Rate ratio >= 0.9 is time ratio <= 1/0.9.
  comparisons.push_back({"nats publish (same message on the wire)", "nats_publish/patchbay", "nats_publish/raw_natsc",
                         "nats.c PublishMsg loop", 1.0 / 0.9});
  comparisons.push_back({"nats publish vs bare payload", "nats_publish/patchbay", "nats_publish/raw_natsc_bare",
                         "nats.c Publish (no headers)", 0, 0, "msg", true});
  comparisons.push_back({"nats request round trip", "nats_request/patchbay", "nats_request/raw_natsc",
                         "nats.c RequestMsg + callback responder", 1.1, 0, "round trip"});
  const int rc = patchbay::bench::run_and_compare(argc, argv, comparisons);
  server = nullptr;
  return rc;
}
