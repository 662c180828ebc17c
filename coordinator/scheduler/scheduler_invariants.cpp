// Scheduler::checkInvariants: every index checked against the jobs and workers, for tests.

#include <algorithm>
#include <map>
#include <utility>

#include "coordinator/scheduler/scheduler.h"
#include "coordinator/scheduler/scheduler_internal.h"

namespace lf::coordinator {
namespace {

Status broken(const std::string& what) { return internalError("scheduler invariant: " + what); }

}  // namespace

Status Scheduler::checkInvariants() const {
  size_t queued = 0;
  size_t running = 0;
  std::map<std::string, size_t> queued_by_tenant;
  for (const auto& [id, owned] : jobs_) {
    const Job& job = *owned;
    if (job.id != id) {
      return broken("job " + id + " is stored under another id");
    }
    auto by_key = job_by_key_.find(job.key);
    if (by_key == job_by_key_.end() || by_key->second != id) {
      return broken("job " + id + " is not the job of its key");
    }
    if (job.build_ids.empty()) {
      return broken("job " + id + " has no build");
    }
    for (const std::string& build : job.build_ids) {
      auto jobs = jobs_by_build_.find(build);
      if (jobs == jobs_by_build_.end() || jobs->second.count(id) == 0) {
        return broken("job " + id + " is missing from build " + build);
      }
    }
    switch (job.state) {
      case Job::State::kQueued: {
        ++queued;
        ++queued_by_tenant[job.tenant];
        auto tenant = tenants_.find(job.tenant);
        if (tenant == tenants_.end()) {
          return broken("queued job " + id + " has no tenant");
        }
        auto lane = tenant->second->lanes.find(job.platform);
        size_t live = 0;
        if (lane != tenant->second->lanes.end()) {
          live = static_cast<size_t>(std::count_if(
              lane->second.begin(), lane->second.end(),
              [&](const QueueEntry& e) { return e.job_id == id && e.token == job.token; }));
        }
        if (live != 1) {
          return broken("queued job " + id + " has " + std::to_string(live) + " live entries");
        }
        break;
      }
      case Job::State::kRunning: {
        ++running;
        if (job.worker == nullptr || workers_.count(job.worker->info.id) == 0) {
          return broken("running job " + id + " has no worker");
        }
        auto held = job.worker->jobs.find(id);
        if (held == job.worker->jobs.end() || held->second != job.attempt) {
          return broken("running job " + id + " is not on its worker's list");
        }
        if (leases_.count(std::make_pair(job.lease_expiry, id)) == 0) {
          return broken("running job " + id + " has no lease");
        }
        break;
      }
      case Job::State::kIdle:
        return broken("job " + id + " is idle between calls");
    }
  }
  if (queued != ready_) {
    return broken("ready count " + std::to_string(ready_) + " != queued jobs " +
                  std::to_string(queued));
  }
  if (job_by_key_.size() != jobs_.size()) {
    return broken("key index size differs from the job count");
  }
  for (const auto& [build, ids] : jobs_by_build_) {
    for (const std::string& id : ids) {
      auto job = jobs_.find(id);
      if (job == jobs_.end()) {
        return broken("build " + build + " lists finished job " + id);
      }
      const auto& builds = job->second->build_ids;
      if (std::find(builds.begin(), builds.end(), build) == builds.end()) {
        return broken("build " + build + " lists job " + id + " that does not list it");
      }
    }
  }
  size_t turns = 0;
  for (const auto& [name, tenant] : tenants_) {
    size_t expected = queued_by_tenant.count(name) != 0 ? queued_by_tenant.at(name) : 0;
    if (tenant->ready != expected) {
      return broken("tenant '" + name + "' counts " + std::to_string(tenant->ready) +
                    " ready jobs, has " + std::to_string(expected));
    }
    auto turn = turns_.find(std::make_pair(tenant->last_turn, tenant->seq));
    bool in_turns = turn != turns_.end() && turn->second == tenant.get();
    if (in_turns != (tenant->ready > 0)) {
      return broken("tenant '" + name + "' is wrongly " + (in_turns ? "in" : "out of") +
                    " the turn order");
    }
    turns += in_turns ? 1 : 0;
  }
  if (turns != turns_.size()) {
    return broken("the turn order holds unknown tenants");
  }

  size_t free_slots = 0;
  size_t zombies = 0;
  size_t held_total = 0;
  for (const auto& [id, owned] : workers_) {
    const Worker& worker = *owned;
    if (worker.running != static_cast<int>(worker.jobs.size() + worker.zombies.size())) {
      return broken("worker " + id + " running count is off");
    }
    if (worker.running > worker.info.slots) {
      return broken("worker " + id + " runs more jobs than it has slots");
    }
    for (const auto& [job_id, attempt] : worker.jobs) {
      auto job = jobs_.find(job_id);
      if (job == jobs_.end() || job->second->worker != &worker || job->second->attempt != attempt) {
        return broken("worker " + id + " lists job " + job_id + " that is not running on it");
      }
    }
    for (const std::string& job_id : worker.zombies) {
      auto zombie = zombies_.find(job_id);
      if (zombie == zombies_.end() || zombie->second->worker != &worker) {
        return broken("worker " + id + " lists unknown cancelled job " + job_id);
      }
    }
    zombies += worker.zombies.size();
    bool should_be_available = !worker.draining && worker.running < worker.info.slots;
    if (worker.available != should_be_available) {
      return broken("worker " + id + " availability is stale");
    }
    if (worker.available) {
      free_slots += static_cast<size_t>(worker.info.slots - worker.running);
      auto platform = available_.find(worker.info.platform);
      if (platform == available_.end() || platform->second.count(worker.key) == 0 ||
          worker.key.running != worker.running) {
        return broken("available worker " + id + " is not indexed under its load");
      }
    }
    if (worker_deadlines_.count(std::make_pair(worker.deadline, worker.seq)) == 0) {
      return broken("worker " + id + " has no deadline");
    }
    for (const std::string& diff_id : worker.info.held_diff_ids) {
      auto holders = holders_.find(diff_id);
      if (holders == holders_.end() || holders->second.count(owned.get()) == 0) {
        return broken("worker " + id + " holds " + diff_id + " but is not indexed as a holder");
      }
    }
    held_total += worker.info.held_diff_ids.size();
  }
  if (free_slots != free_slots_) {
    return broken("free slot count " + std::to_string(free_slots_) +
                  " != " + std::to_string(free_slots));
  }
  size_t indexed_available = 0;
  for (const auto& [platform, workers] : available_) {
    if (workers.empty()) {
      return broken("empty available set for platform '" + platform + "'");
    }
    indexed_available += workers.size();
  }
  size_t available_count = static_cast<size_t>(std::count_if(
      workers_.begin(), workers_.end(), [](const auto& w) { return w.second->available; }));
  if (indexed_available != available_count) {
    return broken("the available index holds workers that are not available");
  }
  size_t holder_entries = 0;
  for (const auto& [diff_id, holders] : holders_) {
    holder_entries += holders.size();
  }
  if (holder_entries != held_total) {
    return broken("the holder index holds stale entries");
  }
  if (zombies != zombies_.size()) {
    return broken("cancelled jobs not on their worker's list");
  }
  if (leases_.size() != running + zombies_.size()) {
    return broken("lease count " + std::to_string(leases_.size()) + " != running " +
                  std::to_string(running) + " + cancelled " + std::to_string(zombies_.size()));
  }
  if (worker_deadlines_.size() != workers_.size() || workers_by_seq_.size() != workers_.size()) {
    return broken("worker indexes differ in size");
  }
  return Status::ok();
}

}  // namespace lf::coordinator
