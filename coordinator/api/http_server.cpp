// The Beast half of the HTTP API: sockets, threads, HTTP framing and the three streaming routes
// (context upload, event stream, export). Everything that answers with one body is in
// api_routes.cpp; this is the only file of coordinator/api that includes Beast.

#include "coordinator/api/http_server.h"

// clang-format off
#include <utility>  // first: Boost 1.74's Asio uses std::exchange without including it
// clang-format on
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <exception>
#include <functional>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include "common/context/context_manifest.h"
#include "coordinator/api/api_routes.h"
#include "coordinator/api/context_files_tar.h"
#include "coordinator/api/json_codec.h"
#include "coordinator/builds/build_service.h"
#include "coordinator/metrics/coordinator_metrics.h"

namespace lf::coordinator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr size_t kBodyChunk = 64 * 1024;

using Parser = http::request_parser<http::buffer_body>;

// A live connection as stop() sees it: the socket to shut down so the thread serving it wakes.
struct Conn {
  std::mutex mu;
  int fd = -1;  // -1 once the serving thread closed the socket
  std::thread thread;
  std::atomic<bool> done{false};
};

// What every connection shares: read-only options, the service and the stop flag.
struct Core {
  Core(HttpServerOptions o, BuildService& s, CoordinatorMetrics& m)
      : options(std::move(o)), service(s), metrics(m), handlers(s, m) {}

  const HttpServerOptions options;
  BuildService& service;
  CoordinatorMetrics& metrics;
  api::ApiHandlers handlers;
  std::atomic<bool> stopping{false};
};

}  // namespace

struct HttpServer::Impl : Core {
  using Core::Core;

  void doAccept();
  void onAccept(error_code ec, tcp::socket socket);
  void serve(std::shared_ptr<Conn> conn, int fd);
  void reapLocked();

  asio::io_context accept_ioc;
  std::optional<tcp::acceptor> acceptor;
  tcp protocol = tcp::v4();
  std::thread accept_thread;
  uint16_t port = 0;
  bool started = false;
  bool stopped = false;

  std::mutex conns_mu;
  std::list<std::shared_ptr<Conn>> conns;
};

namespace {

// One connection, served by one thread. Every socket operation is asynchronous on the session's
// own io_context and run to completion at once: Beast's timeouts only apply to asynchronous
// operations, and this gives each read and write its own deadline.
class Session {
 public:
  Session(Core& server, asio::io_context& ioc, tcp::socket socket)
      : server_(server), ioc_(ioc), stream_(std::move(socket)), chunk_(kBodyChunk) {}

  // Serves requests until the client closes, a request asks to close, an error, or stop().
  void run();
  void close();

 private:
  template <typename Start>
  error_code runOp(Start start) {
    error_code result = asio::error::would_block;
    stream_.expires_after(std::chrono::milliseconds(server_.options.idle_timeout_ms));
    start([&result](error_code ec, auto&&...) { result = ec; });
    ioc().restart();
    ioc().run();
    return result;
  }
  asio::io_context& ioc() { return ioc_; }

  bool serveOne();
  bool dispatch(Parser& parser);
  template <typename Body>
  bool writeMessage(http::response<Body>& res);
  bool respond(Parser& parser, const api::ApiResponse& res, bool must_close = false,
               const http::fields* extra = nullptr);
  bool respondError(Parser& parser, const Status& s, bool must_close = false);
  // Reads the request body in pieces, handing each to `sink`; a sink error stops reading and is
  // returned. A failed connection sets *connection_lost (nothing can be answered then).
  Status readBody(Parser& parser, const std::function<Status(const char*, size_t)>& sink,
                  bool* connection_lost);
  bool readSmallBody(Parser& parser, std::string* body);
  bool upload(Parser& parser, const std::string& param);
  // Reads up to `size` body bytes into `buf` (0 once the body is complete): the pull side that
  // libarchive's streaming reader needs. A failed connection sets *connection_lost.
  Result<size_t> readBodySome(Parser& parser, void* buf, size_t size, bool* connection_lost);
  // Answers 411 (no Content-Length) or 413 (over `limit`) and returns false; true when the body
  // may be read. `what` names the body in the message.
  bool checkLength(Parser& parser, uint64_t limit, std::string_view what, std::string_view option);
  bool sendContinue(Parser& parser);
  bool postManifest(Parser& parser, api::ApiRequest& request);
  bool uploadFiles(Parser& parser, const std::string& param);
  bool streamEvents(Parser& parser, const std::string& id, const api::Target& target);
  bool sendExport(Parser& parser, const std::string& id);
  bool peerClosed();
  bool writeBytes(const std::string& bytes, bool chunked);

