// The `metrics` middleware (see the header): counters and histograms per binding, served in the
// Prometheus text format by one admin listener per address.
//
// Lifetime: the runtime never starts or stops a middleware, so the listener is made (bound and
// started) by the factory and lives as long as a middleware uses it: each holds a shared_ptr
// to its Endpoint, which a process-wide table finds by (io_context, listen address).
#include <patchbay/plugins/metrics/metrics.hpp>

#include <patchbay/http/server.hpp>
#include <patchbay/middleware.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/plugins/support.hpp>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>

#include <array>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <utility>

namespace patchbay::plugins::metrics {
namespace {

using support::Settlement;

constexpr std::size_t kBuckets = 14;
constexpr std::array<double, kBuckets> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,    0.25,  0.5,    1,     2.5,   5,    10};

class Histogram {
 public:
  void observe(duration d) {
    const double s = std::chrono::duration<double>(d).count();
    std::size_t i = 0;
    while (i < kBuckets && s > kBounds[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()),
                      std::memory_order_relaxed);
  }
  /// Cumulative counts per bucket (the last is +Inf, equal to the count) and the sum.
  void snapshot(std::array<std::uint64_t, kBuckets + 1>& cumulative, double& sum) const {
    std::uint64_t running = 0;
    for (std::size_t i = 0; i <= kBuckets; ++i) {
      running += counts_[i].load(std::memory_order_relaxed);
      cumulative[i] = running;
    }
    sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets + 1> counts_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

enum Operation { publish_op, request_op, receive_op, serve_op, operation_count };
constexpr const char* kOperationNames[] = {"publish", "request", "receive", "serve"};
constexpr const char* kSettlementNames[] = {"ack", "nack", "nack_drop"};

struct BindingStats {
  struct Counters {
    std::atomic<std::uint64_t> messages{0}, bytes{0}, errors{0};
  };
  std::array<Counters, operation_count> ops;
  std::array<std::atomic<std::uint64_t>, 3> settled{};
  Histogram publish_latency, request_latency, handler_latency;
};

/// Everything one /metrics page shows.
class Collector {
 public:
  std::shared_ptr<BindingStats> binding(const std::string& name) {
    std::lock_guard lock(mutex_);
    auto& s = bindings_[name];
    if (!s) s = std::make_shared<BindingStats>();
    return s;
  }

  std::string render() const {
    std::map<std::string, std::shared_ptr<BindingStats>> bindings;
    {
      std::lock_guard lock(mutex_);
      bindings = bindings_;
    }
    std::string out;
    out.reserve(4096);
    auto counter_family = [&](const char* name, const char* help, auto value_of) {
      out += "# HELP ";
      out += name;
      out += ' ';
      out += help;
      out += "\n# TYPE ";
      out += name;
      out += " counter\n";
      for (const auto& [binding, stats] : bindings)
        for (int op = 0; op < operation_count; ++op) {
          out += name;
          out += "{binding=\"" + escape_label_value(binding) + "\",operation=\"" + kOperationNames[op] + "\"} ";
          out += std::to_string(value_of(stats->ops[op]));
          out += '\n';
        }
    };
    counter_family("patchbay_messages_total", "Operations started on a binding: publish, request, receive (a delivery handed to the application), serve (a served call).",
                   [](const BindingStats::Counters& c) { return c.messages.load(std::memory_order_relaxed); });
    counter_family("patchbay_bytes_total", "Payload bytes of the messages those operations carried.",
                   [](const BindingStats::Counters& c) { return c.bytes.load(std::memory_order_relaxed); });
    counter_family("patchbay_errors_total", "Operations that failed.",
                   [](const BindingStats::Counters& c) { return c.errors.load(std::memory_order_relaxed); });

    out += "# HELP patchbay_deliveries_settled_total Deliveries settled by the application: ack, nack (requeue), nack_drop (no requeue).\n"
           "# TYPE patchbay_deliveries_settled_total counter\n";
    for (const auto& [binding, stats] : bindings)
      for (int s = 0; s < 3; ++s)
        out += "patchbay_deliveries_settled_total{binding=\"" + escape_label_value(binding) + "\",outcome=\"" +
               kSettlementNames[s] + "\"} " + std::to_string(stats->settled[s].load(std::memory_order_relaxed)) + "\n";

    auto histogram_family = [&](const char* name, const char* help, Histogram BindingStats::*member) {
      out += "# HELP ";
      out += name;
      out += ' ';
      out += help;
      out += "\n# TYPE ";
      out += name;
      out += " histogram\n";
      for (const auto& [binding, stats] : bindings) {
        std::array<std::uint64_t, kBuckets + 1> cumulative{};
        double sum = 0;
        ((*stats).*member).snapshot(cumulative, sum);
        const std::string label = "binding=\"" + escape_label_value(binding) + "\"";
        for (std::size_t i = 0; i <= kBuckets; ++i) {
          out += name;
          out += "_bucket{" + label + ",le=\"" + (i < kBuckets ? format_double(kBounds[i]) : std::string("+Inf")) +
                 "\"} " + std::to_string(cumulative[i]) + "\n";
        }
        out += name;
        out += "_sum{" + label + "} " + format_double(sum) + "\n";
        out += name;
        out += "_count{" + label + "} " + std::to_string(cumulative[kBuckets]) + "\n";
      }
    };
    histogram_family("patchbay_publish_duration_seconds", "Time from publish until the transport accepted the message.",
                     &BindingStats::publish_latency);
    histogram_family("patchbay_request_duration_seconds", "Time from request until its reply or error.",
                     &BindingStats::request_latency);
    histogram_family("patchbay_handler_duration_seconds", "Time a served call's handler ran.",
                     &BindingStats::handler_latency);
    return out;
  }

  static std::string format_double(double v) {
    // %g, not to_chars' shortest form, which writes 0.0005 as "5e-04".
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<BindingStats>> bindings_;
};

awaitable<void> serve_page(std::weak_ptr<Collector> weak, http::Exchange& x) {
  auto collector = weak.lock();
  if (!collector) {
    x.respond(http::bhttp::status::service_unavailable, "metrics are no longer collected\n");
    co_return;
  }
  http::Response& r = x.response();
  r.result(http::bhttp::status::ok);
  r.set(http::bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  r.set(http::bhttp::field::cache_control, "no-store");
  r.body() = collector->render();
  r.prepare_payload();
  x.respond();
  co_return;
}

/// One admin listener and the page it serves.
struct Endpoint {
  std::shared_ptr<Collector> collector = std::make_shared<Collector>();
  std::shared_ptr<http::Server> server;
};

absl::StatusOr<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size())
    return absl::InvalidArgumentError("`listen: " + listen + "` is not host:port (e.g. 127.0.0.1:9464)");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const char* first = listen.data() + colon + 1;
  const char* last = listen.data() + listen.size();
  auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port > 65535)
    return absl::InvalidArgumentError("`listen: " + listen + "`: '" + std::string(first, last) + "' is not a port number");
  if (host.empty()) host = "0.0.0.0";
  return std::make_pair(host, static_cast<std::uint16_t>(port));
}

/// The shared endpoint for `listen` on the io_context of `ex`, made and started on first use.
absl::StatusOr<std::shared_ptr<Endpoint>> endpoint_for(const executor& ex, const std::string& listen) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, std::string>, std::weak_ptr<Endpoint>> endpoints;
  const void* context = &asio::query(ex, asio::execution::context);
  std::lock_guard lock(mutex);
  auto& slot = endpoints[{context, listen}];
  if (auto e = slot.lock()) return e;
  auto where = parse_listen(listen);
  if (!where.ok()) return where.status();
  http::ServerOptions options;
  options.host = where->first;
  options.port = where->second;
  options.limits.body_limit = 4096;  // GET only
  auto server = http::Server::create(ex, options);
  if (!server.ok()) return server.status();
  auto e = std::make_shared<Endpoint>();
  e->server = *server;
  std::weak_ptr<Collector> weak = e->collector;
  e->server->route(http::bhttp::verb::get, "/metrics", [weak](http::Exchange& x) { return serve_page(weak, x); });
  e->server->start();
  slot = e;
  return e;
}

class MetricsMiddleware final : public Middleware {
 public:
  MetricsMiddleware(std::shared_ptr<Transport> inner, std::shared_ptr<Endpoint> endpoint, std::shared_ptr<BindingStats> stats)
      : Middleware(std::move(inner)), endpoint_(std::move(endpoint)), stats_(std::move(stats)) {}

