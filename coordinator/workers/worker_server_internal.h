#pragma once

// WorkerServer's insides, shared by its two files: worker_server.cpp (the Beast transport:
// accept, handshake, frames, timer) and worker_server_protocol.cpp (what each WorkerMessage
// does to the Scheduler, and delivering the Scheduler's decisions). No Beast or Asio here, so
// the protocol file compiles cheaply.
//
// Threads: everything but the members marked "any thread" is touched on the io thread only.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/workers/worker_server.h"
#include "proto/layerfarm/v1/worker_protocol.pb.h"

namespace lf::coordinator {

// The protocol's view of one connection; worker_server.cpp derives the socket side from it.
struct ConnBase {
  virtual ~ConnBase() = default;
  std::string peer;       // "10.0.0.7:51234", for logs
  std::string worker_id;  // set by Register
  bool registered = false;
  bool closed = false;
};
using ConnPtr = std::shared_ptr<ConnBase>;

// What the Scheduler decided, collected under the lock, carried out after it.
struct Decisions {
  std::vector<JobEvent> events;
  std::vector<CancelOrder> cancels;
  std::vector<Assignment> assignments;
  std::vector<std::vector<std::string>> assigned_builds;  // per assignment
  std::optional<TimePoint> next_deadline;                 // for the timer
};

struct Transport;  // worker_server.cpp

struct WorkerServer::Impl {
  explicit Impl(WorkerServerOptions o);
  ~Impl();

  // ---- protocol (worker_server_protocol.cpp), io thread ----
  void onFrame(const ConnPtr& c, const layerfarm::v1::WorkerMessage& m);
  // The connection ended (read error, close, or we closed it). Called once per connection.
  void onClosed(const ConnPtr& c, const std::string& reason);
  void onTimer();
  // Runs schedule() and delivers everything (after submit, cancelBuild, drain from any thread).
  void kick(Decisions d);
  void malformed(const ConnPtr& c, const std::string& why);

  void onRegister(const ConnPtr& c, const layerfarm::v1::Register& r);
  void onHeartbeat(const ConnPtr& c, const layerfarm::v1::Heartbeat& h);
  void onJobLog(const ConnPtr& c, const layerfarm::v1::JobLog& l);
  void onJobResult(const ConnPtr& c, const std::string& job_id, uint32_t attempt,
                   const layerfarm::v1::StepResult& result, bool rejected);
  void onDrainNotice(const ConnPtr& c, const layerfarm::v1::DrainNotice& n);
  void onGoodbye(const ConnPtr& c, const layerfarm::v1::Goodbye& g);

  // Under mu: schedule(now) into `d`, plus builds of each assignment; updates metrics gauges.
  void scheduleLocked(Decisions& d);
  void gaugesLocked();
  // Without mu: sends frames, calls the listener, re-arms the timer.
  void deliver(Decisions d);
  void sendCancel(const std::string& worker_id, const std::string& job_id, int attempt);
  ConnPtr connOf(const std::string& worker_id) const;

  // ---- transport (worker_server.cpp), io thread unless noted ----
  void send(const ConnPtr& c, const layerfarm::v1::CoordinatorMessage& m);
  // Closes at once (no more frames).
  void close(const ConnPtr& c, const std::string& reason);
  // Sends what is queued, then a WebSocket close, then closes.
  void closeAfterFlush(const ConnPtr& c, const std::string& reason);
  // Arms the timer for the Scheduler's next deadline (nullopt: disarm).
  void armTimer(std::optional<TimePoint> at);
  // Any thread: runs fn on the io thread.
  void post(std::function<void()> fn);

  WorkerServerOptions options;
  std::unique_ptr<Transport> transport;
  std::atomic<JobListener*> listener{nullptr};

  mutable std::mutex mu;  // guards scheduler and server_stats
  Scheduler scheduler;
  WorkerServerStats server_stats;

  std::unordered_map<std::string, ConnPtr> conns;  // registered worker id -> its connection
};

}  // namespace lf::coordinator
