// A module built for another ABI: the loader must refuse it before running any of its code.
#include <patchbay/plugin.hpp>

#include <cstdlib>

namespace {
absl::Status register_nothing(patchbay::Registry&) {
  std::abort();  // never reached: the ABI check refuses the module first
}
}  // namespace

PATCHBAY_PLUGIN(register_nothing)
