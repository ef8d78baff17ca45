// The SSRF guard (see patchbay/http/ssrf.hpp): address classification, the allowlist, URL
// checks and resolution that checks every address it returns.
#include <patchbay/http/ssrf.hpp>

#include <absl/strings/str_cat.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <array>
#include <charconv>
#include <cstdint>

namespace patchbay::http::ssrf {

namespace {

namespace ip = boost::asio::ip;

/// One refused block and why.
struct Block {
  const char* cidr;
  const char* why;
};

// Checked in order: the first block that contains the address names the reason, so the
// specific ones (metadata endpoints) come before the ranges that contain them.
constexpr Block kRefusedV4[] = {
    {"169.254.169.254/32", "cloud metadata"},
    {"168.63.129.16/32", "cloud metadata (Azure)"},
    {"0.0.0.0/8", "unspecified (this network)"},
    {"10.0.0.0/8", "private (RFC 1918)"},
    {"100.64.0.0/10", "shared address space (CGNAT)"},
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local"},
    {"172.16.0.0/12", "private (RFC 1918)"},
    {"192.0.0.0/24", "reserved (IETF protocol assignments)"},
    {"192.0.2.0/24", "documentation (TEST-NET-1)"},
    {"192.88.99.0/24", "reserved (6to4 relay anycast)"},
    {"192.168.0.0/16", "private (RFC 1918)"},
    {"198.18.0.0/15", "benchmarking"},
    {"198.51.100.0/24", "documentation (TEST-NET-2)"},
    {"203.0.113.0/24", "documentation (TEST-NET-3)"},
    {"224.0.0.0/4", "multicast"},
    {"255.255.255.255/32", "broadcast"},
    {"240.0.0.0/4", "reserved"},
};

constexpr Block kRefusedV6[] = {
    {"fd00:ec2::254/128", "cloud metadata (AWS)"},
    {"::/128", "unspecified"},
    {"::1/128", "loopback"},
    {"64:ff9b:1::/48", "local-use NAT64"},
    {"100::/64", "discard-only"},
    {"2001:db8::/32", "documentation"},
    {"3fff::/20", "documentation"},
    {"2001:2::/48", "benchmarking"},
    {"2001:10::/28", "reserved (ORCHID)"},
    {"2001:20::/28", "reserved (ORCHIDv2)"},
    {"fc00::/7", "unique local (ULA)"},
    {"fe80::/10", "link-local"},
    {"fec0::/10", "site-local"},
    {"ff00::/8", "multicast"},
};

const std::vector<std::pair<Cidr, const char*>>& refused_blocks() {
  static const auto blocks = [] {
    std::vector<std::pair<Cidr, const char*>> out;
    for (const auto& b : kRefusedV4) out.emplace_back(*Cidr::parse(b.cidr), b.why);
    for (const auto& b : kRefusedV6) out.emplace_back(*Cidr::parse(b.cidr), b.why);
    return out;
  }();
  return blocks;
}

bool allowed(const ip::address& a, const Policy& policy) {
  for (const auto& c : policy.allow)
    if (c.contains(a)) return true;
  return false;
}

ip::address_v4 v4_at(const ip::address_v6::bytes_type& b, std::size_t at, bool invert = false) {
  ip::address_v4::bytes_type out{};
  for (std::size_t i = 0; i < 4; ++i) out[i] = static_cast<unsigned char>(invert ? ~b[at + i] : b[at + i]);
  return ip::address_v4(out);
}

bool has_prefix(const ip::address_v6::bytes_type& b, std::initializer_list<unsigned char> prefix) {
  std::size_t i = 0;
  for (auto p : prefix)
    if (b[i++] != p) return false;
  return true;
}

std::optional<std::string> refused_v4(const ip::address_v4& a, const Policy& policy) {
  if (allowed(a, policy)) return std::nullopt;
  for (const auto& [cidr, why] : refused_blocks())
    if (cidr.contains(a)) return std::string(why);
  return std::nullopt;
}

/// A number in inet_aton's notation: decimal, octal (leading 0) or hex (0x).
std::optional<std::uint64_t> aton_part(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int base = 10;
  if (s.size() > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
    if (s.empty()) return std::uint64_t{0};  // "0x" is 0 to inet_aton
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  if (s.size() > 16) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

absl::StatusOr<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  std::string addr(text.substr(0, slash));
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  boost::system::error_code ec;
  Cidr c;
  c.network = ip::make_address(addr, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("'", std::string(text), "' is not an address or CIDR block"));
  const unsigned max = c.network.is_v4() ? 32 : 128;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    auto p = text.substr(slash + 1);
    unsigned n = 0;
    auto [end, perr] = std::from_chars(p.data(), p.data() + p.size(), n);
    if (p.empty() || perr != std::errc() || end != p.data() + p.size() || n > max) {
      return absl::InvalidArgumentError(absl::StrCat("'", std::string(text), "': prefix length must be 0..", max));
    }
    c.prefix = n;
  }
  return c;
}

bool Cidr::contains(const ip::address& a) const noexcept {
  if (a.is_v4() != network.is_v4()) return false;
  auto match = [this](const auto& x, const auto& y) {
    for (unsigned bit = 0; bit < prefix; ++bit) {
      const unsigned mask = 0x80u >> (bit % 8);
      if ((x[bit / 8] & mask) != (y[bit / 8] & mask)) return false;
    }
    return true;
  };
  if (a.is_v4()) return match(a.to_v4().to_bytes(), network.to_v4().to_bytes());
  return match(a.to_v6().to_bytes(), network.to_v6().to_bytes());
}

std::string Cidr::to_string() const { return absl::StrCat(network.to_string(), "/", prefix); }

absl::StatusOr<Policy> Policy::parse(const std::vector<std::string>& cidrs) {
  Policy p;
  for (const auto& text : cidrs) {
    auto c = Cidr::parse(text);
    if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat("SSRF allowlist: ", c.status().message()));
    p.allow.push_back(*c);
  }
  return p;
}

std::optional<std::string> refused(const ip::address& address, const Policy& policy) {
  if (address.is_v4()) return refused_v4(address.to_v4(), policy);
  const auto v6 = address.to_v6();
  if (v6.scope_id() != 0 && !allowed(address, policy)) return std::string("scoped (zone) address");
  // The connection goes to the embedded IPv4 address: judge that one, allowlist included.
  if (v6.is_v4_mapped()) {
    if (auto why = refused_v4(v4_at(v6.to_bytes(), 12), policy)) return "IPv4-mapped " + *why;
    return std::nullopt;
  }
  if (allowed(address, policy)) return std::nullopt;
  for (const auto& [cidr, why] : refused_blocks())
    if (cidr.contains(address)) return std::string(why);
  const auto b = v6.to_bytes();
  // ::a.b.c.d (deprecated IPv4-compatible): the first 96 bits zero (:: and ::1 are caught above).
  if (std::all_of(b.begin(), b.begin() + 12, [](unsigned char x) { return x == 0; })) {
    return std::string("IPv4-compatible IPv6 (deprecated)");
  }
  if (has_prefix(b, {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0})) {  // 64:ff9b::/96 NAT64
    if (auto why = refused_v4(v4_at(b, 12), policy)) return "NAT64 of " + *why;
    return std::nullopt;
  }
  if (has_prefix(b, {0x20, 0x02})) {  // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD
    if (auto why = refused_v4(v4_at(b, 2), policy)) return "6to4 of " + *why;
    return std::nullopt;
  }
  if (has_prefix(b, {0x20, 0x01, 0x00, 0x00})) {  // Teredo: server at 32..63, client (inverted) at 96..127
    if (auto why = refused_v4(v4_at(b, 4), policy)) return "Teredo server " + *why;
    if (auto why = refused_v4(v4_at(b, 12, true), policy)) return "Teredo client " + *why;
    return std::nullopt;
  }
  if ((b[0] & 0xe0) != 0x20) return std::string("not global unicast (outside 2000::/3)");
  return std::nullopt;
}

std::optional<ip::address_v4> parse_numeric_ipv4(std::string_view host) {
  if (host.empty() || host.back() == '.') {
    // inet_aton refuses a trailing dot; so do we (a name resolver would not).
    return std::nullopt;
  }
  std::array<std::uint64_t, 4> parts{};
  std::size_t n = 0;
  for (std::string_view rest = host;;) {
    if (n == 4) return std::nullopt;
    const auto dot = rest.find('.');
    auto v = aton_part(rest.substr(0, dot));
    if (!v) return std::nullopt;
    parts[n++] = *v;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  // a; a.b (b: 24 bits); a.b.c (c: 16 bits); a.b.c.d.
  std::uint64_t value = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    if (parts[i] > 0xff) return std::nullopt;
    value |= parts[i] << (8 * (3 - i));
  }
  const std::uint64_t last_max = n == 1 ? 0xffffffffu : (0xffffffffu >> (8 * (n - 1)));
  if (parts[n - 1] > last_max) return std::nullopt;
  value |= parts[n - 1];
  return ip::address_v4(static_cast<std::uint32_t>(value));
}

namespace {

struct Parsed {
  std::string host;
  std::optional<ip::address> address;
  std::uint16_t port = 0;
};

absl::StatusOr<Parsed> parse_url(std::string_view url) {
  const auto parsed = boost::urls::parse_uri(boost::urls::string_view(url.data(), url.size()));
  if (!parsed) return absl::InvalidArgumentError(absl::StrCat("invalid URL '", std::string(url), "'"));
  const auto& u = *parsed;
  const bool https = u.scheme_id() == boost::urls::scheme::https;
  if (!https && u.scheme_id() != boost::urls::scheme::http) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheme '", std::string(u.scheme()), "' is not http or https"));
  }
  if (u.has_userinfo()) return absl::InvalidArgumentError("URL must not carry userinfo (user:password@)");
  Parsed out;
  switch (u.host_type()) {
    case boost::urls::host_type::name:
      out.host = u.host_name();
      break;
    case boost::urls::host_type::ipv4:
      out.address = ip::make_address_v4(u.host_ipv4_address().to_bytes());
      out.host = out.address->to_string();
      break;
    case boost::urls::host_type::ipv6:
      out.address = ip::make_address_v6(u.host_ipv6_address().to_bytes());
      out.host = out.address->to_string();
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("URL '", std::string(url), "' has no usable host"));
  }
  if (out.host.empty()) return absl::InvalidArgumentError(absl::StrCat("URL '", std::string(url), "' has no host"));
  if (u.has_port() && !u.port().empty()) {
    const auto text = u.port();
    unsigned port = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("URL port '", std::string(text), "' is not 1..65535"));
    }
    out.port = static_cast<std::uint16_t>(port);
  } else {
    out.port = https ? 443 : 80;
  }
  if (!out.address) {
    if (auto v4 = parse_numeric_ipv4(out.host)) out.address = *v4;
  }
  return out;
}

}  // namespace

