#pragma once

// Scheduler: decides which worker runs which layer job (ARCHITECTURE.md "The life of a build",
// steps 4-5; issue 6 section 5).
//
// Pure, deterministic in-memory logic: no threads, no I/O, no clock. The coordinator's network
// thread feeds it what happened (submits, worker registrations, heartbeats, results, cancels)
// with the current time as an argument, and carries out what it returns: Assignments to send as
// JobAssign, JobEvents to apply to builds, and cancel orders to send as Cancel. The same inputs
// always give the same decisions, so tests need no sleeps and no fakes.
//
// Policy:
// - A job is submitted when it is ready (its parent chain is known). Two builds that submit the
//   same cache key while a job for it is pending or running share that job (dedupe); every
//   build attached to it gets its events.
// - schedule() fills free worker slots. Each slot goes to the tenant with queued jobs that was
//   served least recently (round-robin among busy tenants; a tenant that becomes busy goes next),
//   FIFO within a tenant, so one team's burst cannot starve another. A tenant's jobs wait in one
//   lane per platform, so jobs for a platform without a free worker do not hold up its others.
//   Each job goes to the worker that holds the longest prefix of its parent chain unpacked
//   (usually the one that just built the parent), ties to the least loaded (running/slots), then
//   to the earliest registered. A job with a platform runs only on workers of exactly that
//   platform; an empty platform runs anywhere. Workers that lost the job before are used only
//   when no other eligible worker has a free slot.
// - Every assignment carries an attempt number (1, 2, ...) and a lease. Heartbeats renew the
//   worker's liveness and the leases of the jobs the worker reports running. A job whose worker
//   is lost (removed, or silent past heartbeat_timeout) or whose lease expires is requeued at the
//   front of its tenant's queue, on another worker when one has a free slot; after max_attempts
//   such worker-side failures it fails with a reason.
// - A step that ran and failed (FAILED, TIMED_OUT, LIMIT_EXCEEDED) fails the job and every build
//   attached to it, with the step's result, and is not retried. ERROR (the worker could not run
//   the step) is a worker-side failure and is retried as above. CANCELLED from a worker that was
//   not asked to cancel (a draining worker handing its job back) requeues without using up an
//   attempt.
// - Cancelling a build detaches it from its jobs; a job no other build wants is cancelled (a
//   pending one dropped, a running one reported so that the coordinator sends Cancel). The slot
//   of a cancelled running job stays taken until the worker confirms (a result for it, a
//   heartbeat that no longer lists it, the worker's removal, or its lease expiring), so a worker
//   is never sent more jobs than it has slots.
//
// Complexity: submit, complete, heartbeat (per reported job) and each assignment cost
// O(log n) plus, for the affinity choice, O(holders of the chain's first layer x chain length)
// hash lookups. schedule() with nothing to do costs O(1) when no slot is free, else O(tenants);
// expire() costs O(log n) per expired item. Cancelled pending jobs are removed from their queue
// lazily. Nothing scans all jobs except checkInvariants(), which is for tests.
//
// Thread-safety: none; one thread (the coordinator's io_context thread) owns a Scheduler.
// Errors: calls with bad arguments or about unknown/stale things return a Status naming the job,
// attempt and worker; the scheduler's state is unchanged by a call that returns an error (except
// complete()'s kCancelled, which frees the slot the cancelled job held).
// Durability: none. The coordinator records what the events say (StateStore jobs); after a
// restart it resubmits what its builds still need, and workers reporting jobs from before the
// restart get cancels (heartbeat, reattachWorker).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/base/status.h"
#include "common/digest/digest.h"
#include "proto/layerfarm/v1/step.pb.h"

