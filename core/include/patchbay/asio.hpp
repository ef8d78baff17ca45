// patchbay/asio.hpp — the Asio vocabulary every patchbay header uses.
//
// patchbay is written against Boost.Asio with C++20 coroutines. Asio is compiled once, into
// the patchbay core shared library (BOOST_ASIO_SEPARATE_COMPILATION + BOOST_ASIO_DYN_LINK), so
// that the host and every loaded plugin module share one copy of its thread-local state.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

namespace patchbay {

namespace asio = boost::asio;

/// The executor type used throughout the public API.
using executor = asio::any_io_executor;

/// Every asynchronous patchbay operation is an awaitable on the default executor type.
template <typename T = void>
using awaitable = asio::awaitable<T, executor>;

using clock = std::chrono::steady_clock;
using duration = clock::duration;
using deadline = clock::time_point;

}  // namespace patchbay
