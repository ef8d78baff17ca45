#include <patchbay/features.hpp>
