// The `webhook` receiver against signed requests this test makes itself (the module, loaded
// through config `plugins:`): every 401 case delivers nothing; ack → 204, nack → 503 and the
// retry is marked redelivered, nack(false) → 202; a replayed webhook-id → 200 without a second
// delivery; rotated secrets; no subscriber → 503; an ended subscription → 410; stop → 503.
#include <patchbay/conformance/test_support.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/webhook_signature.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>

namespace {

using namespace patchbay;
using namespace patchbay::conformance;
using namespace std::chrono_literals;
namespace wh = patchbay::http::webhook;
namespace bhttp = boost::beast::http;

// Two secrets: the receiver accepts both (a rotation in progress).
constexpr const char* kOld = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char* kNew = "whsec_c2Vjb25kIHNlY3JldCBmb3IgdGhlIHJvdGF0aW9uIHRlc3Q=";

unsigned free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct Receiver {
  std::string base;
  Instance inst;
  std::unique_ptr<http::Client> client;

  Receiver() {
    const auto port = std::to_string(free_port());
    base = "http://127.0.0.1:" + port + "/webhooks/";
    auto made = from_config(std::string("plugins: [") + PATCHBAY_WEBHOOK_MODULE + "]\n" + R"(
default_transport: hooks
transports:
  hooks:
    type: webhook
    listen: 127.0.0.1:)" + port + R"(
    secrets: [)" + kOld + ", " + kNew + R"(]
    tolerance: 5m
    limits: { request_timeout: 60s, body_limit: 8388608 }
)");
    if (!made.ok()) throw std::runtime_error(std::string(made.status().message()));
    inst = *std::move(made);
    client = std::make_unique<http::Client>(inst.ex);
  }
  ~Receiver() {
    client.reset();
    if (inst.shutdown) inst.shutdown();
  }
};

/// A delivery request as a Standard Webhooks sender makes it.
http::Request signed_request(std::string_view id, std::string body, const char* secret = kOld,
                             std::int64_t ts = now_s()) {
  http::Request req{bhttp::verb::post, "/", 11};
  const std::vector<wh::Secret> secrets{*wh::Secret::parse(secret)};
  req.set(wh::kIdField, id);
  req.set(wh::kTimestampField, std::to_string(ts));
  req.set(wh::kSignatureField, wh::signature_header(secrets, id, ts, body));
  req.set(bhttp::field::content_type, "application/json");
  req.set("x-custom", "value");
  req.body() = std::move(body);
  return req;
}

struct Answer {
  std::atomic<unsigned> status{0};
  std::string body;
};

awaitable<void> post(http::Client* client, std::string url, http::Request req, std::shared_ptr<Answer> answer) {
  try {
    auto res = co_await client->request(url, std::move(req), clock::now() + 60s);
    answer->body = res.body();
    answer->status = res.result_int();
  } catch (const std::exception& e) {
    answer->body = e.what();
    answer->status = 1;
  }
}

/// Sends `req` from a coroutine of its own (the receiver holds it until the Delivery is settled).
std::shared_ptr<Answer> send(Receiver& r, std::string url, http::Request req) {
  auto answer = std::make_shared<Answer>();
  asio::co_spawn(r.inst.fresh(), post(r.client.get(), std::move(url), std::move(req), answer), asio::detached);
  return answer;
}

awaitable<unsigned> wait_for(std::shared_ptr<Answer> a) {
  co_await eventually([&] { return a->status.load() != 0; }, 60s);
  co_return a->status.load();
}

TEST(WebhookReceiver, AckAnswers204AndCarriesTheMessage) {
  Receiver r;
  run(r.inst, [&]() -> awaitable<void> {
    auto sub = co_await r.inst.transport->subscribe("orders");
    auto a = send(r, r.base + "orders", signed_request("msg_1", R"({"n":1})"));
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d.has_value());
    if (!d) co_return;
    EXPECT_EQ(d->message().payload.view(), R"({"n":1})");
    EXPECT_EQ(d->message().id, "msg_1");
    EXPECT_EQ(d->message().topic, "orders");
    EXPECT_FALSE(d->redelivered());
    EXPECT_EQ(d->message().headers.get("x-custom"), "value");
    EXPECT_EQ(d->message().headers.get("Content-Type"), "application/json");
    for (const auto& [k, v] : d->message().headers) {
      EXPECT_NE(k.rfind("webhook-", 0), 0u) << k << " leaked into the message headers";
    }
    // Held until settled.
    co_await sleep_for(100ms);
    EXPECT_EQ(a->status.load(), 0u) << "answered before the Delivery was settled";
    d->ack();
    EXPECT_EQ(co_await wait_for(a), 204u) << a->body;
  });
}

