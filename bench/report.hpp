// bench/report.hpp — the main() every patchbay benchmark shares.
//
// Each benchmark binary registers pairs of runs: a patchbay operation and the raw Asio code it
// stands for, measured in the same process, one after the other, so that both see the same
// machine load. run_and_compare() runs them under Google Benchmark with a console reporter that
// also records the real time per iteration of every run (the median where repetitions were
// asked for, e.g. `--benchmark_repetitions=3`), then prints one line per comparison:
//
//     channel u64 cap 64: patchbay 38.1 ns/msg, raw concurrent_channel 36.0 ns/msg, ratio 1.06 (target <= 1.10) OK
//
// A missed target is reported as MISSED and does not change the exit status: benchmarks are
// measurements, and scripts/bench treats a non-zero status as a crash.
#pragma once

#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace patchbay::bench {

/// One "ours against raw" line of the summary. Names are Google Benchmark run names.
struct Comparison {
  std::string label;           ///< what is compared, e.g. "channel u64 cap 64"
  std::string ours;            ///< run name of the patchbay benchmark
  std::string raw;             ///< run name of the baseline
  std::string raw_label;       ///< how the baseline is called in the summary
  double max_ratio;            ///< target: ours / raw at most this
  double max_ns = 0;           ///< optional absolute target for ours (0: none)
  std::string unit = "msg";    ///< what one iteration is ("msg", "round trip", ...)
  bool informational = false;  ///< no target: printed for context only
};

/// Prints the usual table and remembers, per run name, the real and CPU time of one iteration
/// in ns. The verdict uses real time; CPU time is printed beside it because on a shared machine
/// real time also counts the time the benchmark thread waited for a core.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  RecordingReporter() : ConsoleReporter(::isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      // The name without "/iterations:N" and the like, as the comparisons spell it.
      std::string name = run.run_name.function_name;
      if (!run.run_name.args.empty()) name += "/" + run.run_name.args;
      const double ns = run.GetAdjustedRealTime() * to_ns(run.time_unit);
      const double cpu_ns = run.GetAdjustedCPUTime() * to_ns(run.time_unit);
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name == "median") {
          medians_[name] = ns;
          medians_["cpu:" + name] = cpu_ns;
        }
      } else {
        samples_[name].push_back(ns);
        samples_["cpu:" + name].push_back(cpu_ns);
      }
    }
  }

  /// The median aggregate when there is one, else the median of the recorded repetitions.
  /// "cpu:<name>" gives the CPU time instead of the real time.
  std::optional<double> ns_per_iteration(const std::string& name) const {
    if (auto it = medians_.find(name); it != medians_.end()) return it->second;
    auto it = samples_.find(name);
    if (it == samples_.end() || it->second.empty()) return std::nullopt;
    auto v = it->second;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }

 private:
  static double to_ns(benchmark::TimeUnit unit) {
    switch (unit) {
      case benchmark::kNanosecond:
        return 1;
      case benchmark::kMicrosecond:
        return 1e3;
      case benchmark::kMillisecond:
        return 1e6;
      case benchmark::kSecond:
        return 1e9;
    }
    return 1;
  }

  std::map<std::string, double> medians_;
  std::map<std::string, std::vector<double>> samples_;
};

/// Registers a benchmark. With PATCHBAY_BENCH_ITERATIONS=N in the environment every benchmark
/// runs exactly N iterations: for profiling (callgrind), where timing-driven counts are useless.
template <typename Function>
benchmark::internal::Benchmark* add(const std::string& name, Function function) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), function);
  if (const char* n = std::getenv("PATCHBAY_BENCH_ITERATIONS"); n && std::atoll(n) > 0) b->Iterations(std::atoll(n));
  return b;
}

inline std::string format(const char* fmt, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, value);
  return buf;
}

/// Runs the registered benchmarks (honouring the usual --benchmark_* flags), then prints the
/// comparisons. Returns main()'s exit status.
inline int run_and_compare(int argc, char** argv, const std::vector<Comparison>& comparisons) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf("\nSummary (real time per iteration, median of the repetitions run; ratio = patchbay / raw):\n");
  for (const Comparison& c : comparisons) {
    const auto ours = reporter.ns_per_iteration(c.ours);
    const auto raw = reporter.ns_per_iteration(c.raw);
    if (!ours || !raw) {
      std::printf("%s: not run (filtered out)\n", c.label.c_str());
      continue;
    }
    const double ratio = *ours / *raw;
    const double cpu_ratio = *reporter.ns_per_iteration("cpu:" + c.ours) / *reporter.ns_per_iteration("cpu:" + c.raw);
    if (c.informational) {
      std::printf(
          "%s: patchbay %.1f ns/%s, raw %s %.1f ns/%s, ratio %.2f (for information, no target) "
          "[cpu-time ratio %.2f]\n",
          c.label.c_str(), *ours, c.unit.c_str(), c.raw_label.c_str(), *raw, c.unit.c_str(), ratio, cpu_ratio);
      continue;
    }
    const bool ratio_ok = ratio <= c.max_ratio;
    const bool ns_ok = c.max_ns <= 0 || *ours <= c.max_ns;
    std::string target = "target <= " + format("%.2f", c.max_ratio);
    if (c.max_ns > 0) target += ", <= " + format("%.0f", c.max_ns) + " ns/" + c.unit;
    std::printf("%s: patchbay %.1f ns/%s, raw %s %.1f ns/%s, ratio %.2f (%s) %s [cpu-time ratio %.2f]\n",
                c.label.c_str(), *ours, c.unit.c_str(), c.raw_label.c_str(), *raw, c.unit.c_str(), ratio,
                target.c_str(), ratio_ok && ns_ok ? "OK" : "MISSED", cpu_ratio);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace patchbay::bench
