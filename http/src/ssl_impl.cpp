// The one translation unit that compiles Asio's SSL support (separate compilation, like
// core/src/asio_impl.cpp for the rest of Asio and Beast). It lives in libpatchbay_http so that
// the core does not depend on OpenSSL.
#include <boost/asio/ssl/impl/src.hpp>