TEST(WebhookReceiver, ReplayedIdIsAnswered200WithoutASecondDelivery) {
  Receiver r;
  run(r.inst, [&]() -> awaitable<void> {
    auto sub = co_await r.inst.transport->subscribe("orders");
    auto req = signed_request("msg_replay", "once");
    auto copy = req;
    auto a = send(r, r.base + "orders", std::move(req));
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d.has_value());
    if (!d) co_return;
    d->ack();
    EXPECT_EQ(co_await wait_for(a), 204u);
    // The very same request again (a captured one), and a fresh signature over the same id.
    auto again = send(r, r.base + "orders", std::move(copy));
    EXPECT_EQ(co_await wait_for(again), 200u) << again->body;
    EXPECT_NE(again->body.find("already processed"), std::string::npos) << again->body;
    auto fresh = send(r, r.base + "orders", signed_request("msg_replay", "once", kNew));
    EXPECT_EQ(co_await wait_for(fresh), 200u) << fresh->body;
    auto extra = co_await next_within(sub, 300ms);
    EXPECT_FALSE(extra.has_value()) << "a replayed webhook-id was delivered again";
  });
}

TEST(WebhookReceiver, NackAnswers503AndTheRetryIsRedelivered) {
  Receiver r;
  run(r.inst, [&]() -> awaitable<void> {
    auto sub = co_await r.inst.transport->subscribe("orders");
    auto a = send(r, r.base + "orders", signed_request("msg_nack", "retry me"));
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d.has_value());
    if (!d) co_return;
    d->nack(true);
    EXPECT_EQ(co_await wait_for(a), 503u) << a->body;
    // The sender retries: same id, new timestamp and signature.
    auto b = send(r, r.base + "orders", signed_request("msg_nack", "retry me", kOld, now_s() + 1));
    auto again = co_await next_within(sub);
    EXPECT_TRUE(again.has_value());
    if (!again) co_return;
    EXPECT_EQ(again->message().id, "msg_nack");
    EXPECT_TRUE(again->redelivered());
    again->ack();
    EXPECT_EQ(co_await wait_for(b), 204u) << b->body;

    // A Delivery dropped without a decision is a nack; nack(false) drops the message (202).
    auto c = send(r, r.base + "orders", signed_request("msg_unsettled", "x"));
    { auto dropped = co_await next_within(sub); EXPECT_TRUE(dropped.has_value()); }
    EXPECT_EQ(co_await wait_for(c), 503u) << c->body;
    auto e = send(r, r.base + "orders", signed_request("msg_drop", "x"));
    auto give_up = co_await next_within(sub);
    EXPECT_TRUE(give_up.has_value());
    if (give_up) give_up->nack(false);
    EXPECT_EQ(co_await wait_for(e), 202u) << e->body;
  });
}

