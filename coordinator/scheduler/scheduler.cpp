// Scheduler: submits, workers, queues and placement. Results, expiry and cancels are in
// scheduler_events.cpp; the invariant check in scheduler_invariants.cpp.

#include "coordinator/scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "coordinator/scheduler/scheduler_internal.h"

namespace lf::coordinator {

bool Scheduler::LoadKey::operator<(const LoadKey& other) const {
  // running/slots < other.running/other.slots, without division.
  int64_t lhs = int64_t{running} * other.slots;
  int64_t rhs = int64_t{other.running} * slots;
  if (lhs != rhs) {
    return lhs < rhs;
  }
  return seq < other.seq;
}

Scheduler::Scheduler(SchedulerOptions options) : options_(std::move(options)) {
  options_.max_attempts = std::max(options_.max_attempts, 1);
}

Scheduler::~Scheduler() = default;

Result<SubmitOutcome> Scheduler::submit(JobRequest request, TimePoint now) {
  if (request.build_id.empty()) {
    return invalidArgument("scheduler submit: build_id is empty");
  }
  if (request.key.empty()) {
    return invalidArgument("scheduler submit for build " + request.build_id +
                           ": the cache key is empty");
  }
  if (auto it = job_by_key_.find(request.key); it != job_by_key_.end()) {
    Job& job = *jobs_.at(it->second);
    auto& builds = job.build_ids;
    if (std::find(builds.begin(), builds.end(), request.build_id) == builds.end()) {
      builds.push_back(request.build_id);
      jobs_by_build_[request.build_id].insert(job.id);
      ++counters_.deduplicated;
    }
    return SubmitOutcome{job.id, true};
  }
  auto owned = std::make_unique<Job>();
  Job& job = *owned;
  job.id = options_.job_id_prefix + std::to_string(next_job_seq_++);
  job.key = request.key;
  job.tenant = std::move(request.tenant);
  job.platform = std::move(request.platform);
  job.parent_diff_ids = std::move(request.parent_diff_ids);
  request.spec.set_step_id(job.id);
  job.spec = std::make_shared<const layerfarm::v1::StepSpec>(std::move(request.spec));
  job.build_ids.push_back(request.build_id);
  job.submitted_at = now;
  jobs_by_build_[request.build_id].insert(job.id);
  job_by_key_.emplace(job.key, job.id);
  jobs_.emplace(job.id, std::move(owned));
  ++counters_.submitted;
  enqueue(job, /*front=*/false);
  return SubmitOutcome{job.id, false};
}

Scheduler::Tenant& Scheduler::tenantFor(const std::string& name) {
  auto& slot = tenants_[name];
  if (!slot) {
    slot = std::make_unique<Tenant>();
    slot->name = name;
    slot->seq = next_tenant_seq_++;
  }
  return *slot;
}

void Scheduler::enqueue(Job& job, bool front) {
  Tenant& tenant = tenantFor(job.tenant);
  auto [lane, created] = tenant.lanes.try_emplace(job.platform);
  if (created) {
    tenant.lane_order.push_back(job.platform);
  }
  job.token = next_token_++;
  job.state = Job::State::kQueued;
  QueueEntry entry{job.id, job.token};
  if (front) {
    lane->second.push_front(std::move(entry));
  } else {
    lane->second.push_back(std::move(entry));
  }
  ++ready_;
  if (tenant.ready++ == 0) {
    turns_.emplace(std::make_pair(tenant.last_turn, tenant.seq), &tenant);
  }
}

// Takes a queued job out of the ready count; its queue entry goes stale and is skipped later.
void Scheduler::unqueue(Job& job) {
  Tenant& tenant = *tenants_.at(job.tenant);
  job.state = Job::State::kIdle;
  job.token = 0;
  --ready_;
  if (--tenant.ready == 0) {
    turns_.erase(std::make_pair(tenant.last_turn, tenant.seq));
    // Only stale entries are left.
    tenant.lanes.clear();
    tenant.lane_order.clear();
  }
}

Status validateWorker(const WorkerInfo& info) {
  if (info.id.empty()) {
    return invalidArgument("scheduler: the worker id is empty");
  }
  if (info.slots < 1) {
    return invalidArgument("scheduler: worker " + info.id + ": slots must be at least 1, got " +
                           std::to_string(info.slots));
  }
  return Status::ok();
}

Status Scheduler::addWorker(WorkerInfo info, TimePoint now) {
  LF_RETURN_IF_ERROR(validateWorker(info));
  if (workers_.count(info.id) != 0) {
    return alreadyExists("scheduler addWorker: worker " + info.id + " is already registered");
  }
  auto owned = std::make_unique<Worker>();
  Worker& worker = *owned;
  worker.seq = next_worker_seq_++;
  std::unordered_set<std::string> held = std::move(info.held_diff_ids);
  worker.info = std::move(info);
  for (const std::string& diff_id : held) {
    holdLayer(worker, diff_id);
  }
  worker.key = LoadKey{0, worker.info.slots, worker.seq};
  workers_by_seq_.emplace(worker.seq, &worker);
  workers_.emplace(worker.info.id, std::move(owned));
  setDeadline(worker, now + options_.heartbeat_timeout);
  updateAvailability(worker);
  return Status::ok();
}

Status Scheduler::drainWorker(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return notFound("scheduler drainWorker: unknown worker " + worker_id);
  }
  it->second->draining = true;
  updateAvailability(*it->second);
  return Status::ok();
}

