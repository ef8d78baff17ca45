#include <patchbay/position.hpp>
