// ws_bench_client — many WebSocket subscribers in one process, for the WebSocket fan-out and
// memory benchmarks (driven by bench/ws_bench.sh; a copy of bench/http_sse_client.cpp with the
// WebSocket framing instead of the event-stream one). Plain non-blocking sockets and one epoll
// loop on one thread, no WebSocket library: it must cost the client less than the server.
//
// Each connection sends a WebSocket upgrade `GET <path>`, checks for a 101 status line, skips
// the header and then parses the server's (unmasked) frames: every text frame is one delivery;
// a ping is answered with a (masked, empty) pong. A connection is ready once its 101 arrived.
//
//   --mode=fanout  (default) opens --connections (1000), waits until all are ready, then tells
//                  the server's paced publisher, by UDP datagrams to the listener's port number,
//                  the fewest messages any live connection has received (at most every 1 ms).
//                  After --warmup seconds (1) of traffic it counts what all connections receive
//                  during --seconds (5) and prints
//                    result deliveries_per_s=... events=... seconds=... per_connection_min=...
//                           per_connection_max=... closed=... client_cpu=... [server_cpu=...]
//   --mode=idle    opens --connections (10000), waits until all are ready, prints
//                  "connected <n>", and holds them (answering pings) until SIGINT/SIGTERM.
//
// On exit every connection is reset (SO_LINGER 0), so repeated runs leave no TIME_WAIT sockets.
//
//   ws_bench_client --port=P [--mode=fanout|idle] [--connections=N] [--path=/topics/bench/ws]
#include "http_common.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

namespace pbh = patchbay::bench::http;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