void Scheduler::setDeadline(Worker& worker, TimePoint deadline) {
  worker_deadlines_.erase(std::make_pair(worker.deadline, worker.seq));
  worker.deadline = deadline;
  worker_deadlines_.emplace(deadline, worker.seq);
}

// Keeps available_ and free_slots_ in step with the worker's load and draining flag. Call after
// every change to either.
void Scheduler::updateAvailability(Worker& worker) {
  const std::string& platform = worker.info.platform;
  if (worker.available) {
    auto by_platform = available_.find(platform);
    by_platform->second.erase(worker.key);
    if (by_platform->second.empty()) {
      available_.erase(by_platform);
    }
    free_slots_ -= static_cast<size_t>(worker.info.slots - worker.key.running);
    worker.available = false;
  }
  worker.key = LoadKey{worker.running, worker.info.slots, worker.seq};
  if (!worker.draining && worker.running < worker.info.slots) {
    available_[platform].emplace(worker.key, &worker);
    free_slots_ += static_cast<size_t>(worker.info.slots - worker.running);
    worker.available = true;
  }
}

void Scheduler::holdLayer(Worker& worker, const std::string& diff_id) {
  if (diff_id.empty()) {
    return;
  }
  if (worker.info.held_diff_ids.insert(diff_id).second) {
    holders_[diff_id].insert(&worker);
  }
}

void Scheduler::dropLayer(Worker& worker, const std::string& diff_id) {
  if (worker.info.held_diff_ids.erase(diff_id) == 0) {
    return;
  }
  auto it = holders_.find(diff_id);
  it->second.erase(&worker);
  if (it->second.empty()) {
    holders_.erase(it);
  }
}

bool Scheduler::hasCapacity(const std::string& platform) const {
  return platform.empty() ? free_slots_ > 0 : available_.count(platform) != 0;
}

bool Scheduler::eligible(const Worker& worker, const std::string& platform) const {
  return worker.available && (platform.empty() || worker.info.platform == platform);
}

