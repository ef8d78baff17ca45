// A sender process for the kill -9 test (fault_test.cpp): a hub with a webhook sender on the
// outbox file argv[1], one static endpoint argv[2] subscribed to topic "t".
//   sender_child OUTBOX URL publish N   publishes N messages with ids m-0 .. m-N-1, prints
//                                       "published" and keeps delivering until killed;
//   sender_child OUTBOX URL resume      delivers what the outbox holds, prints "drained" when
//                                       nothing is pending, and exits 0.
#include <patchbay/http/hub.hpp>
#include <patchbay/webhook/sender.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc < 4) {
    std::cerr << "usage: sender_child OUTBOX URL publish N | resume\n";
    return 2;
  }
  const std::string outbox = argv[1], url = argv[2], mode = argv[3];
  boost::asio::io_context io{2};
  auto guard = boost::asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&io] { io.run(); });

  auto hub = patchbay::http::Hub::create(io.get_executor());
  patchbay::webhook::SenderOptions o;
  o.outbox = outbox;
  o.allow = {"127.0.0.0/8"};
  o.schedule = std::vector<std::chrono::milliseconds>(300, 200ms);  // never exhausted within the test
  o.schedule.front() = 0ms;
  o.timeout = 5s;
  o.max_concurrency = 16;
  patchbay::webhook::EndpointSpec e;
  e.url = url;
  e.topics = {"t"};
  e.secrets = {*patchbay::http::webhook::Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")};
  o.endpoints.push_back(e);
  auto sender = patchbay::webhook::Sender::create(io.get_executor(), hub, o);
  if (!sender.ok()) {
    std::cerr << sender.status() << "\n";
    return 1;
  }
  (*sender)->start();

  if (mode == "publish") {
    const int n = argc > 4 ? std::stoi(argv[4]) : 10000;
    for (int i = 0; i < n; ++i) {
      patchbay::Message m{patchbay::Bytes("payload " + std::to_string(i))};
      m.id = "m-" + std::to_string(i);
      hub->publish("t", std::move(m));  // the outbox row is written before this returns
    }
    std::cout << "published" << std::endl;
    for (;;) std::this_thread::sleep_for(1s);  // until kill -9
  }
  while ((*sender)->stats().pending > 0) std::this_thread::sleep_for(5ms);
  std::cout << "drained " << (*sender)->stats().recovered << std::endl;
  auto done = boost::asio::co_spawn(io.get_executor(), (*sender)->stop(), boost::asio::use_future);
  done.get();
  hub->stop();
  guard.reset();
  io.stop();
  for (auto& t : threads) t.join();
  return 0;
}
