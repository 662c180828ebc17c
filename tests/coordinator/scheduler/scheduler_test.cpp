// Scheduler policy, one rule per test: dedupe, affinity, load, slots, tenant fairness, leases,
// heartbeats, results, stale attempts, cancels, drain, platforms. Time is explicit; no sleeps.

#include "coordinator/scheduler/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "tests/coordinator/scheduler/scheduler_test_util.h"

namespace lf::coordinator {
namespace {

using layerfarm::v1::STEP_OUTCOME_CANCELLED;
using layerfarm::v1::STEP_OUTCOME_ERROR;
using layerfarm::v1::STEP_OUTCOME_FAILED;
using layerfarm::v1::STEP_OUTCOME_TIMED_OUT;
using ::lf::coordinator::testing::at;
using ::lf::coordinator::testing::keyOf;
using ::lf::coordinator::testing::outcome;
using ::lf::coordinator::testing::request;
using ::lf::coordinator::testing::succeeded;
using ::lf::coordinator::testing::workerInfo;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

class SchedulerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    Status status = scheduler_.checkInvariants();
    EXPECT_TRUE(status.isOk()) << status.toString();
  }

  std::string submit(JobRequest req, int64_t now_ms = 0) {
    auto outcome = scheduler_.submit(std::move(req), at(now_ms));
    EXPECT_TRUE(outcome.isOk()) << outcome.status().toString();
    return outcome.isOk() ? outcome->job_id : std::string();
  }

  void addWorker(WorkerInfo info, int64_t now_ms = 0) {
    Status status = scheduler_.addWorker(std::move(info), at(now_ms));
    ASSERT_TRUE(status.isOk()) << status.toString();
  }

  // job id -> worker id of the assignments made now.
  std::map<std::string, std::string> placements(int64_t now_ms = 0) {
    std::map<std::string, std::string> placed;
    for (const Assignment& a : scheduler_.schedule(at(now_ms))) {
      placed[a.job_id] = a.worker_id;
    }
    return placed;
  }

  JobEvent complete(const std::string& job, int attempt, const std::string& worker,
                    const layerfarm::v1::StepResult& result, int64_t now_ms = 0) {
    auto event = scheduler_.complete(job, attempt, worker, result, at(now_ms));
    EXPECT_TRUE(event.isOk()) << event.status().toString();
    return event.isOk() ? *event : JobEvent{};
  }

  void beat(const std::string& worker, int64_t now_ms, std::vector<RunningJob> running = {}) {
    auto cancels = scheduler_.heartbeat(worker, at(now_ms), WorkerHeartbeat{running, {}, {}});
    ASSERT_TRUE(cancels.isOk()) << cancels.status().toString();
    EXPECT_THAT(*cancels, IsEmpty());
  }

  SchedulerOptions options_;
  Scheduler scheduler_{options_};
};

TEST_F(SchedulerTest, AssignsAReadyJobWithLeaseAndSpec) {
  addWorker(workerInfo("w1"));
  std::string job = submit(request("b1", "t", "k1"), 1000);
  std::vector<Assignment> assigned = scheduler_.schedule(at(2000));
  ASSERT_THAT(assigned, SizeIs(1));
  EXPECT_EQ(assigned[0].job_id, job);
  EXPECT_EQ(assigned[0].attempt, 1);
  EXPECT_EQ(assigned[0].worker_id, "w1");
  EXPECT_EQ(assigned[0].lease_expiry, at(2000) + options_.lease);
  ASSERT_NE(assigned[0].spec, nullptr);
  EXPECT_EQ(assigned[0].spec->step_id(), job);
  EXPECT_EQ(assigned[0].spec->run().command(0), "echo k1");
  EXPECT_THAT(scheduler_.schedule(at(2000)), IsEmpty());  // nothing left, nothing assigned twice

  SchedulerStats stats = scheduler_.stats();
  EXPECT_EQ(stats.ready, 0u);
  EXPECT_EQ(stats.running, 1u);
  EXPECT_EQ(stats.free_slots, 0u);
  EXPECT_EQ(stats.assigned, 1u);
  std::optional<JobView> view = scheduler_.job(job);
  ASSERT_TRUE(view.has_value());
  EXPECT_TRUE(view->running);
  EXPECT_EQ(view->worker_id, "w1");
}

