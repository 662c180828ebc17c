// The HTTP API over real loopback HTTP against a FakeBuildService: contexts, submit mapping,
// auth, event streaming, build JSON, listing, errors, metrics, and robustness against garbage.

#include "coordinator/api/http_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "coordinator/metrics/coordinator_metrics.h"
#include "tests/coordinator/api/fake_build_service.h"
#include "tests/coordinator/api/http_test_client.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

using lf::testing::HttpAnswer;
using lf::testing::HttpTestClient;
using nlohmann::json;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }

  void start(HttpServerOptions options) {
    server_.reset();
    options.listen_address = "127.0.0.1";
    options.port = 0;
    options.event_poll_ms = 50;
    server_ = std::make_unique<HttpServer>(options, service_, metrics_);
    ASSERT_TRUE(server_->start().isOk());
    ASSERT_NE(server_->port(), 0);
  }
  int port() const { return server_->port(); }
  HttpAnswer get(const std::string& target, const std::vector<std::string>& headers = {}) {
    HttpTestClient c(port());
    return c.request("GET", target, "", headers);
  }
  HttpAnswer post(const std::string& target, const std::string& body,
                  const std::vector<std::string>& headers = {}) {
    HttpTestClient c(port());
    return c.request("POST", target, body, headers);
  }
  static json parse(const HttpAnswer& a) { return json::parse(a.body, nullptr, false); }
  static std::string errorCode(const HttpAnswer& a) {
    json j = parse(a);
    return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
  }
  static std::string errorMessage(const HttpAnswer& a) {
    json j = parse(a);
    return j.is_object() && j.contains("error") ? j["error"].value("message", "") : "";
  }

  lf::testing::TempDir dir_;
  testing::FakeBuildService service_{dir_ / "blobs"};
  CoordinatorMetrics metrics_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, HealthAndReadiness) {
  HttpAnswer h = get("/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "ok\n");
  EXPECT_EQ(get("/readyz").status, 200);
  service_.setReady(unavailable("state store is closed"));
  HttpAnswer r = get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("state store is closed"), std::string::npos) << r.body;
}

