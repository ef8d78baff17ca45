// tools/patchbay/main.cpp — the `patchbay` command-line tool.
//
// One binary to check a config, list the available plugins and talk to any configured
// transport from a shell: publish, subscribe, request, serve an echo service, or run
// everything a config declares. It uses only the public core API, like an application would.
//
//     patchbay check --config patchbay.yaml
//     patchbay sub --topic ticks --count 3 &
//     patchbay pub --topic ticks --count 3 'tick {n}'
//
// Exit status: 0 success, 1 failure (bad config, failed request, ...), 2 bad command line.
// The argument parser is hand-written on purpose: the tool needs nothing beyond the core.
#include <patchbay/patchbay.hpp>
#include <patchbay/transports/http/http.hpp>
#include <patchbay/transports/sse/sse.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace patchbay;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// ---------------------------------------------------------------------------------------------
// Command line

struct OptionSpec {
  std::string_view name;   // without the leading "--"
  std::string_view value;  // placeholder shown in help ("FILE"); empty for a flag
  std::string_view help;
  bool repeatable = false;
};

struct Args {
  std::map<std::string, std::vector<std::string>, std::less<>> values;  // options with a value
  std::set<std::string, std::less<>> flags;                             // options without one
  std::vector<std::string> positional;

  std::optional<std::string> get(std::string_view name) const {
    auto it = values.find(name);
    if (it == values.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
  const std::vector<std::string>& all(std::string_view name) const {
    static const std::vector<std::string> none;
    auto it = values.find(name);
    return it == values.end() ? none : it->second;
  }
  bool flag(std::string_view name) const { return flags.contains(name); }
};

/// A command-line mistake: printed with the command's usage, exit status 2.
struct UsageError {
  std::string message;
};

struct Command {
  std::string_view name;
  std::string_view brief;  // one line for the command list
  std::string_view summary;
  std::string_view synopsis;  // after "patchbay NAME"
  std::vector<OptionSpec> options;
  std::size_t min_positional = 0;
  std::size_t max_positional = 0;
  std::string_view positional_name;  // "PAYLOAD"
  std::string_view details;          // extra help text
  int (*run)(const Args&) = nullptr;
};

const OptionSpec kConfigOption{"config", "FILE", "patchbay YAML config (default: the embedded in-process config)"};

void print_command_help(const Command& c, std::ostream& out) {
  out << "usage: patchbay " << c.name << " " << c.synopsis << "\n\n" << c.summary << "\n\noptions:\n";
  std::vector<OptionSpec> options = c.options;
  options.insert(options.begin(), kConfigOption);
  options.push_back({"help", "", "show this help"});
  for (const auto& o : options) {
    std::string left = "  --" + std::string(o.name);
    if (!o.value.empty()) left += " " + std::string(o.value);
    if (left.size() < 24)
      left.resize(24, ' ');
    else
      left += "  ";
    out << left << o.help << (o.repeatable ? " (repeatable)" : "") << "\n";
  }
  if (!c.details.empty()) out << "\n" << c.details;
}

Args parse_args(const Command& c, int argc, char** argv) {
  std::vector<OptionSpec> options = c.options;
  options.push_back(kConfigOption);
  Args args;
  bool only_positional = false;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    if (only_positional || a.size() < 2 || a[0] != '-') {
      args.positional.emplace_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      args.flags.insert("help");
      continue;
    }
    if (!a.starts_with("--")) throw UsageError{"unknown option '" + std::string(a) + "'"};
    std::string_view name = a.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string_view::npos) {
      inline_value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    auto spec = std::find_if(options.begin(), options.end(), [&](const OptionSpec& o) { return o.name == name; });
    if (spec == options.end()) throw UsageError{"unknown option '--" + std::string(name) + "'"};
    if (spec->value.empty()) {
      if (inline_value) throw UsageError{"option '--" + std::string(name) + "' takes no value"};
      args.flags.insert(std::string(name));
      continue;
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw UsageError{"option '--" + std::string(name) + "' needs a value (" + std::string(spec->value) + ")"};
    }
    auto& slot = args.values[std::string(name)];
    if (!slot.empty() && !spec->repeatable) throw UsageError{"option '--" + std::string(name) + "' given twice"};
    slot.push_back(std::move(value));
  }
  if (args.flag("help")) return args;
  if (args.positional.size() < c.min_positional) throw UsageError{"missing " + std::string(c.positional_name)};
  if (args.positional.size() > c.max_positional) {
    throw UsageError{"unexpected argument '" + args.positional[c.max_positional] + "'"};
  }
  return args;
}

std::uint64_t parse_count(const Args& args, std::string_view name, std::uint64_t fallback) {
  auto text = args.get(name);
  if (!text) return fallback;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) {
    throw UsageError{"--" + std::string(name) + " needs a non-negative whole number, not '" + *text + "'"};
  }
  return value;
}

