#pragma once

// WorkerDaemon: the long-running worker. Dials the coordinator (WebSocket, binary protobuf
// frames of worker_protocol.proto, bearer token in the handshake), registers with the layers
// it holds, heartbeats, runs assigned steps on a bounded pool of `slots` threads, streams their
// output, reports results, reconnects with exponential backoff and jitter when the connection
// drops, and drains on request (SIGTERM/SIGINT or the coordinator's Drain).
//
// Threads: run() turns the calling thread into the io thread, which alone owns the network
// state (one connection at a time). Steps run on the pool threads through a StepExecutor
// (blocking work never runs on the io thread). Results of steps that finished while
// disconnected are kept and sent after the next Register; logs queued while disconnected are
// sent too (bounded, see WorkerConfig::log_queue_bytes).
//
// Drain: requestDrain() (thread-safe, from any thread) stops taking jobs (assignments are
// answered with JobRejected), tells the coordinator (DrainNotice), lets running steps finish,
// sends their results, says Goodbye and makes run() return ok. A second requestDrain() cancels
// the running steps (their CANCELLED results are still sent).
//
// Errors: run() returns an error only for fatal conditions: the coordinator refused the token
// (HTTP 401/403 in the handshake: kPermissionDenied) or our protocol version
// (kFailedPrecondition). A malformed or unknown frame from the coordinator, a lost connection or
// a refused connect are logged and followed by a reconnect, never a crash.
//
// Ownership: the executor outlives the daemon.

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/layerfarm/v1/step.pb.h"
#include "worker/daemon/worker_config.h"
#include "worker/sandbox/sandbox.h"

namespace lf::worker {

class LayerStore;
class StepRunner;

// How the daemon runs one step: the sandboxed StepRunner in production, a fake in tests.
// run() is called from several pool threads at once and blocks until the step ended; `log` is
// called on the calling thread, possibly blocking (backpressure).
class StepExecutor {
 public:
  using LogCallback = std::function<void(const layerfarm::v1::StepLog&)>;
  virtual ~StepExecutor() = default;
  virtual layerfarm::v1::StepResult run(const layerfarm::v1::StepSpec& spec, const LogCallback& log,
                                        sandbox::Canceller* cancel) = 0;
  // Diff IDs ("sha256:<hex>") of the unpacked layers held, for Register and Heartbeat.
  virtual std::vector<std::string> heldDiffIds() const = 0;
  // Bytes of unpacked layers held.
  virtual uint64_t layerStoreBytes() const = 0;
};

// StepExecutor over the real StepRunner and LayerStore (both outlive it).
class StepRunnerExecutor : public StepExecutor {
 public:
  StepRunnerExecutor(StepRunner& runner, LayerStore& layers) : runner_(runner), layers_(layers) {}
  layerfarm::v1::StepResult run(const layerfarm::v1::StepSpec& spec, const LogCallback& log,
                                sandbox::Canceller* cancel) override;
  std::vector<std::string> heldDiffIds() const override;
  uint64_t layerStoreBytes() const override;

 private:
  StepRunner& runner_;
  LayerStore& layers_;
};

struct WorkerDaemonOptions {
  // Coordinator address, token, identity, slots, labels, intervals, queues (see
  // worker_config.h). Only the connection and protocol fields are used here; the step
  // runner's fields are for whoever builds the executor.
  WorkerConfig config;
  std::string worker_version = "layerfarm-worker 0.1.0";
  std::string platform;  // empty = "linux/<arch of this build>"
  // Install SIGTERM/SIGINT handlers (asio signal_set on the io thread) that call requestDrain().
  bool handle_signals = false;
};

// Counters for tests and logs; read with stats() from any thread.
struct WorkerDaemonStats {
  uint64_t connects = 0;       // handshakes that succeeded
  uint64_t registrations = 0;  // Registered{accepted} received
  uint64_t connection_failures = 0;
  uint64_t bad_frames = 0;  // malformed / unknown frames from the coordinator
  uint64_t heartbeats_sent = 0;
  uint64_t jobs_started = 0;
  uint64_t jobs_rejected = 0;
  uint64_t results_sent = 0;  // JobResult frames written (a resend counts again)
  uint64_t log_lines_dropped = 0;
  std::string last_error;  // the last connection problem, for tests and logs
};

class WorkerDaemon {
 public:
  WorkerDaemon(WorkerDaemonOptions options, StepExecutor& executor);
  ~WorkerDaemon();
  WorkerDaemon(const WorkerDaemon&) = delete;
  WorkerDaemon& operator=(const WorkerDaemon&) = delete;

  // Runs until drained (ok) or a fatal error (see above). Call once.
  Status run();

  // Thread-safe. First call: drain. Second call: also cancel running steps.
  void requestDrain(const std::string& reason);

  // Thread-safe: cancel running steps, close the connection and return from run() at once
  // without waiting for results to be delivered (tests, fatal shutdown).
  void requestStop();

  WorkerDaemonStats stats() const;

  struct Impl;  // in worker_daemon.cpp; public only so that file's free coroutines can name it

 private:
  std::unique_ptr<Impl> impl_;
};

// `layerfarm-worker --config worker.yaml` / `layerfarm-worker run --config worker.yaml`:
// loads the config, prepares cgroups, recovers after a crash, opens the blob and layer stores,
// runs the daemon with signal handling. Returns the process exit code (0 drained, 1 fatal
// error, 2 bad config).
int runWorkerDaemonCommand(const std::string& config_path, std::ostream& err);

}  // namespace lf::worker
