#pragma once

// A small synchronous HTTP/1.1 client for the registry API, on Boost.Beast (kept out of this
// header: Beast is expensive to compile, so only http_client.cpp includes it).
//
// Every connect, TLS handshake, write and read has its own deadline. Connections are pooled per
// origin (scheme://host:port) and reused while the server keeps them alive; a pooled connection
// the server has closed in the meantime is replaced transparently, once. HTTPS verifies the peer
// against the system CAs or a configured bundle, including the host name (or IP address).
// Thread-safe: any number of threads may call send() at once; each request holds one connection.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/status.h"

namespace lf::registry {

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // "registry.example.com", "127.0.0.1", "::1" (no brackets)
  uint16_t port = 0;
  std::string target = "/";  // path and query: "/v2/library/ubuntu/manifests/latest"

  static Result<Url> parse(std::string_view text);
  // Resolves a Location header against this URL: absolute, scheme-relative, absolute-path or
  // relative-path forms.
  Result<Url> resolve(std::string_view location) const;
  // "https://host:port" (port always spelled out).
  std::string origin() const;
  // "host" or "host:port" when the port is not the scheme's default, as the Host header wants.
  std::string hostHeader() const;
  std::string toString() const;
};

// Case-insensitive header list, in order.
class Headers {
 public:
  void add(std::string name, std::string value);
  // Replaces every header of that name.
  void set(std::string name, std::string value);
  void remove(std::string_view name);
  std::optional<std::string> get(std::string_view name) const;
  std::vector<std::string> getAll(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

// Percent-encodes a query parameter value.
std::string urlEncode(std::string_view s);

struct HttpRequest {
  std::string method = "GET";
  Url url;
  Headers headers;
  std::string body;  // sent with Content-Length (also 0 for POST/PUT/PATCH)
  // Bound on a buffered response body; 0: HttpClientOptions::max_buffered_body_bytes.
  uint64_t max_response_bytes = 0;
};

struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;  // the buffered body; empty when a stream handler consumed it
};

// Streams a successful (2xx) response body instead of buffering it. Non-2xx bodies are always
// buffered (bounded by max_buffered_body_bytes) so errors can be read.
struct StreamHandler {
  // Called once with status and headers before the first byte of the body.
  std::function<Status(const HttpResponse& head)> on_headers;
  // Called for every piece of the body. A non-ok status aborts the request with it.
  std::function<Status(std::string_view chunk)> on_data;
};

struct HttpClientOptions {
  std::string ca_bundle_path;       // PEM file of trusted CAs; empty: the system's CAs
  int connect_timeout_ms = 10'000;  // resolve + connect + TLS handshake
  int io_timeout_ms = 60'000;       // each write and each read of a header or body piece
  uint64_t max_buffered_body_bytes = 16ull << 20;
  size_t max_idle_per_origin = 8;
  std::string user_agent = "layerfarm/0.1";
};

class HttpClient {
 public:
  static Result<std::unique_ptr<HttpClient>> create(HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request and reads the response. Transport failures are kUnavailable (refused,
  // reset, truncated body) or kDeadlineExceeded (a deadline passed); TLS verification failures
  // are kUnavailable with the OpenSSL reason. A body larger than max_buffered_body_bytes is
  // kResourceExhausted. Redirects are not followed here (the registry client does).
  Result<HttpResponse> send(const HttpRequest& request, const StreamHandler* stream = nullptr);

  // Number of idle pooled connections (for tests).
  size_t idleConnections() const;

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lf::registry
