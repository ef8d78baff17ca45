// The one translation unit that compiles Asio and Beast (separate compilation). Everything
// else in patchbay, and every plugin module, uses this copy through libpatchbay.so.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