std::string require_option(const Args& args, std::string_view name) {
  auto value = args.get(name);
  if (!value || value->empty()) throw UsageError{"--" + std::string(name) + " is required"};
  return *value;
}

Headers parse_headers(const Args& args) {
  Headers headers;
  for (const auto& h : args.all("header")) {
    auto eq = h.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError{"--header needs NAME=VALUE, not '" + h + "'"};
    headers.add(h.substr(0, eq), h.substr(eq + 1));
  }
  return headers;
}

// ---------------------------------------------------------------------------------------------
// Output helpers

/// "prefix: message" without Boost's " [category:value at location]" suffix.
std::string describe(const boost::system::system_error& e) {
  std::string what = e.what();
  std::string tag = std::string(" [") + e.code().category().name() + ":";
  if (auto pos = what.rfind(tag); pos != std::string::npos && !what.empty() && what.back() == ']') what.erase(pos);
  return what;
}

/// Payloads are printed one per line: control bytes (newline, tab, ...) are escaped.
std::string printable(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (unsigned char ch : bytes) {
    switch (ch) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (ch < 0x20 || ch == 0x7f) {
          char buf[5];
          std::snprintf(buf, sizeof buf, "\\x%02x", ch);
          out += buf;
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  return out;
}

void print_status(const absl::Status& status) {
  std::string text(status.message());
  if (text.empty()) text = status.ToString();
  std::cerr << text;
  if (text.empty() || text.back() != '\n') std::cerr << "\n";
}

// ---------------------------------------------------------------------------------------------
// Runtime plumbing

/// The built-in transports plus the HTTP family, linked into the tool so that `type: http` and
/// `type: sse` work without a `plugins:` entry (a listed module still replaces them).
std::unique_ptr<Registry> make_registry() {
  auto registry = Registry::with_builtins();
  for (auto status : {http_transport::register_transport(*registry), sse_transport::register_transport(*registry)}) {
    if (!status.ok()) print_status(status);
  }
  return registry;
}

std::unique_ptr<Runtime> make_runtime(const Args& args) {
  RuntimeOptions options;
  options.config_file = args.get("config");
  options.registry = make_registry();
  auto runtime = Runtime::create(std::move(options));
  if (!runtime.ok()) {
    print_status(runtime.status());
    return nullptr;
  }
  return *std::move(runtime);
}

/// Starts the runtime, runs `work` on it, and stops the runtime when `work` ends (or when
/// SIGINT/SIGTERM stop the runtime first). Returns the exit status.
int drive(Runtime& runtime, std::function<awaitable<int>()> work) {
  if (auto status = runtime.start(); !status.ok()) {
    runtime.wait();  // a failed start requested a stop; let it finish
    print_status(status);
    return kExitFailure;
  }
  // Written by the completion handler on an io thread; read after wait() joined those threads.
  std::optional<int> result;
  std::exception_ptr error;
  asio::co_spawn(runtime.get_executor(), work(), [&](std::exception_ptr e, int rc) {
    error = e;
    result = rc;
    runtime.stop();
  });
  runtime.wait();

  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
      std::cerr << "patchbay: " << describe(e) << "\n";
    } catch (const std::exception& e) {
      std::cerr << "patchbay: " << e.what() << "\n";
    }
    return kExitFailure;
  }
  // No result: a signal stopped the runtime before the work ended, which is how `serve` and
  // an open-ended `sub` are meant to end.
  return result.value_or(kExitOk);
}

bool is_stop_error(const boost::system::error_code& ec) {
  return ec == errc::stopped || ec == errc::closed || ec == asio::error::operation_aborted;
}

// ---------------------------------------------------------------------------------------------
// Commands

