// StateStore after a crash: a child process writes and dies (_exit or SIGKILL), the parent
// reopens and finds every committed record; recoverRunningBuilds() fails or resumes the builds
// that were running and marks their jobs lost.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "coordinator/state/state_store.h"
#include "tests/coordinator/state/state_test_util.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

using ::lf::coordinator::testing::alwaysPresent;
using ::lf::coordinator::testing::digestOf;
using ::lf::coordinator::testing::makeBuild;
using ::lf::coordinator::testing::makeEntry;

std::unique_ptr<StateStore> openStore(const std::filesystem::path& dir) {
  auto store = StateStore::open({.dir = dir});
  EXPECT_TRUE(store.isOk()) << store.status().toString();
  return store.isOk() ? std::move(store).value() : nullptr;
}

// In the child: opens the store and commits entry i (a cache entry and a finished build, one
// batch) for i = 0, 1, ..., writing i to `ack_fd` after each commit returns. Stops after
// `count` (then _exit(0) without closing the store) or runs until killed when count is 0.
[[noreturn]] void childWriter(const std::filesystem::path& dir, int ack_fd, uint32_t count) {
  auto store = StateStore::open({.dir = dir});
  if (!store.isOk()) {
    _exit(2);
  }
  for (uint32_t i = 0; count == 0 || i < count; ++i) {
    StateStore::Batch batch = (*store)->newBatch();
    batch.putCacheEntry(makeEntry("crash-" + std::to_string(i)));
    batch.putBuild(makeBuild("b-crash-" + std::to_string(i), "team", 1000 + i));
    if (!batch.commit(alwaysPresent()).isOk()) {
      _exit(3);
    }
    if (write(ack_fd, &i, sizeof(i)) != sizeof(i)) {
      _exit(4);
    }
  }
  _exit(0);  // no destructors: the database is not closed, as in a crash
}

// Reads acks until `want` arrived or the pipe closes; returns every ack read.
std::set<uint32_t> readAcks(int fd, size_t want) {
  std::set<uint32_t> acks;
  uint32_t i = 0;
  while (want == 0 || acks.size() < want) {
    ssize_t n = read(fd, &i, sizeof(i));
    if (n == -1 && errno == EINTR) {
      continue;
    }
    if (n != sizeof(i)) {
      break;
    }
    acks.insert(i);
  }
  return acks;
}

void expectCommitted(StateStore& store, const std::set<uint32_t>& acks) {
  for (uint32_t i : acks) {
    auto entry = store.lookup(makeEntry("crash-" + std::to_string(i)).key);
    ASSERT_TRUE(entry.isOk()) << entry.status().toString();
    EXPECT_TRUE(entry->has_value()) << "cache entry " << i << " lost";
    auto build = store.getBuild("b-crash-" + std::to_string(i));
    ASSERT_TRUE(build.isOk()) << build.status().toString();
    EXPECT_TRUE(build->has_value()) << "build " << i << " lost";
  }
}

TEST(StateCrashTest, EntriesCommittedBeforeExitSurvive) {
  lf::testing::TempDir dir;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    childWriter(dir / "state", fds[1], 100);
  }
  close(fds[1]);
  std::set<uint32_t> acks = readAcks(fds[0], 0);
  close(fds[0]);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child status " << wstatus;
  ASSERT_EQ(acks.size(), 100u);

  auto store = openStore(dir / "state");
  ASSERT_NE(store, nullptr);
  expectCommitted(*store, acks);
  EXPECT_EQ(*store->countCacheEntries(), 100u);
  EXPECT_EQ(store->listBuilds({.limit = 0})->size(), 100u);
}