double now_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// utime + stime of another process in seconds (/proc/<pid>/stat), or -1.
double process_cpu_s(long pid) {
  if (pid <= 0) return -1;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  std::FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
  if (!p) return -1;
  unsigned long utime = 0, stime = 0;
  // After ") ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double cpu_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "ws_bench_client: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

enum class State : std::uint8_t { connecting, header, events, closed };

struct Conn {
  int fd = -1;
  State state = State::connecting;
  std::uint8_t header_match = 0;  // bytes of "\r\n\r\n" matched
  std::uint8_t status_len = 0;
  char status[12] = {};        // "HTTP/1.1 101"
  std::uint8_t hdr_len = 0;    // bytes of the current frame header seen
  std::uint8_t hdr[10] = {};
  std::uint64_t skip = 0;      // payload bytes of the current frame still to skip
  std::uint64_t events = 0;    // 1 once ready, then + one per text frame
};

class Client {
 public:
  Client(std::uint16_t port, std::string path, std::size_t n) : port_(port), conns_(n) {
    request_ = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
               "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    ep_ = ::epoll_create1(0);
    if (ep_ < 0) die("epoll_create1");
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(port);
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }

  /// Opens every connection (at most `in_flight` connecting at a time) and waits until every
  /// one received its first frame. False on timeout or failures.
  bool open_all(double timeout_s, std::size_t in_flight = 256) {
    const double until = now_s() + timeout_s;
    while (ready_ + failed_ < conns_.size()) {
      while (next_ < conns_.size() && connecting_ < in_flight) start_connect(next_++);
      poll(10);
      if (g_stop || now_s() > until) break;
    }
    if (ready_ < conns_.size()) {
      std::fprintf(stderr, "ws_bench_client: %zu of %zu connections ready, %zu failed\n", ready_, conns_.size(),
                   failed_);
      return false;
    }
    return true;
  }

  /// One epoll round, up to `timeout_ms` of waiting.
  void poll(int timeout_ms) {
    epoll_event evs[512];
    const int n = ::epoll_wait(ep_, evs, 512, timeout_ms);
    for (int i = 0; i < n; ++i) {
      auto& c = conns_[evs[i].data.u32];
      if (c.state == State::connecting) {
        on_connected(c, evs[i].events);
      } else if (c.state != State::closed) {
        on_readable(c);
      }
    }
  }

  /// The fewest events any live connection received beyond its first frame.
  std::uint64_t min_received() const {
    std::uint64_t m = UINT64_MAX;
    for (const auto& c : conns_) {
      if (c.state == State::events && c.events - 1 < m) m = c.events - 1;
    }
    return m == UINT64_MAX ? 0 : m;
  }
  std::uint64_t max_received() const {
    std::uint64_t m = 0;
    for (const auto& c : conns_) m = std::max<std::uint64_t>(m, c.events ? c.events - 1 : 0);
    return m;
  }

  std::uint64_t total_events() const { return total_events_; }
  std::size_t closed() const { return closed_; }
  std::size_t ready() const { return ready_; }

  void reset_all() {
    for (auto& c : conns_) {
      if (c.fd < 0) continue;
      linger l{1, 0};
      ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      ::close(c.fd);
      c.fd = -1;
    }
  }

 private:
  void start_connect(std::size_t i) {
    auto& c = conns_[i];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) die("socket");
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_) < 0 && errno != EINPROGRESS) die("connect");
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) < 0) die("epoll_ctl");
    ++connecting_;
  }

  void on_connected(Conn& c, std::uint32_t events) {
    --connecting_;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err || (events & (EPOLLERR | EPOLLHUP))) {
      fail(c);
      return;
    }
    if (::send(c.fd, request_.data(), request_.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request_.size())) {
      fail(c);
      return;
    }
    c.state = State::header;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(&c - conns_.data());
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void fail(Conn& c) {
    const bool was_ready = c.state == State::events;
    c.state = State::closed;
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    if (was_ready) {
      ++closed_;
    } else {
      ++failed_;
    }
  }

  void on_readable(Conn& c) {
    const ssize_t got = ::read(c.fd, buf_, sizeof buf_);
    if (got <= 0) {
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
      fail(c);
      return;
    }
    // Many small frames and a client that never sends: without quick ACKs the server's side
    // waits for delayed ACKs (tens of ms) once its congestion window is full, and the
    // benchmark would measure that instead of the servers. TCP_QUICKACK is not sticky.
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    const char* p = buf_;
    const char* end = buf_ + got;
    if (c.state == State::header) {
      static constexpr char kEnd[] = "\r\n\r\n";
      for (; p < end; ++p) {
        if (c.status_len < sizeof c.status) c.status[c.status_len++] = *p;
        c.header_match = *p == kEnd[c.header_match] ? c.header_match + 1 : (*p == '\r' ? 1 : 0);
        if (c.header_match == 4) {
          ++p;
          if (std::memcmp(c.status + 8, " 101", 4) != 0) {
            std::fprintf(stderr, "ws_bench_client: status line '%.12s'\n", c.status);
            fail(c);
            return;
          }
          c.state = State::events;
          c.events = 1;
          ++ready_;
          break;
        }
      }
      if (c.state != State::events) return;
    }
    const std::uint64_t before = c.events;
    while (p < end) {
      if (c.skip > 0) {
        const auto take = std::min<std::uint64_t>(c.skip, static_cast<std::uint64_t>(end - p));
        p += take;
        c.skip -= take;
        continue;
      }
      c.hdr[c.hdr_len++] = static_cast<std::uint8_t>(*p++);
      if (c.hdr_len < 2) continue;
      const unsigned len7 = c.hdr[1] & 0x7f;
      const unsigned need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
      if (c.hdr_len < need) continue;
      std::uint64_t len = len7;
      if (len7 >= 126) {
        len = 0;
        for (unsigned k = 2; k < need; ++k) len = (len << 8) | c.hdr[k];
      }
      const unsigned opcode = c.hdr[0] & 0x0f;
      if (opcode == 1) ++c.events;
      if (opcode == 9 && len == 0) {
        static constexpr unsigned char pong[6] = {0x8A, 0x80, 0, 0, 0, 0};  // masked, empty
        (void)::send(c.fd, pong, sizeof pong, MSG_NOSIGNAL);
      }
      c.skip = len;
      c.hdr_len = 0;
    }
    total_events_ += c.events - before;
  }

  std::uint16_t port_;
  std::string request_;
  std::vector<Conn> conns_;
  int ep_ = -1;
  sockaddr_in addr_{};
  std::size_t next_ = 0, connecting_ = 0, ready_ = 0, failed_ = 0, closed_ = 0;
  std::uint64_t total_events_ = 0;
  char buf_[64 * 1024];
};