int cmd_check(const Args& args) {
  auto runtime = make_runtime(args);
  if (!runtime) return kExitFailure;
  auto bindings = runtime->bindings();
  for (const auto& b : bindings) {
    std::cout << b.name;
    if (b.wire_name != b.name) std::cout << " (wire name '" << b.wire_name << "')";
    std::cout << " -> " << b.transport << " (" << b.transport_type << ", from " << b.origin
              << ") features: " << b.features.describe();
    if (!b.middleware.empty()) {
      std::cout << "; middleware:";
      for (std::size_t i = 0; i < b.middleware.size(); ++i) std::cout << (i ? ", " : " ") << b.middleware[i];
    }
    std::cout << "\n";
  }
  const auto& config = runtime->config();
  std::cout << "ok: " << config.file << ": " << bindings.size() << (bindings.size() == 1 ? " binding" : " bindings");
  std::cout << "; other names use "
            << (config.default_transport.empty() ? std::string("the embedded in-process transport")
                                                 : "transport '" + config.default_transport + "'")
            << "\n";
  return kExitOk;
}

int cmd_plugins(const Args& args) {
  // Built directly rather than through Runtime::create, so that the plugins can be listed
  // even when a binding in the config has a problem.
  auto registry = make_registry();
  int rc = kExitOk;
  if (auto file = args.get("config")) {
    auto config = config::Config::load_file(*file);
    if (!config.ok()) {
      print_status(config.status());
      return kExitFailure;
    }
    for (const auto& plugin : config->plugins) {
      if (auto status = registry->load_plugin(plugin.resolved_path); !status.ok()) {
        std::cerr << plugin.mark.str() << ": ";
        print_status(status);
        rc = kExitFailure;
      }
    }
  }
  auto factories = registry->list();
  std::sort(factories.begin(), factories.end(), [](const FactoryInfo& a, const FactoryInfo& b) {
    return std::tie(a.what, a.type) < std::tie(b.what, b.type);
  });
  std::size_t width = 4;
  for (const auto& f : factories) width = std::max(width, f.type.size());
  auto pad = [](std::string s, std::size_t n) {
    if (s.size() < n) s.resize(n, ' ');
    return s;
  };
  std::cout << pad("KIND", 12) << pad("TYPE", width + 2) << "ORIGIN\n";
  for (const auto& f : factories) {
    std::cout << pad(f.what == FactoryInfo::kind::transport ? "transport" : "middleware", 12) << pad(f.type, width + 2)
              << f.origin << "\n";
  }
  return rc;
}

std::string with_sequence(std::string_view text, std::uint64_t n) {
  std::string out;
  std::string number = std::to_string(n);
  for (std::size_t i = 0; i < text.size();) {
    if (text.substr(i, 3) == "{n}") {
      out += number;
      i += 3;
    } else {
      out += text[i++];
    }
  }
  return out;
}

awaitable<int> publish_all(Topic topic, std::string payload, Headers headers, std::uint64_t count,
                           std::chrono::milliseconds interval) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (std::uint64_t n = 1; n <= count; ++n) {
    if (n > 1 && interval.count() > 0) {
      timer.expires_after(interval);
      co_await timer.async_wait(asio::use_awaitable);
    }
    Message msg(with_sequence(payload, n));
    msg.headers = headers;
    msg.stamp();
    std::string id = msg.id;
    co_await topic.publish(std::move(msg));
    std::cout << id << "\n" << std::flush;
  }
  co_return kExitOk;
}

int cmd_pub(const Args& args) {
  std::string topic = require_option(args, "topic");
  auto count = parse_count(args, "count", 1);
  auto interval = std::chrono::milliseconds(parse_count(args, "interval-ms", 0));
  Headers headers = parse_headers(args);
  auto runtime = make_runtime(args);
  if (!runtime) return kExitFailure;
  return drive(*runtime,
               [&]() { return publish_all(runtime->topic(topic), args.positional.at(0), headers, count, interval); });
}

void print_gap(const Gap& gap) {
  std::cout << "gap: missed=" << gap.missed << " reason=\"" << gap.reason
            << "\" last_seen=" << (gap.last_seen.empty() ? std::string("-") : gap.last_seen.to_string())
            << " resumes_at=" << (gap.resumes_at.empty() ? std::string("-") : gap.resumes_at.to_string()) << "\n"
            << std::flush;
}

