// Dynamic loading, proven: the in-process transport loaded as a module through config
// `plugins:` runs the whole conformance suite on the host's io_context; modules that must not
// load are refused with a clear error, never a crash.
#include <patchbay/conformance/suite.hpp>

#include <patchbay/plugin.hpp>
#include <patchbay/runtime.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace {

std::string module_config(const std::string& plugin) {
  return "plugins: [ " + plugin + " ]\n"
         "transports:\n"
         "  bus: { type: inproc, history: 256 }\n"
         "default_transport: bus\n"
         "bindings:\n"
         "  conformance: { transport: bus }\n";
}

absl::Status create_status(const std::string& config) {
  patchbay::RuntimeOptions options;
  options.config_text = config;
  options.handle_signals = false;
  return patchbay::Runtime::create(std::move(options)).status();
}

TEST(PluginLoading, TheModuleReplacesTheBuiltin) {
  patchbay::RuntimeOptions options;
  options.config_text = module_config(PATCHBAY_INPROC_MODULE);
  options.handle_signals = false;
  auto rt = patchbay::Runtime::create(std::move(options));
  ASSERT_TRUE(rt.ok()) << rt.status();
  auto bindings = (*rt)->bindings();
  ASSERT_EQ(bindings.size(), 1u);
  EXPECT_EQ(bindings[0].transport_type, "inproc");
  EXPECT_NE(bindings[0].origin.find("libpatchbay_inproc.so"), std::string::npos) << bindings[0].origin;
}

TEST(PluginLoading, MissingFileIsAClearError) {
  auto s = create_status(module_config("/nonexistent/libpatchbay_nothing.so"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("<string>:1:"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("does not exist"), absl::string_view::npos) << s;
}

TEST(PluginLoading, CorruptFileIsAClearError) {
  const std::string path = std::string(PATCHBAY_TEST_TMPDIR) + "/corrupt_module.so";
  {
    std::ofstream out(path, std::ios::binary);
    out << "this is not an ELF file, whatever its name says";
  }
  auto s = create_status(module_config(path));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no ELF header"), absl::string_view::npos) << s;

  // A truncated real module: the ELF header is there, the rest is not.
  const std::string truncated = std::string(PATCHBAY_TEST_TMPDIR) + "/truncated_module.so";
  {
    std::ifstream in(PATCHBAY_INPROC_MODULE, std::ios::binary);
    std::string head(512, '\0');
    in.read(head.data(), head.size());
    std::ofstream out(truncated, std::ios::binary);
    out.write(head.data(), in.gcount());
  }
  s = create_status(module_config(truncated));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("could not be loaded"), absl::string_view::npos) << s;
}

TEST(PluginLoading, WrongAbiIsRefusedBeforeItsCodeRuns) {
  auto s = create_status(module_config(PATCHBAY_WRONG_ABI_MODULE));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("patchbay-abi-0"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find(patchbay::abi_version()), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("rebuild the plugin"), absl::string_view::npos) << s;
}

TEST(PluginLoading, ALibraryThatIsNotAPluginIsRefused) {
  auto s = create_status(module_config(PATCHBAY_CORE_LIBRARY));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a patchbay plugin"), absl::string_view::npos) << s;
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  patchbay::conformance::register_suite({
      .name = "inproc_module",
      .make = [] { return patchbay::conformance::from_config(module_config(PATCHBAY_INPROC_MODULE)); },
      .history_limit = 256,
  });
  return RUN_ALL_TESTS();
}
