// TLS contexts for the HTTP server and client cores (tls.hpp). The OpenSSL settings live here
// in one place (TLS 1.2 at least, peer verification on by default), and every error names the
// file at fault, because a wrong path or a mismatched key is the usual start-up mistake.
#include <patchbay/http/tls.hpp>

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>

#include <filesystem>
#include <system_error>

namespace patchbay::http {
namespace {

namespace ssl = boost::asio::ssl;

// OpenSSL's own message for a missing file ("system lib") says neither what nor where.
absl::Status check_file(const char* what, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat("no ", what, " file given"));
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return absl::NotFoundError(absl::StrCat(what, " file '", path, "' does not exist or is not a regular file"));
  return absl::OkStatus();
}

absl::Status load_error(const char* what, const std::string& path, const boost::system::error_code& ec) {
  return absl::InvalidArgumentError(absl::StrCat("cannot load the ", what, " from '", path, "': ", ec.message()));
}

std::shared_ptr<ssl::context> make_context(ssl::context::method method) {
  auto context = std::make_shared<ssl::context>(method);
  context->set_options(ssl::context::default_workarounds);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  return context;
}

}  // namespace

absl::StatusOr<std::shared_ptr<ssl::context>> make_server_tls(const TlsServerOptions& options) {
  if (auto status = check_file("TLS certificate", options.certificate_file); !status.ok()) return status;
  if (auto status = check_file("TLS private key", options.private_key_file); !status.ok()) return status;
  auto context = make_context(ssl::context::tls_server);
  boost::system::error_code ec;
  context->use_certificate_chain_file(options.certificate_file, ec);
  if (ec) return load_error("TLS certificate chain", options.certificate_file, ec);
  // OpenSSL checks here that the key belongs to the certificate ("key values mismatch").
  context->use_private_key_file(options.private_key_file, ssl::context::pem, ec);
  if (ec) return load_error("TLS private key", options.private_key_file, ec);
  return context;
}

absl::StatusOr<std::shared_ptr<ssl::context>> make_client_tls(const TlsClientOptions& options) {
  auto context = make_context(ssl::context::tls_client);
  boost::system::error_code ec;
  if (options.ca_file.empty()) {
    context->set_default_verify_paths(ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot load the system's trusted certificates: ", ec.message()));
  } else {
    if (auto status = check_file("TLS CA", options.ca_file); !status.ok()) return status;
    context->load_verify_file(options.ca_file, ec);
    if (ec) return load_error("trusted TLS certificates", options.ca_file, ec);
  }
  // The host name is checked per connection (client.cpp), against the name in the URL.
  context->set_verify_mode(options.verify_peer ? ssl::verify_peer : ssl::verify_none);
  return context;
}

}  // namespace patchbay::http
