// Tests of the hub's long and short polling endpoints over real sockets:
//   GET /topics/{topic}/poll?after=P&wait=S[&limit=N][&from=earliest]
//   GET /topics/{topic}/messages?after=P[&limit=N][&from=earliest]
// the JSON answer and its `next`, holding until a publish or the end of the wait, the wait
// clamped to max_wait, limits, ETag / If-None-Match → 304, gaps (history trimmed, foreign
// epoch), bad input (400 with a reason), CORS, 404 and 503, held polls answered when the hub
// stops, and a publisher racing the poll loop with nothing lost or read twice.
#include <patchbay/http/hub.hpp>

#include <patchbay/http/server.hpp>
#include <patchbay/http/sse.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <future>
#include <optional>
#include <thread>

namespace patchbay::http {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
namespace json = boost::json;

struct Answer {
  unsigned status = 0;
  Response res;
  json::value body;  // parsed when the body is JSON
  std::string header(bhttp::field f) const {
    auto v = res[f];
    return std::string(v.data(), v.size());
  }
  std::vector<std::string> payloads() const {
    std::vector<std::string> out;
    for (const auto& m : body.at("messages").as_array()) out.emplace_back(m.at("payload").as_string());
    return out;
  }
  std::string next() const { return std::string(body.at("next").as_string()); }
};

class HubPoll : public ::testing::Test {
 protected:
  void start(HubOptions options) {
    auto s = Server::create(io_.get_executor(), ServerOptions());
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *s;
    options.heartbeat = duration::zero();
    hub_ = Hub::create(io_.get_executor(), std::move(options));
    hub_->mount(*server_);
    server_->start();
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) {
      hub_->stop();
      std::promise<void> done;
      asio::co_spawn(io_, server_->stop(), [&](std::exception_ptr) { done.set_value(); });
      done.get_future().wait();
    }
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  tcp::socket connect() {
    tcp::socket s(client_io_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    timeval tv{60, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return s;
  }

  /// One request on `socket` (kept alive), its answer read whole.
  static Answer exchange(tcp::socket& socket, const std::string& target, const std::string& if_none_match = "") {
    Request req{bhttp::verb::get, target, 11};
    req.set(bhttp::field::host, "x");
    if (!if_none_match.empty()) req.set(bhttp::field::if_none_match, if_none_match);
    bhttp::write(socket, req);
    boost::beast::flat_buffer buffer;
    Answer a;
    bhttp::read(socket, buffer, a.res);
    a.status = a.res.result_int();
    if (a.header(bhttp::field::content_type) == "application/json") a.body = json::parse(a.res.body());
    return a;
  }

  Answer get(const std::string& target, const std::string& if_none_match = "") {
    auto s = connect();
    return exchange(s, target, if_none_match);
  }

  void wait_for(const std::function<bool()>& condition) {
    for (int i = 0; i < 60'000 && !condition(); ++i) std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(condition());
  }

  asio::io_context io_{2};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{io_.get_executor()};
  asio::io_context client_io_;
  std::vector<std::thread> threads_;
  std::shared_ptr<Server> server_;
  std::shared_ptr<Hub> hub_;
};

HubOptions with_topics(std::vector<std::string> topics) {
  HubOptions o;
  o.topics = std::move(topics);
  return o;
}

// Hub::peek reads what a cursor opened at the same position reads, and stands where it would.
TEST(HubPeek, ReadsWhatACursorWouldAndTellsWhereItStands) {
  asio::io_context io;
  HubOptions o;
  o.history = 4;
  o.heartbeat = duration::zero();
  auto hub = Hub::create(io.get_executor(), o);
  hub->declare("t");
  std::string next;
  auto empty = hub->peek("t", Position::latest(), UnknownPosition::from_earliest, false, 10, next);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->entries.empty());
  EXPECT_TRUE(next.ends_with(":0"));
  std::vector<std::string> pos;
  for (int i = 0; i < 10; ++i) pos.push_back(hub->publish("t", Message("m" + std::to_string(i))));
  const std::string epoch = pos[0].substr(0, pos[0].find(':'));
  for (const Position& from : {Position::latest(), Position::earliest(), Position::after(pos[0]), Position::after(pos[7]),
                               Position::after(pos[9]), Position::after("garbage"), Position::after(epoch + ":99"),
                               Position::after("1:1")}) {
    for (std::size_t max : {std::size_t(1), std::size_t(3), std::size_t(100)}) {
      std::string peeked;
      auto a = hub->peek("t", from, UnknownPosition::from_earliest, false, max, peeked);
      auto cursor = hub->open("t", from, UnknownPosition::from_earliest, false);
      auto b = cursor->read(max);
      ASSERT_TRUE(a);
      EXPECT_EQ(a->gap.has_value(), b.gap.has_value()) << from.to_string();
      if (a->gap && b.gap) {
        EXPECT_EQ(a->gap->missed, b.gap->missed);
        EXPECT_EQ(a->gap->reason, b.gap->reason);
        EXPECT_EQ(a->gap->last_seen, b.gap->last_seen);
        EXPECT_EQ(a->gap->resumes_at, b.gap->resumes_at);
      }
      ASSERT_EQ(a->entries.size(), b.entries.size()) << from.to_string() << " max " << max;
      for (std::size_t i = 0; i < a->entries.size(); ++i) EXPECT_EQ(a->entries[i]->position, b.entries[i]->position);
      EXPECT_EQ(peeked, cursor->next_position()) << from.to_string() << " max " << max;
    }
  }
  EXPECT_FALSE(hub->peek("unknown", Position::latest(), UnknownPosition::from_earliest, false, 1, next));
  EXPECT_TRUE(hub->peek("created", Position::latest(), UnknownPosition::from_earliest, true, 1, next));
  hub->stop();
  auto stopped = hub->peek("t", Position::latest(), UnknownPosition::from_earliest, false, 1, next);
  ASSERT_TRUE(stopped);
  EXPECT_TRUE(stopped->closed);
}

TEST_F(HubPoll, LongPollAnswersAtOnceWithWhatFollowsThePosition) {
  start(with_topics({"t"}));
  std::vector<std::string> pos;
  for (int i = 0; i < 3; ++i) pos.push_back(hub_->publish("t", Message("m" + std::to_string(i))));
  auto a = get("/topics/t/poll?after=" + pos[0] + "&wait=30");
  ASSERT_EQ(a.status, 200u) << a.res;
  EXPECT_EQ(a.payloads(), (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(a.next(), pos[2]);
  const auto& m = a.body.at("messages").as_array()[0].as_object();
  EXPECT_EQ(m.begin()->key(), "position") << "position comes first";
  EXPECT_EQ(m.at("position").as_string(), pos[1]);
  EXPECT_FALSE(m.at("id").as_string().empty());
  EXPECT_FALSE(a.body.as_object().contains("gap"));
  EXPECT_EQ(a.header(bhttp::field::cache_control), "no-cache");
  // Each message object is the envelope object: sse's decoder reads it back.
  auto decoded = sse::decode_envelope_json(json::serialize(m));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->payload.str(), "m1");
}

TEST_F(HubPoll, WithoutAfterStartsFromNowAndNextIsAlwaysValid) {
  start(with_topics({"t"}));
  hub_->publish("t", Message("old"));
  auto first = get("/topics/t/poll?wait=0");
  ASSERT_EQ(first.status, 200u);
  EXPECT_TRUE(first.payloads().empty());
  // Published between two polls: the next poll reads it.
  hub_->publish("t", Message("new"));
  auto second = get("/topics/t/poll?wait=30&after=" + first.next());
  EXPECT_EQ(second.payloads(), std::vector<std::string>{"new"});
  // An empty topic: next names the position before its first message.
  hub_->declare("empty");
  auto empty = get("/topics/empty/messages");
  ASSERT_EQ(empty.status, 200u);
  EXPECT_TRUE(empty.payloads().empty());
  EXPECT_TRUE(empty.next().ends_with(":0")) << empty.next();
  hub_->publish("empty", Message("a"));
  EXPECT_EQ(get("/topics/empty/messages?after=" + empty.next()).payloads(), std::vector<std::string>{"a"});
  // from=earliest: everything held.
  EXPECT_EQ(get("/topics/t/messages?from=earliest").payloads(), (std::vector<std::string>{"old", "new"}));
  EXPECT_EQ(get("/topics/t/poll?from=earliest&wait=0").payloads(), (std::vector<std::string>{"old", "new"}));
}

TEST_F(HubPoll, LongPollHoldsUntilAPublish) {
  start(with_topics({"t"}));
  auto start_at = get("/topics/t/messages").next();
  auto held = std::async(std::launch::async, [&] { return get("/topics/t/poll?wait=60&after=" + start_at); });
  wait_for([&] { return hub_->held_polls() == 1; });
  hub_->publish("t", Message("wake"));
  auto a = held.get();
  ASSERT_EQ(a.status, 200u);
  EXPECT_EQ(a.payloads(), std::vector<std::string>{"wake"});
  wait_for([&] { return hub_->held_polls() == 0; });
}

TEST_F(HubPoll, AnEndedWaitAnswersEmptyAndKeepsThePosition) {
  start(with_topics({"t"}));
  auto p = hub_->publish("t", Message("x"));
  auto s = connect();
  auto a = exchange(s, "/topics/t/poll?wait=0.2&after=" + p);
  ASSERT_EQ(a.status, 200u);
  EXPECT_TRUE(a.payloads().empty());
  EXPECT_EQ(a.next(), p);
  EXPECT_TRUE(a.res.keep_alive());
  // The same connection serves the next poll.
  hub_->publish("t", Message("y"));
  auto b = exchange(s, "/topics/t/poll?wait=0.2&after=" + a.next());
  EXPECT_EQ(b.payloads(), std::vector<std::string>{"y"});
}

TEST_F(HubPoll, AWaitAboveTheMaximumIsClamped) {
  HubOptions o = with_topics({"t"});
  o.poll.max_wait = 200ms;
  start(o);
  // Not clamped, this would hold for a day and the read would time out after 60 s.
  auto a = get("/topics/t/poll?wait=86400");
  ASSERT_EQ(a.status, 200u);
  EXPECT_TRUE(a.payloads().empty());
  auto b = get("/topics/t/poll?wait=1e400");
  EXPECT_EQ(b.status, 400u) << "only plain decimals";
  auto c = get("/topics/t/poll?wait=99999999999999999999999999999");
  EXPECT_EQ(c.status, 200u);
}

TEST_F(HubPoll, DefaultWaitApplies) {
  HubOptions o = with_topics({"t"});
  o.poll.default_wait = 100ms;
  start(o);
  auto a = get("/topics/t/poll");
  ASSERT_EQ(a.status, 200u);
  EXPECT_TRUE(a.payloads().empty());
}

TEST_F(HubPoll, BadInputGetsA400WithAReason) {
  HubOptions o = with_topics({"t"});
  o.cors_origin = "*";
  start(o);
  hub_->publish("t", Message("x"));
  for (std::string endpoint : {"/topics/t/poll?wait=0&", "/topics/t/messages?"}) {
    for (std::string query : {"after=garbage", "after=-1:5", "after=1:-5", "after=-3", "after=5", "after=", "after=1:",
                              "after=:1", "after=1:2:3", "after=99999999999999999999999:1", "after=1%3A2x",
                              "limit=-1", "limit=0", "limit=x", "limit=", "limit=1.5", "from=middle"}) {
      auto a = get(endpoint + query);
      EXPECT_EQ(a.status, 400u) << endpoint << query;
      EXPECT_FALSE(a.res.body().empty()) << endpoint << query;
      EXPECT_EQ(a.header(bhttp::field::access_control_allow_origin), "*");
    }
  }
  for (std::string query : {"wait=-1", "wait=abc", "wait=", "wait=nan", "wait=1s", "wait=-0.5"}) {
    auto a = get("/topics/t/poll?" + query);
    EXPECT_EQ(a.status, 400u) << query;
    EXPECT_NE(a.res.body().find("wait"), std::string::npos) << a.res.body();
  }
  EXPECT_NE(get("/topics/t/poll?after=-1:5").res.body().find("negative"), std::string::npos);
  EXPECT_NE(get("/topics/t/poll?limit=-2").res.body().find("negative"), std::string::npos);
}

TEST_F(HubPoll, LimitBoundsTheBatchAndIsClampedToMaxBatch) {
  HubOptions o = with_topics({"t"});
  o.poll.max_batch = 4;
  start(o);
  std::vector<std::string> pos;
  for (int i = 0; i < 10; ++i) pos.push_back(hub_->publish("t", Message("m" + std::to_string(i))));
  auto a = get("/topics/t/messages?from=earliest&limit=3");
  EXPECT_EQ(a.payloads(), (std::vector<std::string>{"m0", "m1", "m2"}));
  EXPECT_EQ(a.next(), pos[2]);
  auto b = get("/topics/t/poll?wait=5&limit=100000&after=" + a.next());
  EXPECT_EQ(b.payloads(), (std::vector<std::string>{"m3", "m4", "m5", "m6"}));
  auto c = get("/topics/t/poll?wait=5&limit=99999999999999999999999&after=" + b.next());
  EXPECT_EQ(c.payloads().size(), 3u);
  EXPECT_EQ(c.next(), pos[9]);
}

TEST_F(HubPoll, ShortPollGivesAnETagAnd304WhenNothingIsNew) {
  HubOptions o = with_topics({"t"});
  o.cors_origin = "https://app.example";
  start(o);
  auto s = connect();
  auto a = exchange(s, "/topics/t/messages");
  ASSERT_EQ(a.status, 200u);
  const auto etag = a.header(bhttp::field::etag);
  EXPECT_EQ(etag, "\"" + a.next() + "\"");
  EXPECT_EQ(a.header(bhttp::field::access_control_expose_headers), "ETag");

  auto same = exchange(s, "/topics/t/messages?after=" + a.next(), etag);
  EXPECT_EQ(same.status, 304u);
  EXPECT_TRUE(same.res.body().empty());
  EXPECT_EQ(same.header(bhttp::field::etag), etag);
  EXPECT_EQ(same.header(bhttp::field::access_control_allow_origin), "https://app.example");
  EXPECT_EQ(exchange(s, "/topics/t/messages?after=" + a.next(), "W/" + etag).status, 304u);
  EXPECT_EQ(exchange(s, "/topics/t/messages?after=" + a.next(), "\"x\", " + etag).status, 304u);
  EXPECT_EQ(exchange(s, "/topics/t/messages?after=" + a.next(), "*").status, 304u);
  EXPECT_EQ(exchange(s, "/topics/t/messages?after=" + a.next(), "\"other\"").status, 200u);

  hub_->publish("t", Message("new"));
  auto changed = exchange(s, "/topics/t/messages?after=" + a.next(), etag);
  ASSERT_EQ(changed.status, 200u);
  EXPECT_EQ(changed.payloads(), std::vector<std::string>{"new"});
  EXPECT_NE(changed.header(bhttp::field::etag), etag);
  EXPECT_EQ(exchange(s, "/topics/t/messages?after=" + changed.next(), changed.header(bhttp::field::etag)).status,
            304u);
}

TEST_F(HubPoll, AGapTellsWhenTheCursorFellBehindTheRing) {
  HubOptions o = with_topics({"t"});
  o.history = 4;
  start(o);
  std::vector<std::string> pos;
  for (int i = 0; i < 10; ++i) pos.push_back(hub_->publish("t", Message("m" + std::to_string(i))));
  for (std::string endpoint : {"/topics/t/poll?wait=5&after=", "/topics/t/messages?after="}) {
    auto a = get(endpoint + pos[1]);
    ASSERT_EQ(a.status, 200u);
    ASSERT_TRUE(a.body.as_object().contains("gap")) << a.res.body();
    auto gap = sse::decode_gap_json(json::serialize(a.body.at("gap")));
    ASSERT_TRUE(gap);
    EXPECT_EQ(gap->missed, 4u);  // m2..m5 are gone, m6..m9 remain
    EXPECT_EQ(gap->reason, "history trimmed");
    EXPECT_EQ(gap->last_seen, Position::after(pos[1]));
    EXPECT_EQ(a.payloads(), (std::vector<std::string>{"m6", "m7", "m8", "m9"}));
    EXPECT_EQ(a.next(), pos[9]);
  }
  // A short poll with a gap is never a 304, whatever the validator.
  auto etag = "\"" + pos[9] + "\"";
  EXPECT_EQ(get("/topics/t/messages?limit=1&after=" + pos[1], etag).status, 200u);
}

TEST_F(HubPoll, AForeignEpochGivesAGapAndEverythingHeld) {
  start(with_topics({"t"}));
  auto p0 = hub_->publish("t", Message("a"));
  hub_->publish("t", Message("b"));
  const auto epoch = p0.substr(0, p0.find(':'));
  const std::string foreign = (epoch == "7" ? "8" : "7") + std::string(":1");
  auto a = get("/topics/t/poll?wait=5&after=" + foreign);
  ASSERT_EQ(a.status, 200u);
  ASSERT_TRUE(a.body.as_object().contains("gap"));
  auto gap = sse::decode_gap_json(json::serialize(a.body.at("gap")));
  ASSERT_TRUE(gap);
  EXPECT_EQ(gap->reason, "epoch changed");
  EXPECT_EQ(gap->last_seen, Position::after(foreign));
  EXPECT_EQ(a.payloads(), (std::vector<std::string>{"a", "b"}));
  // Not reached yet (same epoch, a sequence from the future): the same.
  auto future = get("/topics/t/messages?after=" + epoch + ":999");
  ASSERT_TRUE(future.body.as_object().contains("gap"));
  EXPECT_EQ(future.payloads().size(), 2u);
}

TEST_F(HubPoll, UnknownTopics404StoppedHub503AndCorsOnEveryAnswer) {
  HubOptions o = with_topics({"t"});
  o.cors_origin = "*";
  start(o);
  for (std::string target : {"/topics/nope/poll?wait=0", "/topics/nope/messages"}) {
    auto a = get(target);
    EXPECT_EQ(a.status, 404u) << target;
    EXPECT_EQ(a.header(bhttp::field::access_control_allow_origin), "*");
  }
  auto ok = get("/topics/t/poll?wait=0");
  EXPECT_EQ(ok.header(bhttp::field::access_control_allow_origin), "*");
  EXPECT_EQ(ok.header(bhttp::field::content_type), "application/json");
  hub_->stop();
  for (std::string target : {"/topics/t/poll?wait=0", "/topics/t/messages"}) {
    auto a = get(target);
    EXPECT_EQ(a.status, 503u) << target;
    EXPECT_EQ(a.header(bhttp::field::access_control_allow_origin), "*");
  }
}

TEST_F(HubPoll, OpenTopicsAreCreatedByAPoll) {
  HubOptions o;
  o.open_topics = true;
  start(o);
  EXPECT_EQ(get("/topics/fresh/poll?wait=0").status, 200u);
  EXPECT_TRUE(hub_->has_topic("fresh"));
}

TEST_F(HubPoll, HeldPollsAreAnsweredWhenTheHubStops) {
  start(with_topics({"t", "u"}));
  std::vector<std::future<Answer>> held;
  for (int i = 0; i < 20; ++i) {
    const std::string target = std::string("/topics/") + (i % 2 ? "t" : "u") + "/poll?wait=60";
    held.push_back(std::async(std::launch::async, [this, target] { return get(target); }));
  }
  wait_for([&] { return hub_->held_polls() == 20; });
  hub_->stop();
  for (auto& f : held) {
    auto a = f.get();
    EXPECT_EQ(a.status, 200u);
    EXPECT_TRUE(a.payloads().empty());
  }
  EXPECT_EQ(hub_->held_polls(), 0u);
}

// A publisher races polls that each end at a batch boundary (limit=3): every message is read
// once, in order — by long polls and by short polls.
TEST_F(HubPoll, APublisherRacingThePollLoopLosesAndRepeatsNothing) {
  HubOptions o = with_topics({"t"});
  o.history = 100'000;
  start(o);
  constexpr int n = 3000;
  for (std::string endpoint : {"/topics/t/poll?wait=5&limit=3&after=", "/topics/t/messages?limit=3&after="}) {
    auto s = connect();
    std::string next = exchange(s, "/topics/t/messages").next();
    std::thread publisher([this] {
      for (int i = 0; i < n; ++i) hub_->publish("t", Message(std::to_string(i)));
    });
    std::vector<int> got;
    for (int polls = 0; got.size() < static_cast<std::size_t>(n) && polls < 1'000'000; ++polls) {
      auto a = exchange(s, endpoint + next);
      ASSERT_EQ(a.status, 200u);
      ASSERT_FALSE(a.body.as_object().contains("gap"));
      for (const auto& p : a.payloads()) got.push_back(std::stoi(p));
      next = a.next();
    }
    publisher.join();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)], i) << endpoint;
  }
}

TEST_F(HubPoll, BinaryPayloadsAndHeadersTravelInTheEnvelope) {
  start(with_topics({"t"}));
  Message m(std::string("\x00\xff\x01", 3));
  m.headers.add("k", "v");
  hub_->publish("t", m);
  auto a = get("/topics/t/messages?from=earliest");
  const auto& obj = a.body.at("messages").as_array()[0];
  auto decoded = sse::decode_envelope_json(json::serialize(obj));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->payload.str(), std::string("\x00\xff\x01", 3));
  ASSERT_EQ(decoded->headers.size(), 1u);
  EXPECT_EQ(decoded->headers.begin()->first, "k");
}

}  // namespace
}  // namespace patchbay::http
