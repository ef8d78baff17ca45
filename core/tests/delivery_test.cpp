#include <patchbay/delivery.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace patchbay {
namespace {

/// Records every call it receives.
class RecordingAcker final : public Acknowledger {
 public:
  struct Call {
    enum { ack, nack } what;
    std::uint64_t tag;
    bool requeue;
    bool operator==(const Call&) const = default;
  };

  void ack(std::uint64_t tag) noexcept override {
    std::lock_guard lock(mutex_);
    calls_.push_back(Call{Call::ack, tag, false});
  }
  void nack(std::uint64_t tag, bool requeue) noexcept override {
    std::lock_guard lock(mutex_);
    calls_.push_back(Call{Call::nack, tag, requeue});
  }
  std::vector<Call> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Call> calls_;
};

using Call = RecordingAcker::Call;

Delivery make(const std::shared_ptr<RecordingAcker>& acker, std::uint64_t tag, std::string body = "m",
              bool redelivered = false) {
  return Delivery(Message(body), Position::after("t" + std::to_string(tag)), redelivered, acker, tag);
}

TEST(Delivery, TypeTraits) {
  static_assert(!std::is_copy_constructible_v<Delivery>);
  static_assert(!std::is_copy_assignable_v<Delivery>);
  static_assert(std::is_nothrow_move_constructible_v<Delivery>);
  static_assert(std::is_nothrow_move_assignable_v<Delivery>);
  SUCCEED();
}

TEST(Delivery, CarriesMessagePositionAndRedelivered) {
  auto acker = std::make_shared<RecordingAcker>();
  {
    Delivery d = make(acker, 7, "body", true);
    EXPECT_EQ(d.message().payload.view(), "body");
    EXPECT_EQ(d.position(), Position::after("t7"));
    EXPECT_TRUE(d.redelivered());
    EXPECT_FALSE(d.is_gap());
    EXPECT_FALSE(d.settled());
    d.message().headers.add("k", "v");  // mutable access
    EXPECT_EQ(*std::as_const(d).message().headers.get("k"), "v");
    d.ack();
  }
  Delivery fresh = make(acker, 8);
  EXPECT_FALSE(fresh.redelivered());
  fresh.ack();
}

TEST(Delivery, AckCallsAcknowledgerOnceWithTag) {
  auto acker = std::make_shared<RecordingAcker>();
  {
    Delivery d = make(acker, 42);
    d.ack();
    EXPECT_TRUE(d.settled());
    EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::ack, 42, false}}));
  }
  EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::ack, 42, false}})) << "destruction after ack settles nothing";
}

TEST(Delivery, NackCallsAcknowledgerOnceWithTagAndRequeue) {
  auto acker = std::make_shared<RecordingAcker>();
  {
    Delivery a = make(acker, 1);
    Delivery b = make(acker, 2);
    Delivery c = make(acker, 3);
    a.nack(false);
    b.nack(true);
    c.nack();  // default: requeue
  }
  EXPECT_EQ(acker->calls(),
            (std::vector<Call>{{Call::nack, 1, false}, {Call::nack, 2, true}, {Call::nack, 3, true}}));
}

TEST(Delivery, FirstDecisionWins) {
  auto acker = std::make_shared<RecordingAcker>();
  {
    Delivery d = make(acker, 5);
    d.ack();
    d.nack(false);
    d.nack(true);
    d.ack();
  }
  {
    Delivery d = make(acker, 6);
    d.nack(false);
    d.ack();
    d.nack(true);
  }
  EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::ack, 5, false}, {Call::nack, 6, false}}));
}

TEST(Delivery, DestroyedUnsettledIsNackedWithRequeue) {
  auto acker = std::make_shared<RecordingAcker>();
  { Delivery d = make(acker, 9); }
  EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::nack, 9, true}}));
}

TEST(Delivery, DestroyedUnsettledAfterThrowIsNacked) {
  auto acker = std::make_shared<RecordingAcker>();
  try {
    Delivery d = make(acker, 10);
    throw std::runtime_error("consumer failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::nack, 10, true}}));
}

TEST(Delivery, DeliveryKeepsAcknowledgerAlive) {
  std::weak_ptr<RecordingAcker> weak;
  std::vector<Call> seen;
  {
    auto acker = std::make_shared<RecordingAcker>();
    weak = acker;
    Delivery d = make(acker, 3);
    acker.reset();
    EXPECT_FALSE(weak.expired()) << "the delivery holds its acknowledger";
    auto keep = weak.lock();
    d.ack();
    seen = keep->calls();
  }
  EXPECT_TRUE(weak.expired()) << "a settled delivery lets go of the acknowledger";
  EXPECT_EQ(seen, (std::vector<Call>{{Call::ack, 3, false}}));
}

TEST(Delivery, MoveConstructedFromDoesNotSettle) {
  auto acker = std::make_shared<RecordingAcker>();
  {
    Delivery a = make(acker, 11, "payload");
    Delivery b(std::move(a));
    EXPECT_TRUE(a.settled()) << "a moved-from delivery has nothing to settle";  // NOLINT(bugprone-use-after-move)
    a.ack();   // a no-op on the moved-from one
    a.nack();  // likewise
    EXPECT_TRUE(acker->calls().empty());
    EXPECT_FALSE(b.settled());
    EXPECT_EQ(b.message().payload.view(), "payload");
    EXPECT_EQ(b.position(), Position::after("t11"));
  }
  EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::nack, 11, true}}))
      << "only the moved-to delivery settles, exactly once";
}

