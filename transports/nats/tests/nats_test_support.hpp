// What the nats transport's own tests share: a private nats-server (for the fault tests, which
// stop and restart it, and for servers with credentials), a runtime built from config with the
// module loaded through `plugins:`, and a few coroutine helpers.
#pragma once

#include <patchbay/transports/nats/nats.hpp>

#include <patchbay/conformance/suite.hpp>
#include <patchbay/conformance/test_support.hpp>
#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace nats_test {

using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::Delivery;
using patchbay::Message;
using patchbay::Stream;
namespace asio = patchbay::asio;

/// A loopback TCP port nobody listens on right now.
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

/// A nats-server of the test's own: its own port, its own folder under the test's temp dir.
/// Stopped (SIGINT) or killed (SIGKILL) by its pid only; restartable on the same port.
class NatsServer {
 public:
  explicit NatsServer(std::vector<std::string> extra_args = {}) : extra_(std::move(extra_args)) {
    dir_ = std::filesystem::temp_directory_path() /
           ("patchbay-nats-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
    port_ = free_port();
  }
  ~NatsServer() {
    kill(SIGKILL);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

  /// Starts it and waits (bounded) until it accepts connections.
  void start() {
    const std::string port = std::to_string(port_);
    const std::string log = (dir_ / "nats.log").string();
    std::vector<std::string> args = {"nats-server", "-a", "127.0.0.1", "-p", port, "-l", log};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(::posix_spawnp(&pid_, "nats-server", nullptr, nullptr, argv.data(), environ), 0) << "cannot run nats-server";
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (!accepts(port_)) {
      int status = 0;
      ASSERT_EQ(::waitpid(pid_, &status, WNOHANG), 0) << "nats-server exited at start; see " << log;
      ASSERT_LT(std::chrono::steady_clock::now(), until) << "nats-server did not listen within 20 s; see " << log;
      std::this_thread::sleep_for(10ms);
    }
  }

  /// Stops it (SIGINT: nats-server's graceful stop; SIGKILL: a crash) and reaps it.
  void kill(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::vector<std::string> extra_;
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// The `plugins:` line that loads the module under test.
inline std::string plugins() { return std::string("plugins: [") + PATCHBAY_NATS_MODULE + "]\n"; }

/// A started runtime whose default transport is `type: nats` with `settings` (YAML mapping
/// lines, indented by four spaces) at `url`.
inline absl::StatusOr<patchbay::conformance::Instance> make(const std::string& url, const std::string& settings = "") {
  return patchbay::conformance::from_config(plugins() + "default_transport: bus\ntransports:\n  bus:\n    type: nats\n    url: " +
                                            url + "\n" + settings);
}

/// The shared broker's URL, or empty (the test then skips) when scripts/brokers did not run.
inline std::string broker_url() {
  const char* port = std::getenv("PATCHBAY_NATS_PORT");
  if (!port || !*port) return {};
  return std::string("nats://127.0.0.1:") + port;
}

#define NATS_TEST_NEEDS_BROKER(url)                                                                           \
  const std::string url = ::nats_test::broker_url();                                                         \
  if (url.empty())                                                                                            \
  GTEST_SKIP() << "PATCHBAY_NATS_PORT is not set: run `scripts/brokers start nats` and source "             \
                  "$PATCHBAY_BROKER_DIR/env (scripts/test does both)"

// run, sleep_for, eventually, next_within, msg: the helpers every transport's tests share.
using patchbay::conformance::eventually;
using patchbay::conformance::msg;
using patchbay::conformance::next_within;
using patchbay::conformance::sleep_for;
using patchbay::conformance::run;

inline patchbay::nats::Stats stats(const patchbay::conformance::Instance& inst) {
  auto s = patchbay::nats::stats_of(*inst.transport);
  EXPECT_TRUE(s.has_value()) << "not a nats transport";
  return s.value_or(patchbay::nats::Stats{});
}

/// A name unique to this process and call.
inline std::string unique(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "." + std::to_string(::getpid()) + "." + std::to_string(n++);
}

}  // namespace nats_test
