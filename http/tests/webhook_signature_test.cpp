// Standard Webhooks signatures: the spec's reference vector, and every way verify() must say no.
#include <patchbay/http/webhook_signature.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace {

using namespace patchbay::http::webhook;
using namespace std::chrono_literals;

// The reference vector published with the Standard Webhooks spec and its libraries.
constexpr std::string_view kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr std::string_view kId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr std::int64_t kTimestamp = 1614265330;
constexpr std::string_view kBody = R"({"test": 2432232314})";
constexpr std::string_view kSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

std::chrono::system_clock::time_point at(std::int64_t unix_seconds) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds));
}

Secret secret() { return *Secret::parse(kSecret); }

std::optional<VerifyError> check(std::string_view id, std::string_view ts, std::string_view sig, std::string_view body,
                                 std::int64_t now = kTimestamp) {
  const std::vector<Secret> secrets{secret()};
  return verify(secrets, id, ts, sig, body, at(now), 5min);
}

TEST(WebhookSignature, ReferenceVector) {
  EXPECT_EQ(sign(secret(), kId, kTimestamp, kBody), kSignature);
  EXPECT_EQ(check(kId, "1614265330", kSignature, kBody), std::nullopt);
}

TEST(WebhookSignature, SecretWithoutPrefixAndRoundTrip) {
  auto bare = Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->key, secret().key);
  EXPECT_EQ(secret().to_string(), kSecret);
  auto g = Secret::generate();
  EXPECT_EQ(g.key.size(), 32u);
  auto back = Secret::parse(g.to_string());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->key, g.key);
  EXPECT_NE(Secret::generate().key, g.key);
}

TEST(WebhookSignature, BadSecretsAreRefused) {
  EXPECT_FALSE(Secret::parse("").ok());
  EXPECT_FALSE(Secret::parse("whsec_").ok());
  EXPECT_FALSE(Secret::parse("whsec_not base64!").ok());
  EXPECT_FALSE(Secret::parse("whsec_%%%%").ok());
}

