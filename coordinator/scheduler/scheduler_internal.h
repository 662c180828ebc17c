#pragma once

// The Scheduler's private records, shared by its .cpp files. Not for other code.

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "coordinator/scheduler/scheduler.h"

namespace lf::coordinator {

struct Scheduler::Job {
  enum class State {
    kQueued,   // in its tenant's lane, counted in ready_
    kRunning,  // assigned to `worker`, with a lease
    kIdle,     // between the two, only inside a scheduler call
  };
  std::string id;
  Digest key;
  std::string tenant;
  std::string platform;
  std::vector<std::string> parent_diff_ids;
  std::shared_ptr<const layerfarm::v1::StepSpec> spec;
  std::vector<std::string> build_ids;  // in attach order; never empty while the job exists
  State state = State::kIdle;
  int attempt = 0;                 // the current or last assignment, 0 = never assigned
  int failures = 0;                // worker-side failures so far
  int handbacks = 0;               // times a worker handed it back unrun
  Worker* worker = nullptr;        // while running
  std::string last_worker_id;      // of the current or last attempt
  TimePoint lease_expiry;          // while running
  std::vector<std::string> avoid;  // workers that lost it, most recent last (bounded)
  uint64_t token = 0;              // of its live queue entry while queued
  TimePoint submitted_at;
  TimePoint started_at;
};

struct Scheduler::Worker {
  WorkerInfo info;
  uint64_t seq = 0;
  int running = 0;                            // slots taken: jobs.size() + zombies.size()
  std::unordered_map<std::string, int> jobs;  // running job id -> attempt
  std::unordered_set<std::string> zombies;    // cancelled jobs it has not confirmed
  bool draining = false;
  TimePoint deadline;      // lost when not heard from by then
  bool available = false;  // in available_ under `key`
  LoadKey key;
};

struct Scheduler::Tenant {
  std::string name;
  uint64_t seq = 0;
  uint64_t last_turn = 0;  // 0 = never served
  // One FIFO lane per job platform, so jobs for a platform without a free worker do not hold
  // up the tenant's other jobs. Lanes are served round-robin (lane_order rotates).
  std::unordered_map<std::string, std::deque<QueueEntry>> lanes;
  std::deque<std::string> lane_order;
  size_t ready = 0;  // live queued jobs (lanes may also hold stale entries)
};

// kInvalidArgument for an empty id or slots < 1.
Status validateWorker(const WorkerInfo& info);

struct Scheduler::Zombie {
  Worker* worker = nullptr;
  int attempt = 0;
  TimePoint lease_expiry;
};

}  // namespace lf::coordinator
