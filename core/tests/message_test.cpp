#include <patchbay/message.hpp>