absl::Status check_url_syntax(std::string_view url) { return parse_url(url).status(); }

awaitable<absl::StatusOr<std::vector<tcp::endpoint>>> resolve_checked(std::string_view url, const Policy& policy) {
  auto parsed = parse_url(url);  // before the first suspension: `url` is only borrowed
  if (!parsed.ok()) co_return parsed.status();
  const Policy local = policy;
  std::vector<tcp::endpoint> out;
  if (parsed->address) {
    out.emplace_back(*parsed->address, parsed->port);
  } else {
    tcp::resolver resolver(co_await asio::this_coro::executor);
    boost::system::error_code ec;
    auto results = co_await resolver.async_resolve(parsed->host, std::to_string(parsed->port),
                                                   asio::redirect_error(asio::use_awaitable_t<executor>{}, ec));
    if (ec) {
      co_return absl::UnavailableError(absl::StrCat("host '", parsed->host, "' does not resolve: ", ec.message()));
    }
    for (const auto& r : results) out.push_back(r.endpoint());
    if (out.empty()) co_return absl::UnavailableError(absl::StrCat("host '", parsed->host, "' has no address"));
  }
  for (const auto& ep : out) {
    if (auto why = refused(ep.address(), local)) {
      co_return absl::PermissionDeniedError(absl::StrCat("refused address ", ep.address().to_string(), " (", *why,
                                                         ") for host '", parsed->host, "'"));
    }
  }
  co_return out;
}

}  // namespace patchbay::http::ssrf
