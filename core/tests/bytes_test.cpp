#include <patchbay/bytes.hpp>
