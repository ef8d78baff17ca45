#include <patchbay/features.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace patchbay {
namespace {

const std::vector<std::string_view> kExpected = {"publish_subscribe", "request_reply", "consumer_groups",
                                                 "at_least_once",     "ordered",       "replay",
                                                 "gap_signal",        "headers",       "flow_control",
                                                 "durable"};

Features all_set() {
  Features f;
  f.publish_subscribe = f.request_reply = f.consumer_groups = f.at_least_once = f.ordered = true;
  f.replay = f.gap_signal = f.headers = f.flow_control = f.durable = true;
  return f;
}

TEST(Features, DefaultHasNothing) {
  Features f;
  for (auto n : Features::names()) EXPECT_FALSE(f.has(n)) << n;
  EXPECT_EQ(f.max_payload, 0u);
}

TEST(Features, NamesInDeclarationOrder) {
  auto names = Features::names();
  EXPECT_EQ(std::vector<std::string_view>(names.begin(), names.end()), kExpected);
  std::set<std::string_view> unique(names.begin(), names.end());
  EXPECT_EQ(unique.size(), names.size());
  EXPECT_EQ(std::set<std::string_view>(names.begin(), names.end()).count("max_payload"), 0u)
      << "max_payload is a limit, not a requirable feature";
}

TEST(Features, Known) {
  for (auto n : Features::names()) EXPECT_TRUE(Features::known(n)) << n;
  EXPECT_FALSE(Features::known(""));
  EXPECT_FALSE(Features::known("max_payload"));
  EXPECT_FALSE(Features::known("Ordered")) << "names are exact";
  EXPECT_FALSE(Features::known("ordered "));
  EXPECT_FALSE(Features::known("exactly_once"));
}

TEST(Features, HasEachFieldIndividually) {
  struct Case {
    std::string_view name;
    bool Features::*field;
  };
  const Case cases[] = {{"publish_subscribe", &Features::publish_subscribe},
                        {"request_reply", &Features::request_reply},
                        {"consumer_groups", &Features::consumer_groups},
                        {"at_least_once", &Features::at_least_once},
                        {"ordered", &Features::ordered},
                        {"replay", &Features::replay},
                        {"gap_signal", &Features::gap_signal},
                        {"headers", &Features::headers},
                        {"flow_control", &Features::flow_control},
                        {"durable", &Features::durable}};
  ASSERT_EQ(std::size(cases), Features::names().size());
  for (const auto& c : cases) {
    Features f;
    f.*(c.field) = true;
    for (auto n : Features::names()) EXPECT_EQ(f.has(n), n == c.name) << "set " << c.name << ", asked " << n;
  }
}

TEST(Features, HasUnknownIsFalse) {
  Features f = all_set();
  EXPECT_FALSE(f.has("exactly_once"));
  EXPECT_FALSE(f.has(""));
  EXPECT_FALSE(f.has("max_payload"));
}

TEST(Features, DescribeNone) {
  Features f;
  EXPECT_EQ(f.describe(), "max_payload=unlimited");
}

TEST(Features, DescribeSomeInDeclarationOrder) {
  Features f;
  f.durable = true;
  f.publish_subscribe = true;
  f.at_least_once = true;
  f.max_payload = 4194304;
  EXPECT_EQ(f.describe(), "publish_subscribe, at_least_once, durable, max_payload=4194304");
}

TEST(Features, DescribeAll) {
  Features f = all_set();
  EXPECT_EQ(f.describe(),
            "publish_subscribe, request_reply, consumer_groups, at_least_once, ordered, replay, gap_signal, "
            "headers, flow_control, durable, max_payload=unlimited");
}

TEST(Features, FirstMissing) {
  Features f;
  f.publish_subscribe = true;
  f.ordered = true;

  const std::vector<std::string> none;
  EXPECT_TRUE(first_missing(f, none).empty());

  const std::vector<std::string> satisfied = {"ordered", "publish_subscribe"};
  EXPECT_TRUE(first_missing(f, satisfied).empty());

  const std::vector<std::string> two_missing = {"ordered", "replay", "durable"};
  EXPECT_EQ(first_missing(f, two_missing), "replay") << "the first missing one, in the order required";

  const std::vector<std::string> unknown = {"publish_subscribe", "teleport"};
  EXPECT_EQ(first_missing(f, unknown), "teleport") << "an unknown name is never satisfied";

  EXPECT_TRUE(first_missing(all_set(), std::vector<std::string>(kExpected.begin(), kExpected.end())).empty());
}

TEST(Features, FirstMissingViewsTheRequiredString) {
  Features f;
  const std::vector<std::string> req = {"replay"};
  auto missing = first_missing(f, req);
  EXPECT_EQ(missing.data(), req[0].data()) << "the result is a view of the caller's string";
}

}  // namespace
}  // namespace patchbay
