// samples/01-request-response/server.cpp — three services behind one HTTP listener.
//
//   GET  /hello           → "Hello from server!"            (the seed's example)
//   GET  /users/{id}      → {"id": "...", "name": "..."}      (a path parameter arrives as a header)
//   POST /services/quote  → {"symbol": "...", "price": ...}   (JSON in, JSON out)
//
// The code only serves services; server.yaml decides that they travel over HTTP and which
// routes lead to them. Run: build/release/bin/rr_server --config samples/01-request-response/server.yaml
#include <patchbay/patchbay.hpp>
#include <patchbay/transports/http/http.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cstdio>
#include <cstring>
#include <iostream>

namespace pb = patchbay;

namespace {

pb::awaitable<void> serve_hello(pb::Service hello) {
  co_await hello.serve([](pb::Message) -> pb::awaitable<pb::Message> { co_return pb::Message("Hello from server!"); });
}

pb::awaitable<void> serve_users(pb::Service users) {
  co_await users.serve([](pb::Message request) -> pb::awaitable<pb::Message> {
    // The route /users/{id} puts the path parameter in the header `id`.
    std::string id(request.headers.get("id").value_or(""));
    boost::json::object user{{"id", id}, {"name", "user " + id}};
    pb::Message reply(boost::json::serialize(user));
    reply.headers.add("content-type", "application/json");
    co_return reply;
  });
}

pb::awaitable<void> serve_quote(pb::Service quote) {
  co_await quote.serve([](pb::Message request) -> pb::awaitable<pb::Message> {
    boost::system::error_code ec;
    auto body = boost::json::parse(request.payload.view(), ec);
    if (ec || !body.is_object() || !body.as_object().contains("symbol") || !body.at("symbol").is_string()) {
      pb::Message bad("{\"error\":\"expected {\\\"symbol\\\": \\\"...\\\"}\"}");
      bad.headers.add("http-status", "400");  // the reply header http-status sets the HTTP status
      bad.headers.add("content-type", "application/json");
      co_return bad;
    }
    std::string symbol(body.at("symbol").as_string());
    const double price = 100.0 + static_cast<double>(std::hash<std::string>{}(symbol) % 9000) / 100.0;
    // Boost.JSON writes doubles in exponent form (1.7054E2); a price reads better as 170.54.
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", price);
    pb::Message reply("{\"symbol\":" + boost::json::serialize(boost::json::string(symbol)) + ",\"price\":" + text + "}");
    reply.headers.add("content-type", "application/json");
    co_return reply;
  });
}

}  // namespace

int main(int argc, char** argv) {
  pb::RuntimeOptions options;
  if (argc == 3 && std::strcmp(argv[1], "--config") == 0) {
    options.config_file = argv[2];
  } else {
    std::cerr << "usage: rr_server --config server.yaml\n";
    return 2;
  }
  // The http transport linked in statically; `plugins: [.../libpatchbay_http.so]` in the
  // config would load it as a module instead.
  auto registry = pb::Registry::with_builtins();
  if (auto s = pb::http_transport::register_transport(*registry); !s.ok()) {
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
  auto ex = rt.get_executor();
  pb::asio::co_spawn(ex, serve_hello(rt.service("hello")), pb::asio::detached);
  pb::asio::co_spawn(rt.get_executor(), serve_users(rt.service("users")), pb::asio::detached);
  pb::asio::co_spawn(rt.get_executor(), serve_quote(rt.service("quote")), pb::asio::detached);
  std::cout << "serving hello, users and quote (Ctrl-C stops)" << std::endl;
  if (auto s = rt.run(); !s.ok()) {  // until SIGINT/SIGTERM; then drains and stops
    std::cerr << s.message() << "\n";
    return 1;
  }
  return 0;
}
