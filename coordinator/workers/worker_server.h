#pragma once

// WorkerServer: the coordinator's end of the worker protocol (proto/layerfarm/v1/
// worker_protocol.proto) and the JobBroker the builds use (coordinator/jobs/job_broker.h).
//
// It listens for workers' WebSocket connections (HTTP upgrade on `path`, bearer token checked
// before the upgrade: HTTP 401 on a missing or wrong token), reads one binary protobuf
// WorkerMessage per frame, drives the Scheduler with what workers say (Register ->
// reattachWorker, Heartbeat -> heartbeat, JobResult -> complete, JobRejected -> a hand-back,
// DrainNotice -> drainWorker, Goodbye or a closed connection -> removeWorker) and carries out
// what the Scheduler decides: JobAssign and Cancel frames to the workers, JobEvents and logs to
// the JobListener. A timer at Scheduler::nextDeadline() expires leases and silent workers (their
// sockets are closed, their jobs requeued).
//
// A JobRejected is handed to Scheduler::complete() as a CANCELLED result the coordinator did not
// ask for: the job is requeued without using up an attempt (the worker is avoided for it when
// another has a free slot), which is what the protocol means by "not a failure of the step".
// A job handed back SchedulerOptions::max_handbacks times fails naming the last reason, so a
// step every worker refuses cannot bounce between them forever.
//
// A text frame, a frame that does not parse, a WorkerMessage of an unknown kind, a first frame
// that is not Register or a second Register is answered with Error{MALFORMED_FRAME} and that one
// connection is closed (its worker removed: its jobs are requeued); other connections go on.
// A Register with an unknown protocol major gets Error{UNSUPPORTED_VERSION} and is closed.
// A worker that registers again with the id of a connected worker replaces it (the old socket is
// closed; Scheduler::reattachWorker keeps the jobs the worker still runs).
//
// Threads: start() runs one io thread, which alone owns the sockets and per-connection state
// (so every connection's reads and writes are serialised on it: the implicit strand). Each
// connection has its own outgoing queue with one write at a time, so a slow worker delays only
// itself. The Scheduler is guarded by a mutex: decisions are collected under it and frames are
// sent and the listener called after it is released, always on the io thread.
// submit(), cancelBuild(), workers(), stats(), drainWorker() may be called from any thread
// (submit and cancelBuild take effect at once in the Scheduler; their frames and events follow
// on the io thread).
//
// Errors: start() returns kInvalidArgument for a bad listen address and kUnavailable when it
// cannot bind. Workers' misbehaviour is logged (spdlog, key=value with worker id and reason) and
// never stops the server.
//
// Ownership: the listener and metrics are not owned and must outlive the server (or stop()).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "coordinator/jobs/job_broker.h"
#include "coordinator/scheduler/scheduler.h"

namespace lf::coordinator {

class CoordinatorMetrics;

struct WorkerServerOptions {
  // Address to listen on ("0.0.0.0", "127.0.0.1", "::"). Default: all IPv4 interfaces.
  std::string listen_address = "0.0.0.0";
  // TCP port; 0 = an ephemeral port (see WorkerServer::port()). Default: 7071.
  uint16_t port = 7071;
  // HTTP path of the WebSocket endpoint; other paths get 404. Default: "/v1/workers".
  std::string path = "/v1/workers";
  // Accepted bearer tokens (`Authorization: Bearer <token>`). Empty = no authentication.
  std::vector<std::string> tokens;
  // Leases, heartbeat timeout, attempts, job id prefix (see scheduler.h).
  SchedulerOptions scheduler;
  // What Registered.heartbeat_interval_ms tells workers, in milliseconds; keep it well below
  // scheduler.heartbeat_timeout. 0 = the workers' own configured interval. Default: 2000.
  uint32_t heartbeat_interval_ms = 2000;
  // Registered.server_version.
  std::string server_version = "layerfarm-coordinator 0.1.0";
  // Largest WebSocket message read from a worker, in bytes; a bigger one closes the connection.
  // Default: 64 MiB.
  size_t max_frame_bytes = 64u << 20;
  // A connection must finish the HTTP upgrade and send Register within this many milliseconds.
  // Default: 10 s.
  uint32_t register_timeout_ms = 10'000;
  // Updated after every change (queue depth, workers, free slots, jobs by outcome, submits).
  // Not owned; nullable.
  CoordinatorMetrics* metrics = nullptr;
};

// Counters of the transport, for tests and status pages.
struct WorkerServerStats {
  uint64_t connections = 0;         // WebSocket upgrades accepted
  uint64_t refused_handshakes = 0;  // 401 (token) or 404 (path) or not an upgrade
  uint64_t registrations = 0;       // Registered{accepted} sent
  uint64_t malformed_frames = 0;    // connections closed for a bad frame
  uint64_t workers_lost = 0;        // closed for missed heartbeats
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t stale_results = 0;  // duplicate / stale / unknown JobResults ignored
};

class WorkerServer : public JobBroker {
 public:
  explicit WorkerServer(WorkerServerOptions options);
  ~WorkerServer() override;  // stop()
  WorkerServer(const WorkerServer&) = delete;
  WorkerServer& operator=(const WorkerServer&) = delete;

  // Binds, listens and starts the io thread. Call once.
  Status start();
  // The bound port (after start()); useful with options.port = 0.
  uint16_t port() const;
  // Stops accepting, closes every connection (workers reconnect elsewhere or later) and joins
  // the io thread. Idempotent. No listener call happens after it returns.
  void stop();

  // JobBroker.
  void setListener(JobListener* listener) override;
  Result<SubmitOutcome> submit(JobRequest request) override;
  void cancelBuild(const std::string& build_id) override;
  std::vector<WorkerView> workers() const override;
  SchedulerStats stats() const override;

  // Asks a connected worker to drain (Drain frame; the Scheduler gives it no new jobs).
  // kNotFound for a worker that is not registered.
  Status drainWorker(const std::string& worker_id, const std::string& reason);

  WorkerServerStats serverStats() const;

  struct Impl;  // worker_server_internal.h; public only so that free functions can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lf::coordinator
