// The `auth` middleware (see the header): credentials on the way out, checks on the way in.
#include <patchbay/plugins/auth/auth.hpp>

#include <patchbay/error.hpp>
#include <patchbay/middleware.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/plugins/support.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <array>
#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace patchbay::plugins::auth {
namespace {

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

Digest sha256(std::string_view s) {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 0xf];
  }
  return s;
}

/// Counts per binding, for rejected().
std::atomic<std::uint64_t>& counter(const std::string& binding) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<std::atomic<std::uint64_t>>, std::less<>> counters;
  std::lock_guard lock(mutex);
  auto& c = counters[binding];
  if (!c) c = std::make_unique<std::atomic<std::uint64_t>>(0);
  return *c;
}

std::optional<std::uint64_t> count_of(std::string_view binding) {
  return counter(std::string(binding)).load();
}

struct Settings {
  // Bearer mode: SHA-256 digests of the accepted tokens (compared in constant time, so the
  // lengths of the tokens do not show either) and the one sent.
  std::vector<Digest> accepted;
  std::string token;
  std::string header = "authorization";
  // HMAC mode.
  bool hmac = false;
  std::string secret;
  bool sign = true;
  bool verify = true;
};

class AuthMiddleware final : public Middleware {
 public:
  AuthMiddleware(std::shared_ptr<Transport> inner, std::string binding, Settings s)
      : Middleware(std::move(inner)), binding_(std::move(binding)), s_(std::move(s)), rejected_(counter(binding_)) {}

 protected:
  awaitable<void> do_publish(Message msg) override {
    if (s_.sign) stamp(msg.topic, msg);
    return inner()->publish(std::move(msg));
  }
  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    if (s_.sign) stamp(service, msg);
    return inner()->request(std::move(service), std::move(msg), until);
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    auto self = std::static_pointer_cast<AuthMiddleware>(shared_from_this());
    Stream<Delivery> inner_stream = co_await inner()->subscribe(topic, std::move(options));
    if (!s_.verify) co_return inner_stream;
    co_return support::wrap_deliveries(std::move(inner_stream), [self, topic](Delivery d) -> std::optional<Delivery> {
      if (d.is_gap()) return d;
      // The topic the message was published on (a wildcard subscription sees the real one).
      const std::string& on = d.message().topic.empty() ? topic : d.message().topic;
      if (auto why = self->check(on, d.message())) {
        self->reject("delivery", on, d.message(), *why);
        d.nack(false);  // never requeued: it would only be rejected again
        return std::nullopt;
      }
      return d;
    });
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    if (!s_.verify) return inner()->serve(std::move(service), std::move(handler));
    auto self = std::static_pointer_cast<AuthMiddleware>(shared_from_this());
    auto h = std::make_shared<ServiceHandler>(std::move(handler));
    ServiceHandler wrapped = [self, h, service](Message request) -> awaitable<Message> {
      if (auto why = self->check(service, request)) {
        self->reject("request", service, request, *why);
        return refuse("unauthenticated: " + *why);
      }
      return (*h)(std::move(request));
    };
    return inner()->serve(std::move(service), std::move(wrapped));
  }

 private:
  static awaitable<Message> refuse(std::string why) {
    throw std::runtime_error(why);
    co_return Message();
  }

  void stamp(std::string_view topic, Message& msg) const {
    if (s_.hmac)
      msg.headers.set(s_.header, hmac_signature(s_.secret, topic, msg));
    else
      msg.headers.set(s_.header, "Bearer " + s_.token);
  }

  /// Why `msg` is not acceptable, or std::nullopt when it is.
  std::optional<std::string> check(std::string_view topic, const Message& msg) const {
    auto values = msg.headers.get_all(s_.header);
    if (values.empty()) return "no '" + s_.header + "' header";
    if (values.size() > 1) return "more than one '" + s_.header + "' header";
    std::string_view presented = values.front();
    if (s_.hmac) {
      const std::string expected = hmac_signature(s_.secret, topic, msg);
      if (presented.size() != expected.size() || CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) != 0)
        return std::string("invalid HMAC signature");
      return std::nullopt;
    }
    constexpr std::string_view scheme = "Bearer ";
    if (presented.size() < scheme.size() || presented.substr(0, scheme.size()) != scheme)
      return "'" + s_.header + "' is not a bearer credential";
    const Digest got = sha256(presented.substr(scheme.size()));
    int match = 0;
    for (const auto& d : s_.accepted) match |= CRYPTO_memcmp(got.data(), d.data(), d.size()) == 0;  // no early exit
    if (!match) return std::string("invalid bearer token");
    return std::nullopt;
  }

  void reject(const char* what, std::string_view topic, const Message& msg, const std::string& why) const {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    std::string line = "patchbay auth: binding '" + binding_ + "': rejected " + what + " " + msg.id + " on '" +
                       std::string(topic) + "': " + why + "\n";
    std::cerr << line << std::flush;
  }

  std::string binding_;
  Settings s_;
  std::atomic<std::uint64_t>& rejected_;
};

