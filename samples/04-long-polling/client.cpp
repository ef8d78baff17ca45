// samples/04-long-polling/client.cpp — reads `alerts` from a remote hub by long polling, and
// remembers where it stopped.
//
// client.yaml binds `alerts` to the `longpoll` transport. Prints `--count` alerts (default 5)
// and exits. With `--state FILE`, the position of the last alert printed is written to FILE,
// and a later run starts right after it: nothing is missed or printed twice across restarts
// (as long as the hub's history still holds what came meanwhile; else a gap is printed).
//
//   build/release/bin/longpoll_client --config samples/04-long-polling/client.yaml --state /tmp/alerts.pos
#include <patchbay/patchbay.hpp>
#include <patchbay/transports/longpoll/longpoll.hpp>

#include <cstring>
#include <fstream>
#include <future>
#include <iostream>

namespace pb = patchbay;

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  int count = 5;
  std::string state, from;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      options.config_file = argv[++i];
    } else if (std::strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
      count = std::stoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
      state = argv[++i];
    } else if (std::strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
      from = argv[++i];  // latest, earliest or a position
    } else {
      std::cerr << "usage: longpoll_client --config client.yaml [--count N] [--state FILE] [--from earliest|latest|POS]\n";
      return 2;
    }
  }
  // Where to start: the saved position, else --from, else from now on.
  pb::Position start = from.empty() ? pb::Position::latest() : pb::Position::parse(from);
  if (!state.empty()) {
    std::ifstream in(state);
    std::string saved;
    if (in >> saved && !saved.empty()) start = pb::Position::after(saved);
  }
  options.handle_signals = false;
  auto registry = pb::Registry::with_builtins();
  if (auto s = pb::longpoll_transport::register_transport(*registry); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  options.registry = std::move(registry);
  auto runtime = pb::Runtime::create(std::move(options));
  if (!runtime.ok()) {
    std::cerr << runtime.status().message() << "\n";
    return 1;
  }
  auto& rt = **runtime;
  if (auto s = rt.start(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  std::promise<bool> done;
  // A named lambda: it must outlive the coroutine, which refers to its captures.
  auto print_alerts = [&]() -> pb::awaitable<void> {
    auto alerts = co_await rt.topic("alerts").subscribe(pb::SubscribeOptions().from(start));
    for (int n = 0; n < count;) {
      auto d = co_await alerts.next();
      if (!d) break;
      if (d->is_gap()) {
        std::cout << "gap: " << d->gap().reason << " (" << d->gap().missed << " missed)" << std::endl;
        continue;
      }
      std::cout << "alert " << ++n << " at " << d->position().token() << ": " << d->message().payload.view()
                << std::endl;
      if (!state.empty()) std::ofstream(state, std::ios::trunc) << d->position().token() << "\n";
    }
  };
  pb::asio::co_spawn(rt.get_executor(), print_alerts(), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::cerr << "client failed: " << x.what() << "\n";
      }
    }
    done.set_value(!e);
  });
  bool ok = done.get_future().get();
  rt.stop();
  rt.wait();
  return ok ? 0 : 1;
}
