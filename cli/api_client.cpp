#include "cli/api_client.h"

// clang-format off
#include "common/registry/asio.h"  // first: see asio.h
// clang-format on

#include <chrono>
#include <limits>
#include <vector>

#include "common/registry/http_client.h"

namespace lf::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr size_t kChunkBytes = 256 * 1024;

// One connection with its own io_context, driven synchronously: Beast's deadlines only apply to
// asynchronous operations, which are run to completion one at a time.
struct Connection {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;

  template <typename Start>
  error_code run(int timeout_ms, Start start) {
    error_code result = asio::error::would_block;
    stream.expires_after(std::chrono::milliseconds(timeout_ms));
    start([&result](error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }
};

StatusCode codeFromName(std::string_view code, int http_status) {
  if (code == "invalid_argument") return StatusCode::kInvalidArgument;
  if (code == "unauthenticated" || code == "permission_denied") {
    return StatusCode::kPermissionDenied;
  }
  if (code == "not_found") return StatusCode::kNotFound;
  if (code == "already_exists") return StatusCode::kAlreadyExists;
  if (code == "failed_precondition") return StatusCode::kFailedPrecondition;
  if (code == "too_large") return StatusCode::kResourceExhausted;
  if (code == "unavailable") return StatusCode::kUnavailable;
  switch (http_status) {
    case 400:
      return StatusCode::kInvalidArgument;
    case 401:
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kFailedPrecondition;
    case 413:
      return StatusCode::kResourceExhausted;
    case 503:
      return StatusCode::kUnavailable;
    default:
      return StatusCode::kInternal;
  }
}

}  // namespace

Status statusFromResponse(const ApiResponse& response) {
  auto parsed = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    const auto& err = parsed["error"];
    std::string code = err.value("code", std::string());
    std::string message = err.value("message", std::string());
    if (!message.empty()) {
      return Status(codeFromName(code, response.status), "server: " + message);
    }
  }
  std::string snippet = response.body.substr(0, 200);
  while (!snippet.empty() && (snippet.back() == '\n' || snippet.back() == '\r')) {
    snippet.pop_back();
  }
  return Status(codeFromName("", response.status),
                "server answered " + std::to_string(response.status) +
                    (snippet.empty() ? std::string() : ": " + snippet));
}

Status LineSplitter::feed(std::string_view chunk) {
  while (!chunk.empty()) {
    size_t nl = chunk.find('\n');
    if (nl == std::string_view::npos) {
      if (partial_.size() + chunk.size() > max_line_bytes_) {
        return resourceExhausted("a line of the answer is longer than " +
                                 std::to_string(max_line_bytes_) + " bytes");
      }
      partial_.append(chunk);
      return Status::ok();
    }
    partial_.append(chunk.substr(0, nl));
    chunk.remove_prefix(nl + 1);
    std::string line = std::move(partial_);
    partial_.clear();
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    LF_RETURN_IF_ERROR(on_line_(line));
  }
  return Status::ok();
}

Status LineSplitter::finish() {
  if (partial_.empty()) {
    return Status::ok();
  }
  std::string line = std::move(partial_);
  partial_.clear();
  return on_line_(line);
}

struct ApiClient::Impl {
  ApiClientOptions options;
  registry::Url url;

  Status transportError(const error_code& ec, std::string_view what) const {
    if (ec == beast::error::timeout) {
      return deadlineExceeded("coordinator at " + options.server + ": " + std::string(what) +
                              " timed out");
    }
    std::string msg = "cannot reach the coordinator at " + options.server + ": " + ec.message();
    if (ec == asio::error::connection_refused) {
      msg +=
          " (is it running? deploy/local/farm.sh start runs one on this machine; or pass "
          "--server URL / set LAYERFARM_SERVER)";
    }
    return unavailable(std::move(msg));
  }