TEST_F(SchedulerTest, SameKeyFromTwoBuildsSharesOneJob) {
  addWorker(workerInfo("w1", 4));
  auto first = scheduler_.submit(request("b1", "team-a", "shared"), at(0));
  auto second = scheduler_.submit(request("b2", "team-b", "shared"), at(0));
  ASSERT_TRUE(first.isOk() && second.isOk());
  EXPECT_FALSE(first->deduplicated);
  EXPECT_TRUE(second->deduplicated);
  EXPECT_EQ(first->job_id, second->job_id);
  // The same build asking again is the same job, not a second attachment.
  auto again = scheduler_.submit(request("b1", "team-a", "shared"), at(0));
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->job_id, first->job_id);

  std::vector<Assignment> assigned = scheduler_.schedule(at(0));
  ASSERT_THAT(assigned, SizeIs(1));
  // A build arriving while it runs joins too.
  auto late = scheduler_.submit(request("b3", "team-c", "shared"), at(5));
  ASSERT_TRUE(late.isOk());
  EXPECT_EQ(late->job_id, first->job_id);

  JobEvent done = complete(first->job_id, 1, "w1", succeeded("sha256:layer"));
  EXPECT_EQ(done.kind, JobEvent::Kind::kSucceeded);
  EXPECT_THAT(done.build_ids, ElementsAre("b1", "b2", "b3"));
  EXPECT_EQ(done.key, keyOf("shared"));
  EXPECT_EQ(done.result.layer().diff_id(), "sha256:layer");
  EXPECT_EQ(scheduler_.stats().submitted, 1u);
  EXPECT_EQ(scheduler_.stats().deduplicated, 2u);

  // Finished jobs are forgotten: the cache index answers later builds, the scheduler does not.
  auto after = scheduler_.submit(request("b4", "team-a", "shared"), at(10));
  ASSERT_TRUE(after.isOk());
  EXPECT_FALSE(after->deduplicated);
  EXPECT_NE(after->job_id, first->job_id);
}

TEST_F(SchedulerTest, PrefersTheWorkerHoldingTheLongestPrefixOfTheParentChain) {
  addWorker(workerInfo("empty", 2));
  addWorker(workerInfo("base-only", 2, "linux/amd64", {"sha256:base"}));
  addWorker(workerInfo("base-and-a", 2, "linux/amd64", {"sha256:base", "sha256:a"}));
  // Holding later layers without the bottom one is not a prefix.
  addWorker(workerInfo("a-only", 2, "linux/amd64", {"sha256:a", "sha256:b"}));

  std::string deep = submit(request("b1", "t", "deep", {"sha256:base", "sha256:a", "sha256:b"}));
  EXPECT_EQ(placements()[deep], "base-and-a");

  // Prefix 1 on both base holders; base-and-a is busier now, so base-only wins.
  std::string other = submit(request("b2", "t", "other", {"sha256:base", "sha256:zzz"}));
  EXPECT_EQ(placements()[other], "base-only");

  // No holder of the chain: the least loaded worker, earliest registered on ties.
  std::string fresh = submit(request("b3", "t", "fresh", {"sha256:unknown"}));
  EXPECT_EQ(placements()[fresh], "empty");
}

TEST_F(SchedulerTest, TheChildGoesWhereItsParentWasBuiltEvenWhenBusier) {
  addWorker(workerInfo("w1", 2));
  addWorker(workerInfo("w2", 4));
  std::string parent = submit(request("b1", "t", "parent", {"sha256:base"}));
  std::string other = submit(request("b2", "t", "other"));
  std::map<std::string, std::string> placed = placements();
  EXPECT_EQ(placed[parent], "w1");
  EXPECT_EQ(placed[other], "w2");

  JobEvent done = complete(parent, 1, "w1", succeeded("sha256:parent-layer"));
  ASSERT_EQ(done.kind, JobEvent::Kind::kSucceeded);
  std::string filler = submit(request("b3", "t", "filler"));
  EXPECT_EQ(placements()[filler], "w1");  // w1 at 0/2 is the least loaded
  // w1 runs 1/2, w2 1/4: w2 is less loaded, but w1 holds base + the parent's new layer.
  std::string child = submit(request("b1", "t", "child", {"sha256:base", "sha256:parent-layer"}));
  EXPECT_EQ(placements()[child], "w1");
}

TEST_F(SchedulerTest, IndependentStagesOfOneBuildRunInParallel) {
  addWorker(workerInfo("w1"));
  addWorker(workerInfo("w2"));
  // Two stages from the same base, both ready at once: both run, on the two workers.
  std::string builder = submit(request("b1", "t", "builder", {"sha256:base"}), 100);
  std::string runtime = submit(request("b1", "t", "runtime", {"sha256:base"}), 100);
  std::map<std::string, std::string> placed = placements(200);
  EXPECT_EQ(placed[builder], "w1");
  EXPECT_EQ(placed[runtime], "w2");

  JobEvent done = complete(builder, 1, "w1", succeeded("sha256:b"), 900);
  EXPECT_EQ(done.submitted_at, at(100));
  EXPECT_EQ(done.started_at, at(200));
  EXPECT_EQ(done.worker_id, "w1");
  EXPECT_EQ(done.attempt, 1);
}

