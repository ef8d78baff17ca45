// The `access-log` middleware (see the header): one JSON line per operation of a binding.
#include <patchbay/plugins/access_log/access_log.hpp>

#include <patchbay/middleware.hpp>
#include <patchbay/plugin.hpp>
#include <patchbay/plugins/support.hpp>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace patchbay::plugins::access_log {
namespace {

namespace json = boost::json;
using support::describe;
using support::Settlement;

/// One destination. Every binding that logs to the same path shares one Sink, so their lines
/// are serialized by one mutex; O_APPEND keeps lines whole even with other writers of the file.
class Sink {
 public:
  Sink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~Sink() {
    if (owned_) ::close(fd_);
  }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  void write_line(std::string line) {
    line += '\n';
    std::lock_guard lock(mutex_);
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // a full disk must not fail the operation being logged
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
  bool owned_;
  std::mutex mutex_;
};

absl::StatusOr<std::shared_ptr<Sink>> sink_for(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<Sink>> sinks;
  std::lock_guard lock(mutex);
  if (auto s = sinks[path].lock()) return s;
  std::shared_ptr<Sink> s;
  if (path.empty() || path == "-" || path == "stderr") {
    s = std::make_shared<Sink>(STDERR_FILENO, false);
  } else if (path == "stdout") {
    s = std::make_shared<Sink>(STDOUT_FILENO, false);
  } else {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return absl::InvalidArgumentError("cannot open '" + path + "' for appending: " + std::strerror(errno));
    s = std::make_shared<Sink>(fd, true);
  }
  sinks[path] = s;
  return s;
}

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

double millis(duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

class AccessLog final : public Middleware {
 public:
  AccessLog(std::shared_ptr<Transport> inner, std::string binding, std::shared_ptr<Sink> sink, std::vector<std::string> headers)
      : Middleware(std::move(inner)), binding_(std::move(binding)), sink_(std::move(sink)), headers_(std::move(headers)) {}

 protected:
  awaitable<void> do_publish(Message msg) override {
    json::object line = start("publish", "topic", msg.topic, msg);
    const auto began = clock::now();
    std::exception_ptr failure;
    try {
      co_await inner()->publish(std::move(msg));
    } catch (...) {
      failure = std::current_exception();
    }
    finish(std::move(line), began, failure);
    if (failure) std::rethrow_exception(failure);
  }

  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    json::object line = start("request", "service", service, msg);
    const auto began = clock::now();
    std::exception_ptr failure;
    Message reply;
    try {
      reply = co_await inner()->request(std::move(service), std::move(msg), until);
    } catch (...) {
      failure = std::current_exception();
    }
    if (!failure) line["reply_bytes"] = reply.payload.size();
    finish(std::move(line), began, failure);
    if (failure) std::rethrow_exception(failure);
    co_return reply;
  }

  awaitable<Stream<Delivery>> do_subscribe(std::string topic, SubscribeOptions options) override {
    auto self = std::static_pointer_cast<AccessLog>(shared_from_this());
    Stream<Delivery> inner_stream = co_await inner()->subscribe(topic, std::move(options));
    co_return support::wrap_deliveries(std::move(inner_stream), [self, topic](Delivery d) -> std::optional<Delivery> {
      if (d.is_gap()) {
        json::object line = self->base("gap", "topic", topic);
        line["missed"] = d.gap().missed;
        line["reason"] = d.gap().reason;
        self->sink_->write_line(json::serialize(line));
        return d;
      }
      json::object line = self->start("receive", "topic", topic, d.message());
      line["redelivered"] = d.redelivered();
      line["outcome"] = "ok";
      self->sink_->write_line(json::serialize(line));
      if (d.settled()) return d;  // nothing to settle: at-most-once delivery
      const auto received = clock::now();
      json::object settle = self->start("settle", "topic", topic, d.message());
      return support::observe_settlement(std::move(d), [self, settle = std::move(settle), received](Settlement s) mutable {
        settle["op"] = support::settlement_name(s);
        settle["outcome"] = "ok";
        settle["duration_ms"] = millis(clock::now() - received);
        self->sink_->write_line(json::serialize(settle));
      });
    });
  }

  awaitable<void> do_serve(std::string service, ServiceHandler handler) override {
    auto self = std::static_pointer_cast<AccessLog>(shared_from_this());
    auto h = std::make_shared<ServiceHandler>(std::move(handler));
    ServiceHandler wrapped = [self, h, service](Message request) { return self->serve_one(h, service, std::move(request)); };
    return inner()->serve(std::move(service), std::move(wrapped));
  }

 private:
  awaitable<Message> serve_one(std::shared_ptr<ServiceHandler> handler, std::string service, Message request) {
    json::object line = start("serve", "service", service, request);
    const auto began = clock::now();
    std::exception_ptr failure;
    Message reply;
    try {
      reply = co_await (*handler)(std::move(request));
    } catch (...) {
      failure = std::current_exception();
    }
    if (!failure) line["reply_bytes"] = reply.payload.size();
    finish(std::move(line), began, failure);
    if (failure) std::rethrow_exception(failure);
    co_return reply;
  }

  json::object base(const char* op, const char* name_key, const std::string& name) const {
    json::object line;
    line["time"] = utc_now();
    line["binding"] = binding_;
    line["op"] = op;
    line[name_key] = name;
    return line;
  }

  json::object start(const char* op, const char* name_key, const std::string& name, const Message& msg) const {
    json::object line = base(op, name_key, name);
    line["id"] = msg.id;
    line["bytes"] = msg.payload.size();
    for (const auto& h : headers_)
      if (auto v = msg.headers.get(h)) line[h] = std::string(*v);
    return line;
  }

  void finish(json::object line, deadline began, const std::exception_ptr& failure) const {
    line["duration_ms"] = millis(clock::now() - began);
    if (failure) {
      auto info = describe(failure);
      line["outcome"] = "error";
      line["error"] = info.code;
      line["error_text"] = info.text;
    } else {
      line["outcome"] = "ok";
    }
    sink_->write_line(json::serialize(line));
  }

  std::string binding_;
  std::shared_ptr<Sink> sink_;
  std::vector<std::string> headers_;
};

absl::StatusOr<std::shared_ptr<Transport>> make_access_log(const MiddlewareContext& ctx) {
  const auto& s = ctx.settings;
  auto path = s.get_string("path", "");
  if (!path.ok()) return path.status();
  auto headers = s.get_string_list("headers", {});
  if (!headers.ok()) return headers.status();
  for (const auto& h : *headers) {
    static constexpr const char* reserved[] = {"time", "binding", "op", "topic", "service", "id", "bytes", "outcome",
                                               "error", "error_text", "duration_ms", "reply_bytes", "redelivered"};
    for (const char* r : reserved)
      if (h == r)
        return config::error_at(s.mark_of("headers"), s.context() + ": header '" + h +
                                                          "' would clash with the log field of the same name");
  }
  auto sink = sink_for(*path);
  if (!sink.ok()) return config::error_at(s.mark_of("path"), s.context() + ": " + std::string(sink.status().message()));
  return std::make_shared<AccessLog>(ctx.inner, ctx.binding, *std::move(sink), *std::move(headers));
}

absl::Status register_access_log(Registry& registry) { return registry.add_middleware("access-log", make_access_log); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_middleware(Registry& registry) { return register_access_log(registry); }
#endif

}  // namespace patchbay::plugins::access_log

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::plugins::access_log::register_access_log)
#endif