  Core& server_;
  asio::io_context& ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::vector<char> chunk_;
  bool head_ = false;
  unsigned version_ = 11;
};

void Session::run() {
  error_code ec;
  stream_.socket().set_option(tcp::no_delay(true), ec);
  while (!server_.stopping.load() && serveOne()) {
  }
}

void Session::close() {
  error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  // Closing a socket with unread input makes the kernel send a reset, which can destroy the
  // error answer we just wrote (a 413 for an upload the client is still sending). So read and
  // drop what the client still sends, for at most a second and a few MiB, before closing.
  if (!ec && !server_.stopping.load()) {
    stream_.expires_after(std::chrono::seconds(1));
    for (size_t drained = 0; drained < (4u << 20);) {
      error_code rec = asio::error::would_block;
      size_t n = 0;
      stream_.async_read_some(asio::buffer(chunk_), [&](error_code e, size_t got) {
        rec = e;
        n = got;
      });
      ioc().restart();
      ioc().run();
      if (rec) break;
      drained += n;
    }
  }
  stream_.socket().close(ec);
}

template <typename Body>
bool Session::writeMessage(http::response<Body>& res) {
  server_.metrics.httpRequest(res.result_int());
  http::response_serializer<Body> sr(res);
  // One write_some per deadline: a multi-gigabyte export must not be cut by idle_timeout_ms.
  while (!sr.is_done()) {
    error_code ec =
        runOp([&](auto handler) { http::async_write_some(stream_, sr, std::move(handler)); });
    if (ec) return false;
  }
  return res.keep_alive();
}

bool Session::respond(Parser& parser, const api::ApiResponse& r, bool must_close,
                      const http::fields* extra) {
  const bool keep =
      !must_close && parser.is_done() && parser.get().keep_alive() && !server_.stopping.load();
  auto fill = [&](auto& res) {
    res.set(http::field::server, "layerfarm");
    if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
    if (extra) {
      for (const auto& f : *extra) res.set(f.name_string(), f.value());
    }
    res.keep_alive(keep);
  };
  if (head_) {
    http::response<http::empty_body> res{static_cast<http::status>(r.status), version_};
    fill(res);
    res.content_length(r.body.size());
    return writeMessage(res) && keep;
  }
  http::response<http::string_body> res{static_cast<http::status>(r.status), version_, r.body};
  fill(res);
  res.prepare_payload();
  return writeMessage(res) && keep;
}

bool Session::respondError(Parser& parser, const Status& s, bool must_close) {
  return respond(parser, api::errorResponse(s), must_close);
}

bool Session::serveOne() {
  Parser parser;
  parser.header_limit(server_.options.max_header_bytes);
  // Each route applies its own bound. Not boost::none: Boost 1.74 compares the Content-Length
  // with the optional limit, and any number is greater than an empty optional.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  error_code ec = runOp(
      [&](auto handler) { http::async_read_header(stream_, buffer_, parser, std::move(handler)); });
  head_ = false;
  version_ = 11;
  if (ec && (ec == http::error::end_of_stream ||
             ec.category() != http::make_error_code(http::error::bad_target).category())) {
    return false;  // the client went away, timed out or the socket failed: nothing to answer
  }
  if (ec == http::error::header_limit) {
    return respond(parser,
                   api::errorResponse(431, "too_large",
                                      fmt::format("request header block over the limit of {} bytes",
                                                  server_.options.max_header_bytes)),
                   true);
  }
  if (ec) {
    return respond(
        parser,
        api::errorResponse(400, "invalid_argument", "malformed HTTP request: " + ec.message()),
        true);
  }
  version_ = parser.get().version() == 10 ? 10 : 11;
  head_ = parser.get().method() == http::verb::head;
  return dispatch(parser);
}

