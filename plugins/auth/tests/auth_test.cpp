// The `auth` middleware: bearer tokens (loaded as a module through config `plugins:`) and HMAC
// (linked in); messages without a valid credential never reach the application.
#include <patchbay/plugins/auth/auth.hpp>

#include <patchbay/error.hpp>
#include <patchbay/runtime.hpp>

#include <plugin_test.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>

#include <fstream>

namespace {

using namespace std::chrono_literals;
using patchbay::awaitable;
using patchbay::Message;
namespace asio = patchbay::asio;
namespace t = patchbay::plugins::testing;
namespace auth = patchbay::plugins::auth;

void link(patchbay::Registry& r) { ASSERT_TRUE(auth::register_middleware(r).ok()); }

/// Publishes one message from each binding in `from` (all on wire topic "orders") and returns the
/// payloads the subscriber of `to` received, in order; the last one must arrive.
std::vector<std::string> deliveries(patchbay::Runtime& rt, std::string to, std::vector<std::string> from) {
  return t::run(rt, [&rt, to, from]() -> awaitable<std::vector<std::string>> {
    auto sub = co_await rt.topic(to).subscribe();
    for (const auto& b : from) co_await rt.topic(b).publish(Message("from " + b));
    std::vector<std::string> got;
    while (got.empty() || got.back() != "from " + from.back()) {
      auto d = co_await sub.next();
      if (!d) break;
      got.push_back(d->message().payload.str());
      d->ack();
    }
    co_return got;
  });
}

TEST(Auth, BearerTokensWhenLoadedAsAModule) {
  const auto token_file = t::temp_path("tokens");
  {
    std::ofstream f(token_file);
    f << "# accepted tokens\n\n  other-token-2  \nsecret-token-1\n";
  }
  auto rt = t::start_runtime(std::string("plugins: [ ") + PATCHBAY_AUTH_MODULE + " ]\n" +
                             "transports:\n"
                             "  bus: { type: inproc }\n"
                             "bindings:\n"
                             "  orders:\n"
                             "    transport: bus\n"
                             "    middleware: [ { type: auth, token_file: " + token_file + ", token: secret-token-1 } ]\n"
                             "  intruder:\n"
                             "    name: orders\n"
                             "    transport: bus\n"
                             "    middleware: [ { type: auth, token: guessed, verify: false } ]\n"
                             "  anonymous: { name: orders, transport: bus }\n"
                             "  partner:\n"
                             "    name: orders\n"
                             "    transport: bus\n"
                             "    middleware: [ { type: auth, token: other-token-2, verify: false } ]\n");
  ASSERT_TRUE(rt);
  auto got = deliveries(*rt, "orders", {"intruder", "anonymous", "partner", "orders"});
  EXPECT_EQ(got, (std::vector<std::string>{"from partner", "from orders"}));
  t::stop(rt);
  std::remove(token_file.c_str());
}

constexpr const char* kHmacConfig =
    "transports:\n"
    "  bus: { type: inproc }\n"
    "bindings:\n"
    "  quotes:\n"
    "    transport: bus\n"
    "    middleware: [ { type: auth, hmac: { secret: 0123456789abcdef-shared } } ]\n"
    "  forger:\n"
    "    name: quotes\n"
    "    transport: bus\n"
    "    middleware: [ { type: auth, verify: false, hmac: { secret: another-secret-0123456 } } ]\n"
    "  unsigned: { name: quotes, transport: bus }\n";

TEST(Auth, HmacRejectsForgedAndUnsignedRequestsAndDeliveries) {
  auto rt = t::start_runtime(kHmacConfig, link);
  ASSERT_TRUE(rt);
  const auto before = auth::rejected("quotes");
  auto got = deliveries(*rt, "quotes", {"forger", "unsigned", "quotes"});
  EXPECT_EQ(got, (std::vector<std::string>{"from quotes"}));
  EXPECT_EQ(auth::rejected("quotes") - before, 2u);

  t::run(*rt, [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    int handled = 0;
    asio::co_spawn(ex,
                   rt->service("quotes").serve([&handled](Message m) -> awaitable<Message> {
                     ++handled;
                     co_return Message("42");
                   }),
                   asio::detached);
    asio::steady_timer timer(ex);
    Message reply;
    for (int i = 0; i < 2000; ++i) {  // until the handler is registered
      bool answered = false;
      try {
        reply = co_await rt->service("quotes").request(Message("ACME"), 10s);
        answered = true;
      } catch (const boost::system::system_error& e) {
        if (e.code() != patchbay::errc::no_responders) throw;
      }
      if (answered) break;
      timer.expires_after(5ms);
      co_await timer.async_wait(asio::use_awaitable_t<patchbay::executor>{});
    }
    EXPECT_EQ(reply.payload.view(), "42");
    for (const char* who : {"forger", "unsigned"}) {
      std::string error;
      try {
        co_await rt->service(who).request(Message("ACME"), 10s);
      } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), patchbay::errc::remote_error) << who;
        error = e.what();
      }
      EXPECT_NE(error.find("unauthenticated"), std::string::npos) << who << ": " << error;
    }
    EXPECT_EQ(handled, 1);
  });
  EXPECT_EQ(auth::rejected("quotes") - before, 4u);
  t::stop(rt);
}

TEST(Auth, SignatureCoversTopicIdAndPayload) {
  Message m("payload");
  m.id = "id-1";
  const auto sig = auth::hmac_signature("0123456789abcdef", "orders", m);
  EXPECT_EQ(sig.rfind("sha256=", 0), 0u);
  EXPECT_EQ(sig.size(), 7u + 64u);
  EXPECT_NE(sig, auth::hmac_signature("0123456789abcdef", "other", m));
  Message changed("payloaD");
  changed.id = "id-1";
  EXPECT_NE(sig, auth::hmac_signature("0123456789abcdef", "orders", changed));
  m.headers.add("x-added-later", "1");
  EXPECT_EQ(sig, auth::hmac_signature("0123456789abcdef", "orders", m));
}

TEST(Auth, BadSettingsAreReported) {
  const std::string head = "transports: { bus: { type: inproc } }\nbindings:\n  b:\n    transport: bus\n    middleware:\n";
  auto both = t::create_error(head + "      - { type: auth, tokens: [a], hmac: { secret: 0123456789abcdef } }\n", link);
  EXPECT_NE(both.find("not both"), std::string::npos) << both;
  auto short_secret = t::create_error(head + "      - { type: auth, hmac: { secret: short } }\n", link);
  EXPECT_NE(short_secret.find("at least 16 bytes"), std::string::npos) << short_secret;
  auto none = t::create_error(head + "      - { type: auth }\n", link);
  EXPECT_NE(none.find("no accepted token"), std::string::npos) << none;
  auto missing_file = t::create_error(head + "      - { type: auth, token_file: /nonexistent/tokens }\n", link);
  EXPECT_NE(missing_file.find("cannot read token file"), std::string::npos) << missing_file;
  EXPECT_NE(missing_file.find("<string>:6:"), std::string::npos) << missing_file;
}

}  // namespace