TEST_F(HttpServerTest, ContextUploadThenHead) {
  const std::string tar(300'000, 'x');  // several 64 KiB pieces
  const Digest d = Digest::sha256Of(tar);
  const std::string target = "/v1/contexts/" + d.toString();
  HttpTestClient c(port());
  EXPECT_EQ(c.request("HEAD", target).status, 404);
  HttpAnswer put = c.request("PUT", target, tar);  // same keep-alive connection
  ASSERT_EQ(put.status, 201) << put.body;
  json j = parse(put);
  EXPECT_EQ(j["digest"], d.toString());
  EXPECT_EQ(j["size"], tar.size());
  EXPECT_EQ(service_.contextSize(d), tar.size());
  EXPECT_EQ(*service_.blobs().getBytes(d), tar);
  EXPECT_EQ(c.request("HEAD", target).status, 200);
  // Uploading it again is 200, and still checked against the digest.
  EXPECT_EQ(c.request("PUT", target, tar).status, 200);
  EXPECT_EQ(c.request("PUT", target, tar + "y").status, 400);
}

TEST_F(HttpServerTest, ContextWithWrongDigestIsRefusedAndNotStored) {
  const std::string tar = "not what the digest says";
  const Digest claimed = Digest::sha256Of("something else");
  HttpTestClient c(port());
  HttpAnswer put = c.request("PUT", "/v1/contexts/" + claimed.toString(), tar);
  EXPECT_EQ(put.status, 400);
  EXPECT_EQ(errorCode(put), "invalid_argument");
  EXPECT_FALSE(service_.contextSize(claimed));
  EXPECT_FALSE(*service_.blobs().has(claimed));
  EXPECT_FALSE(*service_.blobs().has(Digest::sha256Of(tar)));
  // A malformed digest in the path (the unread body makes the server close the connection).
  EXPECT_EQ(c.request("PUT", "/v1/contexts/sha256:XYZ", tar).status, 400);
  HttpTestClient c2(port());
  EXPECT_EQ(c2.request("HEAD", "/v1/contexts/md5:abc").status, 400);
}

TEST_F(HttpServerTest, ContextOverTheLimitIs413BeforeReading) {
  HttpServerOptions options;
  options.max_context_bytes = 1000;
  start(options);
  const std::string tar(1001, 'a');
  HttpTestClient c(port());
  // Only the header is sent: the answer must come without the server waiting for the body.
  ASSERT_TRUE(c.send("PUT /v1/contexts/" + Digest::sha256Of(tar).toString() +
                     " HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"));
  HttpAnswer a = c.read();
  EXPECT_EQ(a.status, 413);
  EXPECT_EQ(errorCode(a), "too_large");
  EXPECT_NE(errorMessage(a).find("1000"), std::string::npos) << a.body;
  EXPECT_FALSE(service_.contextSize(Digest::sha256Of(tar)));
  // Without Content-Length (chunked): 411.
  HttpTestClient c2(port());
  ASSERT_TRUE(
      c2.send("PUT /v1/contexts/" + Digest::sha256Of(tar).toString() +
              " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"));
  EXPECT_EQ(c2.read().status, 411);
}

TEST_F(HttpServerTest, ContextUploadWithExpectContinue) {
  const std::string tar = "tar bytes";
  const Digest d = Digest::sha256Of(tar);
  HttpTestClient c(port());
  ASSERT_TRUE(c.send("PUT /v1/contexts/" + d.toString() +
                     " HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
                     std::to_string(tar.size()) + "\r\n\r\n"));
  EXPECT_EQ(c.readHead().status, 100);
  ASSERT_TRUE(c.send(tar));
  EXPECT_EQ(c.read().status, 201);
}

TEST_F(HttpServerTest, SubmitMapsEveryField) {
  const Digest ctx = Digest::sha256Of("ctx");
  json body = {{"context", ctx.toString()},
               {"dockerfile", "build/Dockerfile.prod"},
               {"tags", {"127.0.0.1:5000/team/app:1", "127.0.0.1:5000/team/app:latest"}},
               {"build_args", {{"VERSION", "1.2"}, {"EMPTY", ""}}},
               {"target", "runtime"},
               {"no_cache", true},
               {"push", true},
               {"output", "type=oci"},
               {"platform", "linux/arm64"}};
  HttpAnswer a = post("/v1/builds", body.dump());
  ASSERT_EQ(a.status, 202) << a.body;
  ASSERT_TRUE(service_.last_request);
  const BuildRequest& r = *service_.last_request;
  EXPECT_EQ(r.context_digest, ctx);
  EXPECT_EQ(r.dockerfile_path, "build/Dockerfile.prod");
  EXPECT_EQ(r.tags, (std::vector<std::string>{"127.0.0.1:5000/team/app:1",
                                              "127.0.0.1:5000/team/app:latest"}));
  EXPECT_EQ(r.build_args, (std::map<std::string, std::string>{{"VERSION", "1.2"}, {"EMPTY", ""}}));
  EXPECT_EQ(r.target, "runtime");
  EXPECT_TRUE(r.no_cache);
  EXPECT_TRUE(r.push);
  EXPECT_EQ(r.output, "type=oci");
  EXPECT_EQ(r.platform, "linux/arm64");
  EXPECT_EQ(service_.last_caller.tenant, "default");
  json j = parse(a);
  EXPECT_EQ(j["state"], "queued");
  EXPECT_EQ(j["id"], "b-1");
  EXPECT_EQ(j["request"], body);  // "as submitted"
}

TEST_F(HttpServerTest, SubmitDefaultsAndIndexTarget) {
  HttpAnswer a = post("/v1/builds",
                      R"({"context": ")" + Digest::sha256Of("c").toString() + R"(", "target": 1})");
  ASSERT_EQ(a.status, 202) << a.body;
  EXPECT_EQ(service_.last_request->dockerfile_path, "Dockerfile");
  EXPECT_EQ(service_.last_request->target, "1");
  EXPECT_FALSE(service_.last_request->push);
}

TEST_F(HttpServerTest, SubmitRejectsBadBodiesNamingTheField) {
  const std::string ctx = Digest::sha256Of("c").toString();
  struct Case {
    std::string body;
    std::string mentions;
  };
  std::vector<Case> cases = {
      {R"({"context": ")" + ctx + R"(", "tagz": []})", "tagz"},
      {R"({"context": ")" + ctx + R"(", "tags": ["a", 3]})", "tags[1]"},
      {R"({"context": ")" + ctx + R"(", "push": "yes"})", "push"},
      {R"({"context": ")" + ctx + R"(", "build_args": {"A": 1}})", "build_args.A"},
      {R"({"context": ")" + ctx + R"(", "target": -1})", "target"},
      {R"({"tags": []})", "context"},
      {R"({"context": "sha256:nothex"})", "context"},
      {R"([1, 2])", "object"},
      {R"({"context": )", "JSON"},
      {std::string(100, '['), "deeper"},
  };
  for (const Case& c : cases) {
    HttpAnswer a = post("/v1/builds", c.body);
    EXPECT_EQ(a.status, 400) << c.body;
    EXPECT_EQ(errorCode(a), "invalid_argument") << c.body;
    EXPECT_NE(errorMessage(a).find(c.mentions), std::string::npos)
        << c.body << " -> " << errorMessage(a);
  }
  EXPECT_FALSE(service_.last_request);
}

TEST_F(HttpServerTest, SubmitErrorsMapToStatuses) {
  const std::string body = R"({"context": ")" + Digest::sha256Of("c").toString() + R"("})";
  service_.setSubmitError(permissionDenied("tags[0]: library/ is reserved"));
  HttpAnswer a = post("/v1/builds", body);
  EXPECT_EQ(a.status, 403);
  EXPECT_EQ(errorCode(a), "permission_denied");
  EXPECT_EQ(errorMessage(a), "tags[0]: library/ is reserved");
  service_.setSubmitError(unavailable("shutting down"));
  EXPECT_EQ(post("/v1/builds", body).status, 503);
}

TEST_F(HttpServerTest, JsonBodyOverOneMebibyteIs413) {
  std::string big = R"({"context": ")" + std::string(2 << 20, 'a') + R"("})";
  HttpAnswer a = post("/v1/builds", big);
  EXPECT_EQ(a.status, 413);
  EXPECT_EQ(errorCode(a), "too_large");
}

TEST_F(HttpServerTest, AuthDecidesTheTenant) {
  HttpServerOptions options;
  options.clients = {{"tok-a", "team-a", {"team-a"}, false}, {"tok-admin", "ops", {}, true}};
  start(options);
  const std::string body = R"({"context": ")" + Digest::sha256Of("c").toString() + R"("})";
  HttpAnswer none = post("/v1/builds", body);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(errorCode(none), "unauthenticated");
  EXPECT_EQ(none.headers["www-authenticate"].rfind("Bearer", 0), 0u);
  EXPECT_EQ(post("/v1/builds", body, {"Authorization: Bearer tok-b"}).status, 401);
  EXPECT_EQ(post("/v1/builds", body, {"Authorization: Basic dG9rLWE="}).status, 401);
  EXPECT_EQ(get("/v1/workers").status, 401);
  HttpTestClient head(port());
  EXPECT_EQ(head.request("HEAD", "/v1/contexts/" + Digest::sha256Of("c").toString()).status, 401);
  EXPECT_FALSE(service_.last_request);

  ASSERT_EQ(post("/v1/builds", body, {"Authorization: Bearer tok-a"}).status, 202);
  EXPECT_EQ(service_.last_caller.tenant, "team-a");
  EXPECT_EQ(service_.last_caller.namespaces, std::vector<std::string>{"team-a"});
  EXPECT_FALSE(service_.last_caller.any_namespace);
  EXPECT_FALSE(service_.last_caller.may_push_library);
  ASSERT_EQ(post("/v1/builds", body, {"Authorization: Bearer tok-admin"}).status, 202);
  EXPECT_EQ(service_.last_caller.tenant, "ops");
  EXPECT_TRUE(service_.last_caller.may_push_library);

  // Probes and metrics need no token.
  EXPECT_EQ(get("/healthz").status, 200);
  EXPECT_EQ(get("/readyz").status, 200);
  EXPECT_EQ(get("/metrics").status, 200);
}

TEST_F(HttpServerTest, ATokenSeesAndCancelsOnlyItsOwnTenantsBuildsAdminsSeeAll) {
  HttpServerOptions options;
  options.clients = {{"tok-a", "team-a", {"team-a"}, false},
                     {"tok-b", "team-b", {"team-b"}, false},
                     {"tok-admin", "ops", {}, true}};
  start(options);
  const std::string body = R"({"context": ")" + Digest::sha256Of("c").toString() + R"("})";
  HttpAnswer submitted = post("/v1/builds", body, {"Authorization: Bearer tok-a"});
  ASSERT_EQ(submitted.status, 202);
  const std::string id = nlohmann::json::parse(submitted.body)["id"];
  const std::vector<std::string> a = {"Authorization: Bearer tok-a"};
  const std::vector<std::string> b = {"Authorization: Bearer tok-b"};
  const std::vector<std::string> admin = {"Authorization: Bearer tok-admin"};

  EXPECT_EQ(get("/v1/builds/" + id, a).status, 200);
  EXPECT_EQ(get("/v1/builds/" + id, admin).status, 200);
  // Team b: the build does not exist, for every route of one build.
  for (const std::string& path :
       {"/v1/builds/" + id, "/v1/builds/" + id + "/events", "/v1/builds/" + id + "/export"}) {
    HttpAnswer other = get(path, b);
    EXPECT_EQ(other.status, 404) << path;
    EXPECT_EQ(errorCode(other), "not_found") << path;
    EXPECT_NE(other.body.find("build " + id + " not found"), std::string::npos) << other.body;
  }
  EXPECT_EQ(post("/v1/builds/" + id + "/cancel", "", b).status, 404);
  EXPECT_NE(service_.getBuild(id)->value().state, BuildState::kCancelled);
  EXPECT_EQ(post("/v1/builds/" + id + "/cancel", "", a).status, 202);

  // Listing: scoped to the caller's tenant; asking for another tenant is refused by name.
  ASSERT_EQ(get("/v1/builds", b).status, 200);
  EXPECT_EQ(service_.last_list->tenant, "team-b");
  HttpAnswer foreign = get("/v1/builds?tenant=team-a", b);
  EXPECT_EQ(foreign.status, 403);
  EXPECT_NE(foreign.body.find("team-b"), std::string::npos) << foreign.body;
  ASSERT_EQ(get("/v1/builds?tenant=team-a", admin).status, 200);
  EXPECT_EQ(service_.last_list->tenant, "team-a");
  ASSERT_EQ(get("/v1/builds", admin).status, 200);
  EXPECT_EQ(service_.last_list->tenant, "");
}

BuildRecord sampleBuild() {
  BuildRecord b;
  b.id = "b-20261128-0001";
  b.tenant = "default";
  b.state = BuildState::kSucceeded;
  b.request.context_digest = Digest::sha256Of("ctx");
  b.request.dockerfile_path = "Dockerfile";
  b.created_unix_ms = 1000;
  b.started_unix_ms = 1100;
  b.finished_unix_ms = 1600;
  StepRecord from;
  from.index = 0;
  from.stage = "build";
  from.instruction = "FROM busybox@sha256:" + std::string(64, 'a');
  from.state = StepState::kCached;
  from.cached = true;
  from.key = Digest::sha256Of("k0");
  StepRecord run;
  run.index = 1;
  run.stage = "build";
  run.instruction = "RUN make";
  run.kind = InstructionKind::kRun;
  run.state = StepState::kDone;
  run.key = Digest::sha256Of("k1");
  run.job_id = "j-1";
  run.worker = "w1";
  run.queued_unix_ms = 1200;
  run.started_unix_ms = 1250;
  run.finished_unix_ms = 1500;
  run.layer = LayerDescriptor{"application/vnd.oci.image.layer.v1.tar+gzip",
                              Digest::sha256Of("layer"), 123};
  run.diff_id = Digest::sha256Of("diff");
  StepRecord env;
  env.index = 2;
  env.stage = "build";
  env.instruction = "ENV A=b";
  env.state = StepState::kDone;
  b.steps = {from, run, env};
  b.manifest_digest = Digest::sha256Of("manifest");
  b.config_digest = Digest::sha256Of("config");
  return b;
}

TEST_F(HttpServerTest, BuildJsonShape) {
  service_.putBuild(sampleBuild());
  HttpAnswer a = get("/v1/builds/b-20261128-0001");
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.headers["content-type"], "application/json");
  json b = parse(a);
  EXPECT_EQ(b["id"], "b-20261128-0001");
  EXPECT_EQ(b["state"], "succeeded");
  EXPECT_EQ(b["created_ms"], 1000);
  EXPECT_EQ(b["duration_ms"], 500);
  EXPECT_EQ(b["cached_steps"], 1);
  EXPECT_EQ(b["total_steps"], 3);
  EXPECT_EQ(b["manifest_digest"], Digest::sha256Of("manifest").toString());
  EXPECT_EQ(b["request"]["context"], Digest::sha256Of("ctx").toString());
  ASSERT_EQ(b["steps"].size(), 3u);
  const json& s0 = b["steps"][0];
  EXPECT_EQ(s0["kind"], "FROM");
  EXPECT_EQ(s0["state"], "cached");
  EXPECT_EQ(s0["cached"], true);
  EXPECT_TRUE(s0["layer"].is_null());
  const json& s1 = b["steps"][1];
  for (const char* field :
       {"index", "stage", "instruction", "kind", "state", "cached", "key", "job", "worker",
        "queued_ms", "started_ms", "finished_ms", "duration_ms", "layer", "diff_id", "error"}) {
    EXPECT_TRUE(s1.contains(field)) << field;
  }
  EXPECT_EQ(s1["kind"], "RUN");
  EXPECT_EQ(s1["job"], "j-1");
  EXPECT_EQ(s1["worker"], "w1");
  EXPECT_EQ(s1["duration_ms"], 250);
  EXPECT_EQ(s1["layer"]["digest"], Digest::sha256Of("layer").toString());
  EXPECT_EQ(s1["layer"]["size"], 123);
  EXPECT_EQ(s1["diff_id"], Digest::sha256Of("diff").toString());
  EXPECT_EQ(b["steps"][2]["kind"], "ENV");

  EXPECT_EQ(get("/v1/builds/nope").status, 404);
  EXPECT_EQ(errorCode(get("/v1/builds/nope")), "not_found");
}