TEST_F(SchedulerTest, LeastLoadedIsByRunningOverSlotsAndSlotsAreRespected) {
  addWorker(workerInfo("big", 4));
  addWorker(workerInfo("small", 1));
  for (int i = 0; i < 6; ++i) {
    submit(request("b", "t", "k" + std::to_string(i)));
  }
  std::vector<Assignment> assigned = scheduler_.schedule(at(0));
  std::vector<std::string> order;
  for (const Assignment& a : assigned) {
    order.push_back(a.worker_id);
  }
  // big 0/4 (tie, registered first), small 0/1, then big until full; the sixth job waits.
  EXPECT_THAT(order, ElementsAre("big", "small", "big", "big", "big"));
  SchedulerStats stats = scheduler_.stats();
  EXPECT_EQ(stats.ready, 1u);
  EXPECT_EQ(stats.running, 5u);
  EXPECT_EQ(stats.free_slots, 0u);
  EXPECT_EQ(scheduler_.worker("big")->running, 4);
  EXPECT_THAT(scheduler_.schedule(at(0)), IsEmpty());

  // A freed slot takes the waiting job.
  complete(assigned[1].job_id, 1, "small", succeeded("sha256:x"));
  std::vector<Assignment> next = scheduler_.schedule(at(1));
  ASSERT_THAT(next, SizeIs(1));
  EXPECT_EQ(next[0].worker_id, "small");
}

TEST_F(SchedulerTest, OneTenantsBurstDoesNotStarveAnother) {
  addWorker(workerInfo("w1", 1));
  for (int i = 0; i < 100; ++i) {
    submit(request("burst", "team-a", "a" + std::to_string(i)));
  }
  std::string b_job = submit(request("small", "team-b", "b0"));
  std::vector<std::string> order;
  for (int i = 0; i < 2; ++i) {
    std::vector<Assignment> assigned = scheduler_.schedule(at(i));
    ASSERT_THAT(assigned, SizeIs(1));
    order.push_back(assigned[0].job_id);
    complete(assigned[0].job_id, 1, "w1", succeeded("sha256:l" + std::to_string(i)));
  }
  EXPECT_THAT(order, ::testing::Contains(b_job));
}

TEST_F(SchedulerTest, TenantsTakeTurnsAndANewlyBusyTenantGoesNext) {
  addWorker(workerInfo("w1", 6));
  for (int i = 0; i < 10; ++i) {
    submit(request("ba", "a", "a" + std::to_string(i)));
    submit(request("bb", "b", "b" + std::to_string(i)));
    submit(request("bc", "c", "c" + std::to_string(i)));
  }
  std::map<std::string, int> per_tenant;
  for (const Assignment& a : scheduler_.schedule(at(0))) {
    ++per_tenant[scheduler_.job(a.job_id)->tenant];
  }
  EXPECT_EQ(per_tenant, (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}}));

  // A tenant that was idle is served before tenants that have just had their turn.
  addWorker(workerInfo("w2", 1));
  std::string d_job = submit(request("bd", "d", "d0"));
  std::vector<Assignment> next = scheduler_.schedule(at(1));
  ASSERT_THAT(next, SizeIs(1));
  EXPECT_EQ(next[0].job_id, d_job);
}

