// The Runtime: config → plugins → transports → bindings, the io threads, graceful stop.
//
// Construction collects every problem it finds (plugins that do not load, unknown transport
// types, settings a factory rejected, unknown keys, unmet `require:`) and reports them all at
// once, so that `patchbay check` shows a whole broken config in one run.
#include <patchbay/runtime.hpp>

#include <patchbay/error.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include <condition_variable>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace patchbay {
namespace {

/// Problems found while building the runtime, one per line.
class Problems {
 public:
  void add(const config::Mark& mark, const std::string& what) { lines_.emplace_back(config::error_at(mark, what).message()); }
  void add_status(const absl::Status& s) {
    // A status may already hold several lines (one per problem).
    std::string owned(s.message());
    std::string_view text = owned;
    while (!text.empty()) {
      auto nl = text.find('\n');
      lines_.emplace_back(text.substr(0, nl));
      if (nl == std::string_view::npos) break;
      text.remove_prefix(nl + 1);
    }
  }
  bool empty() const { return lines_.empty(); }
  absl::Status status() const {
    std::string all;
    for (const auto& l : lines_) {
      if (!all.empty()) all += '\n';
      all += l;
    }
    return absl::InvalidArgumentError(all);
  }

 private:
  std::vector<std::string> lines_;
};

std::string prefixed(const config::Mark& mark, const std::string& context, const absl::Status& s) {
  // Factory errors usually carry their own file:line:col already; add ours only when absent.
  std::string msg(s.message());
  if (!mark.file.empty() && msg.rfind(mark.file, 0) == 0) return msg;
  return std::string(config::error_at(mark, context + ": " + msg).message());
}

}  // namespace

struct Runtime::Impl {
  std::unique_ptr<Registry> registry;  // first: destroyed last, after everything it made
  Config config;
  asio::io_context io;

  struct Binding {
    BindingInfo info;
    std::shared_ptr<Transport> transport;  // with middleware applied
  };
  std::vector<std::pair<std::string, std::shared_ptr<Transport>>> transports;  // in config order
  std::shared_ptr<Transport> default_transport;
  std::map<std::string, Binding, std::less<>> bindings;

  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<asio::signal_set> signals;
  std::vector<std::thread> threads;
  int thread_count = 2;
  bool handle_signals = true;

  std::mutex mutex;
  std::condition_variable cv;
  bool stop_requested = false;
  bool started = false;
  bool shutting_down = false;  // one wait() performs the graceful stop; others wait for `finished`
  bool finished = false;

  explicit Impl(int concurrency_hint) : io(concurrency_hint) {}

  awaitable<void> start_all() {
    for (auto& [_, t] : transports) co_await t->start();
  }
  awaitable<void> stop_all() {
    // Each stop() drains independently and is bounded by its own drain timeout.
    for (auto it = transports.rbegin(); it != transports.rend(); ++it) {
      try {
        co_await it->second->stop();
      } catch (const std::exception& e) {
        std::cerr << "patchbay: stopping transport '" << it->first << "' failed: " << e.what() << "\n";
      }
    }
  }
};