TEST_F(HttpServerTest, ListBuildsPassesQueryAndOmitsSteps) {
  service_.putBuild(sampleBuild());
  HttpAnswer a = get("/v1/builds?tenant=team%2Da&limit=5&before_ms=99");
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_TRUE(service_.last_list);
  EXPECT_EQ(service_.last_list->tenant, "team-a");
  EXPECT_EQ(service_.last_list->limit, 5u);
  EXPECT_EQ(service_.last_list->created_before_unix_ms, 99);
  json j = parse(a);
  ASSERT_EQ(j["builds"].size(), 1u);
  EXPECT_FALSE(j["builds"][0].contains("steps"));
  EXPECT_EQ(j["builds"][0]["total_steps"], 3);
  EXPECT_EQ(get("/v1/builds?limit=-1").status, 400);
  EXPECT_EQ(get("/v1/builds?limit=abc").status, 400);
  EXPECT_EQ(get("/v1/builds?tenant=%zz").status, 400);
}

TEST_F(HttpServerTest, CancelAnswers202Then409) {
  BuildRecord b = sampleBuild();
  b.state = BuildState::kRunning;
  service_.putBuild(b);
  HttpAnswer a = post("/v1/builds/" + b.id + "/cancel", "");
  EXPECT_EQ(a.status, 202) << a.body;
  EXPECT_EQ(parse(a)["state"], "cancelled");
  HttpAnswer again = post("/v1/builds/" + b.id + "/cancel", "");
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(errorCode(again), "failed_precondition");
  EXPECT_EQ(post("/v1/builds/nope/cancel", "").status, 404);
}

