#pragma once

// JobSlots: the worker's bounded pool of step threads, one thread per slot, and the table of
// jobs running on them.
//
// start() takes a job only if a slot is free and the same (job, attempt) is not running; the
// job runs on a pool thread through the StepExecutor, its output goes to the Outbox line by
// line (pushLog, which may block: backpressure), and its JobResult is pushed to the Outbox
// before the job leaves the running table, so at every moment a job is either listed as
// running or has its result queued (a heartbeat never loses it). `on_done` runs on the pool
// thread after that.
//
// Thread-safety: all methods are thread-safe. shutdown() (also run by the destructor) cancels
// running steps and joins the threads; call it before the executor or the Outbox go away.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/base/status.h"
#include "proto/layerfarm/v1/worker_protocol.pb.h"
#include "worker/daemon/outbox.h"
#include "worker/daemon/worker_daemon.h"

namespace lf::worker {

class JobSlots {
 public:
  JobSlots(uint32_t slots, StepExecutor& executor, Outbox& outbox, std::function<void()> on_done);
  ~JobSlots();
  JobSlots(const JobSlots&) = delete;
  JobSlots& operator=(const JobSlots&) = delete;

  // kResourceExhausted when no slot is free, kAlreadyExists when the job runs already,
  // kFailedPrecondition after shutdown().
  Status start(const layerfarm::v1::JobAssign& assign);
  // Cancels a running job; false if it is not running.
  bool cancel(const std::string& job_id, uint32_t attempt);
  void cancelAll();
  std::vector<layerfarm::v1::JobId> running() const;
  size_t runningCount() const;
  uint32_t freeSlots() const;
  void shutdown();

 private:
  struct Job {
    layerfarm::v1::JobAssign assign;
    sandbox::Canceller canceller;
  };
  void threadMain();
  void runJob(const std::shared_ptr<Job>& job);

  const uint32_t slots_;
  StepExecutor& executor_;
  Outbox& outbox_;
  const std::function<void()> on_done_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;  // "<job>#<attempt>": queued or running
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace lf::worker