  Result<std::unique_ptr<Connection>> connect() const {
    auto c = std::make_unique<Connection>();
    tcp::resolver resolver(c->ioc);
    error_code ec;
    auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
    if (ec) {
      return unavailable("cannot resolve the coordinator's host " + url.host + ": " + ec.message());
    }
    ec = c->run(options.connect_timeout_ms,
                [&](auto handler) { c->stream.async_connect(endpoints, handler); });
    if (ec) {
      return transportError(ec, "connect");
    }
    return c;
  }

  template <typename Body>
  void prepare(http::request<Body>& msg, std::string_view method, std::string_view target) const {
    msg.method_string(std::string(method));
    msg.target(std::string(target));
    msg.version(11);
    msg.set(http::field::host, url.hostHeader());
    msg.set(http::field::user_agent, "layerfarm-cli/0.1");
    if (!options.token.empty()) {
      msg.set(http::field::authorization, "Bearer " + options.token);
    }
    msg.keep_alive(false);
  }

  // Reads the answer; its 2xx body goes to `on_chunk` when given, else into the response.
  Result<ApiResponse> readResponse(Connection& c, bool head,
                                   const std::function<Status(std::string_view)>* on_chunk) const {
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // bounded below
    parser.skip(head);
    error_code ec = c.run(options.io_timeout_ms, [&](auto handler) {
      http::async_read_header(c.stream, c.buffer, parser, handler);
    });
    if (ec) {
      return transportError(ec, "reading the answer");
    }
    ApiResponse res;
    res.status = static_cast<int>(parser.get().result_int());
    res.content_type = std::string(parser.get()[http::field::content_type]);
    bool streaming = on_chunk != nullptr && res.status >= 200 && res.status < 300;
    // Not a std::vector: zeroing 256 KiB (and faulting in every page) cost a cached rebuild
    // about a millisecond; malloc'ed pages are touched only as far as the answer fills them.
    std::unique_ptr<char[]> buf(new char[kChunkBytes]);
    // read_some, not read: read would wait until the buffer is full, holding back live events.
    while (!parser.is_done()) {
      parser.get().body().data = buf.get();
      parser.get().body().size = kChunkBytes;
      ec = c.run(streaming ? options.stream_idle_timeout_ms : options.io_timeout_ms,
                 [&](auto handler) { http::async_read_some(c.stream, c.buffer, parser, handler); });
      if (ec == http::error::need_buffer) {
        ec = {};
      }
      if (ec) {
        return transportError(ec, "reading the answer");
      }
      std::string_view chunk(buf.get(), kChunkBytes - parser.get().body().size);
      if (streaming) {
        LF_RETURN_IF_ERROR((*on_chunk)(chunk));
      } else if (res.body.size() + chunk.size() > options.max_response_bytes) {
        return resourceExhausted("the coordinator's answer is larger than " +
                                 std::to_string(options.max_response_bytes) + " bytes");
      } else {
        res.body.append(chunk);
      }
    }
    return res;
  }

  Result<ApiResponse> send(std::string_view method, std::string_view target, std::string_view body,
                           std::string_view content_type,
                           const std::function<Status(std::string_view)>* on_chunk) const {
    LF_ASSIGN_OR_RETURN(auto c, connect());
    http::request<http::string_body> msg;
    prepare(msg, method, target);
    if (!body.empty() || (method != "GET" && method != "HEAD")) {
      msg.set(http::field::content_type, std::string(content_type));
      msg.body() = std::string(body);
      msg.content_length(body.size());
    }
    error_code ec = c->run(options.io_timeout_ms,
                           [&](auto handler) { http::async_write(c->stream, msg, handler); });
    if (ec) {
      return transportError(ec, "sending the request");
    }
    return readResponse(*c, method == "HEAD", on_chunk);
  }