bool Session::dispatch(Parser& parser) {
  auto& req = parser.get();
  const std::string method(req.method_string());
  auto target = api::parseTarget(std::string_view(req.target().data(), req.target().size()));
  if (!target.isOk()) return respondError(parser, target.status(), true);
  api::RouteMatch match = api::routeOf(target->path);
  if (match.route == api::Route::kNotFound) {
    return respondError(parser, notFound("no API route for " + target->path));
  }
  if (!api::methodAllowed(match.route, method)) {
    http::fields allow;
    std::string list;
    for (std::string_view m : api::allowedMethods(match.route)) {
      list += (list.empty() ? "" : ", ") + std::string(m);
    }
    allow.set(http::field::allow, list);
    return respond(parser,
                   api::errorResponse(405, "method_not_allowed",
                                      fmt::format("{} does not accept {} (allowed: {})",
                                                  target->path, method, list)),
                   false, &allow);
  }
  api::ApiRequest request{method, match.route, match.param, target->query, "", Caller{}};
  if (!api::isPublic(match.route)) {
    auto auth = req[http::field::authorization];
    auto caller =
        api::authenticate(server_.options.clients, std::string_view(auth.data(), auth.size()));
    if (!caller) {
      http::fields challenge;
      challenge.set(http::field::www_authenticate, "Bearer realm=\"layerfarm\"");
      return respond(parser,
                     api::errorResponse(401, "unauthenticated",
                                        "a valid \"Authorization: Bearer <token>\" is required"),
                     false, &challenge);
    }
    request.caller = std::move(*caller);
  }
  if (match.route == api::Route::kContext && method == "PUT") return upload(parser, match.param);
  if (match.route == api::Route::kContextFiles) return uploadFiles(parser, match.param);
  if (match.route == api::Route::kContexts) return postManifest(parser, request);
  if (!readSmallBody(parser, &request.body)) return false;
  if (match.route == api::Route::kBuildEvents || match.route == api::Route::kBuildExport) {
    if (auto refused = server_.handlers.authorizeBuild(request)) return respond(parser, *refused);
  }
  if (match.route == api::Route::kBuildEvents) return streamEvents(parser, match.param, *target);
  if (match.route == api::Route::kBuildExport) return sendExport(parser, match.param);
  return respond(parser, server_.handlers.handle(request));
}

Status Session::readBody(Parser& parser, const std::function<Status(const char*, size_t)>& sink,
                         bool* connection_lost) {
  *connection_lost = false;
  while (!parser.is_done()) {
    parser.get().body().data = chunk_.data();
    parser.get().body().size = chunk_.size();
    error_code ec = runOp(
        [&](auto handler) { http::async_read(stream_, buffer_, parser, std::move(handler)); });
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      *connection_lost = true;
      return unavailable("reading the request body: " + ec.message());
    }
    const size_t n = chunk_.size() - parser.get().body().size;
    if (n > 0) LF_RETURN_IF_ERROR(sink(chunk_.data(), n));
  }
  return Status::ok();
}

// For every route but the upload: the body (usually none) up to max_json_body_bytes.
bool Session::readSmallBody(Parser& parser, std::string* body) {
  const uint64_t limit = server_.options.max_json_body_bytes;
  auto over = [&] {
    respond(parser,
            api::errorResponse(413, "too_large",
                               fmt::format("request body over the limit of {} bytes", limit)),
            true);
    return false;
  };
  if (auto len = parser.content_length(); len && *len > limit) return over();
  bool exceeded = false;
  bool lost = false;
  Status read = readBody(
      parser,
      [&](const char* data, size_t n) {
        if (body->size() + n > limit) {
          exceeded = true;
          return resourceExhausted("body too large");
        }
        body->append(data, n);
        return Status::ok();
      },
      &lost);
  if (exceeded) return over();
  return read.isOk();
}

