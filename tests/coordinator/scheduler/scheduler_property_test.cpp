// Randomized (seeded) runs of the scheduler against a model of the workers: submits, workers
// coming and going, heartbeats that sometimes forget jobs, results of every kind, stale results,
// expiries and cancels. After every operation the scheduler's own invariants hold, no job is
// assigned while an attempt of it is still running, attempts only grow, no worker runs more
// than its slots; at the end, with healthy workers, every job ends exactly once.

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "coordinator/scheduler/scheduler.h"
#include "tests/coordinator/scheduler/scheduler_test_util.h"

namespace lf::coordinator {
namespace {

using ::lf::coordinator::testing::at;
using ::lf::coordinator::testing::outcome;
using ::lf::coordinator::testing::request;
using ::lf::coordinator::testing::succeeded;
using ::lf::coordinator::testing::workerInfo;

struct Attempt {
  std::string job;
  int attempt = 0;
  std::string worker;
};

class Model {
 public:
  explicit Model(uint32_t seed) : rng_(seed) {
    SchedulerOptions options;
    options.max_attempts = 3;
    scheduler_ = std::make_unique<Scheduler>(options);
  }

  void run(int steps) {
    for (int i = 0; i < steps && !::testing::Test::HasFailure(); ++i) {
      step();
      check("after step " + std::to_string(i));
    }
  }

  // Healthy workers on every platform complete everything that is left.
  void finish() {
    for (const char* platform : {"linux/amd64", "linux/arm64"}) {
      std::string id = std::string("final-") + platform;
      ASSERT_TRUE(scheduler_->addWorker(workerInfo(id, 2, platform), at(now_)).isOk());
      slots_[id] = 2;
    }
    for (int round = 0; round < 10'000; ++round) {
      SchedulerStats stats = scheduler_->stats();
      if (stats.ready == 0 && stats.running == 0) {
        break;
      }
      now_ += 1000;
      heartbeatAll(/*forget_some=*/false);
      apply(scheduler_->expire(at(now_)));
      schedule();
      std::vector<std::string> jobs;
      for (const auto& [job, attempt] : running_) {
        jobs.push_back(job);
      }
      for (const std::string& job : jobs) {
        completeJob(job, succeeded("sha256:" + job));
      }
      check("finishing round " + std::to_string(round));
      if (::testing::Test::HasFailure()) {
        return;
      }
    }
    SchedulerStats stats = scheduler_->stats();
    EXPECT_EQ(stats.ready, 0u);
    EXPECT_EQ(stats.running, 0u);
    for (const std::string& job : created_) {
      EXPECT_EQ(ended_.count(job), 1u) << job << " never ended";
    }
    EXPECT_EQ(stats.submitted, created_.size());
    EXPECT_EQ(stats.succeeded + stats.failed + stats.cancelled, created_.size());
  }

 private:
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void step() {
    now_ += pick(4000);
    switch (pick(12)) {
      case 0:
      case 1:
      case 2:
        submit();
        break;
      case 3:
        addWorker();
        break;
      case 4:
        switch (pick(4)) {
          case 0:
            drainWorker();
            break;
          case 1:
            reattachWorker();
            break;
          default:
            removeWorker();
            break;
        }
        break;
      case 5:
        heartbeatAll(/*forget_some=*/true);
        break;
      case 6:
      case 7:
        completeRandom();
        break;
      case 8:
        apply(scheduler_->expire(at(now_)));
        break;
      case 9:
        cancelRandomBuild();
        break;
      case 10:
        staleResult();
        break;
      default:
        schedule();
        break;
    }
  }

  void submit() {
    std::string key = "k" + std::to_string(pick(40));
    // The platform is a function of the key, as it is in real keys.
    static const char* kPlatforms[] = {"", "linux/amd64", "linux/arm64"};
    std::string platform = kPlatforms[std::hash<std::string>()(key) % 3];
    std::string build = "b" + std::to_string(pick(15));
    std::vector<std::string> parents;
    for (int i = 0, n = pick(4); i < n; ++i) {
      parents.push_back("sha256:p" + std::to_string(pick(6)));
    }
    auto outcome = scheduler_->submit(
        request(build, "tenant" + std::to_string(pick(3)), key, parents, platform), at(now_));
    ASSERT_TRUE(outcome.isOk()) << outcome.status().toString();
    if (!outcome->deduplicated) {
      ASSERT_TRUE(created_.insert(outcome->job_id).second) << "job id reused";
    } else {
      ASSERT_EQ(created_.count(outcome->job_id), 1u);
      ASSERT_EQ(ended_.count(outcome->job_id), 0u) << "attached to an ended job";
    }
  }

  void addWorker() {
    std::string id = "w" + std::to_string(next_worker_++);
    int slots = 1 + pick(3);
    std::unordered_set<std::string> held;
    for (int i = 0; i < 3; ++i) {
      held.insert("sha256:p" + std::to_string(pick(6)));
    }
    const char* platform = pick(2) == 0 ? "linux/amd64" : "linux/arm64";
    ASSERT_TRUE(
        scheduler_->addWorker(workerInfo(id, slots, platform, std::move(held)), at(now_)).isOk());
    slots_[id] = slots;
  }