awaitable<int> subscribe_and_print(Runtime& runtime, Topic topic, SubscribeOptions options, std::uint64_t count,
                                   bool ack) {
  auto stream = co_await topic.subscribe(std::move(options));
  std::cerr << "patchbay: subscribed to '" << topic.name() << "'\n";
  std::uint64_t received = 0;
  while (count == 0 || received < count) {
    std::optional<Delivery> d;
    try {
      d = co_await stream.next();
    } catch (const boost::system::system_error& e) {
      if (!is_stop_error(e.code())) throw;
    }
    if (!d) break;
    if (d->is_gap()) {
      print_gap(d->gap());
      continue;
    }
    const auto& pos = d->position();
    std::cout << (pos.empty() ? std::string("-") : pos.to_string()) << '\t' << d->message().id << '\t'
              << printable(d->message().payload.view()) << "\n"
              << std::flush;
    if (ack) {
      d->ack();
    } else {
      d->nack(true);
    }
    ++received;
  }
  if (count != 0 && received < count && !runtime.stopping()) {
    std::cerr << "patchbay: the subscription ended after " << received << " of " << count << " messages\n";
    co_return kExitFailure;
  }
  co_return kExitOk;
}

int cmd_sub(const Args& args) {
  std::string topic = require_option(args, "topic");
  SubscribeOptions options;
  options.group(args.get("group").value_or(""));
  if (auto from = args.get("from")) options.from(Position::parse(*from));
  auto count = parse_count(args, "count", 0);
  if (args.flag("ack") && args.flag("no-ack")) throw UsageError{"--ack and --no-ack exclude each other"};
  bool ack = !args.flag("no-ack");
  auto runtime = make_runtime(args);
  if (!runtime) return kExitFailure;
  return drive(*runtime,
               [&]() { return subscribe_and_print(*runtime, runtime->topic(topic), std::move(options), count, ack); });
}

awaitable<int> request_once(Service service, Message msg, std::chrono::milliseconds timeout) {
  Message reply = co_await service.request(std::move(msg), timeout);
  if (auto error = reply.headers.get("patchbay-error")) {
    std::cerr << "patchbay: " << service.name() << " failed: " << std::string(*error) << "\n";
    co_return kExitFailure;
  }
  std::cout << reply.payload.view() << "\n" << std::flush;
  co_return kExitOk;
}

int cmd_req(const Args& args) {
  std::string service = require_option(args, "service");
  auto timeout = std::chrono::milliseconds(parse_count(args, "timeout-ms", 5000));
  Message msg(args.positional.at(0));
  msg.headers = parse_headers(args);
  auto runtime = make_runtime(args);
  if (!runtime) return kExitFailure;
  return drive(*runtime, [&]() { return request_once(runtime->service(service), std::move(msg), timeout); });
}

awaitable<int> serve_echo(Runtime& runtime, Service service) {
  std::cerr << "patchbay: serving '" << service.name() << "' (echo); stop with Ctrl-C or SIGTERM\n";
  try {
    co_await service.serve([](Message request) -> awaitable<Message> {
      std::cout << request.id << '\t' << printable(request.payload.view()) << "\n" << std::flush;
      Message reply(request.payload);
      reply.headers = request.headers;
      co_return reply;
    });
  } catch (const boost::system::system_error& e) {
    if (!(is_stop_error(e.code()) && runtime.stopping())) throw;
  }
  co_return kExitOk;
}

int cmd_serve(const Args& args) {
  std::string service = require_option(args, "service");
  auto runtime = make_runtime(args);
  if (!runtime) return kExitFailure;
  return drive(*runtime, [&]() { return serve_echo(*runtime, runtime->service(service)); });
}

int cmd_run(const Args& args) {
  auto runtime = make_runtime(args);
  if (!runtime) return kExitFailure;
  std::cerr << "patchbay: running " << runtime->config().file << "; stop with Ctrl-C or SIGTERM\n";
  if (auto status = runtime->run(); !status.ok()) {
    print_status(status);
    return kExitFailure;
  }
  return kExitOk;
}

