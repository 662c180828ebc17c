#pragma once

// Helpers shared by the worker daemon tests: a fake StepExecutor, options for a daemon talking to
// a FakeCoordinator, and a daemon running on its own thread.

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "proto/layerfarm/v1/worker_protocol.pb.h"
#include "tests/worker/daemon/fake_coordinator.h"
#include "worker/daemon/worker_daemon.h"

namespace lf::worker::daemon_test {

namespace v1 = layerfarm::v1;
using namespace std::chrono_literals;

constexpr auto kDeadline = 20s;

// Runs steps without a sandbox: the spec's first RUN word says what to do.
//   "echo <text>": logs <text>, succeeds.   "wait": blocks until cancelled.
//   "gate": blocks until release() is called, then succeeds.
class FakeExecutor : public StepExecutor {
 public:
  v1::StepResult run(const v1::StepSpec& spec, const LogCallback& log,
                     sandbox::Canceller* cancel) override {
    v1::StepResult result;
    result.set_step_id(spec.step_id());
    std::string cmd = spec.run().command_size() > 0 ? spec.run().command(0) : "";
    {
      std::lock_guard lock(mu_);
      ++started_;
    }
    cv_.notify_all();
    if (cmd.rfind("echo ", 0) == 0) {
      v1::StepLog line;
      line.set_step_id(spec.step_id());
      line.set_line(cmd.substr(5));
      log(line);
      result.set_outcome(v1::STEP_OUTCOME_SUCCEEDED);
      result.mutable_layer()->set_diff_id("sha256:" + std::string(64, 'a'));
      return result;
    }
    if (cmd == "wait") {
      // Like a sandboxed step: woken by the canceller's eventfd.
      pollfd fd{cancel->fd(), POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(std::chrono::milliseconds(kDeadline).count()));
    } else {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, kDeadline, [&] { return released_; });
    }
    result.set_outcome(cancel->isCancelled() ? v1::STEP_OUTCOME_CANCELLED
                                             : v1::STEP_OUTCOME_SUCCEEDED);
    return result;
  }
  std::vector<std::string> heldDiffIds() const override {
    std::lock_guard lock(mu_);
    return held_;
  }
  uint64_t layerStoreBytes() const override { return 0; }

  void hold(std::string id) {
    std::lock_guard lock(mu_);
    held_.push_back(std::move(id));
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool waitStarted(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return started_ >= n; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> held_;
  bool released_ = false;
  int started_ = 0;
};

inline WorkerDaemonOptions optionsFor(const FakeCoordinator& coord, const std::string& token) {
  WorkerDaemonOptions o;
  auto parsed = parseWorkerConfig("coordinator: " + coord.url() + "\ntoken: " + token +
                                      "\nworker_id: test-worker\nslots: 2\n"
                                      "blob_store: {directory: /unused}\n"
                                      "reconnect_backoff_min_ms: 20\n"
                                      "reconnect_backoff_max_ms: 200\n"
                                      "connect_timeout_ms: 2000\n"
                                      "heartbeat_interval_ms: 100\n"
                                      "labels: {zone: test}\n",
                                  "test.yaml");
  EXPECT_TRUE(parsed.isOk()) << parsed.status().toString();
  o.config = *parsed;
  return o;
}

inline v1::CoordinatorMessage assign(const std::string& job, uint32_t attempt,
                                     const std::string& cmd) {
  v1::CoordinatorMessage m;
  v1::JobAssign& a = *m.mutable_job_assign();
  a.set_job_id(job);
  a.set_attempt(attempt);
  a.set_lease_ms(60000);
  a.mutable_spec()->set_step_id(job);
  a.mutable_spec()->set_kind(v1::STEP_KIND_RUN);
  a.mutable_spec()->mutable_run()->add_command(cmd);
  return m;
}

inline auto isRegister = [](const v1::WorkerMessage& m) { return m.has_register_(); };
inline auto isHeartbeat = [](const v1::WorkerMessage& m) { return m.has_heartbeat(); };
inline auto resultOf(const std::string& job) {
  return [job](const v1::WorkerMessage& m) {
    return m.has_job_result() && m.job_result().job_id() == job;
  };
}

// Runs a daemon on its own thread; stops it at scope exit.
struct RunningDaemon {
  RunningDaemon(WorkerDaemonOptions o, StepExecutor& e) : daemon(std::move(o), e) {
    thread = std::thread([this] {
      status = daemon.run();
      done = true;
    });
  }
  ~RunningDaemon() {
    daemon.requestStop();
    thread.join();
  }
  Status join() {
    thread.join();
    return status;
  }
  WorkerDaemon daemon;
  std::thread thread;
  Status status;
  std::atomic<bool> done{false};
};

}  // namespace lf::worker::daemon_test
