// Registers the conformance scenarios as GoogleTest tests and runs each on a fresh instance.
#include <patchbay/conformance/suite.hpp>

#include "scenarios.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <future>
#include <random>

namespace patchbay::conformance {

std::string Context::unique(const std::string& base) const {
  static std::atomic<unsigned> counter{0};
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return "conformance." + scenario + "." + base + "." + std::to_string(gen() % 1'000'000'000) + "." +
         std::to_string(counter++);
}

awaitable<Next> next_for(Stream<Delivery>& stream, duration d) {
  // The same lossless race against a timer that Stream::timeout uses.
  if (!stream) co_return Next{Next::kind::ended, std::nullopt};
  auto r = co_await detail::next_until(stream.source(), clock::now() + d);
  if (r.timed_out) co_return Next{Next::kind::timed_out, std::nullopt};
  if (!r.value) co_return Next{Next::kind::ended, std::nullopt};
  co_return Next{Next::kind::item, std::move(r.value)};
}

namespace {

class ScenarioTest : public testing::Test {
 public:
  ScenarioTest(std::shared_ptr<const Harness> harness, const Scenario* scenario)
      : harness_(std::move(harness)), scenario_(scenario) {}

  void TestBody() override {
    const std::string tag = "[" + harness_->name + "] " + scenario_->name + ": ";
    auto made = harness_->make();
    ASSERT_TRUE(made.ok()) << tag << "could not make the transport: " << made.status().message();
    Instance instance = std::move(*made);
    Features features = instance.transport->features();
    if (!scenario_->applies(features, *harness_)) {
      if (instance.shutdown) instance.shutdown();
      GTEST_SKIP() << tag << "does not apply to the declared features (" << features.describe() << ")";
    }

    Context ctx{*harness_, instance.transport, features, scenario_->name,
                instance.fresh ? instance.fresh : std::function<executor()>([ex = instance.ex] { return ex; })};
    asio::cancellation_signal cancel;
    std::future<void> done = asio::co_spawn(instance.ex, scenario_->run(ctx),
                                            asio::bind_cancellation_slot(cancel.slot(), asio::use_future));
    if (done.wait_for(harness_->scenario_timeout) != std::future_status::ready) {
      ADD_FAILURE() << tag << "did not finish within " << harness_->scenario_timeout.count() << " s";
      asio::post(instance.ex, [&] { cancel.emit(asio::cancellation_type::all); });
      if (done.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
        // The scenario is stuck beyond cancellation; do not destroy what it still uses.
        std::fprintf(stderr, "%sstuck after cancellation; aborting\n", tag.c_str());
        std::abort();
      }
    }
    try {
      done.get();
    } catch (const Failure& f) {
      ADD_FAILURE() << tag << f.what();
    } catch (const boost::system::system_error& e) {
      ADD_FAILURE() << tag << "unexpected error: " << e.what() << " (" << e.code().category().name() << ":"
                    << e.code().value() << ")";
    } catch (const std::exception& e) {
      ADD_FAILURE() << tag << "unexpected exception: " << e.what();
    }
    if (instance.shutdown) instance.shutdown();
  }

 private:
  std::shared_ptr<const Harness> harness_;
  const Scenario* scenario_;
};

}  // namespace

void register_suite(Harness harness) {
  auto shared = std::make_shared<const Harness>(std::move(harness));
  const std::string suite = "Conformance/" + shared->name;
  for (const Scenario& s : scenarios()) {
    testing::RegisterTest(suite.c_str(), s.name, nullptr, nullptr, __FILE__, __LINE__,
                          [shared, &s]() -> testing::Test* { return new ScenarioTest(shared, &s); });
  }
}

absl::StatusOr<Instance> from_config(const std::string& config_text, int threads) {
  RuntimeOptions options;
  options.config_text = config_text;
  options.threads = threads;
  options.handle_signals = false;
  auto rt = Runtime::create(std::move(options));
  if (!rt.ok()) return rt.status();
  std::shared_ptr<Runtime> runtime(std::move(*rt));
  if (auto s = runtime->start(); !s.ok()) return s;
  Instance out;
  out.transport = runtime->topic("conformance").transport();
  out.ex = runtime->get_executor();
  out.fresh = [runtime] { return runtime->get_executor(); };
  out.keep_alive = runtime;
  out.shutdown = [runtime] {
    runtime->stop();
    runtime->wait();
  };
  return out;
}

}  // namespace patchbay::conformance