TEST_F(HttpServerTest, EventsStreamAsTheyAreAppended) {
  auto log = service_.addLog("b-1");
  HttpTestClient c(port());
  ASSERT_TRUE(c.sendRequest("GET", "/v1/builds/b-1/events"));
  HttpAnswer head = c.readHead();
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-type"], "application/x-ndjson");
  EXPECT_EQ(head.headers["transfer-encoding"], "chunked");
  // The first event arrives while the build is still going.
  log->append({{"type", "build"}, {"state", "running"}, {"failure_reason", ""}});
  std::string chunk;
  ASSERT_TRUE(c.readChunk(&chunk));
  EXPECT_EQ(json::parse(chunk)["seq"], 0);
  // Later ones from another thread, then the log closes and the response ends.
  std::thread driver([log] {
    for (int i = 0; i < 20; ++i) log->append({{"type", "message"}, {"text", std::to_string(i)}});
    log->append({{"type", "build"}, {"state", "succeeded"}, {"failure_reason", ""}});
    log->close();
  });
  std::vector<json> events;
  while (c.readChunk(&chunk) && !chunk.empty()) {
    std::istringstream lines(chunk);
    for (std::string line; std::getline(lines, line);) events.push_back(json::parse(line));
  }
  driver.join();
  ASSERT_EQ(events.size(), 21u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i]["seq"], i + 1);
  EXPECT_EQ(events.back()["state"], "succeeded");
  // The connection is still usable after the stream ended.
  EXPECT_EQ(c.request("GET", "/healthz").status, 200);
}