Runtime::Runtime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Runtime::~Runtime() {
  bool need_wait;
  {
    std::lock_guard lock(impl_->mutex);
    need_wait = impl_->started && !impl_->finished;
  }
  if (need_wait) {
    stop();
    wait();
  }
  // Bindings and transports go before the io_context, the registry (and its modules) last.
  impl_->bindings.clear();
  impl_->default_transport.reset();
  impl_->transports.clear();
}

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::create(RuntimeOptions options) {
  absl::StatusOr<Config> parsed = options.config_file   ? Config::load_file(*options.config_file)
                                  : options.config_text ? Config::parse(*options.config_text)
                                                        : Config::embedded_default();
  if (!parsed.ok()) return parsed.status();

  int threads = options.threads ? options.threads : parsed->threads;
  if (threads <= 0) threads = std::max(2u, std::thread::hardware_concurrency());

  auto impl = std::make_unique<Impl>(threads);
  impl->thread_count = threads;
  impl->handle_signals = options.handle_signals;
  impl->registry = options.registry ? std::move(options.registry) : Registry::with_builtins();
  impl->config = std::move(*parsed);
  const Config& cfg = impl->config;
  Registry& registry = *impl->registry;
  executor ex = impl->io.get_executor();
  Problems problems;

  for (const auto& plugin : cfg.plugins) {
    auto s = registry.load_plugin(plugin.resolved_path);
    if (!s.ok()) problems.add(plugin.mark, "plugin '" + plugin.path + "': " + std::string(s.message()));
  }

  std::map<std::string, std::shared_ptr<Transport>, std::less<>> by_name;
  std::map<std::string, std::string, std::less<>> origin_of;
  auto origins = registry.list();
  auto origin_for = [&](const std::string& type) {
    for (const auto& f : origins)
      if (f.what == FactoryInfo::kind::transport && f.type == type) return f.origin;
    return std::string("?");
  };
  std::set<std::string> failed;  // transports that could not be built: skip their require checks
  for (const auto& spec : cfg.transports) {
    TransportContext ctx{spec.name, ex, spec.settings, {}};
    ctx.lookup = [impl = impl.get()](std::string_view name) -> std::shared_ptr<Transport> {
      for (const auto& [n, t] : impl->transports) {
        if (n == name) return t;
      }
      return nullptr;
    };
    auto t = registry.make_transport(spec.type, ctx);
    if (!t.ok()) {
      problems.add_status(absl::InvalidArgumentError(prefixed(spec.mark, "transport '" + spec.name + "'", t.status())));
      failed.insert(spec.name);
      continue;
    }
    if (auto unknown = spec.settings.check_unknown_keys(); !unknown.ok()) problems.add_status(unknown);
    by_name.emplace(spec.name, *t);
    origin_of.emplace(spec.name, origin_for(spec.type));
    impl->transports.emplace_back(spec.name, *t);
  }

  std::string default_name = cfg.default_transport;
  if (!default_name.empty()) {
    auto it = by_name.find(default_name);
    if (it != by_name.end()) impl->default_transport = it->second;
  } else {
    // The embedded default: one in-process transport for every name without a binding.
    config::Node empty;
    TransportContext ctx{"default", ex, empty, {}};
    auto t = registry.make_transport("inproc", ctx);
    if (!t.ok()) {
      problems.add(config::Mark{cfg.file, 0, 0}, "the embedded default transport could not be made: " + std::string(t.status().message()));
    } else {
      impl->default_transport = *t;
      impl->transports.emplace_back("default", *t);
      by_name.emplace("default", *t);
      origin_of.emplace("default", origin_for("inproc"));
    }
    default_name = "default";
  }

  for (const auto& spec : cfg.bindings) {
    const std::string tname = spec.transport.empty() ? default_name : spec.transport;
    auto it = by_name.find(tname);
    if (it == by_name.end()) continue;  // already reported (unknown or failed transport)
    std::shared_ptr<Transport> base = it->second;
    const Features features = base->features();

    std::string missing;
    for (const auto& r : spec.require)
      if (!features.has(r)) missing += (missing.empty() ? "'" : ", '") + r + "'";
    if (!missing.empty())
      problems.add(spec.require_mark.line ? spec.require_mark : spec.mark,
                   "binding '" + spec.name + "': transport '" + tname + "' (type " + std::string(base->type()) +
                       ") lacks required feature " + missing + "; it declares: " + features.describe() +
                       ". Bind '" + spec.name + "' to a transport that declares it (see docs/patterns.md) or remove it from require:");

    BindingInfo info{spec.name, spec.wire_name.empty() ? spec.name : spec.wire_name, tname, std::string(base->type()),
                     origin_of[tname], features, {}};
    std::shared_ptr<Transport> wrapped = base;
    // The first middleware listed is the outermost: wrap from the last to the first.
    for (auto m = spec.middleware.rbegin(); m != spec.middleware.rend(); ++m) {
      MiddlewareContext mctx{spec.name, ex, m->settings, wrapped};
      auto made = registry.make_middleware(m->type, mctx);
      if (!made.ok()) {
        problems.add_status(absl::InvalidArgumentError(
            prefixed(m->mark, "middleware '" + m->type + "' of binding '" + spec.name + "'", made.status())));
        continue;
      }
      if (auto unknown = m->settings.check_unknown_keys(); !unknown.ok()) problems.add_status(unknown);
      wrapped = *made;
    }
    for (const auto& m : spec.middleware) info.middleware.push_back(m.type);
    impl->bindings.emplace(spec.name, Impl::Binding{std::move(info), wrapped});
  }

  if (!problems.empty()) {
    impl->bindings.clear();
    impl->default_transport.reset();
    impl->transports.clear();
    return problems.status();
  }
  return std::unique_ptr<Runtime>(new Runtime(std::move(impl)));
}