bool Session::upload(Parser& parser, const std::string& param) {
  auto digest = Digest::parse(param);
  if (!digest.isOk()) return respondError(parser, digest.status().withContext("context digest"));
  if (!checkLength(parser, server_.options.max_context_bytes, "context", "max_context_bytes")) {
    return false;
  }
  auto known = server_.service.hasContext(*digest);
  if (!known.isOk()) return respondError(parser, known.status(), true);
  if (!sendContinue(parser)) return false;
  // A context that is already stored is read and hashed but not written again.
  std::unique_ptr<blob::BlobWriter> writer;
  bool blob_existed = false;
  if (!*known) {
    auto existing = server_.service.blobs().stat(*digest);
    if (!existing.isOk()) return respondError(parser, existing.status(), true);
    blob_existed = existing->has_value();
    auto opened = server_.service.blobs().openWriter();
    if (!opened.isOk()) return respondError(parser, opened.status(), true);
    writer = std::move(*opened);
  }
  Sha256 hash;
  uint64_t size = 0;
  bool lost = false;
  Status read = readBody(
      parser,
      [&](const char* data, size_t n) {
        size += n;
        if (writer) return writer->write(data, n);
        hash.update(data, n);
        return Status::ok();
      },
      &lost);
  if (lost) return false;  // the client is gone; the uncommitted writer discards its bytes
  if (!read.isOk()) return respondError(parser, read, true);
  if (*known) {
    Digest actual = hash.finish();
    if (actual != *digest) {
      return respondError(
          parser, invalidArgument(fmt::format("context body hashes to {}, not {} ({} bytes)",
                                              actual.toString(), digest->toString(), size)));
    }
    return respond(parser, api::ApiResponse{200, "application/json",
                                            fmt::format("{{\"digest\":\"{}\",\"size\":{}}}\n",
                                                        digest->toString(), size)});
  }
  auto committed = writer->commit(*digest);
  if (!committed.isOk()) {
    Status s = committed.status();
    if (s.code() == StatusCode::kDataLoss) s = invalidArgument(s.message());
    return respondError(parser, s.withContext("context upload"));
  }
  // Splits the tar into file blobs and a manifest (kInvalidArgument naming the entry when it is
  // not a valid context).
  Status added = server_.service.addContext(*digest, committed->size);
  if (!added.isOk()) {
    if (added.code() == StatusCode::kInvalidArgument ||
        added.code() == StatusCode::kResourceExhausted) {
      // Not a valid context: drop the tar this upload stored (not a blob that was there before:
      // the same bytes may be something else's), and answer 400 for an ignore file too large.
      if (!blob_existed) server_.service.blobs().remove(*digest).ignore();
      added = invalidArgument(added.message());
    }
    return respondError(parser, added);
  }
  server_.metrics.contextFileBytes(committed->size, 0);
  return respond(parser, api::ApiResponse{201, "application/json",
                                          fmt::format("{{\"digest\":\"{}\",\"size\":{}}}\n",
                                                      digest->toString(), committed->size)});
}

bool Session::checkLength(Parser& parser, uint64_t limit, std::string_view what,
                          std::string_view option) {
  auto length = parser.content_length();
  if (!length || parser.chunked()) {
    respond(parser,
            api::errorResponse(411, "invalid_argument",
                               fmt::format("a {} upload needs a Content-Length header", what)),
            true);
    return false;
  }
  if (*length > limit) {
    respond(parser,
            api::errorResponse(413, "too_large",
                               fmt::format("{} is {} bytes, over the limit of {} bytes ({})", what,
                                           *length, limit, option)),
            true);
    return false;
  }
  return true;
}

bool Session::sendContinue(Parser& parser) {
  if (!beast::iequals(parser.get()[http::field::expect], "100-continue")) return true;
  http::response<http::empty_body> go{http::status::continue_, version_};
  http::response_serializer<http::empty_body> sr(go);
  error_code ec = runOp([&](auto h) { http::async_write_header(stream_, sr, std::move(h)); });
  return !ec;
}

Result<size_t> Session::readBodySome(Parser& parser, void* buf, size_t size,
                                     bool* connection_lost) {
  while (!parser.is_done()) {
    parser.get().body().data = buf;
    parser.get().body().size = size;
    error_code ec = runOp(
        [&](auto handler) { http::async_read(stream_, buffer_, parser, std::move(handler)); });
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      *connection_lost = true;
      return unavailable("reading the request body: " + ec.message());
    }
    const size_t n = size - parser.get().body().size;
    if (n > 0) return n;
  }
  return size_t{0};
}

// POST /v1/contexts: the manifest, checked for type and size before its body is read.
bool Session::postManifest(Parser& parser, api::ApiRequest& request) {
  auto type = parser.get()[http::field::content_type];
  if (!api::isContextManifestContentType(std::string_view(type.data(), type.size()))) {
    return respond(parser,
                   api::errorResponse(
                       415, "unsupported_media_type",
                       fmt::format("a context manifest is sent as Content-Type: {} (got \"{}\")",
                                   api::contextManifestContentType(),
                                   std::string_view(type.data(), type.size()))),
                   true);
  }
  if (!checkLength(parser, context::kMaxManifestBytes, "context manifest",
                   "context::kMaxManifestBytes")) {
    return false;
  }
  if (!sendContinue(parser)) return false;
  bool lost = false;
  Status read = readBody(
      parser,
      [&](const char* data, size_t n) {
        request.body.append(data, n);
        return Status::ok();
      },
      &lost);
  if (!read.isOk()) return false;  // only a lost connection fails here: nothing to answer
  return respond(parser, server_.handlers.handle(request));
}

