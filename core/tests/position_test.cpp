#include <patchbay/position.hpp>

#include <gtest/gtest.h>

#include <string>

namespace patchbay {
namespace {

TEST(Position, DefaultIsLatest) {
  Position p;
  EXPECT_EQ(p.where(), Position::kind::latest);
  EXPECT_TRUE(p.token().empty());
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p, Position::latest());
  EXPECT_EQ(p.to_string(), "latest");
}

TEST(Position, Latest) {
  auto p = Position::latest();
  EXPECT_EQ(p.where(), Position::kind::latest);
  EXPECT_TRUE(p.token().empty());
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.to_string(), "latest");
}

TEST(Position, Earliest) {
  auto p = Position::earliest();
  EXPECT_EQ(p.where(), Position::kind::earliest);
  EXPECT_TRUE(p.token().empty());
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.to_string(), "earliest");
}

TEST(Position, After) {
  auto p = Position::after("1234:56");
  EXPECT_EQ(p.where(), Position::kind::after);
  EXPECT_EQ(p.token(), "1234:56");
  EXPECT_FALSE(p.empty());
  EXPECT_EQ(p.to_string(), "1234:56");
}

TEST(Position, ParseKeywords) {
  EXPECT_EQ(Position::parse("latest"), Position::latest());
  EXPECT_EQ(Position::parse("earliest"), Position::earliest());
  EXPECT_EQ(Position::parse(""), Position::latest()) << "empty text means the default";
}

TEST(Position, ParseToken) {
  auto p = Position::parse("42:7");
  EXPECT_EQ(p.where(), Position::kind::after);
  EXPECT_EQ(p.token(), "42:7");
  // Keywords are exact: anything else is a token.
  EXPECT_EQ(Position::parse("Latest").where(), Position::kind::after);
  EXPECT_EQ(Position::parse("earliest ").where(), Position::kind::after);
}

TEST(Position, RoundTrip) {
  for (const Position& p : {Position::latest(), Position::earliest(), Position::after("0"),
                            Position::after("9999999999:18446744073709551615"), Position::after("opaque/token=with?chars"),
                            Position::after(std::string("nul\0inside", 10))}) {
    EXPECT_EQ(Position::parse(p.to_string()), p) << p.to_string();
  }
  for (const char* text : {"latest", "earliest", "1:2", "cursor-abc"}) EXPECT_EQ(Position::parse(text).to_string(), text);
}

TEST(Position, Equality) {
  EXPECT_EQ(Position::after("a"), Position::after("a"));
  EXPECT_NE(Position::after("a"), Position::after("b"));
  EXPECT_NE(Position::latest(), Position::earliest());
  EXPECT_NE(Position::latest(), Position::after("latest")) << "kind is part of equality";
  EXPECT_NE(Position::earliest(), Position::after(""));
  Position copy = Position::after("x");
  Position moved = std::move(copy);
  EXPECT_EQ(moved, Position::after("x"));
}

}  // namespace
}  // namespace patchbay