 protected:
  awaitable<void> do_publish(Message msg) override {
    count(publish_op, msg);
    const auto began = clock::now();
    std::exception_ptr failure;
    try {
      co_await inner()->publish(std::move(msg));
    } catch (...) {
      failure = std::current_exception();
    }
    stats_->publish_latency.observe(clock::now() - began);
    if (failure) {
      stats_->ops[publish_op].errors.fetch_add(1, std::memory_order_relaxed);
      std::rethrow_exception(failure);
    }
  }

  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    count(request_op, msg);
    const auto began = clock::now();
    std::exception_ptr failure;
    Message reply;
    try {
      reply = co_await inner()->request(std::move(service), std::move(msg), until);
    } catch (...) {
      failure = std::current_exception();
    }
    stats_->request_latency.observe(clock::now() - began);
    if (failure) {
      stats_->ops[request_op].errors.fetch_add(1, std::memory_order_relaxed);
      std::rethrow_exception(failure);
    }
    co_return reply;
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    auto stats = stats_;
    Stream<Delivery> inner_stream;
    try {
      inner_stream = co_await inner()->subscribe(std::move(topic), std::move(options));
    } catch (...) {
      stats->ops[receive_op].errors.fetch_add(1, std::memory_order_relaxed);
      throw;
    }
    co_return support::wrap_deliveries(std::move(inner_stream), [stats](Delivery d) -> std::optional<Delivery> {
      if (d.is_gap()) return d;
      stats->ops[receive_op].messages.fetch_add(1, std::memory_order_relaxed);
      stats->ops[receive_op].bytes.fetch_add(d.message().payload.size(), std::memory_order_relaxed);
      if (d.settled()) return d;
      return support::observe_settlement(std::move(d), [stats](Settlement s) {
        stats->settled[static_cast<int>(s)].fetch_add(1, std::memory_order_relaxed);
      });
    });
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    auto h = std::make_shared<ServiceHandler>(std::move(handler));
    ServiceHandler wrapped = [h, stats = stats_](Message request) { return serve_one(h, stats, std::move(request)); };
    return inner()->serve(std::move(service), std::move(wrapped));
  }

