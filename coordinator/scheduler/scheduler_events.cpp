// Scheduler: what happens to jobs after assignment — heartbeats, results, lost workers, expired
// leases and cancels.

#include <algorithm>
#include <utility>

#include "coordinator/scheduler/scheduler.h"
#include "coordinator/scheduler/scheduler_internal.h"

namespace lf::coordinator {
namespace {

using layerfarm::v1::StepOutcome;
using layerfarm::v1::StepResult;

// Enough to steer a requeued job away from recent failures without growing without bound.
constexpr size_t kMaxAvoided = 8;

std::string describeFailure(const StepResult& result) {
  if (!result.error().empty()) {
    return result.error();
  }
  switch (result.outcome()) {
    case layerfarm::v1::STEP_OUTCOME_TIMED_OUT:
      return "the step timed out";
    case layerfarm::v1::STEP_OUTCOME_LIMIT_EXCEEDED:
      return "the step exceeded its memory or pids limit";
    default:
      break;
  }
  if (result.signal() != 0) {
    return "the step was killed by signal " + std::to_string(result.signal());
  }
  return "the step exited with code " + std::to_string(result.exit_code());
}

}  // namespace

JobEvent Scheduler::baseEvent(const Job& job, JobEvent::Kind kind) const {
  JobEvent event;
  event.kind = kind;
  event.job_id = job.id;
  event.key = job.key;
  event.attempt = job.attempt;
  event.worker_id = job.last_worker_id;
  event.build_ids = job.build_ids;
  event.submitted_at = job.submitted_at;
  event.started_at = job.started_at;
  return event;
}

// Ends the running attempt's hold on its worker: lease gone, slot free. The job becomes idle.
void Scheduler::detach(Job& job) {
  LF_CHECK(job.state == Job::State::kRunning, "detach of a job that is not running");
  leases_.erase(std::make_pair(job.lease_expiry, job.id));
  Worker& worker = *job.worker;
  worker.jobs.erase(job.id);
  --worker.running;
  updateAvailability(worker);
  job.worker = nullptr;
  job.state = Job::State::kIdle;
}

// The running attempt ended without a result: requeue at the front of the tenant's queue, or fail
// when this was the last worker-side failure allowed.
JobEvent Scheduler::endAttempt(Job& job, std::string reason, bool count_failure,
                               bool cancel_on_worker) {
  const std::string worker_id = job.worker->info.id;
  detach(job);
  if (std::find(job.avoid.begin(), job.avoid.end(), worker_id) == job.avoid.end()) {
    if (job.avoid.size() == kMaxAvoided) {
      job.avoid.erase(job.avoid.begin());
    }
    job.avoid.push_back(worker_id);
  }
  if (count_failure && ++job.failures >= options_.max_attempts) {
    JobEvent event = finishJob(job, JobEvent::Kind::kFailed,
                               reason + "; gave up after " + std::to_string(job.failures) +
                                   (job.failures == 1 ? " attempt" : " attempts"));
    event.cancel_on_worker = cancel_on_worker;
    return event;
  }
  JobEvent event = baseEvent(job, JobEvent::Kind::kRequeued);
  event.reason = std::move(reason);
  event.cancel_on_worker = cancel_on_worker;
  ++counters_.requeued;
  enqueue(job, /*front=*/true);
  return event;
}

// The job is over: makes its event and forgets it. The job must not be running.
JobEvent Scheduler::finishJob(Job& job, JobEvent::Kind kind, std::string reason) {
  JobEvent event = baseEvent(job, kind);
  event.reason = std::move(reason);
  switch (kind) {
    case JobEvent::Kind::kSucceeded:
      ++counters_.succeeded;
      break;
    case JobEvent::Kind::kFailed:
      ++counters_.failed;
      break;
    case JobEvent::Kind::kCancelled:
      ++counters_.cancelled;
      break;
    case JobEvent::Kind::kRequeued:
      break;
  }
  eraseJob(job.id);
  return event;
}

void Scheduler::eraseJob(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  Job& job = *it->second;
  LF_CHECK(job.state != Job::State::kRunning, "erase of a running job");
  if (job.state == Job::State::kQueued) {
    unqueue(job);
  }
  job_by_key_.erase(job.key);
  for (const std::string& build_id : job.build_ids) {
    auto build = jobs_by_build_.find(build_id);
    if (build != jobs_by_build_.end()) {
      build->second.erase(job_id);
      if (build->second.empty()) {
        jobs_by_build_.erase(build);
      }
    }
  }
  jobs_.erase(it);
}

void Scheduler::dropZombie(const std::string& job_id) {
  auto it = zombies_.find(job_id);
  Zombie& zombie = *it->second;
  leases_.erase(std::make_pair(zombie.lease_expiry, job_id));
  zombie.worker->zombies.erase(job_id);
  --zombie.worker->running;
  updateAvailability(*zombie.worker);
  zombies_.erase(it);
}

Result<std::vector<CancelOrder>> Scheduler::heartbeat(const std::string& worker_id, TimePoint now,
                                                      const WorkerHeartbeat& report) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return notFound("scheduler heartbeat: unknown worker " + worker_id);
  }
  Worker& worker = *it->second;
  setDeadline(worker, now + options_.heartbeat_timeout);
  for (const std::string& diff_id : report.removed_diff_ids) {
    dropLayer(worker, diff_id);
  }
  for (const std::string& diff_id : report.added_diff_ids) {
    holdLayer(worker, diff_id);
  }
  return reconcile(worker, report.running, now, /*unlisted_ended=*/nullptr);
}