absl::StatusOr<std::shared_ptr<Transport>> make_auth(const MiddlewareContext& ctx) {
  const auto& s = ctx.settings;
  auto fail = [&](std::string_view key, const std::string& what) {
    return config::error_at(s.mark_of(key), s.context() + ": " + what);
  };
  Settings out;
  auto sign = s.get_bool("sign", true);
  if (!sign.ok()) return sign.status();
  auto verify = s.get_bool("verify", true);
  if (!verify.ok()) return verify.status();
  out.sign = *sign;
  out.verify = *verify;

  const bool bearer = s.has("tokens") || s.has("token_file") || s.has("token");
  if (s.has("hmac")) {
    if (bearer) return fail("hmac", "choose one of bearer tokens (`tokens:`/`token_file:`) and `hmac:`, not both");
    auto h = s.get_map("hmac");
    if (!h.ok()) return h.status();
    auto secret = h->require_string("secret");
    if (!secret.ok()) return secret.status();
    if (secret->size() < 16) return fail("hmac", "the HMAC secret must have at least 16 bytes");
    auto header = h->get_string("header", "x-patchbay-signature");
    if (!header.ok()) return header.status();
    if (auto unknown = h->check_unknown_keys(); !unknown.ok()) return unknown;
    out.hmac = true;
    out.secret = *secret;
    out.header = *header;
  } else {
    auto tokens = s.get_string_list("tokens", {});
    if (!tokens.ok()) return tokens.status();
    auto file = s.get_string("token_file", "");
    if (!file.ok()) return file.status();
    if (!file->empty()) {
      std::ifstream in(*file);
      if (!in) return fail("token_file", "cannot read token file '" + *file + "'");
      for (std::string line; std::getline(in, line);) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
        std::size_t start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#') continue;
        tokens->push_back(line.substr(start));
      }
    }
    auto header = s.get_string("header", "authorization");
    if (!header.ok()) return header.status();
    auto token = s.get_string("token", tokens->empty() ? std::string() : tokens->front());
    if (!token.ok()) return token.status();
    if (out.verify && tokens->empty())
      return fail(s.has("token_file") ? "token_file" : "tokens",
                  "no accepted token: give `tokens: [..]` or `token_file:` (or `hmac:`), or set `verify: false`");
    if (out.sign && token->empty()) return fail("token", "no token to send: give `token:` or `tokens:`, or set `sign: false`");
    for (const auto& t : *tokens) {
      if (t.empty()) return fail("tokens", "an empty token is not allowed");
      out.accepted.push_back(sha256(t));
    }
    out.token = *token;
    out.header = *header;
  }
  if (out.header.empty() || out.header.find_first_of(" \t\r\n:") != std::string::npos)
    return fail("header", "'" + out.header + "' is not a valid header name");
  return std::make_shared<AuthMiddleware>(ctx.inner, ctx.binding, std::move(out));
}

absl::Status register_auth(Registry& registry) { return registry.add_middleware("auth", make_auth); }

}  // namespace

std::string hmac_signature(std::string_view secret, std::string_view topic, const Message& msg) {
  std::string text = "patchbay-hmac-v1\n";
  text.append(topic);
  text += '\n';
  text += msg.id;
  text += '\n';
  text.append(msg.payload.view());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(text.data()),
       text.size(), mac, &len);
  return "sha256=" + hex(mac, len);
}

std::uint64_t rejected(std::string_view binding) { return count_of(binding).value_or(0); }

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_middleware(Registry& registry) { return register_auth(registry); }
#endif

}  // namespace patchbay::plugins::auth

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::plugins::auth::register_auth)
#endif