 private:
  static awaitable<Message> serve_one(std::shared_ptr<ServiceHandler> handler, std::shared_ptr<BindingStats> stats,
                                      Message request) {
    stats->ops[serve_op].messages.fetch_add(1, std::memory_order_relaxed);
    stats->ops[serve_op].bytes.fetch_add(request.payload.size(), std::memory_order_relaxed);
    const auto began = clock::now();
    std::exception_ptr failure;
    Message reply;
    try {
      reply = co_await (*handler)(std::move(request));
    } catch (...) {
      failure = std::current_exception();
    }
    stats->handler_latency.observe(clock::now() - began);
    if (failure) {
      stats->ops[serve_op].errors.fetch_add(1, std::memory_order_relaxed);
      std::rethrow_exception(failure);
    }
    co_return reply;
  }

  void count(Operation op, const Message& msg) {
    stats_->ops[op].messages.fetch_add(1, std::memory_order_relaxed);
    stats_->ops[op].bytes.fetch_add(msg.payload.size(), std::memory_order_relaxed);
  }

  std::shared_ptr<Endpoint> endpoint_;  // keeps the listener up while the binding exists
  std::shared_ptr<BindingStats> stats_;
};

absl::StatusOr<std::shared_ptr<Transport>> make_metrics(const MiddlewareContext& ctx) {
  const auto& s = ctx.settings;
  auto listen = s.get_string("listen", "127.0.0.1:9464");
  if (!listen.ok()) return listen.status();
  auto port_file = s.get_string("port_file", "");
  if (!port_file.ok()) return port_file.status();
  auto endpoint = endpoint_for(ctx.ex, *listen);
  if (!endpoint.ok())
    return config::error_at(s.mark_of("listen"), s.context() + ": " + std::string(endpoint.status().message()));
  if (!port_file->empty()) {
    std::ofstream out(*port_file, std::ios::trunc);
    out << (*endpoint)->server->port() << "\n";
    if (!out) return config::error_at(s.mark_of("port_file"), s.context() + ": cannot write '" + *port_file + "'");
  }
  auto stats = (*endpoint)->collector->binding(ctx.binding);
  return std::make_shared<MetricsMiddleware>(ctx.inner, *std::move(endpoint), std::move(stats));
}

absl::Status register_metrics(Registry& registry) { return registry.add_middleware("metrics", make_metrics); }

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

const std::vector<double>& latency_buckets() {
  static const std::vector<double> bounds(kBounds.begin(), kBounds.end());
  return bounds;
}

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_middleware(Registry& registry) { return register_metrics(registry); }
#endif

}  // namespace patchbay::plugins::metrics

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::plugins::metrics::register_metrics)
#endif
