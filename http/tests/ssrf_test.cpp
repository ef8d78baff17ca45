// The SSRF guard: a table of URLs that must be refused — every encoding of loopback, private,
// link-local, metadata, ... — against a listening loopback socket that counts its accepts (0),
// the allowlist, and the classification of single addresses.
#include <patchbay/http/ssrf.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

namespace {

using namespace patchbay;
using namespace patchbay::http;
namespace ip = boost::asio::ip;

/// A loopback listener that counts the connections it accepts.
struct CountingListener {
  asio::io_context io;
  ip::tcp::acceptor acceptor{io, {ip::make_address("127.0.0.1"), 0}};
  std::atomic<int> accepts{0};
  std::vector<std::shared_ptr<ip::tcp::socket>> held;

  CountingListener() { accept(); }
  void accept() {
    auto s = std::make_shared<ip::tcp::socket>(io);
    acceptor.async_accept(*s, [this, s](boost::system::error_code ec) {
      if (ec) return;
      ++accepts;
      held.push_back(s);
      accept();
    });
  }
  std::string port() const { return std::to_string(acceptor.local_endpoint().port()); }
};

/// What a sender does with a URL: resolve_checked, and connect only to what it returned.
awaitable<absl::Status> deliver(std::string url, ssrf::Policy policy) {
  auto endpoints = co_await ssrf::resolve_checked(url, policy);
  if (!endpoints.ok()) co_return endpoints.status();
  ip::tcp::socket socket(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  co_await asio::async_connect(socket, *endpoints, asio::redirect_error(asio::use_awaitable_t<executor>{}, ec));
  if (ec) co_return absl::UnavailableError(ec.message());
  co_return absl::OkStatus();
}

absl::Status run_deliver(CountingListener& l, const std::string& url, const ssrf::Policy& policy) {
  auto f = asio::co_spawn(l.io, deliver(url, policy), asio::use_future);
  l.io.restart();
  while (f.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) l.io.run_one();
  // Let the acceptor see a connection that was made.
  l.io.poll();
  return f.get();
}

TEST(Ssrf, TableOfRefusedUrlsMakesNoConnection) {
  CountingListener l;
  const std::string p = l.port();
  const std::vector<std::string> urls = {
      // loopback, every way of writing it
      "http://127.0.0.1:" + p + "/",
      "http://localhost:" + p + "/",
      "http://LOCALHOST:" + p + "/hook",
      "http://2130706433:" + p + "/",
      "http://0x7f000001:" + p + "/",
      "http://0x7f.1:" + p + "/",
      "http://0x7f.0x0.0x0.0x1:" + p + "/",
      "http://0177.0.0.1:" + p + "/",
      "http://017700000001:" + p + "/",
      "http://127.1:" + p + "/",
      "http://127.0.1:" + p + "/",
      "http://127.255.255.254:" + p + "/",
      "http://[::1]:" + p + "/",
      "http://[0:0:0:0:0:0:0:1]:" + p + "/",
      "http://[::ffff:127.0.0.1]:" + p + "/",
      "http://[::ffff:7f00:1]:" + p + "/",
      "http://[::127.0.0.1]:" + p + "/",
      "http://[64:ff9b::127.0.0.1]:" + p + "/",
      "http://[2002:7f00:1::1]:" + p + "/",
      "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:" + p + "/",  // Teredo, client 127.0.0.1
      // unspecified
      "http://0.0.0.0:" + p + "/",
      "http://0:" + p + "/",
      "http://[::]:" + p + "/",
      // private, CGNAT, link-local, metadata
      "http://10.0.0.1:" + p + "/",
      "http://172.16.5.4:" + p + "/",
      "http://192.168.1.1:" + p + "/",
      "http://100.64.0.1:" + p + "/",
      "http://169.254.1.1:" + p + "/",
      "http://169.254.169.254/latest/meta-data/",
      "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
      "http://[fd00:ec2::254]/latest/meta-data/",
      "http://168.63.129.16/machine",
      // IPv6 special ranges
      "http://[fe80::1]:" + p + "/",
      "http://[fc00::1]:" + p + "/",
      "http://[fd12:3456::1]:" + p + "/",
      "http://[fec0::1]:" + p + "/",
      "http://[ff02::1]:" + p + "/",
      "http://[2001:db8::1]:" + p + "/",
      // multicast, broadcast, reserved, documentation, benchmarking
      "http://224.0.0.1:" + p + "/",
      "http://239.255.255.250:" + p + "/",
      "http://255.255.255.255:" + p + "/",
      "http://240.0.0.1:" + p + "/",
      "http://192.0.2.1:" + p + "/",
      "http://198.18.0.1:" + p + "/",
      // not http(s), userinfo, no host
      "ftp://127.0.0.1:" + p + "/",
      "gopher://127.0.0.1:" + p + "/_",
      "file:///etc/passwd",
      "http://user:pass@127.0.0.1:" + p + "/",
      "http://example.com@127.0.0.1:" + p + "/",
      "http:///nohost",
      "not a url",
  };
  ASSERT_GE(urls.size(), 30u);
  const ssrf::Policy none;
  for (const auto& url : urls) {
    auto status = run_deliver(l, url, none);
    EXPECT_FALSE(status.ok()) << url << " was not refused";
    EXPECT_TRUE(status.code() == absl::StatusCode::kPermissionDenied ||
                status.code() == absl::StatusCode::kInvalidArgument)
        << url << ": " << status;
    RecordProperty(url, std::string(status.message()));
  }
  EXPECT_EQ(l.accepts.load(), 0) << "a refused URL reached the listener";

  // The positive control: with loopback allowlisted the same listener is reached.
  auto allow = ssrf::Policy::parse({"127.0.0.0/8", "::1"});
  ASSERT_TRUE(allow.ok());
  EXPECT_TRUE(run_deliver(l, "http://127.0.0.1:" + p + "/", *allow).ok());
  EXPECT_TRUE(run_deliver(l, "http://127.1:" + p + "/", *allow).ok());
  EXPECT_TRUE(run_deliver(l, "http://[::ffff:127.0.0.1]:" + p + "/", *allow).ok());
  for (int i = 0; i < 100 && l.accepts.load() < 3; ++i) l.io.run_for(std::chrono::milliseconds(10));
  EXPECT_EQ(l.accepts.load(), 3);
  // The allowlist admits only what it names.
  EXPECT_EQ(run_deliver(l, "http://10.0.0.1:" + p + "/", *allow).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(run_deliver(l, "http://169.254.169.254/", *allow).code(), absl::StatusCode::kPermissionDenied);
}

TEST(Ssrf, ReasonsNameTheRange) {
  const ssrf::Policy none;
  auto why = [&](const char* a) { return ssrf::refused(ip::make_address(a), none).value_or("allowed"); };
  EXPECT_EQ(why("127.0.0.1"), "loopback");
  EXPECT_EQ(why("169.254.169.254"), "cloud metadata");
  EXPECT_EQ(why("fd00:ec2::254"), "cloud metadata (AWS)");
  EXPECT_EQ(why("100.100.100.200"), "shared address space (CGNAT)");
  EXPECT_EQ(why("::ffff:10.1.2.3"), "IPv4-mapped private (RFC 1918)");
  EXPECT_EQ(why("64:ff9b::a9fe:a9fe"), "NAT64 of cloud metadata");
  EXPECT_EQ(why("2002:c0a8:0101::1"), "6to4 of private (RFC 1918)");
  EXPECT_EQ(why("::1"), "loopback");
  EXPECT_EQ(why("::"), "unspecified");
  EXPECT_EQ(why("::8.8.8.8"), "IPv4-compatible IPv6 (deprecated)");
  EXPECT_EQ(why("1234::1"), "not global unicast (outside 2000::/3)");
  // Public addresses pass.
  EXPECT_EQ(why("8.8.8.8"), "allowed");
  EXPECT_EQ(why("1.1.1.1"), "allowed");
  EXPECT_EQ(why("2606:4700:4700::1111"), "allowed");
  EXPECT_EQ(why("::ffff:8.8.8.8"), "allowed");
  EXPECT_EQ(why("64:ff9b::8.8.8.8"), "allowed");
  EXPECT_EQ(why("2002:0808:0808::1"), "allowed");
}

TEST(Ssrf, NumericHostsReadLikeInetAton) {
  auto v4 = [](const char* h) {
    auto a = ssrf::parse_numeric_ipv4(h);
    return a ? a->to_string() : std::string("-");
  };
  EXPECT_EQ(v4("2130706433"), "127.0.0.1");
  EXPECT_EQ(v4("0x7f000001"), "127.0.0.1");
  EXPECT_EQ(v4("0x7f.1"), "127.0.0.1");
  EXPECT_EQ(v4("0177.0.0.1"), "127.0.0.1");
  EXPECT_EQ(v4("127.1"), "127.0.0.1");
  EXPECT_EQ(v4("127.0.1"), "127.0.0.1");
  EXPECT_EQ(v4("10.0x10.0377.1"), "10.16.255.1");
  EXPECT_EQ(v4("0"), "0.0.0.0");
  EXPECT_EQ(v4("example.com"), "-");
  EXPECT_EQ(v4("1.2.3.4.5"), "-");
  EXPECT_EQ(v4("256.1.1.1"), "-");
  EXPECT_EQ(v4("1.2.3.256"), "-");
  EXPECT_EQ(v4("4294967296"), "-");
  EXPECT_EQ(v4("08.1.1.1"), "-");  // 8 is not an octal digit
  EXPECT_EQ(v4("1.2.3."), "-");
}

TEST(Ssrf, UrlSyntaxAndPolicyErrors) {
  EXPECT_TRUE(ssrf::check_url_syntax("https://hooks.example.com/a?b=c").ok());
  EXPECT_TRUE(ssrf::check_url_syntax("http://[2606:4700::1]:8080/").ok());
  auto bad = [](const char* u) { return std::string(ssrf::check_url_syntax(u).message()); };
  EXPECT_NE(bad("ftp://example.com/").find("not http or https"), std::string::npos);
  EXPECT_NE(bad("http://u:p@example.com/").find("userinfo"), std::string::npos);
  EXPECT_NE(bad("::not a url::").find("invalid URL"), std::string::npos);
  EXPECT_NE(bad("http://example.com:99999/").find("port"), std::string::npos);
  EXPECT_FALSE(ssrf::Policy::parse({"10.0.0.0/33"}).ok());
  EXPECT_FALSE(ssrf::Policy::parse({"not-an-address"}).ok());
  auto p = ssrf::Policy::parse({"10.1.0.0/16", "[fd00::]/8"});
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(ssrf::refused(ip::make_address("10.1.2.3"), *p).has_value());
  EXPECT_TRUE(ssrf::refused(ip::make_address("10.2.0.1"), *p).has_value());
  EXPECT_FALSE(ssrf::refused(ip::make_address("fd12::1"), *p).has_value());
}

}  // namespace