TEST_F(HttpServerTest, EventsFromResumes) {
  auto log = service_.addLog("b-1");
  for (int i = 0; i < 5; ++i) log->append({{"type", "message"}, {"text", std::to_string(i)}});
  log->close();
  HttpAnswer a = get("/v1/builds/b-1/events?from=3");
  ASSERT_EQ(a.status, 200);
  std::istringstream lines(a.body);
  std::vector<int> seqs;
  for (std::string line; std::getline(lines, line);) seqs.push_back(json::parse(line)["seq"]);
  EXPECT_EQ(seqs, (std::vector<int>{3, 4}));
  EXPECT_EQ(get("/v1/builds/b-1/events?from=x").status, 400);
  EXPECT_EQ(get("/v1/builds/missing/events").status, 404);
}

TEST_F(HttpServerTest, EventsOverHttp10EndByClosing) {
  auto log = service_.addLog("b-1");
  log->append({{"type", "message"}, {"text", "a"}});
  log->close();
  HttpTestClient c(port());
  ASSERT_TRUE(c.send("GET /v1/builds/b-1/events HTTP/1.0\r\n\r\n"));
  HttpAnswer a = c.read();
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.headers.count("transfer-encoding"), 0u);
  EXPECT_EQ(json::parse(a.body)["text"], "a");
}