std::vector<CancelOrder> Scheduler::reconcile(Worker& worker,
                                              const std::vector<RunningJob>& running, TimePoint now,
                                              std::vector<JobEvent>* unlisted_ended) {
  std::vector<CancelOrder> cancels;
  std::unordered_set<std::string> listed;
  for (const RunningJob& report : running) {
    auto job = worker.jobs.find(report.job_id);
    if (job != worker.jobs.end() && job->second == report.attempt) {
      Job& record = *jobs_.at(report.job_id);
      leases_.erase(std::make_pair(record.lease_expiry, record.id));
      record.lease_expiry = now + options_.lease;
      leases_.emplace(record.lease_expiry, record.id);
      listed.insert(report.job_id);
      continue;
    }
    auto zombie = zombies_.find(report.job_id);
    if (zombie != zombies_.end() && zombie->second->worker == &worker &&
        zombie->second->attempt == report.attempt) {
      listed.insert(report.job_id);  // still stopping; Cancel was sent already
      continue;
    }
    cancels.push_back(CancelOrder{worker.info.id, report.job_id, report.attempt});
  }
  // A cancelled job the worker no longer runs has ended: its slot is free.
  std::vector<std::string> ended;
  for (const std::string& job_id : worker.zombies) {
    if (listed.count(job_id) == 0) {
      ended.push_back(job_id);
    }
  }
  for (const std::string& job_id : ended) {
    dropZombie(job_id);
  }
  if (unlisted_ended != nullptr) {
    std::vector<std::string> lost;
    for (const auto& [job_id, attempt] : worker.jobs) {
      if (listed.count(job_id) == 0) {
        lost.push_back(job_id);
      }
    }
    std::sort(lost.begin(), lost.end());  // deterministic event order
    for (const std::string& job_id : lost) {
      unlisted_ended->push_back(endAttempt(*jobs_.at(job_id),
                                           "worker " + worker.info.id + " re-registered without it",
                                           /*count_failure=*/true, /*cancel_on_worker=*/false));
    }
  }
  return cancels;
}

