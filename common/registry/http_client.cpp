#include "common/registry/http_client.h"

// clang-format off
#include "common/registry/asio.h"  // first: see asio.h
// clang-format on

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>

namespace lf::registry {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr uint64_t kPlainReadChunk = 1 << 20;

// One pooled connection with its own io_context: it is used by one thread at a time, and
// Beast's timeouts only apply to asynchronous operations, which we run to completion here.
struct Connection {
  asio::io_context ioc;
  std::string origin;
  std::unique_ptr<beast::tcp_stream> tcp;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  bool reused = false;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *tcp; }
};

// Runs one asynchronous operation to completion and returns its error code.
template <typename Start>
error_code runOp(Connection& c, int timeout_ms, Start start) {
  error_code result = asio::error::would_block;
  c.lowest().expires_after(std::chrono::milliseconds(timeout_ms));
  start([&result](error_code ec, auto&&...) { result = ec; });
  c.ioc.restart();
  c.ioc.run();
  return result;
}

std::string sslReason(const error_code& ec) {
  if (ec.category() == asio::error::get_ssl_category()) {
    std::string reason =
        ERR_reason_error_string(ec.value()) ? ERR_reason_error_string(ec.value()) : ec.message();
    return fmt::format("TLS: {}", reason);
  }
  return ec.message();
}

Status transportError(const error_code& ec, std::string_view what, const Url& url) {
  std::string msg = fmt::format("{} {}: {}", what, url.origin(), sslReason(ec));
  if (ec == beast::error::timeout) {
    return deadlineExceeded(fmt::format("{} {}: timed out", what, url.origin()));
  }
  return unavailable(std::move(msg));
}

