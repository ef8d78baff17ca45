// patchbay/http/tls.hpp — TLS contexts for the HTTP server and client cores (OpenSSL).
//
// The server loads a PEM certificate chain and private key; the client verifies the peer
// against the system's trust store or a given CA file, and checks the host name. Contexts are
// immutable once made and may be shared by any number of connections on any thread.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace patchbay::http {

struct TlsServerOptions {
  std::string certificate_file;  ///< PEM: the certificate chain, leaf first
  std::string private_key_file;  ///< PEM: the private key
  TlsServerOptions() {}
};

struct TlsClientOptions {
  bool verify_peer = true;  ///< check the certificate chain and the host name
  std::string ca_file;      ///< PEM bundle to trust; empty: the system's default paths
  TlsClientOptions() {}
};

/// A server context (TLS 1.2+). Errors name the file and OpenSSL's reason.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> make_server_tls(const TlsServerOptions& options);

/// A client context (TLS 1.2+), verifying peers unless `verify_peer` is false.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> make_client_tls(const TlsClientOptions& options);

}  // namespace patchbay::http
