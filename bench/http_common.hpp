// bench/http_common.hpp — what the HTTP benchmark servers share (bench/http_server.cpp, the
// patchbay side, and bench/http_raw_server.cpp, the raw Beast baseline): command-line flags,
// the open-files limit, memory figures on SIGUSR1, the SSE message both sides publish, and the
// paced publisher of the fan-out benchmark. Only Asio here, no patchbay: the raw baseline
// includes it too. Driven by bench/http_bench.sh; see docs/benchmarks.md, "HTTP core".
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <malloc.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>

namespace patchbay::bench::http {

/// `--name=value` flags (and bare `--name`, value "1").
class Flags {
 public:
  Flags(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string_view a = argv[i];
      if (a.substr(0, 2) != "--") {
        std::fprintf(stderr, "unexpected argument '%s' (flags are --name=value)\n", argv[i]);
        std::exit(2);
      }
      a.remove_prefix(2);
      auto eq = a.find('=');
      if (eq == std::string_view::npos) {
        values_[std::string(a)] = "1";
      } else {
        values_[std::string(a.substr(0, eq))] = std::string(a.substr(eq + 1));
      }
    }
  }
  std::string get(const std::string& name, std::string fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  long long num(const std::string& name, long long fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : std::atoll(it->second.c_str());
  }

 private:
  std::map<std::string, std::string> values_;
};

/// Raises the soft open-files limit to the hard limit (20,000 on the build machine).
inline void raise_open_files_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/// VmRSS of this process in KiB (from /proc/self/status).
inline long rss_kib() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      kib = std::atol(line + 6);
      break;
    }
  }
  std::fclose(f);
  return kib;
}

// Live heap accounting by a replaced operator new (bench/http_alloc_stats.cpp), switched on by
// PATCHBAY_BENCH_ALLOC_STATS=1 in the environment (off: operator new is malloc plus one branch).
bool alloc_stats_enabled() noexcept;
/// Prints "alloc live_allocs=N live_bytes=B" and one "alloc_size <usable bytes> <live count>"
/// line per size with live blocks (malloc_usable_size classes) to `out`.
void print_alloc_stats(std::FILE* out);

/// One line of memory figures for the scripts: RSS, glibc's heap (mallinfo2) and, when
/// enabled, the live C++ allocations by size.
inline void print_memory_stats(std::FILE* out, std::string_view tag) {
  const struct mallinfo2 mi = ::mallinfo2();
  std::fprintf(out, "stats %.*s rss_kib=%ld heap_in_use=%zu heap_mmapped=%zu heap_arena=%zu heap_free=%zu\n",
               static_cast<int>(tag.size()), tag.data(), rss_kib(), mi.uordblks, mi.hblkhd, mi.arena, mi.fordblks);
  if (alloc_stats_enabled()) print_alloc_stats(out);
  std::fflush(out);
}

// --- the fan-out benchmark's messages ---------------------------------------------------------

/// The 100-byte payload every message carries (text: the hub sends it as one `data:` line).
inline const std::string& payload_100() {
  static const std::string p = [] {
    std::string s;
    while (s.size() < 100) s += "patchbay-sse-fanout-";
    s.resize(100);
    return s;
  }();
  return p;
}

/// The SSE frame the hub writes for message `seq` of a topic with a 12-digit epoch; the raw
/// server writes exactly these bytes.
inline std::string sse_frame(std::uint64_t seq) {
  char head[64];
  const int n = std::snprintf(head, sizeof head, "id: 123456789012:%llu\ndata: ", static_cast<unsigned long long>(seq));
  std::string out;
  out.reserve(static_cast<std::size_t>(n) + payload_100().size() + 2);
  out.append(head, static_cast<std::size_t>(n));
  out += payload_100();
  out += "\n\n";
  return out;
}

/// The fan-out publisher, closed-loop: the client process (bench/http_sse_client.cpp) sends
/// datagrams to this UDP socket holding, as a native std::uint64_t, the fewest messages any
/// live subscriber has received so far. The publisher keeps at most `window` messages
/// published beyond that, so it publishes as fast as the slowest subscriber reads, and the
/// backlog of every connection stays under `window` frames (no subscriber is ever cut, no
/// cursor falls out of the hub's history). `publish(seq)` publishes message seq (from 1).
/// Both servers run it on their one io thread.
template <typename Executor, typename Publish>
boost::asio::awaitable<void, Executor> paced_publisher(boost::asio::ip::udp::socket& socket, std::uint64_t window,
                                                      Publish publish) {
  namespace asio = boost::asio;
  std::uint64_t published = 0;
  std::uint64_t received = 0;
  std::uint64_t value = 0;
  for (;;) {
    auto [ec, n] = co_await socket.async_receive(asio::buffer(&value, sizeof value),
                                                 asio::as_tuple(asio::use_awaitable_t<Executor>{}));
    if (ec) co_return;
    if (n == sizeof value && value > received) received = value;
    boost::system::error_code ignored;
    while (socket.available(ignored) >= sizeof value) {
      n = socket.receive(asio::buffer(&value, sizeof value), 0, ignored);
      if (n == sizeof value && value > received) received = value;
    }
    while (published < received + window) publish(++published);
  }
}

}  // namespace patchbay::bench::http
