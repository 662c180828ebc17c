// What each WorkerMessage does to the Scheduler, and how the Scheduler's decisions reach the
// workers and the JobListener. No sockets here (worker_server.cpp has them): every function runs
// on the io thread unless its comment says otherwise, takes `mu` only around Scheduler calls and
// sends frames / calls the listener after releasing it.

#include <spdlog/spdlog.h>

#include "coordinator/metrics/coordinator_metrics.h"
#include "coordinator/workers/worker_server_internal.h"

namespace lf::coordinator {
namespace {

namespace v1 = layerfarm::v1;

constexpr uint32_t kProtocolMajor = 1;
constexpr uint32_t kProtocolMinor = 0;

std::vector<RunningJob> runningOf(const google::protobuf::RepeatedPtrField<v1::JobId>& ids) {
  std::vector<RunningJob> out;
  out.reserve(ids.size());
  for (const v1::JobId& id : ids) {
    out.push_back(RunningJob{id.job_id(), static_cast<int>(id.attempt())});
  }
  return out;
}

std::string_view outcomeName(JobEvent::Kind kind) {
  switch (kind) {
    case JobEvent::Kind::kSucceeded:
      return "succeeded";
    case JobEvent::Kind::kFailed:
      return "failed";
    case JobEvent::Kind::kRequeued:
      return "requeued";
    case JobEvent::Kind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

WorkerInfo workerInfoOf(const v1::Register& r) {
  WorkerInfo info;
  info.id = r.worker_id();
  // Bounded so that a silly value cannot overflow the scheduler's int arithmetic.
  info.slots = static_cast<int>(std::min<uint32_t>(r.slots(), 1u << 20));
  info.platform = r.platform();
  for (const auto& [k, v] : r.labels()) {
    info.labels.push_back(k + "=" + v);
  }
  info.held_diff_ids.insert(r.diff_ids().begin(), r.diff_ids().end());
  return info;
}

v1::CoordinatorMessage registeredFrame(bool accepted, const std::string& reason,
                                       uint32_t heartbeat_interval_ms,
                                       const std::string& server_version) {
  v1::CoordinatorMessage m;
  v1::Registered& reg = *m.mutable_registered();
  reg.set_accepted(accepted);
  reg.set_reason(reason);
  reg.set_heartbeat_interval_ms(heartbeat_interval_ms);
  reg.set_server_version(server_version);
  reg.mutable_protocol_version()->set_major(kProtocolMajor);
  reg.mutable_protocol_version()->set_minor(kProtocolMinor);
  return m;
}

v1::CoordinatorMessage errorFrame(v1::Error::Code code, const std::string& text) {
  v1::CoordinatorMessage m;
  m.mutable_error()->set_code(code);
  m.mutable_error()->set_message(text);
  return m;
}

}  // namespace

void WorkerServer::Impl::onFrame(const ConnPtr& c, const v1::WorkerMessage& m) {
  using K = v1::WorkerMessage;
  {
    std::lock_guard lock(mu);
    ++server_stats.frames_received;
  }
  if (!c->registered) {
    if (m.kind_case() != K::kRegister) {
      malformed(c, "the first frame must be Register");
      return;
    }
    onRegister(c, m.register_());
    return;
  }
  switch (m.kind_case()) {
    case K::kRegister:
      malformed(c, "a second Register on one connection");
      return;
    case K::kHeartbeat:
      onHeartbeat(c, m.heartbeat());
      return;
    case K::kJobLog:
      onJobLog(c, m.job_log());
      return;
    case K::kJobResult:
      onJobResult(c, m.job_result().job_id(), m.job_result().attempt(), m.job_result().result(),
                  /*rejected=*/false);
      return;
    case K::kJobRejected: {
      // A hand-back: requeued without using up an attempt (see worker_server.h).
      v1::StepResult handed_back;
      handed_back.set_outcome(v1::STEP_OUTCOME_CANCELLED);
      handed_back.set_error("worker rejected the job: " + m.job_rejected().reason());
      onJobResult(c, m.job_rejected().job_id(), m.job_rejected().attempt(), handed_back,
                  /*rejected=*/true);
      return;
    }
    case K::kDrainNotice:
      onDrainNotice(c, m.drain_notice());
      return;
    case K::kGoodbye:
      onGoodbye(c, m.goodbye());
      return;
    case K::KIND_NOT_SET:
      malformed(c, "a WorkerMessage of an unknown kind");
      return;
  }
}

void WorkerServer::Impl::malformed(const ConnPtr& c, const std::string& why) {
  spdlog::warn("worker frame malformed worker={} peer={} reason={}", c->worker_id, c->peer, why);
  {
    std::lock_guard lock(mu);
    ++server_stats.malformed_frames;
  }
  send(c, errorFrame(v1::Error::CODE_MALFORMED_FRAME, why));
  closeAfterFlush(c, "malformed frame: " + why);
}

void WorkerServer::Impl::onRegister(const ConnPtr& c, const v1::Register& r) {
  if (r.protocol_version().major() != kProtocolMajor) {
    std::string why = "protocol version " + std::to_string(r.protocol_version().major()) + "." +
                      std::to_string(r.protocol_version().minor()) + " not supported (this is " +
                      std::to_string(kProtocolMajor) + "." + std::to_string(kProtocolMinor) + ")";
    spdlog::warn("worker refused worker={} peer={} reason={}", r.worker_id(), c->peer, why);
    send(c, errorFrame(v1::Error::CODE_UNSUPPORTED_VERSION, why));
    closeAfterFlush(c, why);
    return;
  }
  WorkerInfo info = workerInfoOf(r);
  auto now = SchedulerClock::now();

  Decisions d;
  Status result;
  {
    std::lock_guard lock(mu);
    auto outcome = scheduler.reattachWorker(info, runningOf(r.running()), now);
    if (outcome.isOk()) {
      d.events = std::move(outcome->events);
      d.cancels = std::move(outcome->cancels);
      if (r.draining()) {
        scheduler.drainWorker(info.id).ignore();  // just registered: cannot be unknown
      }
      ++server_stats.registrations;
      scheduleLocked(d);
    } else {
      result = outcome.status();
    }
  }
  if (!result.isOk()) {
    spdlog::warn("worker refused worker={} peer={} reason={}", info.id, c->peer, result.message());
    send(c, registeredFrame(false, result.message(), 0, options.server_version));
    closeAfterFlush(c, "registration refused: " + result.message());
    return;
  }
  // A new connection of a worker we still hold a connection for replaces it. The old one must not
  // remove the worker when it closes: it is no longer in `conns`.
  if (ConnPtr old = connOf(info.id); old && old != c) {
    conns.erase(info.id);
    close(old, "replaced by a new connection of the same worker");
  }
  c->worker_id = info.id;
  c->registered = true;
  conns[info.id] = c;
  send(c, registeredFrame(true, "", options.heartbeat_interval_ms, options.server_version));
  spdlog::info(
      "worker registered worker={} peer={} platform={} slots={} layers={} running={} draining={}",
      info.id, c->peer, info.platform, info.slots, info.held_diff_ids.size(), r.running_size(),
      r.draining());
  deliver(std::move(d));
}

void WorkerServer::Impl::onHeartbeat(const ConnPtr& c, const v1::Heartbeat& h) {
  WorkerHeartbeat report;
  report.running = runningOf(h.running());
  report.added_diff_ids.assign(h.diff_ids_added().begin(), h.diff_ids_added().end());
  report.removed_diff_ids.assign(h.diff_ids_removed().begin(), h.diff_ids_removed().end());
  Decisions d;
  Status status;
  {
    std::lock_guard lock(mu);
    auto cancels = scheduler.heartbeat(c->worker_id, SchedulerClock::now(), report);
    if (cancels.isOk()) {
      d.cancels = std::move(*cancels);
      scheduleLocked(d);
    } else {
      status = cancels.status();
    }
  }
  if (!status.isOk()) {
    // The scheduler gave up on this worker (lost) while its socket lingered: make it register
    // again, which tells the scheduler what it runs.
    spdlog::warn("worker heartbeat refused worker={} reason={}", c->worker_id, status.message());
    conns.erase(c->worker_id);
    close(c, "heartbeat from a worker the scheduler does not know: " + status.message());
    return;
  }
  deliver(std::move(d));
}

void WorkerServer::Impl::onJobLog(const ConnPtr& c, const v1::JobLog& l) {
  JobLogBatch batch;
  {
    std::lock_guard lock(mu);
    std::optional<JobView> job = scheduler.job(l.job_id());
    if (!job || !job->running || job->worker_id != c->worker_id ||
        job->attempt != static_cast<int>(l.attempt())) {
      spdlog::debug("worker log for a job it does not run ignored worker={} job={} attempt={}",
                    c->worker_id, l.job_id(), l.attempt());
      return;
    }
    batch.build_ids = std::move(job->build_ids);
  }
  JobListener* listener = this->listener.load();
  if (listener == nullptr) {
    return;
  }
  batch.job_id = l.job_id();
  batch.attempt = static_cast<int>(l.attempt());
  batch.worker_id = c->worker_id;
  batch.lines.assign(l.lines().begin(), l.lines().end());
  batch.dropped_lines = l.dropped_lines();
  listener->onJobLog(batch);
}

void WorkerServer::Impl::onJobResult(const ConnPtr& c, const std::string& job_id, uint32_t attempt,
                                     const v1::StepResult& result, bool rejected) {
  Decisions d;
  Status status;
  {
    std::lock_guard lock(mu);
    auto event = scheduler.complete(job_id, static_cast<int>(attempt), c->worker_id, result,
                                    SchedulerClock::now());
    if (event.isOk()) {
      d.events.push_back(std::move(*event));
    } else {
      status = event.status();
      ++server_stats.stale_results;
    }
    // Even a dropped result may have freed a slot (a cancelled job's confirmation).
    scheduleLocked(d);
  }
  if (!status.isOk()) {
    // Duplicates (resent after a reconnect), stale attempts and cancelled jobs are expected.
    spdlog::debug("worker {} ignored worker={} job={} attempt={} reason={}",
                  rejected ? "rejection" : "result", c->worker_id, job_id, attempt,
                  status.message());
  } else if (rejected) {
    spdlog::info("worker rejected job worker={} job={} attempt={} reason={}", c->worker_id, job_id,
                 attempt, result.error());
  }
  deliver(std::move(d));
}

void WorkerServer::Impl::onDrainNotice(const ConnPtr& c, const v1::DrainNotice& n) {
  spdlog::info("worker drains worker={} reason={} running={}", c->worker_id, n.reason(),
               n.running_size());
  Decisions d;
  {
    std::lock_guard lock(mu);
    Status drained = scheduler.drainWorker(c->worker_id);
    drained.ignore();  // an unknown worker has nothing to drain; its heartbeat will say so
    scheduleLocked(d);
  }
  deliver(std::move(d));
}

void WorkerServer::Impl::onGoodbye(const ConnPtr& c, const v1::Goodbye& g) {
  spdlog::info("worker said goodbye worker={} reason={}", c->worker_id, g.reason());
  if (connOf(c->worker_id) != c) {
    return;  // replaced or already removed
  }
  conns.erase(c->worker_id);
  Decisions d;
  {
    std::lock_guard lock(mu);
    d.events = scheduler.removeWorker(c->worker_id, "worker said goodbye: " + g.reason(),
                                      SchedulerClock::now());
    scheduleLocked(d);
  }
  deliver(std::move(d));
  // The worker closes the connection itself; onClosed finds it no longer in `conns`.
}

void WorkerServer::Impl::onClosed(const ConnPtr& c, const std::string& reason) {
  if (!c->registered || connOf(c->worker_id) != c) {
    spdlog::info("worker connection closed worker={} peer={} reason={}", c->worker_id, c->peer,
                 reason);
    return;
  }
  spdlog::warn("worker disconnected worker={} peer={} reason={}", c->worker_id, c->peer, reason);
  conns.erase(c->worker_id);
  Decisions d;
  {
    std::lock_guard lock(mu);
    d.events =
        scheduler.removeWorker(c->worker_id, "connection closed: " + reason, SchedulerClock::now());
    scheduleLocked(d);
  }
  deliver(std::move(d));
}

void WorkerServer::Impl::onTimer() {
  Decisions d;
  std::vector<std::string> lost;
  {
    std::lock_guard lock(mu);
    ExpireOutcome out = scheduler.expire(SchedulerClock::now());
    lost = std::move(out.lost_workers);
    d.events = std::move(out.events);
    server_stats.workers_lost += lost.size();
    scheduleLocked(d);
  }
  for (const std::string& id : lost) {
    spdlog::warn("worker lost worker={} reason=missed heartbeats", id);
    if (ConnPtr c = connOf(id)) {
      conns.erase(id);  // already removed from the scheduler: onClosed must not do it again
      close(c, "lost: missed heartbeats");
    }
  }
  deliver(std::move(d));
}

void WorkerServer::Impl::kick(Decisions d) {
  {
    std::lock_guard lock(mu);
    scheduleLocked(d);
  }
  deliver(std::move(d));
}

void WorkerServer::Impl::scheduleLocked(Decisions& d) {
  std::vector<Assignment> more = scheduler.schedule(SchedulerClock::now());
  for (Assignment& a : more) {
    std::optional<JobView> job = scheduler.job(a.job_id);
    d.assigned_builds.push_back(job ? job->build_ids : std::vector<std::string>{});
    d.assignments.push_back(std::move(a));
  }
  d.next_deadline = scheduler.nextDeadline();
  gaugesLocked();
}

void WorkerServer::Impl::gaugesLocked() {
  if (options.metrics == nullptr) {
    return;
  }
  SchedulerStats s = scheduler.stats();
  options.metrics->setQueue(s.ready, s.running);
  options.metrics->setWorkers(s.workers, s.free_slots);
}

ConnPtr WorkerServer::Impl::connOf(const std::string& worker_id) const {
  auto it = conns.find(worker_id);
  return it == conns.end() ? nullptr : it->second;
}

void WorkerServer::Impl::sendCancel(const std::string& worker_id, const std::string& job_id,
                                    int attempt) {
  ConnPtr c = connOf(worker_id);
  if (!c) {
    return;  // gone: nothing of it runs for us any more
  }
  v1::CoordinatorMessage m;
  m.mutable_cancel()->set_job_id(job_id);
  m.mutable_cancel()->set_attempt(static_cast<uint32_t>(attempt));
  send(c, m);
}

void WorkerServer::Impl::deliver(Decisions d) {
  JobListener* listener = this->listener.load();
  for (const JobEvent& e : d.events) {
    if (options.metrics != nullptr) {
      options.metrics->jobEnded(outcomeName(e.kind));
    }
    if (e.cancel_on_worker) {
      sendCancel(e.worker_id, e.job_id, e.attempt);
    }
    if (listener != nullptr) {
      listener->onJobEvent(e);
    }
  }
  for (const CancelOrder& order : d.cancels) {
    sendCancel(order.worker_id, order.job_id, order.attempt);
  }
  for (size_t i = 0; i < d.assignments.size(); ++i) {
    const Assignment& a = d.assignments[i];
    ConnPtr c = connOf(a.worker_id);
    if (!c) {
      // Cannot happen while `conns` mirrors the scheduler's workers; if it does, the lease
      // expires and the job is requeued.
      spdlog::error("assignment for a worker without a connection worker={} job={}", a.worker_id,
                    a.job_id);
      continue;
    }
    v1::CoordinatorMessage m;
    v1::JobAssign& assign = *m.mutable_job_assign();
    assign.set_job_id(a.job_id);
    assign.set_attempt(static_cast<uint32_t>(a.attempt));
    assign.set_lease_ms(options.scheduler.lease.count());
    if (a.spec) {
      *assign.mutable_spec() = *a.spec;
    }
    send(c, m);
    spdlog::info("job assigned job={} attempt={} worker={}", a.job_id, a.attempt, a.worker_id);
    if (listener != nullptr) {
      listener->onJobAssigned(
          JobAssigned{a.job_id, a.attempt, a.worker_id, std::move(d.assigned_builds[i])});
    }
  }
  armTimer(d.next_deadline);
}

// ---- WorkerServer: the JobBroker side (any thread) ----

void WorkerServer::setListener(JobListener* listener) { impl_->listener.store(listener); }

Result<SubmitOutcome> WorkerServer::submit(JobRequest request) {
  Impl* d = impl_.get();
  Result<SubmitOutcome> outcome = [&] {
    std::lock_guard lock(d->mu);
    auto r = d->scheduler.submit(std::move(request), SchedulerClock::now());
    d->gaugesLocked();
    return r;
  }();
  if (!outcome.isOk()) {
    return outcome;
  }
  if (d->options.metrics != nullptr) {
    d->options.metrics->jobSubmitted(outcome->deduplicated);
  }
  if (!outcome->deduplicated) {
    d->post([d] { d->kick(Decisions{}); });
  }
  return outcome;
}

void WorkerServer::cancelBuild(const std::string& build_id) {
  Impl* d = impl_.get();
  Decisions decisions;
  {
    std::lock_guard lock(d->mu);
    decisions.events = d->scheduler.cancelBuild(build_id);
    d->gaugesLocked();
  }
  if (decisions.events.empty()) {
    return;
  }
  d->post([d, decisions = std::move(decisions)]() mutable { d->kick(std::move(decisions)); });
}

std::vector<WorkerView> WorkerServer::workers() const {
  std::lock_guard lock(impl_->mu);
  return impl_->scheduler.workers();
}

SchedulerStats WorkerServer::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->scheduler.stats();
}

WorkerServerStats WorkerServer::serverStats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->server_stats;
}

Status WorkerServer::drainWorker(const std::string& worker_id, const std::string& reason) {
  Impl* d = impl_.get();
  {
    std::lock_guard lock(d->mu);
    LF_RETURN_IF_ERROR(d->scheduler.drainWorker(worker_id));
    d->gaugesLocked();
  }
  d->post([d, worker_id, reason] {
    if (ConnPtr c = d->connOf(worker_id)) {
      v1::CoordinatorMessage m;
      m.mutable_drain()->set_reason(reason);
      d->send(c, m);
    }
  });
  return Status::ok();
}

}  // namespace lf::coordinator
