#include <patchbay/error.hpp>

#include <gtest/gtest.h>

#include <boost/system/system_error.hpp>

#include <string>
#include <system_error>
#include <type_traits>

namespace patchbay {
namespace {

const errc kAll[] = {errc::ok,           errc::timed_out,         errc::no_responders, errc::stopped,
                     errc::closed,       errc::payload_too_large, errc::not_supported, errc::remote_error,
                     errc::bad_message,  errc::unavailable};

TEST(Error, CategoryName) {
  EXPECT_STREQ(error_category().name(), "patchbay");
  EXPECT_EQ(&error_category(), &error_category()) << "one category instance";
}

TEST(Error, StableNumericValues) {
  // These travel on the wire: never renumber.
  EXPECT_EQ(static_cast<int>(errc::ok), 0);
  EXPECT_EQ(static_cast<int>(errc::timed_out), 1);
  EXPECT_EQ(static_cast<int>(errc::no_responders), 2);
  EXPECT_EQ(static_cast<int>(errc::stopped), 3);
  EXPECT_EQ(static_cast<int>(errc::closed), 4);
  EXPECT_EQ(static_cast<int>(errc::payload_too_large), 5);
  EXPECT_EQ(static_cast<int>(errc::not_supported), 6);
  EXPECT_EQ(static_cast<int>(errc::remote_error), 7);
  EXPECT_EQ(static_cast<int>(errc::bad_message), 8);
  EXPECT_EQ(static_cast<int>(errc::unavailable), 9);
}

TEST(Error, Messages) {
  const auto& cat = error_category();
  EXPECT_EQ(cat.message(0), "success");
  EXPECT_EQ(cat.message(1), "deadline passed");
  EXPECT_EQ(cat.message(2), "nobody serves this service");
  EXPECT_EQ(cat.message(3), "transport is stopping or stopped");
  EXPECT_EQ(cat.message(4), "closed");
  EXPECT_EQ(cat.message(5), "payload larger than the transport's max_payload");
  EXPECT_EQ(cat.message(6), "not supported by this transport");
  EXPECT_EQ(cat.message(7), "the serving side failed");
  EXPECT_EQ(cat.message(8), "malformed message");
  EXPECT_EQ(cat.message(9), "peer or broker unavailable");
  EXPECT_EQ(cat.message(10), "unknown patchbay error");
  EXPECT_EQ(cat.message(-1), "unknown patchbay error");
  for (errc e : kAll) EXPECT_EQ(make_error_code(e).message(), cat.message(static_cast<int>(e)));
}

TEST(Error, IsErrorCodeEnum) {
  static_assert(boost::system::is_error_code_enum<errc>::value);
  static_assert(std::is_convertible_v<errc, boost::system::error_code>);
  boost::system::error_code ec = errc::timed_out;  // implicit, through make_error_code
  EXPECT_EQ(ec.value(), 1);
  EXPECT_EQ(&ec.category(), &error_category());
  EXPECT_TRUE(static_cast<bool>(ec));
}

TEST(Error, MakeErrorCodeComparisons) {
  auto ec = make_error_code(errc::stopped);
  EXPECT_EQ(ec, errc::stopped);
  EXPECT_TRUE(ec == errc::stopped);
  EXPECT_FALSE(ec == errc::closed);
  EXPECT_NE(ec, errc::closed);
  EXPECT_EQ(ec, make_error_code(errc::stopped));
  for (errc a : kAll)
    for (errc b : kAll) EXPECT_EQ(make_error_code(a) == b, a == b);
}

TEST(Error, OkIsNotAnError) {
  auto ec = make_error_code(errc::ok);
  EXPECT_FALSE(static_cast<bool>(ec));
  EXPECT_EQ(ec.value(), 0);
  EXPECT_EQ(ec.message(), "success");
}

TEST(Error, DistinctFromOtherCategoriesWithSameValue) {
  // errc::timed_out is 1 here; generic value 1 (EPERM) is something else entirely.
  boost::system::error_code generic(1, boost::system::generic_category());
  EXPECT_NE(make_error_code(errc::timed_out), generic);
  EXPECT_FALSE(generic == errc::timed_out);
  // Nor is it std::errc::timed_out.
  EXPECT_FALSE(make_error_code(errc::timed_out) == boost::system::errc::timed_out);
}

TEST(Error, ThrowErrorWithoutContext) {
  try {
    throw_error(errc::no_responders);
    FAIL() << "throw_error returned";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), errc::no_responders);
    EXPECT_EQ(std::string(e.what()), e.code().message() + std::string(e.what()).substr(e.code().message().size()));
    EXPECT_NE(std::string(e.what()).find("nobody serves this service"), std::string::npos) << e.what();
  }
}

TEST(Error, ThrowErrorWithContext) {
  try {
    throw_error(errc::payload_too_large, "inproc: 5 bytes exceed 4");
    FAIL() << "throw_error returned";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), errc::payload_too_large);
    const std::string what = e.what();
    EXPECT_NE(what.find("inproc: 5 bytes exceed 4"), std::string::npos) << what;
    EXPECT_NE(what.find("payload larger than the transport's max_payload"), std::string::npos) << what;
  }
}

TEST(Error, ThrowErrorIsCatchableAsStdException) {
  EXPECT_THROW(throw_error(errc::closed, "x"), std::exception);
  EXPECT_THROW(throw_error(errc::closed), std::runtime_error);
}

}  // namespace
}  // namespace patchbay