int run_fanout(Client& client, std::uint16_t port, double warmup_s, double seconds, long server_pid) {
  const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (udp < 0 || ::connect(udp, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) die("udp");
  auto report = [&](std::uint64_t v) { ::send(udp, &v, sizeof v, 0); };

  // The ready marks are not deliveries.
  const std::uint64_t base_total = client.total_events();
  std::uint64_t last_reported = 0;
  double last_report_at = now_s();
  report(0);
  double first_at = 0, t0 = 0, cpu0 = 0, server_cpu0 = 0;
  std::uint64_t total0 = 0;
  for (;;) {
    client.poll(1);
    if (g_stop) return 1;
    const double now = now_s();
    if (first_at == 0 && client.total_events() > base_total) first_at = now;
    if (now - last_report_at >= 0.001) {
      const std::uint64_t m = client.min_received();
      // A report also goes out now and then without progress: UDP may drop one.
      if (m > last_reported || now - last_report_at >= 0.05) {
        report(m);
        last_reported = m;
        last_report_at = now;
      }
    }
    if (first_at != 0 && t0 == 0 && now >= first_at + warmup_s) {
      t0 = now;
      cpu0 = cpu_s();
      server_cpu0 = process_cpu_s(server_pid);
      total0 = client.total_events();
    }
    if (t0 != 0 && now >= t0 + seconds) {
      const double elapsed = now - t0;
      const double cpu = cpu_s() - cpu0;
      const double server_cpu = server_pid > 0 ? process_cpu_s(server_pid) - server_cpu0 : -1;
      const std::uint64_t events = client.total_events() - total0;
      std::printf(
          "result deliveries_per_s=%.0f events=%llu seconds=%.3f per_connection_min=%llu per_connection_max=%llu "
          "closed=%zu client_cpu=%.2f",
          static_cast<double>(events) / elapsed, static_cast<unsigned long long>(events), elapsed,
          static_cast<unsigned long long>(client.min_received()), static_cast<unsigned long long>(client.max_received()),
          client.closed(), cpu / elapsed);
      if (server_cpu > 0) {
        std::printf(" server_cpu=%.2f deliveries_per_server_cpu_s=%.0f", server_cpu / elapsed,
                    static_cast<double>(events) / server_cpu);
      }
      std::printf("\n");
      std::fflush(stdout);
      return 0;
    }
    if (first_at == 0 && now - last_report_at > 10) {
      std::fprintf(stderr, "ws_bench_client: no event in 10 s after the subscribers were ready\n");
      return 1;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const pbh::Flags flags(argc, argv);
  pbh::raise_open_files_limit();
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  const auto port = static_cast<std::uint16_t>(flags.num("port", 0));
  if (port == 0) {
    std::fprintf(stderr, "usage: ws_bench_client --port=P [--mode=fanout|idle] [--connections=N]\n");
    return 2;
  }
  const std::string mode = flags.get("mode", "fanout");
  const auto n = static_cast<std::size_t>(flags.num("connections", mode == "idle" ? 10000 : 1000));
  Client client(port, flags.get("path", "/topics/bench/ws"), n);
  const double t_open = now_s();
  if (!client.open_all(static_cast<double>(flags.num("connect-timeout", 60)))) {
    client.reset_all();
    return 1;
  }
  std::fprintf(stderr, "ws_bench_client: %zu connections ready in %.2f s\n", n, now_s() - t_open);
  int status = 0;
  if (mode == "idle") {
    std::printf("connected %zu\n", client.ready());
    std::fflush(stdout);
    while (!g_stop) client.poll(100);
    if (client.closed()) std::fprintf(stderr, "ws_bench_client: %zu connections closed by the server\n", client.closed());
  } else {
    const double warmup = std::atof(flags.get("warmup", "1").c_str());
    const double seconds = std::atof(flags.get("seconds", "5").c_str());
    status = run_fanout(client, port, warmup, seconds, static_cast<long>(flags.num("server-pid", 0)));
  }
  client.reset_all();
  return status;
}