const std::vector<Command>& commands() {
  static const std::vector<Command> all = {
      {"check",
       "validate a config and show what each binding resolves to",
       "Validate a config: load its plugins, build its transports and check every binding's `require:`.",
       "[--config FILE]",
       {},
       0,
       0,
       "",
       "Prints one line per binding: NAME -> TRANSPORT (TYPE, from ORIGIN) features: ...\n"
       "On a problem, prints each one (file:line:column: what) on stderr and exits 1.\n",
       cmd_check},
      {"plugins",
       "list the transport and middleware factories available",
       "List the transport and middleware factories: the built-in ones and those of the config's plugins.",
       "[--config FILE]",
       {},
       0,
       0,
       "",
       "",
       cmd_plugins},
      {"pub",
       "publish messages to a topic",
       "Publish PAYLOAD to a topic, COUNT times; `{n}` in PAYLOAD becomes the sequence number (1, 2, ...).",
       "--topic T [--count N] [--header K=V]... [--interval-ms M] PAYLOAD",
       {{"topic", "T", "topic (binding name) to publish to"},
        {"count", "N", "how many messages (default 1)"},
        {"header", "K=V", "add a header to each message", true},
        {"interval-ms", "M", "pause between messages in milliseconds (default 0)"}},
       1,
       1,
       "PAYLOAD",
       "Prints the id of each message once the transport accepted it.\n",
       cmd_pub},
      {"sub",
       "subscribe to a topic and print what arrives",
       "Subscribe to a topic and print each delivery as POSITION<TAB>ID<TAB>PAYLOAD, one per line.",
       "--topic T [--group G] [--from latest|earliest|TOKEN] [--count N] [--ack|--no-ack]",
       {{"topic", "T", "topic (binding name) to subscribe to"},
        {"group", "G", "consumer group (members share the messages)"},
        {"from", "POS", "latest (default), earliest, or a position token to resume after"},
        {"count", "N", "exit after N messages (default: until SIGINT/SIGTERM)"},
        {"ack", "", "acknowledge each message (default)"},
        {"no-ack", "", "nack each message with requeue instead, leaving it for other consumers"}},
       0,
       0,
       "",
       "Control bytes in payloads are escaped (\\n, \\t, \\xNN). A gap in the history is printed as a\n"
       "line starting with `gap:`.\n",
       cmd_sub},
      {"req",
       "send one request to a service and print the reply",
       "Send PAYLOAD as one request to a service and print the reply's payload.",
       "--service S [--timeout-ms T] [--header K=V]... PAYLOAD",
       {{"service", "S", "service (binding name) to call"},
        {"timeout-ms", "T", "deadline in milliseconds (default 5000)"},
        {"header", "K=V", "add a header to the request", true}},
       1,
       1,
       "PAYLOAD",
       "On a timeout, no responders or a failed handler, prints the error and exits 1.\n",
       cmd_req},
      {"serve",
       "serve an echo service until SIGINT/SIGTERM",
       "Serve a service that echoes each request (payload and headers) until SIGINT/SIGTERM.",
       "--service S",
       {{"service", "S", "service (binding name) to serve"}},
       0,
       0,
       "",
       "Prints ID<TAB>PAYLOAD for each request it answers.\n",
       cmd_serve},
      {"run",
       "start everything the config declares, until SIGINT/SIGTERM",
       "Start everything the config declares (transports, servers) until SIGINT/SIGTERM.",
       "[--config FILE]",
       {},
       0,
       0,
       "",
       "",
       cmd_run},
  };
  return all;
}

void print_usage(std::ostream& out) {
  out << "usage: patchbay <command> [--config FILE] [options]\n\ncommands:\n";
  for (const auto& c : commands()) {
    std::string name(c.name);
    name.resize(10, ' ');
    out << "  " << name << c.brief << "\n";
  }
  out << "\nWithout --config, the embedded default is used: every name on the in-process transport.\n"
         "`patchbay <command> --help` shows the options of a command.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(std::cerr);
    return kExitUsage;
  }
  std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(std::cout);
    return kExitOk;
  }
  auto& all = commands();
  auto command = std::find_if(all.begin(), all.end(), [&](const Command& c) { return c.name == name; });
  if (command == all.end()) {
    std::cerr << "patchbay: unknown command '" << name << "'\n\n";
    print_usage(std::cerr);
    return kExitUsage;
  }
  try {
    Args args = parse_args(*command, argc, argv);
    if (args.flag("help")) {
      print_command_help(*command, std::cout);
      return kExitOk;
    }
    return command->run(args);
  } catch (const UsageError& e) {
    std::cerr << "patchbay " << command->name << ": " << e.message << "\n\n";
    print_command_help(*command, std::cerr);
    return kExitUsage;
  } catch (const boost::system::system_error& e) {
    std::cerr << "patchbay: " << describe(e) << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "patchbay: " << e.what() << "\n";
    return kExitFailure;
  }
}
