// BuildManager end to end against a real StateStore (RocksDB in a temp dir), a real directory
// blob store, real context tars, the real planner, step specs and image assembly; jobs "run" in
// FakeJobBroker, which writes real layer blobs. FROM scratch keeps the registry out.

#include "coordinator/builds/build_manager.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "common/blob/directory_blob_store.h"
#include "common/context/context_scanner.h"
#include "common/context/context_tar.h"
#include "coordinator/metrics/coordinator_metrics.h"
#include "tests/coordinator/builds/fake_job_broker.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

using lf::testing::TempDir;
using testing::FakeJobBroker;
using namespace std::chrono_literals;

// Reads a log to its end (closed) or the deadline.
std::vector<nlohmann::json> readAll(const BuildEventLog& log, std::chrono::seconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<nlohmann::json> events;
  size_t next = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto slice = log.read(next, deadline);
    for (const auto& e : slice.events) events.push_back(nlohmann::json::parse(e));
    next = slice.next;
    if (slice.closed) break;
  }
  return events;
}

std::vector<nlohmann::json> ofType(const std::vector<nlohmann::json>& events,
                                   std::string_view type) {
  std::vector<nlohmann::json> out;
  for (const auto& e : events) {
    if (e["type"] == type) out.push_back(e);
  }
  return out;
}

// Step states in event order for one step index.
std::vector<std::string> stepStates(const std::vector<nlohmann::json>& events, int index) {
  std::vector<std::string> states;
  for (const auto& e : ofType(events, "step")) {
    if (e["index"] == index) states.push_back(e["state"]);
  }
  return states;
}

class BuildManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto blobs = blob::DirectoryBlobStore::open(dir_ / "blobs");
    ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
    blobs_ = std::move(*blobs);
    openState();
  }
  void TearDown() override { shutdown(); }

  // In the coordinator's order: the manager stops (no more calls into the broker), the broker
  // stops (no more listener calls), then the manager goes.
  void shutdown() {
    if (manager_) manager_->stop();
    broker_.reset();
    manager_.reset();
  }

  void openState() {
    auto state = StateStore::open({.dir = dir_ / "state", .sync_writes = false});
    ASSERT_TRUE(state.isOk()) << state.status().toString();
    state_ = std::move(*state);
  }

  void start(bool auto_run, int max_builds = 8) {
    shutdown();
    broker_ = std::make_unique<FakeJobBroker>(*blobs_, auto_run);
    BuildManagerOptions options;
    options.data_dir = dir_.path();
    options.max_concurrent_builds = max_builds;
    manager_ = std::make_unique<BuildManager>(
        BuildManagerDeps{*state_, *blobs_, nullptr, *broker_, registry_.get(), &metrics_}, options);
  }

  // Writes the files into a fresh context dir, uploads its tar, returns its digest.
  Digest context(const std::map<std::string, std::string>& files) {
    TempDir ctx;
    for (const auto& [path, content] : files) ctx.write(path, content);
    auto snapshot = context::scanContext(ctx.path(), context::ScanOptions{});
    EXPECT_TRUE(snapshot.isOk()) << snapshot.status().toString();
    auto info = context::writeContextTarToStore(ctx.path(), *snapshot, *blobs_);
    EXPECT_TRUE(info.isOk()) << info.status().toString();
    EXPECT_TRUE(manager_->addContext(info->digest, info->size).isOk());
    return info->digest;
  }

  BuildRequest request(const Digest& ctx) {
    BuildRequest r;
    r.context_digest = ctx;
    r.tags = {"127.0.0.1:5000/team/app:1"};
    r.build_args = {{"SOURCE_DATE_EPOCH", "0"}};
    return r;
  }

  BuildRecord submitOk(BuildRequest r, Caller caller = {}) {
    auto record = manager_->submit(caller, std::move(r));
    EXPECT_TRUE(record.isOk()) << record.status().toString();
    return record.isOk() ? *record : BuildRecord{};
  }

  // Follows the build to its end; returns its events and the final record.
  std::pair<std::vector<nlohmann::json>, BuildRecord> follow(const std::string& id) {
    auto log = manager_->events(id);
    EXPECT_TRUE(log.isOk());
    auto events = readAll(**log);
    auto record = manager_->getBuild(id);
    EXPECT_TRUE(record.isOk() && record->has_value());
    return {events, **record};
  }

  TempDir dir_;
  std::unique_ptr<blob::DirectoryBlobStore> blobs_;
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<registry::RegistryClient> registry_;
  std::unique_ptr<FakeJobBroker> broker_;
  CoordinatorMetrics metrics_;
  std::unique_ptr<BuildManager> manager_;
};