TEST(StateCrashTest, EntriesCommittedBeforeSigkillSurvive) {
  lf::testing::TempDir dir;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    childWriter(dir / "state", fds[1], 0);  // writes until killed
  }
  close(fds[1]);
  std::set<uint32_t> acks = readAcks(fds[0], 50);
  ASSERT_EQ(acks.size(), 50u) << "the child stopped early";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL);
  // Commits acknowledged between our last read and the kill are committed too.
  std::set<uint32_t> late = readAcks(fds[0], 0);
  acks.insert(late.begin(), late.end());
  close(fds[0]);

  auto store = openStore(dir / "state");
  ASSERT_NE(store, nullptr);
  expectCommitted(*store, acks);
  // Nothing beyond the acks except possibly the one commit in flight at the kill.
  EXPECT_LE(*store->countCacheEntries(), acks.size() + 1);
}

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = openStore(dir_ / "state");
    ASSERT_NE(store_, nullptr);
    BuildRecord running = makeBuild("b-running", "team", 100, BuildState::kRunning);
    running.started_unix_ms = 110;
    running.steps = {
        StepRecord{.index = 0, .key = digestOf("s0"), .state = StepState::kCached, .cached = true},
        StepRecord{.index = 1,
                   .key = digestOf("s1"),
                   .state = StepState::kDone,
                   .job_id = "j-done",
                   .worker = "w1",
                   .started_unix_ms = 120,
                   .finished_unix_ms = 130,
                   .layer = makeEntry("s1").layer},
        StepRecord{.index = 2,
                   .key = digestOf("s2"),
                   .state = StepState::kRunning,
                   .job_id = "j-running",
                   .worker = "w2",
                   .started_unix_ms = 140},
        StepRecord{.index = 3, .key = digestOf("s3"), .state = StepState::kPending}};
    ASSERT_TRUE(store_->putBuild(running).isOk());
    ASSERT_TRUE(store_->putBuild(makeBuild("b-queued", "team", 200, BuildState::kQueued)).isOk());
    ASSERT_TRUE(store_->putBuild(makeBuild("b-done", "team", 50, BuildState::kSucceeded)).isOk());
    // A build that ran and then finished: its active mark must be gone.
    ASSERT_TRUE(
        store_->putBuild(makeBuild("b-was-running", "team", 60, BuildState::kRunning)).isOk());
    ASSERT_TRUE(
        store_->putBuild(makeBuild("b-was-running", "team", 60, BuildState::kCancelled)).isOk());
    ASSERT_TRUE(store_
                    ->putJob(JobRecord{.id = "j-done",
                                       .key = digestOf("s1"),
                                       .build_ids = {"b-running"},
                                       .state = JobState::kSucceeded})
                    .isOk());
    ASSERT_TRUE(store_
                    ->putJob(JobRecord{.id = "j-running",
                                       .key = digestOf("s2"),
                                       .build_ids = {"b-running"},
                                       .worker = "w2",
                                       .lease_expiry_unix_ms = 999,
                                       .state = JobState::kRunning})
                    .isOk());
    // The coordinator dies here; a new one opens the directory.
    store_.reset();
    store_ = openStore(dir_ / "state");
    ASSERT_NE(store_, nullptr);
  }

  lf::testing::TempDir dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_F(RecoveryTest, FailMarksRunningBuildsFailedWithTheReason) {
  auto report = store_->recoverRunningBuilds(RecoveryAction::kFail, 5000);
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  std::set<std::string> ids;
  for (const BuildRecord& b : report->builds) {
    ids.insert(b.id);
  }
  EXPECT_EQ(ids, (std::set<std::string>{"b-running", "b-queued"}));
  EXPECT_EQ(report->lost_job_ids, std::vector<std::string>{"j-running"});
  EXPECT_TRUE(report->damaged.empty());

  BuildRecord running = store_->getBuild("b-running")->value();
  EXPECT_EQ(running.state, BuildState::kFailed);
  EXPECT_EQ(running.failure_reason, kRestartReason);
  EXPECT_EQ(running.finished_unix_ms, 5000);
  EXPECT_EQ(running.steps[0].state, StepState::kCached);
  EXPECT_EQ(running.steps[1].state, StepState::kDone);
  EXPECT_EQ(running.steps[2].state, StepState::kFailed);
  EXPECT_EQ(running.steps[2].error, kRestartReason);
  EXPECT_EQ(running.steps[3].state, StepState::kCancelled);
  EXPECT_EQ(store_->getBuild("b-queued")->value().state, BuildState::kFailed);
  EXPECT_EQ(store_->getBuild("b-done")->value().state, BuildState::kSucceeded);
  EXPECT_EQ(store_->getBuild("b-was-running")->value().state, BuildState::kCancelled);
  JobRecord lost = store_->getJob("j-running")->value();
  EXPECT_EQ(lost.state, JobState::kLost);
  EXPECT_EQ(lost.finished_unix_ms, 5000);
  EXPECT_EQ(store_->getJob("j-done")->value().state, JobState::kSucceeded);

  // Done once: a second recovery (after another restart) finds nothing to do.
  store_.reset();
  store_ = openStore(dir_ / "state");
  auto again = store_->recoverRunningBuilds(RecoveryAction::kFail, 6000);
  ASSERT_TRUE(again.isOk());
  EXPECT_TRUE(again->builds.empty());
  EXPECT_TRUE(again->lost_job_ids.empty());
  EXPECT_EQ(store_->getBuild("b-running")->value().finished_unix_ms, 5000);
}

