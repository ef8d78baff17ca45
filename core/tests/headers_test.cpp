#include <patchbay/headers.hpp>