Result<ReattachOutcome> Scheduler::reattachWorker(WorkerInfo info,
                                                  const std::vector<RunningJob>& running,
                                                  TimePoint now) {
  LF_RETURN_IF_ERROR(validateWorker(info));
  ReattachOutcome out;
  auto it = workers_.find(info.id);
  if (it != workers_.end() &&
      (it->second->info.platform != info.platform || it->second->info.slots != info.slots)) {
    out.events = removeWorker(info.id, "re-registered with another platform or slot count", now);
    it = workers_.end();
  }
  if (it == workers_.end()) {
    std::string id = info.id;
    LF_RETURN_IF_ERROR(addWorker(std::move(info), now));
    // Whatever it ran was requeued when it was removed.
    for (const RunningJob& job : running) {
      out.cancels.push_back(CancelOrder{id, job.job_id, job.attempt});
    }
    return out;
  }
  Worker& worker = *it->second;
  std::vector<std::string> old_layers(worker.info.held_diff_ids.begin(),
                                      worker.info.held_diff_ids.end());
  for (const std::string& diff_id : old_layers) {
    dropLayer(worker, diff_id);
  }
  for (const std::string& diff_id : info.held_diff_ids) {
    holdLayer(worker, diff_id);
  }
  worker.info.labels = std::move(info.labels);
  worker.draining = false;
  setDeadline(worker, now + options_.heartbeat_timeout);
  out.cancels = reconcile(worker, running, now, &out.events);
  updateAvailability(worker);
  return out;
}

std::vector<JobEvent> Scheduler::removeWorker(const std::string& worker_id, std::string_view reason,
                                              TimePoint now) {
  (void)now;  // part of the API so a future policy (e.g. flap damping) needs no signature change
  std::vector<JobEvent> events;
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return events;
  }
  Worker& worker = *it->second;
  worker.draining = true;  // no new work while its jobs are moved off it
  updateAvailability(worker);
  std::vector<std::pair<std::string, int>> running(worker.jobs.begin(), worker.jobs.end());
  std::sort(running.begin(), running.end());  // deterministic event order
  const std::string why = "worker " + worker_id + " lost: " + std::string(reason);
  for (const auto& [job_id, attempt] : running) {
    events.push_back(endAttempt(*jobs_.at(job_id), why, /*count_failure=*/true,
                                /*cancel_on_worker=*/false));
  }
  std::vector<std::string> zombies(worker.zombies.begin(), worker.zombies.end());
  for (const std::string& job_id : zombies) {
    dropZombie(job_id);
  }
  std::vector<std::string> held(worker.info.held_diff_ids.begin(), worker.info.held_diff_ids.end());
  for (const std::string& diff_id : held) {
    dropLayer(worker, diff_id);
  }
  worker_deadlines_.erase(std::make_pair(worker.deadline, worker.seq));
  workers_by_seq_.erase(worker.seq);
  workers_.erase(it);
  return events;
}

Result<JobEvent> Scheduler::complete(const std::string& job_id, int attempt,
                                     const std::string& worker_id, const StepResult& result,
                                     TimePoint now) {
  (void)now;  // kept for symmetry and for durations should events carry them later
  const std::string what = "result for job " + job_id + " attempt " + std::to_string(attempt) +
                           " from worker " + worker_id;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    auto zombie = zombies_.find(job_id);
    if (zombie != zombies_.end() && zombie->second->attempt == attempt &&
        zombie->second->worker->info.id == worker_id) {
      dropZombie(job_id);
      return cancelled(what + ": the job was cancelled; result dropped");
    }
    return notFound(what + ": unknown or finished job; result dropped");
  }
  Job& job = *it->second;
  if (job.state != Job::State::kRunning || job.attempt != attempt ||
      job.worker->info.id != worker_id) {
    std::string now_where =
        job.state == Job::State::kRunning
            ? "attempt " + std::to_string(job.attempt) + " runs on worker " + job.worker->info.id
            : "the job is queued";
    return failedPrecondition(what + ": stale (" + now_where + "); result dropped");
  }
  Worker& worker = *job.worker;
  JobEvent event;
  switch (result.outcome()) {
    case layerfarm::v1::STEP_OUTCOME_SUCCEEDED:
      detach(job);
      // The worker materialized the parent chain to run the step and keeps the new layer
      // unpacked: the job's children should go to it.
      for (const std::string& diff_id : job.parent_diff_ids) {
        holdLayer(worker, diff_id);
      }
      holdLayer(worker, result.layer().diff_id());
      event = finishJob(job, JobEvent::Kind::kSucceeded, "");
      break;
    case layerfarm::v1::STEP_OUTCOME_FAILED:
    case layerfarm::v1::STEP_OUTCOME_TIMED_OUT:
    case layerfarm::v1::STEP_OUTCOME_LIMIT_EXCEEDED:
      detach(job);
      event = finishJob(job, JobEvent::Kind::kFailed, describeFailure(result));
      break;
    case layerfarm::v1::STEP_OUTCOME_CANCELLED:
      // Not asked for (a cancelled job is a zombie, handled above): the worker handed the job
      // back, e.g. while draining. Not the job's fault, so no attempt is used up; but a job that
      // keeps coming back (every worker refuses it) fails after max_handbacks.
      if (++job.handbacks >= std::max(1, options_.max_handbacks)) {
        detach(job);
        event = finishJob(
            job, JobEvent::Kind::kFailed,
            "workers handed the job back " + std::to_string(job.handbacks) +
                " times without running it; the last said: " +
                (result.error().empty() ? std::string("no reason given") : result.error()));
        break;
      }
      event = endAttempt(job,
                         "worker " + worker_id + " handed the job back" +
                             (result.error().empty() ? std::string() : ": " + result.error()),
                         false, false);
      break;
    default:  // ERROR, or an outcome this coordinator does not know
      event =
          endAttempt(job,
                     "worker " + worker_id + " could not run the step: " +
                         (result.error().empty() ? std::string("no reason given") : result.error()),
                     /*count_failure=*/true, /*cancel_on_worker=*/false);
      break;
  }
  event.result = result;
  return event;
}