TEST(WebhookReceiver, BinaryEmptyAndLargeBodiesArriveByteForByte) {
  Receiver r;
  run(r.inst, [&]() -> awaitable<void> {
    auto sub = co_await r.inst.transport->subscribe("blobs");
    std::vector<std::string> bodies;
    std::string all(256, '\0');
    for (int i = 0; i < 256; ++i) all[i] = static_cast<char>(i);
    bodies.push_back(all);
    bodies.push_back("");
    bodies.push_back(std::string("\0\0\0", 3));
    std::string large(4u << 20, '\0');
    for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>((i * 131 + i / 256) & 0xff);
    bodies.push_back(std::move(large));
    for (std::size_t i = 0; i < bodies.size(); ++i) {
      auto req = signed_request("blob-" + std::to_string(i), bodies[i]);
      req.erase(bhttp::field::content_type);
      auto a = send(r, r.base + "blobs", std::move(req));
      auto d = co_await next_within(sub);
      EXPECT_TRUE(d.has_value()) << "body " << i;
      if (!d) co_return;
      EXPECT_EQ(d->message().payload.size(), bodies[i].size()) << "body " << i;
      EXPECT_TRUE(d->message().payload.view() == bodies[i]) << "body " << i << " differs";
      d->ack();
      EXPECT_EQ(co_await wait_for(a), 204u) << a->body;
    }
  });
}

TEST(WebhookReceiver, UnauthenticatedRequestsGet401AndDeliverNothing) {
  Receiver r;
  run(r.inst, [&]() -> awaitable<void> {
    auto sub = co_await r.inst.transport->subscribe("orders");
    struct Case {
      const char* what;
      http::Request req;
      const char* reason;
    };
    std::vector<Case> cases;
    {
      auto req = signed_request("m1", "body");
      req.erase(wh::kSignatureField);
      cases.push_back({"no signature", std::move(req), "missing"});
    }
    {
      auto req = signed_request("m1", "body");
      req.erase(wh::kIdField);
      cases.push_back({"no id", std::move(req), "missing"});
    }
    {
      auto req = signed_request("m1", "body");
      req.erase(wh::kTimestampField);
      cases.push_back({"no timestamp", std::move(req), "missing"});
    }
    {
      auto req = signed_request("m1", "body");
      req.set(wh::kSignatureField, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
      cases.push_back({"malformed signature", std::move(req), "malformed"});
    }
    {
      auto req = signed_request("m1", "body", "whsec_d3Jvbmcgc2VjcmV0IGVudGlyZWx5");
      cases.push_back({"wrong secret", std::move(req), "no signature matches"});
    }
    {
      auto req = signed_request("m1", "body");
      req.body() = "bodY";
      cases.push_back({"tampered body", std::move(req), "no signature matches"});
    }
    {
      auto req = signed_request("m1", "body");
      req.set(wh::kIdField, "m2");
      cases.push_back({"tampered id", std::move(req), "no signature matches"});
    }
    {
      auto req = signed_request("m1", "body");
      req.set(wh::kTimestampField, std::to_string(now_s() - 1));
      cases.push_back({"tampered timestamp", std::move(req), "no signature matches"});
    }
    {
      auto req = signed_request("m1", "body", kOld, now_s() - 600);
      cases.push_back({"expired", std::move(req), "outside the tolerance"});
    }
    {
      auto req = signed_request("m1", "body", kOld, now_s() + 600);
      cases.push_back({"from the future", std::move(req), "outside the tolerance"});
    }
    {
      auto req = signed_request("m1", "body");
      req.set(wh::kTimestampField, "soon");
      cases.push_back({"timestamp not a number", std::move(req), "not a number"});
    }
    for (auto& c : cases) {
      auto a = send(r, r.base + "orders", std::move(c.req));
      EXPECT_EQ(co_await wait_for(a), 401u) << c.what << ": " << a->body;
      EXPECT_NE(a->body.find(c.reason), std::string::npos) << c.what << ": " << a->body;
    }
    auto d = co_await next_within(sub, 300ms);
    EXPECT_FALSE(d.has_value()) << "an unauthenticated request was delivered";
    // The same id, properly signed, is then delivered: the refusals recorded nothing.
    auto ok = send(r, r.base + "orders", signed_request("m1", "body", kNew));
    auto good = co_await next_within(sub);
    EXPECT_TRUE(good.has_value());
    if (good) {
      EXPECT_FALSE(good->redelivered());
      good->ack();
    }
    EXPECT_EQ(co_await wait_for(ok), 204u) << ok->body;
  });
}

TEST(WebhookReceiver, NoSubscriberUnknownSubscriptionAndConcurrentDuplicate) {
  Receiver r;
  run(r.inst, [&]() -> awaitable<void> {
    auto none = send(r, r.base + "nobody-listens", signed_request("m1", "x"));
    EXPECT_EQ(co_await wait_for(none), 503u) << none->body;
    auto gone = send(r, r.base + "orders/sub-that-never-was", signed_request("m1", "x"));
    EXPECT_EQ(co_await wait_for(gone), 410u) << gone->body;

    auto sub = co_await r.inst.transport->subscribe("orders");
    auto first = send(r, r.base + "orders", signed_request("dup", "x"));
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d.has_value());
    // A retry while the first attempt is still being processed.
    auto second = send(r, r.base + "orders", signed_request("dup", "x", kOld, now_s() + 1));
    EXPECT_EQ(co_await wait_for(second), 503u) << second->body;
    if (d) d->ack();
    EXPECT_EQ(co_await wait_for(first), 204u) << first->body;
  });
}

