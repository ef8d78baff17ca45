// The HTTP test helpers (test_support.hpp): temporary directories, a self-signed certificate
// made with OpenSSL's C API at test time (no `openssl` command, no certificate checked in that
// could expire), and the scripted raw test server.
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace patchbay::http::testing_support {

namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "patchbay-http-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

namespace {

template <typename T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Freer<EVP_PKEY, EVP_PKEY_free>>;
using Certificate = std::unique_ptr<X509, Freer<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Freer<BIO, BIO_free_all>>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("make_test_certificate: ") + what + " failed");
}

void add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, value);
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(added == 1, "X509_add_ext");
}

template <typename Write>
std::string to_pem(Write write) {
  Bio bio(BIO_new(BIO_s_mem()));
  check(bio && write(bio.get()) == 1, "PEM_write");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

}  // namespace

TestCertificate make_test_certificate(const std::string& dir) {
  Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  check(key != nullptr, "EVP_PKEY_Q_keygen");
  Certificate cert(X509_new());
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), 2) == 1, "X509_set_version");  // v3, for the extensions
  check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) == 1, "serial number");
  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60 * 60) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 60 * 60) != nullptr, "notAfter");
  X509_NAME* name = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                                   -1, 0) == 1,
        "subject name");
  check(X509_set_issuer_name(cert.get(), name) == 1, "issuer name");
  check(X509_set_pubkey(cert.get(), key.get()) == 1, "X509_set_pubkey");
  // A self-signed certificate is its own trust anchor: a CA as far as OpenSSL is concerned.
  add_extension(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert.get(), NID_subject_key_identifier, "hash");
  add_extension(cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "X509_sign");

  TestCertificate result;
  result.certificate_pem = to_pem([&](BIO* bio) { return PEM_write_bio_X509(bio, cert.get()); });
  result.private_key_pem = to_pem(
      [&](BIO* bio) { return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr); });
  result.certificate_file = (std::filesystem::path(dir) / "cert.pem").string();
  result.private_key_file = (std::filesystem::path(dir) / "key.pem").string();
  write_file(result.certificate_file, result.certificate_pem);
  write_file(result.private_key_file, result.private_key_pem);
  return result;
}

namespace {

constexpr asio::use_awaitable_t<executor> use_awaitable;

template <typename Stream>
class StreamConnection final : public ServerConnection {
 public:
  StreamConnection(Stream stream, int index) : ServerConnection(index), stream_(std::move(stream)) {}

  awaitable<std::optional<Request>> read_request() override {
    Request req;
    auto [ec, n] = co_await beast::http::async_read(stream_, buffer_, req, asio::as_tuple(use_awaitable));
    if (ec) co_return std::nullopt;
    co_return req;
  }

  awaitable<void> write(std::string bytes) override {
    co_await asio::async_write(stream_, asio::buffer(bytes), use_awaitable);
  }

  void close() override {
    boost::system::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }

  void reset() override {
    boost::system::error_code ignored;
    socket().set_option(asio::socket_base::linger(true, 0), ignored);
    socket().close(ignored);
  }

 private:
  tcp::socket& socket() { return beast::get_lowest_layer(stream_); }

  Stream stream_;
  beast::flat_buffer buffer_;
};

}  // namespace

struct TestServer::Impl {
  Impl(TestServer& s, Handler h, std::shared_ptr<ssl::context> t, const std::string& address)
      : server(s), handler(std::move(h)), tls(std::move(t)), acceptor(io, tcp::endpoint(asio::ip::make_address(address), 0)) {}

  awaitable<void> accept_loop() {
    for (int index = 0;; ++index) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(use_awaitable));
      if (ec) co_return;
      ++server.accepted_;
      asio::co_spawn(io, serve(std::move(socket), index), [](std::exception_ptr) {});
    }
  }

  awaitable<void> serve(tcp::socket socket, int index) {
    if (!tls) {
      StreamConnection<tcp::socket> connection(std::move(socket), index);
      co_await handler(connection);
      co_return;
    }
    beast::ssl_stream<tcp::socket> stream(std::move(socket), *tls);
    auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, asio::as_tuple(use_awaitable));
    if (ec) co_return;
    StreamConnection<beast::ssl_stream<tcp::socket>> connection(std::move(stream), index);
    co_await handler(connection);
  }

  TestServer& server;
  Handler handler;
  std::shared_ptr<ssl::context> tls;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::thread thread;
};

TestServer::TestServer(Handler handler, std::shared_ptr<ssl::context> tls, const std::string& address)
    : impl_(std::make_unique<Impl>(*this, std::move(handler), std::move(tls), address)) {
  asio::co_spawn(impl_->io, impl_->accept_loop(), [](std::exception_ptr) {});
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

TestServer::~TestServer() {
  impl_->io.stop();
  impl_->thread.join();
}

unsigned short TestServer::port() const { return impl_->acceptor.local_endpoint().port(); }

std::string TestServer::url(std::string_view target) const {
  return url_with_host(impl_->acceptor.local_endpoint().address().to_string(), target);
}

std::string TestServer::url_with_host(std::string_view host, std::string_view target) const {
  return std::string(impl_->tls ? "https://" : "http://") + std::string(host) + ":" + std::to_string(port()) +
         std::string(target);
}

std::string http_response(std::string_view body, std::string_view extra_headers, std::string_view status) {
  return "HTTP/1.1 " + std::string(status) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra_headers) + "\r\n" + std::string(body);
}

TestServer::Handler answer_with(std::string body) {
  return [body = std::move(body)](ServerConnection& c) -> awaitable<void> {
    while (auto req = co_await c.read_request()) co_await c.write(http_response(body));
  };
}

}  // namespace patchbay::http::testing_support