TEST(WebhookSignature, TamperedBodyTimestampOrId) {
  EXPECT_EQ(check(kId, "1614265330", kSignature, R"({"test": 2432232315})"), VerifyError::bad_signature);
  EXPECT_EQ(check(kId, "1614265331", kSignature, kBody), VerifyError::bad_signature);
  EXPECT_EQ(check("msg_p5jXN8AQM9LWM0D4loKWxJeK", "1614265330", kSignature, kBody), VerifyError::bad_signature);
  EXPECT_EQ(check(kId, "1614265330", kSignature, std::string(kBody) + " "), VerifyError::bad_signature);
  // A flipped signature byte.
  std::string sig(kSignature);
  sig[5] = sig[5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(check(kId, "1614265330", sig, kBody), VerifyError::bad_signature);
  // The right signature under another version tag does not count.
  std::string v2 = "v2" + std::string(kSignature.substr(2));
  EXPECT_EQ(check(kId, "1614265330", v2, kBody), VerifyError::bad_signature);
}

TEST(WebhookSignature, ExpiredOrFutureTimestamp) {
  EXPECT_EQ(check(kId, "1614265330", kSignature, kBody, kTimestamp + 300), std::nullopt);  // at the edge
  EXPECT_EQ(check(kId, "1614265330", kSignature, kBody, kTimestamp + 301), VerifyError::expired);
  EXPECT_EQ(check(kId, "1614265330", kSignature, kBody, kTimestamp - 300), std::nullopt);
  EXPECT_EQ(check(kId, "1614265330", kSignature, kBody, kTimestamp - 301), VerifyError::expired);
  EXPECT_EQ(check(kId, "1614265330", kSignature, kBody, kTimestamp + 86400), VerifyError::expired);
}

TEST(WebhookSignature, MissingAndMalformedHeaders) {
  EXPECT_EQ(check("", "1614265330", kSignature, kBody), VerifyError::missing_header);
  EXPECT_EQ(check(kId, "", kSignature, kBody), VerifyError::missing_header);
  EXPECT_EQ(check(kId, "1614265330", "", kBody), VerifyError::missing_header);
  EXPECT_EQ(check(kId, "1614265330", "   ", kBody), VerifyError::missing_header);
  EXPECT_EQ(check(kId, "1614265330", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", kBody), VerifyError::malformed_header);
  EXPECT_EQ(check(kId, "1614265330", "v1,", kBody), VerifyError::malformed_header);
  EXPECT_EQ(check(kId, "1614265330", ",abc", kBody), VerifyError::malformed_header);
  EXPECT_EQ(check(kId, "1614265330", std::string(kSignature) + " junk", kBody), VerifyError::malformed_header);
  EXPECT_EQ(check(kId, "16142653x0", kSignature, kBody), VerifyError::bad_timestamp);
  EXPECT_EQ(check(kId, "-1614265330", kSignature, kBody), VerifyError::bad_timestamp);
  EXPECT_EQ(check(kId, "1614265330.5", kSignature, kBody), VerifyError::bad_timestamp);
  EXPECT_EQ(check(kId, "99999999999999999999999", kSignature, kBody), VerifyError::bad_timestamp);
}

TEST(WebhookSignature, SeveralEntriesAnyMatchPasses) {
  // Other entries (another secret, another scheme) around the right one.
  const std::string header = "v1,bm9wZQ== v1a,c29tZXRoaW5nZWxzZQ== " + std::string(kSignature);
  EXPECT_EQ(check(kId, "1614265330", header, kBody), std::nullopt);
  EXPECT_EQ(check(kId, "1614265330", "v1,bm9wZQ== v1,bm9wZTI=", kBody), VerifyError::bad_signature);
}

TEST(WebhookSignature, RotatedSecret) {
  const Secret old_secret = secret();
  const Secret new_secret = Secret::generate();
  const std::vector<Secret> both{new_secret, old_secret};
  const std::string header = signature_header(both, kId, kTimestamp, kBody);
  EXPECT_EQ(header, sign(new_secret, kId, kTimestamp, kBody) + " " + std::string(kSignature));

  // A receiver that knows only the old secret, only the new one, or both: all verify during the overlap.
  for (const auto& known : {std::vector<Secret>{old_secret}, std::vector<Secret>{new_secret}, both}) {
    EXPECT_EQ(verify(known, kId, "1614265330", header, kBody, at(kTimestamp)), std::nullopt);
  }
  // After the overlap the sender signs with the new secret only: a receiver still on the old one fails,
  // a receiver that holds both passes.
  const std::vector<Secret> only_new{new_secret};
  const std::string after = signature_header(only_new, kId, kTimestamp, kBody);
  const std::vector<Secret> old_only{old_secret};
  EXPECT_EQ(verify(old_only, kId, "1614265330", after, kBody, at(kTimestamp)), VerifyError::bad_signature);
  EXPECT_EQ(verify(both, kId, "1614265330", after, kBody, at(kTimestamp)), std::nullopt);
  // No secrets at all never verifies.
  EXPECT_EQ(verify(std::span<const Secret>(), kId, "1614265330", after, kBody, at(kTimestamp)), VerifyError::bad_signature);
}

TEST(WebhookSignature, BinaryAndLargeBodies) {
  std::string body(1 << 20, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7);
  const Secret s = Secret::generate();
  const std::vector<Secret> secrets{s};
  const auto sig = sign(s, "id-1", 1700000000, body);
  EXPECT_EQ(sig.size(), 47u);  // "v1," + 44 base64 characters
  EXPECT_EQ(verify(secrets, "id-1", "1700000000", sig, body, at(1700000000)), std::nullopt);
  body.back() ^= 1;
  EXPECT_EQ(verify(secrets, "id-1", "1700000000", sig, body, at(1700000000)), VerifyError::bad_signature);
}

TEST(WebhookSignature, ErrorsHaveText) {
  for (auto e : {VerifyError::missing_header, VerifyError::malformed_header, VerifyError::bad_timestamp,
                 VerifyError::expired, VerifyError::bad_signature, VerifyError::replayed}) {
    EXPECT_FALSE(to_string(e).empty());
  }
}

}  // namespace
