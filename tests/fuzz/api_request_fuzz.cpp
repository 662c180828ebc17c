// Fuzzes what the coordinator's HTTP API parses from untrusted clients before any handler runs:
// request targets (percent-decoding, query strings), routing, bearer tokens and the
// POST /v1/builds JSON body. A request body that parses must serialise back to JSON that parses
// to the same BuildRequest.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "coordinator/api/api_routes.h"
#include "coordinator/api/json_codec.h"

namespace {

void target(std::string_view text) {
  using namespace lf::coordinator::api;
  auto t = parseTarget(text);
  if (!t.isOk()) return;
  RouteMatch m = routeOf(t->path);
  if (m.route == Route::kNotFound && !m.param.empty()) std::abort();
  for (std::string_view method : allowedMethods(m.route)) {
    if (!methodAllowed(m.route, method)) std::abort();
  }
}

void body(std::string_view text) {
  using namespace lf::coordinator::api;
  auto request = parseBuildRequest(text);
  if (!request.isOk()) return;
  auto again = parseBuildRequest(buildRequestToJson(*request).dump());
  if (!again.isOk() || !(*again == *request)) std::abort();
}

void token(std::string_view text) {
  static const std::vector<lf::coordinator::ApiClient> kClients = {
      {"secret-token", "team", {"team"}, false}};
  auto caller = lf::coordinator::api::authenticate(kClients, text);
  if (caller && text != "Bearer secret-token") std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  target(text);
  body(text);
  token(text);
  (void)lf::coordinator::api::percentDecode(text, true);
  return 0;
}