// PUT /v1/contexts/<id>/files: a tar of the files the manifest's POST said were missing.
bool Session::uploadFiles(Parser& parser, const std::string& param) {
  auto digest = Digest::parse(param);
  if (!digest.isOk()) return respondError(parser, digest.status().withContext("context digest"));
  if (!checkLength(parser, server_.options.max_context_bytes, "context files",
                   "max_context_bytes")) {
    return false;
  }
  auto files = server_.service.contextManifestFiles(*digest);
  if (!files.isOk()) return respondError(parser, files.status(), true);
  if (!sendContinue(parser)) return false;
  bool lost = false;
  auto stats = api::readContextFilesTar(
      [&](void* buf, size_t size) { return readBodySome(parser, buf, size, &lost); }, *files,
      server_.service.blobs());
  if (lost) return false;  // the client is gone; an entry being written was not committed
  if (!stats.isOk()) {
    Status s = stats.status();
    if (s.code() == StatusCode::kResourceExhausted) s = invalidArgument(s.message());
    return respondError(parser, s);
  }
  server_.metrics.contextFileBytes(stats->stored_bytes, 0);
  auto status = server_.service.contextFilesAdded(*digest);
  if (!status.isOk()) return respondError(parser, status.status());
  return respond(parser, api::contextUploadResponse(*status));
}

bool Session::peerClosed() {
  char c;
  ssize_t n = ::recv(stream_.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

bool Session::streamEvents(Parser& parser, const std::string& id, const api::Target& target) {
  size_t from = 0;
  if (auto it = target.query.find("from"); it != target.query.end() && !it->second.empty()) {
    const std::string& s = it->second;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), from);
    if (ec != std::errc() || end != s.data() + s.size()) {
      return respondError(parser, invalidArgument("query parameter from: \"" + s +
                                                  "\" is not a non-negative integer"));
    }
  }
  auto log = server_.service.events(id);
  if (!log.isOk()) return respondError(parser, log.status());
  if (head_) return respond(parser, api::ApiResponse{200, "application/x-ndjson", ""});
  http::response<http::empty_body> res{http::status::ok, version_};
  res.set(http::field::server, "layerfarm");
  res.set(http::field::content_type, "application/x-ndjson");
  res.set(http::field::cache_control, "no-cache");
  // HTTP/1.0 has no chunked encoding: the stream then ends by closing the connection.
  const bool chunked = version_ == 11;
  res.chunked(chunked);
  const bool keep = chunked && parser.get().keep_alive();
  res.keep_alive(keep);
  http::response_serializer<http::empty_body> sr(res);
  server_.metrics.httpRequest(200);
  if (runOp([&](auto h) { http::async_write_header(stream_, sr, std::move(h)); })) return false;
  const auto poll = std::chrono::milliseconds(server_.options.event_poll_ms);
  std::string batch;
  while (true) {
    if (server_.stopping.load()) return false;
    BuildEventLog::Slice slice = (*log)->read(from, std::chrono::steady_clock::now() + poll);
    if (!slice.events.empty()) {
      batch.clear();
      for (const std::string& e : slice.events) {
        batch.append(e).push_back('\n');
      }
      if (!writeBytes(batch, chunked)) return false;
    } else if (!slice.closed && peerClosed()) {
      return false;
    }
    from = slice.next;
    if (slice.closed) break;
  }
  if (!chunked) return false;
  error_code ec =
      runOp([&](auto h) { asio::async_write(stream_, http::make_chunk_last(), std::move(h)); });
  return !ec && keep && !server_.stopping.load();
}

bool Session::writeBytes(const std::string& bytes, bool chunked) {
  error_code ec = runOp([&](auto h) {
    if (chunked) {
      asio::async_write(stream_, http::make_chunk(asio::buffer(bytes)), std::move(h));
    } else {
      asio::async_write(stream_, asio::buffer(bytes), std::move(h));
    }
  });
  return !ec;
}

bool Session::sendExport(Parser& parser, const std::string& id) {
  auto path = server_.service.exportPath(id);
  if (!path.isOk()) return respondError(parser, path.status());
  http::response<http::file_body> res{http::status::ok, version_};
  error_code ec;
  res.body().open(path->c_str(), beast::file_mode::scan, ec);
  if (ec) {
    return respondError(
        parser, notFound(fmt::format("export of build {} at {}: {}", id, *path, ec.message())));
  }
  const bool keep = parser.get().keep_alive() && !server_.stopping.load();
  res.set(http::field::server, "layerfarm");
  res.set(http::field::content_type, "application/x-tar");
  res.keep_alive(keep);
  res.prepare_payload();
  if (head_) {
    http::response<http::empty_body> head{http::status::ok, version_};
    head.base() = res.base();
    return writeMessage(head) && keep;
  }
  return writeMessage(res) && keep;
}

}  // namespace

