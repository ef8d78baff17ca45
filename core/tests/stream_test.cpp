#include <patchbay/stream.hpp>