executor Runtime::get_executor() const {
  // A fresh strand each time: a coroutine spawned on it runs serialized, as Asio requires of
  // anything that uses cancellation (deadlines, ||, parallel groups) on a multi-threaded
  // io_context, while separate coroutines still run in parallel.
  return asio::make_strand(impl_->io.get_executor());
}

Topic Runtime::topic(std::string_view name) const {
  auto it = impl_->bindings.find(name);
  if (it != impl_->bindings.end()) return Topic(it->second.transport, it->second.info.wire_name, std::string(name));
  return Topic(impl_->default_transport, std::string(name), std::string(name));
}

Service Runtime::service(std::string_view name) const {
  auto it = impl_->bindings.find(name);
  if (it != impl_->bindings.end()) return Service(it->second.transport, it->second.info.wire_name, std::string(name));
  return Service(impl_->default_transport, std::string(name), std::string(name));
}

absl::Status Runtime::start() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->started) return absl::OkStatus();
    impl_->started = true;
  }
  auto& io = impl_->io;
  impl_->work.emplace(io.get_executor());
  if (impl_->handle_signals) {
    impl_->signals.emplace(io, SIGINT, SIGTERM);
    impl_->signals->async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) stop();
    });
  }
  for (int i = 0; i < impl_->thread_count; ++i) impl_->threads.emplace_back([&io] { io.run(); });

  // Only the error's text crosses threads: the exception object is made and freed on the io
  // thread (a future would hand it to this thread, and libstdc++'s exception reference count is
  // invisible to ThreadSanitizer).
  std::promise<std::string> started;
  asio::co_spawn(io, impl_->start_all(), [&started](std::exception_ptr e) {
    std::string error;
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        error = x.what();
      } catch (...) {
        error = "unknown error";
      }
      if (error.empty()) error = "unknown error";
    }
    started.set_value(std::move(error));
  });
  if (auto error = started.get_future().get(); !error.empty()) {
    stop();
    return absl::UnavailableError("starting transports failed: " + error);
  }
  return absl::OkStatus();
}

void Runtime::wait() {
  {
    std::unique_lock lock(impl_->mutex);
    if (!impl_->started || impl_->finished) return;
    impl_->cv.wait(lock, [&] { return impl_->stop_requested; });
    if (impl_->shutting_down) {
      // Another thread's wait() is stopping the runtime: return once it has finished.
      impl_->cv.wait(lock, [&] { return impl_->finished; });
      return;
    }
    impl_->shutting_down = true;
  }
  auto stopped = asio::co_spawn(impl_->io, impl_->stop_all(), asio::use_future);
  // Transports bound their own drain; allow a margin for them to finish.
  const auto margin = impl_->config.drain_timeout + std::chrono::seconds(10);
  if (stopped.wait_for(margin) != std::future_status::ready)
    std::cerr << "patchbay: transports did not stop within " << margin.count() << " ms; stopping anyway\n";
  if (impl_->signals) {
    boost::system::error_code ignored;
    impl_->signals->cancel(ignored);
  }
  impl_->work.reset();
  impl_->io.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
  {
    std::lock_guard lock(impl_->mutex);
    impl_->finished = true;
  }
  impl_->cv.notify_all();
}

absl::Status Runtime::run() {
  if (auto s = start(); !s.ok()) {
    wait();
    return s;
  }
  wait();
  return absl::OkStatus();
}

void Runtime::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stop_requested) return;
    impl_->stop_requested = true;
  }
  impl_->cv.notify_all();
}

bool Runtime::stopping() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stop_requested;
}

const Config& Runtime::config() const { return impl_->config; }
const Registry& Runtime::registry() const { return *impl_->registry; }

std::vector<BindingInfo> Runtime::bindings() const {
  std::vector<BindingInfo> out;
  for (const auto& [_, b] : impl_->bindings) out.push_back(b.info);
  return out;
}

}  // namespace patchbay