namespace lf::coordinator {

using SchedulerClock = std::chrono::steady_clock;
using TimePoint = SchedulerClock::time_point;
using Duration = std::chrono::milliseconds;

struct SchedulerOptions {
  // How long an assignment stays valid without a heartbeat that reports the job running.
  // Default: 30 s.
  Duration lease{30'000};
  // A worker not heard from (registration or heartbeat) for this long is lost. Default: 15 s.
  Duration heartbeat_timeout{15'000};
  // Worker-side failures (lost worker, expired lease, ERROR result) a job may have; the last one
  // fails the job. Values below 1 count as 1. Default: 3.
  int max_attempts = 3;
  // Hand-backs (a worker returning a job unrun: CANCELLED results nobody asked for, JobRejected)
  // use up no attempt: draining is not the job's fault. A job handed back this many times fails
  // anyway, naming the last reason, so a job every worker refuses cannot bounce between them
  // forever. Values below 1 count as 1. Default: 20.
  int max_handbacks = 20;
  // Job ids are "<job_id_prefix><n>", n = 1, 2, ... per Scheduler. Give each coordinator start a
  // distinct prefix so ids never repeat across restarts. Default: "job-".
  std::string job_id_prefix = "job-";
};

// A worker as it registers.
struct WorkerInfo {
  std::string id;                   // unique among connected workers
  int slots = 1;                    // steps it runs at once; values below 1 are rejected
  std::string platform;             // "linux/amd64"; matched exactly against job platforms
  std::vector<std::string> labels;  // informational (kept for listings), not matched yet
  std::unordered_set<std::string> held_diff_ids;  // layers its layer store holds unpacked
};

// A ready job: one step of one build whose parent chain is known.
struct JobRequest {
  std::string build_id;  // required
  std::string tenant;    // the team, for fairness; empty is a tenant of its own
  Digest key;            // the step's cache key; required; equal keys share one job
  std::string platform;  // empty = any worker
  // The diff IDs of the parent chain, bottom first; the worker holding the longest prefix of it
  // is preferred. May be empty (FROM scratch, or no affinity wanted).
  std::vector<std::string> parent_diff_ids;
  // What the worker runs. submit() sets spec.step_id to the job id.
  layerfarm::v1::StepSpec spec;
};

struct SubmitOutcome {
  std::string job_id;
  bool deduplicated = false;  // the build was attached to an existing pending/running job
};

// Send JobAssign for this to worker_id.
struct Assignment {
  std::string job_id;
  int attempt = 0;  // 1 for the first assignment of the job, +1 per reassignment
  std::string worker_id;
  TimePoint lease_expiry;
  // Shared with the scheduler's job; immutable, safe to keep after the job ends.
  std::shared_ptr<const layerfarm::v1::StepSpec> spec;
};

// Something that happened to a job, for the coordinator to record and report to its builds.
struct JobEvent {
  enum class Kind {
    kSucceeded,  // the step produced `result.layer`; the job is gone
    kFailed,     // the step failed (result holds its output), or out of attempts; the job is gone
    kRequeued,   // the attempt ended without a result; the job waits for another worker
    kCancelled,  // no build wants the job any more; the job is gone
  };
  Kind kind = Kind::kSucceeded;
  std::string job_id;
  Digest key;
  int attempt = 0;        // the attempt that ended (0: the job never ran)
  std::string worker_id;  // the worker of that attempt; empty if none
  // The builds the event concerns: every build attached to the job (for kCancelled, the build
  // whose cancel ended it).
  std::vector<std::string> build_ids;
  // From the worker, for kSucceeded and for kFailed caused by a step result; else default.
  layerfarm::v1::StepResult result;
  // Why, in words, for kFailed, kRequeued and kCancelled: "worker w1 lost: missed heartbeats".
  std::string reason;
  // The coordinator must send Cancel(job_id, attempt) to worker_id: the worker may still be
  // running an attempt the scheduler has given up on.
  bool cancel_on_worker = false;
  TimePoint submitted_at;  // when the job was created
  TimePoint started_at;    // when `attempt` was assigned (epoch if never)
};

// A job a worker reports running, in a heartbeat.
struct RunningJob {
  std::string job_id;
  int attempt = 0;
};

struct WorkerHeartbeat {
  std::vector<RunningJob> running;            // everything the worker is running now
  std::vector<std::string> added_diff_ids;    // layers its store gained since the last report
  std::vector<std::string> removed_diff_ids;  // layers it evicted
};

// Send Cancel(job_id, attempt) to worker_id.
struct CancelOrder {
  std::string worker_id;
  std::string job_id;
  int attempt = 0;
};

struct ReattachOutcome {
  std::vector<JobEvent> events;      // jobs the worker no longer runs, requeued or failed
  std::vector<CancelOrder> cancels;  // listed jobs it must stop
};

struct ExpireOutcome {
  std::vector<std::string> lost_workers;  // removed for missed heartbeats; close their sockets
  std::vector<JobEvent> events;
};

// A snapshot for status pages and metrics.
struct JobView {
  std::string job_id;
  Digest key;
  std::string tenant;
  bool running = false;   // else waiting in the queue
  int attempt = 0;        // the current (running) or last attempt; 0 = never assigned
  std::string worker_id;  // when running
  std::vector<std::string> build_ids;
};

struct WorkerView {
  std::string id;
  std::string platform;
  int slots = 0;
  int running = 0;  // slots taken, including cancelled jobs not yet confirmed
  bool draining = false;
  size_t held_layers = 0;
};

struct SchedulerStats {
  size_t ready = 0;    // jobs waiting for a worker (queue depth)
  size_t running = 0;  // jobs assigned and not finished
  size_t workers = 0;
  size_t draining_workers = 0;
  size_t free_slots = 0;  // on workers that are not draining
  // Counters since construction.
  uint64_t submitted = 0;     // jobs created
  uint64_t deduplicated = 0;  // submits attached to an existing job
  uint64_t assigned = 0;      // assignments (attempts)
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t requeued = 0;
  uint64_t cancelled = 0;
  uint64_t workers_lost = 0;
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a ready job, or attaches the build to the pending/running job with the same key.
  // Submitting the same (build, key) twice returns the same job. kInvalidArgument when build_id
  // or key is empty.
  Result<SubmitOutcome> submit(JobRequest request, TimePoint now);

  // Registers a worker; it is alive until now + heartbeat_timeout. kAlreadyExists when a worker
  // with this id is registered (remove the old registration first), kInvalidArgument for an
  // empty id or slots < 1.
  Status addWorker(WorkerInfo info, TimePoint now);

  // A worker (re)connects and says what it is running. If it is still registered (a new
  // connection replaced one the coordinator has not yet given up on), it keeps the listed jobs
  // that are still its current attempts (their leases renewed); its other jobs are requeued as
  // if it were lost; its layers are replaced by info.held_diff_ids and its drain flag cleared.
  // A changed platform or slot count, or an unknown id, registers it afresh (as removeWorker +
  // addWorker). Either way, listed jobs it should not run come back as cancels. Errors as for
  // addWorker.
  Result<ReattachOutcome> reattachWorker(WorkerInfo info, const std::vector<RunningJob>& running,
                                         TimePoint now);

  // Renews the worker's liveness and the leases of the listed jobs it runs; applies its layer
  // store changes. Returns cancels for listed jobs the worker should not be running (unknown,
  // finished, cancelled, or a stale attempt). A job the scheduler assigned to it but which it
  // does not list is not renewed (its lease will expire), except that a cancelled job it no
  // longer lists frees its slot at once. kNotFound for an unknown worker (ask it to register).
  Result<std::vector<CancelOrder>> heartbeat(const std::string& worker_id, TimePoint now,
                                             const WorkerHeartbeat& report);

  // The worker is gone (connection closed, lost): its jobs are requeued, or failed when out of
  // attempts. `reason` goes into the events ("connection closed"). Unknown worker: no events.
  std::vector<JobEvent> removeWorker(const std::string& worker_id, std::string_view reason,
                                     TimePoint now);

  // The worker takes no new jobs; its running jobs continue. kNotFound for an unknown worker.
  Status drainWorker(const std::string& worker_id);

  // Fills free slots (see the policy above). Returns the assignments to send, in order.
  std::vector<Assignment> schedule(TimePoint now);

  // A worker's result for (job, attempt). Returns the event to apply; see the policy for which
  // outcome does what. Errors (nothing changes except as noted): kNotFound for an unknown or
  // finished job; kFailedPrecondition for a stale attempt or a worker that does not hold the
  // job; kCancelled when the job was cancelled (the worker's slot is freed).
  Result<JobEvent> complete(const std::string& job_id, int attempt, const std::string& worker_id,
                            const layerfarm::v1::StepResult& result, TimePoint now);

  // Removes workers silent for heartbeat_timeout (their jobs requeued as in removeWorker), then
  // requeues jobs whose lease expired (with cancel_on_worker, the worker is still connected).
  // Deadlines are inclusive: a deadline equal to `now` has passed.
  ExpireOutcome expire(TimePoint now);

  // The earliest lease or heartbeat deadline, for the coordinator's timer; nullopt when none.
  std::optional<TimePoint> nextDeadline() const;

  // Detaches the build from its jobs. Jobs no other build wants are cancelled: one kCancelled
  // event each, with cancel_on_worker for the running ones. Unknown build: no events.
  std::vector<JobEvent> cancelBuild(const std::string& build_id);

  std::optional<JobView> job(const std::string& job_id) const;
  std::optional<WorkerView> worker(const std::string& worker_id) const;
  std::vector<WorkerView> workers() const;  // in registration order
  SchedulerStats stats() const;

  // Checks every internal index against the jobs and workers; for tests (it scans everything,
  // queued jobs against their whole lane: quadratic).
  Status checkInvariants() const;

 private:
  struct Job;
  struct Worker;
  struct Tenant;
  struct Zombie;

  // Orders available workers by load (running/slots), then registration order.
  struct LoadKey {
    int running = 0;
    int slots = 1;
    uint64_t seq = 0;
    bool operator<(const LoadKey& other) const;
  };
  // One entry of a tenant's FIFO; stale when the job is gone or was requeued since.
  struct QueueEntry {
    std::string job_id;
    uint64_t token = 0;
  };

  // Internal steps (scheduler.cpp, scheduler_events.cpp).
  Tenant& tenantFor(const std::string& name);
  void enqueue(Job& job, bool front);
  void unqueue(Job& job);
  bool hasCapacity(const std::string& platform) const;
  bool eligible(const Worker& worker, const std::string& platform) const;
  bool assignNext(Tenant& tenant, TimePoint now, std::vector<Assignment>& out);
  Worker* pickWorker(const Job& job, bool allow_avoided);
  Worker* leastLoaded(const std::string& platform, const std::vector<std::string>& avoid);
  Assignment startAttempt(Job& job, Worker& worker, TimePoint now);
  void detach(Job& job);
  void updateAvailability(Worker& worker);
  void setDeadline(Worker& worker, TimePoint deadline);
  JobEvent endAttempt(Job& job, std::string reason, bool count_failure, bool cancel_on_worker);
  JobEvent finishJob(Job& job, JobEvent::Kind kind, std::string reason);
  JobEvent baseEvent(const Job& job, JobEvent::Kind kind) const;
  void eraseJob(const std::string& job_id);
  void holdLayer(Worker& worker, const std::string& diff_id);
  void dropLayer(Worker& worker, const std::string& diff_id);
  void dropZombie(const std::string& job_id);
  std::vector<CancelOrder> reconcile(Worker& worker, const std::vector<RunningJob>& running,
                                     TimePoint now, std::vector<JobEvent>* unlisted_ended);

  SchedulerOptions options_;
  uint64_t next_job_seq_ = 1;
  uint64_t next_worker_seq_ = 1;
  uint64_t next_token_ = 1;

  std::unordered_map<std::string, std::unique_ptr<Job>> jobs_;  // pending and running
  std::unordered_map<Digest, std::string> job_by_key_;
  std::unordered_map<std::string, std::unordered_set<std::string>> jobs_by_build_;
  // Cancelled jobs still running on a worker, until it confirms.
  std::unordered_map<std::string, std::unique_ptr<Zombie>> zombies_;

  std::unordered_map<std::string, std::unique_ptr<Tenant>> tenants_;
  uint64_t next_tenant_seq_ = 1;
  uint64_t next_turn_ = 1;
  // Tenants with queued jobs by (last turn, tenant seq): the least recently served goes first,
  // which is round-robin among busy tenants and lets a newly busy tenant in at once.
  std::map<std::pair<uint64_t, uint64_t>, Tenant*> turns_;
  size_t ready_ = 0;

  std::unordered_map<std::string, std::unique_ptr<Worker>> workers_;
  std::map<uint64_t, Worker*> workers_by_seq_;
  // Workers with a free slot that are not draining, per platform, least loaded first.
  std::map<std::string, std::map<LoadKey, Worker*>> available_;
  size_t free_slots_ = 0;
  std::unordered_map<std::string, std::unordered_set<Worker*>> holders_;  // diff ID -> workers

  std::set<std::pair<TimePoint, std::string>> leases_;         // running and zombie jobs
  std::set<std::pair<TimePoint, uint64_t>> worker_deadlines_;  // by worker seq

  SchedulerStats counters_;
};

}  // namespace lf::coordinator