TEST_F(RecoveryTest, ResumeKeepsFinishedStepsAndResetsTheOthers) {
  auto report = store_->recoverRunningBuilds(RecoveryAction::kResume, 5000);
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  EXPECT_EQ(report->builds.size(), 2u);
  EXPECT_EQ(report->lost_job_ids, std::vector<std::string>{"j-running"});

  BuildRecord running = store_->getBuild("b-running")->value();
  EXPECT_EQ(running.state, BuildState::kRunning);
  EXPECT_TRUE(running.failure_reason.empty());
  EXPECT_EQ(running.steps[0].state, StepState::kCached);
  EXPECT_EQ(running.steps[1].state, StepState::kDone);
  EXPECT_EQ(running.steps[1].layer, makeEntry("s1").layer);
  EXPECT_EQ(running.steps[2].state, StepState::kPending);
  EXPECT_TRUE(running.steps[2].job_id.empty());
  EXPECT_TRUE(running.steps[2].worker.empty());
  EXPECT_EQ(running.steps[3].state, StepState::kPending);
  EXPECT_EQ(store_->getJob("j-running")->value().state, JobState::kLost);

  // Still unfinished: the next restart finds it again (the coordinator may then fail it).
  auto failed = store_->failBuild("b-running", "gave up after restart", 7000);
  ASSERT_TRUE(failed.isOk());
  EXPECT_EQ(failed->state, BuildState::kFailed);
  EXPECT_EQ(failed->failure_reason, "gave up after restart");
  EXPECT_EQ(failed->steps[3].state, StepState::kCancelled);
  auto again = store_->recoverRunningBuilds(RecoveryAction::kResume, 8000);
  ASSERT_TRUE(again.isOk());
  ASSERT_EQ(again->builds.size(), 1u);
  EXPECT_EQ(again->builds[0].id, "b-queued");
}

TEST_F(RecoveryTest, FailBuildLeavesFinishedBuildsAlone) {
  auto done = store_->failBuild("b-done", "late", 9000);
  ASSERT_TRUE(done.isOk());
  EXPECT_EQ(done->state, BuildState::kSucceeded);
  EXPECT_EQ(store_->failBuild("b-unknown", "x", 1).status().code(), StatusCode::kNotFound);
}

TEST_F(RecoveryTest, DamagedRunningBuildIsReportedNotFatal) {
  ASSERT_TRUE(store_->putRawForTesting("builds", "b-queued", "\x0a").isOk());
  auto report = store_->recoverRunningBuilds(RecoveryAction::kFail, 5000);
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].code(), StatusCode::kDataLoss);
  EXPECT_THAT(report->damaged[0].message(), ::testing::HasSubstr("b-queued"));
  ASSERT_EQ(report->builds.size(), 1u);
  EXPECT_EQ(report->builds[0].id, "b-running");
}

}  // namespace
}  // namespace lf::coordinator