bool hasLine(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

const std::map<std::string, std::string> kSimple = {
    {"Dockerfile",
     "FROM scratch\nCOPY hello.txt /hello.txt\nENV A=b\nRUN echo hi > /x\nCMD [\"/x\"]\n"},
    {"hello.txt", "hello\n"}};

TEST_F(BuildManagerTest, RunsABuildToAnImageWithStepsAndEvents) {
  start(/*auto_run=*/true);
  const Digest ctx = context(kSimple);
  BuildRecord submitted = submitOk(request(ctx));
  EXPECT_EQ(submitted.state, BuildState::kQueued);
  EXPECT_TRUE(submitted.id.starts_with("b-")) << submitted.id;

  auto [events, record] = follow(submitted.id);
  ASSERT_EQ(record.state, BuildState::kSucceeded) << record.failure_reason;
  ASSERT_EQ(record.steps.size(), 5u);
  EXPECT_EQ(record.steps[0].instruction, "FROM scratch");
  EXPECT_EQ(record.steps[0].state, StepState::kCached);
  EXPECT_EQ(record.steps[1].kind, InstructionKind::kCopy);
  EXPECT_EQ(record.steps[1].state, StepState::kDone);
  EXPECT_FALSE(record.steps[1].cached);
  EXPECT_EQ(record.steps[1].worker, "w1");
  EXPECT_TRUE(record.steps[1].layer.has_value());
  EXPECT_EQ(record.steps[2].state, StepState::kCached);  // ENV: metadata
  EXPECT_EQ(record.steps[3].kind, InstructionKind::kRun);
  EXPECT_EQ(record.steps[3].state, StepState::kDone);
  EXPECT_FALSE(record.manifest_digest.empty());
  EXPECT_EQ(broker_->submitted().size(), 2u);

  // build: queued -> running -> succeeded, the last event.
  std::vector<std::string> states;
  for (const auto& e : ofType(events, "build")) states.push_back(e["state"]);
  EXPECT_EQ(states, (std::vector<std::string>{"queued", "running", "succeeded"}));
  EXPECT_EQ(events.back()["type"], "build");
  ASSERT_EQ(ofType(events, "plan").size(), 1u);
  EXPECT_EQ(ofType(events, "plan")[0]["steps"].size(), 5u);
  EXPECT_EQ(stepStates(events, 3), (std::vector<std::string>{"queued", "running", "done"}));
  auto logs = ofType(events, "log");
  ASSERT_FALSE(logs.empty());
  EXPECT_EQ(logs[0]["index"], 1);
  auto result = ofType(events, "result");
  ASSERT_EQ(result.size(), 1u);
  EXPECT_EQ(result[0]["manifest_digest"], record.manifest_digest.toString());
  EXPECT_EQ(result[0]["total_steps"], 5);
  EXPECT_EQ(result[0]["cached_steps"], 3);
  for (size_t i = 1; i < events.size(); ++i) EXPECT_EQ(events[i]["seq"], i);

  // The image is stored with its history and found by its tag.
  auto manifest = blobs_->has(record.manifest_digest);
  EXPECT_TRUE(manifest.isOk() && *manifest);
  auto image = manager_->image("127.0.0.1:5000/team/app:1");
  ASSERT_TRUE(image.isOk() && image->has_value());
  EXPECT_EQ((*image)->manifest_digest, record.manifest_digest);
  EXPECT_EQ((*image)->history.size(), 4u);  // COPY, ENV, RUN, CMD
  // The record in the store matches what the manager answered.
  auto stored = state_->getBuild(submitted.id);
  ASSERT_TRUE(stored.isOk() && stored->has_value());
  EXPECT_EQ(**stored, record);
}

TEST_F(BuildManagerTest, ARebuildIsAllCachedWithoutJobs) {
  start(/*auto_run=*/true);
  const Digest ctx = context(kSimple);
  auto first = follow(submitOk(request(ctx)).id).second;
  ASSERT_EQ(first.state, BuildState::kSucceeded) << first.failure_reason;
  const size_t submits = broker_->submitted().size();

  auto [events, second] = follow(submitOk(request(ctx)).id);
  ASSERT_EQ(second.state, BuildState::kSucceeded) << second.failure_reason;
  EXPECT_EQ(broker_->submitted().size(), submits);  // no job at all
  for (const auto& step : second.steps) {
    EXPECT_EQ(step.state, StepState::kCached) << step.instruction;
    EXPECT_TRUE(step.cached);
  }
  EXPECT_EQ(second.manifest_digest, first.manifest_digest);  // SOURCE_DATE_EPOCH=0 both times
  auto summary = manager_->cacheSummary();
  ASSERT_TRUE(summary.isOk());
  EXPECT_EQ(summary->stored.entries, 2u);
  EXPECT_EQ(summary->lookups, 4u);
  EXPECT_EQ(summary->lookup_hits, 2u);
  const std::string metrics = metrics_.serialize();
  EXPECT_TRUE(hasLine(metrics, "layerfarm_cache_lookups_total{kind=\"RUN\"} 2")) << metrics;
  EXPECT_TRUE(hasLine(metrics, "layerfarm_cache_hits_total{kind=\"COPY\"} 1")) << metrics;
  EXPECT_TRUE(hasLine(metrics, "layerfarm_builds_total{state=\"succeeded\"} 2")) << metrics;
  EXPECT_TRUE(hasLine(metrics, "layerfarm_builds_running 0")) << metrics;

  // no_cache runs the layer steps again.
  BuildRequest again = request(ctx);
  again.no_cache = true;
  auto third = follow(submitOk(again).id).second;
  EXPECT_EQ(third.state, BuildState::kSucceeded) << third.failure_reason;
  EXPECT_EQ(broker_->submitted().size(), submits + 2);
}

// Two independent stages: both jobs are submitted before either finishes.
const std::map<std::string, std::string> kTwoStages = {
    {"Dockerfile",
     "FROM scratch AS a\nRUN build-a\n"
     "FROM scratch AS b\nRUN build-b\n"
     "FROM scratch\nCOPY --from=a /out /a\nCOPY --from=b /out /b\n"}};

TEST_F(BuildManagerTest, IndependentStagesRunInParallel) {
  start(/*auto_run=*/false);
  const Digest ctx = context(kTwoStages);
  BuildRecord build = submitOk(request(ctx));
  ASSERT_TRUE(broker_->waitForSubmits(2));
  auto pending = broker_->pendingJobs();
  ASSERT_EQ(pending.size(), 2u);  // a and b, neither finished
  EXPECT_EQ(broker_->submitted().size(), 2u);
  broker_->setAutoRun(true);
  auto [events, record] = follow(build.id);
  ASSERT_EQ(record.state, BuildState::kSucceeded) << record.failure_reason;
  EXPECT_EQ(broker_->submitted().size(), 4u);
  // COPY --from=a started from a's chain.
  auto copies = broker_->submitted();
  EXPECT_EQ(copies[2].spec.kind(), layerfarm::v1::STEP_KIND_COPY);
  EXPECT_EQ(copies[2].spec.copy().from().layers_size(), 1);
}

const std::map<std::string, std::string> kFailing = {
    {"Dockerfile",
     "FROM scratch AS a\nRUN exit 1\n"
     "FROM scratch AS b\nRUN sleep 100\n"
     "FROM scratch\nCOPY --from=a /out /a\nCOPY --from=b /out /b\n"}};

TEST_F(BuildManagerTest, AFailingStepFailsTheBuildAndCancelsTheRest) {
  start(/*auto_run=*/false);
  const Digest ctx = context(kFailing);
  BuildRecord build = submitOk(request(ctx));
  ASSERT_TRUE(broker_->waitForSubmits(2));
  std::string failing;
  for (const auto& id : broker_->pendingJobs()) {
    if (broker_->commandOf(id).find("exit 1") != std::string::npos) failing = id;
  }
  ASSERT_FALSE(failing.empty());
  broker_->run(failing);  // fails: its command has "exit 1"
  auto [events, record] = follow(build.id);
  ASSERT_EQ(record.state, BuildState::kFailed);
  EXPECT_NE(record.failure_reason.find("exit status 1: boom"), std::string::npos)
      << record.failure_reason;
  EXPECT_NE(record.failure_reason.find("[a 2/2] RUN /bin/sh -c exit 1"), std::string::npos)
      << record.failure_reason;
  EXPECT_EQ(record.steps[1].state, StepState::kFailed);
  EXPECT_EQ(record.steps[1].error, "exit status 1: boom");
  EXPECT_EQ(record.steps[3].state, StepState::kCancelled);  // RUN sleep 100
  EXPECT_EQ(record.steps[5].state, StepState::kCancelled);  // the COPYs never ran
  EXPECT_EQ(broker_->cancelledBuilds(), std::vector<std::string>{build.id});
  EXPECT_TRUE(broker_->pendingJobs().empty());
  EXPECT_EQ(events.back()["state"], "failed");
  EXPECT_EQ(events.back()["failure_reason"], record.failure_reason);
  EXPECT_TRUE(ofType(events, "result").empty());
}

TEST_F(BuildManagerTest, CancelEndsTheBuildAndItsJobs) {
  start(/*auto_run=*/false);
  const Digest ctx = context(kSimple);
  BuildRecord build = submitOk(request(ctx));
  ASSERT_TRUE(broker_->waitForSubmits(1));
  auto cancelled = manager_->cancel(build.id);
  ASSERT_TRUE(cancelled.isOk()) << cancelled.status().toString();
  EXPECT_EQ(cancelled->state, BuildState::kCancelled);
  auto [events, record] = follow(build.id);
  EXPECT_EQ(record.state, BuildState::kCancelled);
  EXPECT_EQ(record.steps[1].state, StepState::kCancelled);
  EXPECT_EQ(record.steps[3].state, StepState::kCancelled);
  EXPECT_EQ(broker_->cancelledBuilds(), std::vector<std::string>{build.id});
  EXPECT_EQ(events.back()["state"], "cancelled");
  EXPECT_EQ(manager_->cancel(build.id).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->cancel("b-nope").status().code(), StatusCode::kNotFound);
}

TEST_F(BuildManagerTest, ARequeuedJobGoesBackToQueuedThenRuns) {
  start(/*auto_run=*/false);
  const Digest ctx = context(kSimple);
  BuildRecord build = submitOk(request(ctx));
  ASSERT_TRUE(broker_->waitForSubmits(1));
  broker_->requeue(broker_->pendingJobs().at(0));
  broker_->setAutoRun(true);
  auto [events, record] = follow(build.id);
  ASSERT_EQ(record.state, BuildState::kSucceeded) << record.failure_reason;
  EXPECT_EQ(stepStates(events, 1),
            (std::vector<std::string>{"queued", "running", "queued", "running", "done"}));
  bool told = false;
  for (const auto& e : ofType(events, "message")) {
    told = told || e["text"].get<std::string>().find("worker w1 lost") != std::string::npos;
  }
  EXPECT_TRUE(told);
}

TEST_F(BuildManagerTest, CancelWhileQueuedForASlot) {
  start(/*auto_run=*/false, /*max_builds=*/1);
  const Digest ctx = context(kSimple);
  BuildRecord first = submitOk(request(ctx));
  ASSERT_TRUE(broker_->waitForSubmits(1));
  BuildRecord second = submitOk(request(ctx));
  auto now = manager_->getBuild(second.id);
  ASSERT_TRUE(now.isOk() && now->has_value());
  EXPECT_EQ((*now)->state, BuildState::kQueued);  // waits for the only slot
  auto cancelled = manager_->cancel(second.id);
  ASSERT_TRUE(cancelled.isOk());
  EXPECT_EQ(cancelled->state, BuildState::kCancelled);
  broker_->setAutoRun(true);
  EXPECT_EQ(follow(first.id).second.state, BuildState::kSucceeded);
  EXPECT_TRUE(hasLine(metrics_.serialize(), "layerfarm_builds_running 0"));
}

TEST_F(BuildManagerTest, SubmitChecksTagsPushRightsAndTheContext) {
  auto client = registry::RegistryClient::create({});
  ASSERT_TRUE(client.isOk());
  registry_ = std::move(*client);
  start(/*auto_run=*/false);
  const Digest ctx = context(kSimple);
  Caller team{.tenant = "team", .namespaces = {"team"}, .any_namespace = false};

  BuildRequest bad = request(ctx);
  bad.tags = {"127.0.0.1:5000/UPPER/app"};
  EXPECT_EQ(manager_->submit(team, bad).status().code(), StatusCode::kInvalidArgument);

  BuildRequest foreign = request(ctx);
  foreign.tags = {"127.0.0.1:5000/other/app:1"};
  foreign.push = true;
  auto refused = manager_->submit(team, foreign);
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("other"), std::string::npos);

  BuildRequest library = request(ctx);
  library.tags = {"app:1"};  // docker.io/library/app
  library.push = true;
  EXPECT_EQ(manager_->submit(team, library).status().code(), StatusCode::kPermissionDenied);
  library.tags = {"127.0.0.1:5000/app:1"};  // pushed to library/app as well
  EXPECT_EQ(manager_->submit(team, library).status().code(), StatusCode::kPermissionDenied);
  Caller anyone;  // no client tokens: anything but library/
  EXPECT_EQ(manager_->submit(anyone, library).status().code(), StatusCode::kPermissionDenied);
  Caller admin{.tenant = "ops", .may_push_library = true};
  EXPECT_TRUE(manager_->submit(admin, library).isOk());

  BuildRequest own = request(ctx);
  own.push = true;
  EXPECT_TRUE(manager_->submit(team, own).isOk());
  EXPECT_TRUE(manager_->submit(anyone, foreign).isOk());

  BuildRequest unknown = request(ctx);
  unknown.context_digest = Digest::sha256Of("never uploaded");
  EXPECT_EQ(manager_->submit(team, unknown).status().code(), StatusCode::kInvalidArgument);
  BuildRequest output = request(ctx);
  output.output = "type=zip";
  EXPECT_EQ(manager_->submit(team, output).status().code(), StatusCode::kInvalidArgument);
  BuildRequest escape = request(ctx);
  escape.dockerfile_path = "../Dockerfile";
  EXPECT_EQ(manager_->submit(team, escape).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(BuildManagerTest, PlanErrorsAndMissingDockerfilesFailTheBuild) {
  start(/*auto_run=*/true);
  const Digest ctx = context({{"Dockerfile", "FROM scratch\nFORM x\n"},
                              {"image.Dockerfile", "FROM scratch\nCOPY --from=nope /a /b\n"}});
  auto record = follow(submitOk(request(ctx)).id).second;
  EXPECT_EQ(record.state, BuildState::kFailed);
  EXPECT_NE(record.failure_reason.find("Dockerfile:2:1"), std::string::npos)
      << record.failure_reason;

  // No resolver in this test: an image reference fails the build naming it.
  BuildRequest image = request(ctx);
  image.dockerfile_path = "image.Dockerfile";
  record = follow(submitOk(image).id).second;
  EXPECT_EQ(record.state, BuildState::kFailed);
  EXPECT_NE(record.failure_reason.find("nope"), std::string::npos) << record.failure_reason;

  BuildRequest other = request(ctx);
  other.dockerfile_path = "sub/Dockerfile";
  record = follow(submitOk(other).id).second;
  EXPECT_EQ(record.state, BuildState::kFailed);
  EXPECT_NE(record.failure_reason.find("sub/Dockerfile"), std::string::npos)
      << record.failure_reason;
}

TEST_F(BuildManagerTest, ExportWritesATarball) {
  start(/*auto_run=*/true);
  const Digest ctx = context(kSimple);
  BuildRequest r = request(ctx);
  r.output = "type=oci";
  auto record = follow(submitOk(r).id).second;
  ASSERT_EQ(record.state, BuildState::kSucceeded) << record.failure_reason;
  auto path = manager_->exportPath(record.id);
  ASSERT_TRUE(path.isOk()) << path.status().toString();
  EXPECT_GT(std::filesystem::file_size(*path), 1024u);
  EXPECT_EQ(manager_->exportPath("../x").status().code(), StatusCode::kNotFound);

  // The exported image is the distributed one: gzip layers, and the manifest digest the build
  // reports; the layers the steps made are uncompressed tars.
  auto index = lf::testing::runShell("tar -xOf '" + *path + "' index.json");
  ASSERT_EQ(index.code, 0) << index.text;
  auto manifests = nlohmann::json::parse(index.text)["manifests"];
  ASSERT_EQ(manifests.size(), 1u);
  EXPECT_EQ(manifests[0]["digest"], record.manifest_digest.toString());
  auto manifest = lf::testing::runShell("tar -xOf '" + *path + "' blobs/sha256/" +
                                        record.manifest_digest.hex());
  ASSERT_EQ(manifest.code, 0) << manifest.text;
  auto layers = nlohmann::json::parse(manifest.text)["layers"];
  ASSERT_FALSE(layers.empty());
  for (const auto& layer : layers) {
    EXPECT_EQ(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
  }
  for (const auto& step : record.steps) {
    if (step.layer) EXPECT_EQ(step.layer->media_type, "application/vnd.oci.image.layer.v1.tar");
  }
}

TEST_F(BuildManagerTest, ABuildInFlightResumesAfterARestart) {
  start(/*auto_run=*/false);
  const Digest ctx = context({{"Dockerfile", "FROM scratch\nRUN step-one\nRUN step-two\n"}});
  BuildRecord build = submitOk(request(ctx));
  ASSERT_TRUE(broker_->waitForSubmits(1));
  broker_->run(broker_->pendingJobs().at(0));
  ASSERT_TRUE(broker_->waitForSubmits(2));  // step one done, step two submitted
  shutdown();
  state_.reset();

  openState();
  start(/*auto_run=*/true);
  auto report = manager_->recover();
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  ASSERT_EQ(report->builds.size(), 1u);
  auto [events, record] = follow(build.id);
  ASSERT_EQ(record.state, BuildState::kSucceeded) << record.failure_reason;
  EXPECT_EQ(record.steps[1].state, StepState::kCached);  // finished before the restart
  EXPECT_EQ(record.steps[2].state, StepState::kDone);
  EXPECT_EQ(broker_->submitted().size(), 1u);
  EXPECT_EQ(record.created_unix_ms, build.created_unix_ms);

  // A finished build the new coordinator never held: its log is rebuilt from the record.
  start(/*auto_run=*/true);
  auto log = manager_->events(build.id);
  ASSERT_TRUE(log.isOk());
  EXPECT_TRUE((*log)->closed());
  auto rebuilt = readAll(**log);
  ASSERT_EQ(rebuilt.size(), 1 + record.steps.size() + 1);
  EXPECT_EQ(rebuilt.front()["type"], "plan");
  EXPECT_EQ(rebuilt.back()["state"], "succeeded");
  EXPECT_EQ(manager_->events("b-unknown").status().code(), StatusCode::kNotFound);
}

TEST_F(BuildManagerTest, StopMakesItUnready) {
  start(/*auto_run=*/true);
  EXPECT_TRUE(manager_->ready().isOk());
  EXPECT_EQ(manager_->workers().size(), 1u);
  manager_->stop();
  EXPECT_EQ(manager_->ready().code(), StatusCode::kUnavailable);
  EXPECT_EQ(manager_->submit({}, request(Digest::sha256Of("x"))).status().code(),
            StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lf::coordinator
