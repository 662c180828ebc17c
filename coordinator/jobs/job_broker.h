#pragma once

// JobBroker: the boundary between the builds (coordinator/builds) and the workers
// (coordinator/workers). Builds submit ready layer jobs and cancel; the broker runs them on
// workers through the Scheduler and tells a JobListener what happened.
//
// The implementation (coordinator/workers/worker_server.h, SchedulerBroker) owns the Scheduler,
// the workers' WebSocket connections and the lease/heartbeat timer. Tests of the build side use
// their own JobBroker (e.g. one that runs steps in-process).
//
// Thread-safety: every method may be called from any thread. Listener calls come from the
// broker's own thread(s), never while the broker holds a lock, so a listener may call submit()
// or cancelBuild() from inside a callback. A listener must not block for long (it delays every
// worker's traffic): record the event, wake the build's thread, return.

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "coordinator/scheduler/scheduler.h"
#include "proto/layerfarm/v1/step.pb.h"

namespace lf::coordinator {

// A job was sent to a worker (JobAssign written).
struct JobAssigned {
  std::string job_id;
  int attempt = 0;
  std::string worker_id;
  std::vector<std::string> build_ids;  // every build attached to the job
};

// Output lines of a running job, in order.
struct JobLogBatch {
  std::string job_id;
  int attempt = 0;
  std::string worker_id;
  std::vector<std::string> build_ids;
  std::vector<layerfarm::v1::StepLog> lines;
  uint64_t dropped_lines = 0;  // the worker dropped this many lines before these
};

class JobListener {
 public:
  virtual ~JobListener() = default;
  virtual void onJobAssigned(const JobAssigned& assigned) = 0;
  virtual void onJobLog(const JobLogBatch& batch) = 0;
  // Succeeded, failed, requeued or cancelled (Scheduler's JobEvent, already applied).
  virtual void onJobEvent(const JobEvent& event) = 0;
};

class JobBroker {
 public:
  virtual ~JobBroker() = default;

  // Set once, before the first submit. Not owned; must outlive the broker's activity.
  virtual void setListener(JobListener* listener) = 0;

  // Queues a ready job (or attaches the build to the running job with the same key) and
  // dispatches to free workers at once.
  virtual Result<SubmitOutcome> submit(JobRequest request) = 0;

  // Detaches the build from its jobs; jobs nobody else wants are cancelled on their workers.
  // Their kCancelled events reach the listener.
  virtual void cancelBuild(const std::string& build_id) = 0;

  virtual std::vector<WorkerView> workers() const = 0;
  virtual SchedulerStats stats() const = 0;
};

}  // namespace lf::coordinator