TEST_F(HttpServerTest, StopEndsOpenEventStreams) {
  auto log = service_.addLog("b-1");  // never closed
  HttpTestClient c(port());
  ASSERT_TRUE(c.sendRequest("GET", "/v1/builds/b-1/events"));
  ASSERT_EQ(c.readHead().status, 200);
  // A second stream whose client goes away: its thread must notice and end.
  {
    HttpTestClient gone(port());
    ASSERT_TRUE(gone.sendRequest("GET", "/v1/builds/b-1/events"));
    ASSERT_EQ(gone.readHead().status, 200);
  }
  auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(c.closedByPeer());
}

TEST_F(HttpServerTest, ExportStreamsTheFile) {
  std::string tarball(200'000, '\0');
  for (size_t i = 0; i < tarball.size(); ++i) tarball[i] = static_cast<char>(i * 7);
  auto path = dir_.write("export.tar", tarball);
  service_.putExport("b-1", path.string());
  HttpAnswer a = get("/v1/builds/b-1/export");
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.headers["content-type"], "application/x-tar");
  EXPECT_EQ(a.body, tarball);
  EXPECT_EQ(get("/v1/builds/b-2/export").status, 404);
}

TEST_F(HttpServerTest, FarmRoutes) {
  json w = parse(get("/v1/workers"));
  ASSERT_EQ(w["workers"].size(), 1u);
  EXPECT_EQ(w["workers"][0]["id"], "w1");
  EXPECT_EQ(w["workers"][0]["slots"], 4);
  EXPECT_EQ(w["workers"][0]["held_layers"], 12);
  json s = parse(get("/v1/cache/stats"));
  EXPECT_EQ(s["entries"], 3);
  EXPECT_EQ(s["by_kind"]["RUN"]["hits"], 5);
  EXPECT_EQ(s["by_kind"]["COPY"]["entries"], 1);
  EXPECT_EQ(s["lookup_hits"], 7);

  ImageRecord image;
  image.manifest_digest = Digest::sha256Of("m");
  image.references = {"127.0.0.1:5000/team/app:1"};
  image.build_id = "b-1";
  image.history = {{10, "FROM busybox", "", true, 0}, {20, "RUN make", "buildkit", false, 77}};
  service_.putImage("127.0.0.1:5000/team/app:1", image);
  HttpAnswer h = get("/v1/images/history?ref=127.0.0.1%3A5000%2Fteam%2Fapp%3A1");
  ASSERT_EQ(h.status, 200) << h.body;
  json hj = parse(h);
  EXPECT_EQ(hj["image"]["build_id"], "b-1");
  ASSERT_EQ(hj["history"].size(), 2u);
  EXPECT_EQ(hj["history"][0]["created_by"], "FROM busybox");  // oldest first
  EXPECT_EQ(hj["history"][1]["size"], 77);
  EXPECT_EQ(get("/v1/images/history?ref=other").status, 404);
  EXPECT_EQ(get("/v1/images/history").status, 400);
}

