#include <patchbay/message.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace patchbay {
namespace {

using namespace std::chrono_literals;

bool is_lower_hex_id(const std::string& id) {
  if (id.size() != 32) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

TEST(Message, DefaultIsEmpty) {
  Message m;
  EXPECT_TRUE(m.topic.empty());
  EXPECT_TRUE(m.id.empty());
  EXPECT_TRUE(m.headers.empty());
  EXPECT_TRUE(m.payload.empty());
  EXPECT_EQ(m.time, Message::time_point{});
}

TEST(Message, ConstructFromPayload) {
  Message a("hello");
  EXPECT_EQ(a.payload.view(), "hello");
  Bytes b("shared");
  Message c(b);
  EXPECT_TRUE(c.payload.shares_buffer_with(b));
  EXPECT_TRUE(c.id.empty()) << "constructing does not stamp";
  EXPECT_EQ(c.time, Message::time_point{});
}

TEST(Message, CopySharesPayload) {
  Message a("big payload");
  a.headers.add("k", "v");
  Message b = a;
  EXPECT_TRUE(b.payload.shares_buffer_with(a.payload));
  EXPECT_EQ(b.headers, a.headers);
}

TEST(Message, GenerateIdIs32LowercaseHex) {
  for (int i = 0; i < 1000; ++i) {
    const std::string id = Message::generate_id();
    ASSERT_TRUE(is_lower_hex_id(id)) << "'" << id << "'";
  }
}

TEST(Message, StampFillsIdAndTimeWhenEmpty) {
  Message m("x");
  const auto before = std::chrono::system_clock::now();
  m.stamp();
  const auto after = std::chrono::system_clock::now();
  EXPECT_TRUE(is_lower_hex_id(m.id)) << m.id;
  EXPECT_NE(m.time, Message::time_point{});
  EXPECT_GE(m.time, before);
  EXPECT_LE(m.time, after);
}

TEST(Message, StampKeepsExistingIdAndTime) {
  Message m("x");
  m.id = "my-own-id";
  const auto t = Message::time_point{} + 12345s;
  m.time = t;
  m.stamp();
  EXPECT_EQ(m.id, "my-own-id");
  EXPECT_EQ(m.time, t);
}

TEST(Message, StampFillsOnlyTheMissingField) {
  Message only_id;
  only_id.id = "given";
  only_id.stamp();
  EXPECT_EQ(only_id.id, "given");
  EXPECT_NE(only_id.time, Message::time_point{});

  Message only_time;
  const auto t = Message::time_point{} + 1s;
  only_time.time = t;
  only_time.stamp();
  EXPECT_TRUE(is_lower_hex_id(only_time.id));
  EXPECT_EQ(only_time.time, t);
}

TEST(Message, StampTwiceIsStable) {
  Message m;
  m.stamp();
  const auto id = m.id;
  const auto t = m.time;
  m.stamp();
  EXPECT_EQ(m.id, id);
  EXPECT_EQ(m.time, t);
}

TEST(Message, StampedCopiesGetDistinctIds) {
  Message a, b;
  a.stamp();
  b.stamp();
  EXPECT_NE(a.id, b.id);
}

TEST(Message, IdsAreUniqueAcrossThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25'000;  // 100k ids in all
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&ids, t] {
      auto& mine = ids[t];
      mine.reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) {
        Message m;
        m.stamp();
        mine.push_back(std::move(m.id));
      }
    });
  for (auto& t : threads) t.join();

  std::unordered_set<std::string> seen;
  seen.reserve(kThreads * kPerThread);
  std::size_t malformed = 0;
  for (const auto& v : ids)
    for (const auto& id : v) {
      if (!is_lower_hex_id(id)) ++malformed;
      seen.insert(id);
    }
  EXPECT_EQ(malformed, 0u);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kPerThread)) << "duplicate ids were generated";
}

}  // namespace
}  // namespace patchbay