  void removeWorker() {
    if (slots_.empty()) {
      return;
    }
    auto it = std::next(slots_.begin(), pick(static_cast<int>(slots_.size())));
    std::string id = it->first;
    apply(scheduler_->removeWorker(id, "test", at(now_)));
    // The worker process is gone, and with it everything it ran.
    slots_.erase(id);
    forgetWorker(id);
  }

  void drainWorker() {
    if (slots_.empty()) {
      return;
    }
    auto it = std::next(slots_.begin(), pick(static_cast<int>(slots_.size())));
    ASSERT_TRUE(scheduler_->drainWorker(it->first).isOk());
  }

  // The worker reconnects reporting most of what it runs, sometimes with another slot count.
  void reattachWorker() {
    if (slots_.empty()) {
      return;
    }
    auto it = std::next(slots_.begin(), pick(static_cast<int>(slots_.size())));
    std::string id = it->first;
    std::optional<WorkerView> view = scheduler_->worker(id);
    ASSERT_TRUE(view.has_value());
    int slots = pick(3) == 0 ? 1 + pick(3) : view->slots;
    std::vector<RunningJob> running;
    for (const auto& [job, attempt] : running_) {
      if (attempt.worker == id && pick(4) != 0) {
        running.push_back(RunningJob{attempt.job, attempt.attempt});
      }
    }
    auto outcome =
        scheduler_->reattachWorker(workerInfo(id, slots, view->platform), running, at(now_));
    ASSERT_TRUE(outcome.isOk()) << outcome.status().toString();
    apply(outcome->events);
    slots_[id] = slots;
    for (const CancelOrder& cancel : outcome->cancels) {
      auto live = running_.find(cancel.job_id);
      ASSERT_FALSE(live != running_.end() && live->second.attempt == cancel.attempt &&
                   live->second.worker == id)
          << "cancel of a live attempt " << cancel.job_id;
    }
    // Jobs it did not list (the new process is not running them) are over on the worker.
    for (auto job = running_.begin(); job != running_.end();) {
      bool listed = std::any_of(running.begin(), running.end(),
                                [&](const RunningJob& r) { return r.job_id == job->first; });
      job = job->second.worker == id && !listed ? running_.erase(job) : std::next(job);
    }
  }

  void forgetWorker(const std::string& id) {
    for (auto job = running_.begin(); job != running_.end();) {
      job = job->second.worker == id ? running_.erase(job) : std::next(job);
    }
    for (auto job = stopping_.begin(); job != stopping_.end();) {
      job = job->second.worker == id ? stopping_.erase(job) : std::next(job);
    }
  }

  // Every worker reports what it runs; with forget_some, a worker sometimes leaves a job out
  // (as if its assignment were lost), or skips its heartbeat entirely.
  void heartbeatAll(bool forget_some) {
    std::vector<std::string> lost;
    for (const auto& [id, slots] : slots_) {
      if (forget_some && pick(5) == 0) {
        continue;
      }
      WorkerHeartbeat report;
      for (const auto* jobs : {&running_, &stopping_}) {
        for (const auto& [job, attempt] : *jobs) {
          if (attempt.worker == id && !(forget_some && pick(6) == 0)) {
            report.running.push_back(RunningJob{attempt.job, attempt.attempt});
          }
        }
      }
      auto cancels = scheduler_->heartbeat(id, at(now_), report);
      if (cancels.status().code() == StatusCode::kNotFound) {
        lost.push_back(id);  // expired earlier; the model learns it here
        continue;
      }
      ASSERT_TRUE(cancels.isOk()) << cancels.status().toString();
      for (const CancelOrder& cancel : *cancels) {
        auto job = stopping_.find(cancel.job_id + "#" + std::to_string(cancel.attempt));
        ASSERT_FALSE(running_.count(cancel.job_id) != 0 &&
                     running_.at(cancel.job_id).attempt == cancel.attempt &&
                     running_.at(cancel.job_id).worker == id)
            << "cancel of a live attempt " << cancel.job_id;
        if (job != stopping_.end()) {
          stopping_.erase(job);
        }
      }
    }
    // Jobs the worker forgot stop being reported; those it was told to cancel it stops.
    for (auto job = stopping_.begin(); job != stopping_.end();) {
      job = pick(2) == 0 ? stopping_.erase(job) : std::next(job);
    }
    for (const std::string& id : lost) {
      slots_.erase(id);
      forgetWorker(id);
    }
  }

  void schedule() {
    for (const Assignment& a : scheduler_->schedule(at(now_))) {
      ASSERT_EQ(created_.count(a.job_id), 1u);
      ASSERT_EQ(ended_.count(a.job_id), 0u) << "ended job " << a.job_id << " assigned";
      ASSERT_EQ(running_.count(a.job_id), 0u) << a.job_id << " assigned twice";
      ASSERT_GT(a.attempt, last_attempt_[a.job_id]) << a.job_id << " attempt did not grow";
      ASSERT_EQ(slots_.count(a.worker_id), 1u) << "assigned to unknown worker " << a.worker_id;
      last_attempt_[a.job_id] = a.attempt;
      running_[a.job_id] = Attempt{a.job_id, a.attempt, a.worker_id};
    }
  }

