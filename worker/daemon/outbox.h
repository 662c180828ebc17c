#pragma once

// Outbox: the worker's queue of frames for the coordinator, shared by the step threads (logs,
// results) and the io thread (heartbeats, notices; it alone pops and writes).
//
// It outlives connections: logs and results queued while disconnected are written after the
// next Register; frames that only mean something on one connection (heartbeats, DrainNotice,
// Goodbye, JobRejected) are dropped when it ends (dropConnectionFrames). A result whose write
// failed is put back at the front (requeueFront), so it may reach the coordinator twice; the
// coordinator keeps the first per (job, attempt).
//
// Logs: consecutive lines of one job are merged into the job's last queued JobLog while that
// frame is below max_log_frame_bytes, so a chatty step costs few frames. Backpressure: while the
// queued log bytes exceed log_queue_bytes, pushLog() blocks the step's thread (which stops
// reading the step's pipe, so the step itself waits) for at most log_block; a line that still
// does not fit is dropped and counted, and the count rides on the job's next JobLog
// (dropped_lines). Results and control frames never block and are never dropped.
//
// Thread-safety: all methods are thread-safe. `wake` is called (without the lock held) after
// each push, from the pushing thread; it must be cheap and thread-safe (the daemon posts to its
// io thread).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "proto/layerfarm/v1/worker_protocol.pb.h"

namespace lf::worker {

struct OutboxOptions {
  uint64_t log_queue_bytes = 8ull << 20;
  std::chrono::milliseconds log_block{30000};
  uint64_t max_log_frame_bytes = 256u << 10;
};

class Outbox {
 public:
  Outbox(OutboxOptions options, std::function<void()> wake);

  // Heartbeat, JobResult, JobRejected, DrainNotice, Goodbye: appended, never blocks.
  void push(layerfarm::v1::WorkerMessage message);
  // One output line of a job; may block (see above). Returns false if the line was dropped.
  bool pushLog(const std::string& job_id, uint32_t attempt, const layerfarm::v1::StepLog& line);

  // io thread: the next frame to write, or nullopt.
  std::optional<layerfarm::v1::WorkerMessage> pop();
  // io thread: a popped frame could not be written; results go back to the front, logs too
  // (their order matters more than a possible duplicate line), the rest is dropped.
  void requeueFront(layerfarm::v1::WorkerMessage message);
  // io thread: the connection ended; drop frames that belong to it.
  void dropConnectionFrames();
  // Stop blocking anybody: pending and future pushLog() calls that would block drop instead.
  void close();

  size_t pendingResults() const;
  size_t size() const;
  uint64_t droppedLines() const;

 private:
  uint64_t logBytes(const layerfarm::v1::WorkerMessage& m) const;

  const OutboxOptions options_;
  const std::function<void()> wake_;
  mutable std::mutex mu_;
  std::condition_variable space_;
  std::deque<layerfarm::v1::WorkerMessage> frames_;
  uint64_t log_bytes_ = 0;
  size_t results_ = 0;
  bool closed_ = false;
  uint64_t dropped_total_ = 0;
  std::map<std::string, uint64_t> dropped_by_job_;  // "<job>#<attempt>" -> not yet reported
};

}  // namespace lf::worker
