#pragma once

// The transport-independent half of the HTTP API: request targets (percent-decoding, query
// strings), the route table of docs/http-api.md, bearer authentication, and the handlers whose
// answer is one JSON (or text) body. The streaming routes (context upload, event stream, export)
// live in http_server.cpp, the one file that includes Beast; it uses routeOf() and
// authenticate() from here too, so the fuzz target covers all parsing of untrusted input.
//
// Thread-safety: the free functions are pure; ApiHandlers is thread-safe (it only calls the
// thread-safe BuildService and CoordinatorMetrics).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "coordinator/api/http_server.h"
#include "coordinator/builds/build_service.h"

namespace lf::coordinator {
class CoordinatorMetrics;
}

namespace lf::coordinator::api {

// Decodes %XX escapes (and '+' as a space when `plus_is_space`, for query strings).
// kInvalidArgument for a truncated or non-hex escape or a decoded NUL byte.
Result<std::string> percentDecode(std::string_view text, bool plus_is_space);

struct Target {
  std::string path;                          // decoded
  std::map<std::string, std::string> query;  // decoded; a repeated key keeps the last value
};
// "/v1/builds?tenant=a&limit=5" -> path and query. kInvalidArgument for a target that is not an
// origin-form path or has bad escapes.
Result<Target> parseTarget(std::string_view target);

enum class Route {
  kNotFound,
  kHealthz,
  kReadyz,
  kMetrics,
  kContexts,      // /v1/contexts: POST (a context manifest)
  kContext,       // /v1/contexts/{digest}: HEAD, PUT
  kContextFiles,  // /v1/contexts/{digest}/files: PUT (the files the manifest's POST said missing)
  kBuilds,        // /v1/builds: GET, POST
  kBuild,         // /v1/builds/{id}: GET
  kBuildCancel,   // /v1/builds/{id}/cancel: POST
  kBuildEvents,   // /v1/builds/{id}/events: GET
  kBuildExport,   // /v1/builds/{id}/export: GET
  kWorkers,       // /v1/workers: GET
  kCacheStats,    // /v1/cache/stats: GET
  kImageHistory,  // /v1/images/history: GET
};

struct RouteMatch {
  Route route = Route::kNotFound;
  std::string param;  // the {digest} or {id} path segment
};
RouteMatch routeOf(std::string_view path);
// Methods a route accepts ("GET", "HEAD", ...), for 405 and the Allow header. GET routes accept
// HEAD as well.
std::vector<std::string_view> allowedMethods(Route route);
bool methodAllowed(Route route, std::string_view method);
// /healthz, /readyz and /metrics answer without a token.
bool isPublic(Route route);

// The Caller for a request's Authorization header value ("" when absent). With no clients
// configured every request is Caller{}; otherwise nullopt (401) when the header is absent, is not
// "Bearer <token>" or names no configured client. Tokens are compared in constant time.
std::optional<Caller> authenticate(const std::vector<ApiClient>& clients,
                                   std::string_view authorization);

struct ApiRequest {
  std::string method;
  Route route = Route::kNotFound;
  std::string param;
  std::map<std::string, std::string> query;
  std::string body;
  Caller caller;
};

struct ApiResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// The Content-Type POST /v1/contexts takes (context::kContextManifestMediaType).
std::string_view contextManifestContentType();
// Whether a Content-Type header value names it (parameters such as "; charset=utf-8" ignored,
// case-insensitive).
bool isContextManifestContentType(std::string_view content_type);
// The answer of POST /v1/contexts and PUT /v1/contexts/{id}/files: 201 when `status.created`.
ApiResponse contextUploadResponse(const ContextUploadStatus& status);

// An error answer with the doc's JSON shape.
ApiResponse errorResponse(const Status& status);
ApiResponse errorResponse(unsigned http_status, std::string_view code, std::string_view message);

// Answers the routes whose whole answer is one body: everything except the PUTs of contexts and
// context files, the event stream and the export. POST /v1/contexts gets here with its body read
// (http_server.cpp checks its Content-Type and bounds it first).
class ApiHandlers {
 public:
  ApiHandlers(BuildService& service, CoordinatorMetrics& metrics)
      : service_(service), metrics_(metrics) {}

  ApiResponse handle(const ApiRequest& request);
  // For the routes of one build (status, events, export, cancel): the 404 a caller gets for a
  // build of another tenant unless it sees all tenants (Caller::all_tenants); nullopt = go on.
  // handle() applies it; the streaming routes the server answers itself call it first.
  std::optional<ApiResponse> authorizeBuild(const ApiRequest& request);

 private:
  ApiResponse contextHead(const ApiRequest& r);
  ApiResponse contextManifest(const ApiRequest& r);
  ApiResponse submit(const ApiRequest& r);
  ApiResponse list(const ApiRequest& r);
  ApiResponse get(const ApiRequest& r);
  ApiResponse cancel(const ApiRequest& r);
  ApiResponse history(const ApiRequest& r);
  ApiResponse readyz();

  BuildService& service_;
  CoordinatorMetrics& metrics_;
};

}  // namespace lf::coordinator::api
