// Tests of the TLS contexts (tls.hpp) and of the client core over TLS, with a self-signed
// certificate made at test time: trusting it through ca_file works, the default trust store and
// a wrong host name are refused with an error that says why, verify_peer=false accepts it, and
// loading errors name the file at fault.
#include "test_support.hpp"

#include <patchbay/error.hpp>
#include <patchbay/http/client.hpp>
#include <patchbay/http/tls.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

namespace patchbay::http {
namespace {

using namespace std::chrono_literals;
using namespace testing_support;
using ::testing::HasSubstr;

Request get_request() {
  Request req;
  req.method(bhttp::verb::get);
  return req;
}

// The message `call` failed with; empty when it succeeded.
awaitable<std::string> failure_of(awaitable<Response> call) {
  std::string what;
  try {
    co_await std::move(call);
  } catch (const boost::system::system_error& e) {
    what = e.what();
  }
  co_return what;
}

class Tls : public ::testing::Test {
 protected:
  std::shared_ptr<asio::ssl::context> server_tls() {
    TlsServerOptions options;
    options.certificate_file = certificate.certificate_file;
    options.private_key_file = certificate.private_key_file;
    auto made = make_server_tls(options);
    EXPECT_TRUE(made.ok()) << made.status();
    return made.ok() ? *made : nullptr;
  }

  ClientOptions trusting() {
    ClientOptions options;
    options.tls.ca_file = certificate.certificate_file;
    return options;
  }

  TempDir dir;
  TestCertificate certificate = make_test_certificate(dir.path());
};

TEST_F(Tls, GeneratedCertificateFilesHoldThePemTexts) {
  EXPECT_THAT(certificate.certificate_pem, HasSubstr("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT(certificate.private_key_pem, HasSubstr("-----BEGIN PRIVATE KEY-----"));
  std::ifstream in(certificate.certificate_file);
  const std::string on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, certificate.certificate_pem);
}

TEST_F(Tls, MakeServerTlsNamesAMissingFile) {
  TlsServerOptions options;
  options.certificate_file = dir.path() + "/missing-cert.pem";
  options.private_key_file = certificate.private_key_file;
  auto made = make_server_tls(options);
  ASSERT_FALSE(made.ok());
  EXPECT_THAT(std::string(made.status().message()), HasSubstr(options.certificate_file));

  options.certificate_file = certificate.certificate_file;
  options.private_key_file = dir.path() + "/missing-key.pem";
  made = make_server_tls(options);
  ASSERT_FALSE(made.ok());
  EXPECT_THAT(std::string(made.status().message()), HasSubstr(options.private_key_file));
}

TEST_F(Tls, MakeServerTlsNamesAFileThatIsNotPem) {
  const std::string garbage = dir.path() + "/garbage.pem";
  std::ofstream(garbage) << "not a certificate\n";
  TlsServerOptions options;
  options.certificate_file = garbage;
  options.private_key_file = certificate.private_key_file;
  auto made = make_server_tls(options);
  ASSERT_FALSE(made.ok());
  EXPECT_THAT(std::string(made.status().message()), HasSubstr(garbage));
}

TEST_F(Tls, MakeServerTlsRejectsAKeyOfAnotherCertificate) {
  TempDir other_dir;
  const TestCertificate other = make_test_certificate(other_dir.path());
  TlsServerOptions options;
  options.certificate_file = certificate.certificate_file;
  options.private_key_file = other.private_key_file;
  auto made = make_server_tls(options);
  ASSERT_FALSE(made.ok());
  EXPECT_THAT(std::string(made.status().message()), HasSubstr(other.private_key_file));
  EXPECT_THAT(std::string(made.status().message()), HasSubstr("mismatch"));
}

TEST_F(Tls, MakeClientTlsNamesAMissingCaFile) {
  TlsClientOptions options;
  options.ca_file = dir.path() + "/missing-ca.pem";
  auto made = make_client_tls(options);
  ASSERT_FALSE(made.ok());
  EXPECT_THAT(std::string(made.status().message()), HasSubstr(options.ca_file));
}

TEST_F(Tls, ClientTrustingTheCertificateSucceeds) {
  TestServer server(answer_with("secret"), server_tls());
  run_async([&]() -> awaitable<void> {
    Client client(pool, trusting());
    // By name (SNI and DNS:localhost) and by address (IP:127.0.0.1), over one pooled connection each.
    const std::vector<std::string> urls = {server.url_with_host("localhost"), server.url()};
    for (const std::string& url : urls) {
      for (int i = 0; i < 2; ++i) {
        Response res = co_await client.request(url, get_request());
        EXPECT_EQ(res.body(), "secret") << url;
      }
    }
    EXPECT_EQ(server.accepted(), 2);
  });
}

TEST_F(Tls, DefaultTrustStoreRejectsTheSelfSignedCertificate) {
  TestServer server(answer_with("secret"), server_tls());
  run_async([&]() -> awaitable<void> {
    Client client(pool);
    const std::string what = co_await failure_of(client.request(server.url_with_host("localhost"), get_request()));
    EXPECT_THAT(what, HasSubstr("certificate verification failed"));
    EXPECT_THAT(what, HasSubstr("self-signed"));
  });
}

TEST_F(Tls, VerifyPeerFalseAcceptsAnyCertificate) {
  TestServer server(answer_with("secret"), server_tls());
  run_async([&]() -> awaitable<void> {
    ClientOptions options;
    options.tls.verify_peer = false;
    Client client(pool, options);
    Response res = co_await client.request(server.url_with_host("localhost"), get_request());
    EXPECT_EQ(res.body(), "secret");
  });
}

// 127.0.0.2 reaches the loopback too, but the certificate names only 127.0.0.1 and localhost.
TEST_F(Tls, WrongHostNameFails) {
  {
    asio::io_context io;
    boost::system::error_code ec;
    asio::ip::tcp::acceptor probe(io);
    probe.open(asio::ip::tcp::v4(), ec);
    if (!ec) probe.bind(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.2"), 0), ec);
    if (ec) GTEST_SKIP() << "cannot bind 127.0.0.2: " << ec.message();
  }
  TestServer server(answer_with("secret"), server_tls(), "127.0.0.2");
  run_async([&]() -> awaitable<void> {
    Client client(pool, trusting());
    const std::string what = co_await failure_of(client.request(server.url(), get_request()));
    EXPECT_THAT(what, HasSubstr("certificate verification failed"));
    EXPECT_THAT(what, HasSubstr("mismatch"));
  });
}

TEST_F(Tls, OpenStreamsOverTls) {
  TestServer server(
      [](ServerConnection& c) -> awaitable<void> {
        if (auto req = co_await c.read_request(); !req) co_return;
        co_await c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
      },
      server_tls());
  run_async([&]() -> awaitable<void> {
    Client client(pool, trusting());
    auto stream = co_await client.open(server.url_with_host("localhost"), get_request());
    std::string body;
    for (;;) {
      const std::string_view piece = co_await stream->read_some();
      if (piece.empty()) break;
      body += piece;
    }
    EXPECT_EQ(body, "hello");
  });
}

}  // namespace
}  // namespace patchbay::http
