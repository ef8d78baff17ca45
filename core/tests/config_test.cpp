#include <patchbay/config.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <patchbay/features.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace patchbay::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string msg(const absl::Status& s) { return std::string(s.message()); }

template <typename T>
std::string msg(const absl::StatusOr<T>& s) {
  return std::string(s.status().message());
}

// Environment variables with names no other test (or the machine) uses.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const char* value) : name_(std::move(name)) {
    if (value)
      ::setenv(name_.c_str(), value, 1);
    else
      ::unsetenv(name_.c_str());
  }
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
};

// ---------------------------------------------------------------------------------------------
// Mark, error_at

TEST(ConfigMark, StrAndErrorAt) {
  EXPECT_EQ((Mark{"app.yaml", 3, 7}).str(), "app.yaml:3:7");
  EXPECT_EQ((Mark{"app.yaml", 0, 0}).str(), "app.yaml");
  absl::Status s = error_at(Mark{"app.yaml", 3, 7}, "something is wrong");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(msg(s), "app.yaml:3:7: something is wrong");
}

// ---------------------------------------------------------------------------------------------
// expand_env

TEST(ConfigExpandEnv, SubstitutesSetVariable) {
  ScopedEnv e("PATCHBAY_CFGTEST_HOST", "redis.local");
  auto r = expand_env("redis://${PATCHBAY_CFGTEST_HOST}:6379/${PATCHBAY_CFGTEST_HOST}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "redis://redis.local:6379/redis.local");
}

TEST(ConfigExpandEnv, DefaultUsedWhenUnsetOrEmpty) {
  ScopedEnv unset("PATCHBAY_CFGTEST_UNSET", nullptr);
  ScopedEnv empty("PATCHBAY_CFGTEST_EMPTY", "");
  ScopedEnv set("PATCHBAY_CFGTEST_SET", "x");
  EXPECT_EQ(*expand_env("${PATCHBAY_CFGTEST_UNSET:-localhost}"), "localhost");
  EXPECT_EQ(*expand_env("${PATCHBAY_CFGTEST_EMPTY:-fallback}"), "fallback");
  EXPECT_EQ(*expand_env("${PATCHBAY_CFGTEST_SET:-fallback}"), "x");
  EXPECT_EQ(*expand_env("a${PATCHBAY_CFGTEST_UNSET:-}b"), "ab");
  EXPECT_EQ(*expand_env("${PATCHBAY_CFGTEST_UNSET:-with:colon and space}"), "with:colon and space");
}

TEST(ConfigExpandEnv, UnsetWithoutDefaultIsError) {
  ScopedEnv unset("PATCHBAY_CFGTEST_MISSING", nullptr);
  auto r = expand_env("${PATCHBAY_CFGTEST_MISSING}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(msg(r),
            "environment variable PATCHBAY_CFGTEST_MISSING is not set; set it or write "
            "${PATCHBAY_CFGTEST_MISSING:-default}");
}

TEST(ConfigExpandEnv, DoubleDollarIsLiteral) {
  ScopedEnv set("PATCHBAY_CFGTEST_LIT", "value");
  EXPECT_EQ(*expand_env("$${PATCHBAY_CFGTEST_LIT}"), "${PATCHBAY_CFGTEST_LIT}");
  EXPECT_EQ(*expand_env("$${NOT_A_VAR_EVER} and ${PATCHBAY_CFGTEST_LIT}"), "${NOT_A_VAR_EVER} and value");
  // A lone $ or $NAME without braces is left alone.
  EXPECT_EQ(*expand_env("costs $5, $HOME"), "costs $5, $HOME");
}

TEST(ConfigExpandEnv, MalformedReferencesAreErrors) {
  EXPECT_THAT(msg(expand_env("${PATCHBAY_CFGTEST_OPEN")), HasSubstr("unterminated"));
  EXPECT_THAT(msg(expand_env("${not valid}")), HasSubstr("invalid environment variable reference"));
  EXPECT_THAT(msg(expand_env("${}")), HasSubstr("invalid environment variable reference"));
}

// ---------------------------------------------------------------------------------------------
// Config::parse: valid input

TEST(ConfigParse, EmptyFileAndCommentsOnlyAreValid) {
  for (const char* text : {"", "\n\n", "# only a comment\n# and another\n"}) {
    auto c = Config::parse(text, "empty.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->file, "empty.yaml");
    EXPECT_TRUE(c->plugins.empty());
    EXPECT_TRUE(c->transports.empty());
    EXPECT_TRUE(c->bindings.empty());
    EXPECT_EQ(c->threads, 0);
    EXPECT_EQ(c->drain_timeout, std::chrono::milliseconds(5000));
  }
}

TEST(ConfigParse, EmbeddedDefault) {
  Config c = Config::embedded_default();
  EXPECT_EQ(c.file, "<embedded default>");
  EXPECT_TRUE(c.plugins.empty());
  EXPECT_TRUE(c.transports.empty());
  EXPECT_TRUE(c.bindings.empty());
  EXPECT_TRUE(c.default_transport.empty());
  EXPECT_EQ(c.threads, 0);
}

TEST(ConfigParse, FullValidExample) {
  ScopedEnv host("PATCHBAY_CFGTEST_FULL_HOST", "10.0.0.7");
  ScopedEnv unset("PATCHBAY_CFGTEST_FULL_PORT", nullptr);
  const char* text = R"(# a complete configuration
plugins:
  - ./lib/libpatchbay_redis.so
  - /opt/patchbay/libpatchbay_nats.so
threads: 4
drain_timeout: 2s
default_transport: bus
transports:
  bus:
    type: inproc
    history: 2048
    slow_subscriber: drop_oldest
  cache:
    type: redis
    url: redis://${PATCHBAY_CFGTEST_FULL_HOST}:${PATCHBAY_CFGTEST_FULL_PORT:-6379}
bindings:
  ticks:
    transport: bus
    require: [ordered, replay]
    middleware:
      - type: headers
        set: { x-source: ticker }
  prices:
    transport: cache
    name: market.prices
  orders: {}
)";
  auto c = Config::parse(text, "app.yaml", "/etc/patchbay");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->file, "app.yaml");

  ASSERT_EQ(c->plugins.size(), 2u);
  EXPECT_EQ(c->plugins[0].path, "./lib/libpatchbay_redis.so");
  EXPECT_EQ(c->plugins[0].resolved_path, "/etc/patchbay/lib/libpatchbay_redis.so");
  EXPECT_EQ(c->plugins[0].mark.str(), "app.yaml:3:5");
  EXPECT_EQ(c->plugins[1].resolved_path, "/opt/patchbay/libpatchbay_nats.so");

  EXPECT_EQ(c->threads, 4);
  EXPECT_EQ(c->drain_timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(c->default_transport, "bus");
  EXPECT_EQ(c->default_transport_mark.str(), "app.yaml:7:20");

  ASSERT_EQ(c->transports.size(), 2u);
  const TransportSpec& bus = c->transports[0];
  EXPECT_EQ(bus.name, "bus");
  EXPECT_EQ(bus.type, "inproc");
  EXPECT_EQ(bus.mark.str(), "app.yaml:9:3");
  EXPECT_EQ(bus.settings.context(), "transport 'bus'");
  // What an inproc factory would do: read its keys, then the runtime checks the rest.
  EXPECT_EQ(*bus.settings.get_int("history", 1024, 1), 2048);
  EXPECT_EQ(*bus.settings.get_choice("slow_subscriber", "block", {"block", "drop_oldest"}), "drop_oldest");
  EXPECT_TRUE(bus.settings.check_unknown_keys().ok()) << bus.settings.check_unknown_keys();

  const TransportSpec& cache = c->transports[1];
  EXPECT_EQ(cache.type, "redis");
  EXPECT_EQ(*cache.settings.get_string("url", ""), "redis://10.0.0.7:6379");

  ASSERT_EQ(c->bindings.size(), 3u);
  const BindingSpec& ticks = c->bindings[0];
  EXPECT_EQ(ticks.name, "ticks");
  EXPECT_EQ(ticks.wire_name, "ticks");
  EXPECT_EQ(ticks.transport, "bus");
  EXPECT_EQ(ticks.transport_mark.str(), "app.yaml:18:16");
  EXPECT_EQ(ticks.require, (std::vector<std::string>{"ordered", "replay"}));
  EXPECT_EQ(ticks.require_mark.str(), "app.yaml:19:14");
  ASSERT_EQ(ticks.middleware.size(), 1u);
  EXPECT_EQ(ticks.middleware[0].type, "headers");
  EXPECT_EQ(ticks.middleware[0].mark.str(), "app.yaml:21:9");
  EXPECT_EQ(ticks.middleware[0].settings.context(), "middleware 'headers' of binding 'ticks'");
  auto set = ticks.middleware[0].settings.get_map("set");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(*set->get_string("x-source", ""), "ticker");
  EXPECT_TRUE(ticks.middleware[0].settings.check_unknown_keys().ok());

  const BindingSpec& prices = c->bindings[1];
  EXPECT_EQ(prices.transport, "cache");
  EXPECT_EQ(prices.wire_name, "market.prices");
  EXPECT_TRUE(prices.require.empty());
  EXPECT_TRUE(prices.middleware.empty());

  // No transport: the default transport.
  const BindingSpec& orders = c->bindings[2];
  EXPECT_EQ(orders.name, "orders");
  EXPECT_EQ(orders.wire_name, "orders");
  EXPECT_EQ(orders.transport, "bus");
}

TEST(ConfigParse, BindingWithoutTransportAndNoDefaultIsEmbedded) {
  auto c = Config::parse("bindings:\n  ticks:\n  quotes: { name: q.v1 }\n", "b.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->bindings.size(), 2u);
  EXPECT_EQ(c->bindings[0].name, "ticks");
  EXPECT_EQ(c->bindings[0].transport, "");
  EXPECT_EQ(c->bindings[1].wire_name, "q.v1");
  EXPECT_EQ(c->bindings[1].transport, "");
}

TEST(ConfigParse, EnvSubstitutionAppliesToValuesNotKeys) {
  ScopedEnv t("PATCHBAY_CFGTEST_THREADS", "8");
  ScopedEnv k("PATCHBAY_CFGTEST_KEY", "threads");
  auto c = Config::parse("threads: ${PATCHBAY_CFGTEST_THREADS}\n", "env.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->threads, 8);

  // Keys are not expanded: this is an unknown key, not `threads`.
  auto bad = Config::parse("${PATCHBAY_CFGTEST_KEY}: 3\n", "env.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(msg(bad), HasSubstr("unknown key '${PATCHBAY_CFGTEST_KEY}'"));
}

TEST(ConfigParse, UnsetVariableErrorPointsAtTheScalar) {
  ScopedEnv unset("PATCHBAY_CFGTEST_NOPE", nullptr);
  auto c = Config::parse("transports:\n  bus:\n    type: inproc\n    url: \"x-${PATCHBAY_CFGTEST_NOPE}\"\n", "env.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(msg(c),
            "env.yaml:4:10: environment variable PATCHBAY_CFGTEST_NOPE is not set; set it or write "
            "${PATCHBAY_CFGTEST_NOPE:-default}");
}

TEST(ConfigParse, UnsetVariableDoesNotCascade) {
  ScopedEnv unset("PATCHBAY_CFGTEST_NTHREADS", nullptr);
  auto c = Config::parse("threads: ${PATCHBAY_CFGTEST_NTHREADS}\n", "env.yaml");
  ASSERT_FALSE(c.ok());
  // One problem, not also "expected an integer" for the unexpanded text.
  EXPECT_EQ(msg(c),
            "env.yaml:1:10: environment variable PATCHBAY_CFGTEST_NTHREADS is not set; set it or write "
            "${PATCHBAY_CFGTEST_NTHREADS:-default}");
}

TEST(ConfigParse, AliasesAreExpandedOnce) {
  ScopedEnv set("PATCHBAY_CFGTEST_ALIAS", "v");
  auto c = Config::parse(
      "transports:\n  bus: { type: inproc, a: &lit \"$${PATCHBAY_CFGTEST_ALIAS}\", b: *lit }\n", "alias.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const Node& s = c->transports[0].settings;
  EXPECT_EQ(*s.get_string("a", ""), "${PATCHBAY_CFGTEST_ALIAS}");
  EXPECT_EQ(*s.get_string("b", ""), "${PATCHBAY_CFGTEST_ALIAS}");
}

TEST(ConfigParse, RelativePluginPathsResolveAgainstBaseDir) {
  auto c = Config::parse("plugins: [ libs/a.so, ./b.so, ../c.so, /abs/d.so ]\n", "p.yaml", "/srv/app/conf");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->plugins.size(), 4u);
  EXPECT_EQ(c->plugins[0].path, "libs/a.so");
  EXPECT_EQ(c->plugins[0].resolved_path, "/srv/app/conf/libs/a.so");
  EXPECT_EQ(c->plugins[1].resolved_path, "/srv/app/conf/b.so");
  EXPECT_EQ(c->plugins[2].resolved_path, "/srv/app/c.so");
  EXPECT_EQ(c->plugins[3].resolved_path, "/abs/d.so");
  EXPECT_EQ(c->plugins[1].mark.str(), "p.yaml:1:23");
}

TEST(ConfigParse, RelativePluginPathsWithDefaultBaseDirAreAbsolute) {
  auto c = Config::parse("plugins: [ ./x.so ]\n");
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string expected = (std::filesystem::current_path() / "x.so").string();
  EXPECT_EQ(c->plugins[0].resolved_path, expected);
}

TEST(ConfigParse, Durations) {
  struct Case {
    const char* text;
    long long ms;
  } cases[] = {{"250ms", 250}, {"5s", 5000},  {"2m", 120000}, {"1h", 3600000},
               {"3", 3000},    {"0.5", 500}, {"1.5s", 1500}, {"0", 0}};
  for (const auto& k : cases) {
    auto c = Config::parse(std::string("drain_timeout: ") + k.text + "\n", "d.yaml");
    ASSERT_TRUE(c.ok()) << k.text << ": " << c.status();
    EXPECT_EQ(c->drain_timeout.count(), k.ms) << k.text;
  }
  for (const char* bad : {"soon", "5 parsecs", "-1s", "ms", "[1]"}) {
    auto c = Config::parse(std::string("drain_timeout: ") + bad + "\n", "d.yaml");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_THAT(msg(c), HasSubstr("d.yaml:1:16: drain_timeout: expected a duration such as 250ms, 5s, 2m, 1h"))
        << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Config::parse: errors, each with its exact place

TEST(ConfigParse, YamlSyntaxErrorHasLocation) {
  auto c = Config::parse("threads: 2\nplugins: [a.so, b.so\nbindings: {}\n", "bad.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(msg(c), HasSubstr("bad.yaml:3:9: YAML syntax error: "));
}

TEST(ConfigParse, TopLevelMustBeAMapping) {
  auto c = Config::parse("- a\n- b\n", "list.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(msg(c), HasSubstr("list.yaml:1:1: the top level must be a mapping"));
}

TEST(ConfigParse, UnknownTopLevelKeyWithDidYouMean) {
  auto c = Config::parse("threads: 2\nplugin: [a.so]\n", "top.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(msg(c),
            "top.yaml:2:1: top level: unknown key 'plugin' (did you mean 'plugins'?); known keys here: bindings, "
            "default_transport, drain_timeout, plugins, threads, transports");
}

TEST(ConfigParse, UnknownKeyWithoutNearMatchHasNoSuggestion) {
  auto c = Config::parse("colour: red\n", "top.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(msg(c), HasSubstr("top.yaml:1:1: top level: unknown key 'colour'; known keys here:"));
  EXPECT_THAT(msg(c), Not(HasSubstr("did you mean")));
}

TEST(ConfigParse, WrongTypeForThreads) {
  auto c = Config::parse("threads: many\n", "t.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(msg(c), "t.yaml:1:10: threads: expected an integer between 1 and 256, got 'many'");
}

TEST(ConfigParse, ThreadsOutOfRange) {
  auto c = Config::parse("threads: 0\n", "t.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(msg(c), "t.yaml:1:10: threads: expected an integer between 1 and 256, got 0");
  EXPECT_FALSE(Config::parse("threads: 257\n").ok());
  EXPECT_TRUE(Config::parse("threads: 256\n").ok());
}

TEST(ConfigParse, WrongTypeForBindings) {
  auto c = Config::parse("bindings: [a]\n", "b.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(msg(c), HasSubstr("b.yaml:1:11: bindings: expected a mapping of binding name to settings"));
  EXPECT_THAT(msg(c), HasSubstr("got a list"));
}

TEST(ConfigParse, WrongTypeForPluginsAndTransports) {
  auto c = Config::parse("plugins: lib.so\ntransports: [bus]\n", "w.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(msg(c), HasSubstr("w.yaml:1:10: plugins: expected a list of module paths"));
  EXPECT_THAT(msg(c), HasSubstr("w.yaml:2:13: transports: expected a mapping of transport name to settings"));
}

TEST(ConfigParse, TransportMissingType) {
  auto c = Config::parse("transports:\n  bus:\n    history: 10\n", "tr.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(msg(c), "tr.yaml:3:5: transport 'bus': missing required key 'type'");

  auto empty = Config::parse("transports:\n  bus:\n", "tr.yaml");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(msg(empty), HasSubstr("tr.yaml:2:3: transport 'bus': missing required key 'type'"));

  auto scalar = Config::parse("transports:\n  bus: inproc\n", "tr.yaml");
  ASSERT_FALSE(scalar.ok());
  EXPECT_THAT(msg(scalar), HasSubstr("tr.yaml:2:8: transport 'bus': expected a mapping with at least 'type'"));
}

TEST(ConfigParse, BindingNamesUndefinedTransport) {
  auto c = Config::parse(
      "transports:\n  bus: { type: inproc }\n  cache: { type: redis }\nbindings:\n  ticks: { transport: buss }\n",
      "bt.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(msg(c),
            "bt.yaml:5:23: binding 'ticks': transport 'buss' is not defined under transports (did you mean "
            "'bus'?); defined: bus, cache");
}

TEST(ConfigParse, BindingTransportWhenNoneAreDefined) {
  auto c = Config::parse("bindings:\n  ticks:\n    transport: bus\n", "bt.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(msg(c), HasSubstr("bt.yaml:3:16: binding 'ticks': transport 'bus' is not defined under transports; "
                                "no transports are defined"));
}

TEST(ConfigParse, DefaultTransportMustBeDefined) {
  auto c = Config::parse("default_transport: redis\ntransports:\n  bus: { type: inproc }\n", "dt.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(msg(c), "dt.yaml:1:20: default_transport: 'redis' is not defined under transports; defined: bus");
}

TEST(ConfigParse, UnknownBindingKeyWithDidYouMean) {
  auto c = Config::parse("bindings:\n  ticks:\n    requires: [ordered]\n", "bk.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(msg(c),
            "bk.yaml:3:5: binding 'ticks': unknown key 'requires' (did you mean 'require'?); known keys here: "
            "middleware, name, require, transport");
}

TEST(ConfigParse, UnknownFeatureListsValidNames) {
  auto c = Config::parse("bindings:\n  ticks:\n    require: [ordered, replya]\n", "f.yaml");
  ASSERT_FALSE(c.ok());
  std::string names;
  for (auto n : Features::names()) {
    if (!names.empty()) names += ", ";
    names += std::string(n);
  }
  EXPECT_EQ(msg(c), "f.yaml:3:24: binding 'ticks': unknown feature 'replya' (did you mean 'replay'?) in require; "
                    "valid names: " +
                        names);
}

TEST(ConfigParse, RequireMustBeAList) {
  auto c = Config::parse("bindings:\n  ticks:\n    require: { ordered: true }\n", "f.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(msg(c), HasSubstr("f.yaml:3:14: binding 'ticks': require: expected a list of strings, got a mapping"));
}

TEST(ConfigParse, MiddlewareNeedsType) {
  auto c = Config::parse("bindings:\n  ticks:\n    middleware:\n      - set: { a: b }\n", "m.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(msg(c), "m.yaml:4:9: middleware #1 of binding 'ticks': missing required key 'type'");

  auto notlist = Config::parse("bindings:\n  ticks:\n    middleware: headers\n", "m.yaml");
  ASSERT_FALSE(notlist.ok());
  EXPECT_THAT(msg(notlist), HasSubstr("m.yaml:3:17: binding 'ticks': middleware: expected a list of mappings"));
}

TEST(ConfigParse, DuplicateKeyIsAnError) {
  auto c = Config::parse("threads: 2\nthreads: 3\n", "dup.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(msg(c), HasSubstr("dup.yaml:2:1: duplicate key 'threads' (first written at line 1)"));
}

TEST(ConfigParse, MultipleErrorsReportedTogetherInFileOrder) {
  const char* text = R"(threads: many
transports:
  bus:
    history: 10
bindings:
  ticks:
    transport: nowhere
    require: [teleport]
    colour: blue
histroy: 3
)";
  auto c = Config::parse(text, "multi.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  std::string names;
  for (auto n : Features::names()) {
    if (!names.empty()) names += ", ";
    names += std::string(n);
  }
  EXPECT_EQ(msg(c),
            "multi.yaml:1:10: threads: expected an integer between 1 and 256, got 'many'\n"
            "multi.yaml:4:5: transport 'bus': missing required key 'type'\n"
            "multi.yaml:7:16: binding 'ticks': transport 'nowhere' is not defined under transports; defined: bus\n"
            "multi.yaml:8:15: binding 'ticks': unknown feature 'teleport' in require; valid names: " +
                names +
                "\n"
                "multi.yaml:9:5: binding 'ticks': unknown key 'colour'; known keys here: middleware, name, require, "
                "transport\n"
                "multi.yaml:10:1: top level: unknown key 'histroy'; known keys here: bindings, default_transport, "
                "drain_timeout, plugins, threads, transports");
}

// ---------------------------------------------------------------------------------------------
// Config::load_file

class ConfigLoadFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("patchbay_config_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigLoadFile, ResolvesPluginsAgainstTheFilesFolder) {
  const std::string path = write("app.yaml", "plugins: [ ./mods/libpatchbay_x.so ]\nthreads: 3\n");
  auto c = Config::load_file(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->file, path);
  EXPECT_EQ(c->threads, 3);
  ASSERT_EQ(c->plugins.size(), 1u);
  EXPECT_EQ(c->plugins[0].resolved_path, (dir_ / "mods" / "libpatchbay_x.so").string());
  EXPECT_EQ(c->plugins[0].mark.str(), path + ":1:12");
}

TEST_F(ConfigLoadFile, ErrorsNameTheFile) {
  const std::string path = write("bad.yaml", "\nthreads: lots\n");
  auto c = Config::load_file(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(msg(c), path + ":2:10: threads: expected an integer between 1 and 256, got 'lots'");
}

TEST_F(ConfigLoadFile, MissingFileNamesThePath) {
  const std::string path = (dir_ / "nope.yaml").string();
  auto c = Config::load_file(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(msg(c), HasSubstr("config file '" + path + "' does not exist"));
}

TEST_F(ConfigLoadFile, DirectoryIsRefused) {
  auto c = Config::load_file(dir_.string());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(msg(c), HasSubstr("is a directory"));
}

TEST_F(ConfigLoadFile, EmptyFileIsValid) {
  const std::string path = write("empty.yaml", "# nothing yet\n");
  auto c = Config::load_file(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->transports.empty());
}

// ---------------------------------------------------------------------------------------------
// Node: what transport and middleware factories use

Node settings_of(const std::string& text, const std::string& name = "bus") {
  auto c = Config::parse(text, "n.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  for (const auto& t : c->transports)
    if (t.name == name) return t.settings;
  ADD_FAILURE() << "no transport " << name;
  return Node();
}

TEST(ConfigNode, UnknownKeysReportedAfterConsumerReads) {
  Node s = settings_of("transports:\n  bus:\n    type: inproc\n    histroy: 10\n    buffer: 4\n");
  // The factory asks for what it knows ...
  EXPECT_EQ(*s.get_int("history", 1024, 1), 1024);  // misspelt in the file, so the default
  EXPECT_EQ(*s.get_int("buffer", 1024, 1), 4);
  EXPECT_EQ(*s.get_choice("slow_subscriber", "block", {"block", "drop_oldest"}), "block");
  // ... and the rest is reported with the keys it asked for.
  absl::Status st = s.check_unknown_keys();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(msg(st),
            "n.yaml:4:5: transport 'bus': unknown key 'histroy' (did you mean 'history'?); known keys here: "
            "buffer, history, slow_subscriber, type");
}

TEST(ConfigNode, CopiesShareTheRecordOfKeysRead) {
  Node s = settings_of("transports:\n  bus: { type: inproc, history: 5 }\n");
  Node copy = s;
  EXPECT_FALSE(s.check_unknown_keys().ok());
  EXPECT_TRUE(copy.has("history"));
  EXPECT_FALSE(copy.has("buffer"));
  EXPECT_TRUE(s.check_unknown_keys().ok());
}

TEST(ConfigNode, AcceptMarksKeysKnown) {
  Node s = settings_of("transports:\n  bus: { type: inproc, extra: 1 }\n");
  EXPECT_FALSE(s.check_unknown_keys().ok());
  s.accept({"extra"});
  EXPECT_TRUE(s.check_unknown_keys().ok());
}

TEST(ConfigNode, SeveralUnknownKeysOnePerLine) {
  Node s = settings_of("transports:\n  bus:\n    type: inproc\n    a: 1\n    b: 2\n");
  EXPECT_EQ(msg(s.check_unknown_keys()),
            "n.yaml:4:5: transport 'bus': unknown key 'a'; known keys here: type\n"
            "n.yaml:5:5: transport 'bus': unknown key 'b'; known keys here: type");
}

TEST(ConfigNode, TypedGettersReportTheValuesPlace) {
  Node s = settings_of(R"(transports:
  bus:
    type: inproc
    history: lots
    buffer: 0
    ratio: fast
    enabled: maybe
    mode: sometimes
    tags: one
    timeout: later
    name: [a, b]
)");
  EXPECT_EQ(msg(s.get_int("history", 1)), "n.yaml:4:14: transport 'bus': history: expected an integer, got 'lots'");
  EXPECT_EQ(msg(s.get_int("buffer", 1, 1)),
            "n.yaml:5:13: transport 'bus': buffer: expected an integer of at least 1, got 0");
  EXPECT_EQ(msg(s.get_int("buffer", 1, 2, 9)),
            "n.yaml:5:13: transport 'bus': buffer: expected an integer between 2 and 9, got 0");
  EXPECT_EQ(msg(s.get_double("ratio", 1.0)), "n.yaml:6:12: transport 'bus': ratio: expected a number, got 'fast'");
  EXPECT_EQ(msg(s.get_bool("enabled", false)),
            "n.yaml:7:14: transport 'bus': enabled: expected true or false (or yes / no), got 'maybe'");
  EXPECT_EQ(msg(s.get_choice("mode", "block", {"block", "drop_oldest"})),
            "n.yaml:8:11: transport 'bus': mode: expected one of block, drop_oldest, got 'sometimes'");
  EXPECT_EQ(msg(s.get_string_list("tags", {})),
            "n.yaml:9:11: transport 'bus': tags: expected a list of strings, got 'one'");
  EXPECT_THAT(msg(s.get_duration("timeout", std::chrono::seconds(1))),
              HasSubstr("n.yaml:10:14: transport 'bus': timeout: expected a duration"));
  EXPECT_EQ(msg(s.get_string("name", "")), "n.yaml:11:11: transport 'bus': name: expected a string, got a list");
}

TEST(ConfigNode, TypedGettersReadValues) {
  Node s = settings_of(R"(transports:
  bus:
    type: inproc
    a: yes
    b: False
    c: -42
    d: 2.5
    e: [x, "y z"]
    f: 90s
    g: drop_oldest
    h: 'text'
    i:
)");
  EXPECT_TRUE(*s.get_bool("a", false));
  EXPECT_FALSE(*s.get_bool("b", true));
  EXPECT_EQ(*s.get_int("c", 0), -42);
  EXPECT_DOUBLE_EQ(*s.get_double("d", 0), 2.5);
  EXPECT_EQ(*s.get_string_list("e", {}), (std::vector<std::string>{"x", "y z"}));
  EXPECT_EQ(*s.get_duration("f", std::chrono::milliseconds(0)), std::chrono::seconds(90));
  EXPECT_EQ(*s.get_choice("g", "block", {"block", "drop_oldest"}), "drop_oldest");
  EXPECT_EQ(*s.get_string("h", ""), "text");
  // Absent or empty values give the fallback.
  EXPECT_EQ(*s.get_int("i", 7), 7);
  EXPECT_EQ(*s.get_int("missing", 9), 9);
  EXPECT_EQ(*s.get_string("missing", "dflt"), "dflt");
  EXPECT_TRUE(s.has("a"));
  EXPECT_FALSE(s.has("missing"));
  EXPECT_EQ(*s.require_string("type"), "inproc");
  EXPECT_EQ(msg(s.require_string("url")), "n.yaml:3:5: transport 'bus': missing required key 'url'");
  EXPECT_EQ(s.mark_of("c").str(), "n.yaml:6:5");
  EXPECT_EQ(s.mark_of("absent").str(), s.mark().str());
}

TEST(ConfigNode, NestedMapsAreCheckedWithTheirParent) {
  Node s = settings_of("transports:\n  bus:\n    type: inproc\n    tls: { cert: a.pem, kee: b.pem }\n");
  auto tls = s.get_map("tls");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_EQ(tls->context(), "'tls' of transport 'bus'");
  EXPECT_EQ(*tls->get_string("cert", ""), "a.pem");
  EXPECT_EQ(*tls->get_string("key", ""), "");
  EXPECT_EQ(msg(s.check_unknown_keys()),
            "n.yaml:4:25: 'tls' of transport 'bus': unknown key 'kee' (did you mean 'key'?); known keys here: cert, "
            "key");
  auto absent = s.get_map("nothing");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has("x"));
  EXPECT_THAT(msg(s.get_map("type")), HasSubstr("n.yaml:3:11: transport 'bus': type: expected a mapping"));
}

TEST(ConfigNode, DefaultNodeIsEmpty) {
  Node n;
  EXPECT_FALSE(n.has("x"));
  EXPECT_EQ(*n.get_int("x", 3), 3);
  EXPECT_TRUE(n.check_unknown_keys().ok());
  EXPECT_EQ(n.mark().line, 0);
}

TEST(ConfigNode, ChoiceSuggestsNearMatch) {
  Node s = settings_of("transports:\n  bus: { type: inproc, slow_subscriber: drop-oldest }\n");
  EXPECT_EQ(msg(s.get_choice("slow_subscriber", "block", {"block", "drop_oldest"})),
            "n.yaml:2:41: transport 'bus': slow_subscriber: expected one of block, drop_oldest, got 'drop-oldest' "
            "(did you mean 'drop_oldest'?)");
}

}  // namespace
}  // namespace patchbay::config
