// Helpers shared by the zmq transport's tests: free loopback ports, unique ipc paths, and the
// YAML of a transport that talks to itself (the module loaded through `plugins:`).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace patchbay::zeromq::testing {

/// A TCP port that was free a moment ago (bound to port 0, then closed).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot probe a free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

inline std::string tcp_endpoint() { return "tcp://127.0.0.1:" + std::to_string(free_port()); }

/// A fresh ipc:// endpoint under /tmp (ipc paths are limited to about 100 bytes).
inline std::string ipc_endpoint(const std::string& role) {
  static std::atomic<unsigned> counter{0};
  return "ipc:///tmp/pbzmq-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + role;
}

struct Wiring {
  std::string pub, push, serve;
};

inline Wiring tcp_wiring() { return {tcp_endpoint(), tcp_endpoint(), tcp_endpoint()}; }
inline Wiring ipc_wiring() { return {ipc_endpoint("pub"), ipc_endpoint("push"), ipc_endpoint("rr")}; }

/// A transport `bus` that binds every role and connects to itself.
inline std::string self_config(const std::string& module, const Wiring& w, const std::string& extra = {}) {
  return "plugins: [ " + module + " ]\n"
         "transports:\n"
         "  bus:\n"
         "    type: zmq\n"
         "    publish: { bind: [ '" + w.pub + "' ] }\n"
         "    subscribe: { connect: [ '" + w.pub + "' ] }\n"
         "    push: { bind: [ '" + w.push + "' ] }\n"
         "    pull: { connect: [ '" + w.push + "' ] }\n"
         "    serve: { bind: [ '" + w.serve + "' ] }\n"
         "    request: { connect: [ '" + w.serve + "' ] }\n" +
         extra +
         "default_transport: bus\n";
}

/// Calls `make()` (which picks fresh endpoints each time) again when a port it probed was
/// taken by someone else in between (ctest runs tests in parallel).
template <typename Make>
auto retry_busy(Make make) {
  for (int attempt = 1;; ++attempt) {
    auto made = make();
    if (made.ok() || attempt == 5 || made.status().message().find("Address already in use") == std::string_view::npos)
      return made;
  }
}

}  // namespace patchbay::zeromq::testing
