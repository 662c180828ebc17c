#include "worker/daemon/job_slots.h"

#include <spdlog/spdlog.h>

namespace lf::worker {
namespace {

namespace v1 = layerfarm::v1;

std::string jobKey(const std::string& job_id, uint32_t attempt) {
  return job_id + "#" + std::to_string(attempt);
}

}  // namespace

JobSlots::JobSlots(uint32_t slots, StepExecutor& executor, Outbox& outbox,
                   std::function<void()> on_done)
    : slots_(slots), executor_(executor), outbox_(outbox), on_done_(std::move(on_done)) {
  threads_.reserve(slots_);
  for (uint32_t i = 0; i < slots_; ++i) {
    threads_.emplace_back([this] { threadMain(); });
  }
}

JobSlots::~JobSlots() { shutdown(); }

Status JobSlots::start(const v1::JobAssign& assign) {
  std::string key = jobKey(assign.job_id(), assign.attempt());
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      return failedPrecondition("job " + key + ": the worker is shutting down");
    }
    if (jobs_.count(key) != 0) {
      return alreadyExists("job " + key + ": already running on this worker");
    }
    if (jobs_.size() >= slots_) {
      return resourceExhausted("job " + key + ": no free slot (" + std::to_string(slots_) +
                               " running)");
    }
    auto job = std::make_shared<Job>();
    job->assign = assign;
    jobs_[key] = job;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return Status::ok();
}

bool JobSlots::cancel(const std::string& job_id, uint32_t attempt) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(jobKey(job_id, attempt));
  if (it == jobs_.end()) {
    return false;
  }
  it->second->canceller.cancel();
  return true;
}

void JobSlots::cancelAll() {
  std::lock_guard lock(mu_);
  for (auto& [key, job] : jobs_) {
    job->canceller.cancel();
  }
}

std::vector<v1::JobId> JobSlots::running() const {
  std::lock_guard lock(mu_);
  std::vector<v1::JobId> ids;
  for (const auto& [key, job] : jobs_) {
    v1::JobId id;
    id.set_job_id(job->assign.job_id());
    id.set_attempt(job->assign.attempt());
    ids.push_back(std::move(id));
  }
  return ids;
}

size_t JobSlots::runningCount() const {
  std::lock_guard lock(mu_);
  return jobs_.size();
}

uint32_t JobSlots::freeSlots() const {
  std::lock_guard lock(mu_);
  return slots_ - static_cast<uint32_t>(jobs_.size());
}

void JobSlots::shutdown() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [key, job] : jobs_) {
      job->canceller.cancel();
    }
  }
  cv_.notify_all();
  for (auto& thread : threads_) {
    if (thread.joinable()) {
      thread.join();
    }
  }
}

void JobSlots::threadMain() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) {
        return;  // stopping with nothing left to run
      }
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    runJob(job);
  }
}

void JobSlots::runJob(const std::shared_ptr<Job>& job) {
  const v1::JobAssign& assign = job->assign;
  spdlog::info("job started job={} attempt={} step={}", assign.job_id(), assign.attempt(),
               assign.spec().step_id());
  auto log = [&](const v1::StepLog& line) {
    // A dropped line is counted in the Outbox and reported with the next frame.
    outbox_.pushLog(assign.job_id(), assign.attempt(), line);
  };
  v1::StepResult result;
  if (job->canceller.isCancelled()) {
    result.set_step_id(assign.spec().step_id());
    result.set_outcome(v1::STEP_OUTCOME_CANCELLED);
    result.set_error("cancelled before it started");
  } else {
    result = executor_.run(assign.spec(), log, &job->canceller);
  }
  spdlog::info("job finished job={} attempt={} outcome={}", assign.job_id(), assign.attempt(),
               v1::StepOutcome_Name(result.outcome()));
  v1::WorkerMessage message;
  v1::JobResult& out = *message.mutable_job_result();
  out.set_job_id(assign.job_id());
  out.set_attempt(assign.attempt());
  *out.mutable_result() = std::move(result);
  outbox_.push(std::move(message));
  {
    std::lock_guard lock(mu_);
    jobs_.erase(jobKey(assign.job_id(), assign.attempt()));
  }
  if (on_done_) {
    on_done_();
  }
}

}  // namespace lf::worker