TEST_F(HttpServerTest, UnknownPathAndWrongMethod) {
  HttpAnswer a = get("/v2/builds");
  EXPECT_EQ(a.status, 404);
  EXPECT_EQ(errorCode(a), "not_found");
  EXPECT_EQ(get("/v1/builds/x/y/z").status, 404);
  HttpTestClient c(port());
  HttpAnswer d = c.request("DELETE", "/v1/builds");
  EXPECT_EQ(d.status, 405);
  EXPECT_EQ(d.headers["allow"], "GET, HEAD, POST");
  EXPECT_EQ(c.request("GET", "/v1/builds/x/cancel").status, 405);
  EXPECT_EQ(c.request("POST", "/v1/workers").status, 405);
}

TEST_F(HttpServerTest, MetricsAreValidPrometheusText) {
  get("/healthz");
  get("/nope");
  HttpAnswer m = get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(m.body.find("layerfarm_http_requests_total{code=\"2xx\"}"), std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("layerfarm_http_requests_total{code=\"4xx\"}"), std::string::npos);
  // Every sample line is `name{labels} value`.
  std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEInfa]+$)");
  std::istringstream lines(m.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
  }
  if (lf::testing::runShell("command -v promtool").code != 0) {
    GTEST_SKIP() << "promtool not installed: checked the text format by regex only";
  }
  auto file = dir_.write("metrics.txt", m.body);
  auto check = lf::testing::runShell("promtool check metrics < " + file.string());
  EXPECT_EQ(check.code, 0) << check.text;
}

TEST_F(HttpServerTest, GarbageDoesNotKillTheServer) {
  const std::vector<std::string> garbage = {
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello\r\n\r\n",
      "GET\r\n\r\n",
      "GET /v1/builds HTTP/9.9\r\n\r\n",
      "GET /v1/builds HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
      "GET /v1/builds HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "GET /v1/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET http://evil/v1/builds HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /v1/contexts/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /v1/builds HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(64 << 10, 'a') + "\r\n\r\n",
  };
  for (const std::string& g : garbage) {
    HttpTestClient c(port(), 5000);
    c.send(g);
    HttpAnswer a = c.read();
    // Either an error answer or a closed connection, never a 2xx or a crash.
    EXPECT_TRUE(a.status == 0 || a.status >= 400) << a.status << " for " << g.substr(0, 40);
  }
  // A connection that sends half a request and hangs up.
  {
    HttpTestClient c(port());
    c.send("PUT /v1/contexts/" + Digest::sha256Of("x").toString() +
           " HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
  }
  HttpAnswer header = [&] {
    HttpTestClient c(port());
    c.send("GET /healthz HTTP/1.1\r\nX-Big: " + std::string(20 << 10, 'a') + "\r\n\r\n");
    return c.read();
  }();
  EXPECT_EQ(header.status, 431);
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitGet503) {
  HttpServerOptions options;
  options.max_connections = 2;
  start(options);
  HttpTestClient a(port()), b(port());
  ASSERT_EQ(a.request("GET", "/healthz").status, 200);
  ASSERT_EQ(b.request("GET", "/healthz").status, 200);
  HttpTestClient c(port());
  EXPECT_EQ(c.read().status, 503);
  a.close();
  b.close();
  // The closed connections' slots come back (their threads end when they see EOF).
  bool served = false;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       !served && std::chrono::steady_clock::now() < deadline;) {
    served = get("/healthz").status == 200;
  }
  EXPECT_TRUE(served);
}

}  // namespace
}  // namespace lf::coordinator