TEST(WebhookReceiver, FanOutToEverySubscriptionOfTheTopic) {
  Receiver r;
  run(r.inst, [&]() -> awaitable<void> {
    auto one = co_await r.inst.transport->subscribe("orders");
    auto two = co_await r.inst.transport->subscribe("orders");
    auto a = send(r, r.base + "orders", signed_request("fan", "x"));
    auto d1 = co_await next_within(one);
    auto d2 = co_await next_within(two);
    EXPECT_TRUE(d1 && d2);
    if (!d1 || !d2) co_return;
    d1->ack();
    d2->nack(true);
    EXPECT_EQ(co_await wait_for(a), 503u);
    // The retry goes only to the subscription that did not process it.
    auto b = send(r, r.base + "orders", signed_request("fan", "x", kOld, now_s() + 1));
    auto again = co_await next_within(two);
    EXPECT_TRUE(again.has_value());
    if (again) {
      EXPECT_TRUE(again->redelivered());
      again->ack();
    }
    EXPECT_EQ(co_await wait_for(b), 204u) << b->body;
    auto extra = co_await next_within(one, 300ms);
    EXPECT_FALSE(extra.has_value()) << "the subscription that acked got the retry";
  });
}

TEST(WebhookReceiver, StopAnswersHeldRequests503) {
  Receiver r;
  run(r.inst, [&]() -> awaitable<void> {
    auto sub = co_await r.inst.transport->subscribe("orders");
    auto a = send(r, r.base + "orders", signed_request("held", "x"));
    auto d = co_await next_within(sub);
    EXPECT_TRUE(d.has_value());
    co_await r.inst.transport->stop();
    EXPECT_EQ(co_await wait_for(a), 503u) << a->body;
    auto end = co_await next_within(sub, 1s);
    EXPECT_FALSE(end.has_value());
    bool refused = false;
    try {
      co_await r.inst.transport->subscribe("orders");
    } catch (const boost::system::system_error& e) {
      refused = e.code() == errc::stopped;
    }
    EXPECT_TRUE(refused);
  });
}

TEST(WebhookReceiver, ConfigErrorsNameTheKey) {
  auto bad = [](const std::string& body) {
    auto made = from_config(std::string("plugins: [") + PATCHBAY_WEBHOOK_MODULE + "]\n" +
                            "default_transport: hooks\ntransports:\n  hooks:\n    type: webhook\n" + body);
    return made.ok() ? std::string("accepted") : std::string(made.status().message());
  };
  EXPECT_NE(bad("    listen: 127.0.0.1:0\n").find("secrets"), std::string::npos);
  EXPECT_NE(bad("    listen: 127.0.0.1:0\n    secrets: [whsec_!!]\n").find("base64"), std::string::npos);
  EXPECT_NE(bad("    listen: 127.0.0.1:0\n    secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]\n    path: hooks\n")
                .find("path"),
            std::string::npos);
  EXPECT_NE(bad("    listen: 127.0.0.1:0\n    secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]\n    api_token: x\n")
                .find("needs url"),
            std::string::npos);
  EXPECT_NE(bad("    listen: 0.0.0.0:0\n    url: http://127.0.0.1:1\n").find("public_url"), std::string::npos);
}

}  // namespace