bool isIpLiteral(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

struct HttpClient::Impl {
  HttpClientOptions options;
  ssl::context ssl_ctx{ssl::context::tls_client};
  mutable std::mutex mu;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle;

  Result<std::unique_ptr<Connection>> acquire(const Url& url);
  Result<std::unique_ptr<Connection>> connect(const Url& url);
  void release(std::unique_ptr<Connection> c);
  Result<HttpResponse> exchange(Connection& c, const HttpRequest& req, const StreamHandler* stream,
                                bool& keep_alive, bool& sent_anything);
  Status readBody(Connection& c, http::response_parser<http::buffer_body>& parser, const Url& url,
                  const std::function<Status(std::string_view)>& sink);
  Status readPlainBody(Connection& c, uint64_t length, const Url& url,
                       const std::function<Status(std::string_view)>& sink);
};

Result<std::unique_ptr<Connection>> HttpClient::Impl::acquire(const Url& url) {
  {
    std::lock_guard lock(mu);
    auto it = idle.find(url.origin());
    if (it != idle.end() && !it->second.empty()) {
      auto c = std::move(it->second.back());
      it->second.pop_back();
      c->reused = true;
      return c;
    }
  }
  return connect(url);
}

Result<std::unique_ptr<Connection>> HttpClient::Impl::connect(const Url& url) {
  auto c = std::make_unique<Connection>();
  c->origin = url.origin();
  tcp::resolver resolver(c->ioc);
  asio::steady_timer timer(c->ioc);
  error_code resolve_ec = asio::error::would_block;
  tcp::resolver::results_type endpoints;
  timer.expires_after(std::chrono::milliseconds(options.connect_timeout_ms));
  timer.async_wait([&](error_code ec) {
    if (!ec) resolver.cancel();
  });
  resolver.async_resolve(url.host, std::to_string(url.port),
                         [&](error_code ec, tcp::resolver::results_type r) {
                           resolve_ec = ec;
                           endpoints = std::move(r);
                           timer.cancel();
                         });
  c->ioc.run();
  if (resolve_ec) {
    return unavailable(fmt::format(
        "resolve {}: {}", url.host,
        resolve_ec == asio::error::operation_aborted ? "timed out" : resolve_ec.message()));
  }
  if (url.scheme == "https") {
    c->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(c->ioc, ssl_ctx);
  } else {
    c->tcp = std::make_unique<beast::tcp_stream>(c->ioc);
  }
  error_code ec = runOp(*c, options.connect_timeout_ms,
                        [&](auto handler) { c->lowest().async_connect(endpoints, handler); });
  if (ec) {
    return transportError(ec, "connect", url);
  }
  if (c->tls) {
    if (!isIpLiteral(url.host) &&
        !SSL_set_tlsext_host_name(c->tls->native_handle(), url.host.c_str())) {
      return unavailable(fmt::format("TLS {}: cannot set SNI", url.origin()));
    }
    c->tls->set_verify_mode(ssl::verify_peer);
    c->tls->set_verify_callback(ssl::host_name_verification(url.host));
    ec = runOp(*c, options.connect_timeout_ms,
               [&](auto handler) { c->tls->async_handshake(ssl::stream_base::client, handler); });
    if (ec) {
      return transportError(ec, "TLS handshake with", url);
    }
  }
  return c;
}

void HttpClient::Impl::release(std::unique_ptr<Connection> c) {
  c->buffer.clear();
  std::lock_guard lock(mu);
  auto& list = idle[c->origin];
  if (list.size() < options.max_idle_per_origin) {
    list.push_back(std::move(c));
  }
}

Status HttpClient::Impl::readBody(Connection& c, http::response_parser<http::buffer_body>& parser,
                                  const Url& url,
                                  const std::function<Status(std::string_view)>& sink) {
  std::vector<char> buf(kReadChunk);
  while (!parser.is_done()) {
    parser.get().body().data = buf.data();
    parser.get().body().size = buf.size();
    error_code ec = runOp(c, options.io_timeout_ms, [&](auto handler) {
      if (c.tls) {
        http::async_read(*c.tls, c.buffer, parser, handler);
      } else {
        http::async_read(*c.tcp, c.buffer, parser, handler);
      }
    });
    if (ec == http::error::need_buffer) {
      ec = {};
    }
    if (ec) {
      if (ec == http::error::partial_message || ec == asio::error::eof ||
          ec == ssl::error::stream_truncated) {
        return unavailable(
            fmt::format("read {}: body truncated (connection closed early)", url.toString()));
      }
      return transportError(ec, "read body from", url);
    }
    size_t n = buf.size() - parser.get().body().size;
    if (n > 0) {
      LF_RETURN_IF_ERROR(sink(std::string_view(buf.data(), n)));
    }
  }
  return Status::ok();
}

// Plain HTTP with a Content-Length (registries serve blobs so): the body is read straight from
// the socket into a 1 MiB buffer, with poll() for the deadline. Beast's parser reads at most
// 64 KiB per operation and arms a timer for each; on loopback, where each read returns a few
// KiB, that made blob downloads four times slower than skopeo's. TLS and chunked bodies keep
// the parser.
Status HttpClient::Impl::readPlainBody(Connection& c, uint64_t length, const Url& url,
                                       const std::function<Status(std::string_view)>& sink) {
  auto buffered = c.buffer.data();
  size_t have = static_cast<size_t>(std::min<uint64_t>(buffered.size(), length));
  if (have > 0) {
    LF_RETURN_IF_ERROR(sink(std::string_view(static_cast<const char*>(buffered.data()), have)));
    c.buffer.consume(have);
  }
  uint64_t remaining = length - have;
  int fd = c.tcp->socket().native_handle();
  std::vector<char> buf(std::min<uint64_t>(remaining, kPlainReadChunk));
  while (remaining > 0) {
    ssize_t n = ::recv(fd, buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), remaining)), 0);
    if (n > 0) {
      LF_RETURN_IF_ERROR(sink(std::string_view(buf.data(), static_cast<size_t>(n))));
      remaining -= static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) {
      return unavailable(
          fmt::format("read {}: body truncated (connection closed early)", url.toString()));
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return unavailable(fmt::format("read body from {}: {}", url.origin(), std::strerror(errno)));
    }
    pollfd pfd{fd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, options.io_timeout_ms);
    if (ready == 0) {
      return deadlineExceeded(fmt::format("read body from {}: timed out", url.origin()));
    }
    if (ready < 0 && errno != EINTR) {
      return unavailable(fmt::format("read body from {}: poll: {}", url.origin(),
                                     std::strerror(errno)));
    }
  }
  return Status::ok();
}

