// patchbay/http/webhook_signature.hpp — Standard Webhooks signatures (https://www.standardwebhooks.com).
//
// A webhook carries three header fields: `webhook-id` (the message id, the same on every
// retry), `webhook-timestamp` (unix seconds of the attempt) and `webhook-signature`, a
// space-separated list of `v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>`
// entries — one per secret the sender currently signs with, so that a receiver keeps verifying
// while a secret rotates. Secrets are written `whsec_` + base64 of the key bytes.
//
// The sender (transports/http/webhooks) signs with signature_header(); the `webhook` transport
// (transports/webhook) verifies with verify(). verify() compares in constant time
// (CRYPTO_memcmp), refuses a timestamp further than `tolerance` from now in either direction
// (replay protection: a captured request stops verifying once it is that old), and passes when
// any v1 entry matches any of the given secrets. Replays of a webhook-id within the tolerance
// are the receiver's to detect (VerifyError::replayed names them).
//
// Functions only; thread-safe. Secret::generate() draws from OpenSSL's RAND_bytes.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace patchbay::http::webhook {

/// The header field names (lower case, as the spec writes them; HTTP field names are case-insensitive).
inline constexpr std::string_view kIdField = "webhook-id";
inline constexpr std::string_view kTimestampField = "webhook-timestamp";
inline constexpr std::string_view kSignatureField = "webhook-signature";

/// The Standard Webhooks default timestamp tolerance.
inline constexpr std::chrono::seconds kDefaultTolerance{5 * 60};

struct Secret {
  std::string key;  ///< raw key bytes

  /// Parses "whsec_<base64>" (the prefix is optional, as in the reference libraries). Errors
  /// name the problem: empty, not base64, or a key that decodes to nothing.
  static absl::StatusOr<Secret> parse(std::string_view whsec);
  /// "whsec_" + base64(key).
  std::string to_string() const;
  /// 32 random bytes (RAND_bytes).
  static Secret generate();
};

/// "v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>".
std::string sign(const Secret& secret, std::string_view id, std::int64_t timestamp, std::string_view body);

/// The webhook-signature value for several secrets (rotation): their `v1,...` entries,
/// space-separated, in the order given.
std::string signature_header(std::span<const Secret> secrets, std::string_view id, std::int64_t timestamp,
                             std::string_view body);

enum class VerifyError {
  missing_header,    ///< webhook-id, webhook-timestamp or webhook-signature absent or empty
  malformed_header,  ///< webhook-signature is not a list of "<version>,<signature>" entries
  bad_timestamp,     ///< webhook-timestamp is not a number of seconds
  expired,           ///< webhook-timestamp further than the tolerance from now
  bad_signature,     ///< no v1 entry matches any secret (tampered id, timestamp or body; wrong secret)
  replayed,          ///< the webhook-id was already processed (the receiver's own check)
};

/// std::nullopt when the request is authentic: every field present, the timestamp within
/// `tolerance` of `now`, and some v1 entry of `signature_header` equal (constant-time) to the
/// signature of one of `secrets`. An empty `secrets` never verifies (bad_signature).
std::optional<VerifyError> verify(std::span<const Secret> secrets, std::string_view id, std::string_view timestamp,
                                  std::string_view signature_header, std::string_view body,
                                  std::chrono::system_clock::time_point now,
                                  std::chrono::seconds tolerance = kDefaultTolerance);

/// "missing header", "malformed signature header", ... — for 401 answers and logs.
std::string_view to_string(VerifyError error);

}  // namespace patchbay::http::webhook
