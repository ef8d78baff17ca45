#include <patchbay/bytes.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <atomic>
#include <vector>

namespace patchbay {
namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;

TEST(Bytes, DefaultIsEmptyAndAllocatesNothing) {
  Bytes b;
  EXPECT_EQ(b.size(), 0u);
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(b.view().empty());
  EXPECT_TRUE(b.span().empty());
  EXPECT_EQ(b.str(), "");
  ASSERT_NE(b.data(), nullptr) << "data() of an empty Bytes must still be a valid C string";
  EXPECT_EQ(b.data()[0], '\0');
  // Nothing was allocated: an empty Bytes shares no buffer, not even with itself or another empty one.
  EXPECT_FALSE(b.shares_buffer_with(b));
  Bytes other;
  EXPECT_FALSE(b.shares_buffer_with(other));
  Bytes copy = b;
  EXPECT_FALSE(copy.shares_buffer_with(b));
  EXPECT_EQ(copy, b);
}

TEST(Bytes, DefaultConstructionIsNoexcept) {
  static_assert(std::is_nothrow_default_constructible_v<Bytes>);
  static_assert(std::is_nothrow_move_constructible_v<Bytes>);
  SUCCEED();
}

TEST(Bytes, ConstructedFromEmptyStringEqualsDefault) {
  Bytes e(""s);
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e, Bytes());
}

TEST(Bytes, AllByteValuesSurvive) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  // Twice, so a NUL appears in the middle, not only at the start.
  all += all;
  ASSERT_EQ(all.size(), 512u);

  Bytes from_string(all);
  Bytes from_view{std::string_view(all)};
  std::vector<std::byte> raw(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) raw[i] = static_cast<std::byte>(static_cast<unsigned char>(all[i]));
  Bytes from_span{std::span<const std::byte>(raw)};

  for (const Bytes* b : {&from_string, &from_view, &from_span}) {
    ASSERT_EQ(b->size(), 512u);
    EXPECT_EQ(b->view(), all);
    EXPECT_EQ(b->str(), all);
    auto s = b->span();
    ASSERT_EQ(s.size(), 512u);
    for (std::size_t i = 0; i < s.size(); ++i)
      ASSERT_EQ(std::to_integer<unsigned>(s[i]), i % 256) << "at index " << i;
    for (std::size_t i = 0; i < b->size(); ++i)
      ASSERT_EQ(static_cast<unsigned char>(b->data()[i]), i % 256) << "at index " << i;
  }
  EXPECT_EQ(from_string, from_view);
  EXPECT_EQ(from_string, from_span);
}

TEST(Bytes, EmbeddedNulsAreNotTruncated) {
  const std::string_view text = "a\0b\0\0c"sv;
  ASSERT_EQ(text.size(), 6u);
  Bytes b(text);
  EXPECT_EQ(b.size(), 6u);
  EXPECT_EQ(b.view(), text);
  EXPECT_EQ(b.str(), std::string(text));
  EXPECT_NE(b, Bytes("a")) << "content equality must compare the whole buffer, not up to the first NUL";

  Bytes only_nuls(std::string(3, '\0'));
  EXPECT_EQ(only_nuls.size(), 3u);
  EXPECT_FALSE(only_nuls.empty());
  EXPECT_NE(only_nuls, Bytes());
}

TEST(Bytes, ConstCharPointerStopsAtFirstNul) {
  // The const char* constructor takes a C string: by definition it ends at the first NUL.
  Bytes b("abc\0def");
  EXPECT_EQ(b.view(), "abc");
}

TEST(Bytes, StringIsMovedNotCopied) {
  std::string s(4096, 'x');
  const char* storage = s.data();
  Bytes b(std::move(s));
  EXPECT_EQ(b.data(), storage) << "Bytes(std::string&&) must take over the string's buffer";
  EXPECT_EQ(b.size(), 4096u);
}

TEST(Bytes, CopiesShareTheBuffer) {
  Bytes a("payload");
  Bytes b = a;
  Bytes c;
  c = b;
  EXPECT_TRUE(a.shares_buffer_with(b));
  EXPECT_TRUE(b.shares_buffer_with(a));
  EXPECT_TRUE(a.shares_buffer_with(c));
  EXPECT_TRUE(a.shares_buffer_with(a));
  EXPECT_EQ(a.data(), b.data()) << "a copy must point at the same bytes";
  EXPECT_EQ(a.data(), c.data());

  Bytes moved = std::move(b);
  EXPECT_TRUE(moved.shares_buffer_with(a));
  EXPECT_EQ(moved.view(), "payload");
}

TEST(Bytes, EqualContentInDistinctBuffers) {
  Bytes a("same");
  Bytes b(std::string("same"));
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a.shares_buffer_with(b)) << "shares_buffer_with is identity, not content equality";
  EXPECT_NE(a, Bytes("different"));
  EXPECT_NE(a, Bytes("sam"));
  EXPECT_NE(a, Bytes("same "));
}

TEST(Bytes, SpanAndViewAgree) {
  Bytes b("hello");
  auto v = b.view();
  auto s = b.span();
  ASSERT_EQ(v.size(), s.size());
  EXPECT_EQ(static_cast<const void*>(v.data()), static_cast<const void*>(s.data()));
  EXPECT_EQ(static_cast<const void*>(v.data()), static_cast<const void*>(b.data()));
  EXPECT_EQ(std::to_integer<char>(s[0]), 'h');
  EXPECT_EQ(std::to_integer<char>(s[4]), 'o');
}

TEST(Bytes, ViewOutlivesTheOriginalHandleWhileACopyLives) {
  std::string_view v;
  Bytes keeper;
  {
    Bytes original(std::string(100, 'z'));
    keeper = original;
    v = original.view();
  }
  EXPECT_EQ(v, std::string(100, 'z')) << "a copy keeps the shared buffer alive";
  EXPECT_EQ(keeper.view().data(), v.data());
}

TEST(Bytes, ConcurrentCopiesAndReads) {
  const Bytes shared(std::string(1000, 'q'));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        Bytes copy = shared;
        if (!copy.shares_buffer_with(shared) || copy.size() != 1000 || copy.view()[999] != 'q') ++bad;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace patchbay