Result<HttpResponse> HttpClient::Impl::exchange(Connection& c, const HttpRequest& req,
                                                const StreamHandler* stream, bool& keep_alive,
                                                bool& sent_anything) {
  http::request<http::string_body> msg;
  msg.method_string(req.method);
  msg.target(req.url.target);
  msg.version(11);
  msg.set(http::field::host, req.url.hostHeader());
  msg.set(http::field::user_agent, options.user_agent);
  for (const auto& [name, value] : req.headers.entries()) {
    msg.insert(name, value);
  }
  msg.body() = req.body;
  if (req.method == "GET" || req.method == "HEAD") {
    if (!req.body.empty()) msg.prepare_payload();
  } else {
    msg.content_length(req.body.size());
  }
  msg.keep_alive(true);
  error_code ec = runOp(c, options.io_timeout_ms, [&](auto handler) {
    if (c.tls) {
      http::async_write(*c.tls, msg, handler);
    } else {
      http::async_write(*c.tcp, msg, handler);
    }
  });
  if (ec) {
    return transportError(ec, "send request to", req.url);
  }
  http::response_parser<http::buffer_body> parser;
  // Limits are enforced below, per use. Not boost::none: Boost 1.74 compares the Content-Length
  // against the optional with `len > none`, which is always true.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  if (req.method == "HEAD") {
    parser.skip(true);
  }
  ec = runOp(c, options.io_timeout_ms, [&](auto handler) {
    if (c.tls) {
      http::async_read_header(*c.tls, c.buffer, parser, handler);
    } else {
      http::async_read_header(*c.tcp, c.buffer, parser, handler);
    }
  });
  if (ec) {
    return transportError(ec, "read response header from", req.url);
  }
  sent_anything = true;
  HttpResponse res;
  res.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    res.headers.add(std::string(field.name_string()), std::string(field.value()));
  }
  bool streaming = stream != nullptr && res.status >= 200 && res.status < 300;
  if (streaming && stream->on_headers) {
    LF_RETURN_IF_ERROR(stream->on_headers(res));
  }
  uint64_t limit =
      req.max_response_bytes != 0 ? req.max_response_bytes : options.max_buffered_body_bytes;
  auto sink = [&](std::string_view chunk) -> Status {
    if (streaming) {
      return stream->on_data(chunk);
    }
    if (res.body.size() + chunk.size() > limit) {
      return resourceExhausted(fmt::format("{} {}: response body exceeds {} bytes", req.method,
                                           req.url.toString(), limit));
    }
    res.body.append(chunk);
    return Status::ok();
  };
  auto content_length = parser.content_length();
  if (!c.tls && req.method != "HEAD" && !parser.is_done() && !parser.chunked() &&
      content_length) {
    LF_RETURN_IF_ERROR(readPlainBody(c, *content_length, req.url, sink));
  } else {
    LF_RETURN_IF_ERROR(readBody(c, parser, req.url, sink));
  }
  keep_alive = parser.get().keep_alive();
  return res;
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

Result<std::unique_ptr<HttpClient>> HttpClient::create(HttpClientOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  error_code ec;
  if (impl->options.ca_bundle_path.empty()) {
    impl->ssl_ctx.set_default_verify_paths(ec);
  } else {
    impl->ssl_ctx.load_verify_file(impl->options.ca_bundle_path, ec);
  }
  if (ec) {
    return invalidArgument(fmt::format("load CA certificates {}: {}",
                                       impl->options.ca_bundle_path.empty()
                                           ? std::string("(system)")
                                           : impl->options.ca_bundle_path,
                                       sslReason(ec)));
  }
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

Result<HttpResponse> HttpClient::send(const HttpRequest& request, const StreamHandler* stream) {
  for (int attempt = 0;; ++attempt) {
    LF_ASSIGN_OR_RETURN(auto conn, impl_->acquire(request.url));
    bool keep_alive = false;
    bool sent_anything = false;
    auto res = impl_->exchange(*conn, request, stream, keep_alive, sent_anything);
    if (!res.isOk()) {
      // A pooled connection the server closed while idle fails before any response byte:
      // that is not the request's fault, so try once more on a fresh connection.
      if (conn->reused && !sent_anything && attempt == 0 &&
          res.status().code() == StatusCode::kUnavailable) {
        continue;
      }
      return res.status();
    }
    if (keep_alive) {
      impl_->release(std::move(conn));
    }
    return res;
  }
}

size_t HttpClient::idleConnections() const {
  std::lock_guard lock(impl_->mu);
  size_t n = 0;
  for (const auto& [origin, list] : impl_->idle) n += list.size();
  return n;
}

}  // namespace lf::registry
