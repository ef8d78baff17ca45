#include <patchbay/delivery.hpp>
