#include "coordinator/api/api_routes.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <utility>

#include "common/context/context_manifest.h"
#include "coordinator/api/json_codec.h"
#include "coordinator/metrics/coordinator_metrics.h"

namespace lf::coordinator::api {

using nlohmann::json;

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

ApiResponse jsonResponse(unsigned status, const json& j) {
  return ApiResponse{status, "application/json", dumpJson(j)};
}

// Splits "a/b/c" into segments; an empty segment (a doubled or trailing slash) is kept so that
// "/v1/builds/" does not match "/v1/builds".
std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path[0] != '/') return out;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

template <typename T>
Result<T> parseNumber(const std::map<std::string, std::string>& query, const std::string& name,
                      T fallback) {
  auto it = query.find(name);
  if (it == query.end() || it->second.empty()) return fallback;
  T value{};
  const std::string& s = it->second;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < 0) {
    return invalidArgument(
        fmt::format("query parameter {}: \"{}\" is not a non-negative integer", name, s));
  }
  return value;
}

// Constant time in the token's length, so a wrong token's answer time does not reveal how many
// leading bytes were right.
bool sameToken(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace

Result<std::string> percentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
      continue;
    }
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    int hi = i + 1 < text.size() ? hexValue(text[i + 1]) : -1;
    int lo = i + 2 < text.size() ? hexValue(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return invalidArgument(fmt::format("bad percent-escape at offset {}", i));
    }
    char decoded = static_cast<char>(hi * 16 + lo);
    if (decoded == '\0') return invalidArgument("percent-escape %00 is not allowed");
    out.push_back(decoded);
    i += 2;
  }
  return out;
}

Result<Target> parseTarget(std::string_view target) {
  if (target.empty() || target[0] != '/') {
    return invalidArgument("request target must be a path starting with '/'");
  }
  size_t hash = target.find('#');
  if (hash != std::string_view::npos) target = target.substr(0, hash);
  size_t q = target.find('?');
  Target out;
  auto path = percentDecode(target.substr(0, q), false);
  if (!path.isOk()) return path.status().withContext("path");
  out.path = std::move(*path);
  if (q == std::string_view::npos) return out;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto key = percentDecode(pair.substr(0, eq), true);
    if (!key.isOk()) return key.status().withContext("query");
    std::string value;
    if (eq != std::string_view::npos) {
      auto v = percentDecode(pair.substr(eq + 1), true);
      if (!v.isOk()) return v.status().withContext("query parameter " + *key);
      value = std::move(*v);
    }
    out.query[std::move(*key)] = std::move(value);
  }
  return out;
}

RouteMatch routeOf(std::string_view path) {
  if (path == "/healthz") return {Route::kHealthz, ""};
  if (path == "/readyz") return {Route::kReadyz, ""};
  if (path == "/metrics") return {Route::kMetrics, ""};
  std::vector<std::string_view> s = segments(path);
  if (s.size() < 2 || s[0] != "v1") return {};
  auto param = [&](Route r) { return RouteMatch{r, std::string(s[2])}; };
  if (s[1] == "contexts" && s.size() == 2) return {Route::kContexts, ""};
  if (s[1] == "contexts" && s.size() == 3 && !s[2].empty()) return param(Route::kContext);
  if (s[1] == "contexts" && s.size() == 4 && !s[2].empty() && s[3] == "files") {
    return param(Route::kContextFiles);
  }
  if (s[1] == "workers" && s.size() == 2) return {Route::kWorkers, ""};
  if (s[1] == "cache" && s.size() == 3 && s[2] == "stats") return {Route::kCacheStats, ""};
  if (s[1] == "images" && s.size() == 3 && s[2] == "history") return {Route::kImageHistory, ""};
  if (s[1] != "builds") return {};
  if (s.size() == 2) return {Route::kBuilds, ""};
  if (s[2].empty()) return {};
  if (s.size() == 3) return param(Route::kBuild);
  if (s.size() != 4) return {};
  if (s[3] == "cancel") return param(Route::kBuildCancel);
  if (s[3] == "events") return param(Route::kBuildEvents);
  if (s[3] == "export") return param(Route::kBuildExport);
  return {};
}

