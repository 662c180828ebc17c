#pragma once

// TestWorker: a scripted worker for tests of the coordinator's WorkerServer. It dials the
// server (WebSocket on 127.0.0.1, bearer token), and then the test decides every frame: Register,
// heartbeats (optionally sent automatically, listing the jobs assigned and not yet answered),
// logs, results, raw bytes. Every CoordinatorMessage received is recorded for waitFor().
// Beast lives in test_worker.cpp only. Thread-safe; its own io thread reads and writes.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/layerfarm/v1/worker_protocol.pb.h"

namespace lf::coordinator::workers_test {

class TestWorker {
 public:
  TestWorker();
  ~TestWorker();

  // Connects and upgrades. A refused upgrade is an error whose message holds "HTTP <status>";
  // httpStatus() tells it.
  Status connect(uint16_t port, const std::string& token, const std::string& path = "/v1/workers");
  int httpStatus() const;

  // Sends Register{protocol 1.0, id, slots, platform "linux/amd64", layers} and waits for the
  // answer; nullopt when none came (closed or timed out).
  std::optional<layerfarm::v1::CoordinatorMessage> registerAs(
      const std::string& id, int slots = 1, const std::vector<std::string>& diff_ids = {},
      uint32_t major = 1);

  void send(const layerfarm::v1::WorkerMessage& m);
  void sendRaw(std::string bytes, bool text);
  // JobResult for (job, attempt); the job stops being listed in heartbeats.
  void sendResult(const std::string& job_id, uint32_t attempt, layerfarm::v1::StepOutcome outcome,
                  const std::string& diff_id = "");
  // Sends a heartbeat listing the jobs assigned and not yet answered, every `every`.
  void startHeartbeats(std::chrono::milliseconds every);
  // Closes the socket without a close handshake.
  void dropConnection();

  // Waits for a received message matching `pred` that no earlier waitFor took; marks it taken.
  std::optional<layerfarm::v1::CoordinatorMessage> waitFor(
      std::function<bool(const layerfarm::v1::CoordinatorMessage&)> pred,
      std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::optional<layerfarm::v1::CoordinatorMessage> waitAssign(
      std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // True once the server closed the connection (or it broke), within timeout.
  bool waitClosed(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  bool closed() const;
  std::vector<layerfarm::v1::CoordinatorMessage> all() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lf::coordinator::workers_test
