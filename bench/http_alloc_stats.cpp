// bench/http_alloc_stats.cpp — live heap accounting for the HTTP memory benchmark.
//
// Replaces the global operator new/delete of the benchmark servers (the replacement also
// serves the shared libraries they load: libpatchbay, libpatchbay_http_core). With
// PATCHBAY_BENCH_ALLOC_STATS=1 in the environment every C++ allocation is counted by its
// malloc_usable_size() class, so that the difference between two SIGUSR1 dumps (before and
// after N connections) says how many blocks of which size one connection holds. Without the
// variable the cost is one predictable branch per allocation, the same on both servers.
#include "http_common.hpp"

#include <malloc.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <new>

namespace {

constexpr std::size_t kGranule = 8;
constexpr std::size_t kClasses = 8192 / kGranule + 1;  // the last class holds everything larger

const bool g_enabled = [] {
  const char* v = std::getenv("PATCHBAY_BENCH_ALLOC_STATS");
  return v && *v == '1';
}();

std::atomic<long> g_live_allocs{0};
std::atomic<long> g_live_bytes{0};
std::array<std::atomic<long>, kClasses> g_by_size{};

inline std::size_t size_class(std::size_t usable) noexcept {
  const std::size_t c = usable / kGranule;
  return c < kClasses - 1 ? c : kClasses - 1;
}

inline void note(void* p, long sign) noexcept {
  const std::size_t usable = ::malloc_usable_size(p);
  g_live_allocs.fetch_add(sign, std::memory_order_relaxed);
  g_live_bytes.fetch_add(sign * static_cast<long>(usable), std::memory_order_relaxed);
  g_by_size[size_class(usable)].fetch_add(sign, std::memory_order_relaxed);
}

inline void* allocate(std::size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  if (g_enabled) note(p, +1);
  return p;
}

inline void* allocate_aligned(std::size_t n, std::align_val_t al) {
  const auto a = static_cast<std::size_t>(al);
  void* p = std::aligned_alloc(a, (n + a - 1) / a * a);
  if (!p) throw std::bad_alloc();
  if (g_enabled) note(p, +1);
  return p;
}

inline void release(void* p) noexcept {
  if (!p) return;
  if (g_enabled) note(p, -1);
  std::free(p);
}

}  // namespace

namespace patchbay::bench::http {

bool alloc_stats_enabled() noexcept { return g_enabled; }

void print_alloc_stats(std::FILE* out) {
  std::fprintf(out, "alloc live_allocs=%ld live_bytes=%ld\n", g_live_allocs.load(), g_live_bytes.load());
  for (std::size_t c = 0; c < kClasses; ++c) {
    const long n = g_by_size[c].load();
    if (n != 0) std::fprintf(out, "alloc_size %zu%s %ld\n", c * kGranule, c == kClasses - 1 ? "+" : "", n);
  }
}

}  // namespace patchbay::bench::http

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