std::vector<std::string_view> allowedMethods(Route route) {
  switch (route) {
    case Route::kNotFound:
      return {};
    case Route::kContexts:
      return {"POST"};
    case Route::kContext:
      return {"HEAD", "PUT"};
    case Route::kContextFiles:
      return {"PUT"};
    case Route::kBuilds:
      return {"GET", "HEAD", "POST"};
    case Route::kBuildCancel:
      return {"POST"};
    default:
      return {"GET", "HEAD"};
  }
}

bool methodAllowed(Route route, std::string_view method) {
  for (std::string_view m : allowedMethods(route)) {
    if (m == method) return true;
  }
  return false;
}

bool isPublic(Route route) {
  return route == Route::kHealthz || route == Route::kReadyz || route == Route::kMetrics;
}

std::optional<Caller> authenticate(const std::vector<ApiClient>& clients,
                                   std::string_view authorization) {
  if (clients.empty()) return Caller{};
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() ||
      authorization.substr(0, kBearer.size()) != kBearer) {
    return std::nullopt;
  }
  std::string_view token = authorization.substr(kBearer.size());
  for (const ApiClient& client : clients) {
    if (!client.token.empty() && sameToken(client.token, token)) {
      Caller caller;
      caller.tenant = client.tenant.empty() ? "default" : client.tenant;
      caller.namespaces = client.namespaces;
      caller.any_namespace = client.admin;
      caller.may_push_library = client.admin;
      caller.all_tenants = client.admin;
      return caller;
    }
  }
  return std::nullopt;
}

std::string_view contextManifestContentType() { return context::kContextManifestMediaType; }

bool isContextManifestContentType(std::string_view value) {
  value = value.substr(0, value.find(';'));
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  const std::string_view want = context::kContextManifestMediaType;
  if (value.size() != want.size()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != want[i]) return false;
  }
  return true;
}

ApiResponse contextUploadResponse(const ContextUploadStatus& status) {
  json missing = json::array();
  for (const Digest& d : status.missing) missing.push_back(d.toString());
  return jsonResponse(status.created ? 201 : 200, json{{"digest", status.digest.toString()},
                                                       {"files", status.files},
                                                       {"bytes", status.bytes},
                                                       {"missing", std::move(missing)},
                                                       {"missing_bytes", status.missing_bytes}});
}

ApiResponse errorResponse(unsigned http_status, std::string_view code, std::string_view message) {
  return ApiResponse{http_status, "application/json", errorBody(code, message)};
}

ApiResponse errorResponse(const Status& status) {
  return errorResponse(httpStatusOf(status.code()), errorCodeOf(status.code()), status.message());
}

ApiResponse ApiHandlers::handle(const ApiRequest& r) {
  if (auto refused = authorizeBuild(r)) return *refused;
  const bool post = r.method == "POST";
  switch (r.route) {
    case Route::kHealthz:
      return ApiResponse{200, "text/plain; charset=utf-8", "ok\n"};
    case Route::kReadyz:
      return readyz();
    case Route::kMetrics:
      return ApiResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics_.serialize()};
    case Route::kContexts:
      return contextManifest(r);
    case Route::kContext:
      return contextHead(r);
    case Route::kBuilds:
      return post ? submit(r) : list(r);
    case Route::kBuild:
      return get(r);
    case Route::kBuildCancel:
      return cancel(r);
    case Route::kWorkers:
      return jsonResponse(200, workersToJson(service_.workers()));
    case Route::kCacheStats: {
      auto summary = service_.cacheSummary();
      if (!summary.isOk()) return errorResponse(summary.status());
      return jsonResponse(200, cacheSummaryToJson(*summary));
    }
    case Route::kImageHistory:
      return history(r);
    default:
      break;
  }
  // The streaming routes never reach here (http_server.cpp answers them itself).
  return errorResponse(internalError("route has no handler"));
}

ApiResponse ApiHandlers::readyz() {
  Status ready = service_.ready();
  if (!ready.isOk()) {
    return ApiResponse{503, "text/plain; charset=utf-8", "not ready: " + ready.message() + "\n"};
  }
  return ApiResponse{200, "text/plain; charset=utf-8", "ok\n"};
}