  void completeRandom() {
    if (running_.empty()) {
      return;
    }
    auto it = std::next(running_.begin(), pick(static_cast<int>(running_.size())));
    static const layerfarm::v1::StepOutcome kOutcomes[] = {
        layerfarm::v1::STEP_OUTCOME_SUCCEEDED, layerfarm::v1::STEP_OUTCOME_SUCCEEDED,
        layerfarm::v1::STEP_OUTCOME_SUCCEEDED, layerfarm::v1::STEP_OUTCOME_FAILED,
        layerfarm::v1::STEP_OUTCOME_ERROR,     layerfarm::v1::STEP_OUTCOME_CANCELLED};
    auto result_outcome = kOutcomes[pick(6)];
    std::string job = it->first;
    completeJob(job, result_outcome == layerfarm::v1::STEP_OUTCOME_SUCCEEDED
                         ? succeeded("sha256:" + job)
                         : outcome(result_outcome, "random"));
  }

  void completeJob(const std::string& job, const layerfarm::v1::StepResult& result) {
    Attempt attempt = running_.at(job);
    running_.erase(job);
    auto event = scheduler_->complete(job, attempt.attempt, attempt.worker, result, at(now_));
    // The model only completes attempts the scheduler still considers current.
    ASSERT_TRUE(event.isOk()) << event.status().toString();
    apply({*event});
  }

  void staleResult() {
    if (last_attempt_.empty()) {
      return;
    }
    auto it = std::next(last_attempt_.begin(), pick(static_cast<int>(last_attempt_.size())));
    auto current = running_.find(it->first);
    if (current != running_.end() && current->second.attempt == it->second) {
      return;  // not stale
    }
    std::optional<JobView> before = scheduler_->job(it->first);
    auto event =
        scheduler_->complete(it->first, it->second, "w-stale", succeeded("sha256:s"), at(now_));
    ASSERT_FALSE(event.isOk()) << "stale result accepted for " << it->first;
    std::optional<JobView> after = scheduler_->job(it->first);
    ASSERT_EQ(before.has_value(), after.has_value());
    if (before) {
      ASSERT_EQ(before->attempt, after->attempt);
      ASSERT_EQ(before->running, after->running);
    }
  }

  void cancelRandomBuild() { apply(scheduler_->cancelBuild("b" + std::to_string(pick(15)))); }

  void apply(const ExpireOutcome& outcome) {
    apply(outcome.events);
    for (const std::string& id : outcome.lost_workers) {
      slots_.erase(id);
      forgetWorker(id);
    }
  }

  void apply(const std::vector<JobEvent>& events) {
    for (const JobEvent& event : events) {
      ASSERT_EQ(created_.count(event.job_id), 1u);
      ASSERT_EQ(ended_.count(event.job_id), 0u) << event.job_id << " ended twice";
      ASSERT_FALSE(event.build_ids.empty());
      auto running = running_.find(event.job_id);
      if (running != running_.end() && running->second.attempt == event.attempt) {
        // The attempt is over for the scheduler; a worker told to cancel keeps reporting it
        // for a while.
        if (event.cancel_on_worker) {
          stopping_[event.job_id + "#" + std::to_string(event.attempt)] = running->second;
        }
        running_.erase(running);
      }
      if (event.kind != JobEvent::Kind::kRequeued) {
        ended_.insert(event.job_id);
      }
    }
  }

  void check(const std::string& when) {
    Status status = scheduler_->checkInvariants();
    ASSERT_TRUE(status.isOk()) << when << ": " << status.toString();
    std::map<std::string, int> per_worker;
    for (const auto& [job, attempt] : running_) {
      ++per_worker[attempt.worker];
    }
    for (const WorkerView& worker : scheduler_->workers()) {
      ASSERT_LE(worker.running, worker.slots) << when;
      ASSERT_LE(per_worker[worker.id], worker.slots) << when << " worker " << worker.id;
    }
    SchedulerStats stats = scheduler_->stats();
    ASSERT_EQ(stats.running, running_.size()) << when;
  }

  std::mt19937 rng_;
  std::unique_ptr<Scheduler> scheduler_;
  int64_t now_ = 0;
  int next_worker_ = 1;
  std::map<std::string, int> slots_;         // live workers
  std::map<std::string, Attempt> running_;   // current attempts, as the workers run them
  std::map<std::string, Attempt> stopping_;  // told to cancel, still reported for a while
  std::map<std::string, int> last_attempt_;
  std::set<std::string> created_;
  std::set<std::string> ended_;
};

TEST(SchedulerPropertyTest, RandomOperationsKeepTheInvariantsAndEveryJobEnds) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Model model(seed);
    model.run(2000);
    model.finish();
    if (::testing::Test::HasFailure()) {
      break;
    }
  }
}

}  // namespace
}  // namespace lf::coordinator
