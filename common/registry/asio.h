#pragma once

// The one place layerfarm includes Boost.Asio/Beast for the registry client. Boost 1.74's
// asio/awaitable.hpp uses std::exchange without including <utility>, so it comes first.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <utility>
