#pragma once

// FakeJobBroker: a JobBroker for build-manager tests that "runs" each job in-process: it writes
// a real layer (one file named after the job's key, compressed as the spec says) into the blob
// store with the real layer writer, then reports JobAssigned, a log line and kSucceeded from its
// own thread, as the real broker does from its network thread. A job whose RUN command contains
// "exit 1" fails.
//
// Jobs run at once in auto mode; in manual mode they wait until the test calls run(job_id) /
// fail(job_id). Equal keys share one job (dedupe), as in the Scheduler.
//
// Thread-safety: all methods are thread-safe.

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/blob/blob_store.h"
#include "common/layer/layer_writer.h"
#include "coordinator/jobs/job_broker.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator::testing {

class FakeJobBroker : public JobBroker {
 public:
  FakeJobBroker(blob::BlobStore& store, bool auto_run) : store_(store), auto_run_(auto_run) {
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeJobBroker() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void setListener(JobListener* listener) override {
    std::lock_guard lock(mu_);
    listener_ = listener;
  }

  Result<SubmitOutcome> submit(JobRequest request) override {
    std::lock_guard lock(mu_);
    submitted_.push_back(request);
    for (auto& [id, job] : pending_) {
      if (job.request.key == request.key) {
        job.builds.insert(request.build_id);
        cv_.notify_all();
        return SubmitOutcome{id, true};
      }
    }
    const std::string id = "job-" + std::to_string(++next_id_);
    pending_[id] = Job{request, {request.build_id}};
    if (auto_run_) post(id, /*fail=*/false);
    cv_.notify_all();
    return SubmitOutcome{id, false};
  }

  void cancelBuild(const std::string& build_id) override {
    std::lock_guard lock(mu_);
    cancelled_builds_.push_back(build_id);
    for (auto it = pending_.begin(); it != pending_.end();) {
      it->second.builds.erase(build_id);
      if (!it->second.builds.empty()) {
        ++it;
        continue;
      }
      JobEvent event;
      event.kind = JobEvent::Kind::kCancelled;
      event.job_id = it->first;
      event.key = it->second.request.key;
      event.build_ids = {build_id};
      event.reason = "build " + build_id + " cancelled";
      actions_.push_back([this, event] { listener()->onJobEvent(event); });
      it = pending_.erase(it);
    }
    cv_.notify_all();
  }

  std::vector<WorkerView> workers() const override {
    return {WorkerView{"w1", "linux/amd64", 2, 0, false, 0}};
  }
  SchedulerStats stats() const override { return {}; }

  // --- test controls ---
  void setAutoRun(bool on) {
    std::lock_guard lock(mu_);
    auto_run_ = on;
    if (on) {
      std::vector<std::string> ids;
      for (const auto& [id, job] : pending_) ids.push_back(id);
      for (const auto& id : ids) post(id, false);
    }
    cv_.notify_all();
  }
  void run(const std::string& job_id) {
    std::lock_guard lock(mu_);
    post(job_id, false);
    cv_.notify_all();
  }
  void fail(const std::string& job_id) {
    std::lock_guard lock(mu_);
    post(job_id, true);
    cv_.notify_all();
  }
  // The job is assigned, then its worker is lost: kRequeued; the job stays pending.
  void requeue(const std::string& job_id) {
    std::lock_guard lock(mu_);
    auto it = pending_.find(job_id);
    if (it == pending_.end()) return;
    std::vector<std::string> builds(it->second.builds.begin(), it->second.builds.end());
    JobEvent event;
    event.kind = JobEvent::Kind::kRequeued;
    event.job_id = job_id;
    event.key = it->second.request.key;
    event.attempt = 1;
    event.worker_id = "w1";
    event.build_ids = builds;
    event.reason = "worker w1 lost: connection closed";
    actions_.push_back([this, job_id, builds, event] {
      listener()->onJobAssigned(JobAssigned{job_id, 1, "w1", builds});
      listener()->onJobEvent(event);
    });
    cv_.notify_all();
  }
  // Waits until at least n submits happened; false at the deadline.
  bool waitForSubmits(size_t n, std::chrono::seconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return submitted_.size() >= n; });
  }
  std::vector<JobRequest> submitted() const {
    std::lock_guard lock(mu_);
    return submitted_;
  }
  // Pending (not yet run) job ids, in id order.
  std::vector<std::string> pendingJobs() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> ids;
    for (const auto& [id, job] : pending_) ids.push_back(id);
    return ids;
  }
  std::string commandOf(const std::string& job_id) const {
    std::lock_guard lock(mu_);
    auto it = pending_.find(job_id);
    return it == pending_.end() ? "" : joined(it->second.request.spec);
  }
  std::vector<std::string> cancelledBuilds() const {
    std::lock_guard lock(mu_);
    return cancelled_builds_;
  }

 private:
  struct Job {
    JobRequest request;
    std::set<std::string> builds;
  };

  static std::string joined(const layerfarm::v1::StepSpec& spec) {
    std::string text;
    for (const auto& part : spec.run().command()) text += part + " ";
    return text;
  }

  JobListener* listener() {
    std::lock_guard lock(mu_);
    return listener_;
  }

  // Queues the job's run on the broker thread (mu_ held).
  void post(const std::string& job_id, bool fail) {
    auto it = pending_.find(job_id);
    if (it == pending_.end()) return;
    Job job = it->second;
    pending_.erase(it);
    actions_.push_back([this, job_id, job, fail] { execute(job_id, job, fail); });
  }

  void execute(const std::string& job_id, const Job& job, bool fail) {
    std::vector<std::string> builds(job.builds.begin(), job.builds.end());
    listener()->onJobAssigned(JobAssigned{job_id, 1, "w1", builds});
    JobLogBatch batch{job_id, 1, "w1", builds, {}, 0};
    auto& line = batch.lines.emplace_back();
    line.set_step_id(job_id);
    line.set_line("running " + joined(job.request.spec));
    listener()->onJobLog(batch);

    JobEvent event;
    event.job_id = job_id;
    event.key = job.request.key;
    event.attempt = 1;
    event.worker_id = "w1";
    event.build_ids = builds;
    if (fail || joined(job.request.spec).find("exit 1") != std::string::npos) {
      event.kind = JobEvent::Kind::kFailed;
      event.result.set_outcome(layerfarm::v1::STEP_OUTCOME_FAILED);
      event.result.set_exit_code(1);
      event.result.set_error("exit status 1: boom");
    } else {
      lf::testing::TempDir dir;
      dir.write("out/" + job.request.key.hex(), job.request.key.toString());
      layer::LayerOptions options;
      options.source_date_epoch = 0;
      options.threads = 1;
      // As the worker does (worker/exec/step_runner.cpp): the spec's compression.
      switch (job.request.spec.compression()) {
        case layerfarm::v1::COMPRESSION_NONE:
          options.compression = layer::Compression::kNone;
          break;
        case layerfarm::v1::COMPRESSION_ZSTD:
          options.compression = layer::Compression::kZstd;
          break;
        default:
          options.compression = layer::Compression::kGzip;
      }
      auto info = layer::writeLayer(dir.path(), options, store_);
      EXPECT_TRUE(info.isOk()) << info.status().toString();
      if (!info.isOk()) return;
      event.kind = JobEvent::Kind::kSucceeded;
      event.result.set_outcome(layerfarm::v1::STEP_OUTCOME_SUCCEEDED);
      auto* ref = event.result.mutable_layer();
      ref->mutable_blob()->set_media_type(info->media_type);
      ref->mutable_blob()->set_digest(info->digest.toString());
      ref->mutable_blob()->set_size(static_cast<int64_t>(info->size));
      ref->set_diff_id(info->diff_id.toString());
    }
    listener()->onJobEvent(event);
  }

  void loop() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || !actions_.empty(); });
      if (actions_.empty() && stop_) return;
      auto action = std::move(actions_.front());
      actions_.pop_front();
      lock.unlock();
      action();
      lock.lock();
    }
  }

  blob::BlobStore& store_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  JobListener* listener_ = nullptr;
  bool auto_run_;
  bool stop_ = false;
  int next_id_ = 0;
  std::map<std::string, Job> pending_;
  std::vector<JobRequest> submitted_;
  std::vector<std::string> cancelled_builds_;
  std::deque<std::function<void()>> actions_;
  std::thread thread_;
};

}  // namespace lf::coordinator::testing
