#pragma once

// Helpers shared by the WorkerServer tests: a JobListener that records what it is told and lets
// a test wait for it, a started server on 127.0.0.1:0, and job requests.

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/jobs/job_broker.h"
#include "coordinator/workers/worker_server.h"

namespace lf::coordinator::workers_test {

using namespace std::chrono_literals;
constexpr auto kDeadline = 20s;

class RecordingListener : public JobListener {
 public:
  void onJobAssigned(const JobAssigned& a) override {
    std::lock_guard lock(mu_);
    assigned_.push_back(a);
    cv_.notify_all();
  }
  void onJobLog(const JobLogBatch& b) override {
    std::lock_guard lock(mu_);
    logs_.push_back(b);
    cv_.notify_all();
  }
  void onJobEvent(const JobEvent& e) override {
    std::lock_guard lock(mu_);
    events_.push_back(e);
    cv_.notify_all();
  }

  std::optional<JobAssigned> waitAssigned(std::function<bool(const JobAssigned&)> pred,
                                          std::chrono::milliseconds timeout = kDeadline) {
    return waitIn(assigned_, pred, timeout);
  }
  std::optional<JobLogBatch> waitLog(std::function<bool(const JobLogBatch&)> pred,
                                     std::chrono::milliseconds timeout = kDeadline) {
    return waitIn(logs_, pred, timeout);
  }
  std::optional<JobEvent> waitEvent(std::function<bool(const JobEvent&)> pred,
                                    std::chrono::milliseconds timeout = kDeadline) {
    return waitIn(events_, pred, timeout);
  }
  std::vector<JobEvent> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  template <typename T>
  std::optional<T> waitIn(const std::vector<T>& list, const std::function<bool(const T&)>& pred,
                          std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    std::optional<T> found;
    cv_.wait_for(lock, timeout, [&] {
      for (const T& item : list) {
        if (pred(item)) {
          found = item;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<JobAssigned> assigned_;
  std::vector<JobLogBatch> logs_;
  std::vector<JobEvent> events_;
};

inline WorkerServerOptions testOptions() {
  WorkerServerOptions o;
  o.listen_address = "127.0.0.1";
  o.port = 0;
  o.tokens = {"tok", "other-tok"};
  o.heartbeat_interval_ms = 100;
  return o;
}

inline JobRequest runJob(const std::string& build, const std::string& key_text,
                         const std::string& cmd = "echo hi") {
  JobRequest r;
  r.build_id = build;
  r.tenant = "team";
  r.key = Digest::sha256Of(key_text);
  r.spec.set_kind(layerfarm::v1::STEP_KIND_RUN);
  r.spec.mutable_run()->add_command(cmd);
  return r;
}

// Polls `cond` until it holds or the deadline passes (for state with no notification).
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds timeout = kDeadline) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) {
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace lf::coordinator::workers_test