void HttpServer::Impl::doAccept() {
  acceptor->async_accept(
      [this](error_code ec, tcp::socket socket) { onAccept(ec, std::move(socket)); });
}

void HttpServer::Impl::reapLocked() {
  for (auto it = conns.begin(); it != conns.end();) {
    if ((*it)->done.load()) {
      (*it)->thread.join();
      it = conns.erase(it);
    } else {
      ++it;
    }
  }
}

void HttpServer::Impl::onAccept(error_code ec, tcp::socket socket) {
  if (stopping.load() || ec == asio::error::operation_aborted) return;
  if (ec) {
    // EMFILE and friends: log and keep accepting; the listener itself is still fine.
    spdlog::warn("http accept failed: {}", ec.message());
    doAccept();
    return;
  }
  std::lock_guard lock(conns_mu);
  reapLocked();
  if (conns.size() >= options.max_connections) {
    static const std::string kBusy = [] {
      std::string body = api::errorBody("unavailable", "too many connections; retry later");
      return fmt::format(
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
          body.size(), body);
    }();
    // Best effort, without blocking the acceptor: the socket buffer takes this small answer.
    ssize_t sent =
        ::send(socket.native_handle(), kBusy.data(), kBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)sent;
    metrics.httpRequest(503);
    error_code ignored;
    socket.close(ignored);
  } else {
    auto conn = std::make_shared<Conn>();
    int fd = socket.release(ec);
    if (!ec) {
      conn->fd = fd;
      try {
        conn->thread = std::thread(&Impl::serve, this, conn, fd);
        conns.push_back(std::move(conn));
      } catch (const std::system_error& e) {
        spdlog::warn("http connection thread not started: {}", e.what());
        ::close(fd);
      }
    }
  }
  doAccept();
}

void HttpServer::Impl::serve(std::shared_ptr<Conn> conn, int fd) {
  asio::io_context ioc;
  std::optional<Session> session;
  try {
    tcp::socket socket(ioc);
    socket.assign(protocol, fd);
    session.emplace(*this, ioc, std::move(socket));
    session->run();
  } catch (const std::exception& e) {
    // Nothing a request does should throw; if something did, only this connection ends.
    spdlog::error("http connection failed: {}", e.what());
  }
  {
    std::lock_guard lock(conn->mu);
    if (session) {
      session->close();
    } else {
      ::close(fd);
    }
    conn->fd = -1;
  }
  conn->done.store(true);
}

HttpServer::HttpServer(HttpServerOptions options, BuildService& service,
                       CoordinatorMetrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), service, metrics)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  Impl& s = *impl_;
  if (s.started) return failedPrecondition("http server already started");
  error_code ec;
  auto address = asio::ip::make_address(s.options.listen_address, ec);
  if (ec) {
    return invalidArgument(
        fmt::format("listen address \"{}\": {}", s.options.listen_address, ec.message()));
  }
  tcp::endpoint endpoint(address, s.options.port);
  s.protocol = endpoint.protocol();
  s.acceptor.emplace(s.accept_ioc);
  s.acceptor->open(endpoint.protocol(), ec);
  if (!ec) s.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(endpoint, ec);
  if (!ec) s.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return unavailable(fmt::format("http listen on {}:{}: {}", s.options.listen_address,
                                   s.options.port, ec.message()));
  }
  s.port = s.acceptor->local_endpoint(ec).port();
  s.started = true;
  s.doAccept();
  s.accept_thread = std::thread([&s] { s.accept_ioc.run(); });
  return Status::ok();
}

uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.stopping.store(true);
  asio::post(s.accept_ioc, [&s] {
    error_code ignored;
    s.acceptor->close(ignored);
  });
  s.accept_thread.join();
  std::list<std::shared_ptr<Conn>> conns;
  {
    std::lock_guard lock(s.conns_mu);
    conns.swap(s.conns);
  }
  for (auto& c : conns) {
    std::lock_guard lock(c->mu);
    if (c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);
  }
  for (auto& c : conns) c->thread.join();
}

}  // namespace lf::coordinator
