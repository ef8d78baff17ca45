// docs/openapi.yaml stays true to the hub: the file parses as OpenAPI 3 with every $ref
// resolving, it documents every route the hub mounts on a server (so a new endpoint without
// docs fails here), and every operation it documents is answered by a running `http` transport
// (loaded as a module) with something other than "no such route" (so stale docs fail too).
#include <patchbay/conformance/suite.hpp>
#include <patchbay/http/hub.hpp>
#include <patchbay/http/server.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <set>
#include <sstream>
#include <string>

namespace {

namespace asio = boost::asio;
using patchbay::http::Hub;
using patchbay::http::Server;

const char* const kSpec = PATCHBAY_SOURCE_DIR "/docs/openapi.yaml";
const std::set<std::string> kMethods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// "GET /topics/{topic}/events" for every operation in the spec.
std::set<std::string> documented_operations(const YAML::Node& spec) {
  std::set<std::string> out;
  for (const auto& path : spec["paths"]) {
    for (const auto& op : path.second) {
      const auto method = op.first.as<std::string>();
      if (kMethods.count(method)) {
        std::string upper = method;
        std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        out.insert(upper + " " + path.first.as<std::string>());
      }
    }
  }
  return out;
}

/// Every "$ref" value in `node`.
void collect_refs(const YAML::Node& node, std::vector<std::string>& refs) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      if (kv.first.as<std::string>() == "$ref" && kv.second.IsScalar()) refs.push_back(kv.second.as<std::string>());
      collect_refs(kv.second, refs);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) collect_refs(item, refs);
  }
}

TEST(OpenApi, ParsesAndEveryReferenceResolves) {
  YAML::Node spec;
  ASSERT_NO_THROW(spec = YAML::LoadFile(kSpec)) << kSpec;
  ASSERT_TRUE(spec["openapi"]);
  EXPECT_EQ(spec["openapi"].as<std::string>().rfind("3.", 0), 0u);
  ASSERT_TRUE(spec["info"]["title"]);
  ASSERT_TRUE(spec["paths"].IsMap());
  for (const auto& path : spec["paths"]) {
    for (const auto& op : path.second) {
      const auto method = op.first.as<std::string>();
      ASSERT_TRUE(kMethods.count(method)) << path.first << ": unknown key " << method;
      EXPECT_TRUE(op.second["operationId"]) << method << " " << path.first;
      EXPECT_TRUE(op.second["responses"].IsMap()) << method << " " << path.first << ": no responses";
      // Every {param} of the path is declared as a path parameter.
      const auto p = path.first.as<std::string>();
      for (std::size_t open = p.find('{'); open != std::string::npos; open = p.find('{', open + 1)) {
        const auto name = p.substr(open + 1, p.find('}', open) - open - 1);
        bool declared = false;
        for (const auto& param : op.second["parameters"]) {
          YAML::Node def = param;
          if (param["$ref"]) {
            const auto ref = param["$ref"].as<std::string>();
            def = spec["components"]["parameters"][ref.substr(ref.rfind('/') + 1)];
          }
          if (def["in"].as<std::string>() == "path" && def["name"].as<std::string>() == name) declared = true;
        }
        EXPECT_TRUE(declared) << method << " " << p << ": path parameter {" << name << "} is not declared";
      }
    }
  }
  std::vector<std::string> refs;
  collect_refs(spec, refs);
  EXPECT_FALSE(refs.empty());
  for (const auto& ref : refs) {
    ASSERT_EQ(ref.rfind("#/", 0), 0u) << ref;
    YAML::Node node = spec;
    std::stringstream parts(ref.substr(2));
    for (std::string part; std::getline(parts, part, '/');) {
      node.reset(node[part]);
      ASSERT_TRUE(node) << "unresolved $ref " << ref;
    }
  }
}

TEST(OpenApi, NamesEveryRouteTheHubServes) {
  const auto documented = documented_operations(YAML::LoadFile(kSpec));
  asio::io_context io;
  auto server = Server::create(io.get_executor(), {});
  ASSERT_TRUE(server.ok()) << server.status();
  patchbay::http::HubOptions options;
  options.cors_origin = "*";  // mounts the CORS preflight routes too
  auto hub = Hub::create(io.get_executor(), options);
  hub->mount(**server);
  const auto routes = (*server)->routes();
  EXPECT_GE(routes.size(), 5u);
  for (const auto& route : routes) {
    EXPECT_TRUE(documented.count(route)) << "docs/openapi.yaml does not describe the hub's route " << route;
  }
  hub->stop();
}

unsigned free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

struct Answer {
  int status = 0;
  std::string head;
  std::string body;
};

/// One request on a fresh connection; reads the header and, when it has a Content-Length, the
/// body (a streaming answer — SSE, an upgraded WebSocket — is cut after its header).
Answer call(unsigned port, const std::string& method, const std::string& target, const std::string& extra_headers) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers;
  if (method == "POST") request += "Content-Length: 5\r\n\r\nhello";
  else request += "\r\n";
  asio::write(socket, asio::buffer(request));
  asio::streambuf buffer;
  const auto n = asio::read_until(socket, buffer, "\r\n\r\n");
  Answer out;
  std::string all(asio::buffers_begin(buffer.data()), asio::buffers_end(buffer.data()));
  out.head = all.substr(0, n);
  out.body = all.substr(n);
  out.status = std::stoi(out.head.substr(9, 3));
  const auto cl = lower(out.head).find("content-length: ");
  if (cl != std::string::npos) {
    const std::size_t length = std::stoul(out.head.substr(cl + 16));
    boost::system::error_code ec;
    if (out.body.size() < length) {
      std::string more(length - out.body.size(), '\0');
      asio::read(socket, asio::buffer(more), ec);
      out.body += more;
    }
  }
  return out;
}

TEST(OpenApi, EveryDocumentedOperationIsServed) {
  const auto documented = documented_operations(YAML::LoadFile(kSpec));
  const auto port = free_port();
  auto inst = patchbay::conformance::from_config(std::string("plugins: [") + PATCHBAY_HTTP_MODULE + "]\n" + R"(
default_transport: web
transports:
  web:
    type: http
    listen: 127.0.0.1:)" + std::to_string(port) + R"(
    open_topics: true
    cors_origin: "*"
)");
  ASSERT_TRUE(inst.ok()) << inst.status();
  for (const auto& op : documented) {
    const auto space = op.find(' ');
    const auto method = op.substr(0, space);
    std::string target = op.substr(space + 1);
    for (const auto& [param, value] : {std::pair<std::string, std::string>{"{topic}", "openapi-probe"},
                                       std::pair<std::string, std::string>{"{service}", "openapi-probe"}}) {
      if (auto at = target.find(param); at != std::string::npos) target.replace(at, param.size(), value);
    }
    std::string headers;
    if (target.ends_with("/ws")) {
      headers = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    }
    if (target.ends_with("/poll")) target += "?wait=0";
    const auto answer = call(port, method, target, headers);
    SCOPED_TRACE(op + " → " + answer.head.substr(0, answer.head.find('\r')));
    EXPECT_NE(answer.status, 405) << "documented but not served";
    EXPECT_FALSE(answer.status == 404 && answer.body == "not found\n") << "documented but not served";
    EXPECT_LT(answer.status, 500);
    if (target.find("/ws") != std::string::npos) {
      EXPECT_EQ(answer.status, 101);
    }
  }
  if (inst->shutdown) inst->shutdown();
}

}  // namespace
