// kill -9 with 10,000 pending deliveries: a child sender process publishes 10,000 messages to a
// receiver that refuses them all (503), so every one is pending in the outbox, and is killed
// with SIGKILL. A second child resumes with a receiver that accepts, and is killed again in the
// middle of delivering (some deliveries were answered 2xx but their rows not yet deleted). A
// third child drains the outbox. Every message arrives, and duplicates carry the same
// webhook-id (and a valid signature).
#include "outbox.hpp"

#include <patchbay/http/server.hpp>
#include <patchbay/http/webhook_signature.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::http::Exchange;

struct Child {
  pid_t pid = -1;
  int out = -1;
  std::string buffer;

  static Child spawn(const std::vector<std::string>& args) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    Child c;
    c.pid = ::fork();
    if (c.pid == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::close(fds[1]);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    c.out = fds[0];
    return c;
  }
  /// The next line the child prints, within `limit`; empty on timeout or end.
  std::string line(std::chrono::milliseconds limit = 120s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (auto nl = buffer.find('\n'); nl != std::string::npos) {
        auto l = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        return l;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left <= 0ms) return {};
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return {};
      char b[256];
      const auto n = ::read(out, b, sizeof b);
      if (n <= 0) return {};
      buffer.append(b, static_cast<std::size_t>(n));
    }
  }
  void kill9() {
    ::kill(pid, SIGKILL);
    wait();
  }
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (out >= 0) ::close(out);
    out = -1;
    return status;
  }
};

class Receiver {
  // First, so that it is destroyed last (after the server).
  asio::io_context io_{2};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;

 public:
  Receiver() : guard_(asio::make_work_guard(io_)) {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    auto s = patchbay::http::Server::create(io_.get_executor(), patchbay::http::ServerOptions());
    EXPECT_TRUE(s.ok()) << s.status();
    server = *s;
    server->route(bhttp::verb::post, "/hook", [this](Exchange& ex) -> awaitable<void> { return serve(this, ex); });
    server->start();
  }
  ~Receiver() {
    auto f = asio::co_spawn(io_.get_executor(), server->stop(), asio::use_future);
    f.wait_for(30s);
    guard_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  std::shared_ptr<patchbay::http::Server> server;
  std::atomic<bool> accept{false};
  std::atomic<std::size_t> refused{0}, accepted{0}, bad_signatures{0}, mismatched{0};
  std::mutex mu;
  std::map<std::string, int> ids;  // webhook-id → 2xx answers

 private:
  static awaitable<void> serve(Receiver* self, Exchange& ex) {
    auto& req = ex.request();
    const std::string id(req["webhook-id"]);
    const wh_secrets_t secrets = {*patchbay::http::webhook::Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")};
    if (patchbay::http::webhook::verify(secrets, id, req["webhook-timestamp"], req["webhook-signature"], req.body(),
                                        std::chrono::system_clock::now(), 300s))
      ++self->bad_signatures;
    // Payload "payload N" belongs to id m-N: a redelivery carries the same id.
    if (req.body() != "payload " + id.substr(id.find('-') + 1)) ++self->mismatched;
    if (!self->accept) {
      ++self->refused;
      ex.respond(bhttp::status::service_unavailable, "not yet\n");
      co_return;
    }
    {
      std::lock_guard lock(self->mu);
      ++self->ids[id];
    }
    ++self->accepted;
    ex.respond(bhttp::status::no_content, "");
  }
  using wh_secrets_t = std::vector<patchbay::http::webhook::Secret>;
};

std::size_t pending_in(const std::string& path) {
  auto o = patchbay::webhook::Outbox::open(path);
  EXPECT_TRUE(o.ok()) << o.status();
  return o.ok() ? (*o)->pending() : 0;
}

TEST(WebhookSenderFault, KillNineWithTenThousandPendingThenRestartDeliversAll) {
  constexpr int kMessages = 10'000;
  const auto dir = std::filesystem::temp_directory_path() / ("pb-webhook-fault-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string outbox = (dir / "outbox.db").string();
  Receiver receiver;
  const std::string url = receiver.server->url() + "/hook";

  // 1. Everything refused: 10,000 pending, then SIGKILL.
  auto first = Child::spawn({WEBHOOK_SENDER_CHILD, outbox, url, "publish", std::to_string(kMessages)});
  ASSERT_EQ(first.line(), "published");
  first.kill9();
  EXPECT_EQ(pending_in(outbox), static_cast<std::size_t>(kMessages)) << "every acknowledged publish is in the outbox";
  EXPECT_EQ(receiver.accepted.load(), 0u);

  // 2. Accepting now; killed again in the middle of delivering.
  receiver.accept = true;
  auto second = Child::spawn({WEBHOOK_SENDER_CHILD, outbox, url, "resume"});
  const auto until = std::chrono::steady_clock::now() + 120s;
  while (receiver.accepted.load() < kMessages / 3 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  second.kill9();
  const auto mid = pending_in(outbox);
  EXPECT_GT(mid, 0u) << "killed after everything was delivered: the test proves less than it should";
  EXPECT_LT(mid, static_cast<std::size_t>(kMessages));

  // 3. Drains.
  auto third = Child::spawn({WEBHOOK_SENDER_CHILD, outbox, url, "resume"});
  const auto drained = third.line();
  EXPECT_EQ(drained.rfind("drained", 0), 0u) << drained;
  EXPECT_EQ(third.wait(), 0);
  EXPECT_EQ(pending_in(outbox), 0u);

  std::lock_guard lock(receiver.mu);
  EXPECT_EQ(receiver.ids.size(), static_cast<std::size_t>(kMessages)) << "every message delivered";
  std::size_t duplicates = 0;
  for (int i = 0; i < kMessages; ++i) {
    auto it = receiver.ids.find("m-" + std::to_string(i));
    ASSERT_NE(it, receiver.ids.end()) << "m-" << i << " never delivered";
    duplicates += static_cast<std::size_t>(it->second - 1);
  }
  EXPECT_EQ(receiver.bad_signatures.load(), 0u);
  EXPECT_EQ(receiver.mismatched.load(), 0u) << "a redelivery carried another id than its message's";
  std::cout << "pending after the first kill: " << kMessages << ", after the second: " << mid
            << ", redelivered (same webhook-id): " << duplicates << ", refused attempts: " << receiver.refused.load()
            << "\n";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