ExpireOutcome Scheduler::expire(TimePoint now) {
  ExpireOutcome out;
  while (!worker_deadlines_.empty() && worker_deadlines_.begin()->first <= now) {
    Worker* worker = workers_by_seq_.at(worker_deadlines_.begin()->second);
    std::string worker_id = worker->info.id;
    std::vector<JobEvent> events = removeWorker(worker_id, "missed heartbeats", now);
    std::move(events.begin(), events.end(), std::back_inserter(out.events));
    out.lost_workers.push_back(std::move(worker_id));
    ++counters_.workers_lost;
  }
  while (!leases_.empty() && leases_.begin()->first <= now) {
    std::string job_id = leases_.begin()->second;
    if (zombies_.count(job_id) != 0) {
      // The worker never confirmed the cancel; stop holding its slot for it.
      dropZombie(job_id);
      continue;
    }
    Job& job = *jobs_.at(job_id);
    std::string reason = "lease of attempt " + std::to_string(job.attempt) + " on worker " +
                         job.worker->info.id + " expired";
    out.events.push_back(
        endAttempt(job, std::move(reason), /*count_failure=*/true, /*cancel_on_worker=*/true));
  }
  return out;
}

std::vector<JobEvent> Scheduler::cancelBuild(const std::string& build_id) {
  std::vector<JobEvent> events;
  auto it = jobs_by_build_.find(build_id);
  if (it == jobs_by_build_.end()) {
    return events;
  }
  std::vector<std::string> job_ids(it->second.begin(), it->second.end());
  std::sort(job_ids.begin(), job_ids.end());  // deterministic event order
  jobs_by_build_.erase(it);
  for (const std::string& job_id : job_ids) {
    Job& job = *jobs_.at(job_id);
    auto& builds = job.build_ids;
    builds.erase(std::remove(builds.begin(), builds.end(), build_id), builds.end());
    if (!builds.empty()) {
      continue;  // another build still wants it
    }
    builds.push_back(build_id);  // the event names the build whose cancel ended the job
    bool was_running = job.state == Job::State::kRunning;
    if (was_running) {
      // The slot stays taken until the worker confirms; see the class comment.
      auto zombie = std::make_unique<Zombie>();
      zombie->worker = job.worker;
      zombie->attempt = job.attempt;
      zombie->lease_expiry = job.lease_expiry;  // its leases_ entry carries over
      job.worker->jobs.erase(job.id);
      job.worker->zombies.insert(job.id);
      zombies_.emplace(job.id, std::move(zombie));
      job.worker = nullptr;
      job.state = Job::State::kIdle;
    }
    JobEvent event =
        finishJob(job, JobEvent::Kind::kCancelled, "build " + build_id + " was cancelled");
    event.cancel_on_worker = was_running;
    events.push_back(std::move(event));
  }
  return events;
}

}  // namespace lf::coordinator
