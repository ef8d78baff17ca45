#include <patchbay/headers.hpp>

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace patchbay {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs items(const Headers& h) { return Pairs(h.begin(), h.end()); }

TEST(Headers, DefaultIsEmpty) {
  Headers h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.size(), 0u);
  EXPECT_EQ(h.begin(), h.end());
  EXPECT_FALSE(h.get("x").has_value());
  EXPECT_TRUE(h.get_all("x").empty());
  EXPECT_FALSE(h.contains("x"));
  EXPECT_EQ(h.remove("x"), 0u);
}

TEST(Headers, OrderIsPreserved) {
  Headers h;
  h.add("zeta", "1");
  h.add("alpha", "2");
  h.add("mid", "3");
  h.add("beta", "4");
  EXPECT_EQ(items(h), (Pairs{{"zeta", "1"}, {"alpha", "2"}, {"mid", "3"}, {"beta", "4"}}))
      << "headers keep insertion order; they are not sorted";
  EXPECT_EQ(h.size(), 4u);
  EXPECT_FALSE(h.empty());
}

TEST(Headers, InitializerListKeepsOrder) {
  Headers h{{"b", "1"}, {"a", "2"}, {"b", "3"}};
  EXPECT_EQ(items(h), (Pairs{{"b", "1"}, {"a", "2"}, {"b", "3"}}));
}

TEST(Headers, RepeatedNames) {
  Headers h;
  h.add("via", "a");
  h.add("other", "x");
  h.add("via", "b");
  h.add("via", "c");
  EXPECT_EQ(h.size(), 4u);
  ASSERT_TRUE(h.get("via").has_value());
  EXPECT_EQ(*h.get("via"), "a") << "get() returns the first value";
  EXPECT_EQ(h.get_all("via"), (std::vector<std::string_view>{"a", "b", "c"}));
  EXPECT_EQ(h.get_all("other"), (std::vector<std::string_view>{"x"}));
  EXPECT_TRUE(h.get_all("none").empty());
}

TEST(Headers, NamesAreCaseSensitive) {
  Headers h{{"Content-Type", "text/plain"}};
  EXPECT_TRUE(h.contains("Content-Type"));
  EXPECT_FALSE(h.contains("content-type"));
  EXPECT_FALSE(h.get("CONTENT-TYPE").has_value());
  EXPECT_EQ(h.remove("content-type"), 0u);
  EXPECT_EQ(h.size(), 1u);
}

TEST(Headers, EmptyNameAndValueAreAllowed) {
  Headers h;
  h.add("", "v");
  h.add("k", "");
  ASSERT_TRUE(h.get("").has_value());
  EXPECT_EQ(*h.get(""), "v");
  ASSERT_TRUE(h.get("k").has_value());
  EXPECT_EQ(*h.get("k"), "") << "an empty value is present, not absent";
  EXPECT_TRUE(h.contains("k"));
}

TEST(Headers, SetReplacesAllAndKeepsPositionOfFirst) {
  Headers h;
  h.add("a", "1");
  h.add("x", "old1");
  h.add("b", "2");
  h.add("x", "old2");
  h.add("c", "3");
  h.add("x", "old3");
  h.set("x", "new");
  EXPECT_EQ(items(h), (Pairs{{"a", "1"}, {"x", "new"}, {"b", "2"}, {"c", "3"}}))
      << "set() keeps one header, where the first one was";
  EXPECT_EQ(h.get_all("x"), (std::vector<std::string_view>{"new"}));
}

TEST(Headers, SetSingleInPlace) {
  Headers h{{"a", "1"}, {"b", "2"}, {"c", "3"}};
  h.set("b", "two");
  EXPECT_EQ(items(h), (Pairs{{"a", "1"}, {"b", "two"}, {"c", "3"}}));
}

TEST(Headers, SetAppendsWhenAbsent) {
  Headers h{{"a", "1"}};
  h.set("z", "26");
  EXPECT_EQ(items(h), (Pairs{{"a", "1"}, {"z", "26"}}));
  Headers empty;
  empty.set("only", "v");
  EXPECT_EQ(items(empty), (Pairs{{"only", "v"}}));
}

TEST(Headers, SetWithNameViewingItsOwnStorage) {
  // The name may be a view of a stored header name (e.g. while iterating).
  Headers h{{"k", "1"}, {"j", "2"}, {"k", "3"}};
  std::string_view name = h.begin()->first;
  h.set(name, "v");
  EXPECT_EQ(items(h), (Pairs{{"k", "v"}, {"j", "2"}}));
}

TEST(Headers, RemoveReturnsCount) {
  Headers h{{"a", "1"}, {"x", "2"}, {"b", "3"}, {"x", "4"}, {"x", "5"}};
  EXPECT_EQ(h.remove("x"), 3u);
  EXPECT_EQ(items(h), (Pairs{{"a", "1"}, {"b", "3"}})) << "the others keep their order";
  EXPECT_EQ(h.remove("x"), 0u);
  EXPECT_EQ(h.remove("a"), 1u);
  EXPECT_EQ(h.remove("b"), 1u);
  EXPECT_TRUE(h.empty());
}

TEST(Headers, GetReturnsViewOfStoredValue) {
  Headers h{{"k", "value"}};
  auto v = h.get("k");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->data(), h.begin()->second.data());
}

TEST(Headers, Equality) {
  Headers a{{"a", "1"}, {"b", "2"}};
  Headers b;
  b.add("a", "1");
  b.add("b", "2");
  EXPECT_EQ(a, b);

  Headers reordered{{"b", "2"}, {"a", "1"}};
  EXPECT_NE(a, reordered) << "order matters for equality";

  Headers other_value{{"a", "1"}, {"b", "3"}};
  EXPECT_NE(a, other_value);

  Headers extra{{"a", "1"}, {"b", "2"}, {"b", "2"}};
  EXPECT_NE(a, extra);

  EXPECT_EQ(Headers(), Headers());

  Headers copy = a;
  EXPECT_EQ(copy, a);
  copy.set("a", "changed");
  EXPECT_NE(copy, a) << "a copy is independent";
  EXPECT_EQ(*a.get("a"), "1");
}

}  // namespace
}  // namespace patchbay