std::vector<Assignment> Scheduler::schedule(TimePoint now) {
  std::vector<Assignment> out;
  // Tenants that cannot place anything in this call stay blocked for the rest of it (capacity
  // only shrinks while assigning); they keep their turn for the next call.
  std::vector<Tenant*> blocked;
  while (free_slots_ > 0 && !turns_.empty()) {
    auto first = turns_.begin();
    Tenant* tenant = first->second;
    turns_.erase(first);
    if (!assignNext(*tenant, now, out)) {
      blocked.push_back(tenant);
      continue;
    }
    tenant->last_turn = next_turn_++;
    if (tenant->ready > 0) {
      turns_.emplace(std::make_pair(tenant->last_turn, tenant->seq), tenant);
    } else {
      tenant->lanes.clear();  // only stale entries are left
      tenant->lane_order.clear();
    }
  }
  for (Tenant* tenant : blocked) {
    turns_.emplace(std::make_pair(tenant->last_turn, tenant->seq), tenant);
  }
  return out;
}

// Assigns the tenant's next job whose platform has a free worker, if any. The tenant is out of
// turns_ during the call; unqueue() must not re-add or remove it, which holds because the tenant
// still has ready jobs until its last one is assigned here.
bool Scheduler::assignNext(Tenant& tenant, TimePoint now, std::vector<Assignment>& out) {
  for (size_t i = 0, n = tenant.lane_order.size(); i < n && !tenant.lane_order.empty(); ++i) {
    std::string platform = std::move(tenant.lane_order.front());
    tenant.lane_order.pop_front();
    auto lane_it = tenant.lanes.find(platform);
    std::deque<QueueEntry>& lane = lane_it->second;
    Job* job = nullptr;
    while (!lane.empty()) {
      auto it = jobs_.find(lane.front().job_id);
      if (it != jobs_.end() && it->second->state == Job::State::kQueued &&
          it->second->token == lane.front().token) {
        job = it->second.get();
        break;
      }
      lane.pop_front();  // stale: cancelled or requeued since
    }
    if (job == nullptr) {
      tenant.lanes.erase(lane_it);
      continue;
    }
    tenant.lane_order.push_back(platform);
    if (!hasCapacity(platform)) {
      continue;
    }
    Worker* worker = pickWorker(*job, /*allow_avoided=*/false);
    if (worker == nullptr) {
      worker = pickWorker(*job, /*allow_avoided=*/true);
    }
    // hasCapacity() said an eligible worker exists, and the fallback accepts any of them.
    LF_CHECK(worker != nullptr, "a platform with capacity has no eligible worker");
    lane.pop_front();
    --tenant.ready;  // not unqueue(): the tenant is out of turns_ while it is being served
    --ready_;
    out.push_back(startAttempt(*job, *worker, now));
    return true;
  }
  return false;
}

// The eligible worker holding the longest prefix of the job's parent chain (ties: least loaded,
// then earliest registered); else the least loaded eligible worker. Without allow_avoided,
// workers that lost this job before are skipped.
Scheduler::Worker* Scheduler::pickWorker(const Job& job, bool allow_avoided) {
  static const std::vector<std::string> kNone;
  const std::vector<std::string>& avoid = allow_avoided ? kNone : job.avoid;
  const std::vector<std::string>& chain = job.parent_diff_ids;
  if (chain.empty()) {
    return leastLoaded(job.platform, avoid);
  }
  // The best candidate among the holders of one layer of the chain.
  auto best_among_holders = [&](const std::string& diff_id) -> std::pair<Worker*, size_t> {
    Worker* best = nullptr;
    size_t best_prefix = 0;
    auto holders = holders_.find(diff_id);
    if (holders == holders_.end()) {
      return {nullptr, 0};
    }
    for (Worker* worker : holders->second) {
      if (!eligible(*worker, job.platform) ||
          std::find(avoid.begin(), avoid.end(), worker->info.id) != avoid.end()) {
        continue;
      }
      size_t prefix = 0;
      while (prefix < chain.size() && worker->info.held_diff_ids.count(chain[prefix]) != 0) {
        ++prefix;
      }
      if (prefix > best_prefix ||
          (prefix == best_prefix && prefix > 0 && worker->key < best->key)) {
        best = worker;
        best_prefix = prefix;
      }
    }
    return {best, best_prefix};
  };
  // Usually one worker (the one that built the parent) holds the whole chain: the holders of the
  // top layer are few, and a full-chain holder among them cannot be beaten.
  auto [top, top_prefix] = best_among_holders(chain.back());
  if (top != nullptr && top_prefix == chain.size()) {
    return top;
  }
  // Every worker with a non-empty prefix holds the bottom layer.
  auto [best, best_prefix] = best_among_holders(chain.front());
  if (best != nullptr) {
    return best;
  }
  return leastLoaded(job.platform, avoid);
}

