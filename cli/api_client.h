#pragma once

// ApiClient: the CLI's HTTP/1.1 client for the coordinator API (docs/http-api.md).
//
// The registry client (common/registry/http_client.h) buffers request bodies; a build context can
// be gigabytes, so this client streams a request body from a read function and streams response
// bodies line by line (NDJSON events) or into a file (exports). Beast stays in api_client.cpp.
//
// One TCP connection per request: the CLI sends a handful of requests, so pooling buys nothing.
// Plain http:// only (the coordinator's API listener has no TLS; put a TLS proxy in front and
// the client still speaks http to the proxy's local side). Every connect and write has a
// deadline; reads have io_timeout_ms, except streamed responses, which use stream_idle_timeout_ms
// because a silent build step may leave the event stream quiet for minutes.
//
// Errors: a transport failure is kUnavailable naming the server ("cannot reach the coordinator
// at http://127.0.0.1:7070: Connection refused ..."), or kDeadlineExceeded. A non-2xx answer is
// turned into a Status by statusFromResponse() ("server: tags[0]: ..."). Thread-safe: requests
// share only immutable options.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace lf::cli {

struct ApiClientOptions {
  std::string server = "http://127.0.0.1:7070";  // base URL: http://HOST:PORT
  std::string token;                             // sent as "Authorization: Bearer" when set
  int connect_timeout_ms = 10'000;
  int io_timeout_ms = 120'000;                  // each write, and each read of an answer
  int stream_idle_timeout_ms = 30 * 60 * 1000;  // longest silence on a streamed answer
  uint64_t max_response_bytes = 64ull << 20;    // bound on a buffered answer
};

struct ApiResponse {
  int status = 0;
  std::string content_type;
  std::string body;  // empty when streamed
};

// Reads up to `size` bytes into `buf`; 0 at the end.
using BodyReader = std::function<Result<size_t>(void* buf, size_t size)>;

class ApiClient {
 public:
  // Fails on a malformed or non-http server URL.
  static Result<std::unique_ptr<ApiClient>> create(ApiClientOptions options);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // The base URL as given ("http://127.0.0.1:7070").
  const std::string& server() const;

  // One request with a buffered body (JSON by default) and a buffered answer, whatever its
  // status. `target` is the path and query ("/v1/builds?limit=5").
  Result<ApiResponse> send(std::string_view method, std::string_view target,
                           std::string_view body = "",
                           std::string_view content_type = "application/json") const;

  // A request whose body of exactly `size` bytes comes from `read` (PUT of a context).
  Result<ApiResponse> sendStream(std::string_view method, std::string_view target, uint64_t size,
                                 const BodyReader& read, std::string_view content_type) const;

  // GET whose 2xx body is handed to `on_chunk` as it arrives. A non-2xx answer is buffered and
  // returned as an error Status (statusFromResponse). A non-ok Status from `on_chunk` stops the
  // transfer and is returned.
  Status getStream(std::string_view target,
                   const std::function<Status(std::string_view chunk)>& on_chunk) const;

  // JSON conveniences: non-2xx answers become statusFromResponse(); a 2xx body that is not JSON
  // is kDataLoss.
  Result<nlohmann::json> getJson(std::string_view target) const;
  Result<nlohmann::json> postJson(std::string_view target, const nlohmann::json& body) const;

 private:
  struct Impl;
  explicit ApiClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The Status for a non-2xx answer: the server's {"error": {"code", "message"}} as
// "server: <message>" with the matching StatusCode; without a JSON error body,
// "server answered <status>: <body start>".
Status statusFromResponse(const ApiResponse& response);

// Splits a byte stream into lines ('\n', a trailing '\r' dropped) for NDJSON. Lines longer than
// max_line_bytes are an error.
class LineSplitter {
 public:
  explicit LineSplitter(std::function<Status(std::string_view line)> on_line,
                        size_t max_line_bytes = 16u << 20)
      : on_line_(std::move(on_line)), max_line_bytes_(max_line_bytes) {}
  Status feed(std::string_view chunk);
  // A last line without '\n'.
  Status finish();

 private:
  std::function<Status(std::string_view)> on_line_;
  size_t max_line_bytes_;
  std::string partial_;
};

}  // namespace lf::cli