  Result<ApiResponse> sendStream(std::string_view method, std::string_view target, uint64_t size,
                                 const BodyReader& read, std::string_view content_type) const {
    LF_ASSIGN_OR_RETURN(auto c, connect());
    http::request<http::empty_body> msg;
    prepare(msg, method, target);
    msg.set(http::field::content_type, std::string(content_type));
    msg.content_length(size);
    http::request_serializer<http::empty_body> sr(msg);
    error_code ec = c->run(options.io_timeout_ms,
                           [&](auto handler) { http::async_write_header(c->stream, sr, handler); });
    if (ec) {
      return transportError(ec, "sending the request");
    }
    std::unique_ptr<char[]> buf(new char[kChunkBytes]);
    uint64_t sent = 0;
    while (sent < size) {
      LF_ASSIGN_OR_RETURN(size_t n, read(buf.get(), kChunkBytes));
      if (n == 0 || sent + n > size) {
        return internalError("request body: expected " + std::to_string(size) + " bytes, got " +
                             std::to_string(sent + n));
      }
      ec = c->run(options.io_timeout_ms, [&](auto handler) {
        asio::async_write(c->stream, asio::buffer(buf.get(), n), handler);
      });
      if (ec) {
        // The server may have answered early (413, 400) and closed: show its answer if any.
        auto early = readResponse(*c, false, nullptr);
        if (early.isOk() && early->status != 0) {
          return early;
        }
        return transportError(ec, "sending the request body");
      }
      sent += n;
    }
    return readResponse(*c, false, nullptr);
  }
};

ApiClient::ApiClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiClient::~ApiClient() = default;

Result<std::unique_ptr<ApiClient>> ApiClient::create(ApiClientOptions options) {
  auto impl = std::make_unique<Impl>();
  while (!options.server.empty() && options.server.back() == '/') {
    options.server.pop_back();
  }
  auto url = registry::Url::parse(options.server);
  if (!url.isOk()) {
    return invalidArgument("--server: " + url.status().message());
  }
  if (url->scheme != "http") {
    return invalidArgument("--server " + options.server +
                           ": only http:// is supported (the coordinator API has no TLS)");
  }
  if (url->target != "/" && !url->target.empty()) {
    return invalidArgument("--server " + options.server + ": give only http://HOST:PORT");
  }
  impl->url = std::move(url).value();
  impl->options = std::move(options);
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(impl)));
}

const std::string& ApiClient::server() const { return impl_->options.server; }

Result<ApiResponse> ApiClient::send(std::string_view method, std::string_view target,
                                    std::string_view body, std::string_view content_type) const {
  return impl_->send(method, target, body, content_type, nullptr);
}

Result<ApiResponse> ApiClient::sendStream(std::string_view method, std::string_view target,
                                          uint64_t size, const BodyReader& read,
                                          std::string_view content_type) const {
  return impl_->sendStream(method, target, size, read, content_type);
}

Status ApiClient::getStream(std::string_view target,
                            const std::function<Status(std::string_view chunk)>& on_chunk) const {
  LF_ASSIGN_OR_RETURN(ApiResponse res, impl_->send("GET", target, "", "", &on_chunk));
  if (res.status < 200 || res.status >= 300) {
    return statusFromResponse(res);
  }
  return Status::ok();
}

namespace {
Result<nlohmann::json> jsonOf(const ApiResponse& res, std::string_view what) {
  if (res.status < 200 || res.status >= 300) {
    return statusFromResponse(res);
  }
  auto parsed = nlohmann::json::parse(res.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return dataLoss("the coordinator's answer to " + std::string(what) + " is not JSON");
  }
  return parsed;
}
}  // namespace

Result<nlohmann::json> ApiClient::getJson(std::string_view target) const {
  LF_ASSIGN_OR_RETURN(ApiResponse res, send("GET", target));
  return jsonOf(res, target);
}

Result<nlohmann::json> ApiClient::postJson(std::string_view target,
                                           const nlohmann::json& body) const {
  LF_ASSIGN_OR_RETURN(ApiResponse res, send("POST", target, body.dump()));
  return jsonOf(res, target);
}

}  // namespace lf::cli
