// http_bench_poll_client — many idle long polls in one process, for the memory benchmark
// (driven by bench/poll_bench.sh). Plain non-blocking sockets and one epoll loop, no HTTP
// library. Each connection sends `GET <path> HTTP/1.1` and then just waits: a held long poll
// sends nothing until it is answered. Prints "connected <n>" once every request was sent, then
// holds the connections until SIGINT/SIGTERM and resets them (SO_LINGER 0) on exit.
//
//   http_bench_poll_client --port=P [--connections=10000] [--path=/topics/bench/poll?wait=600]
#include "http_common.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

namespace pbh = patchbay::bench::http;
volatile std::sig_atomic_t g_stop = 0;

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  const pbh::Flags flags(argc, argv);
  pbh::raise_open_files_limit();
  const auto port = static_cast<std::uint16_t>(flags.num("port", 0));
  if (port == 0) {
    std::fprintf(stderr, "usage: http_bench_poll_client --port=P [--connections=N] [--path=...]\n");
    return 2;
  }
  const auto n = static_cast<std::size_t>(flags.num("connections", 10000));
  const std::string request = "GET " + flags.get("path", "/topics/bench/poll?wait=600") +
                              " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int ep = ::epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  std::vector<int> fds(n, -1);
  std::size_t next = 0, connecting = 0, sent = 0, failed = 0;
  while (sent + failed < n && !g_stop) {
    while (next < n && connecting < 256) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) die("socket");
      fds[next] = fd;
      if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 && errno != EINPROGRESS) die("connect");
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.u32 = static_cast<std::uint32_t>(next);
      if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
      ++connecting;
      ++next;
    }
    epoll_event evs[256];
    const int got = ::epoll_wait(ep, evs, 256, 10);
    for (int i = 0; i < got; ++i) {
      const int fd = fds[evs[i].data.u32];
      --connecting;
      ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err || ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
        ++failed;
        continue;
      }
      ++sent;
    }
  }
  if (failed) std::fprintf(stderr, "http_bench_poll_client: %zu of %zu connections failed\n", failed, n);
  std::printf("connected %zu\n", sent);
  std::fflush(stdout);
  while (!g_stop) ::pause();
  for (int fd : fds) {
    if (fd < 0) continue;
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
  }
  return failed ? 1 : 0;
}
