#include <patchbay/config.hpp>