ApiResponse ApiHandlers::contextHead(const ApiRequest& r) {
  auto digest = Digest::parse(r.param);
  if (!digest.isOk()) return errorResponse(digest.status().withContext("context digest"));
  auto has = service_.hasContext(*digest);
  if (!has.isOk()) return errorResponse(has.status());
  if (!*has) return errorResponse(notFound("context " + digest->toString() + " is not uploaded"));
  return ApiResponse{200, "application/json", ""};
}

ApiResponse ApiHandlers::contextManifest(const ApiRequest& r) {
  auto status = service_.addContextManifest(r.body);
  if (!status.isOk()) {
    // Over kMaxManifestEntries (or a size limit): the client's fault, not a busy server.
    if (status.status().code() == StatusCode::kResourceExhausted) {
      return errorResponse(413, "too_large", status.status().message());
    }
    return errorResponse(status.status());
  }
  return contextUploadResponse(*status);
}

ApiResponse ApiHandlers::submit(const ApiRequest& r) {
  auto request = parseBuildRequest(r.body);
  if (!request.isOk()) return errorResponse(request.status());
  auto build = service_.submit(r.caller, std::move(*request));
  if (!build.isOk()) return errorResponse(build.status());
  return jsonResponse(202, buildToJson(*build, true));
}

std::optional<ApiResponse> ApiHandlers::authorizeBuild(const ApiRequest& r) {
  const bool build_route = r.route == Route::kBuild || r.route == Route::kBuildCancel ||
                           r.route == Route::kBuildEvents || r.route == Route::kBuildExport;
  if (!build_route || r.caller.all_tenants) return std::nullopt;
  auto build = service_.getBuild(r.param);
  if (!build.isOk()) return errorResponse(build.status());
  // Another tenant's build answers exactly as a missing one: ids are not secrets, but what a
  // build pushed, its logs and its export are.
  if (!build->has_value() || (*build)->tenant != r.caller.tenant) {
    return errorResponse(notFound("build " + r.param + " not found"));
  }
  return std::nullopt;
}

ApiResponse ApiHandlers::list(const ApiRequest& r) {
  ListBuildsOptions options;
  if (auto it = r.query.find("tenant"); it != r.query.end()) options.tenant = it->second;
  if (!r.caller.all_tenants) {
    if (!options.tenant.empty() && options.tenant != r.caller.tenant) {
      return errorResponse(
          permissionDenied("query parameter tenant: this token lists only the "
                           "builds of its own tenant (" +
                           r.caller.tenant + ")"));
    }
    options.tenant = r.caller.tenant;
  }
  auto limit = parseNumber<size_t>(r.query, "limit", 50);
  if (!limit.isOk()) return errorResponse(limit.status());
  auto before = parseNumber<int64_t>(r.query, "before_ms", 0);
  if (!before.isOk()) return errorResponse(before.status());
  options.limit = *limit;
  options.created_before_unix_ms = *before;
  auto builds = service_.listBuilds(options);
  if (!builds.isOk()) return errorResponse(builds.status());
  json list = json::array();
  for (const BuildRecord& b : *builds) list.push_back(buildToJson(b, false));
  return jsonResponse(200, json{{"builds", std::move(list)}});
}

ApiResponse ApiHandlers::get(const ApiRequest& r) {
  auto build = service_.getBuild(r.param);
  if (!build.isOk()) return errorResponse(build.status());
  if (!build->has_value()) return errorResponse(notFound("build " + r.param + " not found"));
  return jsonResponse(200, buildToJson(**build, true));
}

ApiResponse ApiHandlers::cancel(const ApiRequest& r) {
  auto build = service_.cancel(r.param);
  if (!build.isOk()) return errorResponse(build.status());
  return jsonResponse(202, buildToJson(*build, true));
}

ApiResponse ApiHandlers::history(const ApiRequest& r) {
  auto it = r.query.find("ref");
  if (it == r.query.end() || it->second.empty()) {
    return errorResponse(invalidArgument("query parameter ref: required (an image reference)"));
  }
  auto image = service_.image(it->second);
  if (!image.isOk()) return errorResponse(image.status());
  if (!image->has_value()) {
    return errorResponse(notFound("no image built by the farm is known as " + it->second));
  }
  return jsonResponse(200, imageHistoryToJson(**image));
}

}  // namespace lf::coordinator::api
