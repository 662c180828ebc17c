// The transport-independent parts of the HTTP API: targets, routes, auth, JSON codec, status
// mapping.

#include "coordinator/api/api_routes.h"

#include <gtest/gtest.h>

#include "coordinator/api/json_codec.h"

namespace lf::coordinator::api {
namespace {

TEST(PercentDecode, DecodesAndRejectsBadEscapes) {
  EXPECT_EQ(*percentDecode("a%2Fb%3a", false), "a/b:");
  EXPECT_EQ(*percentDecode("a+b", false), "a+b");
  EXPECT_EQ(*percentDecode("a+b", true), "a b");
  EXPECT_FALSE(percentDecode("%", false).isOk());
  EXPECT_FALSE(percentDecode("%4", false).isOk());
  EXPECT_FALSE(percentDecode("%zz", false).isOk());
  EXPECT_FALSE(percentDecode("%00", false).isOk());
}

TEST(ParseTarget, SplitsPathAndQuery) {
  auto t = parseTarget("/v1/images/history?ref=r%3A1&x&limit=5&&limit=6#frag");
  ASSERT_TRUE(t.isOk());
  EXPECT_EQ(t->path, "/v1/images/history");
  EXPECT_EQ(t->query["ref"], "r:1");
  EXPECT_EQ(t->query["x"], "");
  EXPECT_EQ(t->query["limit"], "6");
  EXPECT_FALSE(parseTarget("").isOk());
  EXPECT_FALSE(parseTarget("http://h/v1/builds").isOk());
  EXPECT_FALSE(parseTarget("*").isOk());
  EXPECT_FALSE(parseTarget("/v1/builds?tenant=%g0").isOk());
}

TEST(RouteOf, MatchesTheDocumentedRoutes) {
  EXPECT_EQ(routeOf("/healthz").route, Route::kHealthz);
  EXPECT_EQ(routeOf("/readyz").route, Route::kReadyz);
  EXPECT_EQ(routeOf("/metrics").route, Route::kMetrics);
  RouteMatch c = routeOf("/v1/contexts/sha256:ab");
  EXPECT_EQ(c.route, Route::kContext);
  EXPECT_EQ(c.param, "sha256:ab");
  EXPECT_EQ(routeOf("/v1/builds").route, Route::kBuilds);
  RouteMatch b = routeOf("/v1/builds/b-1");
  EXPECT_EQ(b.route, Route::kBuild);
  EXPECT_EQ(b.param, "b-1");
  EXPECT_EQ(routeOf("/v1/builds/b-1/cancel").route, Route::kBuildCancel);
  EXPECT_EQ(routeOf("/v1/builds/b-1/events").route, Route::kBuildEvents);
  EXPECT_EQ(routeOf("/v1/builds/b-1/export").route, Route::kBuildExport);
  EXPECT_EQ(routeOf("/v1/workers").route, Route::kWorkers);
  EXPECT_EQ(routeOf("/v1/cache/stats").route, Route::kCacheStats);
  EXPECT_EQ(routeOf("/v1/images/history").route, Route::kImageHistory);
  for (const char* p :
       {"/", "", "/v1", "/v1/", "/v1/builds/", "/v1/builds//cancel", "/v1/builds/b/other",
        "/v1/contexts/", "/v1/contexts/a/b", "/v2/builds", "/healthz/", "/v1/workers/x"}) {
    EXPECT_EQ(routeOf(p).route, Route::kNotFound) << p;
  }
  EXPECT_TRUE(methodAllowed(Route::kBuilds, "POST"));
  EXPECT_TRUE(methodAllowed(Route::kBuild, "HEAD"));
  EXPECT_FALSE(methodAllowed(Route::kBuild, "DELETE"));
  EXPECT_FALSE(methodAllowed(Route::kContext, "GET"));
  EXPECT_TRUE(isPublic(Route::kMetrics));
  EXPECT_FALSE(isPublic(Route::kWorkers));
}

TEST(Authenticate, MapsTokensToCallers) {
  EXPECT_EQ(authenticate({}, "")->tenant, "default");
  EXPECT_TRUE(authenticate({}, "")->any_namespace);
  std::vector<ApiClient> clients = {{"secret", "team", {"team"}, false}, {"root", "", {}, true}};
  EXPECT_FALSE(authenticate(clients, ""));
  EXPECT_FALSE(authenticate(clients, "Bearer "));
  EXPECT_FALSE(authenticate(clients, "Bearer secre"));
  EXPECT_FALSE(authenticate(clients, "bearer secret"));
  auto team = authenticate(clients, "Bearer secret");
  ASSERT_TRUE(team);
  EXPECT_EQ(team->tenant, "team");
  EXPECT_FALSE(team->any_namespace);
  auto admin = authenticate(clients, "Bearer root");
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin->tenant, "default");
  EXPECT_TRUE(admin->may_push_library);
}

TEST(JsonCodec, RequestRoundTrips) {
  BuildRequest r;
  r.context_digest = Digest::sha256Of("c");
  r.dockerfile_path = "d/Dockerfile";
  r.tags = {"a/b:1"};
  r.build_args = {{"X", "1"}};
  r.target = "t";
  r.no_cache = true;
  r.output = "type=docker";
  r.platform = "linux/amd64";
  auto back = parseBuildRequest(buildRequestToJson(r).dump());
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, r);
}

TEST(JsonCodec, NullMeansDefault) {
  auto r = parseBuildRequest(R"({"context": ")" + Digest::sha256Of("c").toString() +
                             R"(", "dockerfile": null, "tags": null, "push": null})");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->dockerfile_path, "Dockerfile");
  EXPECT_TRUE(r->tags.empty());
}

TEST(JsonCodec, StatusMapping) {
  EXPECT_EQ(httpStatusOf(StatusCode::kInvalidArgument), 400u);
  EXPECT_EQ(httpStatusOf(StatusCode::kPermissionDenied), 403u);
  EXPECT_EQ(httpStatusOf(StatusCode::kNotFound), 404u);
  EXPECT_EQ(httpStatusOf(StatusCode::kAlreadyExists), 409u);
  EXPECT_EQ(httpStatusOf(StatusCode::kFailedPrecondition), 409u);
  EXPECT_EQ(httpStatusOf(StatusCode::kUnavailable), 503u);
  EXPECT_EQ(httpStatusOf(StatusCode::kInternal), 500u);
  EXPECT_EQ(errorCodeOf(StatusCode::kAlreadyExists), "already_exists");
  EXPECT_EQ(errorCodeOf(StatusCode::kDataLoss), "internal");
  auto body = nlohmann::json::parse(errorBody("not_found", "build x not found"));
  EXPECT_EQ(body["error"]["code"], "not_found");
  EXPECT_EQ(body["error"]["message"], "build x not found");
}

TEST(JsonCodec, StepKindFromInstruction) {
  StepRecord s;
  s.instruction = "  workdir /app";
  EXPECT_EQ(stepKind(s), "WORKDIR");
  s.kind = InstructionKind::kCopy;
  EXPECT_EQ(stepKind(s), "COPY");
}

}  // namespace
}  // namespace lf::coordinator::api
