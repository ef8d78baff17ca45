// What the redis transport's own tests share: a private redis-server (fault tests kill and
// restart it; error tests give it a password or ACL users), a runtime built from config with
// the module loaded through `plugins:`, and a few coroutine helpers.
#pragma once

#include <patchbay/conformance/suite.hpp>
#include <patchbay/conformance/test_support.hpp>
#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace redis_test {

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
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// Runs a command line and returns its standard output (trailing newlines removed).
inline std::string shell(const std::string& command) {
  std::string out;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    ::pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

/// A redis-server of the test's own: its own port, its own folder under the temp dir, started
/// in the foreground (so its pid is ours to signal), restartable on the same port and folder.
/// With `aof`, every write is in the append-only file with fsync always: whatever Redis
/// answered survives kill -9.
class RedisServer {
 public:
  explicit RedisServer(bool aof = false, std::vector<std::string> extra = {}) : aof_(aof), extra_(std::move(extra)) {
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::temp_directory_path() /
           ("patchbay-redis-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(dir_);
    port_ = free_port();
  }
  ~RedisServer() {
    kill(SIGKILL);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  /// Starts it and waits (bounded) until it answers PING (a restart also replays its AOF).
  void start() {
    const std::string port = std::to_string(port_);
    std::vector<std::string> args = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                     "--dir", dir_.string(), "--logfile", (dir_ / "redis.log").string(),
                                     "--daemonize", "no"};
    if (aof_) {
      for (const char* a : {"--appendonly", "yes", "--appendfsync", "always"}) args.emplace_back(a);
    } else {
      for (const char* a : {"--appendonly", "no"}) args.emplace_back(a);
    }
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    ASSERT_GE(pid_, 0) << "fork failed";
    if (pid_ == 0) {
      // The server dies with the test, even when the test is killed (a ctest timeout).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    const auto until = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      const std::string reply = cli("PING");
      if (reply == "PONG" || reply.find("NOAUTH") != std::string::npos) break;
      int status = 0;
      ASSERT_EQ(::waitpid(pid_, &status, WNOHANG), 0) << "redis-server exited at start; see " << (dir_ / "redis.log");
      ASSERT_LT(std::chrono::steady_clock::now(), until) << "redis-server did not answer within 20 s";
      std::this_thread::sleep_for(10ms);
    }
  }

  /// Stops it (SIGTERM: graceful; SIGKILL: a crash) and reaps it.
  void kill(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  /// redis-cli against this server; `args` are shell words.
  std::string cli(const std::string& args, const std::string& auth = "") const {
    return shell("redis-cli --no-auth-warning -h 127.0.0.1 -p " + std::to_string(port_) +
                 (auth.empty() ? "" : " " + auth) + " " + args + " 2>&1");
  }

 private:
  bool aof_;
  std::vector<std::string> extra_;
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// The `plugins:` line that loads the module under test.
inline std::string plugins() { return std::string("plugins: [") + PATCHBAY_REDIS_MODULE + "]\n"; }

/// The YAML of a runtime whose default transport is `type: redis` at `url` with `settings`
/// (flow-mapping entries: "mode: streams, claim_idle: 1s").
inline std::string config(const std::string& url, const std::string& settings = "") {
  return plugins() + "default_transport: bus\ntransports:\n  bus: { type: redis, url: '" + url + "'" +
         (settings.empty() ? "" : ", " + settings) + " }\n";
}

/// A started runtime with that transport.
inline absl::StatusOr<patchbay::conformance::Instance> make(const std::string& url, const std::string& settings = "") {
  return patchbay::conformance::from_config(config(url, settings));
}

/// The shared broker's URL, or empty (the test then skips) when scripts/brokers did not run.
inline std::string broker_url() {
  const char* port = std::getenv("PATCHBAY_REDIS_PORT");
  if (!port || !*port) return {};
  return std::string("redis://127.0.0.1:") + port;
}

#define REDIS_TEST_NEEDS_BROKER(url)                                                               \
  const std::string url = ::redis_test::broker_url();                                             \
  if (url.empty())                                                                                 \
  GTEST_SKIP() << "PATCHBAY_REDIS_PORT is not set: run `scripts/brokers start redis` and source " \
                  "$PATCHBAY_BROKER_DIR/env (scripts/test does both)"

// run, sleep_for, eventually, next_within, msg: the helpers every transport's tests share.
using patchbay::conformance::eventually;
using patchbay::conformance::msg;
using patchbay::conformance::next_within;
using patchbay::conformance::sleep_for;
using patchbay::conformance::run;

/// A name unique to this process and call.
inline std::string unique(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "." + std::to_string(::getpid()) + "." + std::to_string(n++);
}

}  // namespace redis_test