TEST_F(SchedulerTest, ExpiredLeaseRequeuesOnAnotherWorkerThenFailsAfterMaxAttempts) {
  options_.max_attempts = 2;
  Scheduler scheduler(options_);
  ASSERT_TRUE(scheduler.addWorker(workerInfo("w1"), at(0)).isOk());
  ASSERT_TRUE(scheduler.addWorker(workerInfo("w2"), at(0)).isOk());
  ASSERT_TRUE(scheduler.submit(request("b1", "t", "k"), at(0)).isOk());
  std::vector<Assignment> first = scheduler.schedule(at(0));
  ASSERT_THAT(first, SizeIs(1));
  EXPECT_EQ(first[0].worker_id, "w1");
  EXPECT_EQ(scheduler.nextDeadline(), at(0) + options_.heartbeat_timeout);

  // Both workers stay alive but neither reports the job: the lease is not renewed.
  auto keep_alive = [&](int64_t ms) {
    for (const char* id : {"w1", "w2"}) {
      ASSERT_TRUE(scheduler.heartbeat(id, at(ms), {}).isOk());
    }
  };
  keep_alive(10'000);
  keep_alive(20'000);
  EXPECT_THAT(scheduler.expire(at(29'999)).events, IsEmpty());
  keep_alive(29'999);
  ExpireOutcome expired = scheduler.expire(at(30'000));
  EXPECT_THAT(expired.lost_workers, IsEmpty());
  ASSERT_THAT(expired.events, SizeIs(1));
  EXPECT_EQ(expired.events[0].kind, JobEvent::Kind::kRequeued);
  EXPECT_EQ(expired.events[0].attempt, 1);
  EXPECT_EQ(expired.events[0].worker_id, "w1");
  EXPECT_TRUE(expired.events[0].cancel_on_worker);  // w1 is connected: tell it to stop
  EXPECT_THAT(expired.events[0].reason, HasSubstr("lease"));

  // w1 is the least loaded and registered first, but it just lost the job.
  std::vector<Assignment> second = scheduler.schedule(at(30'000));
  ASSERT_THAT(second, SizeIs(1));
  EXPECT_EQ(second[0].worker_id, "w2");
  EXPECT_EQ(second[0].attempt, 2);

  keep_alive(40'000);
  keep_alive(55'000);
  expired = scheduler.expire(at(60'000));
  ASSERT_THAT(expired.events, SizeIs(1));
  EXPECT_EQ(expired.events[0].kind, JobEvent::Kind::kFailed);
  EXPECT_EQ(expired.events[0].attempt, 2);
  EXPECT_THAT(expired.events[0].build_ids, ElementsAre("b1"));
  EXPECT_THAT(expired.events[0].reason, HasSubstr("gave up after 2 attempts"));
  EXPECT_TRUE(expired.events[0].cancel_on_worker);
  EXPECT_EQ(scheduler.stats().failed, 1u);
  EXPECT_THAT(scheduler.schedule(at(60'000)), IsEmpty());
  EXPECT_TRUE(scheduler.checkInvariants().isOk());
}

TEST_F(SchedulerTest, HeartbeatsListingTheJobRenewItsLease) {
  addWorker(workerInfo("w1"));
  std::string job = submit(request("b1", "t", "long"));
  ASSERT_THAT(scheduler_.schedule(at(0)), SizeIs(1));
  for (int64_t ms = 10'000; ms <= 120'000; ms += 10'000) {
    beat("w1", ms, {{job, 1}});
    EXPECT_THAT(scheduler_.expire(at(ms)).events, IsEmpty()) << "at " << ms;
  }
  EXPECT_TRUE(scheduler_.job(job)->running);
  EXPECT_EQ(scheduler_.nextDeadline(), at(120'000) + options_.heartbeat_timeout);
}

TEST_F(SchedulerTest, MissedHeartbeatsRemoveTheWorkerAndMoveItsJobs) {
  addWorker(workerInfo("w1"));
  addWorker(workerInfo("w2", 1, "linux/amd64"), 5000);
  std::string job = submit(request("b1", "t", "k"));
  ASSERT_EQ(placements()[job], "w1");

  beat("w2", 10'000);
  ExpireOutcome expired = scheduler_.expire(at(15'000));  // w1 last heard of at 0
  EXPECT_THAT(expired.lost_workers, ElementsAre("w1"));
  ASSERT_THAT(expired.events, SizeIs(1));
  EXPECT_EQ(expired.events[0].kind, JobEvent::Kind::kRequeued);
  EXPECT_EQ(expired.events[0].reason, "worker w1 lost: missed heartbeats");
  EXPECT_FALSE(expired.events[0].cancel_on_worker);
  EXPECT_FALSE(scheduler_.worker("w1").has_value());
  EXPECT_EQ(scheduler_.stats().workers_lost, 1u);

  auto beat_lost = scheduler_.heartbeat("w1", at(15'001), {});
  EXPECT_EQ(beat_lost.status().code(), StatusCode::kNotFound);

  std::vector<Assignment> again = scheduler_.schedule(at(15'000));
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].worker_id, "w2");
  EXPECT_EQ(again[0].attempt, 2);
}

TEST_F(SchedulerTest, RemovingAWorkerRequeuesItsJobsAtTheFrontOfTheQueue) {
  addWorker(workerInfo("w1"));
  std::string first = submit(request("b1", "t", "first"));
  ASSERT_THAT(scheduler_.schedule(at(0)), SizeIs(1));
  std::string second = submit(request("b1", "t", "second"));
  std::vector<JobEvent> events = scheduler_.removeWorker("w1", "connection closed", at(1));
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].reason, "worker w1 lost: connection closed");
  addWorker(workerInfo("w3"), 2);
  std::vector<Assignment> assigned = scheduler_.schedule(at(2));
  ASSERT_THAT(assigned, SizeIs(1));
  EXPECT_EQ(assigned[0].job_id, first);  // ahead of `second`, submitted earlier than its requeue
  EXPECT_THAT(scheduler_.removeWorker("nobody", "gone", at(3)), IsEmpty());
}

TEST_F(SchedulerTest, AFailedStepFailsItsBuildsAndIsNotRetried) {
  addWorker(workerInfo("w1"));
  addWorker(workerInfo("w2"));
  std::string job = submit(request("b1", "t", "bad"));
  submit(request("b2", "t", "bad"));
  ASSERT_THAT(scheduler_.schedule(at(0)), SizeIs(1));
  layerfarm::v1::StepResult result = outcome(STEP_OUTCOME_FAILED, "exit 2: make: *** No rule");
  result.set_exit_code(2);
  JobEvent event = complete(job, 1, "w1", result);
  EXPECT_EQ(event.kind, JobEvent::Kind::kFailed);
  EXPECT_THAT(event.build_ids, ElementsAre("b1", "b2"));
  EXPECT_EQ(event.reason, "exit 2: make: *** No rule");
  EXPECT_EQ(event.result.exit_code(), 2);
  EXPECT_FALSE(scheduler_.job(job).has_value());
  EXPECT_THAT(scheduler_.schedule(at(1)), IsEmpty());

  std::string slow = submit(request("b3", "t", "slow"));
  ASSERT_THAT(scheduler_.schedule(at(2)), SizeIs(1));
  JobEvent timed_out = complete(slow, 1, "w1", outcome(STEP_OUTCOME_TIMED_OUT));
  EXPECT_EQ(timed_out.kind, JobEvent::Kind::kFailed);
  EXPECT_EQ(timed_out.reason, "the step timed out");
  EXPECT_EQ(scheduler_.stats().failed, 2u);
}

TEST_F(SchedulerTest, AWorkerErrorIsRetriedElsewhereUpToMaxAttempts) {
  options_.max_attempts = 2;
  Scheduler scheduler(options_);
  ASSERT_TRUE(scheduler.addWorker(workerInfo("w1"), at(0)).isOk());
  ASSERT_TRUE(scheduler.addWorker(workerInfo("w2"), at(0)).isOk());
  std::string job = scheduler.submit(request("b1", "t", "k"), at(0))->job_id;
  ASSERT_EQ(scheduler.schedule(at(0)).at(0).worker_id, "w1");

  auto event = scheduler.complete(job, 1, "w1", outcome(STEP_OUTCOME_ERROR, "blob missing"), at(1));
  ASSERT_TRUE(event.isOk());
  EXPECT_EQ(event->kind, JobEvent::Kind::kRequeued);
  EXPECT_THAT(event->reason, HasSubstr("could not run the step: blob missing"));
  EXPECT_FALSE(event->cancel_on_worker);
  std::vector<Assignment> retry = scheduler.schedule(at(1));
  ASSERT_THAT(retry, SizeIs(1));
  EXPECT_EQ(retry[0].worker_id, "w2");
  EXPECT_EQ(retry[0].attempt, 2);

  event = scheduler.complete(job, 2, "w2", outcome(STEP_OUTCOME_ERROR, "sandbox broke"), at(2));
  ASSERT_TRUE(event.isOk());
  EXPECT_EQ(event->kind, JobEvent::Kind::kFailed);
  EXPECT_THAT(event->reason, HasSubstr("sandbox broke; gave up after 2 attempts"));
  EXPECT_TRUE(scheduler.checkInvariants().isOk());
}

TEST_F(SchedulerTest, AJobHandedBackByADrainingWorkerDoesNotUseAnAttempt) {
  options_.max_attempts = 1;
  Scheduler scheduler(options_);
  ASSERT_TRUE(scheduler.addWorker(workerInfo("w1"), at(0)).isOk());
  ASSERT_TRUE(scheduler.addWorker(workerInfo("w2"), at(0)).isOk());
  std::string job = scheduler.submit(request("b1", "t", "k"), at(0))->job_id;
  ASSERT_EQ(scheduler.schedule(at(0)).at(0).worker_id, "w1");
  ASSERT_TRUE(scheduler.drainWorker("w1").isOk());
  auto event = scheduler.complete(job, 1, "w1", outcome(STEP_OUTCOME_CANCELLED), at(1));
  ASSERT_TRUE(event.isOk());
  EXPECT_EQ(event->kind, JobEvent::Kind::kRequeued);
  std::vector<Assignment> retry = scheduler.schedule(at(1));
  ASSERT_THAT(retry, SizeIs(1));
  EXPECT_EQ(retry[0].worker_id, "w2");
  auto done = scheduler.complete(job, 2, "w2", succeeded("sha256:l"), at(2));
  ASSERT_TRUE(done.isOk());
  EXPECT_EQ(done->kind, JobEvent::Kind::kSucceeded);
}

TEST_F(SchedulerTest, AJobEveryWorkerHandsBackFailsAfterMaxHandbacksNamingTheLastReason) {
  options_.max_attempts = 1;
  options_.max_handbacks = 4;
  Scheduler scheduler(options_);
  ASSERT_TRUE(scheduler.addWorker(workerInfo("w1"), at(0)).isOk());
  ASSERT_TRUE(scheduler.addWorker(workerInfo("w2"), at(0)).isOk());
  std::string job = scheduler.submit(request("b1", "t", "k"), at(0))->job_id;
  std::vector<std::string> placed_on;
  for (int attempt = 1; attempt <= 4; ++attempt) {
    std::vector<Assignment> placed = scheduler.schedule(at(attempt));
    ASSERT_THAT(placed, SizeIs(1)) << "attempt " << attempt;
    EXPECT_EQ(placed[0].attempt, attempt);
    placed_on.push_back(placed[0].worker_id);
    auto event = scheduler.complete(
        job, attempt, placed[0].worker_id,
        outcome(STEP_OUTCOME_CANCELLED, "no overlay support " + std::to_string(attempt)),
        at(attempt));
    ASSERT_TRUE(event.isOk());
    if (attempt < 4) {
      EXPECT_EQ(event->kind, JobEvent::Kind::kRequeued);
      EXPECT_THAT(event->reason, HasSubstr("no overlay support"));
    } else {
      EXPECT_EQ(event->kind, JobEvent::Kind::kFailed);
      EXPECT_THAT(event->reason, HasSubstr("handed the job back 4 times"));
      EXPECT_THAT(event->reason, HasSubstr("no overlay support 4"));
    }
    EXPECT_TRUE(scheduler.checkInvariants().isOk());
  }
  // The worker that refused is avoided next time: the second try went to the other one.
  EXPECT_EQ(placed_on[0], "w1");
  EXPECT_EQ(placed_on[1], "w2");
  EXPECT_THAT(scheduler.schedule(at(10)), SizeIs(0));
}

TEST_F(SchedulerTest, StaleAndUnknownResultsAreRejectedWithoutChangingAnything) {
  addWorker(workerInfo("w1"));
  addWorker(workerInfo("w2"));
  std::string job = submit(request("b1", "t", "k"));
  ASSERT_EQ(placements()[job], "w1");
  beat("w2", 20'000);
  beat("w1", 20'000);  // alive, but not reporting the job
  ASSERT_THAT(scheduler_.expire(at(30'000)).events, SizeIs(1));
  std::map<std::string, std::string> placed = placements(30'000);
  ASSERT_EQ(placed[job], "w2");

  auto stale = scheduler_.complete(job, 1, "w1", succeeded("sha256:late"), at(31'000));
  EXPECT_EQ(stale.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.status().message(), HasSubstr("attempt 2 runs on worker w2"));
  auto wrong_worker = scheduler_.complete(job, 2, "w1", succeeded("sha256:late"), at(31'000));
  EXPECT_EQ(wrong_worker.status().code(), StatusCode::kFailedPrecondition);
  auto unknown = scheduler_.complete("job-999", 1, "w1", succeeded("sha256:x"), at(31'000));
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(scheduler_.job(job)->worker_id, "w2");
  EXPECT_EQ(scheduler_.job(job)->attempt, 2);
  // A worker reporting a stale attempt in its heartbeat is told to cancel it.
  auto cancels = scheduler_.heartbeat("w1", at(31'000), WorkerHeartbeat{{{job, 1}}, {}, {}});
  ASSERT_TRUE(cancels.isOk());
  ASSERT_THAT(*cancels, SizeIs(1));
  EXPECT_EQ((*cancels)[0].job_id, job);
  EXPECT_EQ((*cancels)[0].attempt, 1);
  EXPECT_EQ((*cancels)[0].worker_id, "w1");

  JobEvent done = complete(job, 2, "w2", succeeded("sha256:l"), 32'000);
  EXPECT_EQ(done.kind, JobEvent::Kind::kSucceeded);
  EXPECT_EQ(done.attempt, 2);
}

TEST_F(SchedulerTest, CancellingOneOfTwoBuildsKeepsTheSharedJob) {
  addWorker(workerInfo("w1"));
  std::string shared = submit(request("b1", "t", "shared"));
  submit(request("b2", "t", "shared"));
  std::string own = submit(request("b1", "t", "own"));  // queued: w1 has one slot
  ASSERT_EQ(placements()[shared], "w1");

  std::vector<JobEvent> events = scheduler_.cancelBuild("b1");
  // The queued job only b1 wanted is dropped; the running one stays for b2.
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].job_id, own);
  EXPECT_EQ(events[0].kind, JobEvent::Kind::kCancelled);
  EXPECT_FALSE(events[0].cancel_on_worker);
  EXPECT_THAT(scheduler_.job(shared)->build_ids, ElementsAre("b2"));
  EXPECT_FALSE(scheduler_.job(own).has_value());
  EXPECT_EQ(scheduler_.stats().ready, 0u);
  EXPECT_THAT(scheduler_.cancelBuild("b1"), IsEmpty());

  events = scheduler_.cancelBuild("b2");
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].job_id, shared);
  EXPECT_TRUE(events[0].cancel_on_worker);
  EXPECT_EQ(events[0].worker_id, "w1");
  EXPECT_EQ(events[0].attempt, 1);
  EXPECT_THAT(events[0].build_ids, ElementsAre("b2"));
  EXPECT_EQ(scheduler_.stats().cancelled, 2u);
  EXPECT_EQ(scheduler_.stats().running, 0u);

  // The slot stays taken until w1 confirms, so w1 is not sent a second job meanwhile.
  std::string next = submit(request("b3", "t", "next"));
  EXPECT_THAT(scheduler_.schedule(at(1)), IsEmpty());
  auto confirm = scheduler_.complete(shared, 1, "w1", outcome(STEP_OUTCOME_CANCELLED), at(2));
  EXPECT_EQ(confirm.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(placements(2)[next], "w1");
}

TEST_F(SchedulerTest, ACancelledJobFreesItsSlotWhenAHeartbeatNoLongerListsIt) {
  addWorker(workerInfo("w1"));
  std::string job = submit(request("b1", "t", "k"));
  ASSERT_THAT(scheduler_.schedule(at(0)), SizeIs(1));
  ASSERT_THAT(scheduler_.cancelBuild("b1"), SizeIs(1));
  beat("w1", 1000, {{job, 1}});  // still stopping
  EXPECT_EQ(scheduler_.worker("w1")->running, 1);
  beat("w1", 2000);
  EXPECT_EQ(scheduler_.worker("w1")->running, 0);
  EXPECT_EQ(scheduler_.stats().free_slots, 1u);
}

TEST_F(SchedulerTest, ADrainingWorkerFinishesItsJobsButTakesNoNewOnes) {
  addWorker(workerInfo("w1", 2));
  addWorker(workerInfo("w2", 2));
  std::string running = submit(request("b1", "t", "running"));
  ASSERT_EQ(placements()[running], "w1");
  ASSERT_TRUE(scheduler_.drainWorker("w1").isOk());
  EXPECT_TRUE(scheduler_.worker("w1")->draining);
  EXPECT_EQ(scheduler_.stats().draining_workers, 1u);
  EXPECT_EQ(scheduler_.stats().free_slots, 2u);  // w2 only

  // Even the child of w1's job, which w1 would hold, goes elsewhere.
  JobEvent done = complete(running, 1, "w1", succeeded("sha256:r"));
  EXPECT_EQ(done.kind, JobEvent::Kind::kSucceeded);
  std::string child = submit(request("b1", "t", "child", {"sha256:r"}));
  EXPECT_EQ(placements()[child], "w2");
  EXPECT_EQ(scheduler_.worker("w1")->running, 0);
  EXPECT_EQ(scheduler_.drainWorker("nobody").code(), StatusCode::kNotFound);
}

TEST_F(SchedulerTest, JobsRunOnlyOnWorkersOfTheirPlatform) {
  addWorker(workerInfo("amd", 2, "linux/amd64"));
  addWorker(workerInfo("arm", 2, "linux/arm64"));
  std::string s390 = submit(request("b1", "t", "s390", {}, "linux/s390x"));
  std::string arm = submit(request("b1", "t", "arm", {}, "linux/arm64"));
  std::string any = submit(request("b1", "t", "any"));
  std::string amd = submit(request("b1", "t", "amd", {}, "linux/amd64"));
  std::map<std::string, std::string> placed = placements();
  // No s390x worker: that job waits without holding up the others of its tenant.
  EXPECT_EQ(placed.count(s390), 0u);
  EXPECT_EQ(placed[arm], "arm");
  EXPECT_EQ(placed[amd], "amd");
  EXPECT_EQ(placed.count(any), 1u);
  EXPECT_EQ(scheduler_.stats().ready, 1u);

  addWorker(workerInfo("s390", 1, "linux/s390x"));
  EXPECT_EQ(placements()[s390], "s390");
}

TEST_F(SchedulerTest, HeartbeatsUpdateTheLayersUsedForAffinity) {
  addWorker(workerInfo("w1", 1));
  addWorker(workerInfo("w2", 1));
  auto cancels =
      scheduler_.heartbeat("w2", at(1), WorkerHeartbeat{{{"job-unknown", 3}}, {"sha256:base"}, {}});
  ASSERT_TRUE(cancels.isOk());
  // A job the scheduler never gave it: the worker must stop it.
  EXPECT_THAT(*cancels, ElementsAre(::testing::Field(&CancelOrder::job_id, "job-unknown")));
  std::string a = submit(request("b1", "t", "a", {"sha256:base"}));
  EXPECT_EQ(placements()[a], "w2");
  complete(a, 1, "w2", succeeded("sha256:a-layer"));

  ASSERT_TRUE(scheduler_.heartbeat("w2", at(2), WorkerHeartbeat{{}, {}, {"sha256:base"}}).isOk());
  EXPECT_EQ(scheduler_.worker("w2")->held_layers, 1u);  // the new layer only
  std::string b = submit(request("b1", "t", "b", {"sha256:base"}));
  EXPECT_EQ(placements()[b], "w1");  // nobody holds base now: least loaded, first registered
}

TEST_F(SchedulerTest, AReconnectingWorkerKeepsTheJobsItStillRuns) {
  addWorker(workerInfo("w1", 2, "linux/amd64", {"sha256:old"}));
  std::string kept = submit(request("b1", "t", "kept"));
  std::string dropped = submit(request("b1", "t", "dropped"));
  ASSERT_THAT(scheduler_.schedule(at(0)), SizeIs(2));
  ASSERT_TRUE(scheduler_.drainWorker("w1").isOk());

  auto outcome = scheduler_.reattachWorker(workerInfo("w1", 2, "linux/amd64", {"sha256:new"}),
                                           {{kept, 1}, {"job-stranger", 1}}, at(20'000));
  ASSERT_TRUE(outcome.isOk()) << outcome.status().toString();
  ASSERT_THAT(outcome->events, SizeIs(1));
  EXPECT_EQ(outcome->events[0].job_id, dropped);
  EXPECT_EQ(outcome->events[0].kind, JobEvent::Kind::kRequeued);
  EXPECT_EQ(outcome->events[0].reason, "worker w1 re-registered without it");
  ASSERT_THAT(outcome->cancels, SizeIs(1));
  EXPECT_EQ(outcome->cancels[0].job_id, "job-stranger");

  // The kept job's lease was renewed at 20 s: nothing expires at the old 30 s deadline.
  EXPECT_THAT(scheduler_.expire(at(30'000)).events, IsEmpty());
  EXPECT_EQ(scheduler_.job(kept)->worker_id, "w1");
  EXPECT_FALSE(scheduler_.worker("w1")->draining);
  EXPECT_EQ(scheduler_.worker("w1")->held_layers, 1u);
  // The requeued job comes back to w1 (the only worker), as attempt 2.
  std::vector<Assignment> again = scheduler_.schedule(at(30'000));
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].job_id, dropped);
  EXPECT_EQ(again[0].attempt, 2);
}

TEST_F(SchedulerTest, AWorkerReconnectingAfterRemovalOrWithOtherSlotsStartsAfresh) {
  addWorker(workerInfo("w1", 1));
  std::string job = submit(request("b1", "t", "k"));
  ASSERT_THAT(scheduler_.schedule(at(0)), SizeIs(1));

  // Another slot count: the old registration's jobs are requeued and the worker told to stop.
  auto resized = scheduler_.reattachWorker(workerInfo("w1", 2), {{job, 1}}, at(1000));
  ASSERT_TRUE(resized.isOk());
  ASSERT_THAT(resized->events, SizeIs(1));
  EXPECT_EQ(resized->events[0].kind, JobEvent::Kind::kRequeued);
  ASSERT_THAT(resized->cancels, SizeIs(1));
  EXPECT_EQ(resized->cancels[0].job_id, job);
  EXPECT_EQ(scheduler_.worker("w1")->slots, 2);

  // After removal, a reconnect is a fresh registration; what it still runs is cancelled.
  std::vector<Assignment> second = scheduler_.schedule(at(1000));
  ASSERT_THAT(second, SizeIs(1));
  ASSERT_THAT(scheduler_.removeWorker("w1", "connection closed", at(2000)), SizeIs(1));
  auto fresh = scheduler_.reattachWorker(workerInfo("w1", 2), {{job, 2}}, at(3000));
  ASSERT_TRUE(fresh.isOk());
  EXPECT_THAT(fresh->events, IsEmpty());
  ASSERT_THAT(fresh->cancels, SizeIs(1));
  EXPECT_EQ(fresh->cancels[0].attempt, 2);
  EXPECT_EQ(scheduler_.worker("w1")->running, 0);
  EXPECT_EQ(scheduler_.reattachWorker(workerInfo("w1", 0), {}, at(4000)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, RejectsBadArguments) {
  JobRequest no_build = request("", "t", "k");
  EXPECT_EQ(scheduler_.submit(no_build, at(0)).status().code(), StatusCode::kInvalidArgument);
  JobRequest no_key = request("b", "t", "k");
  no_key.key = Digest();
  EXPECT_EQ(scheduler_.submit(no_key, at(0)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler_.addWorker(workerInfo(""), at(0)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler_.addWorker(workerInfo("w", 0), at(0)).code(), StatusCode::kInvalidArgument);
  addWorker(workerInfo("w"));
  EXPECT_EQ(scheduler_.addWorker(workerInfo("w"), at(0)).code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(scheduler_.workers(), SizeIs(1));
}

}  // namespace
}  // namespace lf::coordinator