TEST(Delivery, MoveAssignmentSettlesTheOverwrittenOne) {
  auto acker = std::make_shared<RecordingAcker>();
  {
    Delivery target = make(acker, 1, "old");
    Delivery source = make(acker, 2, "new", true);
    target = std::move(source);
    EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::nack, 1, true}}))
        << "the unsettled delivery being overwritten is nacked with requeue";
    EXPECT_EQ(target.message().payload.view(), "new");
    EXPECT_EQ(target.position(), Position::after("t2"));
    EXPECT_TRUE(target.redelivered());
    EXPECT_FALSE(target.settled());
    EXPECT_TRUE(source.settled());  // NOLINT(bugprone-use-after-move)
    target.ack();
  }
  EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::nack, 1, true}, {Call::ack, 2, false}}));
}

TEST(Delivery, MoveAssignmentOverSettledOneCallsNothing) {
  auto acker = std::make_shared<RecordingAcker>();
  {
    Delivery target = make(acker, 1);
    target.ack();
    Delivery source = make(acker, 2);
    target = std::move(source);
  }
  EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::ack, 1, false}, {Call::nack, 2, true}}));
}

TEST(Delivery, SelfMoveAssignmentIsHarmless) {
  auto acker = std::make_shared<RecordingAcker>();
  {
    Delivery d = make(acker, 4);
    Delivery& alias = d;
    d = std::move(alias);
    EXPECT_FALSE(d.settled());
    EXPECT_TRUE(acker->calls().empty());
    d.ack();
  }
  EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::ack, 4, false}}));
}

TEST(Delivery, MoveAssignmentCarriesGap) {
  auto acker = std::make_shared<RecordingAcker>();
  Delivery target = make(acker, 1);
  Gap g;
  g.missed = 3;
  g.reason = "history trimmed";
  target = Delivery::gap(g);
  EXPECT_TRUE(target.is_gap());
  EXPECT_EQ(target.gap().missed, 3u);
  EXPECT_EQ(acker->calls(), (std::vector<Call>{{Call::nack, 1, true}}));

  target = make(acker, 2);
  EXPECT_FALSE(target.is_gap()) << "assigning a message delivery over a gap clears the gap";
  target.ack();
}

TEST(Delivery, GapNeedsNoSettling) {
  Gap g;
  g.last_seen = Position::after("1:5");
  g.resumes_at = Position::after("1:10");
  g.missed = 4;
  g.reason = "history trimmed";
  Delivery d = Delivery::gap(g);
  EXPECT_TRUE(d.is_gap());
  EXPECT_TRUE(d.settled());
  EXPECT_EQ(d.gap().last_seen, Position::after("1:5"));
  EXPECT_EQ(d.gap().resumes_at, Position::after("1:10"));
  EXPECT_EQ(d.gap().missed, 4u);
  EXPECT_EQ(d.gap().reason, "history trimmed");
  d.ack();  // harmless
  d.nack();
  EXPECT_TRUE(d.settled());

  Delivery moved = std::move(d);
  EXPECT_TRUE(moved.is_gap());
  EXPECT_EQ(moved.gap().missed, 4u);
}

TEST(Delivery, AtMostOnceDeliveryNeedsNoSettling) {
  Delivery d(Message("x"), Position::after("p"));
  EXPECT_TRUE(d.settled());
  EXPECT_FALSE(d.is_gap());
  EXPECT_FALSE(d.redelivered());
  EXPECT_EQ(d.message().payload.view(), "x");
  d.ack();
  d.nack(false);
}

TEST(Delivery, DefaultConstructed) {
  Delivery d;
  EXPECT_TRUE(d.settled());
  EXPECT_FALSE(d.is_gap());
  EXPECT_FALSE(d.redelivered());
}

TEST(Delivery, AckFromAnotherThread) {
  auto acker = std::make_shared<RecordingAcker>();
  {
    std::vector<Delivery> ds;
    for (std::uint64_t i = 0; i < 100; ++i) ds.push_back(make(acker, i));
    std::thread t([&] {
      for (auto& d : ds) d.ack();
    });
    t.join();
    for (auto& d : ds) EXPECT_TRUE(d.settled());
  }
  auto calls = acker->calls();
  ASSERT_EQ(calls.size(), 100u);
  for (std::uint64_t i = 0; i < 100; ++i) EXPECT_EQ(calls[i], (Call{Call::ack, i, false}));
}

}  // namespace
}  // namespace patchbay
