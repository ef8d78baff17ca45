#include <patchbay/channel.hpp>
