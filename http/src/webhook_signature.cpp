// Standard Webhooks signing and verification (see patchbay/http/webhook_signature.hpp).
//
// HMAC-SHA256 through OpenSSL 3's EVP_MAC, fed in three pieces (id, timestamp, body) so that
// a large body is never copied; base64 through Abseil (standard alphabet, padded).
#include <patchbay/http/webhook_signature.hpp>

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <charconv>
#include <memory>
#include <stdexcept>
#include <vector>

namespace patchbay::http::webhook {

namespace {

constexpr char kPrefix[] = "whsec_";  // a char array: Abseil's string_view is not std's here

struct MacDeleter {
  void operator()(EVP_MAC* m) const noexcept { EVP_MAC_free(m); }
  void operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }
};

/// The raw 32-byte HMAC-SHA256 of "id.timestamp.body".
std::string hmac(const Secret& secret, std::string_view id, std::string_view timestamp, std::string_view body) {
  // One fetch per process: EVP_MAC_fetch looks the algorithm up in the provider tables.
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) throw std::runtime_error("webhook signature: OpenSSL has no HMAC");
  std::unique_ptr<EVP_MAC_CTX, MacDeleter> ctx(EVP_MAC_CTX_new(mac));
  if (!ctx) throw std::runtime_error("webhook signature: EVP_MAC_CTX_new failed");
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                         OSSL_PARAM_construct_end()};
  // An empty key is valid HMAC, but OpenSSL wants a non-null pointer.
  static const unsigned char empty = 0;
  const auto* key = secret.key.empty() ? &empty : reinterpret_cast<const unsigned char*>(secret.key.data());
  static const unsigned char dot = '.';
  auto update = [&](std::string_view s) {
    return EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(s.data()), s.size()) == 1;
  };
  if (EVP_MAC_init(ctx.get(), key, secret.key.size(), params) != 1 || !update(id) ||
      EVP_MAC_update(ctx.get(), &dot, 1) != 1 || !update(timestamp) || EVP_MAC_update(ctx.get(), &dot, 1) != 1 ||
      !update(body)) {
    throw std::runtime_error("webhook signature: HMAC-SHA256 failed");
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  if (EVP_MAC_final(ctx.get(), out, &len, sizeof out) != 1) throw std::runtime_error("webhook signature: HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string sign_text(const Secret& secret, std::string_view id, std::string_view timestamp, std::string_view body) {
  return absl::StrCat("v1,", absl::Base64Escape(hmac(secret, id, timestamp, body)));
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

absl::StatusOr<Secret> Secret::parse(std::string_view whsec) {
  std::string_view text = trim(whsec);
  if (text.starts_with(kPrefix)) text.remove_prefix(sizeof kPrefix - 1);
  if (text.empty()) return absl::InvalidArgumentError("webhook secret is empty (expected whsec_<base64>)");
  for (char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                    c == '/' || c == '=';
    if (!ok) return absl::InvalidArgumentError("webhook secret is not base64 (expected whsec_<base64>)");
  }
  Secret out;
  if (!absl::Base64Unescape(absl::string_view(text.data(), text.size()), &out.key) || out.key.empty()) {
    return absl::InvalidArgumentError("webhook secret is not base64 (expected whsec_<base64>)");
  }
  return out;
}

std::string Secret::to_string() const { return absl::StrCat(kPrefix, absl::Base64Escape(key)); }

Secret Secret::generate() {
  Secret s;
  s.key.resize(32);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.key.data()), static_cast<int>(s.key.size())) != 1) {
    throw std::runtime_error("webhook secret: RAND_bytes failed");
  }
  return s;
}

std::string sign(const Secret& secret, std::string_view id, std::int64_t timestamp, std::string_view body) {
  return sign_text(secret, id, std::to_string(timestamp), body);
}

std::string signature_header(std::span<const Secret> secrets, std::string_view id, std::int64_t timestamp,
                             std::string_view body) {
  const std::string ts = std::to_string(timestamp);
  std::string out;
  for (const auto& s : secrets) {
    if (!out.empty()) out += ' ';
    out += sign_text(s, id, ts, body);
  }
  return out;
}

std::optional<VerifyError> verify(std::span<const Secret> secrets, std::string_view id, std::string_view timestamp,
                                  std::string_view signature_header, std::string_view body,
                                  std::chrono::system_clock::time_point now, std::chrono::seconds tolerance) {
  timestamp = trim(timestamp);
  signature_header = trim(signature_header);
  if (id.empty() || timestamp.empty() || signature_header.empty()) return VerifyError::missing_header;

  // Entries "<version>,<signature>" separated by spaces; every entry must have that shape.
  std::vector<std::string_view> v1;
  for (std::string_view rest = signature_header; !rest.empty();) {
    const auto end = rest.find_first_of(" \t");
    std::string_view entry = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : trim(rest.substr(end));
    const auto comma = entry.find(',');
    if (comma == std::string_view::npos || comma == 0 || comma + 1 == entry.size()) return VerifyError::malformed_header;
    if (entry.substr(0, comma) == "v1") v1.push_back(entry);
  }

  std::int64_t ts = 0;
  auto [ptr, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (ec != std::errc() || ptr != timestamp.data() + timestamp.size() || timestamp.front() == '-') {
    return VerifyError::bad_timestamp;
  }
  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::int64_t skew = now_s >= ts ? now_s - ts : ts - now_s;
  if (skew > tolerance.count()) return VerifyError::expired;

  bool match = false;
  for (const auto& secret : secrets) {
    const std::string expected = sign_text(secret, id, timestamp, body);
    for (auto entry : v1) {
      // Lengths are public (a base64 SHA-256 is always 44 characters); the bytes are compared
      // in constant time, and every entry is compared (no early exit on a match).
      if (entry.size() == expected.size() && CRYPTO_memcmp(entry.data(), expected.data(), expected.size()) == 0) {
        match = true;
      }
    }
  }
  if (!match) return VerifyError::bad_signature;
  return std::nullopt;
}

std::string_view to_string(VerifyError error) {
  switch (error) {
    case VerifyError::missing_header:
      return "missing webhook-id, webhook-timestamp or webhook-signature header";
    case VerifyError::malformed_header:
      return "malformed webhook-signature header (expected space-separated v1,<base64> entries)";
    case VerifyError::bad_timestamp:
      return "webhook-timestamp is not a number of seconds";
    case VerifyError::expired:
      return "webhook-timestamp is outside the tolerance (expired or in the future)";
    case VerifyError::bad_signature:
      return "no signature matches";
    case VerifyError::replayed:
      return "webhook-id already processed (replay)";
  }
  return "unknown webhook verification error";
}

}  // namespace patchbay::http::webhook