Scheduler::Worker* Scheduler::leastLoaded(const std::string& platform,
                                          const std::vector<std::string>& avoid) {
  auto first_allowed = [&](const std::map<LoadKey, Worker*>& workers) -> Worker* {
    for (const auto& [key, worker] : workers) {
      if (std::find(avoid.begin(), avoid.end(), worker->info.id) == avoid.end()) {
        return worker;
      }
    }
    return nullptr;
  };
  if (!platform.empty()) {
    auto it = available_.find(platform);
    return it == available_.end() ? nullptr : first_allowed(it->second);
  }
  Worker* best = nullptr;
  for (const auto& [name, workers] : available_) {
    Worker* candidate = first_allowed(workers);
    if (candidate != nullptr && (best == nullptr || candidate->key < best->key)) {
      best = candidate;
    }
  }
  return best;
}

Assignment Scheduler::startAttempt(Job& job, Worker& worker, TimePoint now) {
  job.state = Job::State::kRunning;
  job.token = 0;
  ++job.attempt;
  job.worker = &worker;
  job.last_worker_id = worker.info.id;
  job.started_at = now;
  job.lease_expiry = now + options_.lease;
  leases_.emplace(job.lease_expiry, job.id);
  worker.jobs[job.id] = job.attempt;
  ++worker.running;
  updateAvailability(worker);
  ++counters_.assigned;
  return Assignment{job.id, job.attempt, worker.info.id, job.lease_expiry, job.spec};
}

std::optional<TimePoint> Scheduler::nextDeadline() const {
  std::optional<TimePoint> next;
  if (!leases_.empty()) {
    next = leases_.begin()->first;
  }
  if (!worker_deadlines_.empty() && (!next || worker_deadlines_.begin()->first < *next)) {
    next = worker_deadlines_.begin()->first;
  }
  return next;
}

std::optional<JobView> Scheduler::job(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return std::nullopt;
  }
  const Job& job = *it->second;
  JobView view;
  view.job_id = job.id;
  view.key = job.key;
  view.tenant = job.tenant;
  view.running = job.state == Job::State::kRunning;
  view.attempt = job.attempt;
  if (view.running) {
    view.worker_id = job.worker->info.id;
  }
  view.build_ids = job.build_ids;
  return view;
}

static WorkerView viewOf(const WorkerInfo& info, int running, bool draining) {
  WorkerView view;
  view.id = info.id;
  view.platform = info.platform;
  view.slots = info.slots;
  view.running = running;
  view.draining = draining;
  view.held_layers = info.held_diff_ids.size();
  return view;
}

std::optional<WorkerView> Scheduler::worker(const std::string& worker_id) const {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return std::nullopt;
  }
  return viewOf(it->second->info, it->second->running, it->second->draining);
}

std::vector<WorkerView> Scheduler::workers() const {
  std::vector<WorkerView> views;
  views.reserve(workers_by_seq_.size());
  for (const auto& [seq, worker] : workers_by_seq_) {
    views.push_back(viewOf(worker->info, worker->running, worker->draining));
  }
  return views;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats stats = counters_;
  stats.ready = ready_;
  stats.running = jobs_.size() - ready_;
  stats.workers = workers_.size();
  stats.draining_workers = static_cast<size_t>(std::count_if(
      workers_.begin(), workers_.end(), [](const auto& entry) { return entry.second->draining; }));
  stats.free_slots = free_slots_;
  return stats;
}

}  // namespace lf::coordinator
