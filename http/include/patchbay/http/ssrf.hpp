// patchbay/http/ssrf.hpp — the guard that keeps server-side requests (webhook deliveries) away
// from internal addresses.
//
// A URL a remote party registers (a webhook endpoint) must not make the server talk to itself,
// its network or its cloud's metadata service. By default every address that is not public
// unicast is refused: loopback, private (RFC 1918), link-local, CGNAT (100.64.0.0/10),
// multicast, unspecified, broadcast, reserved and documentation ranges, benchmarking, the cloud
// metadata endpoints (169.254.169.254, fd00:ec2::254, 168.63.129.16), IPv6 unique-local
// (fc00::/7), site-local (fec0::/10), the deprecated IPv4-compatible form (::a.b.c.d), and IPv6
// outside global unicast (2000::/3). IPv6 forms that embed an IPv4 address are judged by that
// address: IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo
// (2001::/32, server and client). An explicit allowlist (`Policy::allow`, CIDR blocks) admits
// chosen ranges — the tests allowlist loopback.
//
// Host names are resolved here and EVERY resolved address is checked (one refused address
// refuses the URL, so DNS that answers with a public and a private address cannot slip one
// through); the caller connects only to the endpoints returned, never resolving again (no DNS
// rebinding window). Numeric hosts are read like inet_aton does (getaddrinfo accepts the same):
// 2130706433, 0x7f.1, 0177.0.0.1 and 127.1 are all 127.0.0.1.
//
// Functions only; thread-safe. resolve_checked() runs on the awaiting coroutine's executor and
// honours its cancellation.
#pragma once

#include <patchbay/asio.hpp>

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace patchbay::http::ssrf {

using tcp = boost::asio::ip::tcp;

/// An address block, "10.0.0.0/8" or "::1" (a single address without a prefix length).
struct Cidr {
  boost::asio::ip::address network;
  unsigned prefix = 0;

  static absl::StatusOr<Cidr> parse(std::string_view text);
  bool contains(const boost::asio::ip::address& a) const noexcept;
  std::string to_string() const;
};

struct Policy {
  /// Explicitly allowed blocks; empty = refuse every address that is not public.
  std::vector<Cidr> allow;

  /// Parses every entry (errors name the entry).
  static absl::StatusOr<Policy> parse(const std::vector<std::string>& cidrs);
};

/// Why `address` is refused ("loopback", "private (RFC 1918)", "cloud metadata", ...), or
/// std::nullopt when it may be connected to (public, or in the allowlist).
std::optional<std::string> refused(const boost::asio::ip::address& address, const Policy& policy);

/// The syntax checks, without resolving: an absolute http:// or https:// URL with a host and
/// no userinfo. The message names the reason ("invalid URL", "scheme 'ftp' is not http or
/// https", ...). For 400 answers at subscription time.
absl::Status check_url_syntax(std::string_view url);

/// A numeric host read as inet_aton reads it (1 to 4 parts, each decimal, octal with a leading
/// 0, or hex with 0x): "127.1" → 127.0.0.1. std::nullopt when `host` is not such a number.
std::optional<boost::asio::ip::address_v4> parse_numeric_ipv4(std::string_view host);

/// check_url_syntax(), then resolves the host (numeric forms without DNS) and checks every
/// address with refused(). Returns the endpoints to connect to (port from the URL, else 80 or
/// 443). Errors: InvalidArgument (syntax), PermissionDenied (a refused address, naming it and
/// why), Unavailable (the name does not resolve).
awaitable<absl::StatusOr<std::vector<tcp::endpoint>>> resolve_checked(std::string_view url, const Policy& policy);

}  // namespace patchbay::http::ssrf
